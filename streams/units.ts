/**
 * Durations and byte sizes as operators write them in stream templates ("7d", "24h", "512MiB")
 * and as reports show them. Whole seconds only: nanoseconds of whole seconds stay exact in a JS
 * number far beyond any sensible max age, and nats-server takes them as int64.
 */

const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };
const DURATION = /^(?:\d+[smhdw])+$/;
const DURATION_PART = /(\d+)([smhdw])/g;

/** The largest duration nats-server can hold (int64 nanoseconds), in whole seconds. */
const MAX_DURATION_SECONDS = 9_223_372_036;

export const NANOS_PER_SECOND = 1_000_000_000;

/** `"7d"`, `"1h30m"`, `"90s"` or a number of seconds → seconds; undefined when it is not one. */
export function parseDurationSeconds(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0 && value <= MAX_DURATION_SECONDS ? value : undefined;
  if (/^\d+$/.test(value)) return parseDurationSeconds(Number(value));
  if (!DURATION.test(value)) return undefined;
  let seconds = 0;
  for (const [, n, unit] of value.matchAll(DURATION_PART)) seconds += Number(n) * DURATION_UNITS[unit!]!;
  return seconds <= MAX_DURATION_SECONDS ? seconds : undefined;
}

/** Seconds → the shortest exact form: 604800 → "7d", 5400 → "1h30m", 0 → "0s". */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return "0s";
  let rest = seconds;
  let out = "";
  for (const unit of ["d", "h", "m", "s"] as const) {
    const size = DURATION_UNITS[unit]!;
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out;
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
  TiB: 2 ** 40,
};
const SIZE = /^(\d+)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/;

/** `"512MiB"`, `"1GB"` or a number of bytes → bytes (-1 passes as "unlimited"); undefined when it is not one. */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= -1 ? value : undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  const bytes = Number(m[1]) * SIZE_UNITS[m[2] ?? ""]!;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Bytes for people: 1073741824 → "1 GiB", 357913941 → "341.3 MiB", -1 → "unlimited". */
export function formatBytes(bytes: number): string {
  if (bytes < 0) return "unlimited";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${units[i]}`;
}

/** A nats-server duration (nanoseconds) for people: whole seconds as formatDuration, else milliseconds. */
export function formatNanos(nanos: number): string {
  return nanos % NANOS_PER_SECOND === 0 ? formatDuration(nanos / NANOS_PER_SECOND) : `${nanos / 1e6}ms`;
}

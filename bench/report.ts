/**
 * The benchmark's result: the JSON written to bench/results/latest.json and the table printed on
 * stdout. Every figure is the median of the repetitions, with min and max beside it.
 */
import type { LatencySummary } from "./load-protocol.ts";
import { PATH_NAMES, type PathName } from "./paths.ts";
import { spread } from "./stats.ts";

export type PerPath<T> = Record<PathName, T>;

/** One measurement on one path: its rate, the CPU the serving processes spent, and how busy the rest of the machine was. */
export interface MeasuredRun {
  rate: number;
  /** Messages (or connections) the rate counts. */
  messages: number;
  cpuMs: { nats_server: number; gateway: number; pipe: number };
  /** CPU used by processes outside the benchmark during the run, in % of one core. */
  foreignPercent: number;
}

export interface ScenarioResult {
  name: string;
  unit: string;
  direct: number;
  gateway: number;
  pipe: number;
  /** gateway / direct */
  ratio: number;
  gateway_pipe_ratio: number;
  min: PerPath<number>;
  max: PerPath<number>;
  runs: PerPath<number[]>;
  /** CPU time per message (µs; per connection: ms) of the gateway process, the pipe process, and nats-server on each path. */
  cpu_per_unit: { gateway: number; pipe: number; nats_server: PerPath<number> };
  /** The most CPU other processes on the machine used during any run of this scenario, % of one core. */
  foreign_cpu_pct_max: number;
}

export const PERCENTILES = ["p50", "p90", "p99", "p999"] as const;
export type Percentile = (typeof PERCENTILES)[number];

/** `direct_p50_us`, `gateway_p99_us`, …: medians over the repetitions. */
export type LatencyResult = {
  name: string;
  rate_per_s: number;
  samples_per_run: number;
  overhead_p50_us: number;
  overhead_p99_us: number;
  foreign_cpu_pct_max: number;
  runs: PerPath<LatencySummary[]>;
} & Record<`${PathName}_${Percentile}_us`, number> &
  Record<`${PathName}_${Percentile}_us_range`, [number, number]>;

export interface ConnectionsResult {
  direct_per_s: number;
  gateway_per_s: number;
  pipe_per_s: number;
  min: PerPath<number>;
  max: PerPath<number>;
  runs: PerPath<number[]>;
  /** CPU ms per new connection of the gateway, the pipe, and nats-server on each path. */
  cpu_ms_per_connection: { gateway: number; pipe: number; nats_server: PerPath<number> };
  foreign_cpu_pct_max: number;
}

export interface MemoryPoint {
  connections: number;
  /** RSS growth per idle connection of the gateway process, the pipe process, and nats-server (direct). */
  gateway_bytes: number;
  pipe_bytes: number;
  direct_nats_server_bytes: number;
}

export interface BenchReport {
  machine: { cpus: number; model: string; memory_bytes: number; os: string; note: string };
  nats_server: string;
  /** The gateway's `--workers` (absent in reports before it was recorded: 1). */
  gateway_workers?: number;
  node: string;
  client: string;
  mode: string;
  repetitions: number;
  started_at: string;
  duration_s: number;
  scenarios: ScenarioResult[];
  latency: LatencyResult[];
  connections: ConnectionsResult;
  memory: { bytes_per_idle_connection: number; points: MemoryPoint[] };
}

export function throughputResult(name: string, unit: string, measured: PerPath<MeasuredRun[]>, cpuScale = 1000): ScenarioResult {
  const runs = { direct: measured.direct.map((r) => r.rate), gateway: measured.gateway.map((r) => r.rate), pipe: measured.pipe.map((r) => r.rate) };
  const s = { direct: spread(runs.direct), gateway: spread(runs.gateway), pipe: spread(runs.pipe) };
  /** Median over the runs of CPU per message: ms per message × cpuScale (µs by default). */
  const cpu = (path: PathName, role: keyof MeasuredRun["cpuMs"]): number => round(spread(measured[path].map((r) => (r.cpuMs[role] / Math.max(1, r.messages)) * cpuScale)).median, 3);
  return {
    name,
    unit,
    direct: round(s.direct.median),
    gateway: round(s.gateway.median),
    pipe: round(s.pipe.median),
    ratio: round(s.gateway.median / s.direct.median, 3),
    gateway_pipe_ratio: round(s.gateway.median / s.pipe.median, 3),
    min: { direct: round(s.direct.min), gateway: round(s.gateway.min), pipe: round(s.pipe.min) },
    max: { direct: round(s.direct.max), gateway: round(s.gateway.max), pipe: round(s.pipe.max) },
    runs: { direct: runs.direct.map((v) => round(v)), gateway: runs.gateway.map((v) => round(v)), pipe: runs.pipe.map((v) => round(v)) },
    cpu_per_unit: { gateway: cpu("gateway", "gateway"), pipe: cpu("pipe", "pipe"), nats_server: { direct: cpu("direct", "nats_server"), gateway: cpu("gateway", "nats_server"), pipe: cpu("pipe", "nats_server") } },
    foreign_cpu_pct_max: round(Math.max(...PATH_NAMES.flatMap((p) => measured[p].map((r) => r.foreignPercent))), 1),
  };
}

export function latencyResult(name: string, ratePerSecond: number, runs: PerPath<LatencySummary[]>, foreignPercent: number[]): LatencyResult {
  const fields: Record<string, number | [number, number]> = {};
  for (const path of PATH_NAMES) {
    for (const p of PERCENTILES) {
      const s = spread(runs[path].map((r) => r[`${p}_us`]));
      fields[`${path}_${p}_us`] = round(s.median, 1);
      fields[`${path}_${p}_us_range`] = [round(s.min, 1), round(s.max, 1)];
    }
  }
  const median = (path: PathName, p: Percentile): number => fields[`${path}_${p}_us`] as number;
  return {
    name,
    rate_per_s: ratePerSecond,
    samples_per_run: Math.min(...PATH_NAMES.flatMap((path) => runs[path].map((r) => r.count))),
    ...(fields as Record<`${PathName}_${Percentile}_us`, number> & Record<`${PathName}_${Percentile}_us_range`, [number, number]>),
    overhead_p50_us: round(median("gateway", "p50") - median("direct", "p50"), 1),
    overhead_p99_us: round(median("gateway", "p99") - median("direct", "p99"), 1),
    foreign_cpu_pct_max: round(Math.max(0, ...foreignPercent), 1),
    runs,
  };
}

export function connectionsResult(measured: PerPath<MeasuredRun[]>): ConnectionsResult {
  const r = throughputResult("connect", "conn/s", measured, 1);
  return { direct_per_s: r.direct, gateway_per_s: r.gateway, pipe_per_s: r.pipe, min: r.min, max: r.max, runs: r.runs, cpu_ms_per_connection: r.cpu_per_unit, foreign_cpu_pct_max: r.foreign_cpu_pct_max };
}

function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ---- the table -------------------------------------------------------------------------------

function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1_000_000) return `${(value / 1_000_000).toFixed(2)}M`;
  if (abs >= 100_000) return `${(value / 1000).toFixed(0)}k`;
  if (abs >= 10_000) return `${(value / 1000).toFixed(1)}k`;
  if (abs >= 100) return value.toFixed(0);
  return value.toFixed(1);
}

function signed(value: number): string {
  return value < 0 ? `−${compact(-value)}` : `+${compact(value)}`;
}

function cell(median: number, min: number, max: number): string {
  return `${compact(median)} (${compact(min)}–${compact(max)})`;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function formatReport(report: BenchReport): string {
  const out: string[] = [];
  out.push(
    `nats-tenant-gateway benchmark (${report.mode}, ${report.repetitions} runs per figure: median (min–max))`,
    `machine: ${report.machine.cpus} × ${report.machine.model}, ${(report.machine.memory_bytes / 2 ** 30).toFixed(0)} GiB; ${report.machine.os}; node ${report.node}; nats-server ${report.nats_server}; client ${report.client}; gateway workers ${report.gateway_workers ?? 1}`,
    report.machine.note,
    "",
  );
  const cpu = (v: number): string => v.toFixed(2);
  const rows = report.scenarios.map((s) => [
    s.name,
    s.unit,
    cell(s.direct, s.min.direct, s.max.direct),
    cell(s.gateway, s.min.gateway, s.max.gateway),
    cell(s.pipe, s.min.pipe, s.max.pipe),
    s.ratio.toFixed(2),
    s.gateway_pipe_ratio.toFixed(2),
    `${cpu(s.cpu_per_unit.gateway)} µs`,
    `${cpu(s.cpu_per_unit.pipe)} µs`,
    `${s.foreign_cpu_pct_max.toFixed(0)}%`,
  ]);
  const c = report.connections;
  rows.push([
    "connect",
    "conn/s",
    cell(c.direct_per_s, c.min.direct, c.max.direct),
    cell(c.gateway_per_s, c.min.gateway, c.max.gateway),
    cell(c.pipe_per_s, c.min.pipe, c.max.pipe),
    (c.gateway_per_s / c.direct_per_s).toFixed(2),
    (c.gateway_per_s / c.pipe_per_s).toFixed(2),
    `${cpu(c.cpu_ms_per_connection.gateway)} ms`,
    `${cpu(c.cpu_ms_per_connection.pipe)} ms`,
    `${c.foreign_cpu_pct_max.toFixed(0)}%`,
  ]);
  out.push(table(["scenario", "unit", "direct", "gateway", "pipe", "gw/direct", "gw/pipe", "gw CPU/msg", "pipe CPU/msg", "other load"], rows));
  out.push(
    "gw/pipe CPU per msg: CPU time the gateway (pipe) process spent per message or connection; other load: the most CPU any other process on the machine used during a run (% of one core).",
    "",
  );

  const latencyRows: string[][] = [];
  for (const l of report.latency) {
    for (const p of PERCENTILES) {
      const v = (path: PathName): string => {
        const [min, max] = l[`${path}_${p}_us_range`];
        return cell(l[`${path}_${p}_us`], min, max);
      };
      latencyRows.push([`${l.name} ${p.replace("p999", "p99.9")}`, "µs", v("direct"), v("gateway"), v("pipe"), signed(l[`gateway_${p}_us`] - l[`direct_${p}_us`]), `${l.foreign_cpu_pct_max.toFixed(0)}%`]);
    }
  }
  if (latencyRows.length > 0) {
    out.push(`request/reply round trips at ${report.latency[0]!.rate_per_s}/s (requester and responder both on the path):`);
    out.push(table(["scenario", "unit", "direct", "gateway", "pipe", "gw − direct", "other load"], latencyRows), "");
  }

  const memRows = report.memory.points.map((m) => [`${m.connections} idle connections`, "B/conn", compact(m.direct_nats_server_bytes), compact(m.gateway_bytes), compact(m.pipe_bytes)]);
  out.push("RSS growth per idle connection (direct: nats-server's; gateway and pipe: their own process):");
  out.push(table(["memory", "unit", "direct", "gateway", "pipe"], memRows));
  return out.join("\n");
}

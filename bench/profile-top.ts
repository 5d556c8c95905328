/**
 * The functions a CPU profile (`node --cpu-prof`, e.g. `npm run bench -- --only pubsub-128
 * --cpu-prof`) spent its time in: self time (the function's own code) and total time (with what
 * it called), as a share of the busy (not idle) time.
 *
 *   node --import tsx bench/profile-top.ts <file.cpuprofile | directory> [--top 25] [--match gateway/]
 *
 * Given a directory, reads the newest profile with the most busy time (tsx's loader thread writes
 * a second, nearly idle profile next to the main thread's).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface FunctionTime {
  name: string;
  selfMs: number;
  totalMs: number;
}


function label(frame: CallFrame): string {
  const where = frame.url ? `${frame.url.split("/").slice(-2).join("/")}:${frame.lineNumber + 1}` : "native";
  return `${frame.functionName || "(anonymous)"} ${where}`;
}

/** Self and total time per function (by name and place), busy time only. */
function functionTimes(profile: CpuProfile): { busyMs: number; functions: FunctionTime[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const sampled = new Map<number, number>();
  profile.samples.forEach((id, i) => sampled.set(id, (sampled.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of sampled) {
    const node = byId.get(id)!;
    if (node.callFrame.functionName === "(idle)") continue;
    busy += us;
    const own = label(node.callFrame);
    self.set(own, (self.get(own) ?? 0) + us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = label(byId.get(at)!.callFrame);
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + us);
    }
  }
  const functions = [...total.entries()].map(([name, us]) => ({ name, selfMs: (self.get(name) ?? 0) / 1000, totalMs: us / 1000 }));
  return { busyMs: busy / 1000, functions };
}

function pickProfile(target: string): string {
  if (!statSync(target).isDirectory()) return target;
  const files = readdirSync(target)
    .filter((f) => f.endsWith(".cpuprofile"))
    .map((f) => path.join(target, f));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${target}`);
  const newest = Math.max(...files.map((f) => statSync(f).mtimeMs));
  // Profiles written by one process end within moments of each other; of those, the busiest.
  const recent = files.filter((f) => newest - statSync(f).mtimeMs < 10_000);
  return recent.map((f) => ({ f, busy: functionTimes(JSON.parse(readFileSync(f, "utf8")) as CpuProfile).busyMs })).sort((a, b) => b.busy - a.busy)[0]!.f;
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: "string", default: "25" }, match: { type: "string" } } });
const file = pickProfile(positionals[0] ?? path.join(path.dirname(new URL(import.meta.url).pathname), "results"));
const { busyMs, functions } = functionTimes(JSON.parse(readFileSync(file, "utf8")) as CpuProfile);
const top = Number(values.top);
const pct = (ms: number): string => `${((100 * ms) / busyMs).toFixed(1).padStart(5)}%`;
process.stdout.write(`${file}\nbusy ${busyMs.toFixed(0)} ms\n\nself time:\n`);
for (const f of [...functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) process.stdout.write(`${pct(f.selfMs)}  ${f.selfMs.toFixed(0).padStart(6)} ms  ${f.name}\n`);
const filter = values.match ? new RegExp(values.match) : undefined;
process.stdout.write(`\ntotal time${filter ? ` (${values.match})` : ""}:\n`);
for (const f of functions.filter((f) => !filter || filter.test(f.name)).sort((a, b) => b.totalMs - a.totalMs).slice(0, top)) process.stdout.write(`${pct(f.totalMs)}  ${f.totalMs.toFixed(0).padStart(6)} ms  ${f.name}\n`);

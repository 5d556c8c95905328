/**
 * CPU time from /proc (Linux): per process (all its threads), and for the whole machine, so that
 * a measurement can say how much CPU each process spent per message and how busy the machine
 * was with work that is not the benchmark's (other jobs on a shared machine are the largest
 * source of noise).
 */
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** /proc reports CPU time in USER_HZ ticks, 100 per second on Linux. */
const MS_PER_TICK = 10;

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces; these do not). */
function statFields(pid: number | string): string[] {
  return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
}

/** CPU time of a process and of its live children (a gateway's `--workers`), recursively. */
export function processCpuMs(pid: number): number {
  const fields = statFields(pid);
  let ms = (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  for (const child of childrenOf(pid)) {
    try {
      ms += processCpuMs(child);
    } catch {
      // the child ended while we looked
    }
  }
  return ms;
}

/** The live child processes of a process (from /proc). */
export function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (Number(statFields(entry)[1]) === pid) children.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

/** Busy CPU time of the whole machine (every core): user, nice, system, irq, softirq, steal. */
export function machineBusyMs(): number {
  const [user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) * MS_PER_TICK;
}

export interface CpuSnapshot {
  at: number;
  machine: number;
  processes: Record<string, number>;
}

/** The benchmark's own processes, by role; everything else on the machine is foreign load. */
export class CpuMeter {
  private readonly pids: Record<string, number>;

  constructor(pids: Record<string, number>) {
    this.pids = pids;
  }

  snapshot(): CpuSnapshot {
    const processes: Record<string, number> = {};
    for (const [role, pid] of Object.entries(this.pids)) processes[role] = processCpuMs(pid);
    return { at: performance.now(), machine: machineBusyMs(), processes };
  }

  /** CPU ms each process spent between two snapshots. */
  static spent(from: CpuSnapshot, to: CpuSnapshot): Record<string, number> {
    const out: Record<string, number> = {};
    for (const role of Object.keys(to.processes)) out[role] = to.processes[role]! - (from.processes[role] ?? 0);
    return out;
  }

  /** CPU the rest of the machine used between two snapshots, in % of one core. */
  static foreignPercent(from: CpuSnapshot, to: CpuSnapshot): number {
    const ours = Object.values(CpuMeter.spent(from, to)).reduce((a, b) => a + b, 0);
    const elapsed = to.at - from.at;
    return elapsed > 0 ? Math.max(0, (100 * (to.machine - from.machine - ours)) / elapsed) : 0;
  }

  /**
   * Waits (up to `maxWaitMs`) until other work on the machine uses less than `thresholdPercent`
   * of a core; returns the last foreign load seen.
   */
  async waitForQuiet(thresholdPercent: number, maxWaitMs: number, sampleMs = 300): Promise<number> {
    const deadline = performance.now() + maxWaitMs;
    for (;;) {
      const from = this.snapshot();
      await sleep(sampleMs);
      const foreign = CpuMeter.foreignPercent(from, this.snapshot());
      if (foreign < thresholdPercent || performance.now() >= deadline) return foreign;
    }
  }
}

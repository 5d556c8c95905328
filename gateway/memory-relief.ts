/**
 * Gives memory back after a crowd of clients has left. Measured with 10 cycles of 1,000 clients
 * (bench:faults): nothing leaks — after a full collection the heap is back at its idle size — but
 * V8 keeps the heap it grew to (about twice the idle size) until a memory-reducing collection,
 * which an idle Node process does not run by itself; the RSS stayed 80–120 MB above idle. So when
 * the sessions fall to a fraction of their peak and no new one has come for a while, one full
 * collection runs (a few tens of milliseconds, once per crowd).
 *
 * What V8 gives back the allocator may keep: glibc's malloc holds on to the freed TLS buffers of
 * the crowd (OpenSSL's, outside V8's heap) and the RSS stays 60–80 MB above idle, cycle after
 * cycle; with jemalloc preloaded it comes back to within 10 MB of idle (bench:faults, README
 * "Faults and fairness"). `memoryAllocator()` tells which one runs; the gateway logs it at start.
 */
import { readFileSync } from "node:fs";
import v8 from "node:v8";
import vm from "node:vm";
import type { Logger } from "../common/logger.ts";

/**
 * The C allocator this process runs on: "jemalloc" when it is loaded (LD_PRELOAD, as the image
 * does), else "system" (glibc's malloc on Debian). Read from the process's memory map.
 */
export function memoryAllocator(): "jemalloc" | "system" {
  try {
    return readFileSync("/proc/self/maps", "utf8").includes("libjemalloc") ? "jemalloc" : "system";
  } catch {
    return "system";
  }
}

type Collect = (options?: { type: "major" | "minor" }) => void;

let collector: Collect | undefined;
/** V8's own collector (`gc`), full or young; `--expose-gc` set at run time (the flag is read when a context is made). */
function collect(): Collect {
  if (!collector) {
    v8.setFlagsFromString("--expose-gc");
    collector = vm.runInNewContext("gc") as Collect;
  }
  return collector;
}

/**
 * Young collections paced by the bytes the sessions read.
 *
 * Node hands every socket read to JavaScript in an ArrayBuffer of its own (16 KiB of TLS clear
 * text, up to 64 KiB from NATS). A young collection frees the ones that are done with, but it
 * comes only when the young generation is full of JavaScript objects — and a session forwarding
 * large messages makes few of those. Meanwhile the buffers pile up (20 MB within 150 ms at
 * 1 KiB messages) and V8 answers the external memory with full mark-compact collections of the
 * whole heap: 18–26 per 10 s pub→sub run at 1 KiB, each 60–100 ms of marking, twice the CPU per
 * message of a run without them. A young collection after every `everyBytes` read keeps the pile
 * small (measured: 1–2 full collections per run, 40% less CPU per message); it costs a fraction
 * of a millisecond, and nothing while nothing is read.
 */
export class ReadPacedCollection {
  private readonly everyBytes: number;
  private bytes = 0;
  private scheduled = false;
  /** Young collections run so far. */
  collections = 0;

  constructor(everyBytes: number) {
    this.everyBytes = everyBytes;
  }

  /** A session read `n` bytes from a socket. */
  read(n: number): void {
    this.bytes += n;
    if (this.bytes < this.everyBytes || this.scheduled) return;
    // After the reads of this turn are processed: their buffers are garbage by then.
    this.scheduled = true;
    setImmediate(this.collectYoung);
  }

  private readonly collectYoung = (): void => {
    this.scheduled = false;
    this.bytes = 0;
    this.collections++;
    collect()({ type: "minor" });
  };
}

/** The process's pacing, shared by every session. */
export const READ_PACED_COLLECTION = new ReadPacedCollection(8 * 1024 * 1024);

export interface MemoryReliefOptions {
  /** A crowd: at least this many sessions at the peak. */
  minPeak: number;
  /** Gone: the sessions fell to this fraction of the peak. */
  leftFraction: number;
  /** Calm: no new session for this long. */
  quietMs: number;
  log: Logger;
}

const MB = 1024 * 1024;

export class MemoryRelief {
  private readonly opts: MemoryReliefOptions;
  private peak = 0;
  private sessions = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: MemoryReliefOptions) {
    this.opts = opts;
  }

  opened(sessions: number): void {
    this.sessions = sessions;
    this.peak = Math.max(this.peak, sessions);
    // A newcomer: not calm yet.
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.maybeSchedule();
    }
  }

  closed(sessions: number): void {
    this.sessions = sessions;
    this.maybeSchedule();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private maybeSchedule(): void {
    if (this.timer || this.peak < this.opts.minPeak || this.sessions > this.peak * this.opts.leftFraction) return;
    this.timer = setTimeout(() => this.relieve(), this.opts.quietMs);
    this.timer.unref();
  }

  private relieve(): void {
    this.timer = undefined;
    const before = process.memoryUsage();
    const started = performance.now();
    collect()();
    // A second one after the first one's finalizers ran (sockets' native parts) frees what they held.
    setImmediate(() => this.relieved(before, started));
  }

  private relieved(before: NodeJS.MemoryUsage, started: number): void {
    collect()();
    const after = process.memoryUsage();
    this.opts.log.info(
      {
        event: "memory_relief",
        peak_sessions: this.peak,
        sessions: this.sessions,
        ms: Math.round(performance.now() - started),
        heap_used_mb: +(after.heapUsed / MB).toFixed(1),
        heap_total_mb: [+(before.heapTotal / MB).toFixed(1), +(after.heapTotal / MB).toFixed(1)],
        rss_mb: [+(before.rss / MB).toFixed(1), +(after.rss / MB).toFixed(1)],
      },
      "a crowd of clients left: memory given back",
    );
    // The next crowd is measured from here.
    this.peak = this.sessions;
  }
}

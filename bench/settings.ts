/**
 * How long and how often each scenario runs: `full` (the figures to quote), `quick` (under two
 * minutes, the same scenarios at the sizes that matter most) and `tiny` (a few hundred messages,
 * for the test that keeps the benchmark working).
 */

export const MODES = ["full", "quick", "tiny"] as const;
export type BenchMode = (typeof MODES)[number];

export interface BenchSettings {
  mode: BenchMode;
  /** Measurements per scenario and path; the median is reported with min and max. */
  repetitions: number;
  /** Each path runs pub→sub at 128 B this long before anything is measured. */
  warmupMs: number;
  throughput: { durationMs: number; maxMessages: number };
  sizes: { publish: number[]; pubsub: number[]; queue: number[]; reqrep: number[]; jetstream: number[] };
  reqrep: { ratePerSecond: number; durationMs: number; warmupMs: number };
  jetstream: { durationMs: number; maxMessages: number; window: number };
  connect: { durationMs: number; maxConnections: number; concurrency: number };
  /** Before each measurement, wait up to `maxWaitMs` for other work on the machine to use less than `thresholdPercent` of a core. */
  quiet: { thresholdPercent: number; maxWaitMs: number; sampleMs: number };
  /** Idle connections held open, cumulatively (the second count adds to the first). */
  memory: { counts: number[]; concurrency: number; settleMs: number };
}

const ALL_SIZES = [16, 128, 1024, 16 * 1024];
const UNLIMITED = Number.MAX_SAFE_INTEGER;

export function settingsFor(mode: BenchMode): BenchSettings {
  switch (mode) {
    case "full":
      return {
        mode,
        repetitions: 5,
        warmupMs: 2000,
        throughput: { durationMs: 2000, maxMessages: UNLIMITED },
        sizes: { publish: ALL_SIZES, pubsub: ALL_SIZES, queue: ALL_SIZES, reqrep: [128, 1024], jetstream: [128, 1024] },
        reqrep: { ratePerSecond: 1000, durationMs: 5000, warmupMs: 500 },
        jetstream: { durationMs: 2000, maxMessages: UNLIMITED, window: 256 },
        connect: { durationMs: 3000, maxConnections: UNLIMITED, concurrency: 4 },
        quiet: { thresholdPercent: 20, maxWaitMs: 30_000, sampleMs: 300 },
        memory: { counts: [1000, 5000], concurrency: 8, settleMs: 2000 },
      };
    case "quick":
      return {
        mode,
        repetitions: 3,
        warmupMs: 1000,
        throughput: { durationMs: 500, maxMessages: UNLIMITED },
        sizes: { publish: [128, 1024], pubsub: [128, 1024], queue: [128], reqrep: [128], jetstream: [128] },
        reqrep: { ratePerSecond: 1000, durationMs: 1500, warmupMs: 300 },
        jetstream: { durationMs: 500, maxMessages: UNLIMITED, window: 256 },
        connect: { durationMs: 1000, maxConnections: UNLIMITED, concurrency: 4 },
        quiet: { thresholdPercent: 20, maxWaitMs: 2000, sampleMs: 150 },
        memory: { counts: [1000], concurrency: 8, settleMs: 500 },
      };
    case "tiny":
      return {
        mode,
        repetitions: 1,
        warmupMs: 200,
        throughput: { durationMs: 2000, maxMessages: 300 },
        sizes: { publish: [128], pubsub: [128], queue: [128], reqrep: [128], jetstream: [128] },
        reqrep: { ratePerSecond: 500, durationMs: 400, warmupMs: 100 },
        jetstream: { durationMs: 2000, maxMessages: 300, window: 64 },
        connect: { durationMs: 2000, maxConnections: 20, concurrency: 2 },
        quiet: { thresholdPercent: 100, maxWaitMs: 0, sampleMs: 0 },
        memory: { counts: [20], concurrency: 4, settleMs: 100 },
      };
  }
}

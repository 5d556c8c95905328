/**
 * The gateway against direct NATS and the pipe baseline, side by side in one run: every scenario
 * is measured on the three paths in turn (the order rotating from one repetition to the next, so
 * no path always runs first or last on a warmer or busier machine), with all processes on one
 * machine and loopback.
 */
import { promises as fs, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { tempDir } from "../test/helpers/tmp.ts";
import { CpuMeter } from "./cpu.ts";
import { BENCH_DIR, PROJECT_ROOT, startBenchDeployment, type BenchDeployment } from "./deployment.ts";
import { LoadGenerator } from "./load-generator.ts";
import type { LatencySummary } from "./load-protocol.ts";
import type { ClientLibrary } from "./nats-client.ts";
import { PATH_NAMES, type PathEndpoint, type PathName } from "./paths.ts";
import { connectionRate, idleMemory, pubSub, scenarioList, type Rate, type ScenarioContext } from "./scenarios.ts";
import { connectionsResult, latencyResult, throughputResult, type BenchReport, type MeasuredRun, type MemoryPoint, type PerPath } from "./report.ts";
import { settingsFor, type BenchMode, type BenchSettings } from "./settings.ts";

export const DEFAULT_RESULTS_FILE = path.join(BENCH_DIR, "results", "latest.json");

export interface BenchmarkOptions {
  mode: BenchMode;
  library: ClientLibrary;
  /** Only scenarios whose name starts with one of these (the rest are left out of the report). */
  only?: string[];
  /** Write the gateway's CPU profile (node --cpu-prof) into this directory. */
  cpuProfileDir?: string;
  /** The gateway to measure (a `tenant-gateway` CLI script); default: this checkout's bin/tenant-gateway.js. */
  gatewayCli?: string;
  /** The gateway's `--workers`; default 1. Its CPU is counted over all its processes. */
  gatewayWorkers?: number;
  /** Progress lines (stderr by default). */
  progress?: (line: string) => void;
}

function rotated<T>(items: readonly T[], by: number): T[] {
  const k = by % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

function perPath<T>(make: () => T): PerPath<T> {
  return { direct: make(), gateway: make(), pipe: make() };
}

function clientVersion(library: ClientLibrary): string {
  const pkg = library === "v2" ? "nats" : "@nats-io/transport-node";
  const { version } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, "node_modules", pkg, "package.json"), "utf8")) as { version: string };
  return `${pkg} ${version}`;
}

/** Runs measurements on a path with the machine as quiet as it gets, accounting the CPU each process spent. */
class Measurer {
  private readonly meter: CpuMeter;
  private readonly settings: BenchSettings;

  constructor(deployment: BenchDeployment, generators: LoadGenerator[], settings: BenchSettings) {
    const pids: Record<string, number> = { nats_server: deployment.nats.process.pid!, gateway: deployment.gateway.pid, pipe: deployment.pipe.pid, orchestrator: process.pid };
    generators.forEach((g, i) => (pids[`generator${i}`] = g.pid));
    this.meter = new CpuMeter(pids);
    this.settings = settings;
  }

  async measure<T>(run: () => Promise<T>): Promise<{ value: T; cpuMs: MeasuredRun["cpuMs"]; foreignPercent: number }> {
    const { quiet } = this.settings;
    if (quiet.maxWaitMs > 0) await this.meter.waitForQuiet(quiet.thresholdPercent, quiet.maxWaitMs, quiet.sampleMs);
    const from = this.meter.snapshot();
    const value = await run();
    const to = this.meter.snapshot();
    const spent = CpuMeter.spent(from, to);
    return { value, cpuMs: { nats_server: spent.nats_server!, gateway: spent.gateway!, pipe: spent.pipe! }, foreignPercent: CpuMeter.foreignPercent(from, to) };
  }

  async throughput(run: () => Promise<Rate>): Promise<MeasuredRun> {
    const m = await this.measure(run);
    return { rate: m.value.rate, messages: m.value.messages, cpuMs: m.cpuMs, foreignPercent: m.foreignPercent };
  }
}

export async function runBenchmark(options: BenchmarkOptions): Promise<BenchReport> {
  const settings = settingsFor(options.mode);
  const progress = options.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const selected = (name: string): boolean => !options.only || options.only.some((prefix) => name.startsWith(prefix));
  const startedAt = new Date();
  const t0 = performance.now();
  const deployment = await startBenchDeployment({
    dataDir: tempDir("ntg-bench-"),
    ...(options.gatewayCli ? { gatewayCli: options.gatewayCli } : {}),
    ...(options.gatewayWorkers ? { gatewayWorkers: options.gatewayWorkers } : {}),
    ...(options.cpuProfileDir ? { gatewayNodeArgs: ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`] } : {}),
  });
  const generators: LoadGenerator[] = [];
  try {
    generators.push(...(await Promise.all([LoadGenerator.start("sender"), LoadGenerator.start("receiver")])));
    const ctx: ScenarioContext = { deployment, library: options.library, settings, sender: generators[0]!, receiver: generators[1]! };
    const measurer = new Measurer(deployment, generators, settings);
    const paths = deployment.paths;
    progress(`deployment ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: nats-server ${deployment.natsVersion} :${paths.direct.port}, gateway :${paths.gateway.port}, pipe :${paths.pipe.port}`);
    /** Each repetition measures every path, in an order that rotates. */
    const repeat = async <T>(measure: (path: PathEndpoint) => Promise<T>): Promise<PerPath<T[]>> => {
      const runs = perPath<T[]>(() => []);
      for (let rep = 0; rep < settings.repetitions; rep++) for (const name of rotated(PATH_NAMES, rep)) runs[name].push(await measure(paths[name]));
      return runs;
    };

    // Memory first, while the processes have done little else: their heaps have no free room
    // left over from earlier scenarios to hide what new connections take.
    const memory: MemoryPoint[] = settings.memory.counts.map((connections) => ({ connections, gateway_bytes: 0, pipe_bytes: 0, direct_nats_server_bytes: 0 }));
    if (selected("memory")) {
      const key: Record<PathName, keyof Omit<MemoryPoint, "connections">> = { direct: "direct_nats_server_bytes", gateway: "gateway_bytes", pipe: "pipe_bytes" };
      for (const name of PATH_NAMES) {
        const points = (await measurer.measure(() => idleMemory(ctx, paths[name]))).value;
        points.forEach((p, i) => (memory[i]![key[name]] = Math.round(p.bytesPerConnection)));
        progress(`memory ${name}: ${points.map((p) => `${p.connections} connections → ${Math.round(p.bytesPerConnection)} B each`).join(", ")}`);
      }
    }

    let connections: BenchReport["connections"] | undefined;
    if (selected("connect")) {
      connections = connectionsResult(await repeat((p) => measurer.throughput(() => connectionRate(ctx, p))));
      progress(`connect: direct ${connections.direct_per_s}, gateway ${connections.gateway_per_s}, pipe ${connections.pipe_per_s} conn/s`);
    }

    // The JIT of the gateway and the pipe (and of the generators) warms up before anything counts.
    const warmup = { ...ctx, settings: { ...settings, throughput: { ...settings.throughput, durationMs: settings.warmupMs } } };
    for (const name of PATH_NAMES) await pubSub(128).measure(warmup, paths[name]);

    const scenarios: BenchReport["scenarios"] = [];
    const latency: BenchReport["latency"] = [];
    for (const scenario of scenarioList(settings)) {
      if (!selected(scenario.name)) continue;
      if (scenario.kind === "throughput") {
        const result = throughputResult(scenario.name, scenario.unit, await repeat((p) => measurer.throughput(() => scenario.measure(ctx, p))));
        scenarios.push(result);
        progress(`${scenario.name}: direct ${result.direct}, gateway ${result.gateway}, pipe ${result.pipe} ${scenario.unit} (gateway/direct ${result.ratio}, gateway/pipe ${result.gateway_pipe_ratio})`);
      } else {
        const foreign: number[] = [];
        const runs = await repeat(async (p): Promise<LatencySummary> => {
          const m = await measurer.measure(() => scenario.measure(ctx, p));
          foreign.push(m.foreignPercent);
          return m.value;
        });
        const result = latencyResult(scenario.name, settings.reqrep.ratePerSecond, runs, foreign);
        latency.push(result);
        progress(`${scenario.name}: p50 direct ${result.direct_p50_us} µs, gateway ${result.gateway_p50_us} µs, pipe ${result.pipe_p50_us} µs; p99 ${result.direct_p99_us} / ${result.gateway_p99_us} / ${result.pipe_p99_us} µs`);
      }
    }

    const cpus = os.cpus();
    return {
      machine: {
        cpus: cpus.length,
        model: cpus[0]?.model.trim() ?? "unknown",
        memory_bytes: os.totalmem(),
        os: `${os.type()} ${os.release()} ${os.arch()}`,
        note: `nats-server, the gateway, the pipe and two load generator processes all share these ${cpus.length} cores on loopback: the figures compare the paths with each other, they are not what a dedicated gateway host would do.`,
      },
      nats_server: deployment.natsVersion,
      gateway_workers: options.gatewayWorkers ?? 1,
      node: process.version,
      client: clientVersion(options.library),
      mode: settings.mode,
      repetitions: settings.repetitions,
      started_at: startedAt.toISOString(),
      duration_s: Math.round((performance.now() - t0) / 1000),
      scenarios,
      latency,
      connections: connections ?? connectionsResult(perPath(() => [{ rate: 0, messages: 0, cpuMs: { nats_server: 0, gateway: 0, pipe: 0 }, foreignPercent: 0 }])),
      memory: { bytes_per_idle_connection: memory[memory.length - 1]?.gateway_bytes ?? 0, points: memory },
    };
  } finally {
    await Promise.all(generators.map((g) => g.stop()));
    await deployment.stop();
  }
}

export async function writeReport(report: BenchReport, file = DEFAULT_RESULTS_FILE): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
}

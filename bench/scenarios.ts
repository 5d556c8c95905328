/**
 * The scenarios, each measured on one path at a time by the load generators: publish only,
 * publish → one subscriber, publish → a queue group of 4, request/reply at a fixed rate,
 * JetStream publish with acks, new connections per second, and memory per idle connection.
 */
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { childrenOf } from "./cpu.ts";
import type { BenchDeployment } from "./deployment.ts";
import type { LoadGenerator } from "./load-generator.ts";
import type { LatencySummary } from "./load-protocol.ts";
import type { ClientLibrary } from "./nats-client.ts";
import type { PathEndpoint, PathName } from "./paths.ts";
import type { BenchSettings } from "./settings.ts";

export interface ScenarioContext {
  deployment: BenchDeployment;
  library: ClientLibrary;
  settings: BenchSettings;
  /** Publishes and requests. */
  sender: LoadGenerator;
  /** Subscribes and responds. */
  receiver: LoadGenerator;
}

export interface Rate {
  /** Messages per second. */
  rate: number;
  messages: number;
}

export interface ThroughputScenario {
  kind: "throughput";
  name: string;
  unit: "msgs/s";
  measure(ctx: ScenarioContext, path: PathEndpoint): Promise<Rate>;
}

export interface LatencyScenario {
  kind: "latency";
  name: string;
  measure(ctx: ScenarioContext, path: PathEndpoint): Promise<LatencySummary>;
}

export type Scenario = ThroughputScenario | LatencyScenario;

/**
 * Bytes (payload and protocol overhead) a publisher may have in flight before subscribers
 * acknowledge. Large enough that the window is not what limits the rate on any path (each hop
 * adds latency, and a small window turns latency into a lower rate), well below nats-server's
 * 64 MB `max_pending` per connection, so no subscriber is cut as a slow consumer.
 */
const IN_FLIGHT_BYTES = 32 * 1024 * 1024;
const FRAME_OVERHEAD_BYTES = 48;
const QUEUE_MEMBERS = 4;

let subjectSeq = 0;
/** A subject no earlier measurement used, so no interest lingers from one to the next. */
function freshSubject(path: PathEndpoint, what: string): string {
  return `${path.subjectPrefix}bench.${what}.${++subjectSeq}`;
}

function publishOnly(size: number): ThroughputScenario {
  return {
    kind: "throughput",
    name: `pub-${size}`,
    unit: "msgs/s",
    measure: async (ctx, path) => {
      const { throughput } = ctx.settings;
      const r = await ctx.sender.run({ op: "publish", path, library: ctx.library, subject: freshSubject(path, "pub"), size, durationMs: throughput.durationMs, maxMessages: throughput.maxMessages });
      return { rate: r.messages / r.seconds, messages: r.messages };
    },
  };
}

/** Publisher and subscribers in different processes; the rate is what the subscribers received. */
function publishToSubscribers(name: string, size: number, members: number): ThroughputScenario {
  return {
    kind: "throughput",
    name: `${name}-${size}`,
    unit: "msgs/s",
    measure: async (ctx, path) => {
      const { throughput } = ctx.settings;
      const subject = freshSubject(path, name);
      const ackSubject = freshSubject(path, "ack");
      const maxInFlight = Math.max(64, Math.floor(IN_FLIGHT_BYTES / (size + FRAME_OVERHEAD_BYTES)));
      const ackEvery = Math.max(1, Math.floor(maxInFlight / 8 / members));
      await ctx.receiver.run({ op: "subscribe", path, library: ctx.library, subject, ...(members > 1 ? { queue: "workers" } : {}), connections: members, ackSubject, ackEvery });
      try {
        const r = await ctx.sender.run({ op: "publish", path, library: ctx.library, subject, size, durationMs: throughput.durationMs, maxMessages: throughput.maxMessages, flow: { ackSubject, maxInFlight } });
        return { rate: r.messages / r.seconds, messages: r.messages };
      } finally {
        await ctx.receiver.run({ op: "release" });
      }
    },
  };
}

function requestReply(size: number): LatencyScenario {
  return {
    kind: "latency",
    name: `reqrep-${size}`,
    measure: async (ctx, path) => {
      const subject = freshSubject(path, "svc");
      await ctx.receiver.run({ op: "respond", path, library: ctx.library, subject });
      try {
        return await ctx.sender.run({ op: "request", path, library: ctx.library, subject, size, ...ctx.settings.reqrep });
      } finally {
        await ctx.receiver.run({ op: "release" });
      }
    },
  };
}

/** To the tenant's `events` stream (file storage), as an edge component publishes events. */
function jetStreamPublish(size: number): ThroughputScenario {
  return {
    kind: "throughput",
    name: `js-${size}`,
    unit: "msgs/s",
    measure: async (ctx, path) => {
      const r = await ctx.sender.run({ op: "jsPublish", path, library: ctx.library, subject: `${path.subjectPrefix}events.bench`, size, ...ctx.settings.jetstream });
      return { rate: r.messages / r.seconds, messages: r.messages };
    },
  };
}

/** Publish → one subscriber. */
export function pubSub(size: number): ThroughputScenario {
  return publishToSubscribers("pubsub", size, 1);
}

export function scenarioList(settings: BenchSettings): Scenario[] {
  const { sizes } = settings;
  return [
    ...sizes.publish.map(publishOnly),
    ...sizes.pubsub.map(pubSub),
    ...sizes.queue.map((size) => publishToSubscribers(`queue${QUEUE_MEMBERS}`, size, QUEUE_MEMBERS)),
    ...sizes.jetstream.map(jetStreamPublish),
    ...sizes.reqrep.map(requestReply),
  ];
}

/** New connections per second through the first PONG, from both generators at once. */
export async function connectionRate(ctx: ScenarioContext, path: PathEndpoint): Promise<Rate> {
  const { connect } = ctx.settings;
  const generators = [ctx.sender, ctx.receiver];
  const share = Math.ceil(connect.maxConnections / generators.length);
  const results = await Promise.all(generators.map((g) => g.run({ op: "connect", path, library: ctx.library, durationMs: connect.durationMs, maxConnections: share, concurrency: connect.concurrency })));
  const connections = results.reduce((sum, r) => sum + r.connections, 0);
  return { rate: connections / Math.max(...results.map((r) => r.seconds)), messages: connections };
}

/** Resident memory of a process, from /proc (Linux). */
/** RSS of a process and its live children (a gateway's `--workers`). */
export function residentBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024 + childrenOf(pid).reduce((sum, child) => sum + childResidentBytes(child), 0);
}

/** A child that is ending (or has ended) counts nothing. */
function childResidentBytes(pid: number): number {
  try {
    return residentBytes(pid);
  } catch {
    return 0;
  }
}

/** The process whose memory an idle connection on this path costs: nats-server itself when direct. */
export function serverProcessOf(deployment: BenchDeployment, path: PathName): number {
  if (path === "gateway") return deployment.gateway.pid;
  if (path === "pipe") return deployment.pipe.pid;
  return deployment.nats.process.pid!;
}

/**
 * Opens idle connections in steps up to each count (cumulative) and reports the growth of the
 * serving process's RSS per connection at each step. Every connection completed its first
 * PING/PONG, so the gateway had admitted it and opened its upstream before the RSS is read.
 */
export async function idleMemory(ctx: ScenarioContext, path: PathEndpoint): Promise<Array<{ connections: number; bytesPerConnection: number }>> {
  const { memory } = ctx.settings;
  const pid = serverProcessOf(ctx.deployment, path.name);
  const generators = [ctx.sender, ctx.receiver];
  await sleep(memory.settleMs);
  const before = residentBytes(pid);
  const points: Array<{ connections: number; bytesPerConnection: number }> = [];
  let open = 0;
  try {
    for (const count of memory.counts) {
      const more = count - open;
      await Promise.all(generators.map((g, i) => g.run({ op: "openIdle", path, library: ctx.library, count: Math.floor(more / generators.length) + (i < more % generators.length ? 1 : 0), concurrency: memory.concurrency })));
      open = count;
      await sleep(memory.settleMs);
      points.push({ connections: count, bytesPerConnection: (residentBytes(pid) - before) / count });
    }
  } finally {
    await Promise.all(generators.map((g) => g.run({ op: "release" })));
  }
  return points;
}

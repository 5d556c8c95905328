/**
 * What the orchestrator asks a load generator process to do, and what it answers: one request at
 * a time over the process's IPC channel. Every task names the path and the client library, so a
 * generator holds no state between tasks except the connections a task leaves open (subscribers,
 * responders, idle connections) until `release`.
 */
import type { ClientLibrary } from "./nats-client.ts";
import type { PathEndpoint } from "./paths.ts";

interface OnPath {
  path: PathEndpoint;
  library: ClientLibrary;
}

/** Credit-based flow control: the publisher keeps at most `maxInFlight` messages that no subscriber has acknowledged. */
export interface FlowControl {
  ackSubject: string;
  maxInFlight: number;
}

export interface PublishTask extends OnPath {
  op: "publish";
  subject: string;
  size: number;
  durationMs: number;
  maxMessages: number;
  /** Absent: publish only, bounded by flushes (PING/PONG) instead. */
  flow?: FlowControl;
}

export interface SubscribeTask extends OnPath {
  op: "subscribe";
  subject: string;
  queue?: string;
  connections: number;
  ackSubject: string;
  /** A subscriber acknowledges after this many messages, and whatever is unacknowledged every few ms. */
  ackEvery: number;
}

export interface RespondTask extends OnPath {
  op: "respond";
  subject: string;
}

export interface RequestTask extends OnPath {
  op: "request";
  subject: string;
  size: number;
  ratePerSecond: number;
  durationMs: number;
  /** Requests sent before this are not counted (the JIT and the connections warm up). */
  warmupMs: number;
}

export interface JetStreamPublishTask extends OnPath {
  op: "jsPublish";
  subject: string;
  size: number;
  durationMs: number;
  maxMessages: number;
  /** Publishes awaiting their ack at most. */
  window: number;
}

export interface ConnectTask extends OnPath {
  op: "connect";
  durationMs: number;
  maxConnections: number;
  concurrency: number;
}

export interface OpenIdleTask extends OnPath {
  op: "openIdle";
  count: number;
  concurrency: number;
}

export interface ReleaseTask {
  op: "release";
}

export type LoadTask = PublishTask | SubscribeTask | RespondTask | RequestTask | JetStreamPublishTask | ConnectTask | OpenIdleTask | ReleaseTask;

export interface Throughput {
  messages: number;
  seconds: number;
}

export interface LatencySummary {
  count: number;
  lost: number;
  p50_us: number;
  p90_us: number;
  p99_us: number;
  p999_us: number;
}

export interface ConnectResult {
  connections: number;
  seconds: number;
}

export interface LoadResults {
  publish: Throughput;
  subscribe: { ready: true };
  respond: { ready: true };
  request: LatencySummary;
  jsPublish: Throughput;
  connect: ConnectResult;
  openIdle: { opened: number };
  release: { released: number };
}

export type LoadMessage = { id: number; task: LoadTask };
export type LoadReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

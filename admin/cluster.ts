/**
 * `--workers N`: the primary serves the HTTP listener for the whole group. It asks the workers
 * over the cluster's IPC channel for their sessions, to disconnect one, and for their readiness;
 * prom-client's AggregatorRegistry gathers their metrics into one scrape. Messages are typed
 * `tenant-gateway-admin:…` (the workers' start-up reports are `tenant-gateway:…`, see workers.ts).
 */
import cluster, { type Worker } from "node:cluster";
import { randomUUID } from "node:crypto";
import { AggregatorRegistry, type Registry } from "prom-client";
import { errorMessage } from "../common/coded-error.ts";
import type { ControlPlane } from "../accounts/control-plane.ts";
import type { Gateway } from "../gateway/gateway.ts";
import type { GatewayReadiness, SessionSummary } from "../gateway/telemetry.ts";
import type { TenantDirectory } from "../gateway/tenant-directory.ts";
import type { GatewayRuntime } from "./runtime.ts";

const REQUEST = "tenant-gateway-admin:request";
const REPLY = "tenant-gateway-admin:reply";
/** A worker that does not answer within this is taken as not ready (and as having no sessions). */
const ANSWER_MS = 2000;

type WorkerQuestion = { op: "sessions"; tenant?: string } | { op: "disconnect"; id: string; reason: string } | { op: "readiness" };
interface RequestMessage {
  type: typeof REQUEST;
  id: string;
  question: WorkerQuestion;
}
interface ReplyMessage {
  type: typeof REPLY;
  id: string;
  answer?: unknown;
  error?: string;
}

function isMessage<T extends { type: string }>(value: unknown, type: T["type"]): value is T {
  return typeof value === "object" && value !== null && (value as { type?: unknown }).type === type;
}

/**
 * In a worker: answer the primary's questions about this worker's gateway, and let prom-client
 * answer its metrics requests from `registry`.
 */
export function answerPrimary(gateway: Gateway, registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's listener for the primary's metrics requests.
  new AggregatorRegistry();
  process.on("message", (message: unknown) => {
    if (!isMessage<RequestMessage>(message, REQUEST)) return;
    const q = message.question;
    const answer = async (): Promise<unknown> => {
      if (q.op === "sessions") return gateway.sessionList(q.tenant === undefined ? {} : { tenant: q.tenant });
      if (q.op === "disconnect") return gateway.disconnect(q.id, q.reason) ?? null;
      return gateway.readiness();
    };
    answer().then(
      (a) => process.send?.({ type: REPLY, id: message.id, answer: a } satisfies ReplyMessage),
      (err: unknown) => process.send?.({ type: REPLY, id: message.id, error: errorMessage(err) } satisfies ReplyMessage),
    );
  });
}

/** In the primary: the worker group as one gateway, for the HTTP side. */
export class ClusterRuntime implements GatewayRuntime {
  readonly cp: ControlPlane;
  readonly registry: TenantDirectory;
  readonly allowedIdentities: readonly string[];
  private readonly pending = new Map<string, (reply: ReplyMessage) => void>();

  constructor(cp: ControlPlane, registry: TenantDirectory, allowedIdentities: readonly string[]) {
    this.cp = cp;
    this.registry = registry;
    this.allowedIdentities = allowedIdentities;
    cluster.on("message", (_worker, message: unknown) => {
      if (isMessage<ReplyMessage>(message, REPLY)) this.pending.get(message.id)?.(message);
    });
  }

  private workers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected());
  }

  /** Each worker's answer (undefined for one that did not answer in time or failed). */
  private askAll<T>(question: WorkerQuestion): Promise<Array<{ worker: Worker; answer: T | undefined; error?: string }>> {
    return Promise.all(
      this.workers().map(
        (worker) =>
          new Promise<{ worker: Worker; answer: T | undefined; error?: string }>((resolve) => {
            const id = randomUUID();
            const timer = setTimeout(() => {
              this.pending.delete(id);
              resolve({ worker, answer: undefined, error: `no answer within ${ANSWER_MS} ms` });
            }, ANSWER_MS);
            this.pending.set(id, (reply) => {
              clearTimeout(timer);
              this.pending.delete(id);
              resolve({ worker, answer: reply.answer as T | undefined, ...(reply.error ? { error: reply.error } : {}) });
            });
            worker.send({ type: REQUEST, id, question } satisfies RequestMessage);
          }),
      ),
    );
  }

  async sessions(filter: { tenant?: string } = {}): Promise<SessionSummary[]> {
    const answers = await this.askAll<SessionSummary[]>({ op: "sessions", ...(filter.tenant === undefined ? {} : { tenant: filter.tenant }) });
    return answers.flatMap((a) => a.answer ?? []);
  }

  async disconnect(id: string, reason: string): Promise<SessionSummary | undefined> {
    const answers = await this.askAll<SessionSummary | null>({ op: "disconnect", id, reason });
    return answers.map((a) => a.answer).find((a): a is SessionSummary => a !== null && a !== undefined);
  }

  /** Ready while at least one worker is: the others do not take connections until they listen (node:cluster). */
  async readiness(): Promise<GatewayReadiness> {
    const answers = await this.askAll<GatewayReadiness>({ op: "readiness" });
    const checks: GatewayReadiness["checks"] = {};
    for (const a of answers) {
      const failed = a.answer ? Object.entries(a.answer.checks).filter(([, c]) => !c.ok) : [];
      checks[`worker_${a.worker.id}`] = a.answer?.ready ? { ok: true } : { ok: false, detail: a.error ?? failed.map(([name, c]) => `${name}: ${c.detail ?? "not ok"}`).join("; ") };
    }
    if (answers.length === 0) checks.workers = { ok: false, detail: "no worker running" };
    return { ready: answers.some((a) => a.answer?.ready === true), checks };
  }
}

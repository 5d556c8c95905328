/**
 * One process per core (architecture brief, section 9): the primary syncs accounts and streams
 * once, then forks workers that each run a Gateway on the same listen address (node:cluster
 * hands accepted connections round-robin to the workers). A worker that cannot start fails the
 * whole gateway (one error, exit 1, as a single process would); a worker that dies later is
 * replaced; SIGTERM puts every worker in lame duck mode and the primary exits 0 when they all have.
 */
import cluster, { type Worker } from "node:cluster";
import os from "node:os";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import { ControlPlane, untilNatsReachable } from "../accounts/control-plane.ts";
import { TenantService } from "../accounts/tenants.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import type { GatewayConfig } from "./config.ts";

/** What a stopping worker gets beyond the drain for its closing steps before the primary kills it. */
const WORKER_STOP_MARGIN_MS = 10_000;

export function workerCount(config: GatewayConfig): number {
  return config.workers === 0 ? os.availableParallelism() : config.workers;
}

/** What a worker tells the primary about its start-up. */
type WorkerReport = { type: "tenant-gateway:listening" } | { type: "tenant-gateway:start_failed"; code: string; message: string };

function isWorkerReport(value: unknown): value is WorkerReport {
  return typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string" && (value as { type: string }).type.startsWith("tenant-gateway:");
}

/** In a worker: tell the primary this worker serves. */
export function reportWorkerListening(): void {
  if (cluster.isWorker) process.send?.({ type: "tenant-gateway:listening" } satisfies WorkerReport);
}

/** In a worker: hand the start-up failure to the primary (which reports it once) and exit 1. */
export function exitWorkerStartFailed(err: unknown): void {
  const report: WorkerReport = { type: "tenant-gateway:start_failed", code: err instanceof CodedError ? err.code : "internal_error", message: errorMessage(err) };
  if (!process.send) process.exit(1);
  process.send(report, undefined, {}, () => process.exit(1));
}

/** Accounts and streams synchronised once for all workers; skipped (logged) on a data-plane data dir. */
async function syncOnce(config: GatewayConfig, log: Logger): Promise<void> {
  const open = {
    dataDir: config.data_dir,
    servers: config.nats,
    store: config.store,
    ...(config.master_key_file ? { masterKeyFile: config.master_key_file } : {}),
    ...(config.bucket ? { bucket: config.bucket } : {}),
  };
  const result = await untilNatsReachable(
    async () => {
      const cp = await ControlPlane.open(open);
      try {
        return cp.canSignAccounts ? await new TenantService(cp, tenantStreamProvisioner).sync() : undefined;
      } finally {
        await cp.close();
      }
    },
    { waitMs: config.nats_wait_ms, onRetry: (r) => log.warn({ event: "nats_unavailable", attempt: r.attempt, retry_in_ms: r.delayMs, nats: config.nats, error: r.error.message }, "NATS is not reachable; retrying") },
  );
  if (!result) {
    log.info({ event: "sync_skipped", data_dir: config.data_dir }, "no operator seed in the data dir (its data-plane part): accounts and streams are not synchronised here; run `tenant-gateway sync` on the control plane");
    return;
  }
  const failed = result.tenants.filter((t) => t.result === "failed");
  log.info({ event: "sync", tenants: result.tenants.length, failed: failed.length }, "accounts and streams synchronised with NATS");
  for (const f of failed) log.error({ event: "sync_failed", tenant: f.slug, error: f.error }, "tenant could not be synchronised");
}

/**
 * In the primary: sync once, fork the workers. Resolves once every worker listens; rejects with
 * the first worker's start-up failure after stopping the others. Then keeps them running until a
 * signal.
 */
export async function runPrimary(config: GatewayConfig, log: Logger): Promise<void> {
  if (config.sync_on_start) await syncOnce(config, log);
  const n = workerCount(config);
  let phase: "starting" | "running" | "stopping" | "failed" = "starting";
  /** 1 once a worker had to be killed at stop. */
  let stopExitCode = 0;
  const ready = new Set<number>();
  const live = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  // Workers must not sync again; everything else they read from the same flags, env and file.
  const fork = (): void => {
    cluster.fork({ TENANT_GATEWAY_SYNC_ON_START: "false", TENANT_GATEWAY_WORKERS: "1" });
  };
  return new Promise<void>((resolve, reject) => {
    let failure: CodedError | undefined;
    const failStart = (err: CodedError): void => {
      if (phase !== "starting") return;
      phase = "failed";
      failure = err;
      if (live().length === 0) return reject(err);
      for (const worker of live()) worker.process.kill("SIGTERM");
    };
    cluster.on("message", (worker, message: unknown) => {
      if (!isWorkerReport(message)) return;
      if (message.type === "tenant-gateway:start_failed") {
        if (phase === "starting") failure ??= new CodedError(message.code, message.message);
        return;
      }
      ready.add(worker.id);
      if (phase === "starting" && ready.size === n) {
        phase = "running";
        log.info({ event: "workers_started", workers: n }, `started ${n} gateway workers`);
        resolve();
      }
    });
    cluster.on("exit", (worker, code, signal) => {
      const wasReady = ready.delete(worker.id);
      if (phase === "failed") {
        if (live().length === 0) reject(failure);
        return;
      }
      if (phase === "stopping") {
        if (live().length === 0) process.exit(stopExitCode);
        return;
      }
      if (phase === "starting" && !wasReady) {
        failStart(failure ?? new CodedError("worker_start_failed", `a gateway worker exited during start-up (${signal ?? `exit code ${code}`})`));
        return;
      }
      log.error({ event: "worker_exited", worker: worker.process.pid, code, signal }, "gateway worker died; starting another");
      fork();
    });
    const stop = (signal: NodeJS.Signals): void => {
      if (phase === "stopping" || phase === "failed") return;
      phase = "stopping";
      log.info({ event: "signal", signal, workers: live().length }, "stopping the workers");
      if (live().length === 0) process.exit(0);
      for (const worker of live()) worker.process.kill("SIGTERM");
      // A worker gets its drain and its closing steps; one still running after that is killed, and
      // the primary reports it (exit 1): a stopping gateway never hangs.
      setTimeout(() => {
        const stuck = live();
        if (stuck.length === 0) return;
        log.error({ event: "workers_stop_timeout", workers: stuck.map((w) => w.process.pid), after_ms: config.drain_timeout_ms + WORKER_STOP_MARGIN_MS }, "gateway workers did not stop after the drain; killing them");
        for (const worker of stuck) worker.process.kill("SIGKILL");
        stopExitCode = 1;
      }, config.drain_timeout_ms + WORKER_STOP_MARGIN_MS).unref();
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    for (let i = 0; i < n; i++) fork();
  });
}

export function isWorker(): boolean {
  return cluster.isWorker;
}

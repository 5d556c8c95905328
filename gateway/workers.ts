/**
 * One process per core (architecture brief, section 9): the primary syncs accounts and streams
 * once, then forks workers that each run a Gateway on the same listen address (node:cluster
 * hands accepted connections round-robin to the workers). A worker that dies is replaced; SIGTERM
 * puts every worker in lame duck mode and the primary exits 0 when they all have.
 */
import cluster from "node:cluster";
import os from "node:os";
import type { Logger } from "../common/logger.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { TenantService } from "../accounts/tenants.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import type { GatewayConfig } from "./config.ts";

export function workerCount(config: GatewayConfig): number {
  return config.workers === 0 ? os.availableParallelism() : config.workers;
}

/** In the primary: sync once, fork the workers, keep them running until a signal. */
export async function runPrimary(config: GatewayConfig, log: Logger): Promise<void> {
  if (config.sync_on_start) {
    const cp = await ControlPlane.open({ dataDir: config.data_dir, servers: config.nats, store: config.store, ...(config.master_key_file ? { masterKeyFile: config.master_key_file } : {}), ...(config.bucket ? { bucket: config.bucket } : {}) });
    try {
      const result = await new TenantService(cp, tenantStreamProvisioner).sync();
      log.info({ event: "sync", tenants: result.tenants.length, failed: result.tenants.filter((t) => t.result === "failed").length }, "accounts and streams synchronised with NATS");
    } finally {
      await cp.close();
    }
  }
  const n = workerCount(config);
  let stopping = false;
  // Workers must not sync again; everything else they read from the same flags, env and file.
  const fork = (): void => {
    cluster.fork({ TENANT_GATEWAY_SYNC_ON_START: "false", TENANT_GATEWAY_WORKERS: "1" });
  };
  cluster.on("exit", (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    log.error({ event: "worker_exited", worker: worker.process.pid, code, signal }, "gateway worker died; starting another");
    fork();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ event: "signal", signal, workers: Object.keys(cluster.workers ?? {}).length }, "stopping the workers");
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill("SIGTERM");
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  for (let i = 0; i < n; i++) fork();
  log.info({ event: "workers_started", workers: n }, `started ${n} gateway workers`);
}

export function isWorker(): boolean {
  return cluster.isWorker;
}


/**
 * The HTTP side put together, for the three ways the gateway runs:
 *
 * - one process (`serve`, `dev`): the listener starts first (alive, not ready), then the gateway's
 *   metrics, sessions and operations are attached to it;
 * - a worker of `--workers N`: no listener of its own; its metrics and sessions are answered to the
 *   primary over IPC;
 * - the primary of `--workers N`: the listener, the group's metrics summed, the operations on a
 *   control plane of its own.
 *
 * The JetStream figures (consumer lag) are collected by exactly one process: the single gateway,
 * or the primary.
 */
import { AggregatorRegistry, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import cluster from "node:cluster";
import { readTextFile } from "../common/files.ts";
import type { Logger } from "../common/logger.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import type { TenantRecord } from "../accounts/tenant-store.ts";
import { DataLayout } from "../pki/layout.ts";
import { httpListenAddress, type GatewayConfig } from "../gateway/config.ts";
import type { Gateway } from "../gateway/gateway.ts";
import { TenantDirectory } from "../gateway/tenant-directory.ts";
import { loadGatewayTls } from "../gateway/tls.ts";
import { answerPrimary, ClusterRuntime } from "./cluster.ts";
import { AdminHttpServer } from "./http-server.ts";
import { JetStreamStats } from "./jetstream-stats.ts";
import { GatewayMetrics, registerJetStreamMetrics } from "./metrics.ts";
import { AdminOperations } from "./operations.ts";
import { packageOperations } from "./package-operations.ts";
import { localRuntime, type GatewayRuntime } from "./runtime.ts";

/** A running HTTP side: attach the gateway (or the worker group) once it runs; close at shutdown. */
export interface HttpSide {
  readonly server: AdminHttpServer;
  /** Readiness says no from now on (SIGTERM: lame duck before the drain). */
  draining(): void;
  close(): Promise<void>;
}

function recordsOf(directory: TenantDirectory): () => Iterable<TenantRecord> {
  return function* () {
    for (const slug of directory.slugs()) {
      const entry = directory.get(slug);
      if (entry) yield entry.record;
    }
  };
}

async function listen(config: GatewayConfig, log: Logger, metrics: () => Promise<{ contentType: string; body: string }>): Promise<AdminHttpServer | undefined> {
  const address = httpListenAddress(config);
  if (!address) return undefined;
  const layout = new DataLayout(config.data_dir);
  // The same files and the same errors as the gateway's own TLS (gateway/tls.ts).
  const cert = await readTextFile(layout.gatewayChain, "gateway certificate chain");
  const key = await readTextFile(layout.gatewayKey, "gateway private key");
  return AdminHttpServer.start({ ...address, tls: { cert, key }, log: log.child({ component: "http" }), metrics });
}

function operationsOn(server: AdminHttpServer, runtime: GatewayRuntime, registry: Registry, config: GatewayConfig, log: Logger): JetStreamStats {
  const stats = new JetStreamStats({ cp: runtime.cp, tenants: recordsOf(runtime.registry), intervalMs: config.jetstream_stats_interval_ms, log });
  registerJetStreamMetrics(registry, () => stats.latest());
  stats.start();
  const ops = new AdminOperations(runtime, stats, log.child({ component: "admin" }));
  ops.enablePackages(packageOperations(ops));
  server.attach(ops);
  log.info({ event: "http_attached", port: server.address.port }, "admin API, console and readiness answer for the running gateway");
  return stats;
}

/** The gateway's own metrics on `registry` (per tenant, per worker), and its outcomes observed. */
function observe(gateway: Gateway, registry: Registry): GatewayMetrics {
  const metrics = new GatewayMetrics(registry, {
    sessionList: () => gateway.sessionList(),
    stats: gateway.stats,
    readiness: () => gateway.readiness(),
    isTenant: (slug) => gateway.registry.get(slug) !== undefined,
  });
  gateway.observe(metrics);
  return metrics;
}

/**
 * One process: the listener now (before NATS is reached: `/healthz` answers, `/readyz` says
 * starting); `attach` once the gateway runs. Undefined when `http_listen` is off.
 */
export async function startHttpSide(config: GatewayConfig, log: Logger): Promise<(HttpSide & { attach(gateway: Gateway): void }) | undefined> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const server = await listen(config, log, async () => ({ contentType: registry.contentType, body: await registry.metrics() }));
  if (!server) return undefined;
  let stats: JetStreamStats | undefined;
  let metrics: GatewayMetrics | undefined;
  return {
    server,
    attach: (gateway) => {
      metrics = observe(gateway, registry);
      stats = operationsOn(server, localRuntime(gateway), registry, config, log);
    },
    draining: () => server.draining(),
    close: async () => {
      metrics?.stop();
      await stats?.stop();
      await server.close();
    },
  };
}

/** In a worker of `--workers N`: metrics and sessions answered to the primary, which serves HTTP. */
export function serveWorkerTelemetry(gateway: Gateway): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  observe(gateway, registry);
  answerPrimary(gateway, registry);
}

/**
 * The primary of `--workers N`: the listener for the group (start it before forking the workers),
 * then `attach` once they run: a control plane of its own for the operations and the JetStream
 * figures, the registry for admitting API clients.
 */
export async function startPrimaryHttpSide(config: GatewayConfig, log: Logger): Promise<(HttpSide & { attach(): Promise<void> }) | undefined> {
  const own = new Registry();
  const aggregator = new AggregatorRegistry();
  new Gauge({
    name: "tenant_gateway_workers",
    help: "Gateway worker processes running (--workers N).",
    registers: [own],
    collect() {
      this.set(Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected()).length);
    },
  });
  const server = await listen(config, log, async () => {
    // Metric names of the primary's own registry and of the workers' do not overlap: the texts add up.
    const [workers, primary] = await Promise.all([aggregator.clusterMetrics().catch(() => ""), own.metrics()]);
    return { contentType: own.contentType, body: `${workers.trimEnd()}\n${primary}` };
  });
  if (!server) return undefined;
  let cp: ControlPlane | undefined;
  let directory: TenantDirectory | undefined;
  let stats: JetStreamStats | undefined;
  return {
    server,
    attach: async () => {
      cp = await ControlPlane.openReachable(
        {
          dataDir: config.data_dir,
          servers: config.nats,
          store: config.store,
          ...(config.master_key_file ? { masterKeyFile: config.master_key_file } : {}),
          ...(config.bucket ? { bucket: config.bucket } : {}),
          reconnect: true,
          pollMs: config.registry_poll_ms,
        },
        { waitMs: config.nats_wait_ms, onRetry: (r) => log.warn({ event: "nats_unavailable", attempt: r.attempt, retry_in_ms: r.delayMs, error: r.error.message }, "NATS is not reachable; retrying") },
        "tenant-gateway-admin",
      );
      const tlsMaterial = await loadGatewayTls(cp.layout);
      directory = await TenantDirectory.open(cp.store, tlsMaterial.root, [tlsMaterial.platformCa], log.child({ component: "http" }), { reconcileMs: config.registry_reconcile_ms });
      stats = operationsOn(server, new ClusterRuntime(cp, directory, config.platform.allowed_identities), own, config, log);
    },
    draining: () => server.draining(),
    close: async () => {
      await stats?.stop();
      await server.close();
      directory?.close();
      await cp?.close();
    },
  };
}

/**
 * A nats-server cluster on loopback for the topology tests: three servers in operator mode with the
 * data dir's operator and system account (as `tenant-gateway init` configures one server), each with
 * its own name, client port, route port, full-resolver directory and JetStream store, routed to the
 * other two. This is the documented cluster variant of `init`'s config (README, "Durability"):
 * what changes per server is `server_name`, `listen`, the resolver `dir`, the JetStream
 * `store_dir` and the `cluster` block; operator, system account and resolver type stay.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { operatorModeLines, type OperatorMaterial } from "../../accounts/operator.ts";
import type { DataLayout } from "../../pki/layout.ts";
import { startNatsServer, type RunningNatsServer } from "./nats-server.ts";
import { freePort } from "./cli-process.ts";

export const CLUSTER_NAME = "tenant-gateway";

export interface ClusterNode {
  name: string;
  configFile: string;
  routePort: number;
  server: RunningNatsServer;
}

export interface ClusterOptions {
  /** JetStream's sync interval (nats-server 2.10+; `always` fsyncs every write). Unset: the server's default. */
  syncInterval?: string;
}

/** One server's configuration: `init`'s, made a cluster member. */
export function renderClusterNodeConfig(layout: DataLayout, material: OperatorMaterial, node: { name: string; dir: string; routePort: number; routes: number[] }, opts: ClusterOptions = {}): string {
  const q = (s: string): string => JSON.stringify(s);
  return [
    `server_name: ${q(node.name)}`,
    'listen: "127.0.0.1:-1"',
    "max_payload: 8388608",
    ...operatorModeLines(layout, material, { resolver: path.join(node.dir, "jwt"), jetstream: path.join(node.dir, "js") }, opts.syncInterval ? [`  sync_interval: ${q(opts.syncInterval)}`] : []),
    "cluster: {",
    `  name: ${q(CLUSTER_NAME)}`,
    `  listen: "127.0.0.1:${node.routePort}"`,
    `  routes: [${node.routes.map((p) => q(`nats://127.0.0.1:${p}`)).join(", ")}]`,
    "}",
    'lame_duck_duration: "30s"',
    'lame_duck_grace_period: "5s"',
  ].join("\n");
}

/** Starts `size` servers (together: JetStream's meta group needs a quorum to come up). */
export async function startCluster(layout: DataLayout, material: OperatorMaterial, size = 3, opts: ClusterOptions = {}): Promise<ClusterNode[]> {
  const routePorts: number[] = [];
  for (let i = 0; i < size; i++) routePorts.push(await freePort());
  const configs = await Promise.all(
    routePorts.map(async (routePort, i) => {
      const name = `n${i + 1}`;
      const dir = path.join(layout.natsDir, "cluster", name);
      await fs.mkdir(dir, { recursive: true });
      const configFile = path.join(dir, "nats-server.conf");
      await fs.writeFile(configFile, renderClusterNodeConfig(layout, material, { name, dir, routePort, routes: routePorts.filter((p) => p !== routePort) }, opts) + "\n");
      return { name, configFile, routePort };
    }),
  );
  const servers = await Promise.all(configs.map((c) => startNatsServer(c.configFile, { readyTimeoutMs: 30_000 })));
  return configs.map((c, i) => ({ ...c, server: servers[i]! }));
}

/**
 * Resolves once JetStream answers in the given account (its meta group has a leader); the API
 * answers 503 until then. Polled: nats-server announces no event a client of any account can await.
 */
export async function jetStreamReady(connectAccount: () => Promise<NatsConnection>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    let nc: NatsConnection | undefined;
    try {
      nc = await connectAccount();
      await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 250));
    } finally {
      await nc?.close().catch(() => undefined);
    }
  }
  throw new Error(`JetStream did not come up within ${timeoutMs} ms: ${String(last)}`);
}

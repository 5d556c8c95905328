/**
 * The scale-out topology on loopback: a 3-server nats-server cluster (routes, JetStream, every
 * stream and the KV registry with 3 replicas), two gateway replicas as their own `tenant-gateway
 * serve` processes sharing the KV store, and stock clients (nats v2 and @nats-io/transport-node v3)
 * that know both gateway URLs and publish to JetStream with acks all along. Faults are done to
 * the real processes: SIGKILL, SIGTERM, restart on the same ports with the same stores.
 */
import { X509Certificate } from "node:crypto";
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import { connect as connectV2, type NatsConnection as NatsConnectionV2 } from "nats";
import { connect as connectV3, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, DeliverPolicy } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { ControlPlane } from "../../accounts/control-plane.ts";
import { DEFAULT_REGISTRY_BUCKET } from "../../accounts/kv-store.ts";
import { loadOperator } from "../../accounts/operator.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { AUDIT_STREAM, AUDIT_SUBJECT_PREFIX } from "../../gateway/audit.ts";
import { issueComponentFiles } from "../../pki/authority.ts";
import { DataLayout } from "../../pki/layout.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { BUILTIN_TEMPLATES_DIR, dataDirTemplatesDir } from "../../streams/templates.ts";
import { freePort, startCli, type CliProcess } from "./cli-process.ts";
import type { ClientTls } from "./gateway-fixture.ts";
import { jetStreamReady, startCluster, type ClusterNode } from "./nats-cluster.ts";
import { tempDir } from "./tmp.ts";

export const TENANT = "acme-corp";
const REPLICAS = 3;
const DRAIN_MS = 4000;
const GRACE_MS = 1000;
const AUDIT_MAX_AGE_SECONDS = 30 * 86_400;

/** One gateway replica: a `tenant-gateway serve` process on a fixed port, restartable. */
export class GatewayReplica {
  run: CliProcess | undefined;
  constructor(
    readonly name: string,
    readonly port: number,
    private readonly args: string[],
  ) {}

  get url(): string {
    return `tls://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.run = startCli(["serve", ...this.args, "--listen", `127.0.0.1:${this.port}`], {
      TENANT_GATEWAY_SYNC_ON_START: "false",
      TENANT_GATEWAY_DRAIN_TIMEOUT_MS: String(DRAIN_MS),
      TENANT_GATEWAY_LAME_DUCK_GRACE_MS: String(GRACE_MS),
      TENANT_GATEWAY_CONFIG: "",
      TENANT_GATEWAY_LOG_LEVEL: "info",
      TENANT_GATEWAY_HTTP_LISTEN: "off",
    });
    await this.run.line((l) => l.event === "listening", 90_000);
  }

  /** kill -9. */
  async kill(): Promise<void> {
    const run = this.run;
    if (!run) return;
    run.kill();
    await run.exited;
  }

  /** SIGTERM: lame duck, drain, exit. */
  async terminate(): Promise<{ code: number | null }> {
    const run = this.run!;
    run.child.kill("SIGTERM");
    const { code } = await run.exited;
    return { code };
  }
}

/** A stock client publishing to the tenant's `events` stream, one acknowledged message at a time. */
export interface LoadClient {
  name: string;
  kind: "v2" | "v3";
  /** Sequence numbers NATS acknowledged (stored by the stream). */
  acked: number[];
  failures: number;
  events: Array<{ type: string; at: number }>;
  closedAt: number | undefined;
  /** When the last acknowledgement came. */
  lastAckAt: number;
  close(): Promise<void>;
}

export interface Topology {
  layout: DataLayout;
  nats: ClusterNode[];
  natsUrls: string[];
  gateways: GatewayReplica[];
  tenants: TenantService;
  cp: ControlPlane;
  version: string;
  edge(component: string): Promise<ClientTls>;
  /** A v3 client through the gateways (both URLs), for checks. */
  client(component?: string): Promise<NatsConnection>;
  /** Resolves once every replica of the tenant's streams and of the registry is current (after a node restart). */
  streamsCurrent(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The built-in stream templates with three replicas each, in the data dir where sync and the gateways find them. */
async function replicatedTemplates(layout: DataLayout): Promise<void> {
  const into = dataDirTemplatesDir(layout.dir);
  await fs.mkdir(into, { recursive: true });
  for (const name of (await fs.readdir(BUILTIN_TEMPLATES_DIR)).filter((n) => n.endsWith(".json"))) {
    const template = JSON.parse(await fs.readFile(path.join(BUILTIN_TEMPLATES_DIR, name), "utf8")) as Record<string, unknown>;
    await fs.writeFile(path.join(into, name), JSON.stringify({ ...template, replicas: REPLICAS }, null, 2));
  }
}

export async function startTopology(opts: { syncInterval?: string } = {}): Promise<Topology> {
  const layout = new DataLayout(tempDir("ntg-topology-"));
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  await replicatedTemplates(layout);
  const material = await loadOperator(layout);
  const nats = await startCluster(layout, material, 3, opts.syncInterval ? { syncInterval: opts.syncInterval } : {});
  const natsUrls = nats.map((n) => n.server.url);
  const gateways: GatewayReplica[] = [];
  try {
    return await assemble(layout, nats, natsUrls, gateways);
  } catch (err) {
    // Nothing started here outlives a failed start.
    await Promise.all(gateways.map((g) => g.kill()));
    await Promise.all(nats.map((n) => n.server.stop()));
    throw err;
  }
}

async function assemble(layout: DataLayout, nats: ClusterNode[], natsUrls: string[], gateways: GatewayReplica[]): Promise<Topology> {

  // The PLATFORM account first (a sync on the directory store pushes it), then what lives in it
  // made with three replicas before anything creates it with one: the KV registry and the audit stream.
  const bootstrap = await ControlPlane.open({ dataDir: layout.dir, servers: natsUrls, store: "dir" });
  try {
    await new TenantService(bootstrap, tenantStreamProvisioner).sync();
    const platformUser = (): Promise<NatsConnection> => bootstrap.accountConnection(bootstrap.platform.account, bootstrap.platform.signingKey, "topology-bootstrap");
    await jetStreamReady(platformUser);
    const platform = await platformUser();
    try {
      await new Kvm(platform).create(DEFAULT_REGISTRY_BUCKET, { history: 5, replicas: REPLICAS });
      await (await jetstreamManager(platform)).streams.add({ name: AUDIT_STREAM, subjects: [`${AUDIT_SUBJECT_PREFIX}.>`], max_age: AUDIT_MAX_AGE_SECONDS * 1_000_000_000, max_bytes: -1, num_replicas: REPLICAS, description: "tenant-gateway: cross-tenant access by platform identities" });
    } finally {
      await platform.close();
    }
  } finally {
    await bootstrap.close();
  }

  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: natsUrls, store: "kv", reconnect: true });
  const tenants = new TenantService(cp, tenantStreamProvisioner);
  await tenants.sync();
  await tenants.create(TENANT, { plan: "enterprise" });
  const version = (await cp.system()).info?.version ?? "unknown";

  const serveArgs = ["--data-dir", layout.dir, "--store", "kv", "--nats", natsUrls.join(",")];
  gateways.push(new GatewayReplica("gateway-a", await freePort(), serveArgs), new GatewayReplica("gateway-b", await freePort(), serveArgs));
  await Promise.all(gateways.map((g) => g.start()));

  const root = await fs.readFile(layout.rootCert, "utf8");
  const issued = new Map<string, Promise<ClientTls>>();
  const edge = (component: string): Promise<ClientTls> => {
    let p = issued.get(component);
    if (!p) {
      p = (async () => {
        // The tenant's CA lives sealed in the KV store, not in the data dir.
        const { record, secrets } = await tenants.load(TENANT);
        const ca = { certPem: record.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(record.ca_cert_pem) };
        const { files } = await issueComponentFiles(layout, { tenant: TENANT, component, partition: "site" }, ca);
        return { cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8"), ca: root };
      })();
      issued.set(component, p);
    }
    return p;
  };
  const client = async (component = "checker"): Promise<NatsConnection> => connectV3({ servers: gateways.map((g) => g.url), tls: await edge(component), maxReconnectAttempts: -1 });

  const streamsCurrent = async (timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    const nc = await client();
    const platform = await cp.accountConnection(cp.platform.account, cp.platform.signingKey, "topology-check");
    let last = "";
    try {
      while (Date.now() < deadline) {
        try {
          const infos = [
            ...(await Promise.all(["events", "logs", "telemetry"].map(async (s) => (await jetstreamManager(nc, { timeout: 2000 })).streams.info(s)))),
            ...(await Promise.all([`KV_${DEFAULT_REGISTRY_BUCKET}`, AUDIT_STREAM].map(async (s) => (await jetstreamManager(platform, { timeout: 2000 })).streams.info(s)))),
          ];
          const behind = infos.filter((i) => !i.cluster?.leader || (i.cluster.replicas ?? []).length !== REPLICAS - 1 || (i.cluster.replicas ?? []).some((r) => !r.current || r.offline));
          if (behind.length === 0) return;
          last = behind.map((i) => `${i.config.name}: leader ${i.cluster?.leader ?? "none"}, replicas ${JSON.stringify(i.cluster?.replicas ?? [])}`).join("; ");
        } catch (err) {
          last = String(err);
        }
        // Polled: a replica catching up announces nothing a client can await.
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`streams not current within ${timeoutMs} ms: ${last}`);
    } finally {
      await nc.close();
      await platform.close();
    }
  };

  return {
    layout,
    nats,
    natsUrls,
    gateways,
    tenants,
    cp,
    version,
    edge,
    client,
    streamsCurrent,
    stop: async () => {
      await Promise.all(gateways.map((g) => g.kill()));
      await cp.close().catch(() => undefined);
      await Promise.all(nats.map((n) => n.server.stop()));
    },
  };
}

/**
 * Starts `count` clients (v2 and v3 alternating) that publish `events.load.<client>` with the
 * sequence number as payload and message id, awaiting each acknowledgement; a failed publish is
 * retried with the same sequence (at-least-once; the stream's duplicate window drops a repeat).
 */
export interface Load {
  clients: LoadClient[];
  /** Resolves once `done` holds for every client (checked at each status event and acknowledgement). */
  until(done: (c: LoadClient) => boolean, timeoutMs: number, what: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startLoad(topology: Topology, count: number, opts: { pauseMs?: number } = {}): Promise<Load> {
  const pauseMs = opts.pauseMs ?? 20;
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  let stopping = false;
  const loops: Array<Promise<void>> = [];
  const clients: LoadClient[] = [];
  const servers = topology.gateways.map((g) => g.url);
  for (let i = 0; i < count; i++) {
    const name = `site-${i}`;
    const tls = await topology.edge(name);
    const kind = i % 2 === 0 ? "v2" : "v3";
    const options = { servers, tls, name, maxReconnectAttempts: -1 };
    let publish: (subject: string, data: string, msgID: string) => Promise<unknown>;
    let nc: NatsConnectionV2 | NatsConnection;
    if (kind === "v2") {
      const v2 = await connectV2(options);
      const js = v2.jetstream();
      publish = (subject, data, msgID) => js.publish(subject, new TextEncoder().encode(data), { msgID, timeout: 5000 });
      nc = v2;
    } else {
      const v3 = await connectV3(options);
      const js = jetstream(v3, { timeout: 5000 });
      publish = (subject, data, msgID) => js.publish(subject, data, { msgID });
      nc = v3;
    }
    const client: LoadClient = { name, kind, acked: [], failures: 0, events: [], closedAt: undefined, lastAckAt: Date.now(), close: () => nc.close() };
    clients.push(client);
    void (async () => {
      for await (const s of nc.status() as AsyncIterable<{ type: string }>) {
        client.events.push({ type: s.type, at: Date.now() });
        changes.emit("change");
      }
    })().catch(() => undefined);
    void nc.closed().then(() => {
      client.closedAt = Date.now();
      changes.emit("change");
    });
    loops.push(
      (async () => {
        let seq = 1;
        while (!stopping && client.closedAt === undefined) {
          try {
            await publish(`events.load.${name}`, String(seq), `${name}-${seq}`);
            client.acked.push(seq);
            client.lastAckAt = Date.now();
            changes.emit("change");
            seq++;
            if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
          } catch {
            client.failures++;
            // The load's own pace between attempts, not synchronisation.
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      })(),
    );
  }
  return {
    clients,
    until: (done, timeoutMs, what) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (!clients.every(done)) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          const missing = clients.filter((c) => !done(c));
          reject(new Error(`${what}: ${missing.length} of ${clients.length} clients not there within ${timeoutMs} ms (e.g. ${missing.slice(0, 3).map((c) => `${c.name} ${c.kind} acked ${c.acked.length}, last ack ${Date.now() - c.lastAckAt} ms ago, ${JSON.stringify(c.events.slice(-4))}${c.closedAt ? " closed" : ""}`).join("; ")})`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          changes.off("change", check);
        };
        changes.on("change", check);
        check();
      }),
    stop: async () => {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

/**
 * How long each client that lost its connection at or after `since` took to get it back, counted
 * from `from` (the end of the fault; 0 when it was back before): its first reconnect after its
 * last disconnect. Clients still without one count as Infinity.
 */
export function backAfter(clients: readonly LoadClient[], since: number, from: number): Array<{ name: string; ms: number; downMs: number }> {
  const out: Array<{ name: string; ms: number; downMs: number }> = [];
  for (const c of clients) {
    const disconnects = c.events.filter((e) => e.type === "disconnect" && e.at >= since);
    if (disconnects.length === 0) continue;
    const last = disconnects.at(-1)!.at;
    const back = c.events.find((e) => e.type === "reconnect" && e.at >= last)?.at;
    out.push({ name: c.name, ms: back === undefined ? Infinity : Math.max(0, back - from), downMs: back === undefined ? Infinity : back - disconnects[0]!.at });
  }
  return out;
}

/** Every `events.load.>` message in the tenant's stream: per client, how often each sequence is there. */
export async function storedSequences(topology: Topology): Promise<Map<string, Map<number, number>>> {
  const nc = await topology.client("auditor");
  try {
    const js = jetstream(nc);
    const consumer = await js.consumers.get("events", { filter_subjects: "events.load.>", deliver_policy: DeliverPolicy.All });
    const stored = new Map<string, Map<number, number>>();
    const info = await consumer.info();
    let remaining = info.num_pending;
    const messages = await consumer.consume();
    if (remaining > 0) {
      for await (const m of messages) {
        const name = m.subject.slice("events.load.".length);
        const seq = Number(m.string());
        const perClient = stored.get(name) ?? new Map<number, number>();
        perClient.set(seq, (perClient.get(seq) ?? 0) + 1);
        stored.set(name, perClient);
        if (--remaining === 0 || m.info.pending === 0) break;
      }
    }
    return stored;
  } finally {
    await nc.close();
  }
}

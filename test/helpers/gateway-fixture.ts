/**
 * A running deployment for data-path tests: a data dir made by `init`, a real nats-server in
 * operator mode on a random loopback port, tenants acme-corp and globex with an edge certificate
 * each, the platform admin certificate, and the gateway (in this process, logs captured) on a
 * random loopback port. Stock clients connect to it exactly as an edge site would.
 */
import { EventEmitter } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import { Writable } from "node:stream";
import { connect as connectV2, type NatsConnection as NatsConnectionV2, type ConnectionOptions as ConnectionOptionsV2 } from "nats";
import { connect as connectV3, type NatsConnection as NatsConnectionV3, type NodeConnectionOptions } from "@nats-io/transport-node";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { ControlPlane } from "../../accounts/control-plane.ts";
import { nativeJwtAuthenticator } from "../../accounts/nats-control.ts";
import { NatsFiles } from "../../accounts/operator.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { mintEdgeUser } from "../../accounts/user-jwt.ts";
import { NativeKeyPair } from "../../accounts/native-keys.ts";
import { createLogger } from "../../common/logger.ts";
import { resolveConfig, type GatewayConfig } from "../../gateway/config.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { issueComponentFiles, issuePlatformIdentityFiles } from "../../pki/authority.ts";
import { DataLayout } from "../../pki/layout.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { BUILTIN_TEMPLATES_DIR, dataDirTemplatesDir } from "../../streams/templates.ts";
import { startNatsServer, type RunningNatsServer } from "./nats-server.ts";
import { tempDir } from "./tmp.ts";

export interface ClientTls {
  cert: string;
  key: string;
  ca: string;
}

export interface LogLine {
  event?: string;
  code?: string;
  msg?: string;
  [key: string]: unknown;
}

/** pino writes here; tests read lines and await the ones they expect. */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = [];
  private readonly emitter = new EventEmitter();

  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    for (const text of chunk.toString().split("\n")) {
      if (!text.trim()) continue;
      const line = JSON.parse(text) as LogLine;
      this.lines.push(line);
      this.emitter.emit("line", line);
    }
    done();
  }

  /** Resolves with the first line (already logged or still to come) that matches. */
  waitFor(predicate: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const found = this.lines.find(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.emitter.off("line", onLine);
        reject(new Error(`no matching log line within ${timeoutMs} ms`));
      }, timeoutMs);
      const onLine = (line: LogLine): void => {
        if (!predicate(line)) return;
        clearTimeout(timer);
        this.emitter.off("line", onLine);
        resolve(line);
      };
      this.emitter.on("line", onLine);
    });
  }

  text(): string {
    return this.lines.map((l) => JSON.stringify(l)).join("\n");
  }
}

export interface Deployment {
  layout: DataLayout;
  nats: RunningNatsServer;
  cp: ControlPlane;
  tenants: TenantService;
  gateway: Gateway;
  logs: LogCapture;
  url: string;
  edge(slug: string, component?: string, partition?: string): Promise<ClientTls>;
  admin(): Promise<ClientTls>;
  /** `<name>.platform.serviceradar`, from the platform CA. */
  platformIdentity(name: string): Promise<ClientTls>;
  /** A stock `nats` v2 client through the gateway. */
  v2(tls: ClientTls, opts?: Partial<ConnectionOptionsV2>): Promise<NatsConnectionV2>;
  /** A stock `@nats-io/transport-node` v3 client through the gateway. */
  v3(tls: ClientTls, opts?: Partial<NodeConnectionOptions>): Promise<NatsConnectionV3>;
  /** A user of the tenant's account, connected directly to NATS (bypassing the gateway). */
  direct(slug: string): Promise<NatsConnectionV3>;
  stop(): Promise<void>;
}

/**
 * `streamTemplates`: directories whose templates the deployment uses instead of the built-in ones
 * (copied into `<data-dir>/streams/`, where both provisioning and the gateway find them).
 */
export async function startDeployment(opts: { tenants?: string[]; gateway?: Partial<GatewayConfig>; streamTemplates?: string[]; platformStreamTemplates?: string[] } = {}): Promise<Deployment> {
  const layout = new DataLayout(tempDir("ntg-gw-"));
  await initDataDir(layout, { natsPort: -1 });
  const copyTemplates = async (dirs: string[], into: string): Promise<void> => {
    await fs.mkdir(into, { recursive: true });
    for (const dir of dirs) {
      for (const name of (await fs.readdir(dir)).filter((n) => n.endsWith(".json"))) await fs.copyFile(path.join(dir, name), path.join(into, name));
    }
  };
  // With platform templates of its own, the data dir needs its tenant templates there too.
  if (opts.streamTemplates || opts.platformStreamTemplates) await copyTemplates(opts.streamTemplates ?? [BUILTIN_TEMPLATES_DIR], dataDirTemplatesDir(layout.dir));
  if (opts.platformStreamTemplates) await copyTemplates(opts.platformStreamTemplates, path.join(dataDirTemplatesDir(layout.dir), "platform"));
  const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url], pollMs: 100 });
  const tenants = new TenantService(cp, tenantStreamProvisioner);
  await tenants.sync();
  for (const slug of opts.tenants ?? ["acme-corp", "globex"]) await tenants.create(slug, { plan: "pro" });

  const logs = new LogCapture();
  const config = await resolveConfig({
    env: {},
    flags: { listen: "127.0.0.1:0", nats: nats.url, data_dir: layout.dir, sync_on_start: false, drain_timeout_ms: 2000, log_level: "debug", registry_poll_ms: 100, ...opts.gateway },
  });
  const gateway = await Gateway.start({ ...config }, createLogger({ level: "debug", destination: logs }));
  const url = `tls://127.0.0.1:${gateway.port}`;
  const root = await fs.readFile(layout.rootCert, "utf8");
  const issued = new Map<string, Promise<ClientTls>>();

  const readTls = async (files: { cert: string; key: string; chain: string }): Promise<ClientTls> => ({ cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8"), ca: root });
  const deployment: Deployment = {
    layout,
    nats,
    cp,
    tenants,
    gateway,
    logs,
    url,
    edge: (slug, component = "agent-001", partition = "partition-1") => {
      const key = `${slug}/${component}/${partition}`;
      let p = issued.get(key);
      if (!p) {
        p = issueComponentFiles(layout, { tenant: slug, component, partition }).then((r) => readTls(r.files));
        issued.set(key, p);
      }
      return p;
    },
    admin: () => deployment.platformIdentity("admin"),
    platformIdentity: (name) => {
      let p = issued.get(`platform/${name}`);
      if (!p) {
        p = issuePlatformIdentityFiles(layout, name).then((r) => readTls(r.files));
        issued.set(`platform/${name}`, p);
      }
      return p;
    },
    v2: (tls, o = {}) => connectV2({ servers: url, tls, reconnect: false, ...o }),
    v3: (tls, o = {}) => connectV3({ servers: url, tls, reconnect: false, ...o }),
    direct: async (slug) => {
      const { record, secrets } = await tenants.load(slug);
      const identity = { kind: "edge" as const, cn: `direct.test.${slug}.serviceradar`, tenant: slug, component: "direct", partition: "test", notAfter: new Date(Date.now() + 3_600_000), fingerprint: "direct" };
      const minted = await mintEdgeUser(identity, { account: record.account_public_key, signingKey: NativeKeyPair.fromSeed(secrets.signing_seed) });
      // A full-permission user would need another helper; the tenant's edge permissions are what matter here.
      return connectV3({ servers: nats.url, authenticator: nativeJwtAuthenticator(minted.jwt, minted.user) });
    },
    stop: async () => {
      await gateway.shutdown(0);
      await cp.close();
      await nats.stop();
    },
  };
  return deployment;
}

/**
 * A deployment with several gateway replicas on one tenant store (the directory store or the NATS
 * KV store), as the lifecycle tests need them: a real nats-server in operator mode on a random
 * loopback port, a data dir made by `init`, tenants created through the tenant service, and N
 * gateways in this process, each with its own captured log. Certificates are issued the way the
 * CLI issues them (recorded in the registry's inventory, the CA from the store).
 */
import { promises as fs } from "node:fs";
import { X509Certificate } from "node:crypto";
import { connect as connectV2, type NatsConnection as NatsConnectionV2, type ConnectionOptions } from "nats";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { issueEdge, issuePlatform } from "../../accounts/certificate-lifecycle.ts";
import { ControlPlane, type StoreKind } from "../../accounts/control-plane.ts";
import { NatsFiles } from "../../accounts/operator.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { createLogger } from "../../common/logger.ts";
import { resolveConfig } from "../../gateway/config.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { DataLayout } from "../../pki/layout.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { runCliJson } from "./cli.ts";
import { LogCapture, type ClientTls } from "./gateway-fixture.ts";
import { startNatsServer, type RunningNatsServer } from "./nats-server.ts";
import { tempDir } from "./tmp.ts";

export interface Replica {
  gateway: Gateway;
  logs: LogCapture;
  url: string;
}

export interface ReplicatedDeployment {
  store: StoreKind;
  layout: DataLayout;
  nats: RunningNatsServer;
  cp: ControlPlane;
  tenants: TenantService;
  replicas: Replica[];
  /** The real CLI against this deployment (`--json` added; data dir, store and NATS given). */
  cli<T = Record<string, unknown>>(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; json: T; stderr: string }>;
  edge(slug: string, component: string, partition?: string): Promise<ClientTls & { x509: X509Certificate }>;
  platform(name: string): Promise<ClientTls & { x509: X509Certificate }>;
  /** A stock `nats` v2 client through replica `i`. */
  v2(i: number, tls: ClientTls, opts?: Partial<ConnectionOptions>): Promise<NatsConnectionV2>;
  /** Resolves when replica `i` has applied a change of `slug` logged after `since` (a log line index). */
  changed(i: number, slug: string, since: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startReplicas(opts: { store: StoreKind; replicas?: number; tenants?: string[] }): Promise<ReplicatedDeployment> {
  const layout = new DataLayout(tempDir(`ntg-${opts.store}-`));
  await initDataDir(layout, { natsPort: -1, store: opts.store });
  const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url], store: opts.store, pollMs: 100 });
  const tenants = new TenantService(cp, tenantStreamProvisioner);
  await tenants.sync();
  for (const slug of opts.tenants ?? ["acme-corp"]) await tenants.create(slug, { plan: "pro" });
  const root = await fs.readFile(layout.rootCert, "utf8");

  const replicas: Replica[] = [];
  for (let i = 0; i < (opts.replicas ?? 1); i++) {
    const logs = new LogCapture();
    const config = await resolveConfig({
      env: {},
      flags: { listen: "127.0.0.1:0", nats: nats.url, data_dir: layout.dir, store: opts.store, sync_on_start: false, drain_timeout_ms: 500, log_level: "debug", registry_poll_ms: 100 },
    });
    const gateway = await Gateway.start(config, createLogger({ level: "debug", destination: logs }));
    replicas.push({ gateway, logs, url: `tls://127.0.0.1:${gateway.port}` });
  }

  const tlsOf = async (files: { cert: string; key: string }): Promise<ClientTls & { x509: X509Certificate }> => {
    const cert = await fs.readFile(files.cert, "utf8");
    return { cert, key: await fs.readFile(files.key, "utf8"), ca: root, x509: new X509Certificate(cert) };
  };
  return {
    store: opts.store,
    layout,
    nats,
    cp,
    tenants,
    replicas,
    cli: (args, env = {}) => runCliJson([...args, "--data-dir", layout.dir, "--store", opts.store, "--nats", nats.url], env),
    edge: async (slug, component, partition = "partition-1") => {
      const { record, secrets } = await tenants.load(slug);
      const tenantCa = { certPem: record.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(record.ca_cert_pem) };
      return tlsOf((await issueEdge(layout, cp.store, { tenant: slug, component, partition }, { tenantCa })).files);
    },
    platform: async (name) => tlsOf((await issuePlatform(layout, cp.store, name)).files),
    v2: (i, tls, o = {}) => connectV2({ servers: replicas[i]!.url, tls: { cert: tls.cert, key: tls.key, ca: tls.ca }, reconnect: false, ...o }),
    changed: async (i, slug, since) => {
      const logs = replicas[i]!.logs;
      await logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === slug && logs.lines.indexOf(l) >= since);
    },
    stop: async () => {
      for (const r of replicas) await r.gateway.shutdown(0);
      await cp.close();
      await nats.stop();
    },
  };
}

/**
 * A customer site for leaf tests: a plain, stock nats-server (no operator mode; the binary the suite
 * runs, NATS_SERVER_BIN) configured from the same leaf-site configuration an onboarding bundle
 * carries (gateway/leaf-site-config.ts), with a certificate issued by the tenant's CA, its leafnode
 * remote pointing at the gateway's leaf listener (or anywhere a test says). Local clients connect
 * to it with plain NATS, as a collector on the site would.
 */
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { leafSiteConfig } from "../../gateway/leaf-site-config.ts";
import type { ClientTls, Deployment } from "./gateway-fixture.ts";
import { startNatsServer, type RunningNatsServer } from "./nats-server.ts";
import { tempDir } from "./tmp.ts";

export interface LeafSite {
  dir: string;
  configFile: string;
  server: RunningNatsServer;
  /** Where the site's own clients connect. */
  url: string;
  /** A local client of the site (plain NATS, no certificate, no tenant prefix). */
  client(opts?: Partial<NodeConnectionOptions>): Promise<NatsConnection>;
  stop(): Promise<void>;
}

export interface LeafSiteOptions {
  tenant: string;
  component?: string;
  partition?: string;
  /** Where the leafnode remote connects; default the deployment's leaf listener. */
  gatewayLeafUrl?: string;
  /** JetStream on the site, in its own domain. */
  jetstream?: boolean;
  /** TLS material other than a certificate of the tenant's CA (forged or foreign). */
  tls?: ClientTls;
}

export async function startLeafSite(dep: Deployment, opts: LeafSiteOptions): Promise<LeafSite> {
  const component = opts.component ?? "leaf";
  const partition = opts.partition ?? "site-1";
  const dir = tempDir("ntg-leaf-site-");
  await fs.mkdir(path.join(dir, "certs"), { recursive: true });
  const tls = opts.tls ?? (await dep.edge(opts.tenant, component, partition));
  const certFile = path.join(dir, "certs", "component.pem");
  const keyFile = path.join(dir, "certs", "component-key.pem");
  const caFile = path.join(dir, "certs", "ca-chain.pem");
  await fs.writeFile(certFile, tls.cert);
  await fs.writeFile(keyFile, tls.key, { mode: 0o600 });
  await fs.writeFile(caFile, tls.ca);
  const configFile = path.join(dir, "site.conf");
  const config = leafSiteConfig({
    tenant: opts.tenant,
    gatewayLeafUrl: opts.gatewayLeafUrl ?? `tls://127.0.0.1:${dep.gateway.leafPort}`,
    serverName: `${opts.tenant}-${partition}`,
    listen: "127.0.0.1:-1",
    certFile,
    keyFile,
    caFile,
    ...(opts.jetstream ? { jetstream: { storeDir: path.join(dir, "js"), domain: `site-${partition}` } } : {}),
  });
  await fs.writeFile(configFile, config);
  const server = await startNatsServer(configFile);
  return {
    dir,
    configFile,
    server,
    url: server.url,
    client: (o = {}) => connect({ servers: server.url, ...o }),
    stop: () => server.stop(),
  };
}

/**
 * Resolves once `receive` has seen what `send` sends: sends every `everyMs` until then. Interest
 * crosses a leaf asynchronously; this waits for it through a round trip instead of a sleep.
 */
export async function untilReceived(send: () => void | Promise<void>, received: Promise<unknown>, opts: { timeoutMs?: number; everyMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  let done = false;
  let failure: unknown;
  void received.then(
    () => (done = true),
    (err: unknown) => (failure = err ?? new Error("receiving failed")),
  );
  while (!done) {
    if (failure) throw failure instanceof Error ? failure : new Error(String(failure));
    if (Date.now() > deadline) throw new Error("nothing arrived across the leaf in time");
    await send();
    await Promise.race([received, new Promise((r) => setTimeout(r, opts.everyMs ?? 100))]);
  }
}

/**
 * A TCP relay between a site and the gateway that a test can cut and restore: the site's link to
 * the platform going down and coming back, without touching either end.
 */
export class CuttableLink {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private up = true;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((socket) => this.relay(socket));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", () => resolve()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Drops every relayed connection and refuses new ones until `restore`. */
  cut(): void {
    this.up = false;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.up = true;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private relay(socket: net.Socket): void {
    if (!this.up) return void socket.destroy();
    const upstream = net.connect(this.target.port, this.target.host);
    this.sockets.add(socket).add(upstream);
    socket.pipe(upstream);
    upstream.pipe(socket);
    const drop = (): void => {
      socket.destroy();
      upstream.destroy();
      this.sockets.delete(socket);
      this.sockets.delete(upstream);
    };
    socket.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  }
}

/**
 * The deployment the benchmark measures, all on loopback: a data dir made by `init`, nats-server
 * in operator mode with TLS for direct clients (and plain TCP still allowed, for the gateway's
 * upstream and the pipe), one tenant on the `enterprise` plan (no connection or subscription
 * limit), its edge certificate, a direct user of its account, the gateway as its own
 * `tenant-gateway serve` process, and the pipe baseline as its own process.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { startNatsServer, type RunningNatsServer } from "../accounts/nats-server-process.ts";
import { loadOperator, NatsFiles, renderServerConfig } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { mintEdgeUser } from "../accounts/user-jwt.ts";
import { issueComponentFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import type { PathEndpoint, PathName } from "./paths.ts";

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const PROJECT_ROOT = path.resolve(BENCH_DIR, "..");
const CLI = path.join(PROJECT_ROOT, "bin", "tenant-gateway.js");
const PIPE = path.join(BENCH_DIR, "pipe.ts");

const BENCH_TENANT = "acme-corp";
const SERVER_MAX_PAYLOAD = 8 * 1024 * 1024;
const START_TIMEOUT_MS = 60_000;

/** A child process that logs JSON lines on stdout. */
export class JsonLineProcess {
  readonly child: ChildProcess;
  readonly name: string;
  private readonly waiters = new Set<(line: Record<string, unknown>) => boolean>();
  private stderrTail = "";

  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    // An orchestrator that dies of an error leaves no server running behind it.
    const reap = (): void => void child.kill("SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.off("exit", reap));
    child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-4000);
    });
    readline.createInterface({ input: child.stdout! }).on("line", (text) => {
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { text };
      }
      for (const waiter of [...this.waiters]) if (waiter(line)) this.waiters.delete(waiter);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The first line from now on that matches. */
  waitFor(predicate: (line: Record<string, unknown>) => boolean, timeoutMs = START_TIMEOUT_MS): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => {
        this.waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (${code}) before it was ready: ${this.stderrTail}`));
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        this.child.off("exit", onExit);
        reject(new Error(`${this.name}: no expected log line within ${timeoutMs} ms: ${this.stderrTail}`));
      }, timeoutMs);
      const waiter = (line: Record<string, unknown>): boolean => {
        if (!predicate(line)) return false;
        clearTimeout(timer);
        this.child.off("exit", onExit);
        resolve(line);
        return true;
      };
      this.waiters.add(waiter);
      this.child.once("exit", onExit);
    });
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

export interface BenchDeployment {
  dataDir: string;
  nats: RunningNatsServer;
  natsVersion: string;
  gateway: JsonLineProcess;
  pipe: JsonLineProcess;
  paths: Record<PathName, PathEndpoint>;
  stop(): Promise<void>;
}

export interface DeploymentOptions {
  dataDir: string;
  /** The `tenant-gateway` CLI script to run (another checkout's, to compare a change); default this one's. */
  gatewayCli?: string;
  /** Extra node flags for the gateway process, e.g. `--cpu-prof`. */
  gatewayNodeArgs?: string[];
  gatewayLogLevel?: string;
  /** The gateway's `--tls-first` mode; every gateway client of the benchmark starts TLS at once. */
  gatewayTlsFirst?: "auto" | "always";
  /** The gateway's `--workers` (processes sharing the listener); default 1. */
  gatewayWorkers?: number;
}

/**
 * The tenant, its streams and a direct user, made while nats-server runs without TLS: with TLS
 * available, the control plane's clients would upgrade and not know the root CA.
 */
async function provision(layout: DataLayout): Promise<{ direct: { jwt: string; seed: string }; natsVersion: string }> {
  const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  try {
    const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url] });
    try {
      const tenants = new TenantService(cp, tenantStreamProvisioner);
      await tenants.sync();
      await tenants.create(BENCH_TENANT, { plan: "enterprise" });
      const { record, secrets } = await tenants.load(BENCH_TENANT);
      const identity = { kind: "edge" as const, cn: `bench-direct.p1.${BENCH_TENANT}.serviceradar`, tenant: BENCH_TENANT, component: "bench-direct", partition: "p1", notAfter: new Date(Date.now() + 24 * 3_600_000), fingerprint: "bench-direct" };
      // The permissions the gateway's upstream users get: the direct path pays for the same checks in nats-server.
      const minted = await mintEdgeUser(identity, { account: record.account_public_key, signingKey: NativeKeyPair.fromSeed(secrets.signing_seed) });
      return { direct: { jwt: minted.jwt, seed: minted.user.seedString() }, natsVersion: (await cp.system()).info?.version ?? "unknown" };
    } finally {
      await cp.close();
    }
  } finally {
    await nats.stop();
  }
}

export async function startBenchDeployment(opts: DeploymentOptions): Promise<BenchDeployment> {
  const layout = new DataLayout(opts.dataDir);
  await initDataDir(layout, { natsPort: -1 });
  const { direct, natsVersion } = await provision(layout);
  const edge = await issueComponentFiles(layout, { tenant: BENCH_TENANT, component: "bench", partition: "p1" });
  const ca = await fs.readFile(layout.rootCert, "utf8");
  const edgeTls = { cert: await fs.readFile(edge.files.cert, "utf8"), key: await fs.readFile(edge.files.key, "utf8"), ca };

  // The server certificate is the gateway's own (SANs localhost and 127.0.0.1), sent with its
  // chain so that clients trusting only the root verify it. Without `verify`, nats-server does not
  // ask direct clients for a certificate: they authenticate with their user JWT. `allow_non_tls`
  // keeps plain TCP open on the same port for the gateway's upstream and the pipe.
  const material = await loadOperator(layout);
  const configFile = path.join(new NatsFiles(layout).dir, "bench-nats-server.conf");
  const rendered = renderServerConfig(layout, material, {
    host: "127.0.0.1",
    port: -1,
    maxPayload: SERVER_MAX_PAYLOAD,
    serverName: "tenant-gateway-bench",
    tls: { cert: layout.gatewayChain, key: layout.gatewayKey, ca: layout.rootCert },
  });
  await fs.writeFile(configFile, `${rendered}allow_non_tls: true\n`);
  const nats = await startNatsServer(configFile);
  const started: JsonLineProcess[] = [];
  try {
    const gateway = new JsonLineProcess(
      "gateway",
      spawn(process.execPath, [...(opts.gatewayNodeArgs ?? []), opts.gatewayCli ?? CLI, "serve", "--listen", "127.0.0.1:0", "--nats", nats.url, "--data-dir", layout.dir, "--log-level", opts.gatewayLogLevel ?? "info", "--tls-first", opts.gatewayTlsFirst ?? "always", "--workers", String(opts.gatewayWorkers ?? 1)], {
        // The gateway's control connection (a stock client) upgrades to TLS when NATS offers it.
        env: { ...process.env, TENANT_GATEWAY_SYNC_ON_START: "false", TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "0", NODE_EXTRA_CA_CERTS: layout.rootCert },
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    started.push(gateway);
    const pipe = new JsonLineProcess(
      "pipe",
      spawn(process.execPath, ["--import", "tsx", PIPE, JSON.stringify({ listen: { host: "127.0.0.1", port: 0 }, upstream: { host: "127.0.0.1", port: nats.port }, cert: layout.gatewayChain, key: layout.gatewayKey, ca: layout.rootCert })], {
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
    started.push(pipe);
    const [gatewayListening, pipeListening] = await Promise.all([gateway.waitFor((l) => l.event === "listening"), pipe.waitFor((l) => l.event === "listening")]);

    const tenantPrefix = `${BENCH_TENANT}.`;
    const paths: BenchDeployment["paths"] = {
      // nats-server 2.9 cannot start TLS before INFO; the gateway and the pipe are told to (the
      // handshake order changes connection setup by a round trip, not the data path).
      direct: { name: "direct", host: "127.0.0.1", port: nats.port, tls: { ca }, auth: direct, subjectPrefix: tenantPrefix },
      gateway: { name: "gateway", host: "127.0.0.1", port: Number(gatewayListening.port), tls: { ...edgeTls, handshakeFirst: true }, subjectPrefix: "" },
      pipe: { name: "pipe", host: "127.0.0.1", port: Number(pipeListening.port), tls: { ...edgeTls, handshakeFirst: true }, auth: direct, subjectPrefix: tenantPrefix },
    };
    return {
      dataDir: layout.dir,
      nats,
      natsVersion,
      gateway,
      pipe,
      paths,
      stop: async () => {
        await Promise.all(started.map((p) => p.stop()));
        await nats.stop();
      },
    };
  } catch (err) {
    await Promise.all(started.map((p) => p.stop(1000)));
    await nats.stop();
    throw err;
  }
}

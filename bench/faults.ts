/**
 * `npm run bench:faults` — faults and fairness, the gateway beside direct nats-server in the same
 * run, on loopback (everything shares one machine: read the ratios, not the absolute figures).
 *
 *   npm run bench:faults                     every scenario (reconnect storms of 1,000 and 5,000 clients)
 *   npm run bench:faults -- --quick          the storm with 1,000 clients only, shorter runs
 *   npm run bench:faults -- --only storm,noisy    only these scenarios (storm, outage, slow, noisy, memory)
 *   npm run bench:faults -- --out <file>     where the JSON goes (default bench/results/faults.json)
 *   npm run bench:faults -- --gateway-cli <file>   the gateway to run, e.g. dist/cli/main.js (default the launcher)
 *
 * Scenarios:
 * - storm-N: N clients connected; the server they use (nats-server for direct, the gateway process
 *   for the gateway path) is killed and started again: time from its return until every client is
 *   back, and the handshakes that timed out;
 * - outage: 200 clients; nats-server is down for 5 s: time from its return until every client is back;
 * - slow: a subscriber stops reading while two publishers of its tenant publish to its subject:
 *   the longest a publisher waited, and what it sent, in 8 s;
 * - noisy: globex's request/reply p50/p99 at 500/s, quiet and while acme floods (3 publishers, 128 B),
 *   and with the flooder on a plan rate-limited to 20k msgs/s (gateway only): the p99 ratio flood/quiet per path;
 * - memory: the gateway's RSS idle, with 1,000 clients and 12 s after they closed, 10 cycles
 *   (and nats-server's, for the same cycles on the direct path).
 *
 * The gateway runs as `tenant-gateway serve` (the compiled build when `npm run build` is current:
 * see `runtime` in the results). Prints tables on stdout, progress on stderr.
 */
import { spawn, fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { promises as fs, readFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { connect as connectV3, type NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { nativeJwtAuthenticator } from "../accounts/nats-control.ts";
import { startNatsServer, type RunningNatsServer } from "../accounts/nats-server-process.ts";
import { loadOperator, NatsFiles, renderServerConfig } from "../accounts/operator.ts";
import { parsePlanFile, plansFilePath } from "../accounts/plans.ts";
import { TenantService } from "../accounts/tenants.ts";
import { mintEdgeUser } from "../accounts/user-jwt.ts";
import { issueComponentFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { BENCH_DIR, JsonLineProcess, PROJECT_ROOT } from "./deployment.ts";
import type { FleetEndpoint, FleetReply, FleetRequest } from "./fault-fleet.ts";
import { LoadGenerator } from "./load-generator.ts";
import type { LatencySummary } from "./load-protocol.ts";
import type { PathEndpoint } from "./paths.ts";

const CLI = path.join(PROJECT_ROOT, "bin", "tenant-gateway.js");
/** acme-corp floods, globex is its neighbour; initech floods too, on a rate-limited plan. */
const TENANTS = ["acme-corp", "globex", "initech"] as const;
type Slug = (typeof TENANTS)[number];
/** initech's plan: enterprise, publishing at most this (the rate-limited noisy-neighbour run). */
const METERED = { messages_per_second: 20_000, bytes_per_second: -1 };
const SERVER_MAX_PAYLOAD = 8 * 1024 * 1024;

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    out: { type: "string" },
    "gateway-cli": { type: "string" },
  },
});
const gatewayCli = values["gateway-cli"] ? path.resolve(values["gateway-cli"]) : CLI;
const only = values.only?.split(",").map((s) => s.trim()) ?? ["storm", "outage", "slow", "noisy", "memory"];
const quick = values.quick;
const progress = (text: string): void => void process.stderr.write(`[faults] ${text}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---- The deployment ------------------------------------------------------------------------

interface Tenant {
  slug: Slug;
  /** Edge certificate (gateway path) and a direct user of its account (direct path). */
  edge: { cert: string; key: string };
  direct: { jwt: string; seed: string };
}

interface Deployment {
  layout: DataLayout;
  ca: string;
  nats: RunningNatsServer;
  natsVersion: string;
  gateway: JsonLineProcess;
  gatewayPort: number;
  runtime: string;
  tenants: Record<Slug, Tenant>;
  startGateway(): Promise<void>;
  stop(): Promise<void>;
}

async function provision(layout: DataLayout): Promise<{ tenants: Record<Slug, Tenant>; natsVersion: string }> {
  const file = plansFilePath(layout.dir);
  const plans = parsePlanFile(await fs.readFile(file, "utf8"), file);
  plans.plans.metered = { ...plans.plans.enterprise!, description: "enterprise, publishing rate-limited (fault benchmark)", rate_limits: METERED };
  await fs.writeFile(file, JSON.stringify(plans, null, 2));
  const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  try {
    const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url] });
    try {
      const service = new TenantService(cp, tenantStreamProvisioner);
      await service.sync();
      const tenants = {} as Record<Slug, Tenant>;
      for (const slug of TENANTS) {
        await service.create(slug, { plan: slug === "initech" ? "metered" : "enterprise" });
        const { record, secrets } = await service.load(slug);
        const identity = { kind: "edge" as const, cn: `bench-direct.p1.${slug}.serviceradar`, tenant: slug, component: "bench-direct", partition: "p1", notAfter: new Date(Date.now() + 24 * 3_600_000), fingerprint: `bench-direct-${slug}` };
        const minted = await mintEdgeUser(identity, { account: record.account_public_key, signingKey: NativeKeyPair.fromSeed(secrets.signing_seed) });
        const { files } = await issueComponentFiles(layout, { tenant: slug, component: "bench", partition: "p1" });
        tenants[slug] = { slug, edge: { cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8") }, direct: { jwt: minted.jwt, seed: minted.user.seedString() } };
      }
      return { tenants, natsVersion: (await cp.system()).info?.version ?? "unknown" };
    } finally {
      await cp.close();
    }
  } finally {
    await nats.stop();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

async function startDeployment(): Promise<Deployment> {
  const layout = new DataLayout(await fs.mkdtemp(path.join(os.tmpdir(), "ntg-bench-faults-")));
  await initDataDir(layout, { natsPort: -1 });
  const { tenants, natsVersion } = await provision(layout);
  const ca = await fs.readFile(layout.rootCert, "utf8");
  // Direct clients speak TLS to nats-server (the gateway's certificate and chain); plain TCP stays
  // open on the same port for the gateway's upstream.
  const material = await loadOperator(layout);
  const configFile = path.join(new NatsFiles(layout).dir, "bench-faults-nats-server.conf");
  const rendered = renderServerConfig(layout, material, { host: "127.0.0.1", port: -1, maxPayload: SERVER_MAX_PAYLOAD, serverName: "tenant-gateway-bench-faults", tls: { cert: layout.gatewayChain, key: layout.gatewayKey, ca: layout.rootCert } });
  await fs.writeFile(configFile, `${rendered}allow_non_tls: true\n`);
  const nats = await startNatsServer(configFile);
  const gatewayPort = await freePort();
  const deployment: Deployment = {
    layout,
    ca,
    nats,
    natsVersion,
    gateway: undefined as unknown as JsonLineProcess,
    gatewayPort,
    runtime: "unknown",
    tenants,
    startGateway: async () => {
      const gateway = new JsonLineProcess(
        "gateway",
        spawn(process.execPath, [gatewayCli, "serve", "--listen", `127.0.0.1:${gatewayPort}`, "--nats", nats.url, "--data-dir", layout.dir, "--log-level", "info"], {
          env: { ...process.env, TENANT_GATEWAY_SYNC_ON_START: "false", TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "0", TENANT_GATEWAY_HTTP_LISTEN: "off", TENANT_GATEWAY_CONFIG: "", NODE_EXTRA_CA_CERTS: layout.rootCert },
          stdio: ["ignore", "pipe", "pipe"],
        }),
      );
      deployment.gateway = gateway;
      const listening = await gateway.waitFor((l) => l.event === "listening", 120_000);
      deployment.runtime = String(listening.runtime);
    },
    stop: async () => {
      await deployment.gateway.stop(2000);
      await nats.stop();
    },
  };
  await deployment.startGateway();
  return deployment;
}

function endpoint(dep: Deployment, via: "direct" | "gateway", slug: Slug): FleetEndpoint {
  const t = dep.tenants[slug];
  return via === "direct" ? { servers: [`tls://127.0.0.1:${dep.nats.port}`], tls: { ca: dep.ca }, auth: t.direct } : { servers: [`tls://127.0.0.1:${dep.gatewayPort}`], tls: { ca: dep.ca, ...t.edge } };
}

function pathEndpoint(dep: Deployment, via: "direct" | "gateway", slug: Slug): PathEndpoint {
  const t = dep.tenants[slug];
  return via === "direct"
    ? { name: "direct", host: "127.0.0.1", port: dep.nats.port, tls: { ca: dep.ca }, auth: t.direct, subjectPrefix: `${slug}.` }
    : { name: "gateway", host: "127.0.0.1", port: dep.gatewayPort, tls: { ca: dep.ca, ...t.edge }, subjectPrefix: "" };
}

async function v3(dep: Deployment, via: "direct" | "gateway", slug: Slug): Promise<NatsConnection> {
  const e = endpoint(dep, via, slug);
  return connectV3({ servers: e.servers, tls: e.tls, reconnect: false, ...(e.auth ? { authenticator: nativeJwtAuthenticator(e.auth.jwt, NativeKeyPair.fromSeed(e.auth.seed)) } : {}) });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : NaN;
}

// ---- Fleets of clients in their own processes -----------------------------------------------

class Fleet {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: { ok: boolean; value?: unknown; error?: string }) => void>();

  private constructor(child: ChildProcess) {
    this.child = child;
    child.on("message", (reply: { id: number; ok: boolean; value?: unknown; error?: string }) => {
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
  }

  static async start(): Promise<Fleet> {
    const child = fork(path.join(BENCH_DIR, "fault-fleet.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    await once(child, "spawn");
    return new Fleet(child);
  }

  ask<K extends FleetRequest["op"]>(req: Extract<FleetRequest, { op: K }>): Promise<FleetReply[K]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (reply) => (reply.ok ? resolve(reply.value as FleetReply[K]) : reject(new Error(reply.error))));
      this.child.send({ id, req });
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.disconnect();
    await exited;
  }
}

/** `count` clients over `processes` fleet processes. */
async function fleets(count: number, processes: number, e: FleetEndpoint): Promise<Fleet[]> {
  const started = await Promise.all(Array.from({ length: processes }, () => Fleet.start()));
  await Promise.all(started.map((f, i) => f.ask({ op: "connect", endpoint: e, count: Math.floor(count / processes) + (i < count % processes ? 1 : 0), concurrency: 25 })));
  return started;
}

interface BackSummary {
  clients: number;
  back: number;
  gave_up: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
}

async function allBack(group: Fleet[], since: number, timeoutMs: number): Promise<BackSummary> {
  const replies = await Promise.all(group.map((f) => f.ask({ op: "reconnected", since, timeoutMs })));
  const delays = replies.flatMap((r) => r.delays).sort((a, b) => a - b);
  const q = (p: number): number => delays[Math.min(delays.length - 1, Math.max(0, Math.ceil(p * delays.length) - 1))] ?? NaN;
  return { clients: delays.length + replies.reduce((n, r) => n + r.missing, 0), back: delays.length, gave_up: replies.reduce((n, r) => n + r.gaveUp, 0), p50_ms: q(0.5), p99_ms: q(0.99), max_ms: delays.at(-1) ?? NaN };
}

async function closeFleets(group: Fleet[]): Promise<void> {
  await Promise.all(group.map((f) => f.ask({ op: "close" })));
  await Promise.all(group.map((f) => f.stop()));
}

// ---- Scenarios -----------------------------------------------------------------------------

/** Every client connected; the server it uses killed and started again; until every client is back. */
async function storm(dep: Deployment, via: "direct" | "gateway", count: number): Promise<BackSummary & { handshake_timeouts: number; connect_ms: number }> {
  const processes = Math.max(1, Math.ceil(count / 1250));
  const started = Date.now();
  const group = await fleets(count, processes, endpoint(dep, via, "acme-corp"));
  const connectMs = Date.now() - started;
  let timeouts = 0;
  let since: number;
  if (via === "direct") {
    await dep.nats.restart({ hard: true });
    since = Date.now();
  } else {
    dep.gateway.child.kill("SIGKILL");
    await once(dep.gateway.child, "exit");
    await dep.startGateway();
    since = Date.now();
    const counting = (l: Record<string, unknown>): boolean => {
      if (l.event === "connection_refused" && l.code === "handshake_timeout") timeouts++;
      return false;
    };
    void dep.gateway.waitFor(counting, 600_000).catch(() => undefined);
  }
  const back = await allBack(group, since, 180_000);
  if (via === "direct") timeouts = (dep.nats.log().match(/TLS handshake timeout|Authentication Timeout/gi) ?? []).length;
  await closeFleets(group);
  return { ...back, handshake_timeouts: timeouts, connect_ms: connectMs };
}

/** nats-server away for `downMs`; until every client (through its path) is back after its return. */
async function outage(dep: Deployment, via: "direct" | "gateway", count: number, downMs: number): Promise<BackSummary> {
  const group = await fleets(count, 1, endpoint(dep, via, "acme-corp"));
  dep.nats.process.kill("SIGKILL");
  await once(dep.nats.process, "exit");
  await sleep(downMs);
  await dep.nats.restart();
  const since = Date.now();
  const back = await allBack(group, since, 120_000);
  await closeFleets(group);
  return back;
}

/** A subscriber stops reading; two publishers of its tenant publish 1 KiB to its subject for `windowMs`. */
async function slowConsumer(dep: Deployment, via: "direct" | "gateway", windowMs: number): Promise<{ longest_wait_ms: number; sent: number }> {
  const subject = via === "direct" ? "acme-corp.events.slow" : "events.slow";
  const slow = await v3(dep, via, "acme-corp");
  slow.subscribe(subject, { callback: () => undefined });
  await slow.flush();
  (slow as unknown as { protocol: { transport: { socket: { pause(): void } } } }).protocol.transport.socket.pause();
  const publishers = [await v3(dep, via, "acme-corp"), await v3(dep, via, "acme-corp")];
  const payload = new Uint8Array(1024);
  const end = Date.now() + windowMs;
  const window = sleep(windowMs);
  const results = await Promise.all(
    publishers.map(async (nc) => {
      let sent = 0;
      let longest = 0;
      let last = Date.now();
      while (Date.now() < end) {
        for (let i = 0; i < 100; i++) nc.publish(subject, payload);
        const flushed = await Promise.race([nc.flush().then(() => true, () => false), window.then(() => false)]);
        const now = Date.now();
        longest = Math.max(longest, now - last);
        last = now;
        if (flushed) sent += 100;
        else break;
      }
      return { longest, sent };
    }),
  );
  await Promise.all([...publishers, slow].map((nc) => nc.close().catch(() => undefined)));
  return { longest_wait_ms: Math.max(...results.map((r) => r.longest)), sent: results.reduce((n, r) => n + r.sent, 0) };
}

interface NoisyResult {
  quiet: LatencySummary;
  flood: LatencySummary;
  flood_msgs_per_s: number;
  p99_ratio: number;
}

/** globex's request/reply, quiet and while `flooder` floods from 3 publishers. */
async function noisyNeighbour(dep: Deployment, via: "direct" | "gateway", durationMs: number, flooder: Slug = "acme-corp"): Promise<NoisyResult> {
  const [victim, flood] = [await LoadGenerator.start("globex"), await LoadGenerator.start("acme")];
  try {
    const globex = pathEndpoint(dep, via, "globex");
    const acme = pathEndpoint(dep, via, flooder);
    await victim.run({ op: "respond", path: globex, library: "v2", subject: `${globex.subjectPrefix}svc.echo` });
    const ask = (): Promise<LatencySummary> => victim.run({ op: "request", path: globex, library: "v2", subject: `${globex.subjectPrefix}svc.echo`, size: 128, ratePerSecond: 500, durationMs, warmupMs: 1000 });
    const quiet = await ask();
    const flooding = Promise.all([0, 1, 2].map(() => flood.run({ op: "publish", path: acme, library: "v2", subject: `${acme.subjectPrefix}noise.flood`, size: 128, durationMs: durationMs + 2000, maxMessages: 1e9 })));
    await sleep(500);
    const loud = await ask();
    const thrown = await flooding;
    const floodRate = thrown.reduce((n, t) => n + t.messages / t.seconds, 0);
    return { quiet, flood: loud, flood_msgs_per_s: Math.round(floodRate), p99_ratio: loud.p99_us / quiet.p99_us };
  } finally {
    await victim.stop();
    await flood.stop();
  }
}

/** RSS of `pid` idle, then with 1,000 clients open and after they closed, `cycles` times. */
async function memoryCycles(dep: Deployment, via: "direct" | "gateway", cycles: number): Promise<{ process: string; idle_mb: number; cycles: Array<{ open_mb: number; closed_mb: number }> }> {
  if (via === "gateway") {
    // A fresh process: the storms before grew this one's heap with thousands of clients, and its
    // idle figure would be theirs, not the gateway's.
    await dep.gateway.stop(2000);
    await dep.startGateway();
  }
  const pid = via === "gateway" ? dep.gateway.pid : dep.nats.process.pid!;
  const mb = (b: number): number => Math.round((b / 1048576) * 10) / 10;
  // Settled: a few seconds idle before each sample (neither process can be told to collect garbage).
  await sleep(3000);
  const idle = rssBytes(pid);
  const out: Array<{ open_mb: number; closed_mb: number }> = [];
  for (let c = 0; c < cycles; c++) {
    const group = await fleets(1000, 1, endpoint(dep, via, "acme-corp"));
    await sleep(1000);
    const open = rssBytes(pid);
    await closeFleets(group);
    // The gateway gives a crowd's memory back after memory_relief_ms (10 s) of calm: sampled after it.
    await sleep(12_000);
    out.push({ open_mb: mb(open), closed_mb: mb(rssBytes(pid)) });
    progress(`  ${via} cycle ${c + 1}: open ${mb(open)} MB, closed ${out.at(-1)!.closed_mb} MB`);
  }
  return { process: via === "gateway" ? "gateway" : "nats-server", idle_mb: mb(idle), cycles: out };
}

// ---- Report --------------------------------------------------------------------------------

function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? (Number.isFinite(c) ? String(Math.round(c * 100) / 100) : "n/a") : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? "").length)));
  const line = (r: Array<string | number>): string => r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join("  ");
  return [line(cells[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

function formatResults(r: Record<string, unknown>): string {
  const out: string[] = [`nats-server ${String(r.nats_version)}, gateway runtime ${String(r.gateway_runtime)}`];
  const back = (b: BackSummary | undefined): Array<string | number> => (b ? [`${b.back}/${b.clients}`, b.p50_ms, b.p99_ms, b.max_ms] : ["-", NaN, NaN, NaN]);
  if (r.storm || r.outage) {
    const rows: Array<Array<string | number>> = [];
    for (const [name, v] of Object.entries((r.storm ?? {}) as Record<string, BackSummary & { handshake_timeouts: number }>)) rows.push([name, ...back(v), v.handshake_timeouts]);
    for (const [via, v] of Object.entries((r.outage ?? {}) as Record<string, BackSummary>)) rows.push([`outage-200 ${via}`, ...back(v), "-"]);
    out.push("", "clients back after the server's return (ms)", table(["scenario", "back", "p50", "p99", "max", "handshake timeouts"], rows));
  }
  if (r.slow) {
    const slow = r.slow as Record<string, { longest_wait_ms: number; sent: number }>;
    out.push("", "a subscriber stops reading; two publishers of its tenant (1 KiB)", table(["path", "longest publisher wait ms", "messages sent"], Object.entries(slow).map(([via, v]) => [via, v.longest_wait_ms, v.sent])));
  }
  if (r.noisy) {
    const noisy = r.noisy as Record<string, NoisyResult>;
    const direct = noisy.direct;
    out.push(
      "",
      "globex request/reply at 500/s (µs), quiet and while acme floods",
      table(
        ["path", "quiet p50", "quiet p99", "flood p50", "flood p99", "p99 flood/quiet", "vs direct", "acme msgs/s"],
        Object.entries(noisy).map(([via, v]) => [via, v.quiet.p50_us, v.quiet.p99_us, v.flood.p50_us, v.flood.p99_us, v.p99_ratio, direct ? v.p99_ratio / direct.p99_ratio : NaN, v.flood_msgs_per_s]),
      ),
    );
  }
  if (r.memory) {
    const mem = r.memory as Record<string, { process: string; idle_mb: number; cycles: Array<{ open_mb: number; closed_mb: number }> }>;
    out.push(
      "",
      "RSS (MB) idle, and after each cycle of 1,000 clients opened and closed",
      table(
        ["process", "idle", "open (1st)", ...(mem.gateway?.cycles ?? []).map((_, i) => `closed ${i + 1}`)],
        Object.values(mem).map((m) => [m.process, m.idle_mb, m.cycles[0]?.open_mb ?? NaN, ...m.cycles.map((c) => c.closed_mb)]),
      ),
    );
  }
  return out.join("\n");
}

// ---- Run -----------------------------------------------------------------------------------

const results: Record<string, unknown> = { started_at: new Date().toISOString(), host: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version } };
const file = values.out ?? path.join(BENCH_DIR, "results", "faults.json");
/** Written after every scenario: a run that fails later keeps what it measured. */
const save = (): Promise<void> => fs.writeFile(file, JSON.stringify(results, null, 2) + "\n");
const dep = await startDeployment();
results.nats_version = dep.natsVersion;
results.gateway_runtime = dep.runtime;
progress(`nats-server ${dep.natsVersion}, gateway runtime ${dep.runtime}`);
try {
  if (only.includes("storm")) {
    const sizes = quick ? [1000] : [1000, 5000];
    const storms: Record<string, unknown> = {};
    for (const n of sizes) {
      for (const via of ["direct", "gateway"] as const) {
        progress(`storm-${n} ${via}`);
        storms[`storm-${n} ${via}`] = await storm(dep, via, n);
      }
    }
    results.storm = storms;
    await save();
  }
  if (only.includes("outage")) {
    const out: Record<string, unknown> = {};
    for (const via of ["direct", "gateway"] as const) {
      progress(`outage ${via}`);
      out[via] = await outage(dep, via, 200, 5000);
    }
    results.outage = out;
    await save();
  }
  if (only.includes("slow")) {
    const out: Record<string, unknown> = {};
    for (const via of ["direct", "gateway"] as const) {
      progress(`slow consumer ${via}`);
      out[via] = await slowConsumer(dep, via, quick ? 6000 : 8000);
    }
    results.slow = out;
    await save();
  }
  if (only.includes("noisy")) {
    const duration = quick ? 5000 : 10_000;
    const out: Record<string, unknown> = {};
    for (const via of ["direct", "gateway"] as const) {
      progress(`noisy neighbour ${via}`);
      out[via] = await noisyNeighbour(dep, via, duration);
    }
    progress("noisy neighbour gateway, the flooder on a plan limited to 20k msgs/s");
    out["gateway, flooder at 20k msgs/s"] = await noisyNeighbour(dep, "gateway", duration, "initech");
    results.noisy = out;
    await save();
  }
  if (only.includes("memory")) {
    const out: Record<string, unknown> = {};
    for (const via of ["gateway", "direct"] as const) {
      progress(`memory ${via}`);
      out[via] = await memoryCycles(dep, via, quick ? 3 : 10);
    }
    results.memory = out;
  }
} finally {
  await dep.stop();
}

await save();
process.stdout.write(`${formatResults(results)}\n\nwritten to ${path.relative(process.cwd(), file)}\n`);
process.exit(0);

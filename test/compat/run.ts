/**
 * The compatibility suite: every client program in test/compat/<client>/ drives the scenario list
 * through the gateway, per supported nats-server version, with the edge certificate's leaf alone and
 * with its chain, plus the README's `nats` commands. Results: a table printed here and written to
 * test/compat/results/latest.{json,md}; exit 1 when any cell fails.
 *
 *   node --import tsx test/compat/run.ts [--server 2.9.10,2.15.3] [--client go,node-v3] [--variant leaf|chain]
 *                                        [--scenarios pubsub,kv_watch] [--no-readme] [--keep] [--out DIR]
 */
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, promises as fs } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { errorMessage } from "../../common/coded-error.ts";
import { startDecoyService, type RunningHelper } from "./decoy.ts";
import { CompatDeployment, EDGE_TENANT, OTHER_TENANT, type GatewayLogLine } from "./deployment.ts";
import { CHAIN_SCENARIOS, SCENARIOS, type ScenarioReport, type Variant } from "./lib/scenarios.ts";
import { checkReadmeCommands } from "./readme-check.ts";
import { consoleReport, failed, markdown, type BuildResult, type Cell, type ClientRun, type GatewayLogSummary, type ServerRun, type SuiteResults } from "./report.ts";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "../..");
/** Table column order; a client is run when its directory has a run.sh. */
const KNOWN_CLIENTS = ["node-v2", "node-v3", "go", "rust", "python", "c", "natscli"];
const PROGRAM_TIMEOUT_MS = 120_000;
const BUILD_TIMEOUT_MS = 30 * 60_000;
const STREAM = "events";
const KV = "compat-kv";
const OBJ = "compat-obj";

const { values: args } = parseArgs({
  options: {
    server: { type: "string" },
    client: { type: "string" },
    variant: { type: "string" },
    scenarios: { type: "string" },
    "no-readme": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    out: { type: "string" },
  },
});
/** results/ by default; `--out` keeps a partial run from replacing the suite's latest results. */
const RESULTS = path.resolve(args.out ?? path.join(HERE, "results"));
const csv = (v: string | undefined): string[] | undefined => v?.split(",").map((s) => s.trim()).filter(Boolean);

const toolsDir = process.env.TENANT_GATEWAY_TOOLS || path.join(os.homedir(), ".cache", "tenant-gateway");
const compatCache = path.join(toolsDir, "compat");

function progress(text: string): void {
  process.stderr.write(`[compat ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

function tail(text: string, max = 600): string {
  const t = text.trim();
  return t.length > max ? `…${t.slice(-max)}` : t;
}

function clientsToRun(): string[] {
  const present = KNOWN_CLIENTS.filter((c) => existsSync(path.join(HERE, c, "run.sh")));
  const extra: string[] = [];
  const wanted = csv(args.client);
  if (!wanted) return present;
  for (const c of wanted) if (!present.includes(c)) extra.push(c);
  if (extra.length) throw new Error(`unknown client(s): ${extra.join(", ")} (known: ${present.join(", ")})`);
  return present.filter((c) => wanted.includes(c));
}

function serversToRun(): Array<{ version: string; bin: string }> {
  const listed = execFileSync(path.join(ROOT, "scripts", "nats-servers.sh"), ["list"], { encoding: "utf8" })
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((p): p is [string, string] => p.length === 2)
    .map(([version, bin]) => ({ version, bin }));
  const wanted = csv(args.server);
  if (!wanted) return listed;
  const unknown = wanted.filter((w) => !listed.some((s) => s.version === w));
  if (unknown.length) throw new Error(`unsupported nats-server version(s): ${unknown.join(", ")} (scripts/nats-servers.sh list: ${listed.map((s) => s.version).join(", ")})`);
  return listed.filter((s) => wanted.includes(s.version));
}

function variantsToRun(): Variant[] {
  const v = args.variant;
  if (!v) return ["leaf", "chain"];
  if (v !== "leaf" && v !== "chain") throw new Error(`--variant is leaf or chain, not ${v}`);
  return [v];
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** Runs a client's build.sh (idempotent; quick when already built). */
async function build(client: string): Promise<BuildResult> {
  const started = Date.now();
  const script = path.join(HERE, client, "build.sh");
  if (!existsSync(script)) return { ok: false, duration_ms: 0, detail: `no ${path.relative(ROOT, script)}` };
  await fs.mkdir(path.join(compatCache, client), { recursive: true });
  return new Promise((resolve) => {
    const child = spawn("bash", [script], { cwd: path.join(HERE, client), env: { ...process.env, COMPAT_CACHE: compatCache }, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => killGroup(child.pid, "SIGKILL"), BUILD_TIMEOUT_MS);
    child.once("error", (err) => resolve({ ok: false, duration_ms: Date.now() - started, detail: errorMessage(err) }));
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      const ok = code === 0;
      resolve({ ok, duration_ms: Date.now() - started, detail: ok ? "" : `build.sh exited ${code ?? signal}: ${tail(out)}` });
    });
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (!pid) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

const INTERESTING = new Set(["connection_refused", "jetstream_api_refused", "nats_error", "foreign_subject_dropped", "foreign_reply_dropped", "slow_consumer", "session_internal_error", "admission_failed"]);

/** The gateway's refusals and errors for the sessions of one client run, counted. */
function summarizeGatewayLog(lines: GatewayLogLine[], cns: string[], from: number, to: number): { summary: GatewayLogSummary[]; excerpt: GatewayLogLine[] } {
  const at = (l: GatewayLogLine): number => (typeof l.time === "number" ? l.time : Date.parse(String(l.time ?? "")));
  const sessionEnd = (l: GatewayLogLine): boolean => l.event === "session_closed" && l.reason !== "client closed the connection";
  const excerpt = lines.filter((l) => at(l) >= from && at(l) <= to && (l.cn === undefined || cns.includes(l.cn)) && (INTERESTING.has(l.event ?? "") || (l.level ?? 0) >= 40 || sessionEnd(l)));
  const counted = new Map<string, number>();
  for (const l of excerpt) {
    const what = [l.event ?? "log", l.code, l.api, l.subject, l.error ?? l.reason ?? l.msg].filter((x) => x !== undefined && x !== "").map(String).join(" ");
    counted.set(what, (counted.get(what) ?? 0) + 1);
  }
  return { summary: [...counted].map(([event, count]) => ({ event, count })), excerpt };
}

async function runClient(d: CompatDeployment, server: string, client: string, variant: Variant, scenarios: string[]): Promise<ClientRun> {
  const started = Date.now();
  const edge = d.edge(client, variant);
  const runToken = `${client.replace(/[^a-z0-9]/g, "")}${variant[0]}${randomBytes(3).toString("hex")}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    COMPAT_CACHE: compatCache,
    NTG_URL: d.url,
    NTG_CA: d.rootCa,
    NTG_EDGE_CERT: edge.cert,
    NTG_EDGE_KEY: edge.key,
    NTG_ADMIN_CERT: d.admin.cert,
    NTG_ADMIN_KEY: d.admin.key,
    NTG_TENANT: EDGE_TENANT,
    NTG_MAX_PAYLOAD: String(d.maxPayload),
    NTG_STREAM: STREAM,
    NTG_KV: KV,
    NTG_OBJ: OBJ,
    NTG_RUN: runToken,
    NTG_SCENARIOS: scenarios.length === SCENARIOS.length ? "" : scenarios.join(","),
    NTG_VARIANT: variant,
  };
  const logBase = path.join(RESULTS, "logs", `${server}-${variant}-${client}`);
  const stderrFile = createWriteStream(`${logBase}.stderr`);
  const cells: Record<string, Cell> = {};
  let stderrTail = "";
  let restarts = 0;
  const exit = await new Promise<string>((resolve) => {
    const child = spawn("bash", [path.join(HERE, client, "run.sh")], { cwd: path.join(HERE, client), env, stdio: ["pipe", "pipe", "pipe"], detached: true });
    const timer = setTimeout(() => {
      killGroup(child.pid, "SIGKILL");
    }, PROGRAM_TIMEOUT_MS);
    child.stderr.on("data", (c: Buffer) => {
      stderrFile.write(c);
      stderrTail = (stderrTail + c.toString()).slice(-4000);
    });
    child.stdin.on("error", () => undefined);
    const lines = createInterface({ input: child.stdout });
    let queue = Promise.resolve();
    lines.on("line", (line) => {
      let msg: Partial<ScenarioReport> & { control?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        return;
      }
      if (msg.control === "restart-gateway") {
        queue = queue.then(async () => {
          restarts++;
          progress(`  ${client}: restarting the gateway`);
          try {
            await d.restartGateway();
          } catch (err) {
            progress(`  gateway restart failed: ${errorMessage(err)}`);
          }
          child.stdin.write("restarted\n");
        });
        return;
      }
      if (typeof msg.scenario === "string" && (msg.result === "pass" || msg.result === "fail" || msg.result === "n/a") && !cells[msg.scenario]) {
        cells[msg.scenario] = { result: msg.result, detail: typeof msg.detail === "string" ? msg.detail : "" };
      }
    });
    child.once("error", (err) => {
      clearTimeout(timer);
      resolve(`could not start: ${errorMessage(err)}`);
    });
    // `close`: the process has exited and its stdout is read to the end.
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      void queue.then(() => resolve(signal === "SIGKILL" && Date.now() - started >= PROGRAM_TIMEOUT_MS ? `killed after ${PROGRAM_TIMEOUT_MS / 1000} s` : `exit ${code ?? signal}`));
    });
  });
  stderrFile.end();
  const lastLine = stderrTail.trim().split("\n").slice(-3).join(" / ");
  for (const s of scenarios) {
    cells[s] ??= { result: "fail", detail: `not reported by the program (${exit}${lastLine ? `; stderr: ${tail(lastLine, 300)}` : ""})` };
  }
  if (scenarios.includes("reconnect") && restarts === 0 && cells.reconnect?.result === "pass") {
    cells.reconnect = { result: "fail", detail: "reported pass without asking the harness to restart the gateway" };
  }
  const cn = `compat-${client}.partition-1.${EDGE_TENANT}.serviceradar`;
  const { summary, excerpt } = summarizeGatewayLog(d.logLines, [cn, "admin.platform.serviceradar"], started, Date.now() + 1000);
  await fs.writeFile(`${logBase}.gateway.log`, excerpt.map((l) => JSON.stringify(l)).join("\n") + "\n");
  return { client, variant, duration_ms: Date.now() - started, exit, cells, gateway_log: summary };
}

function failedRun(client: string, variant: Variant, scenarios: string[], why: string): ClientRun {
  return { client, variant, duration_ms: 0, exit: "not run", cells: Object.fromEntries(scenarios.map((s) => [s, { result: "fail", detail: why }])), gateway_log: [] };
}

function scenariosFor(variant: Variant): string[] {
  const filter = csv(args.scenarios);
  const base: readonly string[] = variant === "chain" ? CHAIN_SCENARIOS : SCENARIOS;
  return filter ? base.filter((s) => filter.includes(s)) : [...base];
}

async function runServer(server: { version: string; bin: string }, clients: string[], builds: Record<string, BuildResult>, workRoot: string): Promise<ServerRun> {
  const started = Date.now();
  const result: ServerRun = { version: server.version, bin: server.bin, decoy: "not started", max_payload: 0, duration_ms: 0, runs: [], readme: [] };
  let d: CompatDeployment | undefined;
  let decoy: RunningHelper | undefined;
  try {
    if (!existsSync(server.bin)) throw new Error(`${server.bin} is not installed (scripts/nats-servers.sh install)`);
    progress(`nats-server ${server.version}: starting the deployment`);
    d = await CompatDeployment.start({ serverBin: server.bin, templatesDir: path.join(HERE, "templates"), clients, port: await freePort(), logFile: path.join(RESULTS, "logs", `${server.version}-gateway.log`), workDir: path.join(workRoot, server.version) });
    result.max_payload = d.maxPayload;
    await d.issueEdge("decoy", OTHER_TENANT);
    decoy = await startDecoyService(d.url, d.edge("decoy", "leaf", OTHER_TENANT), d.rootCa);
    result.decoy = decoy.status;
    progress(`  gateway ${d.url}, max_payload ${d.maxPayload}, globex-decoy ${decoy.status}`);
    for (const variant of variantsToRun()) {
      const scenarios = scenariosFor(variant);
      if (scenarios.length === 0) continue;
      for (const client of clients) {
        if (!builds[client]?.ok) {
          result.runs.push(failedRun(client, variant, scenarios, `build failed: ${builds[client]?.detail ?? "not built"}`));
          continue;
        }
        progress(`  ${client} (${variant}): ${scenarios.length} scenarios`);
        const run = await runClient(d, server.version, client, variant, scenarios);
        const tally = Object.values(run.cells).reduce((t, c) => ({ ...t, [c.result]: (t[c.result] ?? 0) + 1 }), {} as Record<string, number>);
        progress(`  ${client} (${variant}): ${JSON.stringify(tally)} in ${(run.duration_ms / 1000).toFixed(1)} s, ${run.exit}`);
        result.runs.push(run);
      }
    }
    if (!args["no-readme"]) {
      const natscli = execFileSync(path.join(ROOT, "scripts", "nats-servers.sh"), ["natscli"], { encoding: "utf8" }).trim();
      if (!existsSync(natscli)) {
        result.readme.push({ command: "(all README commands)", ok: false, detail: `the nats CLI is not installed at ${natscli} (scripts/nats-servers.sh install)` });
      } else {
        progress("  README nats commands");
        result.readme = await checkReadmeCommands({ readmeFile: path.join(ROOT, "README.md"), natscli, deployment: d, workDir: path.join(workRoot, server.version) });
      }
    }
  } catch (err) {
    result.error = errorMessage(err);
    progress(`  deployment failed: ${result.error}`);
  } finally {
    await decoy?.stop().catch(() => undefined);
    if (d) await fs.writeFile(path.join(RESULTS, "logs", `${server.version}-nats.log`), d.natsLog()).catch(() => undefined);
    await d?.stop();
  }
  result.duration_ms = Date.now() - started;
  return result;
}

async function main(): Promise<number> {
  const started = Date.now();
  const clients = clientsToRun();
  const servers = serversToRun();
  await fs.mkdir(path.join(RESULTS, "logs"), { recursive: true });
  const builds: Record<string, BuildResult> = {};
  for (const client of clients) {
    progress(`building ${client}`);
    builds[client] = await build(client);
    progress(`  ${client}: ${builds[client].ok ? "ready" : "FAILED"} in ${(builds[client].duration_ms / 1000).toFixed(1)} s${builds[client].ok ? "" : `: ${builds[client].detail}`}`);
  }
  const workRoot = await fs.mkdtemp(path.join(os.tmpdir(), "ntg-compat-"));
  const results: SuiteResults = { generated: new Date().toISOString(), commit: gitCommit(), duration_ms: 0, clients, builds, servers: [] };
  try {
    for (const server of servers) results.servers.push(await runServer(server, clients, builds, workRoot));
  } finally {
    if (args.keep) progress(`work dir kept: ${workRoot}`);
    else await fs.rm(workRoot, { recursive: true, force: true });
  }
  results.duration_ms = Date.now() - started;
  await fs.writeFile(path.join(RESULTS, "latest.json"), JSON.stringify(results, null, 2) + "\n");
  await fs.writeFile(path.join(RESULTS, "latest.md"), markdown(results) + "\n");
  process.stdout.write(consoleReport(results) + "\n");
  progress(`results: ${path.relative(process.cwd(), path.join(RESULTS, "latest.md"))}, logs in ${path.relative(process.cwd(), path.join(RESULTS, "logs"))}/`);
  return failed(results) ? 1 : 0;
}

function gitCommit(): string {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`compat: ${errorMessage(err)}\n`);
    process.exit(2);
  },
);

/**
 * `tenant-gateway serve` as its own process, the way an operator runs it: JSON logs on stdout,
 * lame duck on SIGTERM (clients told with INFO `ldm: true`, new connections refused, exit 0 within
 * the drain timeout), and a clear one-line failure for a broken config or an unreachable NATS.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import readline from "node:readline";
import test from "ava";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { issueComponentFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { jemallocLibrary } from "./helpers/allocator.ts";
import { SHUTDOWN_STEP_MS } from "../gateway/gateway.ts";
import { CLI } from "./helpers/cli.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const DRAIN_TIMEOUT_MS = 3000;
/** Start-up of a fresh process (tsx transpiles the sources first) and the shutdown after the drain. */
const PROCESS_MARGIN_MS = 5000;

let layout: DataLayout;
let nats: RunningNatsServer;
let edgeTls: { cert: string; key: string; ca: string };

test.before(async () => {
  layout = new DataLayout(tempDir("ntg-proc-"));
  await initDataDir(layout, { natsPort: -1 });
  nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url] });
  try {
    const tenants = new TenantService(cp, tenantStreamProvisioner);
    await tenants.sync();
    await tenants.create("acme-corp", { plan: "pro" });
    const { files } = await issueComponentFiles(layout, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
    edgeTls = { cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8"), ca: await fs.readFile(layout.rootCert, "utf8") };
  } finally {
    await cp.close();
  }
});

test.after.always(async () => {
  await nats?.stop();
});

interface Serve {
  child: ChildProcess;
  /** Every JSON line the process logged on stdout so far. */
  lines: Record<string, unknown>[];
  stderr: () => string;
  /** The first logged line (so far or to come) that matches. */
  line(predicate: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function serve(args: string[], env: NodeJS.ProcessEnv = {}): Serve {
  const child = spawn(process.execPath, [CLI, "serve", ...args], { env: { ...process.env, TENANT_GATEWAY_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS), ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const reader = readline.createInterface({ input: child.stdout! });
  const listeners = new Set<() => void>();
  reader.on("line", (text) => {
    try {
      lines.push(JSON.parse(text) as Record<string, unknown>);
    } catch {
      lines.push({ text });
    }
    for (const l of listeners) l();
  });
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    line: (predicate, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = lines.find(predicate);
          if (!found) return false;
          cleanup();
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no such log line within ${timeoutMs} ms; stdout: ${JSON.stringify(lines).slice(-2000)}; stderr: ${stderr}`));
        }, timeoutMs);
        const onExit = (): void => {
          if (check()) return;
          cleanup();
          reject(new Error(`the process exited first; stdout: ${JSON.stringify(lines).slice(-2000)}; stderr: ${stderr}`));
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          listeners.delete(listener);
          child.off("exit", onExit);
        };
        const listener = (): void => void check();
        if (check()) return;
        listeners.add(listener);
        child.once("exit", onExit);
      }),
  };
}

/** Runs `serve` to its end (or kills it after `timeoutMs`): exit code and stderr. */
async function serveToEnd(args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const run = serve(args);
  const timer = setTimeout(() => run.child.kill("SIGKILL"), timeoutMs);
  const { code } = await run.exited;
  clearTimeout(timer);
  return { code, stderr: run.stderr(), stdout: run.lines.map((l) => JSON.stringify(l)).join("\n") };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function refusedConnection(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

test("SIGTERM: clients get INFO with ldm, new connections are refused, and the process exits 0 within the drain timeout", async (t) => {
  const run = serve(["--listen", "127.0.0.1:0", "--nats", nats.url, "--data-dir", layout.dir], { TENANT_GATEWAY_SYNC_ON_START: "false" });
  t.teardown(() => {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  });
  const listening = await run.line((l) => l.event === "listening");
  const port = listening.port as number;
  t.true(port > 0);

  const nc: NatsConnection = await connect({ servers: `tls://127.0.0.1:${port}`, tls: edgeTls, reconnect: false });
  t.teardown(() => nc.close());
  const sub = nc.subscribe("events.process", { max: 1 });
  nc.publish("events.process", "before SIGTERM");
  t.is((await sub[Symbol.asyncIterator]().next()).value?.string(), "before SIGTERM", "the session works before the signal");
  const lameDuck = (async () => {
    for await (const s of nc.status()) if (s.type === "ldm") return true;
    return false;
  })();

  const signalled = Date.now();
  run.child.kill("SIGTERM");
  t.true(await within(lameDuck, DRAIN_TIMEOUT_MS, "INFO with ldm"), "the client was told the gateway is going away (INFO ldm: true)");
  t.is(await refusedConnection(port), "ECONNREFUSED", "no new connections once in lame duck mode");
  const { code, signal } = await within(run.exited, DRAIN_TIMEOUT_MS + PROCESS_MARGIN_MS, "the process exiting");
  const took = Date.now() - signalled;
  t.is(signal, null);
  t.is(code, 0, run.stderr());
  t.true(took < DRAIN_TIMEOUT_MS + PROCESS_MARGIN_MS, `exited ${took} ms after SIGTERM`);
  t.truthy(run.lines.find((l) => l.event === "lame_duck"));
  t.truthy(run.lines.find((l) => l.event === "stopped"));
});

test("a config file that is not valid YAML: non-zero exit, one line naming the file", async (t) => {
  const file = path.join(tempDir("ntg-conf-"), "broken.yaml");
  await fs.writeFile(file, "listen: [127.0.0.1:0\nnats: {\n");
  const r = await serveToEnd(["--config", file, "--data-dir", layout.dir]);
  t.not(r.code, 0);
  const lines = r.stderr.trim().split("\n");
  t.is(lines.length, 1, r.stderr);
  t.true(lines[0]!.includes(file), lines[0]);
  t.regex(lines[0]!, /YAML/);
});

test("a config file with an unknown key: non-zero exit, one line naming the file and the key", async (t) => {
  const file = path.join(tempDir("ntg-conf-"), "unknown-key.yaml");
  await fs.writeFile(file, `listen: 127.0.0.1:0\nnats: ${nats.url}\nslow_consumer_msec: 500\n`);
  const r = await serveToEnd(["--config", file, "--data-dir", layout.dir]);
  t.not(r.code, 0);
  const lines = r.stderr.trim().split("\n");
  t.is(lines.length, 1, r.stderr);
  t.true(lines[0]!.includes(file), lines[0]);
  t.true(lines[0]!.includes("slow_consumer_msec"), lines[0]);
});

test("an unreachable NATS past --nats-wait-ms: non-zero exit, naming the URL", async (t) => {
  const closed = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const url = `nats://127.0.0.1:${closed}`;
  // Without a limit the gateway waits for NATS (retrying with backoff), as a service should.
  const r = await serveToEnd(["--listen", "127.0.0.1:0", "--nats", url, "--data-dir", layout.dir, "--nats-wait-ms", "1000"]);
  t.not(r.code, 0, "exits by itself, with a failure");
  t.true(r.stderr.includes(url), r.stderr);
  t.is(r.stderr.trim().split("\n").length, 1, r.stderr);
});

test("--workers 2: two gateway processes share the port, sessions spread over both, SIGTERM stops all with exit 0", async (t) => {
  const run = serve(["--listen", "127.0.0.1:0", "--nats", nats.url, "--data-dir", layout.dir, "--workers", "2"], { TENANT_GATEWAY_SYNC_ON_START: "false" });
  t.teardown(() => {
    if (run.child.exitCode === null) run.child.kill("SIGKILL");
  });
  await run.line((l) => l.event === "workers_started" && l.workers === 2);
  const first = await run.line((l) => l.event === "listening");
  await run.line((l) => l.event === "listening" && l.pid !== first.pid);
  const port = first.port as number;
  t.is(run.lines.filter((l) => l.event === "listening").map((l) => l.port).filter((p) => p !== port).length, 0, "one port for both");

  const clients: NatsConnection[] = [];
  t.teardown(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });
  const pids = new Set<unknown>();
  // The cluster hands connections round-robin; a handful reaches both workers.
  for (let i = 0; i < 6 && pids.size < 2; i++) {
    const nc = await connect({ servers: `tls://127.0.0.1:${port}`, tls: edgeTls, reconnect: false, name: `worker-client-${i}` });
    clients.push(nc);
    await nc.flush();
    const accepted = run.lines.filter((l) => l.event === "connection_accepted");
    for (const l of accepted) pids.add(l.pid);
  }
  t.is(pids.size, 2, "sessions on both workers");
  // Sessions meet in NATS, not in a gateway process: one tenant's sessions reach each other whichever worker holds them.
  const [a, b] = [clients[0]!, clients[clients.length - 1]!];
  const sub = b.subscribe("events.cross-worker", { max: 1 });
  await b.flush();
  a.publish("events.cross-worker", "hello");
  t.is((await sub[Symbol.asyncIterator]().next()).value?.string(), "hello");

  run.child.kill("SIGTERM");
  // Each worker drains, then closes its audit flush and control connection (SHUTDOWN_STEP_MS each at most).
  const bound = DRAIN_TIMEOUT_MS + 2 * SHUTDOWN_STEP_MS + PROCESS_MARGIN_MS;
  const shutdownLines = (): string => JSON.stringify(run.lines.filter((l) => /shutdown|drain|worker|exit|stop/.test(String(l.event))));
  const { code } = await within(run.exited, bound, "the primary exiting").catch((err: Error) => {
    throw new Error(`${err.message}; shutdown log: ${shutdownLines()}`);
  });
  t.is(code, 0, run.stderr());
});

test("the listening line names the C allocator: jemalloc when preloaded, else the system's, with a hint", async (t) => {
  const library = jemallocLibrary();
  if (!library) return t.fail("libjemalloc.so.2 is not installed (.ci/run installs libjemalloc2)");
  const args = ["--listen", "127.0.0.1:0", "--nats", nats.url, "--data-dir", layout.dir];
  for (const [env, allocator] of [[{}, "system"], [{ LD_PRELOAD: library }, "jemalloc"]] as const) {
    const run = serve(args, { TENANT_GATEWAY_SYNC_ON_START: "false", ...env });
    t.teardown(() => {
      if (run.child.exitCode === null) run.child.kill("SIGKILL");
    });
    const listening = await run.line((l) => l.event === "listening");
    t.is(listening.allocator, allocator);
    // The hint comes before "listening", so it has been read by now if it was logged.
    t.is(run.lines.some((l) => l.event === "allocator_hint"), allocator === "system", `hint with ${allocator}`);
    run.child.kill("SIGTERM");
    t.is((await run.exited).code, 0);
  }
});

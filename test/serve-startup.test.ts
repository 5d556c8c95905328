/**
 * Start-up of `tenant-gateway serve` and `dev` as processes, the way systemd or Kubernetes see
 * them: a gateway that can never serve (its address taken or invalid, a worker that cannot start)
 * says so in one line and exits 1 at once, before it contacts NATS or syncs anything; a NATS that
 * is not up yet is waited for, with backoff and a log line per attempt, and nothing listens until
 * it answers.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { connect } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { exportDataPlane } from "../accounts/data-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { issueComponentFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { busyPort, freePort, probeConnect, runToEnd, startCli } from "./helpers/cli-process.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

/** Well past a process's start-up (tsx transpiling the sources), far below "hangs". */
const PROMPT_EXIT_MS = 15_000;

interface Site {
  layout: DataLayout;
  nats: RunningNatsServer;
  edgeTls: { cert: string; key: string; ca: string };
}

/** A data dir with tenant acme-corp and an edge certificate, its NATS running. */
async function site(): Promise<Site> {
  const layout = new DataLayout(tempDir("ntg-start-"));
  await initDataDir(layout, { natsPort: -1 });
  const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url] });
  try {
    const tenants = new TenantService(cp, tenantStreamProvisioner);
    await tenants.sync();
    await tenants.create("acme-corp", { plan: "pro" });
  } finally {
    await cp.close();
  }
  const { files } = await issueComponentFiles(layout, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
  return { layout, nats, edgeTls: { cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8"), ca: await fs.readFile(layout.rootCert, "utf8") } };
}

let shared: Site;

test.before(async () => {
  shared = await site();
});

test.after.always(async () => {
  await shared?.nats.stop();
});

function oneLine(t: { is: (a: unknown, b: unknown, m?: string) => void }, stderr: string): string {
  const lines = stderr.trim().split("\n");
  t.is(lines.length, 1, `one line on stderr, got: ${stderr}`);
  return lines[0]!;
}

test("serve on a busy port: exit 1 at once with one line, before any sync or wait for NATS", async (t) => {
  const busy = await busyPort();
  t.teardown(busy.release);
  const closed = await freePort();
  for (const nats of [shared.nats.url, `nats://127.0.0.1:${closed}`]) {
    const r = await runToEnd(["serve", "--data-dir", shared.layout.dir, "--listen", `127.0.0.1:${busy.port}`, "--nats", nats], {}, PROMPT_EXIT_MS);
    t.false(r.timedOut, `serve against ${nats} did not exit by itself`);
    t.is(r.code, 1, r.stderr);
    const line = oneLine(t, r.stderr);
    t.regex(line, /^error: cannot listen on 127\.0\.0\.1:\d+: the address is in use \(EADDRINUSE\) \[listen_failed\]$/);
    t.deepEqual(
      r.lines.filter((l) => l.event === "sync" || l.event === "nats_unavailable"),
      [],
      "the listen address is checked before NATS is contacted",
    );
  }
});

test("serve with an invalid listen port: exit 1 at once with one line", async (t) => {
  const r = await runToEnd(["serve", "--data-dir", shared.layout.dir, "--listen", "127.0.0.1:70000", "--nats", shared.nats.url], {}, PROMPT_EXIT_MS);
  t.false(r.timedOut, "did not exit by itself");
  t.is(r.code, 1, r.stderr);
  t.regex(oneLine(t, r.stderr), /^error: listen address "127\.0\.0\.1:70000": the port must be a number from 0 to 65535 .*\[invalid_config\]$/);
  t.deepEqual(r.lines.filter((l) => l.event === "sync"), []);
});

test("serve --workers 2 on a busy port: exit 1 at once with one line", async (t) => {
  const busy = await busyPort();
  t.teardown(busy.release);
  const r = await runToEnd(["serve", "--data-dir", shared.layout.dir, "--listen", `127.0.0.1:${busy.port}`, "--nats", shared.nats.url, "--workers", "2"], {}, PROMPT_EXIT_MS);
  t.false(r.timedOut, "did not exit by itself");
  t.is(r.code, 1, r.stderr);
  t.regex(oneLine(t, r.stderr), /\[listen_failed\]$/);
  t.deepEqual(r.lines.filter((l) => l.event === "sync" || l.event === "workers_started"), []);
});

test("serve --workers 2 whose workers cannot start: the primary reports the error once and exits 1", async (t) => {
  // A data-plane copy without the gateway's private key: the primary's checks pass, each worker fails.
  const broken = new DataLayout(tempDir("ntg-nokey-"));
  await exportDataPlane(shared.layout, broken, { store: "dir" });
  await fs.rm(broken.gatewayKey);
  const r = await runToEnd(["serve", "--data-dir", broken.dir, "--listen", "127.0.0.1:0", "--nats", shared.nats.url, "--workers", "2"], {}, 30_000);
  t.false(r.timedOut, "did not exit by itself (workers replaced forever?)");
  t.is(r.code, 1, r.stderr);
  t.is(oneLine(t, r.stderr), `error: gateway private key not found: ${broken.gatewayKey} [file_not_found]`);
  t.deepEqual(r.lines.filter((l) => l.event === "worker_exited"), [], "a worker that never started is not replaced");
});

test("dev with its listen address taken: exit 1 at once with one line, nothing started", async (t) => {
  const busy = await busyPort();
  t.teardown(busy.release);
  const dataDir = path.join(tempDir("ntg-dev-"), "data");
  const r = await runToEnd(["dev", "--data-dir", dataDir, "--listen", `127.0.0.1:${busy.port}`], {}, PROMPT_EXIT_MS);
  t.false(r.timedOut, "did not exit by itself");
  t.is(r.code, 1, r.stderr);
  t.regex(oneLine(t, r.stderr), /\[listen_failed\]$/);
  await t.throwsAsync(fs.access(dataDir), undefined, "no data dir, no NATS: the address was checked first");
});

test("NATS down at start-up: retried with backoff and logged, nothing listens meanwhile, clients served once NATS is up", async (t) => {
  const own = await site();
  const natsPort = own.nats.port;
  await own.nats.stop();
  const listenPort = await freePort();
  const run = startCli(["serve", "--data-dir", own.layout.dir, "--listen", `127.0.0.1:${listenPort}`, "--nats", `nats://127.0.0.1:${natsPort}`]);
  t.teardown(() => run.kill());

  const first = await run.line((l) => l.event === "nats_unavailable" && l.attempt === 1);
  const second = await run.line((l) => l.event === "nats_unavailable" && l.attempt === 2);
  t.is(first.level, 40, "a warning");
  t.true((second.retry_in_ms as number) > (first.retry_in_ms as number), "backoff grows");
  t.regex(String(second.error), new RegExp(`cannot reach NATS at nats://127\\.0\\.0\\.1:${natsPort}`));
  t.is(await probeConnect(listenPort), "ECONNREFUSED", "not listening (not ready) while NATS is down");
  t.is(run.child.exitCode, null, "still running");

  const restarted = await startNatsServer(new NatsFiles(own.layout).serverConfig, { port: natsPort });
  t.teardown(() => restarted.stop());
  const listening = await run.line((l) => l.event === "listening");
  t.is(listening.port, listenPort);
  const nc = await connect({ servers: `tls://127.0.0.1:${listenPort}`, tls: own.edgeTls, reconnect: false });
  t.teardown(() => nc.close());
  const sub = nc.subscribe("events.after-wait", { max: 1 });
  nc.publish("events.after-wait", "served");
  t.is((await sub[Symbol.asyncIterator]().next()).value?.string(), "served");

  run.child.kill("SIGTERM");
  t.is((await run.exited).code, 0, run.stderr());
});

test("NATS down beyond --nats-wait-ms: exit 1 with one line naming the URL, each attempt logged", async (t) => {
  const closed = await freePort();
  const url = `nats://127.0.0.1:${closed}`;
  const r = await runToEnd(["serve", "--data-dir", shared.layout.dir, "--listen", "127.0.0.1:0", "--nats", url, "--nats-wait-ms", "1500"], {}, PROMPT_EXIT_MS);
  t.false(r.timedOut, "did not exit by itself");
  t.is(r.code, 1, r.stderr);
  const line = oneLine(t, r.stderr);
  t.true(line.includes(url), line);
  t.regex(line, /gave up after \d+ attempts .*\[nats_unreachable\]$/);
  t.true(r.lines.filter((l) => l.event === "nats_unavailable").length >= 2, JSON.stringify(r.lines));
  t.deepEqual(r.lines.filter((l) => l.event === "listening"), []);
});

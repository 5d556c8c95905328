/**
 * Graceful shutdown within Kubernetes' default termination grace (30 s): on SIGTERM the gateway
 * drains lame-duck clients for `drain_timeout_ms` — 20 s by default, so the pod exits by itself
 * instead of being killed mid-drain — then closes the rest and exits 0. The value comes from the
 * config file, TENANT_GATEWAY_DRAIN_TIMEOUT_MS or --drain-timeout-ms, each later one winning.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { DEFAULT_CONFIG, resolveConfig } from "../gateway/config.ts";
import { issueComponentFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { startCli, type CliProcess } from "./helpers/cli-process.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

/** Kubernetes' default terminationGracePeriodSeconds. */
const KUBERNETES_GRACE_MS = 30_000;
/** From the end of the drain to the process's exit (closing sessions, NATS connections). */
const EXIT_MARGIN_MS = 4_000;

let layout: DataLayout;
let nats: RunningNatsServer;
let edgeTls: { cert: string; key: string; ca: string };

test.before(async () => {
  layout = new DataLayout(tempDir("ntg-drain-"));
  await initDataDir(layout, { natsPort: -1 });
  nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url] });
  try {
    const tenants = new TenantService(cp, tenantStreamProvisioner);
    await tenants.sync();
    await tenants.create("acme-corp", { plan: "pro" });
  } finally {
    await cp.close();
  }
  const { files } = await issueComponentFiles(layout, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
  edgeTls = { cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8"), ca: await fs.readFile(layout.rootCert, "utf8") };
});

test.after.always(async () => {
  await nats?.stop();
});

function serve(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  return startCli(["serve", "--data-dir", layout.dir, "--listen", "127.0.0.1:0", "--nats", nats.url, ...args], {
    TENANT_GATEWAY_SYNC_ON_START: "false",
    TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "",
    TENANT_GATEWAY_CONFIG: "",
    ...env,
  });
}

/** SIGTERM with a client that stays connected (a lame-duck INFO does not make it leave): how long until the exit, and the lame-duck line. */
async function drainWithStayingClient(run: CliProcess): Promise<{ tookMs: number; code: number | null; drainMs: unknown; clientClosed: boolean }> {
  const listening = await run.line((l) => l.event === "listening");
  const nc: NatsConnection = await connect({ servers: `tls://127.0.0.1:${listening.port as number}`, tls: edgeTls, reconnect: false });
  await nc.flush();
  const signalled = Date.now();
  run.child.kill("SIGTERM");
  const lameDuck = await run.line((l) => l.event === "lame_duck");
  const { code } = await run.exited;
  const tookMs = Date.now() - signalled;
  const clientClosed = await Promise.race([nc.closed().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
  await nc.close().catch(() => undefined);
  return { tookMs, code, drainMs: lameDuck.drain_ms, clientClosed };
}

test("the default drain is 20 s: below Kubernetes' 30 s termination grace, with room to exit", (t) => {
  t.is(DEFAULT_CONFIG.drain_timeout_ms, 20_000);
  t.true(DEFAULT_CONFIG.drain_timeout_ms + EXIT_MARGIN_MS < KUBERNETES_GRACE_MS);
});

test("drain_timeout_ms: config file < TENANT_GATEWAY_DRAIN_TIMEOUT_MS < --drain-timeout-ms", async (t) => {
  const file = path.join(tempDir("ntg-drain-cfg-"), "gateway.yaml");
  await fs.writeFile(file, "drain_timeout_ms: 1300\n");
  t.is((await resolveConfig({ env: {} })).drain_timeout_ms, 20_000);
  t.is((await resolveConfig({ file, env: {} })).drain_timeout_ms, 1300);
  t.is((await resolveConfig({ file, env: { TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "1200" } })).drain_timeout_ms, 1200);
  t.is((await resolveConfig({ file, env: { TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "1200" }, flags: { drain_timeout_ms: 1100 } })).drain_timeout_ms, 1100);
});

test("serve: each source of the drain timeout reaches the lame-duck shutdown (config file, env, flag)", async (t) => {
  const file = path.join(tempDir("ntg-drain-cfg-"), "gateway.yaml");
  await fs.writeFile(file, "drain_timeout_ms: 1300\n");
  const cases: Array<[string[], NodeJS.ProcessEnv, number]> = [
    [["--config", file], {}, 1300],
    [["--config", file], { TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "1200" }, 1200],
    [["--config", file, "--drain-timeout-ms", "1100"], { TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "1200" }, 1100],
  ];
  for (const [args, env, expected] of cases) {
    const run = serve(args, env);
    t.teardown(() => run.kill());
    await run.line((l) => l.event === "listening");
    run.child.kill("SIGTERM");
    t.is((await run.line((l) => l.event === "lame_duck")).drain_ms, expected, args.join(" "));
    t.is((await run.exited).code, 0, run.stderr());
  }
});

test("--drain-timeout-ms: SIGTERM with a client that stays, exit 0 once that drain is over", async (t) => {
  const run = serve(["--drain-timeout-ms", "1500"]);
  t.teardown(() => run.kill());
  const r = await drainWithStayingClient(run);
  t.is(r.drainMs, 1500);
  t.is(r.code, 0, run.stderr());
  t.true(r.tookMs >= 1500, `exited ${r.tookMs} ms after SIGTERM: before the drain was over`);
  t.true(r.tookMs < 1500 + EXIT_MARGIN_MS, `exited ${r.tookMs} ms after SIGTERM`);
  t.true(r.clientClosed, "the client that stayed was disconnected");
});

test("the default drain: SIGTERM with a client that stays, exit 0 within Kubernetes' grace", async (t) => {
  const run = serve([]);
  t.teardown(() => run.kill());
  const r = await drainWithStayingClient(run);
  t.is(r.drainMs, 20_000);
  t.is(r.code, 0, run.stderr());
  t.true(r.tookMs >= 20_000, `exited ${r.tookMs} ms after SIGTERM: before the drain was over`);
  t.true(r.tookMs < KUBERNETES_GRACE_MS - 5_000, `exited ${r.tookMs} ms after SIGTERM: too close to the 30 s kill`);
});

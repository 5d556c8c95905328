/**
 * The serving gateway needs only the data-plane part of a data dir: CA certificates, its own
 * server key and certificate, the account signing keys and where NATS is. `tenant-gateway export
 * dataplane <dir>` writes that part and nothing else (no root or CA private keys, no operator or
 * account identity seeds, no system user, no client keys); `serve` runs from it, skips the
 * account sync (it cannot sign accounts) and admits edge and platform clients; re-running the
 * export brings tenant changes to the running gateway.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles, writeNatsUrl } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { issueComponentFiles, issuePlatformIdentityFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { startCli } from "./helpers/cli-process.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const NO_ENV = { TENANT_GATEWAY_NATS: "", TENANT_GATEWAY_CONFIG: "", TENANT_GATEWAY_SYNC_ON_START: "", TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "1000" };

let control: DataLayout;
let nats: RunningNatsServer;
let cp: ControlPlane;
let tenants: TenantService;

test.before(async () => {
  control = new DataLayout(tempDir("ntg-cp-"));
  await initDataDir(control, { natsPort: -1 });
  nats = await startNatsServer(new NatsFiles(control).serverConfig);
  await writeNatsUrl(control, [nats.url], "the test");
  cp = await ControlPlane.open({ dataDir: control.dir, servers: [nats.url] });
  tenants = new TenantService(cp, tenantStreamProvisioner);
  await tenants.sync();
  await tenants.create("acme-corp", { plan: "pro" });
});

test.after.always(async () => {
  await cp?.close();
  await nats?.stop();
});

/** Every file under `dir`, relative, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.relative(dir, path.join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

async function clientTls(files: { cert: string; key: string }): Promise<{ cert: string; key: string; ca: string }> {
  return { cert: await fs.readFile(files.cert, "utf8"), key: await fs.readFile(files.key, "utf8"), ca: await fs.readFile(control.rootCert, "utf8") };
}

test("export dataplane writes the data-plane part only: certificates, the gateway key, signing seeds, the NATS URL (secrets 0600)", async (t) => {
  const target = path.join(tempDir("ntg-dp-"), "dataplane");
  const r = await runCliJson<{ tenants: Array<{ slug: string; result: string }> }>(["export", "dataplane", target, "--data-dir", control.dir], NO_ENV);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.json.tenants, [{ slug: "acme-corp", result: "written" }]);
  t.deepEqual(await filesUnder(target), [
    "nats/platform-account.jwt",
    "nats/platform-signing.nk",
    "nats/url",
    "platform/ca.pem",
    "platform/gateway-chain.pem",
    "platform/gateway-key.pem",
    "platform/gateway.pem",
    "root.pem",
    "tenants/acme-corp/account-signing.nk",
    "tenants/acme-corp/account.jwt",
    "tenants/acme-corp/ca.pem",
    "tenants/acme-corp/tenant.json",
  ]);
  for (const secret of ["nats/platform-signing.nk", "platform/gateway-key.pem", "tenants/acme-corp/account-signing.nk"]) {
    t.is((await fs.stat(path.join(target, secret))).mode & 0o777, 0o600, secret);
  }
  for (const file of await filesUnder(target)) {
    const text = await fs.readFile(path.join(target, file), "utf8");
    if (file !== "platform/gateway-key.pem") t.false(text.includes("PRIVATE KEY"), `${file} holds a private key`);
    t.false(/\bSO[A-Z2-7]{56}\b/.test(text), `${file} holds an operator seed`);
  }

  const again = await runCliJson<{ tenants: Array<{ slug: string; result: string }>; files: Array<{ result: string }> }>(["export", "dataplane", target, "--data-dir", control.dir], NO_ENV);
  t.deepEqual(again.json.tenants, [{ slug: "acme-corp", result: "unchanged" }], "re-running changes nothing that did not change");
  t.true(again.json.files.every((f) => f.result === "unchanged"));

  const onwards = await runCli(["export", "dataplane", tempDir("ntg-dp2-"), "--data-dir", target], NO_ENV);
  t.is(onwards.code, 0, `the data-plane part exports onwards (another gateway host): ${onwards.stderr}`);
  await initDataDir(new DataLayout(path.join(target, "..", "full")), { natsPort: -1 });
  const refused = await runCli(["export", "dataplane", path.join(target, "..", "full"), "--data-dir", control.dir], NO_ENV);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /control-plane secrets .*\[target_holds_secrets\]/);
});

test("serve runs from the data-plane part alone: sync skipped with a log line, edge and platform clients admitted, tenant changes exported live", async (t) => {
  const target = path.join(tempDir("ntg-dp-"), "dataplane");
  const exported = await runCli(["export", "dataplane", target, "--data-dir", control.dir], NO_ENV);
  t.is(exported.code, 0, exported.stderr);
  const dp = new DataLayout(target);
  for (const absent of [dp.rootKey, dp.platformCaKey, dp.tenantCa("acme-corp").key, dp.tenantRecord("acme-corp").accountSeed, new NatsFiles(dp).operatorSeed, new NatsFiles(dp).systemUserCreds]) {
    await t.throwsAsync(fs.access(absent), undefined, `${absent} is not in the data-plane part`);
  }

  // No --nats: the NATS URL travels with the data-plane part.
  const serve = startCli(["serve", "--data-dir", target, "--listen", "127.0.0.1:0"], NO_ENV);
  t.teardown(() => serve.kill());
  const listening = await serve.line((l) => l.event === "listening");
  t.is(listening.data_dir_part, "data-plane");
  t.truthy(serve.lines.find((l) => l.event === "sync_skipped"), "the sync is skipped, and says so");
  t.falsy(serve.lines.find((l) => l.event === "sync"));
  const url = `tls://127.0.0.1:${listening.port as number}`;

  const acme = await issueComponentFiles(control, { tenant: "acme-corp", component: "agent-001", partition: "p1" });
  const admin = await issuePlatformIdentityFiles(control, "admin");
  const clients: NatsConnection[] = [];
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  const edge = await connect({ servers: url, tls: await clientTls(acme.files), reconnect: false });
  const platform = await connect({ servers: url, tls: await clientTls(admin.files), reconnect: false });
  clients.push(edge, platform);
  const crossTenant = platform.subscribe("*.events.>", { max: 1 });
  const own = edge.subscribe("events.>", { max: 1 });
  await Promise.all([platform.flush(), edge.flush()]);
  edge.publish("events.poller.health", "from the data plane");
  t.is((await own[Symbol.asyncIterator]().next()).value?.subject, "events.poller.health");
  t.is((await crossTenant[Symbol.asyncIterator]().next()).value?.subject, "acme-corp.events.poller.health", "platform sessions work with the PLATFORM signing key alone");

  // A tenant created on the control plane reaches the serving gateway with the next export.
  await tenants.create("initech", { plan: "free" });
  const initech = await issueComponentFiles(control, { tenant: "initech", component: "agent-001", partition: "p1" });
  const next = await runCliJson<{ tenants: Array<{ slug: string; result: string }> }>(["export", "dataplane", target, "--data-dir", control.dir], NO_ENV);
  t.deepEqual(next.json.tenants, [
    { slug: "acme-corp", result: "unchanged" },
    { slug: "initech", result: "written" },
  ]);
  await serve.line((l) => l.event === "tenant_changed" && l.tenant === "initech");
  const initechClient = await connect({ servers: url, tls: await clientTls(initech.files), reconnect: false });
  clients.push(initechClient);
  await initechClient.flush();
  t.truthy(serve.lines.find((l) => l.event === "connection_accepted" && l.tenant === "initech"));

  serve.child.kill("SIGTERM");
  t.is((await serve.exited).code, 0, serve.stderr());
});

test("on the data-plane part, commands that sign accounts refuse with control_plane_only", async (t) => {
  const target = path.join(tempDir("ntg-dp-"), "dataplane");
  t.is((await runCli(["export", "dataplane", target, "--data-dir", control.dir], NO_ENV)).code, 0);
  const r = await runCli(["tenant", "create", "umbrella", "--data-dir", target], NO_ENV);
  t.is(r.code, 1);
  t.regex(r.stderr.trim(), /^error: .*holds only the data-plane part \(no operator seed\).*\[control_plane_only\]$/);
  t.is(r.stderr.trim().split("\n").length, 1);
});

/**
 * The gateway on the KV tenant store (several replicas share it): tenants created, suspended
 * and deleted by the CLI in another process take effect in the running gateway at once, and the
 * CLI issues edge certificates from the CA kept (encrypted) in the store.
 */
import { promises as fs } from "node:fs";
import test from "ava";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { createLogger } from "../common/logger.ts";
import { resolveConfig } from "../gateway/config.ts";
import { Gateway } from "../gateway/gateway.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { runCliJson } from "./helpers/cli.ts";
import { LogCapture } from "./helpers/gateway-fixture.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

let layout: DataLayout;
let nats: RunningNatsServer;
let gateway: Gateway;
const logs = new LogCapture();
const kv = (): string[] => ["--store", "kv", "--data-dir", layout.dir, "--nats", nats.url];

test.before(async () => {
  layout = new DataLayout(tempDir("ntg-kv-"));
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [nats.url], store: "kv" });
  await new TenantService(cp, tenantStreamProvisioner).sync();
  await cp.close();
  const config = await resolveConfig({ env: {}, flags: { listen: "127.0.0.1:0", nats: nats.url, data_dir: layout.dir, store: "kv", log_level: "debug", drain_timeout_ms: 1000 } });
  gateway = await Gateway.start(config, createLogger({ level: "debug", destination: logs }));
});

test.after.always(async () => {
  await gateway?.shutdown(0);
  await nats?.stop();
});

async function edgeClient(slug: string): Promise<NatsConnection> {
  const issued = await runCliJson<{ files: { cert: string; key: string } }>(["pki", "issue", "--tenant", slug, "--component", "agent-001", "--partition", "partition-1", ...kv()]);
  if (issued.code !== 0) throw new Error(JSON.stringify(issued.json));
  const tls = { cert: await fs.readFile(issued.json.files.cert, "utf8"), key: await fs.readFile(issued.json.files.key, "utf8"), ca: await fs.readFile(layout.rootCert, "utf8") };
  return connect({ servers: `tls://127.0.0.1:${gateway.port}`, tls, reconnect: false });
}

test.serial("a tenant created by the CLI on the KV store is served by the running gateway at once", async (t) => {
  const created = await runCliJson<{ status: string }>(["tenant", "create", "acme-corp", "--plan", "pro", ...kv()]);
  t.is(created.code, 0);
  t.is(created.json.status, "created");
  await logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "acme-corp" && l.status === "active");
  t.false(await fs.access(layout.tenantCa("acme-corp").key).then(() => true, () => false), "no CA key file: the KV store holds it, sealed");
  const nc = await edgeClient("acme-corp");
  t.teardown(() => nc.close());
  const sub = nc.subscribe("events.kv", { max: 1 });
  nc.publish("events.kv", "served");
  for await (const m of sub) t.is(m.string(), "served");
  const identify = await runCliJson<{ accepted: boolean; identity: { tenant: string } }>(["pki", "identify", layout.component("acme-corp", "agent-001", "partition-1").cert, ...kv()]);
  t.true(identify.json.accepted);
  t.is(identify.json.identity.tenant, "acme-corp");
});

test.serial("suspending through the KV store cuts the gateway session; the next connection is held, not admitted", async (t) => {
  const nc = await edgeClient("acme-corp");
  const closed = nc.closed();
  const before = logs.lines.length;
  t.is((await runCliJson(["tenant", "suspend", "acme-corp", ...kv()])).code, 0);
  await closed;
  await logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "acme-corp" && l.status === "suspended" && logs.lines.indexOf(l) >= before);
  // Held (stock clients refused twice give up for good): it connects, but nothing it sends reaches NATS.
  const held = await edgeClient("acme-corp");
  t.teardown(() => held.close());
  const refused = await logs.waitFor((l) => l.event === "connection_refused" && l.code === "tenant_suspended" && logs.lines.indexOf(l) >= before);
  t.is(refused.cn, "agent-001.partition-1.acme-corp.serviceradar");
  t.true(refused.held);
  await t.throwsAsync(held.request("events.kv", "anyone?", { timeout: 5000 }), { message: /permissions violation/i });
});

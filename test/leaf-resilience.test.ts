/**
 * A site's link through the gateway going away and coming back: the link cut between the site and
 * the gateway (local publishing and local subscribers carry on), and the hub restarted (the site's
 * interest crosses again). Real nats-server processes on both sides.
 */
import test from "ava";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { CuttableLink, startLeafSite, untilReceived, type LeafSite } from "./helpers/leaf-site.ts";
import { RawClient } from "./helpers/raw-client.ts";

/** A read holding this marker throws inside the leaf rewriter (common/fault.ts). */
const FAULT_MARKER = "LEAF-FAULT-7f3a";
process.env.TENANT_GATEWAY_FAULT = `session_throw:${FAULT_MARKER}`;

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"], gateway: { leaf_listen: "127.0.0.1:0" } });
});

test.after.always(async () => {
  await dep?.stop();
});

function first(sub: AsyncIterable<Msg>): Promise<Msg> {
  return (async () => {
    for await (const m of sub) return m;
    throw new Error("subscription ended");
  })();
}

async function closeAll(...ncs: NatsConnection[]): Promise<void> {
  await Promise.all(ncs.map((nc) => nc.close().catch(() => undefined)));
}

/** Both directions carry: the tenant's publish reaches the site, the site's reaches the platform. */
async function carriesBothWays(site: LeafSite, tag: string): Promise<void> {
  const local = await site.client();
  const direct = await dep.direct("acme-corp");
  try {
    const atSite = first(local.subscribe(`jobs.${tag}`));
    await untilReceived(() => direct.publish(`acme-corp.jobs.${tag}`, tag), atSite);
    const atPlatform = first(direct.subscribe(`acme-corp.events.${tag}`));
    await untilReceived(() => local.publish(`events.${tag}`, tag), atPlatform);
  } finally {
    await closeAll(local, direct);
  }
}

function accepted(partition: string): number {
  return dep.logs.lines.filter((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.partition === partition).length;
}

test.serial("the site's link cut and restored: local publishing and local subscribers carry on, and the link carries again", async (t) => {
  const link = new CuttableLink({ host: "127.0.0.1", port: dep.gateway.leafPort });
  const port = await link.listen();
  const site = await startLeafSite(dep, { tenant: "acme-corp", partition: "cut-1", gatewayLeafUrl: `tls://127.0.0.1:${port}` });
  t.teardown(async () => {
    await site.stop();
    await link.close();
  });
  await carriesBothWays(site, "before-cut");

  const local = await site.client();
  const collector = await site.client();
  t.teardown(() => closeAll(local, collector));
  const seenLocally: string[] = [];
  const sub = collector.subscribe("metrics.local");
  void (async () => {
    for await (const m of sub) seenLocally.push(m.string());
  })();
  await collector.flush();

  const sessionsBefore = accepted("cut-1");
  link.cut();
  await dep.logs.waitFor((l) => l.event === "session_closed" && l.kind === "leaf" && l.partition === "cut-1");
  // The platform is out of reach; the site's own clients are not.
  for (let i = 0; i < 50; i++) local.publish("metrics.local", `during-${i}`);
  await local.flush();
  const deadline = Date.now() + 10_000;
  while (seenLocally.length < 50 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(seenLocally, Array.from({ length: 50 }, (_, i) => `during-${i}`), "every local publish reached the local subscriber while the link was down");

  link.restore();
  await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.partition === "cut-1" && accepted("cut-1") > sessionsBefore, 20_000);
  await carriesBothWays(site, "after-cut");
  for (let i = 0; i < 5; i++) local.publish("metrics.local", `after-${i}`);
  await local.flush();
  while (seenLocally.length < 55 && Date.now() < deadline + 10_000) await new Promise((r) => setTimeout(r, 20));
  t.is(seenLocally.length, 55, "local delivery carried on after the link came back");
});

test.serial("whatever one leaf session's data makes the gateway throw ends that session only", async (t) => {
  const site = await startLeafSite(dep, { tenant: "acme-corp", partition: "bystander" });
  t.teardown(() => site.stop());
  await carriesBothWays(site, "before-fault");
  const raw = await RawClient.open(dep.gateway.leafPort, await dep.edge("acme-corp", "leaf", "faulty"), "INFO then TLS");
  t.teardown(() => raw.socket.destroy());
  const info = await raw.waitFor(/^INFO (\{.*?\})\r\n/);
  await raw.write(`CONNECT ${JSON.stringify({ version: "2.9.10", name: "faulty-site", headers: true })}\r\n`);
  const connected = await raw.waitFor(/"connect_info":true[^\r\n]*\r\n/, info.end);
  await raw.write(`LMSG events.fault ${FAULT_MARKER.length}\r\n${FAULT_MARKER}\r\n`);
  await raw.waitFor(/-ERR 'Internal Error'/, connected.end);
  await raw.closed;
  const failure = await dep.logs.waitFor((l) => l.event === "session_internal_error" && l.partition === "faulty");
  t.is(failure.code, "internal_error");
  await carriesBothWays(site, "after-fault");
});

test.serial("a suspended tenant's leaf sessions end and its site is refused until the tenant is resumed", async (t) => {
  const site = await startLeafSite(dep, { tenant: "acme-corp", partition: "suspended-1" });
  t.teardown(() => site.stop());
  await carriesBothWays(site, "before-suspend");
  await dep.tenants.suspend("acme-corp");
  await dep.logs.waitFor((l) => l.event === "session_closed" && l.kind === "leaf" && l.partition === "suspended-1");
  const refused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.kind === "leaf" && l.cn === "leaf.suspended-1.acme-corp.serviceradar", 20_000);
  t.is(refused.code, "tenant_suspended");
  const sessionsBefore = accepted("suspended-1");
  await dep.tenants.resume("acme-corp");
  await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.partition === "suspended-1" && accepted("suspended-1") > sessionsBefore, 30_000);
  await carriesBothWays(site, "after-resume");
});

test.serial("after the hub restarts, the site's interest crosses again: the tenant's messages reach the site's subscribers, and the site's reach the platform", async (t) => {
  const site = await startLeafSite(dep, { tenant: "acme-corp", partition: "restart-1" });
  t.teardown(() => site.stop());
  await carriesBothWays(site, "before-restart");
  const local = await site.client();
  t.teardown(() => closeAll(local));
  // Subscribed before the restart: the site sends this interest again on its new connection.
  const held = first(local.subscribe("jobs.held-over"));
  await local.flush();
  const sessionsBefore = accepted("restart-1");

  await dep.nats.restart();
  await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.partition === "restart-1" && accepted("restart-1") > sessionsBefore, 30_000);
  const direct = await dep.direct("acme-corp");
  t.teardown(() => closeAll(direct));
  await untilReceived(() => direct.publish("acme-corp.jobs.held-over", "after restart"), held);
  t.is((await held).string(), "after restart");
  await carriesBothWays(site, "after-restart");
});

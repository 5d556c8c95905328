/**
 * Customer sites that run their own nats-server, connected through the gateway's leaf listener:
 * real nats-server processes on both sides (the hub in operator mode, each site a stock server
 * configured from the leaf-site configuration a bundle carries, with a certificate of its tenant's
 * CA), on the suite's server version (NATS_SERVER_BIN). Hub-side clients are edge clients through
 * the gateway (the tenant's view) or users of the tenant's account straight on NATS (the prefixed
 * view the platform sees).
 */
import test from "ava";
import { headers, type Msg, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { AckPolicy, jetstream, jetstreamManager, JetStreamApiError } from "@nats-io/jetstream";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { startLeafSite, untilReceived, type LeafSite } from "./helpers/leaf-site.ts";
import { RawClient } from "./helpers/raw-client.ts";
import { loadTenantCa } from "../pki/authority.ts";
import { createRootCa, createTenantCa, issueEdgeCertificate } from "../pki/certificates.ts";

let dep: Deployment;
let acme: LeafSite;
let globex: LeafSite;

test.before(async () => {
  dep = await startDeployment({ gateway: { leaf_listen: "127.0.0.1:0" } });
  [acme, globex] = await Promise.all([startLeafSite(dep, { tenant: "acme-corp", jetstream: true }), startLeafSite(dep, { tenant: "globex" })]);
  await Promise.all([linked(acme, "acme-corp"), linked(globex, "globex")]);
});

test.after.always(async () => {
  await acme?.stop();
  await globex?.stop();
  await dep?.stop();
});

/** Resolves once the site's link carries messages: its tenant's publish reaches a local subscriber. */
async function linked(site: LeafSite, slug: string): Promise<void> {
  const local = await site.client();
  const direct = await dep.direct(slug);
  try {
    const got = first(local.subscribe("leaf.linked"));
    await untilReceived(() => direct.publish(`${slug}.leaf.linked`), got);
  } finally {
    await closeAll(local, direct);
  }
}

/** The first message of `sub` that `accept` takes. */
function first(sub: AsyncIterable<Msg>, accept: (m: Msg) => boolean = () => true): Promise<Msg> {
  return (async () => {
    for await (const m of sub) if (accept(m)) return m;
    throw new Error("subscription ended");
  })();
}

function collect(sub: Subscription, into: Msg[]): void {
  void (async () => {
    for await (const m of sub) into.push(m);
  })();
}

async function closeAll(...ncs: NatsConnection[]): Promise<void> {
  await Promise.all(ncs.map((nc) => nc.close().catch(() => undefined)));
}

/** Asks until the responder's interest has crossed the leaf (no responders until then). */
async function requestAcross(nc: NatsConnection, subject: string, data: string): Promise<Msg> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await nc.request(subject, data, { timeout: 1000 });
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

test("a site's local publish reaches the platform as <slug>.<subject>; the tenant's publish reaches the site un-prefixed", async (t) => {
  const local = await acme.client();
  const direct = await dep.direct("acme-corp");
  t.teardown(() => closeAll(local, direct));

  const seenByPlatform = first(direct.subscribe("acme-corp.events.site.>"));
  await untilReceived(() => local.publish("events.site.health", "up"), seenByPlatform);
  const m = await seenByPlatform;
  t.is(m.subject, "acme-corp.events.site.health");
  t.is(m.string(), "up");

  const seenBySite = first(local.subscribe("jobs.leaf-1"));
  await untilReceived(() => direct.publish("acme-corp.jobs.leaf-1", "run"), seenBySite);
  const job = await seenBySite;
  t.is(job.subject, "jobs.leaf-1");
  t.is(job.string(), "run");
  const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.tenant === "acme-corp");
  t.is(accepted.cn, "leaf.site-1.acme-corp.serviceradar");
});

test("request/reply both ways between a site and edge clients of its tenant, headers included", async (t) => {
  const local = await acme.client();
  const edge = await dep.v3(await dep.edge("acme-corp", "hub-svc"));
  t.teardown(() => closeAll(local, edge));

  local.subscribe("svc.site-echo", {
    callback: (_e, m) => {
      m.respond(`site:${m.string()}:${m.headers?.get("X-Trace") ?? "-"}`);
    },
  });
  const h = headers();
  h.set("X-Trace", "t-1");
  const deadline = Date.now() + 15_000;
  let fromSite: Msg | undefined;
  while (!fromSite) {
    fromSite = await edge.request("svc.site-echo", "hi", { timeout: 1000, headers: h }).catch((err: unknown) => {
      if (Date.now() > deadline) throw err;
      return undefined;
    });
  }
  t.is(fromSite.string(), "site:hi:t-1", "the hub's request reached the site's responder with its headers, and the answer came back");

  edge.subscribe("svc.hub-echo", {
    callback: (_e, m) => {
      m.respond(`hub:${m.string()}`);
    },
  });
  const fromHub = await requestAcross(local, "svc.hub-echo", "hello");
  t.is(fromHub.string(), "hub:hello", "the site's request reached an edge client and the answer came back");
});

test("the platform's request reaches a site's service through the tenant's import, and the site answers it", async (t) => {
  const local = await acme.client();
  const admin = await dep.v3(await dep.admin());
  t.teardown(() => closeAll(local, admin));
  local.subscribe("svc.site-status", {
    callback: (_e, m) => {
      m.respond(`site status for ${m.string()}`);
    },
  });
  const answer = await requestAcross(admin, "acme-corp.svc.site-status", "platform");
  t.is(answer.string(), "site status for platform", "the answer on the reply subject NATS made up (_R_.…) came back once");
});

/** Publishes `n` numbered messages on `subject` and waits until `got` holds them (or 10 s). */
async function publishCounted(nc: NatsConnection, subject: string, n: number, tag: string, got: () => Msg[]): Promise<string[]> {
  for (let i = 0; i < n; i++) nc.publish(subject, `${tag}-${i}`);
  await nc.flush();
  const deadline = Date.now() + 10_000;
  const mine = (): string[] => got().map((m) => m.string()).filter((s) => s.startsWith(`${tag}-`));
  while (mine().length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  // Anything delivered twice would arrive right behind the rest: one more round trip to see it.
  await nc.flush();
  return mine();
}

test("a queue group spanning the site and the hub gets each message once, and crosses the leaf when one side has no member", async (t) => {
  const local = await acme.client();
  const edge = await dep.v3(await dep.edge("acme-corp", "hub-worker"));
  const direct = await dep.direct("acme-corp");
  t.teardown(() => closeAll(local, edge, direct));
  const siteGot: Msg[] = [];
  const hubGot: Msg[] = [];
  collect(local.subscribe("work.q", { queue: "workers" }), siteGot);
  collect(local.subscribe("work.q", { queue: "workers" }), siteGot);
  const hubMember = edge.subscribe("work.q", { queue: "workers" });
  collect(hubMember, hubGot);
  await edge.flush();
  // The site's members are known in the hub once a message of the hub reaches the site.
  const probe = first(local.subscribe("work.ready"));
  await untilReceived(() => direct.publish("acme-corp.work.ready"), probe);

  const both = (): Msg[] => [...siteGot, ...hubGot];
  const fromHub = await publishCounted(direct, "acme-corp.work.q", 100, "hub", both);
  t.is(fromHub.length, 100, "every message published in the hub was delivered once to the group");
  t.is(new Set(fromHub).size, 100);
  const fromSite = await publishCounted(local, "work.q", 100, "site", both);
  t.is(fromSite.length, 100, "every message published on the site was delivered once to the group");
  t.is(new Set(fromSite).size, 100);

  // Without a member in the hub, the hub's messages go to the site's members, each once.
  hubMember.unsubscribe();
  await edge.flush();
  const crossed = await publishCounted(direct, "acme-corp.work.q", 100, "crossed", () => siteGot);
  t.is(crossed.length, 100, "the hub delivered to the group's members on the site");
  t.is(new Set(crossed).size, 100);
  t.false(hubGot.some((m) => m.string().startsWith("crossed-")));
  t.true(siteGot.every((m) => m.subject === "work.q"), "site members see the tenant's view");
});

test("a leaf of acme-corp receives nothing of globex, and globex's leaf nothing of acme-corp", async (t) => {
  const acmeLocal = await acme.client();
  const globexLocal = await globex.client();
  const globexDirect = await dep.direct("globex");
  const acmeDirect = await dep.direct("acme-corp");
  t.teardown(() => closeAll(acmeLocal, globexLocal, globexDirect, acmeDirect));
  const acmeSeen: Msg[] = [];
  const globexSeen: Msg[] = [];
  collect(acmeLocal.subscribe(">"), acmeSeen);
  collect(globexLocal.subscribe(">"), globexSeen);
  const acmeSentinel = first(acmeLocal.subscribe("isolation.sentinel"));
  const globexSentinel = first(globexLocal.subscribe("isolation.sentinel"));
  // Each site's interest is in the hub once its own tenant's messages reach it.
  await untilReceived(() => acmeDirect.publish("acme-corp.isolation.sentinel", "acme"), acmeSentinel);
  await untilReceived(() => globexDirect.publish("globex.isolation.sentinel", "globex"), globexSentinel);
  for (let i = 0; i < 20; i++) {
    globexDirect.publish("globex.events.secret", "globex-only");
    globexLocal.publish("events.secret", "globex-site-only");
    acmeLocal.publish("events.acme-private", "acme-site-only");
  }
  await globexDirect.flush();
  // Ordered after everything above on each path: once these arrive, the rest has been delivered or dropped.
  const acmeLast = first(acmeLocal.subscribe("isolation.last"));
  const globexLast = first(globexLocal.subscribe("isolation.last"));
  await untilReceived(() => acmeDirect.publish("acme-corp.isolation.last"), acmeLast);
  await untilReceived(() => globexDirect.publish("globex.isolation.last"), globexLast);
  t.false(acmeSeen.some((m) => m.string().startsWith("globex")), "nothing of globex reached acme-corp's site");
  t.false(globexSeen.some((m) => m.string().startsWith("acme")), "nothing of acme-corp reached globex's site");
  t.true(acmeSeen.every((m) => !m.subject.startsWith("acme-corp.") && !m.subject.startsWith("globex.")), "the site sees its tenant's view only");
});

test("JetStream across the leaf: a client on a site with its own JetStream publishes with an ack, reads and acks through the hub's domain", async (t) => {
  const local = await acme.client();
  t.teardown(() => closeAll(local));
  const js = jetstream(local, { domain: "hub" });
  const jsm = await jetstreamManager(local, { domain: "hub" });
  // The stream's interest crosses the leaf with the session; until then the site has no one to publish to.
  const deadline = Date.now() + 15_000;
  let ack;
  while (!ack) {
    ack = await js.publish("events.leaf-js.reading", "42", { timeout: 2000 }).catch((err: unknown) => {
      if (Date.now() > deadline) throw err;
      return undefined;
    });
  }
  t.is(ack.stream, "events");
  t.true(ack.seq > 0);
  const info = await jsm.streams.info("events");
  t.deepEqual(info.config.subjects, ["events.>"], "the stream is in the tenant's view");
  const consumer = await jsm.consumers.add("events", { filter_subject: "events.leaf-js.>", ack_policy: AckPolicy.Explicit, inactive_threshold: 60_000_000_000 });
  t.is(consumer.config.filter_subject, "events.leaf-js.>");
  const c = await js.consumers.get("events", consumer.name);
  const batch = await c.fetch({ max_messages: 1, expires: 5000 });
  let got: string | undefined;
  for await (const m of batch) {
    got = `${m.subject}=${m.string()}`;
    t.true(await m.ackAck(), "the ack reached the consumer in the hub");
  }
  t.is(got, "events.leaf-js.reading=42");
  const after = await jsm.consumers.info("events", consumer.name);
  t.is(after.num_ack_pending, 0);
  const refused = await t.throwsAsync(jsm.streams.add({ name: "site_made", subjects: ["site.made.>"] }));
  t.true(refused instanceof JetStreamApiError);
  t.is((refused as JetStreamApiError).status, 403, "creating streams stays the operator's job");
  const edge = await dep.v3(await dep.edge("acme-corp", "js-reader"));
  t.teardown(() => closeAll(edge));
  const stored = await (await jetstreamManager(edge)).streams.getMessage("events", { last_by_subj: "events.leaf-js.reading" });
  t.is(stored?.string(), "42", "an edge client of the tenant reads what the site published, in the same stream");
});

test("a leaf node with a forged certificate (another tenant's CA signing acme-corp) is refused and relays nothing", async (t) => {
  const leaf = await issueEdgeCertificate(await loadTenantCa(dep.layout, "globex"), { tenant: "acme-corp", component: "leaf", partition: "forged" });
  const forged = await startLeafSite(dep, { tenant: "acme-corp", partition: "forged", tls: { cert: leaf.certPem, key: leaf.keyPem, ca: (await dep.edge("acme-corp")).ca } });
  t.teardown(() => forged.stop());
  const refused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.kind === "leaf" && l.cn === "leaf.forged.acme-corp.serviceradar");
  t.is(refused.code, "tenant_slug_mismatch");
  const foreignCa = await createTenantCa(await createRootCa(), "acme-corp");
  const foreignLeaf = await issueEdgeCertificate(foreignCa, { tenant: "acme-corp", component: "leaf", partition: "foreign" });
  const foreign = await startLeafSite(dep, { tenant: "acme-corp", partition: "foreign", tls: { cert: `${foreignLeaf.certPem}${foreignCa.certPem}`, key: foreignLeaf.keyPem, ca: (await dep.edge("acme-corp")).ca } });
  t.teardown(() => foreign.stop());
  const foreignRefused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.kind === "leaf" && l.cn === "leaf.foreign.acme-corp.serviceradar");
  t.is(foreignRefused.code, "unknown_issuer");
  t.false(dep.logs.lines.some((l) => l.event === "connection_accepted" && (l.partition === "forged" || l.partition === "foreign")));
});

test("a leaf session refuses, as a client session does, what the tenant may not publish — and goes on", async (t) => {
  const raw = await RawClient.open(dep.gateway.leafPort, await dep.edge("acme-corp", "leaf", "raw-1"), "INFO then TLS");
  t.teardown(() => raw.socket.destroy());
  const info = await raw.waitFor(/^INFO (\{.*?\})\r\n/);
  const sent = JSON.parse(info.match[1]!) as { leafnode_urls?: unknown; info_on_connect?: boolean; compression?: string };
  t.deepEqual(sent.leafnode_urls, [], "no other URL is offered: the site keeps coming through the gateway");
  t.true(sent.info_on_connect);
  t.is(sent.compression, undefined, "no compression offered");
  await raw.write(`CONNECT ${JSON.stringify({ version: "2.9.10", name: "raw-site", headers: true })}\r\n`);
  const connected = await raw.waitFor(/INFO (\{[^\r\n]*"connect_info":true[^\r\n]*\})\r\n/, info.end);
  await raw.write("LMSG events.* 2\r\nhi\r\nLMSG $SYS.REQ.SERVER.PING 2\r\nhi\r\nLMSG $KV.config.x 2\r\nhi\r\nPING\r\n");
  const refusals = await raw.waitFor(/PONG\r\n/, connected.end);
  const text = raw.received(connected.end, refusals.end);
  t.regex(text, /-ERR 'Invalid Publish Subject'/);
  t.regex(text, /-ERR 'Permissions Violation for Publish to "\$SYS\.REQ\.SERVER\.PING"'/);
  t.regex(text, /-ERR 'Permissions Violation for Publish to "\$KV\.config\.x"'/);
  t.false(raw.socket.destroyed, "the session goes on");
  await raw.write("LMSG events.raw 2\r\nok\r\nBOGUS\r\n");
  await raw.waitFor(/-ERR 'Unknown Protocol Operation'/, refusals.end);
  await raw.closed;
  const ended = await dep.logs.waitFor((l) => l.event === "leaf_protocol_error" && l.partition === "raw-1");
  t.is(ended.code, "unknown_protocol_operation");
});

test("a client that dials the leaf port is told so, and a platform identity may not connect a leaf", async (t) => {
  const raw = await RawClient.open(dep.gateway.leafPort, await dep.edge("acme-corp", "confused-client"), "INFO then TLS");
  t.teardown(() => raw.socket.destroy());
  const info = await raw.waitFor(/^INFO (\{.*?\})\r\n/);
  await raw.write(`CONNECT ${JSON.stringify({ lang: "node", version: "3", headers: true })}\r\nPING\r\n`);
  await raw.waitFor(/-ERR 'attempted to connect to leaf node port'/, info.end);
  const refused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.code === "not_a_leaf_node");
  t.is(refused.kind, "leaf");

  const admin = await RawClient.open(dep.gateway.leafPort, await dep.admin(), "INFO then TLS");
  t.teardown(() => admin.socket.destroy());
  const adminInfo = await admin.waitFor(/^INFO (\{.*?\})\r\n/);
  await admin.write(`CONNECT ${JSON.stringify({ version: "2.9.10", name: "platform-site" })}\r\n`);
  await admin.waitFor(/-ERR 'Authorization Violation'/, adminInfo.end);
  const platform = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.code === "leaf_platform_identity");
  t.is(platform.cn, "admin.platform.serviceradar");
});

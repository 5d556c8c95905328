/**
 * The platform admin certificate crosses tenants, in the tenant-qualified view, audited; edge
 * clients get none of it.
 */
import { EventEmitter, once } from "node:events";
import test from "ava";
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import type { AuditRecord } from "../gateway/audit.ts";
import { runCliJson } from "./helpers/cli.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ gateway: { audit_window_ms: 300 } });
});

test.after.always(async () => {
  await dep?.stop();
});

/** Resolves with the first message matching `pred` delivered to `sub`'s callback list. */
function collector(): { seen: Msg[]; callback: (err: Error | null, m: Msg) => void; waitFor: (pred: (m: Msg) => boolean, ms?: number) => Promise<Msg> } {
  const seen: Msg[] = [];
  const waiters: Array<{ pred: (m: Msg) => boolean; resolve: (m: Msg) => void }> = [];
  return {
    seen,
    callback: (_err, m) => {
      seen.push(m);
      for (const w of [...waiters]) {
        if (!w.pred(m)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    },
    waitFor: (pred, ms = 8000) => {
      const hit = seen.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no matching message")), ms);
        waiters.push({
          pred,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
  };
}

/** The first error the server (here: the gateway) reported to this client, e.g. a permissions violation. */
async function firstError(nc: NatsConnection): Promise<string> {
  for await (const s of nc.status()) {
    if (s.type === "error") return String(s.error?.message ?? s.error);
  }
  return "connection closed without an error";
}

async function admin(): Promise<NatsConnection> {
  return dep.v3(await dep.admin());
}

/** Audit records the gateway logged for the platform identity (the log and the stream get the same). */
function auditLines(pred: (r: AuditRecord) => boolean): AuditRecord[] {
  return dep.logs.lines.filter((l) => l.event === "audit").map((l) => l as unknown as AuditRecord).filter(pred);
}

test.serial("*.events.> spans every tenant, including a tenant created after the subscription", async (t) => {
  const nc = await admin();
  t.teardown(() => nc.close());
  const events = collector();
  nc.subscribe("*.events.>", { callback: events.callback });
  await nc.flush();
  const acme = await dep.v3(await dep.edge("acme-corp"));
  const globex = await dep.v3(await dep.edge("globex"));
  t.teardown(async () => {
    await acme.close();
    await globex.close();
  });
  acme.publish("events.poller.health", "acme up");
  globex.publish("events.poller.health", "globex up");
  t.is((await events.waitFor((m) => m.subject === "acme-corp.events.poller.health")).string(), "acme up");
  t.is((await events.waitFor((m) => m.subject === "globex.events.poller.health")).string(), "globex up");

  const before = dep.logs.lines.length;
  await dep.tenants.create("initech", { plan: "pro" });
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "initech" && l.status === "active" && dep.logs.lines.indexOf(l) >= before);
  const initech = await dep.v3(await dep.edge("initech"));
  t.teardown(() => initech.close());
  initech.publish("events.poller.health", "initech up");
  t.is((await events.waitFor((m) => m.subject === "initech.events.poller.health")).string(), "initech up");
  t.true(events.seen.every((m) => /^[a-z0-9-]+\.events\./.test(m.subject)), "every subject is tenant-qualified");
});

test.serial("publishing acme-corp.jobs.agent-001 reaches acme-corp's agent on jobs.agent-001, and nobody else", async (t) => {
  const nc = await admin();
  const acme = await dep.v3(await dep.edge("acme-corp", "agent-001"));
  const globex = await dep.v3(await dep.edge("globex", "agent-001"));
  t.teardown(async () => {
    await Promise.all([nc.close(), acme.close(), globex.close()]);
  });
  const acmeJobs = collector();
  const globexJobs = collector();
  acme.subscribe("jobs.agent-001", { callback: acmeJobs.callback });
  globex.subscribe("jobs.agent-001", { callback: globexJobs.callback });
  await Promise.all([acme.flush(), globex.flush()]);
  nc.publish("acme-corp.jobs.agent-001", "run check");
  const job = await acmeJobs.waitFor(() => true);
  t.is(job.subject, "jobs.agent-001", "the agent sees its own, un-prefixed view");
  t.is(job.string(), "run check");
  nc.publish("globex.jobs.agent-001", "marker");
  await globexJobs.waitFor((m) => m.string() === "marker");
  t.deepEqual(globexJobs.seen.map((m) => m.string()), ["marker"], "globex got only what was addressed to globex");
  t.is(acmeJobs.seen.length, 1, "delivered once, not echoed back through the imports");
});

test.serial("request acme-corp.svc.echo gets acme-corp's reply", async (t) => {
  const nc = await admin();
  const acme = await dep.v2(await dep.edge("acme-corp", "echo-svc"));
  t.teardown(async () => {
    await nc.close();
    await acme.close();
  });
  acme.subscribe("svc.echo", {
    callback: (_e, m) => {
      m.respond(new TextEncoder().encode(`acme says ${new TextDecoder().decode(m.data)}`));
    },
  });
  await acme.flush();
  const reply = await nc.request("acme-corp.svc.echo", "hi", { timeout: 5000 });
  t.is(reply.string(), "acme says hi");
  const again = await nc.request("acme-corp.svc.echo", "again", { timeout: 5000 });
  t.is(again.string(), "acme says again");
});

test.serial("a tenant's JetStream through $JS.<slug>.API: stream info, consume and ack", async (t) => {
  const edge = await dep.v3(await dep.edge("acme-corp", "poller-js"));
  const nc = await admin();
  t.teardown(async () => {
    await edge.close();
    await nc.close();
  });
  await jetstream(edge).publish("events.platform.check", "stored for the platform");
  const jsm = await jetstreamManager(nc, { apiPrefix: "$JS.acme-corp.API" });
  const info = await jsm.streams.info("events");
  t.deepEqual(info.config.subjects, ["acme-corp.events.>"], "the platform sees the tenant-qualified view");
  await jsm.consumers.add("events", { durable_name: "platform-reader", ack_policy: AckPolicy.Explicit, filter_subject: "acme-corp.events.platform.>" });
  const js = jetstream(nc, { apiPrefix: "$JS.acme-corp.API" });
  const consumer = await js.consumers.get("events", "platform-reader");
  const m = await consumer.next({ expires: 5000 });
  t.is(m?.subject, "acme-corp.events.platform.check");
  t.is(m?.string(), "stored for the platform");
  // The ack subject carries the tenant in a form stock clients parse (the JetStream-domain slot).
  t.regex((m as unknown as { reply: string }).reply, /^\$JS\.ACK\.acme-corp\._\.events\.platform-reader\./);
  t.like(m!.info, { domain: "acme-corp", stream: "events", consumer: "platform-reader", deliveryCount: 1 });
  t.is(m!.seq, m!.info.streamSequence);
  t.true(await m!.ackAck(), "the ack reached acme-corp's consumer");
  const after = await jsm.consumers.info("events", "platform-reader");
  t.is(after.num_ack_pending, 0);
  t.is(after.num_pending, 0);
  // Another tenant's stream of the same name is a different stream.
  const gjsm = await jetstreamManager(nc, { apiPrefix: "$JS.globex.API" });
  t.deepEqual((await gjsm.streams.info("events")).config.subjects, ["globex.events.>"]);
});

test.serial("platform sessions may not touch the PLATFORM account's internals, and keep their connection", async (t) => {
  const nc = await admin();
  t.teardown(() => nc.close());
  // The account's own JetStream shows the platform streams the identity may read (the built-in
  // `events`), never the audit stream or the registry, and the connection stays.
  const reply = await nc.request("$JS.API.STREAM.LIST", "");
  t.deepEqual((reply.json() as { streams: Array<{ config: { name: string } }> }).streams.map((si) => si.config.name), ["events"]);
  const audit = await nc.request("$JS.API.STREAM.INFO.tenant_gateway_audit", "");
  t.like(audit.json(), { error: { code: 404, err_code: 10059 } });
  const errors: string[] = [];
  const reported = new EventEmitter();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type !== "error") continue;
      errors.push(String(s.error?.message ?? s.error));
      reported.emit("error");
    }
  })();
  const refusals = [
    ["SUB _tg.audit.>", /Permissions Violation for Subscription to "_tg\.audit\.>"/],
    ["PUB $KV.tenant_gateway_registry.tenants.acme-corp", /Permissions Violation for Publish to "\$KV\.tenant_gateway_registry/],
    ["PUB $SYS.REQ.SERVER.PING", /Permissions Violation for Publish to "\$SYS/],
  ] as const;
  for (const [i, [frame, expected]] of refusals.entries()) {
    if (frame.startsWith("SUB")) nc.subscribe(frame.slice(4));
    else nc.publish(frame.slice(4), "x");
    while (errors.length <= i) await once(reported, "error");
    t.regex(errors[i]!, expected);
  }
  // The session goes on, as with nats-server: it still reaches a tenant.
  const acme = await dep.v3(await dep.edge("acme-corp", "internals-check"));
  t.teardown(() => acme.close());
  const echo = acme.subscribe("internals-check", { max: 1 });
  await acme.flush();
  nc.publish("acme-corp.internals-check", "still here");
  for await (const m of echo) t.is(m.string(), "still here");
  t.false(nc.isClosed());
});

test.serial("every cross-tenant operation is audited with identity, tenant, operation and subject; repeats are summarised", async (t) => {
  const nc = await admin();
  const events = collector();
  nc.subscribe("acme-corp.audit-check.>", { callback: events.callback });
  await nc.flush();
  const acme = await dep.v3(await dep.edge("acme-corp", "noisy"));
  for (let i = 0; i < 200; i++) acme.publish("audit-check.tick", String(i));
  await acme.flush();
  await events.waitFor((m) => m.string() === "199");
  for (let i = 0; i < 50; i++) nc.publish("globex.jobs.bulk", String(i));
  await nc.flush();
  await nc.close();
  await acme.close();
  const session = (await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.platform === "admin" && dep.logs.lines.some((x) => x.event === "audit" && x.session === l.session && x.subject === "acme-corp.audit-check.>"))).session;
  await dep.logs.waitFor((l) => l.event === "audit" && l.session === session && l.subject === "globex.jobs.bulk" && (l.count as number) > 1);
  const mine = auditLines((r) => r.session === session);
  const subs = mine.filter((r) => r.subject === "acme-corp.audit-check.>" && r.operation === "subscribe");
  t.is(subs.length, 1, "one subscription: one record");
  t.like(subs[0], { identity: "admin", cn: "admin.platform.serviceradar", tenant: "acme-corp", operation: "subscribe" });
  const received = mine.filter((r) => r.subject === "acme-corp.audit-check.>" && r.operation === "receive");
  t.deepEqual(received.map((r) => r.count), [1, 199], "200 messages received through it: the first delivery, then one summary");
  const bulk = mine.filter((r) => r.subject === "globex.jobs.bulk");
  t.deepEqual(bulk.map((r) => r.count), [1, 49], "first sighting, then one summary with the repeats");
  t.true(bulk.every((r) => r.tenant === "globex" && r.operation === "publish"));

  // Everything the earlier tests did is in the audit stream too, and the CLI reads it.
  const { code, json } = await runCliJson<{ records: AuditRecord[] }>(["audit", "--tenant", "acme-corp", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  t.is(code, 0);
  const ops = new Set(json.records.map((r) => r.operation));
  for (const op of ["subscribe", "publish", "request", "jetstream_api"]) t.true(ops.has(op as AuditRecord["operation"]), `audit has a ${op} record for acme-corp`);
  t.true(json.records.every((r) => r.tenant === "acme-corp" && r.identity === "admin" && typeof r.time === "string"));
  t.true(json.records.some((r) => r.operation === "publish" && r.subject === "acme-corp.jobs.agent-001"));
  t.true(json.records.some((r) => r.operation === "request" && r.subject === "acme-corp.svc.echo"));
  t.true(json.records.some((r) => r.operation === "jetstream_api" && r.subject.startsWith("$JS.acme-corp.API.")));
  const all = await runCliJson<{ records: AuditRecord[] }>(["audit", "--tenant", "_all", "--identity", "admin", "--since", "1h", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  t.true(all.json.records.some((r) => r.operation === "subscribe" && r.subject === "*.events.>"));
});

test.serial("an edge client gets none of this: publishing to globex.x stays in acme-corp, $JS.globex.API is refused", async (t) => {
  const acme = await dep.v3(await dep.edge("acme-corp", "curious"));
  const nc = await admin();
  t.teardown(async () => {
    await nc.close();
  });
  const globexSide = collector();
  nc.subscribe("globex.x", { callback: globexSide.callback });
  const acmeSide = collector();
  nc.subscribe("acme-corp.globex.x", { callback: acmeSide.callback });
  await nc.flush();
  acme.publish("globex.x", "escape?");
  await acmeSide.waitFor(() => true);
  await nc.flush();
  t.is(globexSide.seen.length, 0);
  const error = firstError(acme);
  acme.publish("$JS.globex.API.STREAM.LIST", "");
  t.regex(await error, /Permissions Violation for Publish to "\$JS\.globex\.API\.STREAM\.LIST"/);
});

test.serial("a tenant created with --defer-platform joins the platform view at the next sync", async (t) => {
  const nc = await admin();
  t.teardown(() => nc.close());
  const events = collector();
  nc.subscribe("*.events.>", { callback: events.callback });
  await nc.flush();
  const before = dep.logs.lines.length;
  const created = await runCliJson<{ status: string }>(["tenant", "create", "hooli", "--plan", "pro", "--defer-platform", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  t.is(created.json.status, "created");
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "hooli" && l.status === "active" && dep.logs.lines.indexOf(l) >= before);
  const hooli = await dep.v3(await dep.edge("hooli"));
  t.teardown(() => hooli.close());
  hooli.publish("events.deferred", "not yet");
  // Positive control: a known tenant's event arrives, so hooli's would have arrived before it.
  const acme = await dep.v3(await dep.edge("acme-corp", "control"));
  t.teardown(() => acme.close());
  await hooli.flush();
  acme.publish("events.deferred-control", "x");
  await events.waitFor((m) => m.subject === "acme-corp.events.deferred-control");
  t.false(events.seen.some((m) => m.subject.startsWith("hooli.")));
  t.is((await runCliJson<{ tenants: unknown[] }>(["sync", "--data-dir", dep.layout.dir, "--nats", dep.nats.url])).code, 0);
  hooli.publish("events.deferred", "now");
  t.is((await events.waitFor((m) => m.subject === "hooli.events.deferred")).string(), "now");
});

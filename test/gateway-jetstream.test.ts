/**
 * JetStream through the gateway with stock clients: each tenant uses its own streams in the
 * edge view (no prefix anywhere the client can see), inside its own account.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { AckPolicy as AckPolicyV2 } from "nats";
import { StreamProvisioner } from "../streams/provisioner.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { tempDir } from "./helpers/tmp.ts";

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "globex"] });
  // "tiny" is a free-plan tenant with one small stream that refuses new messages when full, to
  // show NATS's own limit errors reaching an edge client.
  await dep.tenants.create("tiny", { plan: "free" });
  const dir = tempDir();
  await fs.writeFile(path.join(dir, "events.json"), JSON.stringify({ name: "events", subjects: ["events.>"], storage: "file", retention: "limits", max_age: "1h", max_bytes: 65536, discard: "new" }));
  const tiny = await dep.tenants.load("tiny");
  await new StreamProvisioner({ templatesDir: dir }).apply(dep.cp, tiny, { prune: true });
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "tiny" && l.status === "active");
});

test.after.always(async () => {
  await dep?.stop();
});

/** The tenant's JetStream seen by the operator (a control user inside the account, not through the gateway). */
async function operatorJsm(slug: string): Promise<JetStreamManager> {
  const { record, signingKey } = await dep.tenants.load(slug);
  return jetstreamManager(await dep.cp.accountConnection(record.account_public_key, signingKey, "test-operator"));
}

test.serial("@nats-io/jetstream: publish acked, stream info in the edge view, pull consumer next/fetch/consume with acks", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp", "poller-1"));
  t.teardown(() => nc.close());
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);

  const ack = await js.publish("events.poller.health", "up");
  t.is(ack.stream, "events");
  const info = await jsm.streams.info("events");
  t.deepEqual(info.config.subjects, ["events.>"], "subjects in the edge view");
  t.true(Object.keys(info.state.subjects ?? {}).every((s) => !s.startsWith("acme-corp.")));

  await jsm.consumers.add("events", { durable_name: "health", ack_policy: AckPolicy.Explicit, filter_subject: "events.poller.>" });
  const ci = await jsm.consumers.info("events", "health");
  t.is(ci.config.filter_subject, "events.poller.>", "consumer info in the edge view");
  const consumer = await js.consumers.get("events", "health");

  const m1 = await consumer.next({ expires: 5000 });
  t.is(m1?.subject, "events.poller.health");
  t.is(m1?.string(), "up");
  await m1!.ackAck();

  await js.publish("events.poller.health", "second");
  await js.publish("events.poller.latency", "third");
  const fetched: string[] = [];
  for await (const m of await consumer.fetch({ max_messages: 2, expires: 5000 })) {
    fetched.push(`${m.subject}=${m.string()}`);
    m.ack();
  }
  t.deepEqual(fetched, ["events.poller.health=second", "events.poller.latency=third"]);

  await js.publish("events.poller.health", "fourth");
  const messages = await consumer.consume({ max_messages: 10 });
  for await (const m of messages) {
    t.is(`${m.subject}=${m.string()}`, "events.poller.health=fourth");
    await m.ackAck();
    break;
  }
  await messages.close();

  const after = await jsm.consumers.info("events", "health");
  t.is(after.num_pending, 0);
  t.is(after.num_ack_pending, 0, "acked messages are not redelivered");
  t.is(after.delivered.consumer_seq, 4);
});

test.serial("nats v2's JetStream API: publish and a pull consumer", async (t) => {
  const nc = await dep.v2(await dep.edge("acme-corp", "collector-2"));
  t.teardown(() => nc.close());
  const js = nc.jetstream();
  const jsm = await nc.jetstreamManager();
  const ack = await js.publish("logs.syslog.v2", new TextEncoder().encode("v2 line"));
  t.is(ack.stream, "logs");
  await jsm.consumers.add("logs", { durable_name: "v2reader", ack_policy: AckPolicyV2.Explicit, filter_subject: "logs.syslog.>" });
  const msgs = await js.fetch("logs", "v2reader", { batch: 1, expires: 5000 });
  const got: string[] = [];
  for await (const m of msgs) {
    got.push(`${m.subject}=${new TextDecoder().decode(m.data)}`);
    await m.ackAck();
  }
  t.deepEqual(got, ["logs.syslog.v2=v2 line"]);
  const info = await jsm.consumers.info("logs", "v2reader");
  t.is(info.num_ack_pending, 0);
});

test.serial("inside NATS, acme-corp's stream stores the prefixed subject", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp", "agent-inside"));
  t.teardown(() => nc.close());
  const ack = await jetstream(nc).publish("events.poller.inside", "x");
  const jsm = await operatorJsm("acme-corp");
  const stored = await jsm.streams.getMessage("events", { seq: ack.seq });
  t.is(stored?.subject, "acme-corp.events.poller.inside");
  const info = await jsm.streams.info("events");
  t.deepEqual(info.config.subjects, ["acme-corp.events.>"]);
});

test.serial("a stored-message get by subject answers in the edge view", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp", "agent-get"));
  t.teardown(() => nc.close());
  await jetstream(nc).publish("events.get.last", "latest");
  const jsm = await jetstreamManager(nc);
  const m = await jsm.streams.getMessage("events", { last_by_subj: "events.get.last" });
  t.is(m?.subject, "events.get.last");
  t.is(m?.string(), "latest");
});

test.serial("globex sees none of acme-corp's streams or messages; its own events stream is separate", async (t) => {
  const acme = await dep.v3(await dep.edge("acme-corp", "agent-iso"));
  const globex = await dep.v3(await dep.edge("globex", "agent-iso"));
  t.teardown(async () => {
    await acme.close();
    await globex.close();
  });
  await jetstream(acme).publish("events.secret.acme", "acme only");
  const gjs = jetstream(globex);
  const gjsm = await jetstreamManager(globex);
  const before = await gjsm.streams.info("events");
  t.false(Object.keys(before.state.subjects ?? {}).some((s) => s.includes("secret")));
  t.is(await gjsm.streams.getMessage("events", { last_by_subj: "events.secret.acme" }).catch(() => null), null);
  const gack = await gjs.publish("events.own.globex", "globex");
  t.is(gack.stream, "events");
  const acmeInfo = await (await jetstreamManager(acme)).streams.info("events");
  t.not(acmeInfo.state.last_seq, 0);
  t.false(Object.keys(acmeInfo.state.subjects ?? {}).some((s) => s.includes("own.globex")));
  const inside = await operatorJsm("globex");
  const stored = await inside.streams.getMessage("events", { seq: gack.seq });
  t.is(stored?.subject, "globex.events.own.globex");
});

test.serial("creating, deleting or purging a stream from an edge client gets a JetStream error at once", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp", "agent-bad"));
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const started = Date.now();
  await t.throwsAsync(jsm.streams.add({ name: "mine", subjects: ["mine.>"] }), { message: /not permitted|403/i });
  await t.throwsAsync(jsm.streams.delete("events"), { message: /not permitted|403/i });
  await t.throwsAsync(jsm.streams.purge("events"), { message: /not permitted|403/i });
  const unknown = await nc.request("$JS.API.FOO.BAR", "{}", { timeout: 3000 });
  const body = unknown.json<{ error?: { code: number } }>();
  t.is(body.error?.code, 400);
  t.true(Date.now() - started < 3000, "answered, not timed out");
  t.true((await jsm.streams.info("events")).config.subjects.length > 0, "the stream is still there");
});

test.serial("plan limits: a free tenant's full stream refuses new messages with NATS's own error, through the gateway", async (t) => {
  const nc = await dep.v3(await dep.edge("tiny", "agent-full"));
  t.teardown(() => nc.close());
  const js = jetstream(nc);
  const chunk = new Uint8Array(8192);
  let error: Error | undefined;
  for (let i = 0; i < 20 && !error; i++) {
    await js.publish("events.fill", chunk).catch((e: Error) => (error = e));
  }
  t.truthy(error, "the stream filled up");
  t.regex(error!.message, /maximum bytes|insufficient|limit/i);
});

test.serial("no acknowledged message is lost when nats-server restarts between publish and consume", async (t) => {
  const tls = await dep.edge("acme-corp", "agent-durable");
  const pub = await dep.v3(tls);
  const js = jetstream(pub);
  const jsm = await jetstreamManager(pub);
  await jsm.consumers.add("events", { durable_name: "durable-check", ack_policy: AckPolicy.Explicit, filter_subject: "events.durable.>" });
  const sent: string[] = [];
  for (let i = 0; i < 50; i++) {
    await js.publish("events.durable.n", String(i));
    sent.push(String(i));
  }
  await pub.close();
  await dep.nats.restart();
  // The gateway closes new connections before TLS until it sees NATS answer again: wait on the first connect.
  const sub = await dep.v3(tls, { waitOnFirstConnect: true, reconnectTimeWait: 100, timeout: 20_000 });
  t.teardown(() => sub.close());
  const consumer = await jetstream(sub).consumers.get("events", "durable-check");
  const received: string[] = [];
  while (received.length < sent.length) {
    const batch = await consumer.fetch({ max_messages: 50, expires: 5000 });
    let any = false;
    for await (const m of batch) {
      any = true;
      received.push(m.string());
      m.ack();
    }
    if (!any) break;
  }
  t.deepEqual(received, sent);
});

test.serial("@nats-io/jetstream: a push consumer with flow control and heartbeats through the gateway gets every message, and its flow-control answers reach NATS", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp", "collector-push"));
  t.teardown(() => nc.close());
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add("events", { durable_name: "push-fc", deliver_subject: "push.collector", ack_policy: AckPolicy.Explicit, filter_subject: "events.bulk.>", flow_control: true, idle_heartbeat: 1_000_000_000 });
  t.teardown(() => jsm.consumers.delete("events", "push-fc").then(() => undefined));
  t.is((await jsm.consumers.info("events", "push-fc")).config.deliver_subject, "push.collector", "the deliver subject in the edge view");

  const COUNT = 400;
  const payload = new Uint8Array(16 * 1024).fill(0x61);
  await Promise.all(Array.from({ length: COUNT }, (_, i) => js.publish(`events.bulk.${i % 4}`, payload)));

  const consumer = await js.consumers.getPushConsumer("events", "push-fc");
  const messages = await consumer.consume();
  const statuses: string[] = [];
  void (async () => {
    for await (const s of messages.status()) statuses.push(s.type);
  })();
  let received = 0;
  for await (const m of messages) {
    t.regex(m.subject, /^events\.bulk\.[0-3]$/, "delivered in the edge view");
    t.is(m.data.length, payload.length);
    m.ack();
    if (++received === COUNT) break;
  }
  t.is(received, COUNT);
  t.true(statuses.includes("flow_control"), `NATS asked for flow control (statuses: ${[...new Set(statuses)].join(", ")})`);
  // Answered flow control lets NATS deliver past its pending window: all were delivered and none is pending.
  const info = await jsm.consumers.info("events", "push-fc");
  t.is(info.delivered.consumer_seq, COUNT);
  t.is(info.num_pending, 0);
});

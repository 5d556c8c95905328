/**
 * The compatibility scenarios with the Node v3 clients: `@nats-io/transport-node`,
 * `@nats-io/jetstream`, `@nats-io/kv`, `@nats-io/obj`, `@nats-io/services`, used as they are used
 * against nats-server.
 */
import { randomBytes } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { connect, headers, NoRespondersError, RequestError, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { Svcm } from "@nats-io/services";
import { check, compatEnv, delay, describeError, PassedWith, requestGatewayRestart, runScenarios, within, type ScenarioContext } from "../lib/node-runner.ts";

const env = compatEnv();
const run = env.run;
const prefixed = `${env.tenant}.`;
const edgeTls = { certFile: env.edgeCert, keyFile: env.edgeKey, caFile: env.ca };
const adminTls = { certFile: env.adminCert, keyFile: env.adminKey, caFile: env.ca };

/**
 * @nats-io/services (newest release 3.0.0-25) pins @nats-io/nats-core 3.0.0-50, so its
 * NatsConnection type is another copy's; the connection object itself is the same.
 */
function services(nc: NatsConnection): ConstructorParameters<typeof Svcm>[0] {
  return nc as unknown as ConstructorParameters<typeof Svcm>[0];
}

function watch(nc: NatsConnection, ctx: ScenarioContext, who: string): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "error") ctx.note(`${who} async error: ${s.error.message}`);
      if (s.type === "disconnect") ctx.note(`${who} disconnected`);
    }
  })().catch(() => undefined);
  void nc.closed().then((err) => {
    if (err) ctx.note(`${who} closed: ${err.message}`);
  });
}

async function open(ctx: ScenarioContext, who: "edge" | "admin", opts: Partial<NodeConnectionOptions> = {}): Promise<NatsConnection> {
  ctx.step(`connect (${who})`);
  const nc = await connect({ servers: env.url, tls: who === "edge" ? edgeTls : adminTls, name: `compat-node-v3-${who}`, ...opts });
  watch(nc, ctx, who);
  ctx.defer(() => (nc.isClosed() ? undefined : nc.close()));
  return nc;
}
const edge = (ctx: ScenarioContext, opts: Partial<NodeConnectionOptions> = {}): Promise<NatsConnection> => open(ctx, "edge", opts);
const admin = (ctx: ScenarioContext): Promise<NatsConnection> => open(ctx, "admin");

/** A connect on a local link takes well under a second; longer means the client waited for something. */
function promptConnect(ms: number): void {
  check(ms < 1000, `connect took ${ms} ms`);
}

/** Resolves once `done()` holds, checking every 20 ms. */
async function until(done: () => boolean, ms: number, what: string): Promise<void> {
  await within(
    (async () => {
      while (!done()) await delay(20);
    })(),
    ms,
    what,
  );
}

async function collect<T>(iter: AsyncIterable<T>, max = Infinity): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iter) {
    out.push(item);
    if (out.length >= max) break;
  }
  return out;
}

function noPrefix(what: string, value: unknown): void {
  const text = JSON.stringify(value);
  check(!text.includes(prefixed), `${what} shows the tenant prefix "${prefixed}": ${text.slice(0, 300)}`);
}

async function jsPublishN(ctx: ScenarioContext, nc: NatsConnection, subject: string, n: number): Promise<void> {
  ctx.step(`JetStream publish to ${subject}`);
  const js = jetstream(nc);
  for (let i = 0; i < n; i++) await js.publish(subject, `m${i}`);
}

await runScenarios(env, {
  connect: async (ctx) => {
    const started = Date.now();
    const nc = await edge(ctx);
    promptConnect(Date.now() - started);
    ctx.step("flush");
    await nc.flush();
    check(nc.info?.server_id, "no server INFO");
  },

  pubsub: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `compat.${run}.pubsub`;
    const sub = nc.subscribe(subject, { max: 3 });
    const got = collect(sub);
    await nc.flush();
    ctx.step("publish 3, receive 3");
    for (let i = 0; i < 3; i++) nc.publish(subject, `m${i}`);
    const msgs = await within(got, 5000, "3 messages");
    const seen = msgs.map((m) => [m.subject, m.string()]);
    check(isDeepStrictEqual(seen, [0, 1, 2].map((i) => [subject, `m${i}`])), `received ${JSON.stringify(seen)}`);
  },

  queue: async (ctx) => {
    const a = await edge(ctx);
    const b = await edge(ctx);
    const subject = `compat.${run}.queue`;
    const seen: string[] = [];
    const counts = [0, 0];
    a.subscribe(subject, { queue: "workers", callback: (_e, m) => void (counts[0]!++, seen.push(m.string())) });
    b.subscribe(subject, { queue: "workers", callback: (_e, m) => void (counts[1]!++, seen.push(m.string())) });
    await Promise.all([a.flush(), b.flush()]);
    ctx.step("publish 20 to the queue group");
    for (let i = 0; i < 20; i++) a.publish(subject, `m${i}`);
    await until(() => seen.length >= 20, 5000, "20 messages across the group");
    await Promise.all([a.flush(), b.flush()]);
    await delay(200);
    check(seen.length === 20 && new Set(seen).size === 20, `group received ${seen.length} messages (${new Set(seen).size} distinct), expected each of 20 once`);
  },

  request_reply: async (ctx) => {
    const responder = await edge(ctx);
    const requester = await edge(ctx);
    const subject = `compat.${run}.rr`;
    responder.subscribe(subject, { callback: (_e, m) => void m.respond(`re:${m.string()}`) });
    await responder.flush();
    ctx.step("request");
    const reply = await requester.request(subject, "ping", { timeout: 5000 });
    check(reply.string() === "re:ping", `reply ${JSON.stringify(reply.string())}`);
  },

  no_responders: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step("request to a subject nobody serves");
    const started = Date.now();
    try {
      await nc.request(`compat.${run}.nobody`, "x", { timeout: 5000 });
    } catch (err) {
      const ms = Date.now() - started;
      const noResponders = err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders());
      check(noResponders, `expected the no-responders error, got ${describeError(err)} after ${ms} ms`);
      check(ms < 2500, `no-responders error only after ${ms} ms`);
      return;
    }
    check(false, "got a reply from nobody");
  },

  headers: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `compat.${run}.headers`;
    const got = collect(nc.subscribe(subject, { max: 1 }));
    await nc.flush();
    const h = headers();
    h.set("X-Compat", run);
    h.append("X-Multi", "a");
    h.append("X-Multi", "b");
    ctx.step("publish with headers");
    nc.publish(subject, "with headers", { headers: h });
    const [m] = await within(got, 5000, "the message");
    check(m?.headers?.get("X-Compat") === run, `X-Compat ${JSON.stringify(m?.headers?.get("X-Compat"))}`);
    check(isDeepStrictEqual(m.headers.values("X-Multi"), ["a", "b"]), `X-Multi ${JSON.stringify(m.headers.values("X-Multi"))}`);
  },

  echo_false: async (ctx) => {
    const quiet = await edge(ctx, { noEcho: true });
    const other = await edge(ctx);
    const subject = `compat.${run}.echo`;
    const seen: string[] = [];
    quiet.subscribe(subject, { callback: (_e, m) => void seen.push(m.string()) });
    await quiet.flush();
    ctx.step("publish from the echo:false connection, then from another");
    quiet.publish(subject, "self");
    await quiet.flush();
    other.publish(subject, "other");
    await until(() => seen.includes("other"), 5000, "the other connection's message");
    check(!seen.includes("self"), `echo:false connection received its own message: ${JSON.stringify(seen)}`);
  },

  drain: async (ctx) => {
    const nc = await edge(ctx);
    const pub = await edge(ctx);
    const subject = `compat.${run}.drain`;
    let received = 0;
    nc.subscribe(subject, { callback: () => void received++ });
    await nc.flush();
    ctx.step("publish 50");
    for (let i = 0; i < 50; i++) pub.publish(subject, `m${i}`);
    await pub.flush();
    ctx.step("drain");
    await nc.drain();
    const closedWith = await nc.closed();
    check(!closedWith, `closed with ${closedWith instanceof Error ? closedWith.message : ""}`);
    check(received === 50, `received ${received} of 50 before the drain completed`);
  },

  flush_rtt: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step("flush");
    await nc.flush();
    ctx.step("rtt");
    const rtt = await nc.rtt();
    check(Number.isFinite(rtt) && rtt >= 0, `rtt ${rtt}`);
  },

  max_payload: async (ctx) => {
    const nc = await edge(ctx);
    const atConnect = nc.info?.max_payload;
    await nc.flush();
    const known = nc.info?.max_payload;
    check(known === env.maxPayload, `client sees max_payload ${known}, expected ${env.maxPayload}`);
    ctx.step(`publish ${env.maxPayload + 1} bytes`);
    try {
      nc.publish(`compat.${run}.big`, new Uint8Array(env.maxPayload + 1));
    } catch (err) {
      await nc.flush();
      const refusal = describeError(err);
      return new PassedWith(atConnect === env.maxPayload ? `refused by the library: ${refusal}` : `learned after the first round trip (${atConnect} at connect); refused by the library: ${refusal}`);
    }
    check(false, "the library accepted a payload over max_payload");
  },

  reconnect: async (ctx) => {
    const nc = await edge(ctx, { maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const subject = `compat.${run}.reconnect`;
    const seen: string[] = [];
    nc.subscribe(subject, { callback: (_e, m) => void seen.push(m.string()) });
    let reconnected = false;
    void (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") reconnected = true;
    })().catch(() => undefined);
    nc.publish(subject, "before");
    await until(() => seen.includes("before"), 5000, "a message before the restart");
    ctx.step("waiting for the harness to restart the gateway");
    await requestGatewayRestart();
    ctx.step("waiting for the client to reconnect by itself");
    await until(() => reconnected, 15_000, "the client's reconnect event");
    ctx.step("publish after the reconnect");
    nc.publish(subject, "after");
    await until(() => seen.includes("after"), 5000, "the message after the reconnect on the same subscription");
  },

  js_publish_ack: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step("JetStream publish");
    const ack = await jetstream(nc).publish(`events.compat.${run}.ack`, "x");
    check(ack.stream === env.stream && ack.seq > 0, `ack ${JSON.stringify(ack)}`);
  },

  js_msg_id_dedupe: async (ctx) => {
    const nc = await edge(ctx);
    const js = jetstream(nc);
    const subject = `events.compat.${run}.dedupe`;
    ctx.step("first publish with Nats-Msg-Id");
    const first = await js.publish(subject, "once", { msgID: `dedupe-${run}` });
    ctx.step("second publish with the same Nats-Msg-Id");
    const second = await js.publish(subject, "once", { msgID: `dedupe-${run}` });
    check(!first.duplicate, `first publish reported duplicate: ${JSON.stringify(first)}`);
    check(second.duplicate && second.seq === first.seq, `second publish: ${JSON.stringify(second)}`);
  },

  js_stream_info: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step("JetStream manager");
    const jsm = await jetstreamManager(nc);
    ctx.step("stream info");
    const si = await jsm.streams.info(env.stream);
    check(isDeepStrictEqual(si.config.subjects, [`${env.stream}.>`]), `subjects ${JSON.stringify(si.config.subjects)}`);
    noPrefix("stream info", si);
  },

  js_stream_names_list: async (ctx) => {
    const nc = await edge(ctx);
    const jsm = await jetstreamManager(nc);
    ctx.step("stream names");
    const names = await collect(jsm.streams.names());
    check(names.includes(env.stream), `names ${JSON.stringify(names)}`);
    ctx.step("stream list");
    const list = await collect(jsm.streams.list());
    const mine = list.find((si) => si.config.name === env.stream);
    check(mine && isDeepStrictEqual(mine.config.subjects, [`${env.stream}.>`]), `list: ${JSON.stringify(list.map((si) => [si.config.name, si.config.subjects]))}`);
    noPrefix("stream list", list);
    ctx.step("stream find by subject");
    const found = await jsm.streams.find(`events.compat.${run}.x`);
    check(found === env.stream, `find by subject gave ${JSON.stringify(found)}`);
  },

  js_pull_fetch: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `events.compat.${run}.fetch`;
    await jsPublishN(ctx, nc, subject, 3);
    const jsm = await jetstreamManager(nc);
    const name = `compat-${run}-fetch`;
    ctx.step("add pull consumer");
    await jsm.consumers.add(env.stream, { durable_name: name, filter_subject: subject, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All });
    ctx.defer(() => jsm.consumers.delete(env.stream, name));
    const consumer = await jetstream(nc).consumers.get(env.stream, name);
    ctx.step("fetch 3");
    const msgs = await collect(await consumer.fetch({ max_messages: 3, expires: 5000 }));
    for (const m of msgs) m.ack();
    const seen = msgs.map((m) => [m.subject, m.string()]);
    check(isDeepStrictEqual(seen, [0, 1, 2].map((i) => [subject, `m${i}`])), `fetched ${JSON.stringify(seen)}`);
  },

  js_consume: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `events.compat.${run}.consume`;
    await jsPublishN(ctx, nc, subject, 3);
    const jsm = await jetstreamManager(nc);
    const name = `compat-${run}-consume`;
    ctx.step("add pull consumer");
    await jsm.consumers.add(env.stream, { durable_name: name, filter_subject: subject, ack_policy: AckPolicy.Explicit });
    ctx.defer(() => jsm.consumers.delete(env.stream, name));
    const consumer = await jetstream(nc).consumers.get(env.stream, name);
    ctx.step("consume 3");
    const messages = await consumer.consume({ max_messages: 10 });
    const seen: string[] = [];
    for await (const m of messages) {
      seen.push(`${m.subject}:${m.string()}`);
      m.ack();
      if (seen.length === 3) break;
    }
    check(isDeepStrictEqual(seen, [0, 1, 2].map((i) => `${subject}:m${i}`)), `consumed ${JSON.stringify(seen)}`);
  },

  js_ordered: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `events.compat.${run}.ordered`;
    await jsPublishN(ctx, nc, subject, 3);
    ctx.step("ordered consumer");
    const consumer = await jetstream(nc).consumers.get(env.stream, { filter_subjects: subject });
    const messages = await consumer.consume();
    const seen: Array<[string, number]> = [];
    for await (const m of messages) {
      seen.push([m.subject, m.info.streamSequence]);
      if (seen.length === 3) break;
    }
    check(
      seen.every(([s]) => s === subject) && seen.every(([, seq], i) => i === 0 || seq > seen[i - 1]![1]),
      `ordered consumer yielded ${JSON.stringify(seen)}`,
    );
  },

  js_push_deliver: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `events.compat.${run}.push`;
    await jsPublishN(ctx, nc, subject, 3);
    const jsm = await jetstreamManager(nc);
    const name = `compat-${run}-push`;
    const deliver = `compat.${run}.push-deliver`;
    ctx.step("add push consumer with a deliver subject");
    const ci = await jsm.consumers.add(env.stream, { durable_name: name, deliver_subject: deliver, filter_subject: subject, ack_policy: AckPolicy.Explicit });
    ctx.defer(() => jsm.consumers.delete(env.stream, name));
    check(ci.config.deliver_subject === deliver, `consumer's deliver_subject ${JSON.stringify(ci.config.deliver_subject)}`);
    ctx.step("consume the push consumer");
    const consumer = await jetstream(nc).consumers.getPushConsumer(env.stream, name);
    const messages = await consumer.consume();
    const seen: string[] = [];
    for await (const m of messages) {
      seen.push(`${m.subject}:${m.string()}`);
      m.ack();
      if (seen.length === 3) break;
    }
    check(isDeepStrictEqual(seen, [0, 1, 2].map((i) => `${subject}:m${i}`)), `delivered ${JSON.stringify(seen)}`);
  },

  js_ack_nak_term_wpi: async (ctx) => {
    const nc = await edge(ctx);
    const subject = `events.compat.${run}.acks`;
    await jsPublishN(ctx, nc, subject, 3);
    const jsm = await jetstreamManager(nc);
    const name = `compat-${run}-acks`;
    ctx.step("add pull consumer");
    await jsm.consumers.add(env.stream, { durable_name: name, filter_subject: subject, ack_policy: AckPolicy.Explicit, ack_wait: 30_000_000_000 });
    ctx.defer(() => jsm.consumers.delete(env.stream, name));
    const consumer = await jetstream(nc).consumers.get(env.stream, name);
    ctx.step("fetch 3");
    const first = await collect(await consumer.fetch({ max_messages: 3, expires: 5000 }));
    check(first.length === 3, `fetched ${first.length} of 3`);
    const [a, b, c] = first as [JsMsg, JsMsg, JsMsg];
    ctx.step("in progress, then nak the first");
    a.working();
    a.nak();
    ctx.step("term the second");
    b.term();
    ctx.step("ack the third (double ack)");
    check(await c.ackAck(), "the ack of the third was not confirmed");
    ctx.step("fetch the nak'd message again");
    const again = await collect(await consumer.fetch({ max_messages: 1, expires: 5000 }));
    check(again[0]?.string() === "m0" && again[0].redelivered && again[0].info.deliveryCount === 2, `redelivery: ${JSON.stringify(again.map((m) => [m.string(), m.info.deliveryCount]))}`);
    check(await again[0].ackAck(), "the ack of the redelivered message was not confirmed");
    ctx.step("consumer info: nothing pending");
    let info = await jsm.consumers.info(env.stream, name);
    for (let i = 0; i < 20 && (info.num_ack_pending !== 0 || info.num_pending !== 0); i++) {
      await delay(100);
      info = await jsm.consumers.info(env.stream, name);
    }
    check(info.num_ack_pending === 0 && info.num_pending === 0, `consumer still has ack_pending ${info.num_ack_pending}, pending ${info.num_pending}`);
  },

  js_consumer_info_list: async (ctx) => {
    const nc = await edge(ctx);
    const jsm = await jetstreamManager(nc);
    const name = `compat-${run}-info`;
    const filter = `events.compat.${run}.info`;
    ctx.step("add consumer");
    await jsm.consumers.add(env.stream, { durable_name: name, filter_subject: filter, ack_policy: AckPolicy.Explicit });
    ctx.defer(() => jsm.consumers.delete(env.stream, name));
    ctx.step("consumer info");
    const ci = await jsm.consumers.info(env.stream, name);
    check(ci.name === name && ci.stream_name === env.stream && ci.config.filter_subject === filter, `info: ${JSON.stringify({ name: ci.name, stream: ci.stream_name, filter: ci.config.filter_subject })}`);
    noPrefix("consumer info", ci);
    ctx.step("consumer list");
    const list = await collect(jsm.consumers.list(env.stream));
    const mine = list.find((c) => c.name === name);
    check(mine?.config.filter_subject === filter, `list: ${JSON.stringify(list.map((c) => [c.name, c.config.filter_subject]))}`);
    noPrefix("consumer list", list);
  },

  js_msg_get_by_subject: async (ctx) => {
    const nc = await edge(ctx);
    const js = jetstream(nc);
    const subject = `events.compat.${run}.get`;
    ctx.step("publish two");
    await js.publish(subject, "v1");
    const ack = await js.publish(subject, "v2");
    const jsm = await jetstreamManager(nc);
    ctx.step("get the last message by subject");
    const sm = await jsm.streams.getMessage(env.stream, { last_by_subj: subject });
    check(sm && sm.subject === subject && sm.string() === "v2" && sm.seq === ack.seq, `got ${JSON.stringify(sm && { subject: sm.subject, data: sm.string(), seq: sm.seq })}`);
  },

  kv_put_get: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step(`bind KV ${env.kv}`);
    const kv = await new Kvm(jetstream(nc)).open(env.kv);
    const key = `put.${run}`;
    ctx.step("put");
    const seq = await kv.put(key, "v1");
    ctx.step("get");
    const e = await kv.get(key);
    check(e && e.key === key && e.string() === "v1" && e.revision === seq, `get: ${JSON.stringify(e && { key: e.key, value: e.string(), revision: e.revision })}`);
  },

  kv_watch: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step(`bind KV ${env.kv}`);
    const kv = await new Kvm(jetstream(nc)).open(env.kv);
    const prefix = `watch.${run}`;
    ctx.step("watch");
    const watcher = await kv.watch({ key: `${prefix}.>` });
    ctx.defer(() => watcher.stop());
    const seen: string[] = [];
    void (async () => {
      for await (const e of watcher) seen.push(`${e.key}=${e.string()}:${e.operation}`);
    })().catch((err: unknown) => ctx.note(`watch ended: ${describeError(err)}`));
    ctx.step("put, put, delete");
    await kv.put(`${prefix}.a`, "1");
    await kv.put(`${prefix}.b`, "2");
    await kv.delete(`${prefix}.a`);
    ctx.step("watch sees the three changes");
    await until(() => seen.length >= 3, 5000, `3 watch updates (seen ${JSON.stringify(seen)})`);
    check(isDeepStrictEqual(seen, [`${prefix}.a=1:PUT`, `${prefix}.b=2:PUT`, `${prefix}.a=:DEL`]), `watch saw ${JSON.stringify(seen)}`);
  },

  kv_history: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step(`bind KV ${env.kv}`);
    const kv = await new Kvm(jetstream(nc)).open(env.kv);
    const key = `hist.${run}`;
    ctx.step("put three values");
    for (const v of ["1", "2", "3"]) await kv.put(key, v);
    ctx.step("history");
    const h = await collect(await kv.history({ key }));
    const values = h.map((e) => `${e.key}=${e.string()}`);
    check(isDeepStrictEqual(values, ["1", "2", "3"].map((v) => `${key}=${v}`)), `history ${JSON.stringify(values)}`);
  },

  kv_keys: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step(`bind KV ${env.kv}`);
    const kv = await new Kvm(jetstream(nc)).open(env.kv);
    const base = `keys.${run}`;
    ctx.step("put two keys");
    await kv.put(`${base}.a`, "1");
    await kv.put(`${base}.b`, "2");
    ctx.step("keys");
    const keys = (await collect(await kv.keys(`${base}.*`))).sort();
    check(isDeepStrictEqual(keys, [`${base}.a`, `${base}.b`]), `keys ${JSON.stringify(keys)}`);
    const all = await collect(await kv.keys());
    check(all.includes(`${base}.a`) && !all.some((k) => k.startsWith(prefixed)), `unfiltered keys ${JSON.stringify(all.slice(0, 20))}`);
  },

  obj_put_get: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step(`open object store ${env.obj}`);
    const os = await new Objm(jetstream(nc)).open(env.obj);
    const name = `blob-${run}`;
    const data = randomBytes(300 * 1024);
    ctx.step("put 300 KiB");
    const info = await os.putBlob({ name }, data);
    check(info.size === data.length && info.chunks > 1, `put info ${JSON.stringify({ size: info.size, chunks: info.chunks })}`);
    ctx.step("get");
    const back = await os.getBlob(name);
    check(back && Buffer.from(back).equals(data), `got ${back ? back.length : "nothing"} bytes back, different from what was put`);
  },

  obj_list: async (ctx) => {
    const nc = await edge(ctx);
    ctx.step(`open object store ${env.obj}`);
    const os = await new Objm(jetstream(nc)).open(env.obj);
    const name = `list-${run}`;
    ctx.step("put");
    await os.putBlob({ name }, new TextEncoder().encode("listed"));
    ctx.step("list");
    const names = (await os.list()).map((i) => i.name);
    check(names.includes(name), `list ${JSON.stringify(names)}`);
  },

  service_call: async (ctx) => {
    const nc = await edge(ctx);
    const caller = await edge(ctx);
    ctx.step("add service");
    const svc = await new Svcm(services(nc)).add({ name: `compat-${run}`, version: "1.0.0", description: "compat suite" });
    ctx.defer(() => svc.stop());
    const subject = `compat.${run}.svc-echo`;
    svc.addEndpoint("echo", { subject, handler: (_e, m) => m.respond(m.data) });
    await nc.flush();
    ctx.step("call the endpoint");
    const reply = await caller.request(subject, "hello", { timeout: 5000 });
    check(reply.string() === "hello", `reply ${JSON.stringify(reply.string())}`);
  },

  service_discovery: async (ctx) => {
    const nc = await edge(ctx);
    const observer = await edge(ctx);
    const own = `compat-${run}-disc`;
    ctx.step("add service");
    const svc = await new Svcm(services(nc)).add({ name: own, version: "1.0.0" });
    ctx.defer(() => svc.stop());
    svc.addEndpoint("echo", { subject: `compat.${run}.disc-echo`, handler: (_e, m) => m.respond(m.data) });
    await nc.flush();
    const client = new Svcm(services(observer)).client();
    for (const verb of ["ping", "info", "stats"] as const) {
      ctx.step(`$SRV.${verb.toUpperCase()}`);
      const names = (await collect(await client[verb]())).map((r) => r.name);
      check(names.includes(own), `${verb} did not find the program's own service: ${JSON.stringify(names)}`);
      check(!names.includes("globex-decoy"), `${verb} found globex's service: ${JSON.stringify(names)}`);
    }
    ctx.step("$SRV.PING by name");
    const byName = await collect(await client.ping(own));
    check(byName.length === 1 && byName[0]!.id === svc.info().id, `ping ${own}: ${JSON.stringify(byName)}`);
  },

  platform_connect: async (ctx) => {
    const started = Date.now();
    const nc = await admin(ctx);
    promptConnect(Date.now() - started);
    ctx.step("flush");
    await nc.flush();
  },

  platform_sub_wildcard: async (ctx) => {
    const a = await admin(ctx);
    const e = await edge(ctx);
    const expected = `${env.tenant}.events.compat.${run}`;
    let got: string | undefined;
    a.subscribe("*.events.>", { callback: (_err, m) => void (m.subject === expected ? (got = m.string()) : undefined) });
    await a.flush();
    ctx.step(`edge publishes events.compat.${run}`);
    e.publish(`events.compat.${run}`, "from-edge");
    await until(() => got !== undefined, 5000, `${expected} at the admin's *.events.> subscription`);
    check(got === "from-edge", `payload ${JSON.stringify(got)}`);
  },

  platform_publish_into_tenant: async (ctx) => {
    const a = await admin(ctx);
    const e = await edge(ctx);
    const got: string[] = [];
    e.subscribe(`jobs.${run}`, { callback: (_err, m) => void got.push(`${m.subject}:${m.string()}`) });
    await e.flush();
    ctx.step(`admin publishes ${env.tenant}.jobs.${run}`);
    a.publish(`${env.tenant}.jobs.${run}`, "job");
    await until(() => got.length > 0, 5000, `jobs.${run} at the edge`);
    check(isDeepStrictEqual(got, [`jobs.${run}:job`]), `edge received ${JSON.stringify(got)}`);
  },

  platform_request_into_tenant: async (ctx) => {
    const a = await admin(ctx);
    const e = await edge(ctx);
    e.subscribe(`svc.${run}`, { callback: (_err, m) => void m.respond(`edge:${m.string()}`) });
    await e.flush();
    ctx.step(`admin requests ${env.tenant}.svc.${run}`);
    const reply = await a.request(`${env.tenant}.svc.${run}`, "hi", { timeout: 5000 });
    check(reply.string() === "edge:hi", `reply ${JSON.stringify(reply.string())}`);
  },

  platform_js_consume_ack: async (ctx) => {
    const e = await edge(ctx);
    ctx.step("edge JetStream publish");
    await jetstream(e).publish(`events.compat.${run}`, "for-admin");
    const a = await admin(ctx);
    const apiPrefix = `$JS.${env.tenant}.API`;
    ctx.step(`JetStream manager with API prefix ${apiPrefix}`);
    const jsm = await jetstreamManager(a, { apiPrefix });
    const name = `compat-${run}-plat`;
    const filter = `${env.tenant}.events.compat.${run}`;
    ctx.step("add consumer");
    await jsm.consumers.add(env.stream, { durable_name: name, filter_subject: filter, ack_policy: AckPolicy.Explicit });
    ctx.defer(() => jsm.consumers.delete(env.stream, name));
    const consumer = await jetstream(a, { apiPrefix }).consumers.get(env.stream, name);
    ctx.step("fetch");
    const [m] = await collect(await consumer.fetch({ max_messages: 1, expires: 5000 }));
    check(m, "fetched nothing");
    check(m.subject === filter, `subject ${m.subject}`);
    ctx.step("metadata (m.info)");
    const info = m.info;
    check(info.stream === env.stream && info.streamSequence > 0, `metadata ${JSON.stringify({ stream: info.stream, seq: info.streamSequence })}`);
    ctx.step("ack (double ack)");
    check(await m.ackAck(), "the ack was not confirmed");
  },

  platform_kv_write: async (ctx) => {
    const a = await admin(ctx);
    const apiPrefix = `$JS.${env.tenant}.API`;
    ctx.step(`admin binds KV ${env.kv} with API prefix ${apiPrefix}`);
    const akv = await new Kvm(jetstream(a, { apiPrefix })).open(env.kv);
    const key = `plat.${run}`;
    ctx.step("admin put");
    await akv.put(key, "from-admin");
    const e = await edge(ctx);
    ctx.step("edge get");
    const entry = await (await new Kvm(jetstream(e)).open(env.kv)).get(key);
    check(entry?.string() === "from-admin", `edge read ${JSON.stringify(entry?.string())}`);
  },
});

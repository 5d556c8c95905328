/**
 * One tenant's input never takes anyone else down (issue 12, items 1–3): adversarial JetStream
 * bodies in both directions never throw out of the translation, a fault inside one session's
 * processing ends that session only while the gateway serves everyone else, replies the gateway
 * waits for are bounded in count, bytes and time, and reply subjects come back byte for byte.
 */
import test from "ava";
import fc from "fast-check";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { TenantStores, tenantSubjectMapper } from "../common/namespaces.ts";
import { EdgeRewriter } from "../gateway/edge-rewriter.ts";
import { PENDING_JS_REPLIES } from "../gateway/pending-replies.ts";
import { classifyJetStreamRequest, MAX_JSON_DEPTH, nestingExceeds, translateRequest, translateResponse } from "../gateway/jetstream-api.ts";
import type { RewriterEvents } from "../gateway/session-rewriter.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { RawClient, within } from "./helpers/raw-client.ts";

const FAULT_MARKER = "BOOM-7f3a";
// Read by each session as it starts: the deployment below injects a fault for payloads holding the marker.
process.env.TENANT_GATEWAY_FAULT = `session_throw:${FAULT_MARKER}`;

const acme = tenantSubjectMapper("acme-corp");
const events: RewriterEvents = { ended: () => undefined, refused: () => undefined, dropped: () => undefined, jetStreamRefused: () => undefined, natsError: () => undefined, natsLameDuck: () => undefined };

// ---- Adversarial JSON, no network ----------------------------------------------------------------

/** Arrays and objects nested `depth` deep, with a valid filter subject next to them. */
function deeplyNested(depth: number, open = "[", close = "]"): Buffer {
  return Buffer.from(`{"stream_name":"events","config":{"filter_subject":"events.>","x":${open.repeat(depth)}${close.repeat(depth)}}}`);
}

const nastyJson: fc.Arbitrary<Buffer> = fc.oneof(
  fc.integer({ min: 1, max: 20_000 }).map((d) => deeplyNested(d)),
  fc.integer({ min: 1, max: 20_000 }).map((d) => deeplyNested(d, '{"a":', "}")),
  // Deep nesting inside a string is not nesting at all.
  fc.integer({ min: 1, max: 5000 }).map((d) => Buffer.from(`{"config":{"filter_subject":"events.>","description":"${"[".repeat(d)}\\\\\\"${"{".repeat(d)}"}}`)),
  fc.constantFrom(
    '{"config":{"filter_subject":"events.\\ud800"}}',
    '{"config":{"filter_subject":"events.\\u0000x"}}',
    '{"__proto__":{"filter_subject":"globex.>"},"config":{"filter_subject":"events.>"}}',
    '{"config":{"filter_subject":["events.>"]}}',
    '{"config":{"filter_subject":"globex.>","deliver_subject":"globex.x"},"streams":[{"config":{"subjects":["globex.>"]}}]}',
    '{"config":{"filter_subjects":"events.>"}}',
    '{"config":null,"config":{"deliver_subject":"$JS.API.STREAM.DELETE.events"}}',
    '{"last_by_subj":1e999}',
    "\ufeff{}",
    "[]",
    "null",
  ).map((s) => Buffer.from(s)),
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.concat([Buffer.from('{"config":{"filter_subject":"'), Buffer.from(a), Buffer.from('"}}')])),
  fc.json({ depthSize: "large" }).map((s) => Buffer.from(s)),
);

/** Every value of a JetStream response that a client reads as a subject (or a map keyed by one). */
function subjectFields(api: string, response: unknown): unknown[] {
  const r = (response ?? {}) as Record<string, Record<string, unknown> | undefined>;
  const fromConfig = (c: Record<string, unknown> | undefined): unknown[] => [c?.filter_subject, c?.filter_subjects, c?.deliver_subject, c?.subjects, (c?.republish as Record<string, unknown> | undefined)?.src, (c?.republish as Record<string, unknown> | undefined)?.dest];
  if (api.includes(".MSG.GET.")) return [r.message?.subject];
  const infos = api.endsWith(".LIST") ? ([...(Array.isArray(r.streams) ? r.streams : []), ...(Array.isArray(r.consumers) ? r.consumers : [])] as Record<string, Record<string, unknown>>[]) : [r];
  return infos.flatMap((i) => [...fromConfig(i.config), i.state?.subjects]);
}

const apiSubjects = ["$JS.API.CONSUMER.CREATE.events", "$JS.API.CONSUMER.DURABLE.CREATE.events.d1", "$JS.API.STREAM.MSG.GET.events", "$JS.API.DIRECT.GET.events", "$JS.API.STREAM.INFO.events", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.PURGE.OBJ_blobs"];
const stores = new TenantStores([{ kind: "object", name: "blobs", edge: "read-write", platform: "read" }]);

test("adversarial JSON in a JetStream request never throws: it is translated or refused with a JetStream error", (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...apiSubjects), nastyJson, (subject, body) => {
      const op = classifyJetStreamRequest(subject, stores);
      const out = translateRequest(op, subject, body, acme, stores);
      if (out.kind === "refuse") return out.refusal.code >= 400 && out.refusal.errCode > 0;
      return out.body === undefined || !nestingExceeds(out.body, MAX_JSON_DEPTH);
    }),
    { numRuns: 400 },
  );
  const refused = translateRequest(classifyJetStreamRequest(apiSubjects[0]!), apiSubjects[0]!, deeplyNested(6000), acme);
  t.like(refused, { kind: "refuse", refusal: { code: 400, errCode: 10025 } });
});

test("adversarial JSON in a JetStream response never throws and never reaches the client unchecked", (t) => {
  fc.assert(
    fc.property(fc.constantFrom("$JS.API.STREAM.INFO.events", "$JS.API.CONSUMER.INFO.events.c1", "$JS.API.STREAM.LIST", "$JS.API.STREAM.MSG.GET.events"), nastyJson, (subject, body) => {
      const out = translateResponse(classifyJetStreamRequest(subject), body, undefined, acme);
      // Passed as it is, or replaced by the gateway's own error, or translated: then no field the
      // client reads as a subject names anything outside the tenant. (Keys no client reads, such as
      // an own "__proto__", pass as NATS wrote them.)
      return out === body || !JSON.stringify(subjectFields(subject, JSON.parse(out.toString()))).includes("globex");
    }),
    { numRuns: 400 },
  );
  const deep = translateResponse(classifyJetStreamRequest("$JS.API.STREAM.INFO.events"), deeplyNested(6000), undefined, acme);
  t.like(JSON.parse(deep.toString()), { error: { code: 503 } });
});

test("the whole edge rewriter survives adversarial JetStream traffic both ways, split anywhere", (t) => {
  fc.assert(
    fc.property(nastyJson, nastyJson, fc.nat(), (request, reply, cut) => {
      const r = new EdgeRewriter("acme-corp", { maxPayload: 1 << 20, events, stores });
      const client = Buffer.concat([Buffer.from(`SUB _INBOX.x 1\r\nPUB $JS.API.CONSUMER.CREATE.events _INBOX.x ${request.length}\r\n`), request, Buffer.from("\r\n")]);
      const nats = Buffer.concat([Buffer.from(`MSG acme-corp._INBOX.x 1 ${reply.length}\r\n`), reply, Buffer.from("\r\n")]);
      const at = cut % client.length;
      r.clientData(client.subarray(0, at));
      r.clientData(client.subarray(at));
      const back = r.upstreamData(nats);
      return r.ended === undefined && (back === undefined || !back.toString("latin1").includes("acme-corp."));
    }),
    { numRuns: 300 },
  );
  t.pass();
});

test("JetStream replies the gateway waits for are bounded in count, bytes and time", (t) => {
  let now = 1_000_000;
  const r = new EdgeRewriter("acme-corp", { maxPayload: 1 << 20, events, clock: () => now });
  // The report's case: 1,023 requests never answered, each with a reply subject of ~3.7 KB.
  const reply = (i: number): string => `_INBOX.${"r".repeat(3700)}.${i}`;
  for (let i = 0; i < 1023; i++) r.clientData(Buffer.from(`PUB $JS.API.STREAM.INFO.events ${reply(i)} 0\r\n\r\n`));
  const held = r.pendingJetStreamReplies;
  t.true(held.bytes <= PENDING_JS_REPLIES.maxBytes, `${held.bytes} bytes held`);
  t.true(held.count > 0 && held.count < 20);
  for (let i = 0; i < 1000; i++) r.clientData(Buffer.from(`PUB $JS.API.STREAM.INFO.events _INBOX.s.${i} 0\r\n\r\n`));
  t.is(r.pendingJetStreamReplies.count, PENDING_JS_REPLIES.maxCount);
  // Past the time limit, the next request finds the rest expired.
  now += PENDING_JS_REPLIES.ttlMs + 1;
  r.clientData(Buffer.from("PUB $JS.API.STREAM.INFO.events _INBOX.late 0\r\n\r\n"));
  t.is(r.pendingJetStreamReplies.count, 1);
});

// ---- Live: a real nats-server, the gateway, stock and raw clients --------------------------------

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "globex"] });
});

test.after.always(async () => {
  await dep?.stop();
});

/** A globex client that keeps doing round trips while acme-corp's sessions are attacked. */
async function bystander(t: { teardown: (f: () => Promise<void>) => void }): Promise<{ nc: NatsConnection; roundTrip: () => Promise<void> }> {
  const nc = await dep.v3(await dep.edge("globex", "bystander"));
  t.teardown(() => nc.close());
  nc.subscribe("svc.echo", {
    callback: (_e, m) => {
      m.respond(m.data);
    },
  });
  await nc.flush();
  return {
    nc,
    roundTrip: async () => {
      const r = await nc.request("svc.echo", "ping", { timeout: 5000 });
      if (r.string() !== "ping") throw new Error("bystander round trip failed");
    },
  };
}

test.serial("a JetStream request nested 6,000 levels deep gets a JetStream error; the gateway and other tenants carry on", async (t) => {
  const other = await bystander(t);
  await other.roundTrip();
  const nc = await dep.v3(await dep.edge("acme-corp", "deep-request"));
  t.teardown(() => nc.close());
  const reply = await nc.request("$JS.API.CONSUMER.CREATE.events", deeplyNested(6000), { timeout: 5000 });
  t.like(reply.json(), { error: { code: 400, err_code: 10025 } });
  t.regex((reply.json() as { error: { description: string } }).error.description, /nests deeper than 64 levels/);
  // The same session goes on with ordinary JetStream work.
  t.is((await (await jetstreamManager(nc)).streams.info("events")).config.subjects[0], "events.>");
  await other.roundTrip();
});

test.serial("a client's own message on its pending JetStream reply subject is refused; the real reply arrives translated", async (t) => {
  const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "trapper"));
  t.teardown(() => client.socket.destroy());
  const { end } = await client.handshake();
  const deep = deeplyNested(6000);
  // In one write: the reply subscription, the request, and the client's own "reply" on that subject.
  await client.write(Buffer.concat([Buffer.from(`SUB trap 1\r\nPUB $JS.API.STREAM.INFO.events trap 0\r\n\r\nPUB trap ${deep.length}\r\n`), deep, Buffer.from("\r\nPING\r\n")]));
  const { end: msgEnd, match } = await client.waitFor(/MSG trap 1 (\d+)\r\n/, end);
  const body = JSON.parse(await client.next(Number(match[1]), msgEnd)) as { config: { subjects: string[] } };
  t.deepEqual(body.config.subjects, ["events.>"], "JetStream's answer, in the edge view");
  t.regex(client.received(end), /-ERR 'Permissions Violation for Publish to "trap"'/);
  t.false(client.received(end).includes("acme-corp"));
});

test.serial("a non-ASCII reply subject comes back exactly as the client wrote it", async (t) => {
  const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "unicode"));
  t.teardown(() => client.socket.destroy());
  const { end } = await client.handshake();
  const inbox = Buffer.from("_INBOX.café.日本", "utf8");
  await client.write(Buffer.concat([Buffer.from("SUB "), inbox, Buffer.from(" 1\r\nPUB $JS.API.STREAM.INFO.events "), inbox, Buffer.from(" 0\r\n\r\n")]));
  const { match } = await client.waitFor(/MSG (\S+) 1 \d+\r\n/, end);
  t.deepEqual(Buffer.from(match[1]!, "latin1"), inbox, "the same bytes, not read as latin1 and written as UTF-8");
});

test.serial("an exception inside one session's processing ends that session only; the gateway serves everyone else", async (t) => {
  const other = await bystander(t);
  const sameTenant = await dep.v3(await dep.edge("acme-corp", "neighbour"));
  t.teardown(() => sameTenant.close());
  const victim = await dep.v3(await dep.edge("acme-corp", "faulty"));
  const closed = victim.closed();
  victim.publish("events.anything", `payload with ${FAULT_MARKER} inside`);
  await within(closed, 10_000, "the faulty session closing");
  const logged = await dep.logs.waitFor((l) => l.event === "session_internal_error" && l.component === "faulty");
  t.is(logged.code, "internal_error");
  await other.roundTrip();
  t.is((await sameTenant.request("$JS.API.INFO", "", { timeout: 5000 })).json<{ type: string }>().type, "io.nats.jetstream.api.v1.account_info_response");
  // And the same identity gets a new session at once.
  const again = await dep.v3(await dep.edge("acme-corp", "faulty"));
  await again.flush();
  await again.close();
});

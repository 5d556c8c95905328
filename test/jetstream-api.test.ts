import test from "ava";
import fc from "fast-check";
import {
  classifyJetStreamRequest,
  jetStreamErrorResponse,
  translateDirectGetHeaders,
  translateRequest,
  translateResponse,
} from "../gateway/jetstream-api.ts";
import type { JetStreamApiOperation, JetStreamApiVerb, JetStreamRequestTranslation } from "../gateway/jetstream-api.ts";
import { edgePublishPermissions, tenantSubjectMapper, TenantStores } from "../common/namespaces.ts";

const acme = tenantSubjectMapper("acme-corp");

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const parse = (b: Buffer | undefined): Record<string, unknown> => JSON.parse((b ?? Buffer.alloc(0)).toString("utf8")) as Record<string, unknown>;

function request(subject: string, body?: Buffer | object): { op: JetStreamApiOperation; out: JetStreamRequestTranslation } {
  const op = classifyJetStreamRequest(subject);
  const buf = body === undefined || Buffer.isBuffer(body) ? body : json(body);
  return { op, out: translateRequest(op, subject, buf, acme) };
}

function forwarded(out: JetStreamRequestTranslation): { subject: string; body: Buffer | undefined } {
  if (out.kind !== "forward") throw new Error(`expected the request to be forwarded, was refused: ${out.refusal.description}`);
  return out;
}

function refused(out: JetStreamRequestTranslation) {
  if (out.kind !== "refuse") throw new Error(`expected a refusal, was forwarded to ${out.subject}`);
  return out.refusal;
}

// --- realistic bodies, as nats.js v3 / nats v2 and nats-server 2.9 produce them -----------------

/** nats.js v3 `jsm.consumers.add("events", {durable_name, filter_subject})` on a 2.9 server. */
const consumerCreateBody = {
  config: {
    durable_name: "poller-health",
    name: "poller-health",
    deliver_policy: "all",
    ack_policy: "explicit",
    ack_wait: 30_000_000_000,
    replay_policy: "instant",
    filter_subject: "events.poller.>",
    max_ack_pending: 1000,
  },
  stream_name: "events",
  action: "create",
  pedantic: false,
};

/** What 2.9.10 answers to it (server/consumer.go ConsumerInfo). */
const consumerCreateResponse = {
  type: "io.nats.jetstream.api.v1.consumer_create_response",
  stream_name: "events",
  name: "poller-health",
  created: "2024-05-01T10:00:00.123456789Z",
  config: {
    durable_name: "poller-health",
    name: "poller-health",
    deliver_policy: "all",
    ack_policy: "explicit",
    ack_wait: 30000000000,
    max_deliver: -1,
    filter_subject: "acme-corp.events.poller.>",
    replay_policy: "instant",
    max_waiting: 512,
    max_ack_pending: 1000,
    num_replicas: 0,
  },
  delivered: { consumer_seq: 0, stream_seq: 0 },
  ack_floor: { consumer_seq: 0, stream_seq: 0 },
  num_ack_pending: 0,
  num_redelivered: 0,
  num_waiting: 0,
  num_pending: 17,
  cluster: { leader: "NBQ3WTZ3JWPNZ4T2WQMQLZWQGFBAWVAMJPBFMWHIIHHMC5HX2RQ4XXVP" },
};

function streamInfo(subjects: string[], stateSubjects?: Record<string, number>) {
  return {
    config: {
      name: "events",
      subjects,
      retention: "limits",
      max_consumers: -1,
      max_msgs: -1,
      max_bytes: -1,
      max_age: 604800000000000,
      max_msgs_per_subject: -1,
      max_msg_size: -1,
      discard: "old",
      storage: "file",
      num_replicas: 1,
      duplicate_window: 120000000000,
      allow_direct: true,
      mirror_direct: false,
      sealed: false,
      deny_delete: false,
      deny_purge: false,
      allow_rollup_hdrs: false,
    },
    created: "2024-05-01T09:00:00.000000001Z",
    state: {
      messages: 6,
      bytes: 612,
      first_seq: 1,
      first_ts: "2024-05-01T09:00:01Z",
      last_seq: 6,
      last_ts: "2024-05-01T09:00:06Z",
      num_subjects: stateSubjects === undefined ? 2 : Object.keys(stateSubjects).length,
      ...(stateSubjects === undefined ? {} : { subjects: stateSubjects }),
      consumer_count: 1,
    },
  };
}

// --- consumer create -----------------------------------------------------------------------------

test("consumer create maps the filter in the subject and in the body, and back in the response", (t) => {
  const subject = "$JS.API.CONSUMER.CREATE.events.poller-health.events.poller.>";
  const { op, out } = request(subject, consumerCreateBody);
  t.like(op, { verb: "CONSUMER.CREATE", stream: "events", consumer: "poller-health", subject: "events.poller.>" });
  const fwd = forwarded(out);
  t.is(fwd.subject, "$JS.API.CONSUMER.CREATE.events.poller-health.acme-corp.events.poller.>");
  t.deepEqual(parse(fwd.body), { ...consumerCreateBody, config: { ...consumerCreateBody.config, filter_subject: "acme-corp.events.poller.>" } });

  const edge = parse(translateResponse(op, json(consumerCreateResponse), undefined, acme));
  t.deepEqual(edge, { ...consumerCreateResponse, config: { ...consumerCreateResponse.config, filter_subject: "events.poller.>" } });
});

test("a one-token filter in the consumer create subject is mapped too", (t) => {
  const fwd = forwarded(request("$JS.API.CONSUMER.CREATE.events.c1.jobs", { stream_name: "events", config: { name: "c1", filter_subject: "jobs" } }).out);
  t.is(fwd.subject, "$JS.API.CONSUMER.CREATE.events.c1.acme-corp.jobs");
  t.is((parse(fwd.body).config as Record<string, unknown>).filter_subject, "acme-corp.jobs");
});

test("nats v2 legacy ephemeral push consumer: deliver subject and filter are mapped", (t) => {
  const body = {
    stream_name: "events",
    config: { deliver_subject: "_INBOX.9ZQ7X2KJ3V", deliver_policy: "all", ack_policy: "explicit", filter_subject: "events.poller.health", idle_heartbeat: 5000000000, flow_control: true },
  };
  const { op, out } = request("$JS.API.CONSUMER.CREATE.events", body);
  t.like(op, { verb: "CONSUMER.CREATE", stream: "events", consumer: undefined, subject: undefined });
  const fwd = forwarded(out);
  t.is(fwd.subject, "$JS.API.CONSUMER.CREATE.events");
  t.deepEqual(parse(fwd.body).config, { ...body.config, deliver_subject: "acme-corp._INBOX.9ZQ7X2KJ3V", filter_subject: "acme-corp.events.poller.health" });
});

test("durable create and filter_subjects (2.10 multi-filter) are mapped; unknown fields kept", (t) => {
  const body = { stream_name: "events", config: { durable_name: "d1", filter_subjects: ["events.a.>", "events.b"], metadata: { owner: "x" } }, extra: [1, 2] };
  const { op, out } = request("$JS.API.CONSUMER.DURABLE.CREATE.events.d1", body);
  t.like(op, { verb: "CONSUMER.DURABLE.CREATE", stream: "events", consumer: "d1" });
  t.deepEqual(parse(forwarded(out).body), { ...body, config: { ...body.config, filter_subjects: ["acme-corp.events.a.>", "acme-corp.events.b"] } });
});

const refusedConsumerConfigs: Array<[string, Record<string, unknown>, number]> = [
  ["deliver subject with a wildcard", { deliver_subject: "_INBOX.*" }, 10079],
  ["deliver subject into the JetStream API", { deliver_subject: "$JS.API.STREAM.DELETE.events" }, 10079],
  ["filter on $SYS", { filter_subject: "$SYS.>" }, 10003],
  ["filter with an empty token", { filter_subject: "events..x" }, 10003],
  ["filter with > before the end", { filter_subject: "events.>.x" }, 10003],
  ["filter with a wildcard inside a token", { filter_subject: "events.po*" }, 10003],
  ["filter with a space", { filter_subject: "events x" }, 10003],
  ["filter_subjects with a $ subject", { filter_subjects: ["events.a", "$JS.ACK.>"] }, 10003],
  ["filter that is not a string", { filter_subject: 42 }, 10025],
  ["a key Go would read as deliver_subject", { Deliver_Subject: "$JS.API.INFO" }, 10025],
  ["a key Go folds onto filter_subject (long s)", { filter_\u017fubject: "$SYS.>" }, 10025],
];

for (const [name, config, errCode] of refusedConsumerConfigs) {
  test(`consumer create refused: ${name}`, (t) => {
    const r = refused(request("$JS.API.CONSUMER.CREATE.events.c1", { stream_name: "events", config }).out);
    t.is(r.code, 400);
    t.is(r.errCode, errCode);
    t.is(r.reply.headers, undefined);
    t.deepEqual(parse(r.reply.body), { type: "io.nats.jetstream.api.v1.consumer_create_response", error: { code: 400, err_code: errCode, description: r.description } });
  });
}

test("consumer create refused when Go would read a differently spelled config key", (t) => {
  const r = refused(request("$JS.API.CONSUMER.CREATE.events.c1", { stream_name: "events", Config: { deliver_subject: "$JS.API.INFO" } }).out);
  t.is(r.reason, "jetstream_api_invalid_json");
});

test("consumer create filter in the subject must be a subject the client may use", (t) => {
  const { op } = request("$JS.API.CONSUMER.CREATE.events.c1.$SYS.>");
  t.is(op.decision.kind, "refuse");
  if (op.decision.kind === "refuse") t.is(op.decision.refusal.reason, "jetstream_api_subject_refused");
});

// --- direct get ----------------------------------------------------------------------------------

test("direct get by subject maps the subject tail and the Nats-Subject header", (t) => {
  const { op, out } = request("$JS.API.DIRECT.GET.events.events.poller.health");
  t.like(op, { verb: "DIRECT.GET", stream: "events", subject: "events.poller.health" });
  const fwd = forwarded(out);
  t.is(fwd.subject, "$JS.API.DIRECT.GET.events.acme-corp.events.poller.health");
  t.is(fwd.body, undefined);

  // 2.9 getDirectRequest: a message without headers of its own.
  const hdr = Buffer.from(
    "NATS/1.0\r\nNats-Stream: events\r\nNats-Subject: acme-corp.events.poller.health\r\nNats-Sequence: 42\r\nNats-Time-Stamp: 2024-05-01T10:00:00.123456789Z\r\n\r\n",
  );
  t.is(
    translateDirectGetHeaders(hdr, acme).toString(),
    "NATS/1.0\r\nNats-Stream: events\r\nNats-Subject: events.poller.health\r\nNats-Sequence: 42\r\nNats-Time-Stamp: 2024-05-01T10:00:00.123456789Z\r\n\r\n",
  );
  const payload = Buffer.from('{"status":"up"}');
  t.is(translateResponse(op, payload, hdr, acme), payload);
});

test("direct get headers: stored headers kept byte for byte, foreign Nats-Subject removed", (t) => {
  // genHeader appends the server's headers after the message's own ones.
  const own = "NATS/1.0\r\nTrace-Id: caf\xe9\r\n";
  const hdr = Buffer.from(`${own}Nats-Stream: events\r\nNats-Subject: globex.events.x\r\nNats-Sequence: 7\r\nNats-Time-Stamp: 2024-05-01T10:00:00Z\r\n\r\n`, "latin1");
  const out = translateDirectGetHeaders(hdr, acme);
  t.is(out.toString("latin1"), `${own}Nats-Stream: events\r\nNats-Sequence: 7\r\nNats-Time-Stamp: 2024-05-01T10:00:00Z\r\n\r\n`);
});

test("direct get headers without Nats-Subject come back as the same buffer", (t) => {
  const hdr = Buffer.from("NATS/1.0 404 Message Not Found\r\n\r\n");
  t.is(translateDirectGetHeaders(hdr, acme), hdr);
});

test("direct get with a query body maps last_by_subj", (t) => {
  const fwd = forwarded(request("$JS.API.DIRECT.GET.events", { last_by_subj: "events.poller.health" }).out);
  t.is(fwd.subject, "$JS.API.DIRECT.GET.events");
  t.deepEqual(parse(fwd.body), { last_by_subj: "acme-corp.events.poller.health" });
});

test("direct get refusals are status replies, as the server sends them", (t) => {
  const { op } = request("$JS.API.DIRECT.GET.events.$SYS.config.x");
  if (op.decision.kind !== "refuse") return t.fail("expected a refusal");
  const { reply } = op.decision.refusal;
  t.is(reply.body.length, 0);
  t.regex(reply.headers?.toString() ?? "", /^NATS\/1\.0 400 [^\r\n]+\r\n\r\n$/);
});

// --- message get -----------------------------------------------------------------------------------

test("msg get last_by_subj round trip", (t) => {
  const { op, out } = request("$JS.API.STREAM.MSG.GET.events", { last_by_subj: "events.poller.health" });
  t.like(op, { verb: "STREAM.MSG.GET", stream: "events" });
  const fwd = forwarded(out);
  t.is(fwd.subject, "$JS.API.STREAM.MSG.GET.events");
  t.deepEqual(parse(fwd.body), { last_by_subj: "acme-corp.events.poller.health" });

  const response = {
    type: "io.nats.jetstream.api.v1.stream_msg_get_response",
    message: { subject: "acme-corp.events.poller.health", seq: 42, data: "eyJzdGF0dXMiOiJ1cCJ9", time: "2024-05-01T10:00:00.123456789Z" },
  };
  t.deepEqual(parse(translateResponse(op, json(response), undefined, acme)), { ...response, message: { ...response.message, subject: "events.poller.health" } });
});

test("msg get response: stored Nats-Subject header mapped, foreign subject removed", (t) => {
  const { op } = request("$JS.API.STREAM.MSG.GET.events", { seq: 3 });
  const hdrs = Buffer.from("NATS/1.0\r\nNats-Subject: acme-corp.events.a\r\n\r\n").toString("base64");
  const mine = parse(translateResponse(op, json({ type: "t", message: { subject: "acme-corp.x", seq: 3, hdrs } }), undefined, acme));
  t.is(Buffer.from((mine.message as { hdrs: string }).hdrs, "base64").toString(), "NATS/1.0\r\nNats-Subject: events.a\r\n\r\n");
  const foreign = parse(translateResponse(op, json({ type: "t", message: { subject: "globex.x", seq: 3 } }), undefined, acme));
  t.deepEqual(foreign.message, { seq: 3 });
});

test("a query without subjects is forwarded as the same buffer (no JSON round trip)", (t) => {
  const body = Buffer.from('{"seq":18446744073709551615}');
  t.is(forwarded(request("$JS.API.STREAM.MSG.GET.events", body).out).body, body);
});

test("a null body (async-nats's empty request) is forwarded as it is where a body is optional, refused where it is required", (t) => {
  const nul = Buffer.from("null");
  t.is(forwarded(request("$JS.API.STREAM.INFO.events", nul).out).body, nul);
  t.is(forwarded(request("$JS.API.STREAM.NAMES", nul).out).body, nul);
  t.like(refused(request("$JS.API.CONSUMER.CREATE.events", nul).out), { code: 400, errCode: 10025 });
});

// --- streams ---------------------------------------------------------------------------------------

test("stream info: config.subjects and state.subjects mapped back, a foreign key dropped", (t) => {
  const { op, out } = request("$JS.API.STREAM.INFO.events", { subjects_filter: ">" });
  t.like(op, { verb: "STREAM.INFO", stream: "events" });
  t.deepEqual(parse(forwarded(out).body), { subjects_filter: "acme-corp.>" });

  const response = {
    type: "io.nats.jetstream.api.v1.stream_info_response",
    total: 3,
    offset: 0,
    limit: 100000,
    ...streamInfo(["acme-corp.events.>"], { "acme-corp.events.poller.health": 4, "globex.events.poller.health": 9, "acme-corp.events.agent.up": 2 }),
  };
  const edge = parse(translateResponse(op, json(response), undefined, acme));
  const expected = streamInfo(["events.>"], { "events.poller.health": 4, "events.agent.up": 2 });
  t.deepEqual(edge, { ...response, config: expected.config, state: { ...response.state, subjects: expected.state.subjects } });
});

test("stream info: mirror and source filters, external prefixes and republish", (t) => {
  const { op } = request("$JS.API.STREAM.INFO.events");
  const info = streamInfo(["acme-corp.events.>", "globex.>"]);
  const response = {
    type: "io.nats.jetstream.api.v1.stream_info_response",
    ...info,
    config: {
      ...info.config,
      sources: [{ name: "logs", filter_subject: "acme-corp.logs.>" }, { name: "hub", filter_subject: "hub.x", external: { api: "$JS.hub.API", deliver: "acme-corp.deliver.hub" } }],
      republish: { src: "acme-corp.events.>", dest: "platform.events.>" },
    },
  };
  const edge = parse(translateResponse(op, json(response), undefined, acme)) as typeof response;
  t.deepEqual(edge.config.subjects, ["events.>"]);
  t.deepEqual(edge.config.sources, [{ name: "logs", filter_subject: "logs.>" }, { name: "hub", external: { deliver: "deliver.hub" } }]);
  t.deepEqual(edge.config.republish, { src: "events.>" });
});

test("stream names and list translate the subject filter", (t) => {
  const names = request("$JS.API.STREAM.NAMES", { offset: 0, subject: "events.poller.health" });
  t.deepEqual(parse(forwarded(names.out).body), { offset: 0, subject: "acme-corp.events.poller.health" });
  const reply = json({ type: "io.nats.jetstream.api.v1.stream_names_response", total: 1, offset: 0, limit: 1024, streams: ["events"] });
  t.is(translateResponse(names.op, reply, undefined, acme), reply);

  const list = request("$JS.API.STREAM.LIST", { offset: 0, subject: "logs.>" });
  t.deepEqual(parse(forwarded(list.out).body), { offset: 0, subject: "acme-corp.logs.>" });
  const listed = parse(translateResponse(list.op, json({ type: "t", total: 1, offset: 0, limit: 256, streams: [streamInfo(["acme-corp.logs.>"])] }), undefined, acme));
  t.deepEqual((listed.streams as Array<{ config: { subjects: string[] } }>)[0]?.config.subjects, ["logs.>"]);
});

test("stream names without a body are forwarded as they are", (t) => {
  const fwd = forwarded(request("$JS.API.STREAM.NAMES").out);
  t.is(fwd.subject, "$JS.API.STREAM.NAMES");
  t.is(fwd.body, undefined);
});

// --- consumers --------------------------------------------------------------------------------------

test("consumer list maps every consumer's config", (t) => {
  const { op } = request("$JS.API.CONSUMER.LIST.events", { offset: 0 });
  const push = { ...consumerCreateResponse, config: { ...consumerCreateResponse.config, filter_subject: "globex.x", deliver_subject: "acme-corp._INBOX.abc" } };
  const out = parse(translateResponse(op, json({ type: "io.nats.jetstream.api.v1.consumer_list_response", total: 2, offset: 0, limit: 256, consumers: [consumerCreateResponse, push] }), undefined, acme));
  const configs = (out.consumers as Array<{ config: Record<string, unknown> }>).map((c) => c.config);
  t.is(configs[0]?.filter_subject, "events.poller.>");
  t.is(configs[1]?.deliver_subject, "_INBOX.abc");
  t.false(Object.hasOwn(configs[1] ?? {}, "filter_subject"));
});

test("consumer info, delete, names are allowed; delete needs no translation", (t) => {
  for (const [subject, verb] of [
    ["$JS.API.CONSUMER.INFO.events.c1", "CONSUMER.INFO"],
    ["$JS.API.CONSUMER.DELETE.events.c1", "CONSUMER.DELETE"],
    ["$JS.API.CONSUMER.NAMES.events", "CONSUMER.NAMES"],
    ["$JS.API.INFO", "INFO"],
  ] as const) {
    const { op, out } = request(subject);
    t.like(op, { verb, decision: { kind: "allow" } });
    t.is(forwarded(out).subject, subject);
  }
  const { op } = request("$JS.API.CONSUMER.DELETE.events.c1");
  const reply = json({ type: "io.nats.jetstream.api.v1.consumer_delete_response", success: true });
  t.is(translateResponse(op, reply, undefined, acme), reply);
});

test("pull request bodies pass untouched, as the same buffer", (t) => {
  const body = Buffer.from('{"batch":10,"expires":30000000000,"idle_heartbeat":15000000000}');
  const { op, out } = request("$JS.API.CONSUMER.MSG.NEXT.events.poller-health", body);
  t.like(op, { verb: "CONSUMER.MSG.NEXT", stream: "events", consumer: "poller-health" });
  t.is(forwarded(out).body, body);
});

// --- refusals ---------------------------------------------------------------------------------------

const forbidden: Array<[string, JetStreamApiVerb, string]> = [
  ["$JS.API.STREAM.CREATE.events", "STREAM.CREATE", "stream_create_response"],
  ["$JS.API.STREAM.UPDATE.events", "STREAM.UPDATE", "stream_update_response"],
  ["$JS.API.STREAM.DELETE.events", "STREAM.DELETE", "stream_delete_response"],
  ["$JS.API.STREAM.PURGE.events", "STREAM.PURGE", "stream_purge_response"],
  ["$JS.API.STREAM.MSG.DELETE.events", "STREAM.MSG.DELETE", "stream_msg_delete_response"],
  ["$JS.API.STREAM.SNAPSHOT.events", "STREAM.SNAPSHOT", "stream_snapshot_response"],
  ["$JS.API.STREAM.RESTORE.events", "STREAM.RESTORE", "stream_restore_response"],
  ["$JS.API.STREAM.LEADER.STEPDOWN.events", "STREAM.LEADER.STEPDOWN", "stream_leader_stepdown_response"],
  ["$JS.API.STREAM.PEER.REMOVE.events", "STREAM.PEER.REMOVE", "stream_remove_peer_response"],
  ["$JS.API.CONSUMER.LEADER.STEPDOWN.events.c1", "CONSUMER.LEADER.STEPDOWN", "consumer_leader_stepdown_response"],
  ["$JS.API.STREAM.TEMPLATE.CREATE.t1", "STREAM.TEMPLATE.CREATE", "stream_template_create_response"],
  ["$JS.API.STREAM.TEMPLATE.NAMES", "STREAM.TEMPLATE.NAMES", "stream_template_names_response"],
  ["$JS.API.STREAM.TEMPLATE.INFO.t1", "STREAM.TEMPLATE.INFO", "stream_template_info_response"],
  ["$JS.API.STREAM.TEMPLATE.DELETE.t1", "STREAM.TEMPLATE.DELETE", "stream_template_delete_response"],
  ["$JS.API.META.LEADER.STEPDOWN", "META.LEADER.STEPDOWN", "meta_leader_stepdown_response"],
  ["$JS.API.SERVER.REMOVE", "SERVER.REMOVE", "meta_server_remove_response"],
  ["$JS.API.ACCOUNT.PURGE.acme-corp", "ACCOUNT.PURGE", "account_purge_response"],
  ["$JS.API.ACCOUNT.STREAM.MOVE.acme-corp.events", "ACCOUNT.STREAM.MOVE", "stream_update_response"],
  ["$JS.API.ACCOUNT.STREAM.CANCEL_MOVE.acme-corp.events", "ACCOUNT.STREAM.CANCEL_MOVE", "stream_update_response"],
  ["$JS.API.META.SOMETHING.NEW", "META.*", "error_response"],
  ["$JS.API.SERVER.STREAM.MOVE", "SERVER.*", "error_response"],
  ["$JS.API.ACCOUNT.INFO", "ACCOUNT.*", "error_response"],
];

for (const [subject, verb, type] of forbidden) {
  test(`${verb} is refused 403 with a JetStream error reply (${subject})`, (t) => {
    const { op, out } = request(subject, { name: "events", subjects: ["events.>"] });
    t.is(op.verb, verb);
    const r = refused(out);
    t.is(r.code, 403);
    t.is(r.reason, "jetstream_api_forbidden");
    t.deepEqual(parse(r.reply.body), { type: `io.nats.jetstream.api.v1.${type}`, error: { code: 403, err_code: 10003, description: r.description } });
    t.false(jwtPermits(subject), "not permitted by the user JWT");
  });
}

const unknownOrMalformed: Array<[string, JetStreamApiVerb]> = [
  ["$JS.API.FOO.BAR", "UNKNOWN"],
  ["$JS.API.CONSUMER.PAUSE.events.c1", "UNKNOWN"],
  ["$JS.API.CONSUMER.UNPIN.events.c1", "UNKNOWN"],
  ["$JS.API.STREAM.MSG.GETX.events", "UNKNOWN"],
  ["$JS.API.INFO.more", "UNKNOWN"],
  ["$JS.API.STREAM.NAMES.extra", "UNKNOWN"],
  ["$JS.API..INFO", "UNKNOWN"],
  ["$JS.API.", "UNKNOWN"],
  ["$JS.API.STREAM.INFO", "STREAM.INFO"],
  ["$JS.API.STREAM.INFO.a.b", "STREAM.INFO"],
  ["$JS.API.STREAM.INFO.*", "STREAM.INFO"],
  ["$JS.API.STREAM.INFO.>", "STREAM.INFO"],
  ["$JS.API.STREAM.MSG.GET.ev*nts", "STREAM.MSG.GET"],
  ["$JS.API.CONSUMER.INFO.events", "CONSUMER.INFO"],
  ["$JS.API.CONSUMER.DELETE.events.c/1", "CONSUMER.DELETE"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.events", "CONSUMER.DURABLE.CREATE"],
  ["$JS.API.CONSUMER.DURABLE.CREATE.events.d1.x", "CONSUMER.DURABLE.CREATE"],
  ["$JS.API.CONSUMER.CREATE", "CONSUMER.CREATE"],
  ["$JS.API.CONSUMER.CREATE.*.c1", "CONSUMER.CREATE"],
  [`$JS.API.CONSUMER.NAMES.${"x".repeat(256)}`, "CONSUMER.NAMES"],
];

for (const [subject, verb] of unknownOrMalformed) {
  test(`${subject.slice(0, 60)} is refused 400`, (t) => {
    const { op, out } = request(subject);
    t.is(op.verb, verb);
    const r = refused(out);
    t.is(r.code, 400);
    t.is(r.errCode, 10003);
    const reply = parse(r.reply.body);
    t.deepEqual(reply.error, { code: 400, err_code: 10003, description: r.description });
    if (verb === "UNKNOWN") t.is(reply.type, "io.nats.jetstream.api.v1.error_response");
  });
}

test("an unknown verb is not in the user JWT allow list either", (t) => {
  for (const [subject, verb] of unknownOrMalformed) {
    if (verb === "UNKNOWN" && !subject.includes("..")) t.false(jwtPermits(subject), subject);
  }
});

const malformedBodies: Array<[string, Buffer | undefined]> = [
  ["$JS.API.CONSUMER.CREATE.events.c1", Buffer.from('{"stream_name":"events","config":{')],
  ["$JS.API.CONSUMER.CREATE.events.c1", Buffer.from("not json")],
  ["$JS.API.CONSUMER.CREATE.events.c1", undefined],
  ["$JS.API.CONSUMER.CREATE.events.c1", Buffer.from('{"stream_name":"events","config":[]}')],
  ["$JS.API.STREAM.MSG.GET.events", Buffer.from("[]")],
  ["$JS.API.STREAM.MSG.GET.events", Buffer.from('{"last_by_subj":["events.x"]}')],
  ["$JS.API.STREAM.INFO.events", Buffer.from('"events"')],
  ["$JS.API.STREAM.NAMES", Buffer.from("\xff\xfe", "latin1")],
];

for (const [i, [subject, body]] of malformedBodies.entries()) {
  test(`malformed body ${i} for ${subject} is refused 400`, (t) => {
    const r = refused(request(subject, body).out);
    t.is(r.code, 400);
    t.is(r.errCode, 10025);
    t.is(r.reason, "jetstream_api_invalid_json");
  });
}

test("translateRequest refuses a subject other than the classified one", (t) => {
  const op = classifyJetStreamRequest("$JS.API.INFO");
  const r = refused(translateRequest(op, "$JS.API.STREAM.DELETE.events", undefined, acme));
  t.is(r.code, 400);
});

test("pull request refusals are status replies", (t) => {
  const r = refused(request("$JS.API.CONSUMER.MSG.NEXT.events").out);
  t.is(r.reply.body.length, 0);
  t.true(r.reply.headers?.toString().startsWith("NATS/1.0 400 "));
});

// --- responses -----------------------------------------------------------------------------------------

test("JSON error responses pass unchanged", (t) => {
  const { op } = request("$JS.API.STREAM.INFO.nope");
  const error = json({ type: "io.nats.jetstream.api.v1.stream_info_response", error: { code: 404, err_code: 10059, description: "stream not found" } });
  t.is(translateResponse(op, error, undefined, acme), error);
});

test("a JSON API response that is not JSON never reaches the client", (t) => {
  const { op } = request("$JS.API.CONSUMER.INFO.events.c1");
  const out = parse(translateResponse(op, Buffer.from("acme-corp.events garbage"), undefined, acme));
  t.deepEqual(out, { type: "io.nats.jetstream.api.v1.consumer_info_response", error: { code: 503, err_code: 10003, description: "the gateway could not read the JetStream API response" } });
});

test("status replies (no responders) pass unchanged", (t) => {
  const { op } = request("$JS.API.STREAM.INFO.events");
  const empty = Buffer.alloc(0);
  t.is(translateResponse(op, empty, Buffer.from("NATS/1.0 503\r\n\r\n"), acme), empty);
});

test("jetStreamErrorResponse has the 2.9 shape", (t) => {
  t.is(
    jetStreamErrorResponse(404, "stream not found", 10059, "STREAM.INFO").toString(),
    '{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}',
  );
  t.is(jetStreamErrorResponse(503, "unavailable", 10039).toString(), '{"type":"io.nats.jetstream.api.v1.error_response","error":{"code":503,"err_code":10039,"description":"unavailable"}}');
});

// --- user-JWT permissions --------------------------------------------------------------------------

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}

const EDGE_PUBLISH = edgePublishPermissions("acme-corp", TenantStores.NONE);

/** What nats-server lets the edge user publish: allowed and not denied. */
function jwtPermits(subject: string): boolean {
  return EDGE_PUBLISH.allow.some((p) => subjectMatches(p, subject)) && !EDGE_PUBLISH.deny.some((p) => subjectMatches(p, subject));
}

test("the user JWT allows exactly what the gateway forwards", (t) => {
  const allowed = [
    "$JS.API.INFO",
    "$JS.API.STREAM.INFO.events",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    "$JS.API.STREAM.MSG.GET.events",
    "$JS.API.DIRECT.GET.events",
    "$JS.API.DIRECT.GET.events.events.poller.health",
    "$JS.API.CONSUMER.CREATE.events",
    "$JS.API.CONSUMER.CREATE.events.c1",
    "$JS.API.CONSUMER.CREATE.events.c1.events.>",
    "$JS.API.CONSUMER.DURABLE.CREATE.events.d1",
    "$JS.API.CONSUMER.INFO.events.c1",
    "$JS.API.CONSUMER.NAMES.events",
    "$JS.API.CONSUMER.LIST.events",
    "$JS.API.CONSUMER.DELETE.events.c1",
    "$JS.API.CONSUMER.MSG.NEXT.events.c1",
  ];
  for (const subject of allowed) {
    const { op, out } = request(subject, { stream_name: "events", config: { name: "c1" }, seq: 1 });
    t.is(op.decision.kind, "allow", subject);
    const upstream = forwarded(out).subject;
    t.true(jwtPermits(upstream), `permitted: ${upstream}`);
  }
  t.true(jwtPermits("$JS.ACK.events.c1.1.5.5.1714557600000000000.0"));
  t.false(EDGE_PUBLISH.allow.includes("$JS.API.>"));
});

// --- properties ---------------------------------------------------------------------------------------

const SUBJECT_FIELDS: Record<string, { parent?: string; fields: string[] }> = {
  "consumer-config": { parent: "config", fields: ["filter_subject", "filter_subjects", "deliver_subject"] },
  "message-query": { fields: ["last_by_subj", "next_by_subj", "multi_last"] },
  "stream-info-query": { fields: ["subjects_filter"] },
  "stream-subject-filter": { fields: ["subject"] },
};

/** Go's case-insensitive key matching, as the server decodes request bodies. */
const goFold = (k: string) => k.toLowerCase().replaceAll("\u017f", "s");

function valuesGoWouldRead(obj: unknown, field: string): unknown[] {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return [];
  return Object.entries(obj).filter(([k]) => goFold(k) === field).map(([, v]) => v);
}

/** Inside the tenant: its prefix, or the account's own bucket and store subjects. */
function tenantSubject(s: string): boolean {
  return s.startsWith("acme-corp.") || s.startsWith("$KV.") || s.startsWith("$O.");
}

function tenantOnly(v: unknown): boolean {
  if (v === null || v === undefined || v === "") return true;
  if (typeof v === "string") return tenantSubject(v);
  if (Array.isArray(v)) return v.every((s) => typeof s !== "string" || s === "" || tenantSubject(s));
  return true; // a non-string is something the server refuses to decode
}

const token = fc.oneof(
  fc.constantFrom("events", "poller", "health", "*", ">", "$SYS", "$JS", "API", "ACK", "$KV", "acme-corp", "globex", "_INBOX", "", " ", "a b", "x*", "\r\n", "\u017f"),
  fc.string({ maxLength: 6 }),
);
const subjectish = fc.array(token, { minLength: 1, maxLength: 5 }).map((ts) => ts.join("."));
const apiHead = fc.constantFrom(
  "INFO",
  "STREAM.INFO.events",
  "STREAM.NAMES",
  "STREAM.LIST",
  "STREAM.MSG.GET.events",
  "DIRECT.GET.events",
  "CONSUMER.CREATE.events",
  "CONSUMER.CREATE.events.c1",
  "CONSUMER.DURABLE.CREATE.events.d1",
  "CONSUMER.INFO.events.c1",
  "CONSUMER.MSG.NEXT.events.c1",
  "STREAM.DELETE.events",
  "FOO",
);
const apiSubject = fc.oneof(
  fc.tuple(apiHead, fc.option(subjectish, { nil: undefined })).map(([h, tail]) => `$JS.API.${h}${tail === undefined ? "" : `.${tail}`}`),
  subjectish.map((s) => `$JS.API.${s}`),
  subjectish,
);
const key = fc.oneof(
  fc.constantFrom(
    "config", "Config", "filter_subject", "FILTER_SUBJECT", "filter_\u017fubject", "filter_subjects", "deliver_subject", "Deliver_Subject",
    "last_by_subj", "LAST_BY_SUBJ", "next_by_subj", "multi_last", "subjects_filter", "subject", "Subject", "stream_name", "seq",
  ),
  fc.string({ maxLength: 8 }),
);
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    subjectish,
    fc.array(subjectish, { maxLength: 3 }),
    fc.integer(),
    fc.constant(null),
    fc.boolean(),
    fc.dictionary(key, tie("value"), { maxKeys: 4 }),
  ),
})).value;
const body = fc.oneof(
  fc.constant(undefined),
  fc.uint8Array({ maxLength: 40 }).map((a) => Buffer.from(a)),
  fc.dictionary(key, value, { maxKeys: 6 }).map(json),
  fc.string().map((s) => Buffer.from(s)),
);

test("property: a forwarded request never carries a subject outside acme-corp. and nothing throws", (t) => {
  fc.assert(
    fc.property(apiSubject, body, (subject, b) => {
      const op = classifyJetStreamRequest(subject);
      const out = translateRequest(op, subject, b, acme);
      if (out.kind === "refuse") {
        return out.refusal.code >= 400 && (out.refusal.reply.body.length > 0 || out.refusal.reply.headers !== undefined);
      }
      if (op.decision.kind !== "allow" || !out.subject.startsWith("$JS.API.")) return false;
      if (op.subject !== undefined) {
        const tail = out.subject.slice(subject.length - op.subject.length);
        if (!tenantSubject(tail) || !out.subject.startsWith(subject.slice(0, subject.length - op.subject.length))) return false;
      } else if (out.subject !== subject) {
        return false;
      }
      const shape = SUBJECT_FIELDS[op.decision.request];
      if (shape === undefined) return out.body === b; // untouched: byte for byte
      if (out.body === undefined || out.body.length === 0) return true;
      const parsed: unknown = JSON.parse(out.body.toString("utf8"));
      const holders = shape.parent === undefined ? [parsed] : valuesGoWouldRead(parsed, shape.parent);
      return holders.every((h) => shape.fields.every((f) => valuesGoWouldRead(h, f).every(tenantOnly)));
    }),
    { numRuns: 3000 },
  );
  t.pass();
});

const tenantSide = fc.oneof(
  subjectish.map((s) => `acme-corp.${s}`),
  subjectish.map((s) => `globex.${s}`),
  subjectish.map((s) => `$JS.API.${s}`),
  subjectish.map((s) => `$KV.${s}`),
  subjectish.map((s) => `acme-corp.$KV.${s}`),
  subjectish.map((s) => `acme-corp.$SRV.${s}`),
  fc.constantFrom("acme-corp.", "acme-corp", "acme-corpx.y", ""),
  subjectish,
);

/** Every subject in an edge-view response must be the edge view of one the tenant owns ("" is unset). */
function ownedOrigin(inputs: Set<string>, edge: unknown): boolean {
  if (typeof edge !== "string" || edge === "") return true;
  // The account's own bucket and store subjects are shown as the server named them.
  if (edge.startsWith("$KV.") || edge.startsWith("$O.")) return inputs.has(edge);
  return (!edge.startsWith("$") || edge.startsWith("$SRV.")) && inputs.has(`acme-corp.${edge}`);
}

test("property: a translated response only shows subjects the tenant owns, and nothing throws", (t) => {
  const { op: streamOp } = request("$JS.API.STREAM.INFO.events");
  const { op: consumerOp } = request("$JS.API.CONSUMER.INFO.events.c1");
  fc.assert(
    fc.property(fc.array(tenantSide, { maxLength: 6 }), tenantSide, tenantSide, (subjects, filter, deliver) => {
      const inputs = new Set([...subjects, filter, deliver]);
      const state = Object.fromEntries(subjects.map((s, i) => [s, i]));
      const si = parse(translateResponse(streamOp, json({ type: "t", ...streamInfo(subjects, state), mirror: { name: "m", external: { api: filter } } }), undefined, acme)) as {
        config: { subjects: unknown[] };
        state: { subjects: Record<string, unknown> };
        mirror: { external: { api?: unknown } };
      };
      const ci = parse(translateResponse(consumerOp, json({ ...consumerCreateResponse, config: { filter_subject: filter, filter_subjects: subjects, deliver_subject: deliver } }), undefined, acme)) as {
        config: { filter_subject?: unknown; filter_subjects: unknown[]; deliver_subject?: unknown };
      };
      // A header value never holds whitespace or control characters: they would end or bend the line.
      const headerSubjects = subjects.filter((s) => [...s].every((c) => c > " " && c !== "\u007f"));
      const hdr = translateDirectGetHeaders(Buffer.from(`NATS/1.0\r\n${headerSubjects.map((s) => `Nats-Subject: ${s}\r\n`).join("")}\r\n`), acme).toString();
      const shownInHeaders = hdr.split("\r\n").filter((l) => l.startsWith("Nats-Subject:")).map((l) => l.slice("Nats-Subject:".length).trim());
      return [
        ...si.config.subjects,
        ...Object.keys(si.state.subjects),
        si.mirror.external.api,
        ci.config.filter_subject,
        ci.config.deliver_subject,
        ...ci.config.filter_subjects,
        ...shownInHeaders,
      ].every((s) => ownedOrigin(inputs, s));
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

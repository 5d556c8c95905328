/**
 * Property tests of the edge rewriter, no network: random client and NATS frame sequences —
 * valid and invalid, subjects from nasty alphabets, garbage bytes — fed whole and split at random
 * points. Whatever goes in, what comes out must parse, stay inside the tenant's namespace, and not
 * depend on where the reads were split.
 */
import test from "ava";
import fc from "fast-check";
import { TenantStores } from "../common/namespaces.ts";
import { EdgeRewriter } from "../gateway/edge-rewriter.ts";
import type { RewriterEvents, SessionEnd } from "../gateway/session-rewriter.ts";
import { ClientVerb, ServerVerb, type ClientFrame, type ServerFrame } from "../gateway/protocol/frames.ts";
import { ClientProtocolParser, ServerProtocolParser } from "../gateway/protocol/parser.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const SLUG = "acme-corp";
const PREFIX = `${SLUG}.`;
const MAX_PAYLOAD = 512;
/** What NATS hands the tenant's session unprefixed, from inside its own account. */
const ACCOUNT_SCOPED = ["$JS.API.", "$JS.ACK.", "$JS.FC.", "$KV.", "$O."];
/** What the client may publish unprefixed: the JetStream API (translated), acks, and the buckets and stores it may write. */
const CLIENT_PASSTHROUGH = ["$JS.API.", "$JS.ACK.", "$JS.FC.", "$KV.cfg.", "$O.blobs."];
/** The tenant's buckets and stores: `cfg` and `blobs` writable by edge clients, `ro` read-only. */
const STORES = new TenantStores([
  { kind: "kv", name: "cfg", edge: "read-write", platform: "read-write" },
  { kind: "kv", name: "ro", edge: "read", platform: "read-write" },
  { kind: "object", name: "blobs", edge: "read-write", platform: "read" },
]);

// ---- Generators -----------------------------------------------------------------------------

const bytes = (text: string): Buffer => Buffer.from(text, "utf8");

/** Tokens of an ordinary subject: names, unicode, dashes and underscores. */
const plainToken: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("events", "poller", "health", "x", "_INBOX", "acme-corp", "globex", "API", "ACK", "FC", "STREAM", "INFO", "CONSUMER", "CREATE", "ünïcødé", "日本語", "😀"),
  fc.string({ unit: fc.constantFrom("a", "b", "é", "-", "_", "0"), minLength: 1, maxLength: 8 }),
);

/** Tokens that must be refused somewhere: wildcards, reserved, empty, control characters, too long. */
const nastyToken: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("*", ">", "$SYS", "$JS", "$KV", "$", "a*", ">b", "", "\r", "a\rb", "\f", "\0", "\x7f", "a\x01b", "\n"),
  fc.string({ unit: fc.constantFrom("a", ".", "*", ">", "$", "\r", "\f", "é"), minLength: 1, maxLength: 8 }),
  // Around nats-server's 4096-byte control line, where the gateway's prefix tips a line over.
  fc.integer({ min: 4040, max: 4100 }).map((n) => "t".repeat(n)),
);

const token: fc.Arbitrary<string> = fc.oneof({ weight: 6, arbitrary: plainToken }, { weight: 1, arbitrary: nastyToken });

/** Prefixes that steer subjects into the namespaces the rules treat specially. */
const namespace = fc.constantFrom(
  "$JS.API.",
  "$JS.API.INFO",
  "$JS.API.STREAM.INFO.",
  "$JS.API.CONSUMER.CREATE.events.c1.",
  "$JS.API.CONSUMER.DURABLE.CREATE.events.",
  "$JS.API.DIRECT.GET.events.",
  "$JS.API.STREAM.CREATE.",
  "$JS.ACK.",
  "$JS.FC.",
  "$SYS.",
  "$SYS.REQ.",
  "$KV.",
  "$KV.cfg.",
  "$KV.ro.",
  "$O.blobs.",
  "$O.other.",
  "$SRV.PING",
  "$SRV.",
  "_INBOX.",
  "acme-corp.",
  "globex.",
);

const plainSubject: fc.Arbitrary<string> = fc.array(plainToken, { minLength: 1, maxLength: 5 }).map((ts) => ts.join("."));
const nastySubject: fc.Arbitrary<string> = fc
  .tuple(fc.option(namespace, { nil: "" }), fc.array(token, { minLength: 1, maxLength: 5 }))
  .map(([ns, ts]) => ns + ts.join("."));

/** Mostly subjects a client would really use, now and then one it may not. */
const subject: fc.Arbitrary<string> = fc.oneof({ weight: 12, arbitrary: plainSubject }, { weight: 1, arbitrary: nastySubject });

/** A JSON body with subject-bearing fields the JetStream translation looks at. */
const jsBody: fc.Arbitrary<string> = fc
  .record({ filter: subject, deliver: subject, last: subject, list: fc.array(subject, { maxLength: 3 }) })
  .map(({ filter, deliver, last, list }) => JSON.stringify({ config: { filter_subject: filter, deliver_subject: deliver, filter_subjects: list }, last_by_subj: last, subjects_filter: filter, subject: last }));

const payload: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 8, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  { weight: 3, arbitrary: jsBody.map(bytes) },
  { weight: 1, arbitrary: fc.integer({ min: MAX_PAYLOAD - 3, max: MAX_PAYLOAD + 1 }).map((n) => Buffer.alloc(n, 0x61)) },
);

const headerBlock: fc.Arbitrary<Buffer> = fc
  .array(fc.tuple(fc.constantFrom("X-Trace", "Nats-Subject", "Nats-Msg-Id"), subject), { maxLength: 3 })
  .map((hs) => bytes(`NATS/1.0\r\n${hs.map(([k, v]) => `${k}: ${v.replace(/[\r\n]/g, "")}\r\n`).join("")}\r\n`));

const sid = fc.integer({ min: 0, max: 1_000_000 });
const optionalReply = fc.option(subject, { nil: undefined });

const line = (text: string): Buffer => bytes(text + "\r\n");
const withPayload = (control: string, body: Buffer): Buffer => Buffer.concat([line(control), body, bytes("\r\n")]);
const replyPart = (reply: string | undefined): string => (reply === undefined ? "" : ` ${reply}`);

/** One client frame as bytes: mostly well-formed, with subjects that may or may not be allowed. */
const clientFrame: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 12, arbitrary: fc.tuple(subject, optionalReply, payload).map(([s, r, p]) => withPayload(`PUB ${s}${replyPart(r)} ${p.length}`, p)) },
  {
    weight: 6,
    arbitrary: fc.tuple(subject, optionalReply, headerBlock, payload).map(([s, r, h, p]) => withPayload(`HPUB ${s}${replyPart(r)} ${h.length} ${h.length + p.length}`, Buffer.concat([h, p]))),
  },
  { weight: 8, arbitrary: fc.tuple(subject, fc.option(fc.constantFrom("workers", "q.1", "ü", "q\rx"), { nil: undefined }), sid).map(([s, q, n]) => line(`SUB ${s}${replyPart(q)} ${n}`)) },
  { weight: 1, arbitrary: fc.tuple(sid, fc.option(sid, { nil: undefined })).map(([n, max]) => line(`UNSUB ${n}${max === undefined ? "" : ` ${max}`}`)) },
  { weight: 2, arbitrary: fc.constantFrom(line("PING"), line("PONG"), line('CONNECT {"verbose":false,"headers":true}')) },
  // Control lines near nats-server's 4096-byte limit, with and without a reply to prefix.
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.integer({ min: 4000, max: 4090 }), fc.boolean())
      .map(([n, reply]) => withPayload(`PUB events.${"t".repeat(n - (reply ? 20 : 0))}${reply ? " _INBOX.abcdefghijklm" : ""} 1`, bytes("x"))),
  },
  // Broken frames: wrong sizes, argument counts, verbs, and plain garbage.
  { weight: 1, arbitrary: fc.tuple(subject, payload, fc.integer({ min: -3, max: 3 })).map(([s, p, d]) => withPayload(`PUB ${s} ${Math.max(0, p.length + d)}`, p)) },
  { weight: 1, arbitrary: fc.constantFrom(line("PUB a b c d"), line("PUB events.x abc"), line("HPUB events.x 10 5"), line("SUB"), line("FOO bar"), line(`PUB events.big ${MAX_PAYLOAD + 1}`)) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 40 }).map((b) => Buffer.from(b)) },
);

/** Split points, as fractions of the input, so every input length gets cuts anywhere. */
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 });

function chunksAt(input: Buffer, at: number[]): Buffer[] {
  const points = [...new Set(at.map((f) => Math.floor(f * input.length)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(input.subarray(from, p));
    from = p;
  }
  out.push(input.subarray(from));
  return out;
}

// ---- Running the rewriter ------------------------------------------------------------------

interface Outcome {
  /** Everything the rewriter produced for this direction, in order. */
  output: Buffer;
  ended: SessionEnd | undefined;
  /** -ERR lines the client got for refused frames (client direction). */
  refusals: number;
  dropped: number;
  thrown: unknown;
}

function newRewriter(): { rewriter: EdgeRewriter; dropped: () => number } {
  let dropped = 0;
  const events: RewriterEvents = {
    ended: () => undefined,
    refused: () => undefined,
    dropped: () => {
      dropped++;
    },
    jetStreamRefused: () => undefined,
    natsError: () => undefined,
    natsLameDuck: () => undefined,
  };
  return { rewriter: new EdgeRewriter(SLUG, { maxPayload: MAX_PAYLOAD, events, stores: STORES }), dropped: () => dropped };
}

function feed(chunks: Buffer[], direction: "client" | "upstream", before?: (r: EdgeRewriter) => void): Outcome {
  const { rewriter, dropped } = newRewriter();
  const out: Buffer[] = [];
  const back: Buffer[] = [];
  let thrown: unknown;
  try {
    before?.(rewriter);
    for (const chunk of chunks) {
      const produced = direction === "client" ? rewriter.clientData(chunk) : rewriter.upstreamData(chunk);
      if (produced) out.push(Buffer.from(produced));
      const pending = rewriter.pendingForClient();
      if (pending) (direction === "upstream" ? out : back).push(Buffer.from(pending));
    }
  } catch (err) {
    thrown = err;
  }
  const refusals = Buffer.concat(back).toString("latin1").split("\r\n").filter((l) => l.startsWith("-ERR ")).length;
  return { output: Buffer.concat(out), ended: rewriter.ended, refusals, dropped: dropped(), thrown };
}

/** What a parser read from the rewriter's output: the frames as text, and any parse error. */
interface Parsed<F> {
  frames: F[];
  error: string | undefined;
}

interface OutClientFrame {
  verb: ClientVerb;
  subject?: string;
  reply?: string;
  queue?: string;
  payload?: Buffer;
}

interface OutServerFrame {
  verb: ServerVerb;
  subject?: string;
  reply?: string;
  sid?: number;
  payload?: Buffer;
  headerSize?: number;
  error?: string;
}

const span = (buf: Buffer, start: number, end: number): string | undefined => (start < 0 ? undefined : buf.toString("utf8", start, end));

/** NATS's own limits: what the rewriter sends upstream must fit them. */
function parseUpstreamBound(output: Buffer): Parsed<OutClientFrame> {
  const frames: OutClientFrame[] = [];
  let error: string | undefined;
  const parser = new ClientProtocolParser(
    {
      onFrame: (f: ClientFrame) => {
        frames.push({
          verb: f.verb,
          ...(f.subjectStart >= 0 ? { subject: span(f.buf, f.subjectStart, f.subjectEnd)! } : {}),
          ...(f.replyStart >= 0 ? { reply: span(f.buf, f.replyStart, f.replyEnd)! } : {}),
          ...(f.queueStart >= 0 ? { queue: span(f.buf, f.queueStart, f.queueEnd)! } : {}),
        });
      },
      onError: (e) => {
        error = `${e.code}: ${e.message}`;
      },
    },
    { maxPayload: 64 * 1024 * 1024 },
  );
  parser.parse(output);
  return { frames, error };
}

function parseClientBound(output: Buffer): Parsed<OutServerFrame> {
  const frames: OutServerFrame[] = [];
  let error: string | undefined;
  const parser = new ServerProtocolParser({
    onFrame: (f: ServerFrame) => {
      frames.push({
        verb: f.verb,
        ...(f.subjectStart >= 0 ? { subject: span(f.buf, f.subjectStart, f.subjectEnd)! } : {}),
        ...(f.replyStart >= 0 ? { reply: span(f.buf, f.replyStart, f.replyEnd)! } : {}),
        ...(f.sid >= 0 ? { sid: f.sid } : {}),
        ...(f.payloadStart >= 0 ? { payload: Buffer.from(f.buf.subarray(f.payloadStart, f.payloadEnd)), headerSize: f.headerSize } : {}),
        ...(f.errorStart >= 0 ? { error: span(f.buf, f.errorStart, f.errorEnd)! } : {}),
      });
    },
    onError: (e) => {
      error = `${e.code}: ${e.message}`;
    },
  });
  parser.parse(output);
  return { frames, error };
}

// ---- What "inside the tenant" means, checked on the bytes NATS would read ---------------------

/** A blank, line end or other control character, or DEL: nats-server splits control-line arguments on some of them and rejects subjects holding any. */
function hasSeparatorOrControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) <= 0x20 || s.charCodeAt(i) === 0x7f) return true;
  return false;
}

/** `acme-corp.<rest>`, where rest is something an edge client names under its prefix: no `$` subject but `$SRV.`. */
function insideTenant(s: string): boolean {
  const rest = s.slice(PREFIX.length);
  return s.startsWith(PREFIX) && rest.length > 0 && (!rest.startsWith("$") || rest.startsWith("$SRV.")) && !hasSeparatorOrControl(s);
}

function clientPassthrough(s: string): boolean {
  return CLIENT_PASSTHROUGH.some((p) => s.startsWith(p)) && !hasSeparatorOrControl(s);
}

/** A literal subject: no empty token, no wildcard token. */
function literal(s: string): boolean {
  return s.split(".").every((t) => t !== "" && t !== "*" && t !== ">");
}

function upstreamViolations(frames: OutClientFrame[]): string[] {
  const problems: string[] = [];
  for (const f of frames) {
    const show = JSON.stringify(f);
    if (f.verb === ClientVerb.Pub || f.verb === ClientVerb.Hpub) {
      if (insideTenant(f.subject!)) {
        if (!literal(f.subject!)) problems.push(`publish to a non-literal subject: ${show}`);
      } else if (!clientPassthrough(f.subject!)) problems.push(`publish outside the tenant: ${show}`);
      if (f.reply !== undefined && !insideTenant(f.reply)) problems.push(`reply outside the tenant: ${show}`);
    } else if (f.verb === ClientVerb.Sub) {
      if (!insideTenant(f.subject!)) problems.push(`subscription outside the tenant: ${show}`);
      if (f.queue !== undefined && hasSeparatorOrControl(f.queue)) problems.push(`queue group with a separator: ${show}`);
    } else if (f.verb === ClientVerb.Connect) problems.push("a client CONNECT was passed upstream");
  }
  return problems;
}

// ---- Client → NATS --------------------------------------------------------------------------

test("client → NATS: whatever the client sends, NATS only sees frames inside acme-corp (or its own JetStream API), and they parse", (t) => {
  let refused = 0;
  let forwarded = 0;
  fc.assert(
    fc.property(fc.array(clientFrame, { minLength: 1, maxLength: 12 }), cuts, (frames, at) => {
      const input = Buffer.concat(frames);
      const run = feed(chunksAt(input, at), "client");
      if (run.thrown !== undefined) return t.fail(`the rewriter threw: ${String(run.thrown)}`);
      const parsed = parseUpstreamBound(run.output);
      t.is(parsed.error, undefined, "the output parses with NATS's limits");
      t.deepEqual(upstreamViolations(parsed.frames), []);
      if (run.ended || run.refusals > 0) refused++;
      forwarded += parsed.frames.length;
      return true;
    }),
    { numRuns: RUNS },
  );
  t.log(`sequences refused: ${refused} of ${RUNS}; frames forwarded: ${forwarded}`);
  t.true(refused > RUNS / 10 && forwarded > RUNS, "the generator exercises both outcomes");
});

test("client → NATS: the same input split differently gives the same bytes and the same verdict", (t) => {
  fc.assert(
    fc.property(fc.array(clientFrame, { minLength: 1, maxLength: 10 }), cuts, cuts, (frames, a, b) => {
      const input = Buffer.concat(frames);
      const whole = feed([input], "client");
      const oneWay = feed(chunksAt(input, a), "client");
      const otherWay = feed(chunksAt(input, b), "client");
      const bytewise = feed(
        Array.from(input, (x) => Buffer.from([x])),
        "client",
      );
      for (const run of [oneWay, otherWay, bytewise]) {
        t.true(run.output.equals(whole.output), "identical output bytes");
        t.deepEqual(run.ended, whole.ended, "identical verdict");
        t.is(run.refusals, whole.refusals, "identical refusals");
      }
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
});

test("client → NATS: once the session has ended (a protocol error), nothing more is forwarded", (t) => {
  fc.assert(
    fc.property(fc.array(clientFrame, { minLength: 1, maxLength: 12 }), cuts, (frames, at) => {
      const { rewriter } = newRewriter();
      let endedAt = -1;
      chunksAt(Buffer.concat(frames), at).forEach((chunk, i) => {
        const out = rewriter.clientData(chunk);
        if (endedAt >= 0) t.is(out, undefined, `chunk ${i} came after the end in chunk ${endedAt}`);
        else if (rewriter.ended) endedAt = i;
      });
    }),
    { numRuns: Math.ceil(RUNS / 4) },
  );
});

// ---- NATS → client --------------------------------------------------------------------------

type SubjectKind = "owned" | "jetstream" | "foreign";

/** The ownership rule of the architecture brief (section 4), as the oracle. */
function kindOf(text: string): SubjectKind {
  if (insideTenant(text)) return "owned";
  if (ACCOUNT_SCOPED.some((p) => text.startsWith(p))) return "jetstream";
  return "foreign";
}

/** Subjects as NATS could deliver them: this tenant's, its JetStream's, and lookalikes that are not its own. */
const natsSubject: fc.Arbitrary<{ text: string; kind: SubjectKind }> = fc
  .tuple(
    fc.oneof(
      { weight: 6, arbitrary: fc.constant(PREFIX) },
      { weight: 2, arbitrary: fc.constantFrom(...ACCOUNT_SCOPED) },
      { weight: 3, arbitrary: fc.constantFrom("globex.", "acme-corpx.", "acme.", "$SYS.", "$JS.", "$JS.APIX.", "_INBOX.", "ACME-CORP.", "", SLUG, PREFIX.slice(0, -1) + "-", `${PREFIX}$JS.API.`, `${PREFIX}$KV.`, `${PREFIX}$SRV.`) },
    ),
    fc.array(token, { maxLength: 4 }),
  )
  .map(([p, ts]) => p + ts.join("."))
  .map((text) => ({ text, kind: kindOf(text) }));

interface NatsMessage {
  subject: { text: string; kind: SubjectKind };
  reply: { text: string; kind: SubjectKind } | undefined;
  sid: number;
  headers: Buffer | undefined;
  body: Buffer;
}

/** NATS never sends an empty subject, or one with a blank or line end in it (its parser would split it). */
const deliverable = (s: { text: string }): boolean => s.text !== "" && !hasSeparatorOrControl(s.text);

const natsMessage: fc.Arbitrary<NatsMessage> = fc.record({
  subject: natsSubject.filter(deliverable),
  reply: fc.option(natsSubject.filter(deliverable), { nil: undefined }),
  sid,
  headers: fc.option(headerBlock, { nil: undefined }),
  body: fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
});

function encodeNatsMessage(m: NatsMessage): Buffer {
  const reply = m.reply === undefined ? "" : ` ${m.reply.text}`;
  if (m.headers === undefined) return withPayload(`MSG ${m.subject.text} ${m.sid}${reply} ${m.body.length}`, m.body);
  return withPayload(`HMSG ${m.subject.text} ${m.sid}${reply} ${m.headers.length} ${m.headers.length + m.body.length}`, Buffer.concat([m.headers, m.body]));
}

/** The edge view of a subject the tenant may see. */
function edgeView(s: { text: string; kind: SubjectKind }): string {
  return s.kind === "owned" ? s.text.slice(PREFIX.length) : s.text;
}

const natsOther: fc.Arbitrary<Buffer> = fc.constantFrom(
  line("PING"),
  line("PONG"),
  line("+OK"),
  line(`-ERR 'Permissions Violation for Publish to "${PREFIX}events.x"'`),
  line('INFO {"server_id":"N","version":"2.9.10","max_payload":1048576,"connect_urls":["10.0.0.9:4222"]}'),
);

test("NATS → client: only owned and account-scoped subjects are delivered, prefix removed, everything else counted and dropped", (t) => {
  let delivered = 0;
  let droppedTotal = 0;
  fc.assert(
    fc.property(fc.array(fc.oneof({ weight: 5, arbitrary: natsMessage }, { weight: 1, arbitrary: natsOther }), { minLength: 1, maxLength: 16 }), cuts, (items, at) => {
      const input = Buffer.concat(items.map((i) => (Buffer.isBuffer(i) ? i : encodeNatsMessage(i))));
      const run = feed(chunksAt(input, at), "upstream");
      if (run.thrown !== undefined) return t.fail(`the rewriter threw: ${String(run.thrown)}`);
      t.is(run.ended, undefined, "valid NATS traffic never ends the session");
      const parsed = parseClientBound(run.output);
      t.is(parsed.error, undefined, "what the client gets parses");

      const messages = items.filter((i): i is NatsMessage => !Buffer.isBuffer(i));
      // A reply is the tenant's, or a JetStream ack or flow-control subject of its account.
      const replyVisible = (r: { text: string; kind: SubjectKind } | undefined): boolean => r === undefined || r.kind === "owned" || r.text.startsWith("$JS.ACK.") || r.text.startsWith("$JS.FC.");
      const visible = messages.filter((m) => m.subject.kind !== "foreign" && replyVisible(m.reply));
      const got = parsed.frames.filter((f) => f.verb === ServerVerb.Msg || f.verb === ServerVerb.Hmsg);
      t.deepEqual(
        got.map((f) => ({ subject: f.subject, reply: f.reply, sid: f.sid, payload: f.payload?.toString("latin1") })),
        visible.map((m) => ({
          subject: edgeView(m.subject),
          reply: m.reply === undefined ? undefined : edgeView(m.reply),
          sid: m.sid,
          payload: Buffer.concat([m.headers ?? Buffer.alloc(0), m.body]).toString("latin1"),
        })),
        "exactly the owned messages, in order, in the edge view",
      );
      t.is(run.dropped, messages.length - visible.length, "every foreign message is counted as dropped");
      for (const f of parsed.frames) {
        if (f.verb === ServerVerb.Err) t.false(f.error!.includes(PREFIX), "NATS errors reach the client in the edge view");
        if (f.verb === ServerVerb.Info) t.fail("NATS's own INFO (cluster URLs) is not passed to the client");
      }
      delivered += got.length;
      droppedTotal += run.dropped;
      return true;
    }),
    { numRuns: RUNS },
  );
  t.true(delivered > RUNS && droppedTotal > RUNS / 2, `both delivered (${delivered}) and dropped (${droppedTotal}) messages were generated`);
});

test("NATS → client: the same input split differently gives the same bytes", (t) => {
  fc.assert(
    fc.property(fc.array(natsMessage, { minLength: 1, maxLength: 10 }), cuts, (messages, at) => {
      const input = Buffer.concat(messages.map(encodeNatsMessage));
      const whole = feed([input], "upstream");
      const split = feed(chunksAt(input, at), "upstream");
      const bytewise = feed(
        Array.from(input, (x) => Buffer.from([x])),
        "upstream",
      );
      t.true(split.output.equals(whole.output));
      t.true(bytewise.output.equals(whole.output));
      t.is(split.dropped, whole.dropped);
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
});

// ---- JetStream API replies: bodies carry subjects too ------------------------------------------

const INBOX = "_INBOX.fuzz.1";

/** A stream-info reply whose subject lists mix this tenant's, other tenants' and reserved subjects. */
const streamInfoReply: fc.Arbitrary<{ body: Buffer; subjects: { text: string; kind: SubjectKind }[] }> = fc
  .array(natsSubject.filter(deliverable), { minLength: 1, maxLength: 6 })
  .map((subjects) => ({
    subjects,
    body: bytes(
      JSON.stringify({
        type: "io.nats.jetstream.api.v1.stream_info_response",
        config: { name: "events", subjects: subjects.map((s) => s.text) },
        state: { messages: 1, subjects: Object.fromEntries(subjects.map((s) => [s.text, 1])) },
      }),
    ),
  }));

test("NATS → client: a JetStream API reply never shows the client a subject it does not own", (t) => {
  fc.assert(
    fc.property(streamInfoReply, cuts, ({ body, subjects }, at) => {
      const request = withPayload(`PUB $JS.API.STREAM.INFO.events ${INBOX} 0`, Buffer.alloc(0));
      const reply = withPayload(`MSG ${PREFIX}${INBOX} 7 ${body.length}`, body);
      const run = feed(chunksAt(reply, at), "upstream", (r) => {
        r.clientData(request);
      });
      if (run.thrown !== undefined) return t.fail(`the rewriter threw: ${String(run.thrown)}`);
      const parsed = parseClientBound(run.output);
      t.is(parsed.error, undefined);
      t.is(parsed.frames.length, 1);
      const info = JSON.parse(parsed.frames[0]!.payload!.toString("utf8")) as { config: { subjects: string[] }; state: { subjects: Record<string, number> } };
      // Owned subjects come back in the edge view, and so do the account's bucket and store subjects;
      // `$JS.…` ones are nothing an edge client set, so they are hidden.
      const shown = subjects.filter((s) => s.kind === "owned" || (s.kind === "jetstream" && !s.text.startsWith("$JS.")));
      const expected = [...new Set(shown.map(edgeView))];
      t.deepEqual([...new Set(info.config.subjects)].sort(), [...expected].sort());
      t.deepEqual(Object.keys(info.state.subjects).sort(), [...expected].sort());
      return true;
    }),
    { numRuns: Math.ceil(RUNS / 2) },
  );
});

/**
 * Property tests of the leafnode protocol layer, in the spirit of nats-server's parser fuzzer:
 * every input is also fed split at random points and byte by byte, and must read the same. Then
 * the leaf rewriter on arbitrary traffic, both directions: nothing reaches the hub outside the
 * tenant's namespace, nothing reaches the site that the tenant does not own, and how the bytes
 * were split changes nothing.
 */
import test from "ava";
import fc from "fast-check";
import { OutputBuffer, SubjectBytes } from "../gateway/protocol/encoder.ts";
import { ClientVerb } from "../gateway/protocol/frames.ts";
import { ClientProtocolParser } from "../gateway/protocol/parser.ts";
import { writeInterest, writeLeafMessage } from "../gateway/protocol/leaf-encoder.ts";
import { LeafVerb, type LeafFrame } from "../gateway/protocol/leaf-frames.ts";
import { LeafProtocolParser } from "../gateway/protocol/leaf-parser.ts";
import { LeafRewriter, type LeafRewriterEvents } from "../gateway/leaf-rewriter.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

type LeafModel =
  | { verb: "INFO" | "CONNECT"; json: string }
  | { verb: "LS+"; subject: string; queue?: string; weight?: number }
  | { verb: "LS-"; subject: string; queue?: string }
  | { verb: "LMSG"; subject: string; reply?: string; queues?: string[]; payload: string }
  | { verb: "HMSG"; subject: string; reply?: string; queues?: string[]; headerSize: number; payload: string }
  | { verb: "PING" | "PONG" | "+OK" }
  | { verb: "-ERR"; error: string };

const text = (buf: Buffer, start: number, end: number): string => buf.toString("latin1", start, end);
const latin1 = (s: string): Buffer => Buffer.from(s, "latin1");
const subjectOf = (s: string): SubjectBytes => new SubjectBytes().set(latin1(s), 0, s.length);

function withoutUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}

function decode(f: LeafFrame): LeafModel {
  const b = f.buf;
  const opt = (s: number, e: number): string | undefined => (s < 0 ? undefined : text(b, s, e));
  switch (f.verb) {
    case LeafVerb.Info:
      return { verb: "INFO", json: text(b, f.jsonStart, f.jsonEnd) };
    case LeafVerb.Connect:
      return { verb: "CONNECT", json: text(b, f.jsonStart, f.jsonEnd) };
    case LeafVerb.Interest:
      return withoutUndefined({ verb: "LS+", subject: text(b, f.subjectStart, f.subjectEnd), queue: opt(f.queueStart, f.queueEnd), weight: f.weight < 0 ? undefined : f.weight });
    case LeafVerb.InterestGone:
      return withoutUndefined({ verb: "LS-", subject: text(b, f.subjectStart, f.subjectEnd), queue: opt(f.queueStart, f.queueEnd) });
    case LeafVerb.Lmsg:
    case LeafVerb.Hmsg: {
      const queues = f.queueStart < 0 ? undefined : text(b, f.queueStart, f.queueEnd).split(/[ \t]+/);
      const common = { subject: text(b, f.subjectStart, f.subjectEnd), reply: opt(f.replyStart, f.replyEnd), queues, payload: text(b, f.payloadStart, f.payloadEnd) };
      return f.verb === LeafVerb.Lmsg ? withoutUndefined({ verb: "LMSG", ...common }) : withoutUndefined({ verb: "HMSG", ...common, headerSize: f.headerSize });
    }
    case LeafVerb.Ping:
      return { verb: "PING" };
    case LeafVerb.Pong:
      return { verb: "PONG" };
    case LeafVerb.Ok:
      return { verb: "+OK" };
    default:
      return { verb: "-ERR", error: text(b, f.errorStart, f.errorEnd) };
  }
}

// ---- Generators ----

const token = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff })).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 24,
});
/** Queue names: never `+` or `|` alone in first place, which would read as the reply marker. */
const queueName = token.filter((q) => q !== "+" && q !== "|");
const bytesText = (maxLength: number): fc.Arbitrary<string> => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString("latin1"));
const json = fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v), "utf8").toString("latin1"));
const errorText = fc.array(fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 10 }), { maxLength: 5 }).map((w) => w.join(" "));
const queues = fc.option(fc.array(queueName, { minLength: 1, maxLength: 4 }), { nil: undefined });

const leafFrame: fc.Arbitrary<LeafModel> = fc.oneof(
  fc.record({ verb: fc.constantFrom("INFO" as const, "CONNECT" as const), json }),
  fc.record({ subject: token, group: fc.option(fc.tuple(queueName, fc.integer({ min: 1, max: 999_999_999 })), { nil: undefined }) }).map(({ subject, group }) => withoutUndefined({ verb: "LS+" as const, subject, queue: group?.[0], weight: group?.[1] })),
  fc.record({ subject: token, queue: fc.option(queueName, { nil: undefined }) }).map(({ subject, queue }) => withoutUndefined({ verb: "LS-" as const, subject, queue })),
  fc.record({ subject: token, reply: fc.option(token, { nil: undefined }), queues, payload: bytesText(120) }).map((m) => withoutUndefined({ verb: "LMSG" as const, ...m })),
  fc
    .record({ subject: token, reply: fc.option(token, { nil: undefined }), queues, headers: bytesText(40), body: bytesText(80) })
    .map(({ headers, body, ...m }) => withoutUndefined({ verb: "HMSG" as const, ...m, headerSize: headers.length, payload: headers + body })),
  fc.constantFrom({ verb: "PING" as const }, { verb: "PONG" as const }, { verb: "+OK" as const }),
  errorText.map((error) => ({ verb: "-ERR" as const, error })),
);

// ---- Writers: the project's encoder, and a loose text writer ----

function encode(frames: LeafModel[]): Buffer {
  const out = new OutputBuffer(256);
  for (const f of frames) {
    switch (f.verb) {
      case "INFO":
      case "CONNECT":
        out.ascii(`${f.verb} `);
        out.bytes(latin1(f.json));
        out.crlf();
        break;
      case "LS+":
      case "LS-":
        writeInterest(out, f.verb === "LS+", subjectOf(f.subject), f.queue === undefined ? null : subjectOf(f.queue), "weight" in f ? f.weight : 1);
        break;
      case "LMSG":
      case "HMSG": {
        const q = f.queues ? latin1(f.queues.join(" ")) : undefined;
        writeLeafMessage(out, subjectOf(f.subject), f.reply === undefined ? null : subjectOf(f.reply), q ? { buf: q, start: 0, end: q.length } : null, f.verb === "HMSG" ? f.headerSize : -1, latin1(f.payload));
        break;
      }
      case "PING":
        out.ping();
        break;
      case "PONG":
        out.pong();
        break;
      case "+OK":
        out.ok();
        break;
      case "-ERR":
        out.err(f.error);
        break;
    }
  }
  return out.take();
}

interface Style {
  upper: boolean[];
  blanks: string[];
  bareLf: boolean;
  trailing: string;
}

const style: fc.Arbitrary<Style> = fc.record({
  upper: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
  blanks: fc.array(fc.stringMatching(/^[ \t]{1,4}$/), { minLength: 6, maxLength: 6 }),
  bareLf: fc.boolean(),
  trailing: fc.stringMatching(/^[ \t]{0,3}$/),
});

function line(verb: string, args: (string | number | undefined)[], st: Style): string {
  const v = [...verb].map((c, i) => (st.upper[i % 8] ? c.toUpperCase() : c.toLowerCase())).join("");
  const present = args.filter((a) => a !== undefined);
  return present.reduce<string>((acc, a, i) => acc + st.blanks[i % 6] + String(a), v) + (present.length > 0 ? st.trailing : "") + (st.bareLf ? "\n" : "\r\n");
}

function loose(frames: LeafModel[], st: Style): Buffer {
  let s = "";
  for (const f of frames) {
    switch (f.verb) {
      case "INFO":
      case "CONNECT":
        s += line(f.verb.toLowerCase(), [f.json], st);
        break;
      case "LS+":
        s += line("ls+", [f.subject, f.queue, f.weight], st);
        break;
      case "LS-":
        s += line("ls-", [f.subject, f.queue], st);
        break;
      case "LMSG":
      case "HMSG": {
        const route = f.queues ? (f.reply !== undefined ? ["+", f.reply, ...f.queues] : ["|", ...f.queues]) : [f.reply];
        const sizes = f.verb === "HMSG" ? [f.headerSize, f.payload.length] : [f.payload.length];
        // Blank runs inside a queue list come back as one blank in the model; write one.
        s += line(f.verb.toLowerCase(), [f.subject, ...route, ...sizes], { ...st, blanks: st.blanks.map(() => " ") }) + f.payload + "\r\n";
        break;
      }
      case "-ERR":
        s += line("-err", [`'${f.error}'`], st);
        break;
      default:
        s += line(f.verb.toLowerCase(), [], st);
    }
  }
  return latin1(s);
}

// ---- Feeding ----

interface Run {
  frames: LeafModel[];
  error: string | undefined;
  errorCount: number;
  problems: string[];
}

function chunksAt(input: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(input.subarray(at, p));
    at = p;
  }
  out.push(input.subarray(at));
  return out;
}

const byteByByte = (input: Buffer): Buffer[] => Array.from(input, (b) => Buffer.from([b]));

function spanProblems(f: LeafFrame): string[] {
  const problems: string[] = [];
  if (!(f.start >= 0 && f.start < f.end && f.end <= f.buf.length)) problems.push(`frame ${f.start}..${f.end} outside buffer of ${f.buf.length}`);
  const spans: [string, number, number][] = [
    ["subject", f.subjectStart, f.subjectEnd],
    ["reply", f.replyStart, f.replyEnd],
    ["queue", f.queueStart, f.queueEnd],
    ["payload", f.payloadStart, f.payloadEnd],
    ["json", f.jsonStart, f.jsonEnd],
    ["error", f.errorStart, f.errorEnd],
  ];
  for (const [name, start, end] of spans) {
    if (start === -1 && end === -1) continue;
    if (!(start >= f.start && start <= end && end <= f.end)) problems.push(`${name} ${start}..${end} outside frame ${f.start}..${f.end}`);
  }
  if (f.headerSize > f.payloadEnd - f.payloadStart) problems.push("header size over payload");
  return problems;
}

function run(feed: Buffer[], options?: { maxControlLine?: number; maxPayload?: number }): Run {
  const result: Run = { frames: [], error: undefined, errorCount: 0, problems: [] };
  const parser = new LeafProtocolParser(
    {
      onFrame: (f) => {
        if (result.errorCount > 0) result.problems.push("frame after error");
        result.problems.push(...spanProblems(f));
        result.frames.push(decode(f));
      },
      onError: (e) => {
        result.errorCount++;
        result.error = e.code;
      },
    },
    options,
  );
  for (const chunk of feed) parser.parse(chunk);
  return result;
}

const cuts = fc.array(fc.nat(), { maxLength: 12 });

test("leaf frames written by the encoder or loosely read back identically, whole, split anywhere and byte by byte", (t) => {
  fc.assert(
    fc.property(fc.array(leafFrame, { maxLength: 12 }), style, cuts, (frames, st, at) => {
      for (const input of [encode(frames), loose(frames, st)]) {
        for (const feed of [[input], chunksAt(input, at), byteByByte(input)]) {
          const r = run(feed);
          t.deepEqual(r.problems, []);
          t.is(r.error, undefined);
          t.deepEqual(r.frames, frames);
        }
      }
    }),
    { numRuns: RUNS },
  );
});

/** A valid stream with bytes replaced, inserted or deleted. */
const mutated: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.array(leafFrame, { minLength: 1, maxLength: 6 }).map(encode),
    fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom("replace", "insert", "delete"), byte: fc.constantFrom(0x20, 0x09, 0x0d, 0x0a, 0x30, 0x2b, 0x7c, 0x2d, 0x4c, 0x00, 0xff) }), { minLength: 1, maxLength: 4 }),
  )
  .map(([input, edits]) => {
    const bytes = [...input];
    for (const e of edits) {
      const at = bytes.length === 0 ? 0 : e.at % bytes.length;
      if (e.kind === "replace" && bytes.length > 0) bytes[at] = e.byte;
      else if (e.kind === "insert") bytes.splice(at, 0, e.byte);
      else bytes.splice(at, 1);
    }
    return Buffer.from(bytes);
  });

test("damaged or arbitrary input never throws, keeps every span inside its frame, and reads the same however split", (t) => {
  fc.assert(
    fc.property(fc.oneof(mutated, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b))), cuts, (input, at) => {
      const options = { maxControlLine: 64, maxPayload: 200 };
      const whole = run([input], options);
      t.deepEqual(whole.problems, []);
      t.true(whole.errorCount <= 1);
      for (const feed of [chunksAt(input, at), byteByByte(input)]) {
        const split = run(feed, options);
        t.deepEqual(split.problems, []);
        t.deepEqual(split.frames, whole.frames);
        t.is(split.error, whole.error);
      }
    }),
    { numRuns: RUNS },
  );
});

test("limits: a control line over the limit and a payload over max_payload are errors with their codes", (t) => {
  t.is(run([latin1(`LS+ ${"x".repeat(100)}\r\n`)], { maxControlLine: 64 }).error, "max_control_line_exceeded");
  t.is(run([latin1(`LMSG a 300\r\n${"x".repeat(300)}\r\n`)], { maxPayload: 200 }).error, "max_payload_exceeded");
  t.is(run([latin1("LMSG a 2\r\nhiX\n")]).error, "payload_terminator_missing");
  t.is(run([latin1("LMSG a b c 2\r\nhi\r\n")]).error, "malformed_frame", "queues need a + or | marker");
  t.is(run([latin1("LS+ a q\r\n")]).error, "malformed_frame", "a queue needs its weight");
  t.is(run([latin1("PUB a 2\r\nhi\r\n")]).error, "unknown_protocol_operation", "a client's PUB is no leafnode operation");
});

// ---- The rewriter on arbitrary traffic ----

const SLUG = "acme-corp";

const quiet: LeafRewriterEvents = { ended: () => {}, refused: () => {}, interestKept: () => {}, dropped: () => {}, jetStreamRefused: () => {}, hubError: () => {}, siteError: () => {}, hubLameDuck: () => {} };

/** Subjects a site or a hub might name: the tenant's, other tenants', `$` namespaces, wildcards, inboxes. */
const subject = fc.oneof(
  token,
  fc.constantFrom("events.x", "events.>", "*.y", "$SYS.REQ.SERVER.PING", "$JS.API.INFO", "$JS.hub.API.INFO", "$JS.hub.API.STREAM.INFO.events", "$JS.ACK.events.c.1.1.1.1.0", "$JS.FC.events.c.x", "$KV.config.k", "$LDS.abc", "$SRV.PING", "_R_.xyz.1", "_INBOX.a.b", "a..b"),
  token.map((s) => `${SLUG}.${s}`),
  token.map((s) => `globex.${s}`),
  token.map((s) => `$JS.ACK.events.c.1.1.1.1.0@${SLUG}.${s}`),
  token.map((s) => `$JS.ACK.events.c.1.1.1.1.0@globex.${s}`),
);

const traffic: fc.Arbitrary<LeafModel> = fc.oneof(
  fc.record({ subject, group: fc.option(fc.tuple(queueName, fc.integer({ min: 1, max: 99 })), { nil: undefined }) }).map(({ subject: s, group }) => withoutUndefined({ verb: "LS+" as const, subject: s, queue: group?.[0], weight: group?.[1] })),
  fc.record({ subject }).map(({ subject: s }) => ({ verb: "LS-" as const, subject: s })),
  fc.record({ subject, reply: fc.option(subject, { nil: undefined }), queues, payload: bytesText(60) }).map((m) => withoutUndefined({ verb: "LMSG" as const, ...m })),
  fc.constantFrom({ verb: "PING" as const }, { verb: "PONG" as const }),
);

interface Outputs {
  toHub: LeafModel[];
  toSite: LeafModel[];
  toJetStream: string[];
}

function rewrite(side: "site" | "hub", feed: Buffer[]): Outputs {
  const rw = new LeafRewriter({ slug: SLUG, maxPayload: 1024, hubMaxPayload: 1024 * 1024, jetStreamDomain: "hub", events: quiet });
  const out = { toHub: Buffer.alloc(0), toSite: Buffer.alloc(0), toJetStream: Buffer.alloc(0) };
  const take = (): void => {
    out.toHub = Buffer.concat([out.toHub, rw.takeForHub() ?? Buffer.alloc(0)]);
    out.toSite = Buffer.concat([out.toSite, rw.takeForSite() ?? Buffer.alloc(0)]);
    out.toJetStream = Buffer.concat([out.toJetStream, rw.takeForJetStream() ?? Buffer.alloc(0)]);
  };
  for (const chunk of feed) {
    if (side === "site") rw.siteData(chunk);
    else rw.hubData(chunk);
    take();
  }
  const js: string[] = [];
  new ClientProtocolParser({
    onFrame: (f) => {
      if (f.verb === ClientVerb.Pub || f.verb === ClientVerb.Hpub) js.push(`${text(f.buf, f.subjectStart, f.subjectEnd)} ${f.replyStart < 0 ? "" : text(f.buf, f.replyStart, f.replyEnd)}`);
    },
    onError: (e) => js.push(`ERROR ${e.code}`),
  }).parse(out.toJetStream);
  return { toHub: run([out.toHub]).frames, toSite: run([out.toSite]).frames, toJetStream: js };
}

test("from the site, nothing reaches the hub outside the tenant's namespace, whatever it sends and however it is split", (t) => {
  let forwarded = 0;
  let jetStream = 0;
  fc.assert(
    fc.property(fc.array(traffic, { maxLength: 10 }), cuts, (frames, at) => {
      const input = encode(frames);
      const whole = rewrite("site", [input]);
      for (const f of whole.toHub) {
        if (f.verb === "LS+" || f.verb === "LS-") t.true(f.subject.startsWith(`${SLUG}.`) || f.subject.startsWith("$LDS."), `interest ${f.subject}`);
        if (f.verb === "LMSG" || f.verb === "HMSG") {
          t.true(f.subject.startsWith(`${SLUG}.`), `message on ${f.subject}`);
          if (f.reply !== undefined) t.true(f.reply.startsWith(`${SLUG}.`), `reply ${f.reply}`);
        }
      }
      forwarded += whole.toHub.filter((f) => f.verb === "LMSG").length;
      jetStream += whole.toJetStream.length;
      for (const p of whole.toJetStream) {
        const [s, r] = p.split(" ");
        t.regex(s!, /^\$JS\.(API|ACK|FC)\./, "only JetStream goes on the JetStream connection");
        if (r) t.true(r.startsWith(`${SLUG}.`), `reply ${r}`);
      }
      t.deepEqual(rewrite("site", chunksAt(input, at)), whole);
    }),
    { numRuns: RUNS },
  );
  t.true(forwarded > 0 && jetStream > 0, "the generated traffic exercised both paths");
});

test("from the hub, the site gets only what the tenant owns, un-prefixed, whatever the hub sends and however it is split", (t) => {
  let delivered = 0;
  fc.assert(
    fc.property(fc.array(traffic, { maxLength: 10 }), cuts, (frames, at) => {
      const input = encode(frames);
      const whole = rewrite("hub", [input]);
      const sent = new Set(frames.flatMap((f) => ("subject" in f ? [f.subject] : [])));
      for (const f of whole.toSite) {
        if (f.verb !== "LMSG" && f.verb !== "HMSG") continue;
        delivered++;
        t.true(sent.has(`${SLUG}.${f.subject}`), `delivered ${f.subject} must be the un-prefixed form of a subject the tenant owns`);
        // As nats-server reads it: the message's own subject follows the last `@`, when anything does.
        const at = f.reply?.lastIndexOf("@") ?? -1;
        if (f.reply !== undefined && at >= 0 && at < f.reply.length - 1) {
          const stored = f.reply.slice(at + 1);
          t.false(stored.startsWith("globex.") || stored.startsWith(`${SLUG}.`), `JetStream subject after @ translated: ${f.reply}`);
        }
      }
      for (const f of whole.toSite) {
        if (f.verb === "LS+" || f.verb === "LS-") t.false(f.subject.startsWith("globex.") || f.subject.startsWith("$SYS.") || f.subject.startsWith("$JS.API."), `interest ${f.subject}`);
      }
      t.deepEqual(rewrite("hub", chunksAt(input, at)), whole);
    }),
    { numRuns: RUNS },
  );
  t.true(delivered > 0, "the generated traffic delivered something");
});

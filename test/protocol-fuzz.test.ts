/**
 * Property tests of the protocol layer, in the spirit of nats-server's parser fuzzer: every input
 * is also fed split at random points and byte by byte, and must read the same.
 */
import test from "ava";
import fc from "fast-check";
import { OutputBuffer, SubjectBytes } from "../gateway/protocol/encoder.ts";
import { ClientVerb, ServerVerb } from "../gateway/protocol/frames.ts";
import type { ClientFrame, ServerFrame } from "../gateway/protocol/frames.ts";
import { ClientProtocolParser, ServerProtocolParser } from "../gateway/protocol/parser.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 300);

// ---- The model: frames as plain values (strings are latin1, one character per byte) ----

type ClientModel =
  | { verb: "CONNECT"; json: string }
  | { verb: "PUB"; subject: string; reply?: string; payload: string }
  | { verb: "HPUB"; subject: string; reply?: string; headerSize: number; payload: string }
  | { verb: "SUB"; subject: string; queue?: string; sid: number }
  | { verb: "UNSUB"; sid: number; max?: number }
  | { verb: "PING" }
  | { verb: "PONG" };

type ServerModel =
  | { verb: "INFO"; json: string }
  | { verb: "MSG"; subject: string; sid: number; reply?: string; payload: string }
  | { verb: "HMSG"; subject: string; sid: number; reply?: string; headerSize: number; payload: string }
  | { verb: "PING" }
  | { verb: "PONG" }
  | { verb: "+OK" }
  | { verb: "-ERR"; error: string };

const text = (buf: Buffer, start: number, end: number): string => buf.toString("latin1", start, end);
const optional = (buf: Buffer, start: number, end: number): string | undefined => (start < 0 ? undefined : text(buf, start, end));

function decodeClient(f: ClientFrame): ClientModel {
  const b = f.buf;
  switch (f.verb) {
    case ClientVerb.Connect:
      return { verb: "CONNECT", json: text(b, f.jsonStart, f.jsonEnd) };
    case ClientVerb.Pub:
      return withoutUndefined({ verb: "PUB", subject: text(b, f.subjectStart, f.subjectEnd), reply: optional(b, f.replyStart, f.replyEnd), payload: text(b, f.payloadStart, f.payloadEnd) });
    case ClientVerb.Hpub:
      return withoutUndefined({
        verb: "HPUB",
        subject: text(b, f.subjectStart, f.subjectEnd),
        reply: optional(b, f.replyStart, f.replyEnd),
        headerSize: f.headerSize,
        payload: text(b, f.payloadStart, f.payloadEnd),
      });
    case ClientVerb.Sub:
      return withoutUndefined({ verb: "SUB", subject: text(b, f.subjectStart, f.subjectEnd), queue: optional(b, f.queueStart, f.queueEnd), sid: f.sid });
    case ClientVerb.Unsub:
      return withoutUndefined({ verb: "UNSUB", sid: f.sid, max: f.max < 0 ? undefined : f.max });
    case ClientVerb.Ping:
      return { verb: "PING" };
    default:
      return { verb: "PONG" };
  }
}

function decodeServer(f: ServerFrame): ServerModel {
  const b = f.buf;
  switch (f.verb) {
    case ServerVerb.Info:
      return { verb: "INFO", json: text(b, f.jsonStart, f.jsonEnd) };
    case ServerVerb.Msg:
      return withoutUndefined({ verb: "MSG", subject: text(b, f.subjectStart, f.subjectEnd), sid: f.sid, reply: optional(b, f.replyStart, f.replyEnd), payload: text(b, f.payloadStart, f.payloadEnd) });
    case ServerVerb.Hmsg:
      return withoutUndefined({
        verb: "HMSG",
        subject: text(b, f.subjectStart, f.subjectEnd),
        sid: f.sid,
        reply: optional(b, f.replyStart, f.replyEnd),
        headerSize: f.headerSize,
        payload: text(b, f.payloadStart, f.payloadEnd),
      });
    case ServerVerb.Ping:
      return { verb: "PING" };
    case ServerVerb.Pong:
      return { verb: "PONG" };
    case ServerVerb.Ok:
      return { verb: "+OK" };
    default:
      return { verb: "-ERR", error: text(b, f.errorStart, f.errorEnd) };
  }
}

function withoutUndefined<T extends object>(value: T): T {
  for (const key of Object.keys(value) as (keyof T)[]) if (value[key] === undefined) delete value[key];
  return value;
}

// ---- Generators ----

/** A subject-like token: any bytes but blanks, control characters and DEL. */
const token = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x21, max: 0x7e }), fc.integer({ min: 0x80, max: 0xff })).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 24,
});
const bytesText = (maxLength: number): fc.Arbitrary<string> => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString("latin1"));
const id = fc.oneof(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constant(999_999_999_999_999));
const json = fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v), "utf8").toString("latin1"));

const clientFrame: fc.Arbitrary<ClientModel> = fc.oneof(
  json.map((j) => ({ verb: "CONNECT" as const, json: j })),
  fc.record({ verb: fc.constant("PUB" as const), subject: token, reply: token, payload: bytesText(200) }, { requiredKeys: ["verb", "subject", "payload"] }),
  fc
    .record({ subject: token, reply: fc.option(token, { nil: undefined }), headers: bytesText(60), body: bytesText(100) })
    .map(({ subject, reply, headers, body }) => withoutUndefined({ verb: "HPUB" as const, subject, reply, headerSize: headers.length, payload: headers + body })),
  fc.record({ verb: fc.constant("SUB" as const), subject: token, queue: token, sid: id }, { requiredKeys: ["verb", "subject", "sid"] }),
  fc.record({ verb: fc.constant("UNSUB" as const), sid: id, max: id }, { requiredKeys: ["verb", "sid"] }),
  fc.constant({ verb: "PING" as const }),
  fc.constant({ verb: "PONG" as const }),
);

const errorText = fc.array(fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 10 }), { maxLength: 5 }).map((w) => w.join(" "));

const serverFrame: fc.Arbitrary<ServerModel> = fc.oneof(
  json.map((j) => ({ verb: "INFO" as const, json: j })),
  fc.record({ verb: fc.constant("MSG" as const), subject: token, sid: id, reply: token, payload: bytesText(200) }, { requiredKeys: ["verb", "subject", "sid", "payload"] }),
  fc
    .record({ subject: token, sid: id, reply: fc.option(token, { nil: undefined }), headers: bytesText(60), body: bytesText(100) })
    .map(({ subject, sid, reply, headers, body }) => withoutUndefined({ verb: "HMSG" as const, subject, sid, reply, headerSize: headers.length, payload: headers + body })),
  fc.constantFrom({ verb: "PING" as const }, { verb: "PONG" as const }, { verb: "+OK" as const }),
  errorText.map((e) => ({ verb: "-ERR" as const, error: e })),
);

// ---- Encoders: the project's own, and an independent "noisy" one that writes text ----

const latin1 = (s: string): Buffer => Buffer.from(s, "latin1");
const subjectOf = (s: string): SubjectBytes => new SubjectBytes().set(latin1(s), 0, s.length);

function encodeClient(frames: ClientModel[]): Buffer {
  const out = new OutputBuffer(256);
  for (const f of frames) {
    switch (f.verb) {
      case "CONNECT":
        out.ascii("CONNECT ");
        out.bytes(latin1(f.json));
        out.crlf();
        break;
      case "PUB":
        out.pub(subjectOf(f.subject), f.reply === undefined ? null : subjectOf(f.reply), latin1(f.payload));
        break;
      case "HPUB":
        out.hpub(subjectOf(f.subject), f.reply === undefined ? null : subjectOf(f.reply), f.headerSize, latin1(f.payload));
        break;
      case "SUB":
        out.sub(subjectOf(f.subject), f.queue === undefined ? null : subjectOf(f.queue), f.sid);
        break;
      case "UNSUB":
        out.unsub(f.sid, f.max);
        break;
      case "PING":
        out.ping();
        break;
      case "PONG":
        out.pong();
        break;
    }
  }
  return out.take();
}

function encodeServer(frames: ServerModel[]): Buffer {
  const out = new OutputBuffer(256);
  for (const f of frames) {
    switch (f.verb) {
      case "INFO":
        out.ascii("INFO ");
        out.bytes(latin1(f.json));
        out.crlf();
        break;
      case "MSG":
        out.msg(subjectOf(f.subject), f.sid, f.reply === undefined ? null : subjectOf(f.reply), latin1(f.payload));
        break;
      case "HMSG":
        out.hmsg(subjectOf(f.subject), f.sid, f.reply === undefined ? null : subjectOf(f.reply), f.headerSize, latin1(f.payload));
        break;
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

/** How loosely a peer may write: verb case, blank runs (spaces and tabs), bare LF line ends. */
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

function noisyLine(verb: string, args: (string | number | undefined)[], st: Style): string {
  const v = [...verb].map((c, i) => (st.upper[i % 8] ? c.toUpperCase() : c.toLowerCase())).join("");
  const present = args.filter((a) => a !== undefined);
  const line = present.reduce<string>((acc, a, i) => acc + st.blanks[i % 6] + String(a), v);
  return line + (present.length > 0 ? st.trailing : "") + (st.bareLf ? "\n" : "\r\n");
}

function noisyClient(frames: ClientModel[], st: Style): Buffer {
  let s = "";
  for (const f of frames) {
    switch (f.verb) {
      case "CONNECT":
        s += noisyLine("connect", [f.json], st);
        break;
      case "PUB":
        s += noisyLine("pub", [f.subject, f.reply, f.payload.length], st) + f.payload + "\r\n";
        break;
      case "HPUB":
        s += noisyLine("hpub", [f.subject, f.reply, f.headerSize, f.payload.length], st) + f.payload + "\r\n";
        break;
      case "SUB":
        s += noisyLine("sub", [f.subject, f.queue, f.sid], st);
        break;
      case "UNSUB":
        s += noisyLine("unsub", [f.sid, f.max], st);
        break;
      default:
        s += noisyLine(f.verb.toLowerCase(), [], st);
    }
  }
  return latin1(s);
}

function noisyServer(frames: ServerModel[], st: Style): Buffer {
  let s = "";
  for (const f of frames) {
    switch (f.verb) {
      case "INFO":
        s += noisyLine("info", [f.json], st);
        break;
      case "MSG":
        s += noisyLine("msg", [f.subject, f.sid, f.reply, f.payload.length], st) + f.payload + "\r\n";
        break;
      case "HMSG":
        s += noisyLine("hmsg", [f.subject, f.sid, f.reply, f.headerSize, f.payload.length], st) + f.payload + "\r\n";
        break;
      case "-ERR":
        s += noisyLine("-err", [`'${f.error}'`], st);
        break;
      default:
        s += noisyLine(f.verb.toLowerCase(), [], st);
    }
  }
  return latin1(s);
}

// ---- Feeding ----

interface Run<M> {
  frames: M[];
  error: string | undefined;
  errorCount: number;
  /** Violations of the frame contract seen during the run. */
  problems: string[];
}

type Feed = Buffer[];

function chunksAt(input: Buffer, cuts: number[]): Feed {
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

function byteByByte(input: Buffer): Feed {
  return Array.from(input, (b) => Buffer.from([b]));
}

/** Checks that every span of a frame lies inside its buffer and inside the frame. */
function spanProblems(f: ClientFrame | ServerFrame): string[] {
  const problems: string[] = [];
  if (!(f.start >= 0 && f.start < f.end && f.end <= f.buf.length)) problems.push(`frame ${f.start}..${f.end} outside buffer of ${f.buf.length}`);
  const spans: [string, number, number][] = [
    ["subject", f.subjectStart, f.subjectEnd],
    ["reply", f.replyStart, f.replyEnd],
    ["sid", f.sidStart, f.sidEnd],
    ["payload", f.payloadStart, f.payloadEnd],
    ["json", f.jsonStart, f.jsonEnd],
  ];
  if ("queueStart" in f) spans.push(["queue", f.queueStart, f.queueEnd]);
  if ("errorStart" in f) spans.push(["error", f.errorStart, f.errorEnd]);
  for (const [name, start, end] of spans) {
    if (start === -1 && end === -1) continue;
    if (!(start >= f.start && start <= end && end <= f.end)) problems.push(`${name} ${start}..${end} outside frame ${f.start}..${f.end}`);
  }
  if (f.headerSize > f.payloadEnd - f.payloadStart) problems.push("header size over payload");
  return problems;
}

function runClient(feed: Feed, options?: { maxControlLine?: number; maxPayload?: number }): Run<ClientModel> {
  const run: Run<ClientModel> = { frames: [], error: undefined, errorCount: 0, problems: [] };
  const parser = new ClientProtocolParser(
    {
      onFrame: (f) => {
        if (run.errorCount > 0) run.problems.push("frame after error");
        run.problems.push(...spanProblems(f));
        run.frames.push(decodeClient(f));
      },
      onError: (e) => {
        run.errorCount++;
        run.error = e.code;
      },
    },
    options,
  );
  for (const chunk of feed) parser.parse(chunk);
  return run;
}

function runServer(feed: Feed, options?: { maxControlLine?: number; maxPayload?: number }): Run<ServerModel> {
  const run: Run<ServerModel> = { frames: [], error: undefined, errorCount: 0, problems: [] };
  const parser = new ServerProtocolParser(
    {
      onFrame: (f) => {
        if (run.errorCount > 0) run.problems.push("frame after error");
        run.problems.push(...spanProblems(f));
        run.frames.push(decodeServer(f));
      },
      onError: (e) => {
        run.errorCount++;
        run.error = e.code;
      },
    },
    options,
  );
  for (const chunk of feed) parser.parse(chunk);
  return run;
}

const cuts = fc.array(fc.nat(), { maxLength: 12 });

// ---- (a) valid frames read back identically however they are split ----

test("client frames written by the encoder read back identically, whole, split anywhere and byte by byte", (t) => {
  fc.assert(
    fc.property(fc.array(clientFrame, { maxLength: 12 }), cuts, (frames, at) => {
      const input = encodeClient(frames);
      for (const feed of [[input], chunksAt(input, at), byteByByte(input)]) {
        const run = runClient(feed);
        t.deepEqual(run.problems, []);
        t.is(run.error, undefined);
        t.deepEqual(run.frames, frames);
      }
    }),
    { numRuns: RUNS },
  );
});

test("client frames written loosely (case, blank runs, tabs, bare LF) read back identically however split", (t) => {
  fc.assert(
    fc.property(fc.array(clientFrame, { maxLength: 12 }), style, cuts, (frames, st, at) => {
      const input = noisyClient(frames, st);
      for (const feed of [[input], chunksAt(input, at), byteByByte(input)]) {
        const run = runClient(feed);
        t.is(run.error, undefined);
        t.deepEqual(run.frames, frames);
      }
    }),
    { numRuns: RUNS },
  );
});

test("server frames read back identically, encoded or written loosely, however split", (t) => {
  fc.assert(
    fc.property(fc.array(serverFrame, { maxLength: 12 }), style, cuts, (frames, st, at) => {
      for (const input of [encodeServer(frames), noisyServer(frames, st)]) {
        for (const feed of [[input], chunksAt(input, at), byteByByte(input)]) {
          const run = runServer(feed);
          t.deepEqual(run.problems, []);
          t.is(run.error, undefined);
          t.deepEqual(run.frames, frames);
        }
      }
    }),
    { numRuns: RUNS },
  );
});

// ---- (b) garbage and mutated frames: never a throw, never a span outside its buffer ----

/** A valid stream with bytes replaced, inserted or deleted. */
function mutated(base: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom("replace", "insert", "delete"), byte: fc.constantFrom(0x20, 0x09, 0x0d, 0x0a, 0x30, 0x39, 0x2d, 0x41, 0x00, 0xff) });
  return fc.tuple(base, fc.array(edit, { minLength: 1, maxLength: 4 })).map(([input, edits]) => {
    const bytes = [...input];
    for (const e of edits) {
      const at = bytes.length === 0 ? 0 : e.at % bytes.length;
      if (e.kind === "replace" && bytes.length > 0) bytes[at] = e.byte;
      else if (e.kind === "insert") bytes.splice(at, 0, e.byte);
      else bytes.splice(at, 1);
    }
    return Buffer.from(bytes);
  });
}

const smallLimits = { maxControlLine: 48, maxPayload: 150 };

for (const [name, inputs] of [
  ["random bytes", fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b))],
  ["random protocol-like text", fc.array(fc.constantFrom("PUB ", "HPUB ", "SUB ", "UNSUB ", "PING", "CONNECT ", "MSG ", "INFO ", "+OK", "-ERR ", "a", "1", "12", " ", "\t", "\r\n", "\n", "\r", "-1", "{}"), { maxLength: 60 }).map((p) => Buffer.from(p.join(""), "latin1"))],
  ["mutated client frames", mutated(fc.array(clientFrame, { minLength: 1, maxLength: 6 }).map(encodeClient))],
  ["mutated server frames", mutated(fc.array(serverFrame, { minLength: 1, maxLength: 6 }).map(encodeServer))],
] as const) {
  test(`${name} never throw out of parse, and read the same whole, split and byte by byte`, (t) => {
    fc.assert(
      fc.property(inputs, cuts, fc.boolean(), (input, at, limited) => {
        const options = limited ? smallLimits : undefined;
        const clientRuns = [[input], chunksAt(input, at), byteByByte(input)].map((feed) => runClient(feed, options));
        const serverRuns = [[input], chunksAt(input, at), byteByByte(input)].map((feed) => runServer(feed, options));
        for (const runs of [clientRuns, serverRuns] as Run<unknown>[][]) {
          for (const run of runs) {
            t.deepEqual(run.problems, []);
            t.true(run.errorCount <= 1);
          }
          t.deepEqual(runs[1], runs[0]);
          t.deepEqual(runs[2], runs[0]);
        }
      }),
      { numRuns: RUNS },
    );
  });
}

// ---- (c) the gateway's rewrite round-trips: prefix + span in, prefix + span out ----

test("a subject written as prefix + span of another buffer parses back as their concatenation", (t) => {
  fc.assert(
    fc.property(token, token, fc.option(token, { nil: undefined }), bytesText(300), id, (prefix, subject, reply, payload, sid) => {
      // The subject sits inside a larger read, as it does in the gateway.
      const read = latin1(`xx ${subject} ${reply ?? ""} yy`);
      const prefixBytes = latin1(`${prefix}.`);
      const subj = new SubjectBytes().set(read, 3, 3 + subject.length, prefixBytes);
      const rep = reply === undefined ? null : new SubjectBytes().set(read, 4 + subject.length, 4 + subject.length + reply.length, prefixBytes);
      const out = new OutputBuffer(128);
      out.pub(subj, rep, latin1(payload));
      out.msg(subj, sid, rep, latin1(payload));
      const bytes = out.take();
      const pub = runClient([bytes.subarray(0, bytes.indexOf("MSG ", 0, "latin1"))]);
      const msg = runServer([bytes.subarray(bytes.indexOf("MSG ", 0, "latin1"))]);
      const expectedReply = reply === undefined ? {} : { reply: `${prefix}.${reply}` };
      t.deepEqual(pub.frames, [{ verb: "PUB", subject: `${prefix}.${subject}`, ...expectedReply, payload }]);
      t.deepEqual(msg.frames, [{ verb: "MSG", subject: `${prefix}.${subject}`, sid, ...expectedReply, payload }]);
    }),
    { numRuns: RUNS },
  );
});

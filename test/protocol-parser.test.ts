import test from "ava";
import { ClientVerb, ServerVerb, frameString } from "../gateway/protocol/frames.ts";
import type { ClientFrame, ProtocolError, ProtocolErrorCode, ServerFrame } from "../gateway/protocol/frames.ts";
import { ClientProtocolParser, ServerProtocolParser } from "../gateway/protocol/parser.ts";
import type { ParserOptions } from "../gateway/protocol/parser.ts";

// Frames decoded to plain values, with only the fields the verb carries.
type Decoded = Record<string, string | number>;

const CLIENT_VERB_NAMES = ["CONNECT", "PUB", "HPUB", "SUB", "UNSUB", "PING", "PONG"];
const SERVER_VERB_NAMES = ["INFO", "MSG", "HMSG", "PING", "PONG", "+OK", "-ERR"];

function span(out: Decoded, name: string, buf: Buffer, start: number, end: number): void {
  if (start >= 0) out[name] = frameString(buf, start, end);
}

function decodeClient(f: ClientFrame): Decoded {
  const out: Decoded = { verb: CLIENT_VERB_NAMES[f.verb]! };
  span(out, "subject", f.buf, f.subjectStart, f.subjectEnd);
  span(out, "reply", f.buf, f.replyStart, f.replyEnd);
  span(out, "queue", f.buf, f.queueStart, f.queueEnd);
  if (f.sid >= 0) out.sid = f.sid;
  if (f.max >= 0) out.max = f.max;
  if (f.headerSize >= 0) out.headerSize = f.headerSize;
  span(out, "payload", f.buf, f.payloadStart, f.payloadEnd);
  span(out, "json", f.buf, f.jsonStart, f.jsonEnd);
  return out;
}

function decodeServer(f: ServerFrame): Decoded {
  const out: Decoded = { verb: SERVER_VERB_NAMES[f.verb]! };
  span(out, "subject", f.buf, f.subjectStart, f.subjectEnd);
  if (f.sid >= 0) out.sid = f.sid;
  span(out, "reply", f.buf, f.replyStart, f.replyEnd);
  if (f.headerSize >= 0) out.headerSize = f.headerSize;
  span(out, "payload", f.buf, f.payloadStart, f.payloadEnd);
  span(out, "json", f.buf, f.jsonStart, f.jsonEnd);
  span(out, "error", f.buf, f.errorStart, f.errorEnd);
  return out;
}

interface Outcome {
  frames: Decoded[];
  errors: ProtocolError[];
}

function client(input: string | Buffer | (string | Buffer)[], options?: ParserOptions): Outcome {
  const outcome: Outcome = { frames: [], errors: [] };
  const parser = new ClientProtocolParser({ onFrame: (f) => outcome.frames.push(decodeClient(f)), onError: (e) => outcome.errors.push(e) }, options);
  for (const chunk of Array.isArray(input) ? input : [input]) parser.parse(Buffer.from(chunk as string, "latin1"));
  return outcome;
}

function server(input: string | Buffer | (string | Buffer)[], options?: ParserOptions): Outcome {
  const outcome: Outcome = { frames: [], errors: [] };
  const parser = new ServerProtocolParser({ onFrame: (f) => outcome.frames.push(decodeServer(f)), onError: (e) => outcome.errors.push(e) }, options);
  for (const chunk of Array.isArray(input) ? input : [input]) parser.parse(Buffer.from(chunk as string, "latin1"));
  return outcome;
}

/** Every way of cutting `input` in two, and byte by byte. */
function splits(input: string): string[][] {
  const out: string[][] = [[input], [...input]];
  for (let i = 1; i < input.length; i++) out.push([input.slice(0, i), input.slice(i)]);
  return out;
}

const validClientFrames: [string, Decoded[]][] = [
  ['CONNECT {"verbose":false,"name":"agent 001"}\r\n', [{ verb: "CONNECT", json: '{"verbose":false,"name":"agent 001"}' }]],
  ["PUB events.poller.health 5\r\nhello\r\n", [{ verb: "PUB", subject: "events.poller.health", payload: "hello" }]],
  ["PUB a _INBOX.x 2\r\nhi\r\n", [{ verb: "PUB", subject: "a", reply: "_INBOX.x", payload: "hi" }]],
  ["PUB subj 0\r\n\r\n", [{ verb: "PUB", subject: "subj", payload: "" }]],
  ["PUB a 4\r\n\r\n\r\n\r\n", [{ verb: "PUB", subject: "a", payload: "\r\n\r\n" }]],
  ["HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", [{ verb: "HPUB", subject: "a", headerSize: 12, payload: "NATS/1.0\r\n\r\nhi" }]],
  ["HPUB a r 12 12\r\nNATS/1.0\r\n\r\n\r\n", [{ verb: "HPUB", subject: "a", reply: "r", headerSize: 12, payload: "NATS/1.0\r\n\r\n" }]],
  ["SUB events.> 1\r\n", [{ verb: "SUB", subject: "events.>", sid: 1 }]],
  ["SUB jobs.* workers 42\r\n", [{ verb: "SUB", subject: "jobs.*", queue: "workers", sid: 42 }]],
  ["UNSUB 7\r\n", [{ verb: "UNSUB", sid: 7 }]],
  ["UNSUB 7 10\r\n", [{ verb: "UNSUB", sid: 7, max: 10 }]],
  ["UNSUB 7 0\r\n", [{ verb: "UNSUB", sid: 7, max: 0 }]],
  ["PING\r\n", [{ verb: "PING" }]],
  ["PONG\r\n", [{ verb: "PONG" }]],
  // Whitespace runs, tabs, blanks before the line end, bare LF: all as nats-server reads them.
  ["PUB \t a \t\t b   3  \t\r\nxyz\r\n", [{ verb: "PUB", subject: "a", reply: "b", payload: "xyz" }]],
  ["SUB\tfoo\tq\t9\t\r\n", [{ verb: "SUB", subject: "foo", queue: "q", sid: 9 }]],
  ["UNSUB   3    4 \r\n", [{ verb: "UNSUB", sid: 3, max: 4 }]],
  ["PING \t\r\n", [{ verb: "PING" }]],
  ["PING\n", [{ verb: "PING" }]],
  ["PUB a 1\nx\r\n", [{ verb: "PUB", subject: "a", payload: "x" }]],
  ['CONNECT    {"a": 1,  "b": [1, 2]}  \t\r\n', [{ verb: "CONNECT", json: '{"a": 1,  "b": [1, 2]}' }]],
  // Verbs in any case.
  ["pub a 1\r\nx\r\nPuB b 1\r\ny\r\nhpub c 0 0\r\n\r\nsub d 1\r\nSub e 2\r\nunsub 1\r\nping\r\nPong\r\nconnect {}\r\n",
    [
      { verb: "PUB", subject: "a", payload: "x" },
      { verb: "PUB", subject: "b", payload: "y" },
      { verb: "HPUB", subject: "c", headerSize: 0, payload: "" },
      { verb: "SUB", subject: "d", sid: 1 },
      { verb: "SUB", subject: "e", sid: 2 },
      { verb: "UNSUB", sid: 1 },
      { verb: "PING" },
      { verb: "PONG" },
      { verb: "CONNECT", json: "{}" },
    ]],
  // Bytes that are not blanks belong to arguments: a stray CR, non-ASCII, quotes.
  ["PUB a\rb 1\r\nx\r\n", [{ verb: "PUB", subject: "a\rb", payload: "x" }]],
  ["PUB \xe9v\xe9nements 0\r\n\r\n", [{ verb: "PUB", subject: "\xe9v\xe9nements", payload: "" }]],
];

for (const [input, expected] of validClientFrames) {
  test(`client parser reads ${JSON.stringify(input.length > 60 ? input.slice(0, 60) + "…" : input)} whatever the read boundaries`, (t) => {
    for (const chunks of splits(input)) {
      const { frames, errors } = client(chunks);
      t.deepEqual(errors, [], `split ${JSON.stringify(chunks.map((c) => c.length))}`);
      t.deepEqual(frames, expected, `split ${JSON.stringify(chunks.map((c) => c.length))}`);
    }
  });
}

const validServerFrames: [string, Decoded[]][] = [
  ['INFO {"server_id":"NABC","max_payload":1048576,"nonce":"x y"} \r\n', [{ verb: "INFO", json: '{"server_id":"NABC","max_payload":1048576,"nonce":"x y"}' }]],
  ["MSG acme-corp.events.x 1 5\r\nhello\r\n", [{ verb: "MSG", subject: "acme-corp.events.x", sid: 1, payload: "hello" }]],
  ["MSG a 22 acme-corp._INBOX.y 0\r\n\r\n", [{ verb: "MSG", subject: "a", sid: 22, reply: "acme-corp._INBOX.y", payload: "" }]],
  ["HMSG a 3 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", [{ verb: "HMSG", subject: "a", sid: 3, headerSize: 12, payload: "NATS/1.0\r\n\r\nhi" }]],
  ["HMSG a 3 r 12 12\r\nNATS/1.0\r\n\r\n\r\n", [{ verb: "HMSG", subject: "a", sid: 3, reply: "r", headerSize: 12, payload: "NATS/1.0\r\n\r\n" }]],
  ["PING\r\nPONG\r\n+OK\r\n", [{ verb: "PING" }, { verb: "PONG" }, { verb: "+OK" }]],
  ["-ERR 'Permissions Violation for Publish to \"x\"'\r\n", [{ verb: "-ERR", error: 'Permissions Violation for Publish to "x"' }]],
  ["-ERR  Unquoted text \r\n", [{ verb: "-ERR", error: "Unquoted text" }]],
  ["-ERR ''\r\n", [{ verb: "-ERR", error: "" }]],
  ["msg\ta\t1\t\t2\t\r\nhi\r\n+ok\nPing\r\n", [{ verb: "MSG", subject: "a", sid: 1, payload: "hi" }, { verb: "+OK" }, { verb: "PING" }]],
];

for (const [input, expected] of validServerFrames) {
  test(`server parser reads ${JSON.stringify(input.length > 60 ? input.slice(0, 60) + "…" : input)} whatever the read boundaries`, (t) => {
    for (const chunks of splits(input)) {
      const { frames, errors } = server(chunks);
      t.deepEqual(errors, [], `split ${JSON.stringify(chunks.map((c) => c.length))}`);
      t.deepEqual(frames, expected, `split ${JSON.stringify(chunks.map((c) => c.length))}`);
    }
  });
}

test("pipelined frames in one read come out in order", (t) => {
  const input = 'CONNECT {}\r\nSUB a 1\r\nPUB a 1\r\nx\r\nPUB b r 2\r\nyz\r\nUNSUB 1\r\nPING\r\n';
  t.deepEqual(client(input).frames.map((f) => f.verb), ["CONNECT", "SUB", "PUB", "PUB", "UNSUB", "PING"]);
});

test("frames inside one read are views into that read, not copies", (t) => {
  const chunk = Buffer.from("PUB a 1\r\nx\r\nSUB b 2\r\nPUB c 3\r\nab");
  const seen: Buffer[] = [];
  const parser = new ClientProtocolParser({ onFrame: (f) => seen.push(f.buf), onError: () => t.fail() });
  parser.parse(chunk);
  t.is(seen.length, 2);
  t.true(seen.every((b) => b === chunk));
  // The PUB that spans reads is delivered from the parser's scratch buffer.
  parser.parse(Buffer.from("c\r\n"));
  t.is(seen.length, 3);
  t.not(seen[2], chunk);
});

test("the frame object is one instance, reused for every frame", (t) => {
  const frames = new Set<ClientFrame>();
  const parser = new ClientProtocolParser({ onFrame: (f) => frames.add(f), onError: () => t.fail() });
  parser.parse(Buffer.from("PING\r\nPUB a 1\r\nx\r\nSUB a 1\r\n"));
  t.is(frames.size, 1);
});

test("frame spans cover the whole frame", (t) => {
  const input = Buffer.from("PING\r\nPUB a 1\r\nx\r\nSUB b 1\r\n");
  const spans: [number, number][] = [];
  new ClientProtocolParser({ onFrame: (f) => spans.push([f.start, f.end]), onError: () => t.fail() }).parse(input);
  t.deepEqual(spans, [[0, 6], [6, 18], [18, 27]]);
});

test("fields a verb does not carry are -1", (t) => {
  let frame: ClientFrame | undefined;
  const parser = new ClientProtocolParser({ onFrame: (f) => void (frame = f), onError: () => t.fail() });
  parser.parse(Buffer.from("SUB a q 1\r\n"));
  parser.parse(Buffer.from("PUB b 1\r\nx\r\n"));
  t.is(frame?.verb, ClientVerb.Pub);
  t.is(frame?.queueStart, -1);
  t.is(frame?.sid, -1);
  t.is(frame?.replyStart, -1);
  t.is(frame?.headerSize, -1);
  t.is(frame?.jsonStart, -1);
  // Nor does a field of the previous frame of the same verb linger.
  parser.parse(Buffer.from("PUB c r 0\r\n\r\nPUB d 0\r\n\r\nSUB e q 2\r\nSUB f 3\r\n"));
  t.is(frame?.queueStart, -1);
  t.is(frame?.queueEnd, -1);
});

test("a PUB without a reply after one with a reply has no reply", (t) => {
  const replies: number[] = [];
  new ClientProtocolParser({ onFrame: (f) => replies.push(f.replyStart), onError: () => t.fail() }).parse(Buffer.from("PUB a r 0\r\n\r\nPUB b 0\r\n\r\n"));
  t.deepEqual(replies, [6, -1]);
});

test("a large payload arriving in many reads is delivered once, intact", (t) => {
  const payload = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const input = Buffer.concat([Buffer.from(`PUB big ${payload.length}\r\n`), payload, Buffer.from("\r\nPING\r\n")]);
  const got: Buffer[] = [];
  const verbs: number[] = [];
  const parser = new ClientProtocolParser(
    {
      onFrame: (f) => {
        verbs.push(f.verb);
        if (f.verb === ClientVerb.Pub) got.push(Buffer.from(f.buf.subarray(f.payloadStart, f.payloadEnd)));
      },
      onError: () => t.fail(),
    },
    { maxPayload: 2 * 1024 * 1024 },
  );
  for (let at = 0; at < input.length; at += 1000) parser.parse(input.subarray(at, at + 1000));
  t.deepEqual(verbs, [ClientVerb.Pub, ClientVerb.Ping]);
  t.true(got[0]?.equals(payload));
});

test("a long stream of frames of mixed sizes read in socket-sized pieces comes out whole", (t) => {
  const expected: Decoded[] = [];
  let input = "";
  for (let i = 0; i < 200; i++) {
    const payload = String.fromCharCode(0x61 + (i % 26)).repeat((i * 397) % 6000);
    input += `PUB s.${i} r.${i} ${payload.length}\r\n${payload}\r\nSUB s.${i} ${i}\r\n`;
    expected.push({ verb: "PUB", subject: `s.${i}`, reply: `r.${i}`, payload }, { verb: "SUB", subject: `s.${i}`, sid: i });
  }
  for (const size of [16 * 1024, 4096, 1500, 7]) {
    const chunks: string[] = [];
    for (let at = 0; at < input.length; at += size) chunks.push(input.slice(at, at + size));
    const { frames, errors } = client(chunks);
    t.deepEqual(errors, [], `reads of ${size}`);
    t.deepEqual(frames, expected, `reads of ${size}`);
  }
});

test("server parser reads INFO longer than a client's control line limit", (t) => {
  const json = JSON.stringify({ connect_urls: Array.from({ length: 400 }, (_, i) => `10.0.${i >> 8}.${i & 255}:4222`) });
  t.true(json.length > 4096);
  const { frames, errors } = server(`INFO ${json}\r\n`);
  t.deepEqual(errors, []);
  t.deepEqual(frames, [{ verb: "INFO", json }]);
});

test("maxPayload can be raised and lowered after construction", (t) => {
  const frames: number[] = [];
  const errors: ProtocolErrorCode[] = [];
  const parser = new ClientProtocolParser({ onFrame: (f) => frames.push(f.payloadEnd - f.payloadStart), onError: (e) => errors.push(e.code) }, { maxPayload: 2 });
  parser.parse(Buffer.from("PUB a 2\r\nab\r\n"));
  parser.maxPayload = 3;
  t.is(parser.maxPayload, 3);
  parser.parse(Buffer.from("PUB a 3\r\nabc\r\n"));
  parser.maxPayload = 1;
  parser.parse(Buffer.from("PUB a 2\r\nab\r\n"));
  t.deepEqual(frames, [2, 3]);
  t.deepEqual(errors, ["max_payload_exceeded"]);
});

// Each error: the exact input, its code, and the -ERR text a nats-server 2.9 would send.
const clientErrors: [string, string, ProtocolErrorCode, string, ParserOptions?][] = [
  ["an unknown verb", "FOO bar\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["a server verb from a client", "MSG a 1 1\r\nx\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["a verb run into its argument", "PUBa 1\r\nx\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["junk after PING", "PINGX\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["blanks before the verb", " PING\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["an empty line", "\r\nPING\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["CONNECT without a blank", "CONNECT{}\r\n", "unknown_protocol_operation", "Unknown Protocol Operation"],
  ["PUB with too many arguments", "PUB a b c 1\r\nx\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["PUB without a size", "PUB a\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["PUB with a negative size", "PUB a -1\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["PUB with a non-numeric size", "PUB a 1x\r\nx\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["PUB with a 10-digit size", "PUB a 0000000001\r\nx\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["HPUB with one size", "HPUB a 1\r\nx\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["HPUB header size over total size", "HPUB a 4 3\r\nabc\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["HPUB with a bad header size", "HPUB a x 3\r\nabc\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["SUB without a sid", "SUB a\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["SUB with a non-numeric sid", "SUB a q x1\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["SUB with too many arguments", "SUB a q r 1\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["UNSUB without a sid", "UNSUB \r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["UNSUB with a negative max", "UNSUB 1 -5\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["UNSUB with too many arguments", "UNSUB 1 2 3\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["PING with an argument", "PING now\r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["CONNECT without JSON", "CONNECT \r\n", "malformed_frame", "Unknown Protocol Operation"],
  ["a payload longer than its size", "PUB a 2\r\nabc\r\n", "payload_terminator_missing", "Unknown Protocol Operation"],
  ["a payload followed by a bare LF", "PUB a 2\r\nab\nPING\r\n", "payload_terminator_missing", "Unknown Protocol Operation"],
  ["a payload followed by a CR alone", "PUB a 2\r\nab\rPING\r\n", "payload_terminator_missing", "Unknown Protocol Operation"],
  ["a payload over max_payload", "PUB a 11\r\n", "max_payload_exceeded", "Maximum Payload Violation", { maxPayload: 10 }],
  ["an HPUB over max_payload", "HPUB a 2 11\r\n", "max_payload_exceeded", "Maximum Payload Violation", { maxPayload: 10 }],
  ["a long control line without its end", `PUB ${"a".repeat(200)}`, "max_control_line_exceeded", "maximum control line exceeded", { maxControlLine: 64 }],
  ["a long control line with its end", `SUB ${"a".repeat(70)} 1\r\n`, "max_control_line_exceeded", "maximum control line exceeded", { maxControlLine: 64 }],
  ["a long CONNECT", `CONNECT {"x":"${"a".repeat(70)}"}\r\n`, "max_control_line_exceeded", "maximum control line exceeded", { maxControlLine: 64 }],
];

for (const [what, input, code, wireText, options] of clientErrors) {
  test(`client parser refuses ${what} with ${code}, whatever the read boundaries`, (t) => {
    for (const chunks of splits(input)) {
      const { frames, errors } = client([...chunks, "PING\r\n"], options);
      const where = `split ${JSON.stringify(chunks.map((c) => c.length))}`;
      t.deepEqual(frames, [], where);
      t.is(errors.length, 1, where);
      t.is(errors[0]?.code, code, where);
      t.is(errors[0]?.wireText, wireText, where);
    }
  });
}

const serverErrors: [string, string, ProtocolErrorCode][] = [
  ["a client verb from a server", "PUB a 1\r\nx\r\n", "unknown_protocol_operation"],
  ["+OK with junk", "+OKAY\r\n", "unknown_protocol_operation"],
  ["-ERR without a blank", "-ERR\r\n", "unknown_protocol_operation"],
  ["MSG without a sid", "MSG a 1\r\nx\r\n", "malformed_frame"],
  ["MSG with a non-numeric sid", "MSG a b 1\r\nx\r\n", "malformed_frame"],
  ["HMSG header size over total size", "HMSG a 1 3 2\r\nab\r\n", "malformed_frame"],
  ["INFO without JSON", "INFO  \r\n", "malformed_frame"],
  ["a MSG payload not followed by CRLF", "MSG a 1 1\r\nxy\r\n", "payload_terminator_missing"],
];

for (const [what, input, code] of serverErrors) {
  test(`server parser refuses ${what} with ${code}, whatever the read boundaries`, (t) => {
    for (const chunks of splits(input)) {
      const { frames, errors } = server([...chunks, "PING\r\n"]);
      t.deepEqual(frames, [], `split ${JSON.stringify(chunks.map((c) => c.length))}`);
      t.deepEqual(
        errors.map((e) => e.code),
        [code],
        `split ${JSON.stringify(chunks.map((c) => c.length))}`,
      );
    }
  });
}

test("server parser applies max_payload to MSG", (t) => {
  const { errors } = server("MSG a 1 11\r\n", { maxPayload: 10 });
  t.deepEqual(
    errors.map((e) => e.code),
    ["max_payload_exceeded"],
  );
});

test("max_payload is refused as soon as the control line is read, before the payload arrives", (t) => {
  const { errors } = client("PUB a 2000000\r\n");
  t.is(errors[0]?.code, "max_payload_exceeded");
  t.regex(errors[0]?.message ?? "", /2000000 bytes exceeds max_payload 1048576/);
});

test("a control line of exactly maxControlLine bytes is accepted, one more is not", (t) => {
  const line = (n: number): string => `SUB ${"s".repeat(n - "SUB ".length - " 1".length)} 1`;
  t.is(line(64).length, 64);
  t.deepEqual(client(`${line(64)}\r\n`, { maxControlLine: 64 }).errors, []);
  t.deepEqual(client(`${line(64)}\n`, { maxControlLine: 64 }).errors, []);
  t.is(client(`${line(65)}\r\n`, { maxControlLine: 64 }).errors[0]?.code, "max_control_line_exceeded");
  // Without its line end yet: 65 bytes and a CR could still become a 65-byte line; 66 cannot.
  t.deepEqual(client(line(64) + "\r", { maxControlLine: 64 }).errors, []);
  t.is(client(line(66), { maxControlLine: 64 }).errors[0]?.code, "max_control_line_exceeded");
});

test("frames before an error are delivered, nothing after it", (t) => {
  const { frames, errors } = client(["PING\r\nSUB a 1\r\nBOGUS\r\nPUB a 1\r\nx\r\n", "PING\r\n"]);
  t.deepEqual(frames, [{ verb: "PING" }, { verb: "SUB", subject: "a", sid: 1 }]);
  t.is(errors.length, 1);
});

test("the error carries a snippet of the offending bytes, but never CONNECT's credentials", (t) => {
  const { errors } = client("PING\r\nBOGUS operation\r\n");
  t.deepEqual(errors[0]?.details, { snippet: "BOGUS operation\r\n" });
  t.is(errors[0]?.name, "ProtocolError");
  const connect = client(`CONNECT {"user":"a","pass":"hunter2","x":"${"x".repeat(100)}"}\r\n`, { maxControlLine: 64 });
  t.is(connect.errors[0]?.code, "max_control_line_exceeded");
  t.deepEqual(connect.errors[0]?.details, { snippet: "CONNECT …" });
});

test("stop() from onFrame ends parsing, even inside the same read", (t) => {
  const verbs: number[] = [];
  const parser: ClientProtocolParser = new ClientProtocolParser({
    onFrame: (f) => {
      verbs.push(f.verb);
      if (f.verb === ClientVerb.Sub) parser.stop();
    },
    onError: () => t.fail(),
  });
  parser.parse(Buffer.from("PING\r\nSUB a 1\r\nPING\r\n"));
  parser.parse(Buffer.from("PING\r\n"));
  t.deepEqual(verbs, [ClientVerb.Ping, ClientVerb.Sub]);
  t.true(parser.isStopped);
});

test("a handler that throws stops the parser and the exception reaches the caller", (t) => {
  let calls = 0;
  const parser = new ServerProtocolParser({
    onFrame: () => {
      calls++;
      throw new Error("handler bug");
    },
    onError: () => t.fail(),
  });
  t.throws(() => parser.parse(Buffer.from("PING\r\nPING\r\n")), { message: "handler bug" });
  parser.parse(Buffer.from("PING\r\n"));
  t.is(calls, 1);
  t.true(parser.isStopped);
});

test("server -ERR text and verbs decode to the ServerVerb values", (t) => {
  const verbs: number[] = [];
  new ServerProtocolParser({ onFrame: (f) => verbs.push(f.verb), onError: () => t.fail() }).parse(
    Buffer.from("INFO {}\r\nMSG a 1 0\r\n\r\nHMSG a 1 0 0\r\n\r\nPING\r\nPONG\r\n+OK\r\n-ERR 'x'\r\n"),
  );
  t.deepEqual(verbs, [ServerVerb.Info, ServerVerb.Msg, ServerVerb.Hmsg, ServerVerb.Ping, ServerVerb.Pong, ServerVerb.Ok, ServerVerb.Err]);
});

test("options are checked", (t) => {
  const handler = { onFrame: () => undefined, onError: () => undefined };
  t.throws(() => new ClientProtocolParser(handler, { maxControlLine: 4 }), { instanceOf: RangeError });
  t.throws(() => new ClientProtocolParser(handler, { maxPayload: -1 }), { instanceOf: RangeError });
});

import test from "ava";
import { OutputBuffer, SubjectBytes } from "../gateway/protocol/encoder.ts";

function written(write: (out: OutputBuffer) => void): string {
  const out = new OutputBuffer();
  write(out);
  return out.take().toString("latin1");
}

const s = (text: string, prefix = ""): SubjectBytes => SubjectBytes.of(text, prefix);
const bytes = (text: string): Buffer => Buffer.from(text, "latin1");

test("pub writes PUB with and without a reply", (t) => {
  t.is(
    written((o) => o.pub(s("events.poller.health"), null, bytes("hello"))),
    "PUB events.poller.health 5\r\nhello\r\n",
  );
  t.is(
    written((o) => o.pub(s("a"), s("_INBOX.x"), bytes(""))),
    "PUB a _INBOX.x 0\r\n\r\n",
  );
});

test("pub writes the tenant prefix in front of subject and reply from offsets into a read", (t) => {
  const read = bytes("PUB events.poller.health _INBOX.x 5\r\nhello\r\n");
  const prefix = bytes("acme-corp.");
  const subject = new SubjectBytes().set(read, 4, 24, prefix);
  const reply = new SubjectBytes().set(read, 25, 33, prefix);
  t.is(
    written((o) => o.pub(subject, reply, read, 37, 42)),
    "PUB acme-corp.events.poller.health acme-corp._INBOX.x 5\r\nhello\r\n",
  );
});

test("hpub writes header and total sizes", (t) => {
  const payload = bytes("NATS/1.0\r\nA: b\r\n\r\nbody");
  t.is(
    written((o) => o.hpub(s("a"), null, 18, payload)),
    "HPUB a 18 22\r\nNATS/1.0\r\nA: b\r\n\r\nbody\r\n",
  );
  t.is(
    written((o) => o.hpub(s("a"), s("r"), 18, payload, 0, 18)),
    "HPUB a r 18 18\r\nNATS/1.0\r\nA: b\r\n\r\n\r\n",
  );
});

test("msg and hmsg write the sid after the subject", (t) => {
  t.is(
    written((o) => o.msg(s("events.x"), 42, null, bytes("hi"))),
    "MSG events.x 42 2\r\nhi\r\n",
  );
  t.is(
    written((o) => o.msg(s("events.x"), 0, s("_INBOX.y"), bytes("hi"))),
    "MSG events.x 0 _INBOX.y 2\r\nhi\r\n",
  );
  t.is(
    written((o) => o.hmsg(s("a"), 7, s("r"), 12, bytes("NATS/1.0\r\n\r\nhi"))),
    "HMSG a 7 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
  );
  t.is(
    written((o) => o.hmsg(s("a"), 7, null, 12, bytes("NATS/1.0\r\n\r\n"))),
    "HMSG a 7 12 12\r\nNATS/1.0\r\n\r\n\r\n",
  );
});

test("msg writes a subject with its tenant prefix cut off, from offsets", (t) => {
  const read = bytes("MSG acme-corp.events.x 3 2\r\nhi\r\n");
  const subject = new SubjectBytes().set(read, 4 + "acme-corp.".length, 22);
  t.is(
    written((o) => o.msg(subject, 3, null, read, 28, 30)),
    "MSG events.x 3 2\r\nhi\r\n",
  );
});

test("sub and unsub", (t) => {
  t.is(
    written((o) => o.sub(s("events.>", "acme-corp."), null, 1)),
    "SUB acme-corp.events.> 1\r\n",
  );
  t.is(
    written((o) => o.sub(s("jobs.*"), s("workers"), 123456789012345)),
    "SUB jobs.* workers 123456789012345\r\n",
  );
  t.is(
    written((o) => o.unsub(9)),
    "UNSUB 9\r\n",
  );
  t.is(
    written((o) => o.unsub(9, 0)),
    "UNSUB 9 0\r\n",
  );
  t.is(
    written((o) => o.unsub(10, 250)),
    "UNSUB 10 250\r\n",
  );
});

test("ping, pong, +OK", (t) => {
  t.is(
    written((o) => {
      o.ping();
      o.pong();
      o.ok();
    }),
    "PING\r\nPONG\r\n+OK\r\n",
  );
});

test("err quotes the text and cannot be made to break the line", (t) => {
  t.is(
    written((o) => o.err("Permissions Violation for Publish to \"$SYS.x\"")),
    "-ERR 'Permissions Violation for Publish to \"$SYS.x\"'\r\n",
  );
  t.is(
    written((o) => o.err("a\r\nPUB x 1\r\nb é")),
    "-ERR 'a??PUB x 1??b ?'\r\n",
  );
});

test("info and connect write JSON on one line", (t) => {
  t.is(
    written((o) => o.info({ server_id: "x", max_payload: 1048576, text: "line\nbreak" })),
    'INFO {"server_id":"x","max_payload":1048576,"text":"line\\nbreak"}\r\n',
  );
  t.is(
    written((o) => o.connect({ verbose: false, name: "agent é" })),
    'CONNECT {"verbose":false,"name":"agent é"}\r\n'.replace("é", "\xc3\xa9"),
  );
});

test("primitives write exactly what they are given", (t) => {
  t.is(
    written((o) => {
      o.ascii("HPUB");
      o.byte(0x20);
      o.decimal(0);
      o.byte(0x20);
      o.decimal(9);
      o.byte(0x20);
      o.decimal(10);
      o.byte(0x20);
      o.decimal(4294967296);
      o.crlf();
      o.bytes(bytes("0123456789"), 2, 5);
      o.bytes(bytes("xyz"));
    }),
    "HPUB 0 9 10 4294967296\r\n234xyz",
  );
});

test("bytes copies short and long spans alike (JS and native copy paths)", (t) => {
  const src = Buffer.alloc(300);
  for (let i = 0; i < src.length; i++) src[i] = (i * 31 + 7) & 0xff;
  for (const [start, end] of [
    [0, 0],
    [1, 2],
    [3, 7],
    [5, 68],
    [1, 63],
    [0, 64],
    [7, 300],
  ] as const) {
    const out = new OutputBuffer();
    out.byte(0xaa);
    out.bytes(src, start, end);
    out.byte(0xbb);
    t.deepEqual(out.take(), Buffer.concat([Buffer.from([0xaa]), src.subarray(start, end), Buffer.from([0xbb])]), `${start}..${end}`);
  }
});

test("take returns what was written since the last take and never overwrites a taken buffer", (t) => {
  const out = new OutputBuffer(1024);
  out.ascii("first");
  t.is(out.length, 5);
  const first = out.take();
  t.is(out.length, 0);
  // The same slab goes on being written after the taken part...
  out.ascii("second");
  const second = out.take();
  // ...then runs out, more than once, with a frame larger than a whole slab in between.
  out.pub(s("a"), null, Buffer.alloc(1500, 0x61));
  const third = out.take();
  for (let i = 0; i < 500; i++) out.ping();
  const fourth = out.take();
  t.is(first.toString(), "first");
  t.is(second.toString(), "second");
  t.is(third.toString(), `PUB a 1500\r\n${"a".repeat(1500)}\r\n`);
  t.is(fourth.toString(), "PING\r\n".repeat(500));
  t.is(out.take().length, 0);
});

test("a frame that does not fit the slab keeps what was written before it in the same take", (t) => {
  const out = new OutputBuffer(64);
  out.ascii("x".repeat(30));
  out.pub(s("big"), null, Buffer.alloc(1000, 0x62));
  t.is(out.take().toString(), `${"x".repeat(30)}PUB big 1000\r\n${"b".repeat(1000)}\r\n`);
});

test("SubjectBytes.of writes back exactly the bytes a subject was read from (UTF-8 on the wire stays UTF-8)", (t) => {
  const wire = Buffer.from("événements", "utf8");
  const subject = SubjectBytes.of(wire.toString("latin1"), "acme-corp.");
  t.is(subject.length, "acme-corp.".length + wire.length);
  t.deepEqual(Buffer.from(written((o) => o.sub(subject, null, 1)), "latin1"), Buffer.concat([Buffer.from("SUB acme-corp."), wire, Buffer.from(" 1\r\n")]));
});

test("slab size is checked", (t) => {
  t.throws(() => new OutputBuffer(8), { instanceOf: RangeError });
});

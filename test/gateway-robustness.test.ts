/**
 * The data path under abuse, against a real nats-server: frames trickled one byte per write,
 * refused frames (nats-server's -ERR wording; a refused publish or subscription leaves the session
 * going, a protocol error ends that session only), clients
 * that reset the connection at every stage, NATS killed with SIGKILL under live clients, and a
 * client that stops reading while its subject is flooded. Raw TLS clients speak the protocol by
 * hand where a stock client would refuse to send the bytes.
 */
import { EventEmitter, once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import v8 from "node:v8";
import vm from "node:vm";
import test from "ava";
import type { NatsConnection } from "@nats-io/transport-node";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { RawClient, within } from "./helpers/raw-client.ts";

const SLOW_CONSUMER_MS = 500;
let dep: Deployment;

/** Every client identity the tests use. */
const COMPONENTS = ["survivor", "newcomer", "slow-reader", "flooder", "trickle", "splitter", "bystander", "refused", "half-good", "resetter"];

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"], gateway: { slow_consumer_ms: SLOW_CONSUMER_MS } });
  // Issued up front: signing a certificate blocks the event loop for tens of milliseconds, which
  // in the middle of a test could outlast the gateway's wait for a TLS-first ClientHello.
  for (const component of COMPONENTS) await dep.edge("acme-corp", component);
});

test.after.always(async () => {
  await dep?.stop();
});

// ---- Helpers ---------------------------------------------------------------------------------

/** The session id the gateway gave this raw client. */
async function sessionOf(client: RawClient): Promise<string> {
  const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.remote === `127.0.0.1:${client.localPort}`);
  return accepted.session as string;
}

/** Publishes on its own subject and waits for each message to come back, one at a time, until stopped. */
class RoundTrips {
  count = 0;
  private stopped = false;
  private readonly progress = new EventEmitter();
  private readonly done: Promise<void>;

  constructor(nc: NatsConnection, subject: string) {
    const sub = nc.subscribe(subject);
    this.done = (async () => {
      await nc.flush();
      const messages = sub[Symbol.asyncIterator]();
      while (!this.stopped) {
        const n = this.count;
        nc.publish(subject, String(n));
        const next = await within(messages.next(), 5000, `round trip ${n} on ${subject}`);
        if (next.done) throw new Error(`the subscription on ${subject} ended`);
        if (next.value.string() !== String(n)) throw new Error(`round trip ${n} on ${subject} got ${next.value.string()}`);
        this.count++;
        this.progress.emit("trip");
      }
      sub.unsubscribe();
    })();
    this.done.catch(() => this.progress.emit("trip"));
  }

  /** Resolves after `n` more round trips; rejects if the loop failed. */
  async more(n: number): Promise<void> {
    const target = this.count + n;
    while (this.count < target) await Promise.race([once(this.progress, "trip"), this.done]);
  }

  stop(): Promise<void> {
    this.stopped = true;
    return this.done;
  }
}

/** A v3 session of the same tenant that keeps working while other sessions are refused. */
let bystander: Promise<{ nc: NatsConnection; disconnects: number }> | undefined;
function theBystander(): Promise<{ nc: NatsConnection; disconnects: number }> {
  bystander ??= (async () => {
    const nc = await dep.v3(await dep.edge("acme-corp", "bystander"));
    const state = { nc, disconnects: 0 };
    void (async () => {
      for await (const s of nc.status()) if (s.type === "disconnect") state.disconnects++;
    })();
    return state;
  })();
  return bystander;
}

const ROUND_TRIPS = 20;

// ---- Serial: these two disturb the whole deployment (ava runs serial tests first) ----------------

interface StatusLog {
  seen: string[];
  /** Resolves once a status of this type was reported (before or after the call). */
  next(type: string): Promise<void>;
}

function watchStatus(status: AsyncIterable<{ type: string }>): StatusLog {
  const events = new EventEmitter();
  const seen: string[] = [];
  void (async () => {
    for await (const s of status) {
      seen.push(s.type);
      events.emit(s.type);
    }
  })();
  return {
    seen,
    next: (type) => (seen.includes(type) ? Promise.resolve() : within(once(events, type).then(() => undefined), 20_000, `status ${type}`)),
  };
}

test.serial("NATS killed with SIGKILL and restarted: v2 and v3 clients see disconnect and reconnect, and pub/sub works again through the gateway", async (t) => {
  const creds = await dep.edge("acme-corp", "survivor");
  const reconnecting = { reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 200 };
  const v3 = await dep.v3(creds, reconnecting);
  const v2 = await dep.v2(creds, reconnecting);
  t.teardown(async () => {
    await v3.close();
    await v2.close();
  });
  const v3Status = watchStatus(v3.status());
  const v2Status = watchStatus(v2.status());
  const logsBefore = dep.logs.lines.length;

  /** v2 publishes, v3 receives, and the other way round. */
  const bothWays = async (tag: string): Promise<void> => {
    const at3 = v3.subscribe(`events.survivor.${tag}.to-v3`, { max: 1 });
    const at2 = v2.subscribe(`events.survivor.${tag}.to-v2`, { max: 1 });
    await Promise.all([v3.flush(), v2.flush()]);
    v2.publish(`events.survivor.${tag}.to-v3`, new TextEncoder().encode("from v2"));
    v3.publish(`events.survivor.${tag}.to-v2`, "from v3");
    const [m3, m2] = await within(Promise.all([at3[Symbol.asyncIterator]().next(), at2[Symbol.asyncIterator]().next()]), 10_000, `pub/sub ${tag}`);
    t.is(m3.value?.string(), "from v2");
    t.is(new TextDecoder().decode(m2.value?.data), "from v3");
  };

  await bothWays("before");
  await dep.nats.restart({ hard: true });
  await Promise.all([v3Status.next("disconnect"), v2Status.next("disconnect")]);
  await Promise.all([v3Status.next("reconnect"), v2Status.next("reconnect")]);
  // The gateway's own control connection reports losing NATS and getting it back.
  await dep.logs.waitFor((l) => l.event === "nats_disconnected" && dep.logs.lines.indexOf(l) >= logsBefore);
  await dep.logs.waitFor((l) => l.event === "nats_reconnected" && dep.logs.lines.indexOf(l) >= logsBefore);
  await bothWays("after");

  const newcomer = await dep.v3(await dep.edge("acme-corp", "newcomer"));
  t.teardown(() => newcomer.close());
  t.is((await within(newcomer.request("$JS.API.INFO", ""), 10_000, "JetStream account info")).json<{ type: string }>().type, "io.nats.jetstream.api.v1.account_info_response", "a new client gets a session, JetStream included");
  t.log(`v3 saw ${v3Status.seen.join(", ")}; v2 saw ${v2Status.seen.join(", ")}`);
});

/**
 * Heap and buffers this process still holds after a full garbage collection (the gateway runs in
 * it): what the gateway keeps, not the garbage a flood leaves behind. `gc` is V8's own, enabled at
 * run time because ava's node arguments are the project's. V8 frees buffer memory on a background
 * sweep after the collection, hence the second round.
 */
v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;
async function memoryRetained(): Promise<number> {
  collectGarbage();
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test.serial("a client that stops reading is cut as a slow consumer, without the gateway buffering its flood, and the publisher carries on", async (t) => {
  const slow = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "slow-reader"));
  await slow.handshake({ extra: "SUB events.flood 1\r\n" });
  const session = await sessionOf(slow);
  slow.socket.pause();

  const publisher = await dep.v3(await dep.edge("acme-corp", "flooder"));
  t.teardown(() => publisher.close());
  const cut = dep.logs.waitFor((l) => l.event === "slow_consumer" && l.session === session, 30_000);
  let isCut = false;
  const stopFlooding = (): boolean => (isCut = true);
  void cut.then(stopFlooding, stopFlooding);

  // Batches of 256 KiB, each flushed: what the publisher itself has in flight stays small. The
  // memory is sampled every 2 MiB; without flow control it would grow with every batch.
  const payload = new Uint8Array(64 * 1024).fill(0x66);
  const before = await memoryRetained();
  let peak = before;
  let flooded = 0;
  while (!isCut && flooded < 256 * 2 ** 20) {
    for (let i = 0; i < 4; i++) publisher.publish("events.flood", payload);
    await publisher.flush();
    flooded += 4 * payload.length;
    if (flooded % (2 * 2 ** 20) === 0 || isCut) peak = Math.max(peak, await memoryRetained());
  }
  const line = await cut;
  const closed = await dep.logs.waitFor((l) => l.event === "session_closed" && l.session === session);
  t.is(closed.reason, "slow consumer");
  const growth = peak - before;
  t.log(`flooded ${flooded >> 20} MiB before the cut; retained memory grew by at most ${(growth / 2 ** 20).toFixed(1)} MiB; ${line.pending_bytes as number} bytes were pending for the client`);
  t.true(flooded >= 4 * 2 ** 20, "several MiB were flooded before the cut");
  t.true((line.pending_bytes as number) < 2 ** 20, "the gateway held back at most a few reads for the client");
  t.true(growth < flooded / 4, "retained memory grew by far less than was flooded");

  // The publisher's own session is untouched.
  const check = new RoundTrips(publisher, "events.flooder.after");
  await check.more(ROUND_TRIPS);
  await check.stop();
  slow.socket.resume();
  await within(slow.closed, 10_000, "the slow client's connection closing");
});

// ---- Frames that arrive in pieces --------------------------------------------------------------

for (const mode of ["TLS-first", "INFO then TLS"] as const) {
  test(`frames written one byte per write (${mode}): CONNECT, SUB, PUB and PING come back as MSG and PONG`, async (t) => {
    const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "trickle"), mode);
    t.teardown(() => client.socket.destroy());
    const { end } = await client.handshake({ bytewise: true });
    const subject = `events.trickle.${mode === "TLS-first" ? "tls-first" : "info-first"}`;
    await client.writeBytewise(`SUB ${subject}.> 7\r\nPUB ${subject}.one 5\r\nhello\r\nPING\r\n`);
    const { end: after } = await client.waitFor(/PONG\r\n/, end);
    t.is(client.received(end, after), `MSG ${subject}.one 7 5\r\nhello\r\nPONG\r\n`);
  });
}

test("a TLS-first client is recognised even when the gateway is too busy to look within tls_first_delay_ms", async (t) => {
  const tcp = net.connect({ host: "127.0.0.1", port: dep.gateway.port });
  t.teardown(() => tcp.destroy());
  await once(tcp, "connect");
  const socket = tls.connect({ socket: tcp, host: "127.0.0.1", ...(await dep.edge("acme-corp", "trickle")) });
  socket.on("error", () => undefined);
  // The gateway runs in this process: keeping it busy past its 50 ms wait lets the timer and the
  // ClientHello, already sent, fall due together.
  const busyUntil = Date.now() + 150;
  while (Date.now() < busyUntil);
  await within(once(socket, "secureConnect"), 10_000, "the TLS handshake");
  const [info] = (await once(socket, "data")) as [Buffer];
  t.regex(info.toString("latin1"), /^INFO \{/, "INFO came after the TLS handshake, not as plain text in its way");
});

test("HPUB split at every position of its frame, header block included, arrives whole as HMSG", async (t) => {
  const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "splitter"));
  t.teardown(() => client.socket.destroy());
  let { end } = await client.handshake({ extra: "SUB events.split 3\r\n" });
  const headers = "NATS/1.0\r\nX-Split: every-position\r\nX-Other: é\r\n\r\n";
  const body = "the body";
  const headerBytes = Buffer.byteLength(headers, "latin1");
  const frame = `HPUB events.split ${headerBytes} ${headerBytes + body.length}\r\n${headers}${body}\r\n`;
  const expected = `HMSG events.split 3 ${headerBytes} ${headerBytes + body.length}\r\n${headers}${body}\r\n`;
  for (let cut = 1; cut < frame.length; cut++) {
    await client.write(frame.slice(0, cut));
    await client.write(frame.slice(cut));
    t.is(await client.next(expected.length, end), expected, `split at ${cut}`);
    end += expected.length;
  }
});

// ---- Refused frames ------------------------------------------------------------------------------

interface Refusal {
  title: string;
  frame: (maxPayload: number) => string;
  err: string;
  event: string;
  code: string;
}

/** Protocol errors: nats-server closes the connection, and so does the gateway (that session only). */
const fatal: Refusal[] = [
  { title: "a PUB with four arguments", frame: () => "PUB a b c d\r\n", err: "Unknown Protocol Operation", event: "client_protocol_error", code: "malformed_frame" },
  { title: "a PUB with a size that is not a number", frame: () => "PUB events.x abc\r\n", err: "Unknown Protocol Operation", event: "client_protocol_error", code: "malformed_frame" },
  { title: "a payload above the INFO max_payload", frame: (max) => `PUB events.x ${max + 1}\r\n`, err: "Maximum Payload Violation", event: "client_protocol_error", code: "max_payload_exceeded" },
  { title: "an unknown verb", frame: () => "FOO events.x\r\n", err: "Unknown Protocol Operation", event: "client_protocol_error", code: "unknown_protocol_operation" },
];

/** Publishes and subscriptions the client may not make: -ERR, the frame goes nowhere, the session goes on (as with nats-server). */
const refused: Refusal[] = [
  { title: "a wildcard publish subject", frame: () => "PUB events.* 1\r\nx\r\n", err: "Invalid Publish Subject", event: "publish_refused", code: "subject_wildcard" },
  { title: "an empty token", frame: () => "PUB events..x 1\r\nx\r\n", err: "Invalid Publish Subject", event: "publish_refused", code: "subject_empty_token" },
  { title: "a control character inside a subject", frame: () => "PUB events.a\rb 1\r\nx\r\n", err: "Invalid Publish Subject", event: "publish_refused", code: "subject_control_character" },
  { title: "a publish to $SYS", frame: () => "PUB $SYS.REQ.SERVER.PING 0\r\n\r\n", err: 'Permissions Violation for Publish to "$SYS.REQ.SERVER.PING"', event: "publish_refused", code: "subject_reserved" },
  { title: "a subscription to $SYS", frame: () => "SUB $SYS.> 9\r\n", err: 'Permissions Violation for Subscription to "$SYS.>"', event: "subscribe_refused", code: "subject_reserved" },
  { title: "a publish into a bucket edge clients may only read", frame: () => "PUB $KV.not-writable.k 1\r\nx\r\n", err: 'Permissions Violation for Publish to "$KV.not-writable.k"', event: "publish_refused", code: "subject_reserved" },
];

for (const r of fatal) {
  test(`${r.title} ends that session with -ERR '${r.err}', logged with code ${r.code}; another session carries on`, async (t) => {
    const { nc, disconnects } = await theBystander();
    const trips = new RoundTrips(nc, `events.bystander.${r.code}.${fatal.indexOf(r)}`);
    t.teardown(() => trips.stop().catch(() => undefined));
    await trips.more(ROUND_TRIPS);

    const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "refused"));
    const { maxPayload, end } = await client.handshake();
    const session = await sessionOf(client);
    await client.write(r.frame(maxPayload));
    await within(client.closed, 10_000, "the refused session closing");
    t.is(client.received(end), `-ERR '${r.err}'\r\n`, "exactly one -ERR, then the connection closes");
    t.false(client.received().includes("acme-corp"), "nothing the client got names the tenant prefix");
    const logged = await dep.logs.waitFor((l) => l.session === session && l.event === r.event);
    t.is(logged.code, r.code);

    await trips.more(ROUND_TRIPS);
    await trips.stop();
    t.is((await theBystander()).disconnects, disconnects, "the bystander never lost its connection");
  });
}

for (const r of refused) {
  test(`${r.title} gets -ERR '${r.err}', logged with code ${r.code}, and the session goes on`, async (t) => {
    const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "refused"));
    t.teardown(() => client.socket.destroy());
    const subject = `events.still-here.${refused.indexOf(r)}`;
    const { maxPayload, end } = await client.handshake({ extra: `SUB ${subject} 1\r\n` });
    const session = await sessionOf(client);
    await client.write(`${r.frame(maxPayload)}PUB ${subject} 2\r\nok\r\nPING\r\n`);
    const { end: after } = await client.waitFor(/PONG\r\n/, end);
    t.is(client.received(end, after), `-ERR '${r.err}'\r\nMSG ${subject} 1 2\r\nok\r\nPONG\r\n`, "one -ERR, and the frames after it are served");
    t.false(client.received().includes("acme-corp"), "nothing the client got names the tenant prefix");
    const logged = await dep.logs.waitFor((l) => l.session === session && l.event === r.event);
    t.is(logged.code, r.code);
    t.false(client.socket.destroyed, "the connection stays open");
  });
}

test("frames written before and after a refused frame, in the same write, reach NATS", async (t) => {
  const direct = await dep.direct("acme-corp");
  t.teardown(() => direct.close());
  const seen = direct.subscribe("acme-corp.events.around-refusal");
  await direct.flush();
  const client = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "half-good"));
  t.teardown(() => client.socket.destroy());
  const { end } = await client.handshake();
  await client.write("PUB events.around-refusal 6\r\nbefore\r\nPUB events.* 5\r\nwrong\r\nPUB events.around-refusal 5\r\nafter\r\nPING\r\n");
  const { end: after } = await client.waitFor(/PONG\r\n/, end);
  t.is(client.received(end, after), "-ERR 'Invalid Publish Subject'\r\nPONG\r\n");
  const messages = seen[Symbol.asyncIterator]();
  t.is((await within(messages.next(), 5000, "the frame before the refusal")).value?.string(), "before");
  t.is((await within(messages.next(), 5000, "the frame after the refusal")).value?.string(), "after");
});

test("a client that resets its connection at any stage takes nothing else down", async (t) => {
  const creds = await dep.edge("acme-corp", "resetter");
  const { nc } = await theBystander();
  const trips = new RoundTrips(nc, "events.bystander.resets");
  t.teardown(() => trips.stop().catch(() => undefined));
  await trips.more(ROUND_TRIPS);

  // Before TLS: reported as closed by the client, at once (a health check is not a handshake timeout).
  const bare = net.connect({ host: "127.0.0.1", port: dep.gateway.port });
  bare.on("error", () => undefined);
  await once(bare, "connect");
  const barePort = bare.localPort;
  bare.resetAndDestroy();
  const bareRefusal = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.remote === `127.0.0.1:${barePort}`, 3000);
  t.is(bareRefusal.code, "client_closed");

  // After the TLS handshake, before CONNECT.
  const early = await RawClient.open(dep.gateway.port, creds);
  await early.waitFor(/^INFO /);
  early.tcp.resetAndDestroy();
  await dep.logs.waitFor((l) => l.event === "connection_refused" && l.remote === `127.0.0.1:${early.localPort}`);

  // Right after CONNECT, while the gateway opens the session upstream.
  const midway = await RawClient.open(dep.gateway.port, creds, "INFO then TLS");
  await midway.write(`CONNECT {"verbose":false}\r\nPING\r\n`);
  midway.tcp.resetAndDestroy();

  // In the middle of a session.
  const live = await RawClient.open(dep.gateway.port, creds);
  await live.handshake({ extra: "SUB events.> 1\r\n" });
  const liveSession = await sessionOf(live);
  live.tcp.resetAndDestroy();
  await dep.logs.waitFor((l) => l.event === "session_closed" && l.session === liveSession);

  await trips.more(ROUND_TRIPS);
  await trips.stop();
  const fresh = await RawClient.open(dep.gateway.port, creds);
  t.teardown(() => fresh.socket.destroy());
  const { end } = await fresh.handshake({ extra: "SUB events.after-resets 1\r\nPUB events.after-resets 2\r\nok\r\n" });
  t.regex(fresh.received(0, end), /MSG events\.after-resets 1 2\r\nok\r\n/, "a new client still gets a working session");
});

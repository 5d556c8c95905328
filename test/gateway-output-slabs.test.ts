/**
 * Output buffers are reused across sessions (gateway/protocol/slab-pool.ts): a slab goes back to
 * the pool only when its socket has written it. Here one tenant's subscriber stops reading; after
 * `slow_consumer_drop_ms` the gateway reads NATS for it again and queues up to 256 KiB of rewritten
 * frames in its socket (dropping the rest), while another tenant pushes megabytes through the same
 * process, taking slabs from the pool all the time. When the first subscriber reads again, every
 * message it gets must be one that was published, byte for byte: a slab reused while the socket
 * still held it would hand it the other tenant's bytes.
 */
import test from "ava";
import type { NatsConnection } from "@nats-io/transport-node";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

const SIZE = 16 * 1024;
/** Published to the paused subscriber at most (its kernel buffers take megabytes first). */
const MAX_HELD = 4000;
const FLOOD = 1200;
const DROP_MS = 200;

let dep: Deployment;

test.before(async () => {
  // Nobody is cut for being slow while the subscriber is paused; what it cannot take is dropped.
  dep = await startDeployment({ tenants: ["acme-corp", "globex"], gateway: { slow_consumer_ms: 60_000, slow_consumer_drop_ms: DROP_MS } });
});

test.after.always(async () => {
  await dep?.stop();
});

/** A payload only message `seq` of `tag` has. */
function payloadOf(tag: number, seq: number): Uint8Array {
  const bytes = new Uint8Array(SIZE);
  for (let i = 0; i < SIZE; i += 4) {
    bytes[i] = tag;
    bytes[i + 1] = seq & 0xff;
    bytes[i + 2] = seq >> 8;
    bytes[i + 3] = (i >> 2) & 0xff;
  }
  return bytes;
}

function socketOf(nc: NatsConnection): { pause(): void; resume(): void } {
  return (nc as unknown as { protocol: { transport: { socket: { pause(): void; resume(): void } } } }).protocol.transport.socket;
}

test.serial("a subscriber that stopped reading gets its messages intact while another tenant's traffic reuses the output buffers", async (t) => {
  const held = await dep.v3(await dep.edge("acme-corp", "held"));
  const heldPublisher = await dep.v3(await dep.edge("acme-corp", "pub"));
  const floodSub = await dep.v3(await dep.edge("globex", "sub"));
  const floodPub = await dep.v3(await dep.edge("globex", "pub"));
  t.teardown(() => Promise.all([held, heldPublisher, floodSub, floodPub].map((nc) => nc.close().catch(() => undefined))));

  const got: Uint8Array[] = [];
  const done = new Promise<void>((resolve) => {
    held.subscribe("events.held", {
      callback: (_err, msg) => {
        if (msg.data.length === 4) resolve();
        else got.push(msg.data);
      },
    });
  });
  await held.flush();
  let flooded = 0;
  const allFlooded = new Promise<void>((resolve) => {
    floodSub.subscribe("events.flood", {
      callback: (_err, msg) => {
        if (msg.data.length !== SIZE || msg.data[0] !== 2) t.fail("globex got a message that is not globex's");
        if (++flooded === FLOOD) resolve();
      },
    });
  });
  await floodSub.flush();

  socketOf(held).pause();
  const before = dep.logs.lines.length;
  // Until the kernel's buffers are full and, past the drop delay, the gateway reads NATS for the
  // paused subscriber again and queues for it.
  const dropping = dep.logs.waitFor((l) => l.event === "slow_consumer_dropping" && dep.logs.lines.indexOf(l) >= before, 30_000);
  let queueing = false;
  void dropping.then(() => (queueing = true));
  let seq = 0;
  while (!queueing && seq < MAX_HELD) {
    for (let i = 0; i < 100; i++) heldPublisher.publish("events.held", payloadOf(1, seq++));
    await heldPublisher.flush();
  }
  await dropping;
  for (let i = 0; i < 200; i++) heldPublisher.publish("events.held", payloadOf(1, seq++));
  await heldPublisher.flush();
  // Meanwhile the other tenant's megabytes go through the same process.
  for (let seq = 0; seq < FLOOD; seq++) {
    floodPub.publish("events.flood", payloadOf(2, seq));
    if (seq % 100 === 99) await floodPub.flush();
  }
  await allFlooded;

  socketOf(held).resume();
  await dep.logs.waitFor((l) => l.event === "slow_consumer_recovered" && dep.logs.lines.indexOf(l) >= before, 20_000);
  // The end marker, until it arrives (one sent while the gateway was still dropping is lost).
  let ended = false;
  void done.then(() => (ended = true));
  for (let i = 0; i < 100 && !ended; i++) {
    heldPublisher.publish("events.held", new Uint8Array(4));
    await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 200))]);
  }
  t.true(ended, "the paused subscriber gets messages again once it reads");
  t.true(got.length >= 10, `the paused subscriber got ${got.length} messages`);
  let last = -1;
  for (const data of got) {
    const seq = data[1]! | (data[2]! << 8);
    if (data[0] !== 1 || seq <= last || !Buffer.from(data).equals(Buffer.from(payloadOf(1, seq)))) {
      t.fail(`a message of the paused subscriber arrived changed (after message ${last})`);
      return;
    }
    last = seq;
  }
  t.log(`${got.length} of ${seq} messages reached the paused subscriber intact, the rest dropped for it`);
});

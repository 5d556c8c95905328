/**
 * The output slab pool: a slab is lent to one owner at a time, comes back only once and only from
 * a finished write, and an output buffer hands its lent store to exactly one taker. The socket
 * test writes lent slabs to a reader that is not reading, reuses the pool meanwhile, and checks
 * the reader still gets the bytes that were written.
 */
import test from "ava";
import net from "node:net";
import { once } from "node:events";
import { OutputBuffer, SubjectBytes } from "../gateway/protocol/encoder.ts";
import { SlabPool, writeLent } from "../gateway/protocol/slab-pool.ts";

test("small and oversized requests are not pooled; others get a slab at least as large", (t) => {
  const pool = new SlabPool();
  t.is(pool.lend(100), undefined);
  t.is(pool.lend(1024 * 1024), undefined);
  const slab = pool.lend(20_000)!;
  t.true(slab.length >= 20_000);
  t.true(pool.isLent(slab));
  t.true(pool.lend(70_000)!.length >= 70_000);
});

test("a slab given back is lent again; given back twice, it is still lent only once", (t) => {
  const pool = new SlabPool();
  const slab = pool.lend(10_000)!;
  pool.giveBack(slab.subarray(5, 50));
  t.false(pool.isLent(slab));
  pool.giveBack(slab);
  const first = pool.lend(10_000)!;
  const second = pool.lend(10_000)!;
  t.is(first.buffer, slab.buffer, "the returned slab is reused");
  t.not(second.buffer, first.buffer, "a second return of the same slab did not make it lendable twice");
  t.deepEqual(pool.stats, { fresh: 2, reused: 1, idle: 0 });
});

test("a buffer the pool did not lend is never taken in", (t) => {
  const pool = new SlabPool();
  const foreign = Buffer.allocUnsafeSlow(32 * 1024);
  pool.giveBack(foreign);
  t.not(pool.lend(10_000)!.buffer, foreign.buffer);
  t.is(pool.stats.idle, 0);
});

test("an output buffer's taken bytes are on loan; a store it never handed out goes back by itself", (t) => {
  const pool = new SlabPool();
  const out = new OutputBuffer(256, pool);
  out.reserve(8_000);
  out.pub(SubjectBytes.of("a"), null, Buffer.alloc(5_000, 0x61));
  const taken = out.take();
  t.true(pool.isLent(taken), "what was taken belongs to the pool until given back");
  t.is(taken.subarray(0, 11).toString("latin1"), "PUB a 5000\r\n".slice(0, 11));
  // A read that produced nothing: the reserved store goes straight back.
  out.reserve(8_000);
  out.release();
  t.is(pool.stats.idle, 1);
  // A reservation that outgrows its store: the first store was never taken, so it goes back.
  out.reserve(8_000);
  out.bytes(Buffer.alloc(10, 0x62));
  out.reserve(60_000);
  t.is(pool.stats.idle, 1, "the smaller store came back when the larger one replaced it");
  t.is(out.take().toString("latin1"), "b".repeat(10), "what was written moved with the store");
});

test("slabs written to a socket that does not read come back only once written, and arrive intact", async (t) => {
  const pool = new SlabPool();
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  const accepted = once(server, "connection") as Promise<[net.Socket]>;
  const writer = net.connect({ port, host: "127.0.0.1" });
  await once(writer, "connect");
  const [reader] = await accepted;
  reader.pause();
  t.teardown(() => {
    writer.destroy();
    reader.destroy();
    server.close();
  });

  // Far more than the kernel buffers while the reader does not read: most writes stay pending.
  const SLABS = 400;
  const SIZE = 30_000;
  let backedUp = false;
  for (let i = 0; i < SLABS; i++) {
    const slab = pool.lend(SIZE)!;
    slab.fill(i % 251, 0, SIZE);
    if (!writeLent(writer, slab.subarray(0, SIZE), pool)) backedUp = true;
  }
  t.true(backedUp, "the writer is backed up");
  // The writes the kernel took at once report back on the next ticks.
  await new Promise((resolve) => setImmediate(resolve));
  t.true(writer.writableLength > SIZE * 10, `${writer.writableLength} bytes still wait in the writer`);
  // Lending now must not hand out a slab the socket still holds: scribble over everything lent.
  for (let i = 0; i < 50; i++) pool.lend(SIZE)!.fill(0xff);
  t.true(pool.stats.reused > 0, "slabs whose writes finished were lent again while others waited");

  const received: Buffer[] = [];
  let total = 0;
  const all = new Promise<void>((resolve) => {
    reader.on("data", (chunk: Buffer) => {
      received.push(chunk);
      total += chunk.length;
      if (total >= SLABS * SIZE) resolve();
    });
  });
  reader.resume();
  await all;
  const bytes = Buffer.concat(received);
  t.is(bytes.length, SLABS * SIZE);
  for (let i = 0; i < SLABS; i++) {
    const at = i * SIZE;
    if (bytes.subarray(at, at + SIZE).some((b) => b !== i % 251)) {
      t.fail(`slab ${i} arrived overwritten`);
      return;
    }
  }
  t.pass();
});

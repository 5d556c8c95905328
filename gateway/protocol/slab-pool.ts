/**
 * Output slabs that go back to work once a socket has written them.
 *
 * A session writes the frames of one read into one buffer and hands it to one `socket.write`.
 * Allocated anew for every read (24–64 KiB each, outside V8's heap), those buffers added to the
 * ones Node allocates for every read, and V8 frees such memory only in a collection: enough of it
 * and V8 runs full mark-compact collections of the whole heap (measured: 39–42 per 10 s pub→sub
 * run at 1 KiB with young collections paced for Node's buffers but these still allocated; 1–6
 * with the pool; see ReadPacedCollection in memory-relief.ts). A slab lent here comes back when
 * the write's callback reports success — the stream is then done with the bytes (net: they are
 * in the kernel; TLS: they are encrypted) — and the next read of any session reuses it.
 *
 * Lending a slab to two owners would let one tenant's frames overwrite another's, so the pool
 * keeps the slabs it has lent in a set: a slab comes back once, only from a successful write, and a
 * buffer the pool did not lend (or lent and already got back) is ignored. A write that fails, or a
 * buffer handed to a socket without a callback, is simply never returned: the collector frees it.
 */

import type { Writable } from "node:stream";

/** Slab sizes: a TLS read (≤ 16 KiB of clear text, rewritten PUBs growing by half) and a socket read (≤ 64 KiB) with room to spare. */
const SLAB_CLASSES = [32 * 1024, 72 * 1024] as const;
/** Below this a reservation is left to Node's own small-buffer pool. */
const POOLED_FROM = 4 * 1024;
/** Idle slabs kept per class (32 × (32 + 72) KiB ≈ 3.3 MiB at most); more are left to the collector. */
const MAX_IDLE_PER_CLASS = 32;

export class SlabPool {
  private readonly idle: Buffer[][] = SLAB_CLASSES.map(() => []);
  /** The slabs out on loan: each may come back once. */
  private readonly lent = new WeakSet<ArrayBuffer>();
  private counts = { fresh: 0, reused: 0 };

  /** A slab of at least `n` bytes, lent until `giveBack`; undefined when `n` is too small or too large to pool. */
  lend(n: number): Buffer | undefined {
    if (n < POOLED_FROM) return undefined;
    const cls = SLAB_CLASSES.findIndex((size) => size >= n);
    if (cls < 0) return undefined;
    let slab = this.idle[cls]!.pop();
    if (slab) this.counts.reused++;
    else {
      slab = Buffer.allocUnsafeSlow(SLAB_CLASSES[cls]!);
      this.counts.fresh++;
    }
    this.lent.add(slab.buffer as ArrayBuffer);
    return slab;
  }

  /** Whether `bytes` is a view of a slab out on loan from this pool. */
  isLent(bytes: Uint8Array): boolean {
    return bytes.buffer instanceof ArrayBuffer && this.lent.has(bytes.buffer);
  }

  /**
   * Takes back the slab behind `bytes` (any view of it). Only call when nothing can read or write
   * through any view of it any more. A buffer not on loan from this pool is ignored.
   */
  giveBack(bytes: Uint8Array): void {
    const buffer = bytes.buffer;
    if (!(buffer instanceof ArrayBuffer) || !this.lent.delete(buffer)) return;
    const cls = SLAB_CLASSES.indexOf(buffer.byteLength as (typeof SLAB_CLASSES)[number]);
    const idle = this.idle[cls];
    if (idle && idle.length < MAX_IDLE_PER_CLASS) idle.push(Buffer.from(buffer, 0, buffer.byteLength));
  }

  /** Slabs allocated and slabs reused since the start (for tests and the benchmark's notes). */
  get stats(): { fresh: number; reused: number; idle: number } {
    return { ...this.counts, idle: this.idle.reduce((n, list) => n + list.length, 0) };
  }
}

/** The process's pool, shared by every session's output buffers. */
export const OUTPUT_SLABS = new SlabPool();

/**
 * Writes `out` (perhaps on loan from `pool`) and gives its slab back when the socket reports it
 * written. A failed write keeps it: the collector frees it instead. Returns what `write` returns.
 */
export function writeLent(socket: Writable, out: Buffer, pool: SlabPool = OUTPUT_SLABS): boolean {
  if (!pool.isLent(out)) return socket.write(out);
  return socket.write(out, (err) => {
    if (!err) pool.giveBack(out);
  });
}

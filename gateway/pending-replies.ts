/**
 * JetStream API replies a session waits for (to translate them), keyed by reply subject as NATS
 * sees it. Bounded in count, in bytes and in time, so requests nobody answers cannot pin memory
 * for a session's life; a reply that arrives after its entry went passes as it is.
 */
import type { JetStreamApiOperation } from "./jetstream-api.ts";

export const PENDING_JS_REPLIES = { maxCount: 256, maxBytes: 64 * 1024, ttlMs: 30_000 } as const;

interface Entry {
  op: JetStreamApiOperation;
  at: number;
  cost: number;
}

export class PendingReplies {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private readonly clock: () => number;

  constructor(clock: () => number = Date.now) {
    this.clock = clock;
  }

  get size(): number {
    return this.entries.size;
  }

  get held(): { count: number; bytes: number } {
    return { count: this.entries.size, bytes: this.bytes };
  }

  has(reply: string): boolean {
    return this.entries.has(reply);
  }

  track(reply: string, op: JetStreamApiOperation): void {
    const now = this.clock();
    const cost = reply.length + op.apiSubject.length;
    this.forget(reply);
    this.expire(now);
    while (this.entries.size > 0 && (this.entries.size >= PENDING_JS_REPLIES.maxCount || this.bytes + cost > PENDING_JS_REPLIES.maxBytes)) {
      this.forget(this.entries.keys().next().value!);
    }
    this.entries.set(reply, { op, at: now, cost });
    this.bytes += cost;
  }

  /** The operation whose reply this is, once (and only within the time limit). */
  take(reply: string): JetStreamApiOperation | undefined {
    const entry = this.forget(reply);
    return entry && this.clock() - entry.at <= PENDING_JS_REPLIES.ttlMs ? entry.op : undefined;
  }

  private forget(reply: string): Entry | undefined {
    const entry = this.entries.get(reply);
    if (entry) {
      this.entries.delete(reply);
      this.bytes -= entry.cost;
    }
    return entry;
  }

  /** Entries are in insertion order: the expired ones are at the front. */
  private expire(now: number): void {
    for (const [key, entry] of this.entries) {
      if (now - entry.at <= PENDING_JS_REPLIES.ttlMs) return;
      this.forget(key);
    }
  }
}

/**
 * One client session: the client's TLS socket on one side, its own upstream connection to
 * nats-server (as the user minted for its identity) on the other, and a rewriter deciding what
 * crosses (EdgeRewriter for a tenant's client, PlatformRewriter for a platform identity).
 *
 * Flow control both ways: when one side's socket cannot take more, the other side is not read
 * until it drains. A client that stays backed up is a slow consumer: after `slowConsumerDropMs` its
 * upstream is read again and what the client cannot take is dropped (counted) — a paused upstream
 * makes nats-server 2.9 stall every publisher to the slow client's subjects until its write
 * deadline, 10 s — and after `slowConsumerMs` it is cut (no -ERR, as nats-server does: nats.go
 * takes an -ERR it does not know as final). The tenant's publish rate limit (its plan) pauses
 * reading the client while the tenant is over it. A refused frame gets -ERR and the session goes
 * on (as with nats-server); a protocol error ends this session only.
 */
import type net from "node:net";
import type tls from "node:tls";
import type { Logger } from "../common/logger.ts";
import { READ_PACED_COLLECTION } from "./memory-relief.ts";
import { OUTPUT_SLABS, writeLent } from "./protocol/slab-pool.ts";
import type { RateBucket } from "./rate-limits.ts";
import { errFrame, type RewriterEvents, type SessionCounters, type SessionEnd, type SessionRewriter } from "./session-rewriter.ts";

/** Refusals logged per session; the rest are counted (session_closed carries the count). */
const MAX_LOGGED_REFUSALS = 20;
/** How long a closing session waits for a socket to take its last bytes before cutting it. */
const LINGER_MS = 2000;
/** The close reason when NATS ended the upstream connection. */
export const UPSTREAM_CLOSED = "NATS closed the connection";
/** While dropping for a slow consumer: what may wait in the client socket's buffer before more is dropped. */
const SLOW_CONSUMER_BUFFER = 256 * 1024;

/**
 * What one session may read from its client in one turn of the event loop before it yields to the
 * other sessions. libuv reads a readable socket up to 32 times per turn (2 MiB): a flooding client
 * would otherwise make every other session wait for its whole backlog to be processed. Only while
 * several tenants publish (`turns.contended`, see readTurnsStep): a flow alone would pay a pause
 * and a resume every 16 KiB for nothing.
 */
const TURN_BYTES = 16 * 1024;

/** Event-loop turns, counted lazily: a turn ends when the check phase runs its immediates. */
let turn = 0;
let turnEnding = false;
function currentTurn(): number {
  if (!turnEnding) {
    turnEnding = true;
    setImmediate(() => {
      turn++;
      turnEnding = false;
    });
  }
  return turn;
}

/** What one direction of a session has read in the current turn, and whether it is sitting the rest out. */
class TurnShare {
  private bytes = 0;
  private turn = -1;
  yielding = false;

  /** Counts a read; true when this read used up the turn's share (and the direction is not already yielding). */
  spend(bytes: number): boolean {
    const now = currentTurn();
    if (now !== this.turn) {
      this.turn = now;
      this.bytes = 0;
    }
    this.bytes += bytes;
    return this.bytes >= TURN_BYTES && !this.yielding;
  }
}

type StartupOption = "clientLeftover" | "upstreamLeftover" | "infoUpdate";

export interface ClientSessionOptions {
  id: string;
  /** The tenant of an edge session; undefined for a platform session. */
  slug: string | undefined;
  client: tls.TLSSocket;
  upstream: net.Socket;
  log: Logger;
  rewriter: (events: RewriterEvents) => SessionRewriter;
  /** An INFO for the client after its first PONG (the tenant's own limits). */
  infoUpdate?: object;
  slowConsumerMs: number;
  /** A client backed up this long stops holding NATS back: what it cannot take is dropped (0 or ≥ slowConsumerMs: never). */
  slowConsumerDropMs?: number;
  /** The tenant's publish rate (its plan's rate limits), shared by all its sessions in this process. */
  rate?: RateBucket;
  /** Whether sessions share event-loop turns now (the gateway's TenantRates); absent: never. */
  turns?: { readonly contended: boolean };
  /** Bytes the client sent after CONNECT, and bytes NATS sent after the handshake. */
  clientLeftover: Buffer;
  upstreamLeftover: Buffer;
  /** The gateway's INFO with `ldm: true`, for when NATS goes lame duck. */
  lameDuckInfo: () => object;
  onClose: (session: ClientSession, reason: string) => void;
}

export class ClientSession {
  readonly id: string;
  readonly slug: string | undefined;
  private readonly client: tls.TLSSocket;
  private readonly upstream: net.Socket;
  private readonly log: Logger;
  private readonly rewriter: SessionRewriter;
  private readonly slowConsumerMs: number;
  private readonly slowConsumerDropMs: number;
  private readonly rate: RateBucket | undefined;
  private readonly turns: { readonly contended: boolean } | undefined;
  private readonly onClose: ClientSessionOptions["onClose"];
  /**
   * What only `start()` needs: let go of once started, so that an idle session does not keep the
   * handshake's reads (the leftovers are views of whole socket reads) or the INFO it sent.
   */
  private startup: Pick<ClientSessionOptions, StartupOption> | undefined;
  private closed = false;
  private slowTimer: NodeJS.Timeout | undefined;
  private dropTimer: NodeJS.Timeout | undefined;
  /** A slow consumer's upstream is read again and what the client cannot take is dropped. */
  private dropping = false;
  private droppedBytes = 0;
  /** NATS cannot take more: the client is not read until the upstream drains. */
  private upstreamBackedUp = false;
  /** The tenant is over its rate: the client is not read until this fires. */
  private rateTimer: NodeJS.Timeout | undefined;
  /** The client's (NATS's) share of the current event-loop turn; once used, it is read again in the next. */
  private readonly clientTurn = new TurnShare();
  private readonly upstreamTurn = new TurnShare();

  constructor(opts: ClientSessionOptions) {
    this.slowConsumerMs = opts.slowConsumerMs;
    this.slowConsumerDropMs = opts.slowConsumerDropMs ?? 0;
    this.rate = opts.rate;
    this.turns = opts.turns;
    this.onClose = opts.onClose;
    this.startup = { clientLeftover: opts.clientLeftover, upstreamLeftover: opts.upstreamLeftover, ...(opts.infoUpdate ? { infoUpdate: opts.infoUpdate } : {}) };
    this.id = opts.id;
    this.slug = opts.slug;
    this.client = opts.client;
    this.upstream = opts.upstream;
    this.log = opts.log;
    // The closures below keep only these, not the options (whose leftovers are whole socket reads).
    const log = opts.log;
    const lameDuckInfo = opts.lameDuckInfo;
    this.rewriter = opts.rewriter({
      ended: (end) => this.ended(end),
      refused: (refusal) => this.refused(refusal),
      dropped: (kind, subject) => log.warn({ event: kind === "subject" ? "foreign_subject_dropped" : "foreign_reply_dropped", subject }, "NATS delivered a subject this session does not own; dropped"),
      jetStreamRefused: (api, code, reason, description) => log.info({ event: "jetstream_api_refused", api, code, reason }, description),
      natsError: (text) => log.info({ event: "nats_error", error: text }, "NATS reported an error to the session"),
      natsLameDuck: () => this.lameDuck(lameDuckInfo()),
    });
  }

  get counters(): SessionCounters {
    return this.rewriter.counters;
  }

  start(): void {
    const { client, upstream } = this;
    client.on("data", (chunk: Buffer) => this.onClientData(chunk));
    upstream.on("data", (chunk: Buffer) => this.onUpstreamData(chunk));
    client.on("drain", () => this.clientDrained());
    upstream.on("drain", () => {
      this.upstreamBackedUp = false;
      this.readClientIfFree();
    });
    client.once("close", () => this.close("client closed the connection"));
    upstream.once("close", () => this.close(UPSTREAM_CLOSED));
    client.on("error", (err) => this.log.debug({ err: err.message }, "client socket error"));
    upstream.on("error", (err) => this.log.debug({ err: err.message }, "upstream socket error"));
    const startup = this.startup!;
    this.startup = undefined;
    if (startup.infoUpdate) this.rewriter.infoAfterFirstPong(startup.infoUpdate);
    if (startup.upstreamLeftover.length > 0) this.onUpstreamData(startup.upstreamLeftover);
    if (startup.clientLeftover.length > 0) this.onClientData(startup.clientLeftover);
    if (!this.closed) {
      client.resume();
      upstream.resume();
    }
  }

  private onClientData(chunk: Buffer): void {
    READ_PACED_COLLECTION.read(chunk.length);
    if (this.closed) return;
    const { msgsIn, bytesIn } = this.rewriter.counters;
    let out: Buffer | undefined;
    try {
      out = this.rewriter.clientData(chunk);
    } catch (err) {
      return this.internalError("client", err);
    }
    if (out && this.closed) OUTPUT_SLABS.giveBack(out);
    else if (out && !writeLent(this.upstream, out)) {
      this.upstreamBackedUp = true;
      this.client.pause();
    }
    // Refusals (-ERR) of frames in this read go straight back to the client.
    const back = this.closed ? undefined : this.rewriter.pendingForClient();
    if (back && !this.client.write(back)) this.clientBackedUp();
    if (this.rate && !this.closed) this.paceClient(this.rate.charge(this.rewriter.counters.msgsIn - msgsIn, this.rewriter.counters.bytesIn - bytesIn));
    this.yieldAfterTurn(this.clientTurn, chunk.length, this.client, this.readClientIfFree);
  }

  /**
   * A direction that read its share of this turn is paused until the next turn (see TURN_BYTES),
   * then read again if nothing else holds it.
   */
  private yieldAfterTurn(share: TurnShare, bytes: number, from: net.Socket, readIfFree: () => void): void {
    if (!this.turns?.contended || !share.spend(bytes) || this.closed) return;
    share.yielding = true;
    from.pause();
    setImmediate(() => {
      share.yielding = false;
      readIfFree();
    });
  }

  /** The tenant is over its publish rate: the client is not read until the tenant's bucket is out of debt. */
  private paceClient(waitMs: number): void {
    if (waitMs <= 0 || this.rateTimer || this.closed) return;
    this.client.pause();
    this.rateTimer = setTimeout(() => {
      this.rateTimer = undefined;
      // Other sessions of the tenant may have spent what came back meanwhile.
      const more = this.rate?.charge(0, 0) ?? 0;
      if (more > 0) this.paceClient(more);
      else this.readClientIfFree();
    }, waitMs);
  }

  private readonly readClientIfFree = (): void => {
    if (!this.closed && !this.upstreamBackedUp && !this.rateTimer && !this.clientTurn.yielding) this.client.resume();
  };

  private onUpstreamData(chunk: Buffer): void {
    READ_PACED_COLLECTION.read(chunk.length);
    if (this.closed) return;
    let out: Buffer | undefined;
    try {
      out = this.rewriter.upstreamData(chunk);
    } catch (err) {
      return this.internalError("nats", err);
    }
    if (!out) return;
    if (this.closed) return OUTPUT_SLABS.giveBack(out);
    if (this.dropping && this.client.writableLength >= SLOW_CONSUMER_BUFFER) {
      this.droppedBytes += out.length;
      return OUTPUT_SLABS.giveBack(out);
    }
    if (!writeLent(this.client, out)) this.clientBackedUp();
    this.yieldAfterTurn(this.upstreamTurn, chunk.length, this.upstream, this.readUpstreamIfFree);
  }

  /** NATS is read unless the client is backed up (and not yet a slow consumer whose excess is dropped). */
  private readonly readUpstreamIfFree = (): void => {
    if (!this.closed && !this.upstreamTurn.yielding && (this.dropping || this.slowTimer === undefined)) this.upstream.resume();
  };

  /**
   * Whatever one session's data makes the rewriter throw ends that session only: the process and
   * every other session carry on (a bug here must never become a way to take the gateway down).
   */
  private internalError(side: "client" | "nats", err: unknown): void {
    const error = err instanceof Error ? { name: err.name, message: err.message.slice(0, 500) } : { message: String(err).slice(0, 500) };
    this.log.error({ event: "session_internal_error", side, code: "internal_error", error }, "processing this session's data failed; ending the session");
    this.close("internal error", "Internal Error");
  }

  private clientBackedUp(): void {
    if (!this.dropping) this.upstream.pause();
    if (this.slowTimer) return;
    this.slowTimer = setTimeout(() => {
      this.slowTimer = undefined;
      this.log.warn({ event: "slow_consumer", pending_bytes: this.client.writableLength, dropped_bytes: this.droppedBytes }, "client could not keep up; disconnecting");
      this.close("slow consumer");
    }, this.slowConsumerMs);
    this.slowTimer.unref();
    const dropMs = this.slowConsumerDropMs;
    if (dropMs > 0 && dropMs < this.slowConsumerMs) {
      this.dropTimer = setTimeout(() => {
        this.dropTimer = undefined;
        if (this.closed || !this.slowTimer) return;
        this.dropping = true;
        this.log.warn({ event: "slow_consumer_dropping", pending_bytes: this.client.writableLength, after_ms: dropMs }, "client still backed up: reading NATS again and dropping what it cannot take, so that its tenant's publishers are not held back");
        this.readUpstreamIfFree();
      }, dropMs);
      this.dropTimer.unref();
    }
  }

  private clientDrained(): void {
    if (this.slowTimer) {
      clearTimeout(this.slowTimer);
      this.slowTimer = undefined;
    }
    if (this.dropTimer) {
      clearTimeout(this.dropTimer);
      this.dropTimer = undefined;
    }
    if (this.dropping) {
      this.dropping = false;
      this.log.info({ event: "slow_consumer_recovered", dropped_bytes: this.droppedBytes }, "client caught up; messages dropped while it was behind are lost to it");
    }
    this.readUpstreamIfFree();
  }

  private refused(refusal: SessionEnd): void {
    // A client that keeps sending what it may not is counted, not allowed to flood the log.
    if (this.rewriter.counters.refused > MAX_LOGGED_REFUSALS) return;
    const last = this.rewriter.counters.refused === MAX_LOGGED_REFUSALS;
    this.log.warn({ event: refusal.event, code: refusal.code, subject: refusal.subject, error: refusal.reason }, last ? "frame refused; further refusals of this session are counted, not logged" : "frame refused");
  }

  private ended(end: SessionEnd): void {
    this.log.warn({ event: end.event, code: end.code, subject: end.subject, error: end.reason }, "ending the session");
    this.close(end.event, end.errText);
  }

  /** Sends INFO with `ldm: true` (lame duck): the client should reconnect, to this gateway's peers. */
  lameDuck(info: object): void {
    if (!this.closed) this.client.write(this.rewriter.info(info));
  }

  /** Ends the session; `errText` is sent to the client as -ERR first. Idempotent. */
  close(reason: string, errText?: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slowTimer) clearTimeout(this.slowTimer);
    if (this.dropTimer) clearTimeout(this.dropTimer);
    if (this.rateTimer) clearTimeout(this.rateTimer);
    const pending = this.rewriter.pendingForClient();
    if (pending) this.client.write(pending);
    if (errText) this.client.end(errFrame(errText));
    else this.client.end();
    // The client gets a moment to read the last words; a peer that never reads is cut.
    setTimeout(() => this.client.destroy(), LINGER_MS).unref();
    // Frames read before the one that ended the session still reach NATS, as they would have
    // without the gateway in between (nats-server acts on each frame before it reads the next).
    const toNats = this.rewriter.pendingForUpstream();
    if (toNats) {
      this.upstream.end(toNats);
      setTimeout(() => this.upstream.destroy(), LINGER_MS).unref();
    } else this.upstream.destroy();
    this.rewriter.closed?.();
    this.onClose(this, reason);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/**
 * A connection of a suspended tenant, held rather than refused. Stock clients give up for good
 * after two authorization refusals in a row (nats.js even remembers the last one across successful
 * reconnects) and after a number of failed attempts (10 by default in nats.js), so an edge site
 * refused during a suspension would never come back by itself. Held, the client's PINGs get PONG,
 * its subscriptions are accepted and kept nowhere, every publish is refused with a permissions
 * error (non-fatal to every stock client; a request fails at once), and nothing reaches NATS — the
 * tenant's account admits no user anyway. When the tenant is resumed the gateway releases the
 * connection with -ERR 'Stale Connection' (what nats-server says of a connection it drops; every
 * stock client, nats.go included, reconnects on it) and the client reconnects into a real session.
 */
import type tls from "node:tls";
import type { Logger } from "../common/logger.ts";
import { ClientVerb, frameString, type ClientFrame, type ProtocolError } from "./protocol/frames.ts";
import { OutputBuffer } from "./protocol/encoder.ts";
import { ClientProtocolParser } from "./protocol/parser.ts";

/** nats-server's words for a connection it drops; stock clients reconnect on it (nats.go included). */
export const STALE_CONNECTION = "Stale Connection";
/** A held client that sends nothing for two of these (not even a PONG to our PING) is gone. */
const KEEPALIVE_MS = 120_000;
/** How long a closing held connection waits for the client to read its last words. */
const LINGER_MS = 2000;

export interface HeldSessionOptions {
  slug: string;
  client: tls.TLSSocket;
  /** Bytes the client sent after CONNECT. */
  clientLeftover: Buffer;
  verbose: boolean;
  maxPayload: number;
  log: Logger;
  onClose: (held: HeldSession, reason: string) => void;
}

export class HeldSession {
  readonly slug: string;
  readonly heldAt = Date.now();
  /** Publishes refused while held (counted; the first is logged). */
  refusedPublishes = 0;
  private readonly client: tls.TLSSocket;
  private readonly opts: HeldSessionOptions;
  private readonly parser: ClientProtocolParser;
  private readonly out = new OutputBuffer(256);
  private closed = false;
  private heardFrom = true;
  private readonly keepalive: NodeJS.Timeout;

  constructor(opts: HeldSessionOptions) {
    this.opts = opts;
    this.slug = opts.slug;
    this.client = opts.client;
    this.parser = new ClientProtocolParser({ onFrame: (f) => this.onFrame(f), onError: (e) => this.onProtocolError(e) }, { maxPayload: opts.maxPayload });
    this.keepalive = setInterval(() => this.checkAlive(), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  start(): void {
    const { client } = this;
    client.on("data", (chunk: Buffer) => this.onData(chunk));
    client.on("drain", () => {
      if (!this.closed) client.resume();
    });
    client.once("close", () => this.close("client closed the connection"));
    client.on("error", (err) => this.opts.log.debug({ err: err.message }, "held client socket error"));
    if (this.opts.clientLeftover.length > 0) this.onData(this.opts.clientLeftover);
    if (!this.closed) client.resume();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.heardFrom = true;
    try {
      this.parser.parse(chunk);
    } catch (err) {
      // Whatever one held client's bytes do ends that connection only.
      this.opts.log.error({ event: "held_internal_error", code: "internal_error", error: err instanceof Error ? err.message.slice(0, 500) : String(err).slice(0, 500) }, "processing a held client's data failed; closing it");
      return this.close("internal error");
    }
    if (this.out.length > 0 && !this.closed && !this.client.write(this.out.take())) this.client.pause();
  }

  private onFrame(f: ClientFrame): void {
    switch (f.verb) {
      case ClientVerb.Ping:
        return this.out.pong();
      case ClientVerb.Pub:
      case ClientVerb.Hpub: {
        const subject = frameString(f.buf, f.subjectStart, f.subjectEnd);
        if (this.refusedPublishes++ === 0) this.opts.log.info({ event: "held_publish_refused", subject }, "a held client of a suspended tenant published; refused (further ones are counted)");
        return this.out.err(`Permissions Violation for Publish to "${subject}"`);
      }
      case ClientVerb.Sub:
      case ClientVerb.Unsub:
        // Accepted and kept nowhere: the client sends its subscriptions again when it reconnects.
        if (this.opts.verbose) this.out.ok();
        return;
      case ClientVerb.Pong:
      case ClientVerb.Connect:
        return;
    }
  }

  private onProtocolError(err: ProtocolError): void {
    this.opts.log.info({ event: "held_protocol_error", code: err.code, error: err.message }, "a held client broke the protocol; closing it");
    this.close("client protocol error", err.wireText);
  }

  private checkAlive(): void {
    if (this.closed) return;
    if (!this.heardFrom) return this.close("held client stopped answering");
    this.heardFrom = false;
    this.out.ping();
    this.client.write(this.out.take());
  }

  /** The tenant is back: the client should reconnect now, into a real session. */
  release(): void {
    this.close("tenant resumed", STALE_CONNECTION);
  }

  /** Ends the held connection; `errText` goes to the client as -ERR first. Idempotent. */
  close(reason: string, errText?: string): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.keepalive);
    this.parser.stop();
    if (errText) this.out.err(errText);
    if (this.out.length > 0) this.client.end(this.out.take());
    else this.client.end();
    setTimeout(() => this.client.destroy(), LINGER_MS).unref();
    this.opts.onClose(this, reason);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

/**
 * Certificates NATS refused as a user lately, the refusal relayed to the client. Stock clients give
 * up after two such refusals in a row — nats.js remembers the last one across successful
 * reconnects — so a certificate in here is not refused that way again while the refusal is recent:
 * NATS is asked again, and if it still refuses the connection is closed without a word.
 */
export class RecentRefusals {
  private readonly at = new Map<string, number>();
  private readonly ttlMs: number;
  private readonly max: number;

  constructor(opts: { ttlMs: number; max: number }) {
    this.ttlMs = opts.ttlMs;
    this.max = opts.max;
  }

  recent(fingerprint: string, now = Date.now()): boolean {
    const at = this.at.get(fingerprint);
    if (at === undefined) return false;
    if (now - at < this.ttlMs) return true;
    this.at.delete(fingerprint);
    return false;
  }

  remember(fingerprint: string, now = Date.now()): void {
    // Re-inserted, so the map's order stays oldest first and the oldest goes when it is full.
    this.at.delete(fingerprint);
    this.at.set(fingerprint, now);
    if (this.at.size > this.max) this.at.delete(this.at.keys().next().value!);
  }
}

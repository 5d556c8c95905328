/**
 * One leaf session: a customer site's nats-server (its leafnode connection, TLS with the site's
 * certificate) on one side; on the other, the gateway's leafnode connection into the tenant's
 * account and, when the hub has JetStream, a client connection of the same user for what
 * nats-server takes from clients only (JetStream API requests, acks, flow control; see
 * leaf-rewriter.ts). A LeafRewriter decides what crosses; this owns the sockets.
 *
 * Flow control as in a client session: when one side cannot take more, the side feeding it is not
 * read until it drains, and a site that stays backed up for `slowConsumerMs` is cut with
 * -ERR 'Slow Consumer'. Any connection closing ends the session: the site's nats-server reconnects
 * (every second, by default) into a new one, and sends its interest again.
 */
import type net from "node:net";
import type tls from "node:tls";
import type { Logger } from "../common/logger.ts";
import { READ_PACED_COLLECTION } from "./memory-relief.ts";
import { OutputBuffer } from "./protocol/encoder.ts";
import { frameString, ServerVerb } from "./protocol/frames.ts";
import { ServerProtocolParser } from "./protocol/parser.ts";
import { errFrame, type SessionEnd } from "./session-rewriter.ts";
import { LeafRewriter, type LeafCounters, type LeafRewriterOptions } from "./leaf-rewriter.ts";

/** Refusals and kept interest logged per session; the rest are counted. */
const MAX_LOGGED = 20;
/** How long a closing session waits for a socket to take its last bytes before cutting it. */
const LINGER_MS = 2000;
export const HUB_CLOSED = "NATS closed the leafnode connection";

export interface LeafSessionOptions {
  id: string;
  slug: string;
  site: tls.TLSSocket;
  hub: net.Socket;
  /** The client connection for JetStream traffic; absent when the hub has no JetStream. */
  jetStream: net.Socket | undefined;
  log: Logger;
  rewriter: Omit<LeafRewriterOptions, "events">;
  /** The INFO that answers the site's CONNECT (`connect_info: true`). */
  connectInfo: object;
  slowConsumerMs: number;
  siteLeftover: Buffer;
  hubLeftover: Buffer;
  jetStreamLeftover: Buffer;
  onClose: (session: LeafSession, reason: string) => void;
}

export class LeafSession {
  readonly id: string;
  readonly slug: string;
  private readonly site: tls.TLSSocket;
  private readonly hub: net.Socket;
  private readonly jetStream: net.Socket | undefined;
  private readonly log: Logger;
  private readonly rewriter: LeafRewriter;
  private readonly opts: LeafSessionOptions;
  private readonly jetStreamParser: ServerProtocolParser;
  private readonly jetStreamOut = new OutputBuffer(64);
  private closed = false;
  private slowTimer: NodeJS.Timeout | undefined;
  private logged = 0;

  constructor(opts: LeafSessionOptions) {
    this.opts = opts;
    this.id = opts.id;
    this.slug = opts.slug;
    this.site = opts.site;
    this.hub = opts.hub;
    this.jetStream = opts.jetStream;
    const log = (this.log = opts.log);
    this.rewriter = new LeafRewriter({
      ...opts.rewriter,
      events: {
        ended: (end) => this.ended(end),
        refused: (refusal) => this.limited(() => log.warn({ event: refusal.event, code: refusal.code, subject: refusal.subject, error: refusal.reason }, "message from the site refused")),
        interestKept: (side, subject) => log.debug({ event: "leaf_interest_kept", side, subject }, "interest outside the tenant's view not forwarded"),
        dropped: (kind, subject) => log.warn({ event: kind === "subject" ? "foreign_subject_dropped" : "foreign_reply_dropped", subject }, "NATS delivered a subject this tenant does not own; dropped"),
        jetStreamRefused: (api, code, reason, description) => log.info({ event: "jetstream_api_refused", api, code, reason }, description),
        hubError: (text) => log.info({ event: "nats_error", error: text }, "NATS reported an error on the leafnode connection"),
        siteError: (text) => log.info({ event: "leaf_site_error", error: text }, "the site reported an error"),
        hubLameDuck: () => log.info({ event: "nats_lame_duck" }, "NATS is entering lame duck mode; the site reconnects when it closes the connection"),
      },
    });
    // The JetStream connection carries requests out; what comes back on it is the server's own talk.
    this.jetStreamParser = new ServerProtocolParser({
      onFrame: (f) => {
        if (f.verb === ServerVerb.Ping) this.jetStreamOut.pong();
        else if (f.verb === ServerVerb.Err) log.warn({ event: "nats_error", connection: "jetstream", error: frameString(f.buf, f.errorStart, f.errorEnd) }, "NATS refused a JetStream message of the site");
      },
      onError: (err) => this.close("JetStream connection protocol error", undefined, err.message),
    });
  }

  get counters(): LeafCounters {
    return this.rewriter.counters;
  }

  start(): void {
    const { site, hub, jetStream } = this;
    site.on("data", (chunk: Buffer) => {
      READ_PACED_COLLECTION.read(chunk.length);
      this.guard("site", () => this.rewriter.siteData(chunk));
    });
    hub.on("data", (chunk: Buffer) => {
      READ_PACED_COLLECTION.read(chunk.length);
      this.guard("nats", () => this.rewriter.hubData(chunk));
    });
    site.on("drain", () => this.siteDrained());
    hub.on("drain", () => this.resumeSite());
    site.once("close", () => this.close("the site closed the connection"));
    hub.once("close", () => this.close(HUB_CLOSED));
    site.on("error", (err) => this.log.debug({ err: err.message }, "site socket error"));
    hub.on("error", (err) => this.log.debug({ err: err.message }, "leafnode socket error"));
    if (jetStream) {
      jetStream.on("data", (chunk: Buffer) => this.guard("jetstream", () => this.jetStreamParser.parse(chunk)));
      jetStream.on("drain", () => this.resumeSite());
      jetStream.once("close", () => this.close("NATS closed the JetStream connection"));
      jetStream.on("error", (err) => this.log.debug({ err: err.message }, "JetStream socket error"));
    }
    // The site finishes its connect on this INFO; the hub's interest follows it.
    site.write(`INFO ${JSON.stringify(this.opts.connectInfo)}\r\n`);
    this.rewriter.start();
    if (this.opts.hubLeftover.length > 0) this.guard("nats", () => this.rewriter.hubData(this.opts.hubLeftover));
    if (jetStream && this.opts.jetStreamLeftover.length > 0) this.guard("jetstream", () => this.jetStreamParser.parse(this.opts.jetStreamLeftover));
    if (this.opts.siteLeftover.length > 0) this.guard("site", () => this.rewriter.siteData(this.opts.siteLeftover));
    this.flush();
    if (!this.closed) {
      site.resume();
      hub.resume();
      jetStream?.resume();
    }
  }

  /** Runs one side's processing; whatever it throws ends this session only, never the process. */
  private guard(side: "site" | "nats" | "jetstream", work: () => void): void {
    if (this.closed) return;
    try {
      work();
    } catch (err) {
      const error = err instanceof Error ? { name: err.name, message: err.message.slice(0, 500) } : { message: String(err).slice(0, 500) };
      this.log.error({ event: "session_internal_error", side, code: "internal_error", error }, "processing this leaf session's data failed; ending the session");
      return this.close("internal error", "Internal Error");
    }
    this.flush();
  }

  /** Writes what the rewriter has for each side; a side that cannot take more stops the one feeding it. */
  private flush(): void {
    if (this.closed) return;
    const toHub = this.rewriter.takeForHub();
    if (toHub && !this.hub.write(toHub)) this.site.pause();
    const toJetStream = this.rewriter.takeForJetStream();
    if (toJetStream && this.jetStream && !this.jetStream.write(toJetStream)) this.site.pause();
    if (this.jetStream && this.jetStreamOut.length > 0) this.jetStream.write(this.jetStreamOut.take());
    const toSite = this.rewriter.takeForSite();
    if (toSite && !this.site.write(toSite)) this.siteBackedUp();
  }

  private resumeSite(): void {
    if (this.closed) return;
    if (this.hub.writableNeedDrain || this.jetStream?.writableNeedDrain) return;
    this.site.resume();
  }

  private siteBackedUp(): void {
    this.hub.pause();
    if (this.slowTimer) return;
    this.slowTimer = setTimeout(() => {
      this.slowTimer = undefined;
      this.log.warn({ event: "slow_consumer", pending_bytes: this.site.writableLength }, "the site could not keep up; disconnecting");
      this.close("slow consumer", "Slow Consumer");
    }, this.opts.slowConsumerMs);
    this.slowTimer.unref();
  }

  private siteDrained(): void {
    if (this.slowTimer) {
      clearTimeout(this.slowTimer);
      this.slowTimer = undefined;
    }
    if (!this.closed) this.hub.resume();
  }

  /** A site that keeps sending what it may not is counted, not allowed to flood the log. */
  private limited(write: () => void): void {
    if (++this.logged > MAX_LOGGED) return;
    write();
    if (this.logged === MAX_LOGGED) this.log.warn({ event: "leaf_logging_limited" }, "further refusals of this session are counted, not logged");
  }

  private ended(end: SessionEnd): void {
    this.log.warn({ event: end.event, code: end.code, subject: end.subject, error: end.reason }, "ending the leaf session");
    this.close(end.event, end.errText);
  }

  /** Ends the session; `errText` is sent to the site as -ERR first. Idempotent. */
  close(reason: string, errText?: string, detail?: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.slowTimer) clearTimeout(this.slowTimer);
    if (detail) this.log.warn({ event: "leaf_session_error", error: detail }, reason);
    const toSite = this.rewriter.takeForSite();
    if (toSite) this.site.write(toSite);
    if (errText) this.site.end(errFrame(errText));
    else this.site.end();
    setTimeout(() => this.site.destroy(), LINGER_MS).unref();
    // What the site sent before the frame that ended the session still reaches NATS.
    const toHub = this.rewriter.takeForHub();
    if (toHub) {
      this.hub.end(toHub);
      setTimeout(() => this.hub.destroy(), LINGER_MS).unref();
    } else this.hub.destroy();
    const toJetStream = this.rewriter.takeForJetStream();
    if (this.jetStream) {
      if (toJetStream) {
        this.jetStream.end(toJetStream);
        setTimeout(() => this.jetStream?.destroy(), LINGER_MS).unref();
      } else this.jetStream.destroy();
    }
    this.opts.onClose(this, reason);
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

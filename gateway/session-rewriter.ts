/**
 * What a client session needs from the part that decides what crosses: bytes in, bytes out, and
 * the reasons to end. Edge sessions (one tenant, subjects rewritten) and platform sessions (the
 * PLATFORM account, audited) each have their own rewriter behind this interface; the session
 * around it owns the sockets and the flow control.
 */
import { ClientVerb, frameString, ServerVerb, type ClientFrame, type ProtocolError, type ServerFrame } from "./protocol/frames.ts";
import { OutputBuffer } from "./protocol/encoder.ts";
import { OUTPUT_SLABS } from "./protocol/slab-pool.ts";
import { ClientProtocolParser, ServerProtocolParser } from "./protocol/parser.ts";
import { refusalText, SubjectVerdict } from "./subject-rules.ts";
import { sessionFaultMarker } from "../common/fault.ts";

export interface SessionCounters {
  msgsIn: number;
  bytesIn: number;
  msgsOut: number;
  bytesOut: number;
  /** Messages from NATS on subjects the session does not own: never delivered. */
  dropped: number;
  /** Frames from the client refused with -ERR (the session goes on, as with nats-server). */
  refused: number;
  /** JetStream API requests passed on (translated into the tenant's view), and refused with a JetStream error. */
  jsApi: number;
  jsRefused: number;
}

/** Why a session must end: a log event, a stable code, and the -ERR text the client gets (if any). */
export interface SessionEnd {
  event: string;
  code: string;
  reason: string;
  errText?: string;
  subject?: string;
}

/** What a rewriter reports; the session logs it. */
export interface RewriterEvents {
  ended(end: SessionEnd): void;
  /** A frame refused with -ERR; the session goes on. */
  refused(refusal: SessionEnd): void;
  dropped(kind: "subject" | "reply", subject: string): void;
  jetStreamRefused(api: string, code: number, reason: string, description: string): void;
  natsError(text: string): void;
  /** NATS said it is entering lame duck mode. */
  natsLameDuck(): void;
}

export interface SessionRewriter {
  readonly counters: SessionCounters;
  readonly ended: SessionEnd | undefined;
  /**
   * Client bytes in; the bytes to send to NATS (or undefined). Check `ended` afterwards, and
   * `pendingForClient` (refusals). The bytes may be on loan from OUTPUT_SLABS: hand them to
   * `giveBack` once the socket has written them (or at once if they are not written).
   */
  clientData(chunk: Buffer): Buffer | undefined;
  /** NATS bytes in; the bytes to send to the client (or undefined), on loan as with `clientData`. */
  upstreamData(chunk: Buffer): Buffer | undefined;
  /** Whatever is still buffered for the client, e.g. before closing. */
  pendingForClient(): Buffer | undefined;
  /** Frames accepted before the one that ended the session, still owed to NATS. */
  pendingForUpstream(): Buffer | undefined;
  /** An INFO for the client (limits, lame duck), after whatever is already pending for it. */
  info(info: object): Buffer;
  /**
   * An INFO for the client written right after the first PONG it gets: Go, C, Java and Python
   * clients read exactly one line after CONNECT+PING and require PONG (nats-server sends no INFO
   * before its first PONG either).
   */
  infoAfterFirstPong(info: object): void;
  /** The session is over (flush what the rewriter keeps, e.g. audit summaries). */
  closed?(): void;
}

export const REFUSAL_CODES: Record<number, string> = {
  [SubjectVerdict.Wildcard]: "subject_wildcard",
  [SubjectVerdict.EmptyToken]: "subject_empty_token",
  [SubjectVerdict.Reserved]: "subject_reserved",
  [SubjectVerdict.ControlCharacter]: "subject_control_character",
};

/** `-ERR '<text>'\r\n`, the text made safe for the framing. */
export function errFrame(text: string): Buffer {
  const out = new OutputBuffer(256);
  out.err(text);
  return out.take();
}

/**
 * Smallest output allocation. Each read reserves what its frames need (and the buffer is handed
 * over whole with the write), so an idle session holds no output buffer at all.
 */
const SLAB_BYTES = 256;

/**
 * What both rewriters share: one parser per direction, one output buffer per direction, the end
 * of the session, and the frames that pass the same way for every session (PING, PONG, UNSUB,
 * +OK, -ERR, INFO). A subclass decides PUB, HPUB, SUB (from the client) and MSG, HMSG (from NATS).
 */
export abstract class FrameRewriter implements SessionRewriter {
  readonly counters: SessionCounters = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0, dropped: 0, refused: 0, jsApi: 0, jsRefused: 0 };
  /** What `clientData` and `upstreamData` return may be on loan from OUTPUT_SLABS: give it back once written. */
  protected readonly toUpstream = new OutputBuffer(SLAB_BYTES, OUTPUT_SLABS);
  protected readonly toClient = new OutputBuffer(SLAB_BYTES, OUTPUT_SLABS);
  protected readonly events: RewriterEvents;
  private readonly clientParser: ClientProtocolParser;
  private readonly upstreamParser: ServerProtocolParser;
  private endedWith: SessionEnd | undefined;
  private deferredInfo: object | undefined;
  private readonly fault = sessionFaultMarker();

  protected constructor(events: RewriterEvents, client: { maxPayload: number; maxControlLine?: number }) {
    this.events = events;
    this.clientParser = new ClientProtocolParser({ onFrame: (f) => this.onClientFrame(f), onError: (e) => this.protocolError("client", e) }, client);
    this.upstreamParser = new ServerProtocolParser({ onFrame: (f) => this.onUpstreamFrame(f), onError: (e) => this.protocolError("nats", e) });
  }

  /** PUB, HPUB, SUB from the client. */
  protected abstract fromClient(f: ClientFrame): void;
  /** MSG, HMSG from NATS. */
  protected abstract fromUpstream(f: ServerFrame): void;
  /** The client ended a subscription (UNSUB); the rewriter forgets what it kept for it. */
  protected unsubscribed(_sid: number): void {}

  /** How a -ERR text from NATS reads to this client. */
  protected natsErrorText(text: string): string {
    return text;
  }

  get ended(): SessionEnd | undefined {
    return this.endedWith;
  }

  clientData(chunk: Buffer): Buffer | undefined {
    if (this.endedWith) return undefined;
    if (this.fault && chunk.includes(this.fault)) throw new Error("fault injected by TENANT_GATEWAY_FAULT");
    // Rewritten PUBs grow by two prefixes each: half the read again is room for frames of 40 bytes.
    this.toUpstream.reserve(chunk.length + (chunk.length >> 1) + 64);
    this.clientParser.parse(chunk);
    if (this.toUpstream.length > 0) return this.toUpstream.take();
    this.toUpstream.release();
    return undefined;
  }

  upstreamData(chunk: Buffer): Buffer | undefined {
    if (this.endedWith) return undefined;
    // Messages lose their prefix on the way to the client: never more than the read.
    this.toClient.reserve(chunk.length + 64);
    this.upstreamParser.parse(chunk);
    if (this.toClient.length > 0) return this.toClient.take();
    this.toClient.release();
    return undefined;
  }

  pendingForClient(): Buffer | undefined {
    return this.toClient.length > 0 ? this.toClient.take() : undefined;
  }

  pendingForUpstream(): Buffer | undefined {
    return this.toUpstream.length > 0 ? this.toUpstream.take() : undefined;
  }

  info(info: object): Buffer {
    this.toClient.info(info);
    return this.toClient.take();
  }

  infoAfterFirstPong(info: object): void {
    this.deferredInfo = info;
  }

  protected end(end: SessionEnd): void {
    if (this.endedWith) return;
    this.endedWith = end;
    this.events.ended(end);
  }

  /**
   * Refuses one frame the way nats-server refuses a publish or subscription it does not permit:
   * -ERR to the client, the frame goes nowhere, the session goes on.
   */
  protected refuse(verdict: SubjectVerdict, verb: "Publish" | "Subscription", event: string, subject: string): void {
    const errText = refusalText(verdict, verb, subject);
    this.counters.refused++;
    this.toClient.err(errText);
    this.events.refused({ event, code: REFUSAL_CODES[verdict] ?? "subject_refused", reason: errText, subject });
  }

  private onClientFrame(f: ClientFrame): void {
    if (this.endedWith) return;
    switch (f.verb) {
      case ClientVerb.Pub:
      case ClientVerb.Hpub:
      case ClientVerb.Sub:
        return this.fromClient(f);
      case ClientVerb.Unsub:
        this.unsubscribed(f.sid);
        return this.toUpstream.unsub(f.sid, f.max);
      case ClientVerb.Ping:
        return this.toUpstream.ping();
      case ClientVerb.Pong:
        return this.toUpstream.pong();
      case ClientVerb.Connect:
        // A second CONNECT changes nothing: identity and options were fixed by the first.
        return;
    }
  }

  private onUpstreamFrame(f: ServerFrame): void {
    if (this.endedWith) return;
    const out = this.toClient;
    switch (f.verb) {
      case ServerVerb.Msg:
      case ServerVerb.Hmsg:
        return this.fromUpstream(f);
      case ServerVerb.Ping:
        return out.ping();
      case ServerVerb.Pong:
        out.pong();
        if (this.deferredInfo) {
          out.info(this.deferredInfo);
          this.deferredInfo = undefined;
        }
        return;
      case ServerVerb.Ok:
        return out.ok();
      case ServerVerb.Err: {
        const text = frameString(f.buf, f.errorStart, f.errorEnd);
        out.err(this.natsErrorText(text));
        this.events.natsError(text);
        return;
      }
      case ServerVerb.Info: {
        let ldm = false;
        try {
          ldm = (JSON.parse(frameString(f.buf, f.jsonStart, f.jsonEnd)) as { ldm?: boolean }).ldm === true;
        } catch {
          // An INFO we cannot read changes nothing for the client.
        }
        // NATS's own INFO updates (cluster URLs) are never passed on: clients must keep coming here.
        if (ldm) this.events.natsLameDuck();
        return;
      }
    }
  }

  private protocolError(side: "client" | "nats", err: ProtocolError): void {
    this.end({ event: side === "client" ? "client_protocol_error" : "nats_protocol_error", code: err.code, reason: `${side} protocol error: ${err.code}: ${err.message}`, ...(side === "client" ? { errText: err.wireText } : {}) });
  }
}

/**
 * The decisions of a platform session (an allowed `<name>.platform.serviceradar` identity),
 * without sockets. The session lives in the PLATFORM account, which imports every tenant's
 * namespace and JetStream API, so subjects already are in the tenant-qualified view
 * (`acme-corp.events.x`, `*.events.>`, `$JS.acme-corp.API.…`) and pass unchanged. What the
 * gateway adds: refusing the PLATFORM account's own internals (`$SYS`, its own `$JS.API`, `$KV`,
 * the audit subjects), auditing every cross-tenant operation, and giving JetStream ack subjects
 * their tenant (`$JS.ACK.…` on a message from acme-corp becomes `$JS.acme-corp.ACK.…`, which
 * the PLATFORM account routes back into acme-corp's account).
 */
import { PLATFORM_PUBLISH_PREFIX } from "../accounts/platform-account.ts";
import { ALL_TENANTS, AUDIT_SUBJECT_PREFIX, type SessionAudit } from "./audit.ts";
import { REFUSAL_CODES, type RewriterEvents, type SessionCounters, type SessionEnd, type SessionRewriter } from "./session-rewriter.ts";
import { ClientVerb, frameString, ServerVerb, type ClientFrame, type ProtocolError, type ServerFrame } from "./protocol/frames.ts";
import { OutputBuffer, SubjectBytes } from "./protocol/encoder.ts";
import { ClientProtocolParser, ServerProtocolParser } from "./protocol/parser.ts";
import { refusalText, SubjectVerdict } from "./subject-rules.ts";

const SLAB_BYTES = 16 * 1024;
const NO_PREFIX = new Uint8Array(0);
const DOT = 0x2e;
const STAR = 0x2a;
const GT = 0x3e;
const DOLLAR = 0x24;
const JS_ACK = Buffer.from("$JS.ACK.", "latin1");
/** `_tg.…` (audit) and `_tg_to.…` (the publish imports): the gateway's, never a client's. */
const INTERNAL = Buffer.from(AUDIT_SUBJECT_PREFIX.split(".")[0]!, "latin1");
const PUBLISH_PREFIX = Buffer.from(PLATFORM_PUBLISH_PREFIX, "latin1");

/** Where a subject points: a tenant, every tenant, the platform's own namespace, or nowhere allowed. */
interface Target {
  tenant: string | undefined;
  /** For `$JS.<slug>.API.<verb…>` / `$JS.<slug>.ACK.…`. */
  jetstream?: "api" | "ack";
  api?: string;
}

function startsWith(buf: Uint8Array, start: number, end: number, text: Uint8Array): boolean {
  if (end - start < text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text[i]) return false;
  return true;
}

/** Empty token anywhere → EmptyToken; a `*`/`>` token → Wildcard; else Tenant (meaning: fine). */
function tokens(buf: Uint8Array, start: number, end: number): SubjectVerdict {
  let tokenStart = start;
  let verdict: SubjectVerdict = SubjectVerdict.Tenant;
  for (let i = start; i <= end; i++) {
    if (i === end || buf[i] === DOT) {
      if (i === tokenStart) return SubjectVerdict.EmptyToken;
      if (i - tokenStart === 1 && (buf[tokenStart] === STAR || buf[tokenStart] === GT)) verdict = SubjectVerdict.Wildcard;
      tokenStart = i + 1;
    }
  }
  return verdict;
}

function firstToken(buf: Buffer, start: number, end: number): string {
  const dot = buf.indexOf(DOT, start);
  return frameString(buf, start, dot < 0 || dot > end ? end : dot);
}

export interface PlatformRewriterOptions {
  maxPayload: number;
  isTenant: (slug: string) => boolean;
  audit: SessionAudit;
  events: RewriterEvents;
}

export class PlatformRewriter implements SessionRewriter {
  readonly counters: SessionCounters = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0, dropped: 0 };
  private readonly toUpstream = new OutputBuffer(SLAB_BYTES);
  private readonly toClient = new OutputBuffer(SLAB_BYTES);
  private readonly clientParser: ClientProtocolParser;
  private readonly upstreamParser: ServerProtocolParser;
  private readonly subject = new SubjectBytes();
  private readonly reply = new SubjectBytes();
  private readonly queue = new SubjectBytes();
  private readonly ackPrefixes = new Map<string, Buffer>();
  private readonly opts: PlatformRewriterOptions;
  private endedWith: SessionEnd | undefined;

  constructor(opts: PlatformRewriterOptions) {
    this.opts = opts;
    this.clientParser = new ClientProtocolParser({ onFrame: (f) => this.fromClient(f), onError: (e) => this.protocolError("client", e) }, { maxPayload: opts.maxPayload });
    this.upstreamParser = new ServerProtocolParser({ onFrame: (f) => this.fromUpstream(f), onError: (e) => this.protocolError("nats", e) });
  }

  get ended(): SessionEnd | undefined {
    return this.endedWith;
  }

  clientData(chunk: Buffer): Buffer | undefined {
    if (this.endedWith) return undefined;
    this.clientParser.parse(chunk);
    return this.toUpstream.length > 0 ? this.toUpstream.take() : undefined;
  }

  upstreamData(chunk: Buffer): Buffer | undefined {
    if (this.endedWith) return undefined;
    this.upstreamParser.parse(chunk);
    return this.toClient.length > 0 ? this.toClient.take() : undefined;
  }

  pendingForClient(): Buffer | undefined {
    return this.toClient.length > 0 ? this.toClient.take() : undefined;
  }

  pendingForUpstream(): Buffer | undefined {
    return this.toUpstream.length > 0 ? this.toUpstream.take() : undefined;
  }

  /** The session ended: the audit window's summaries are written now. */
  closed(): void {
    this.opts.audit.flush();
  }

  info(info: object): Buffer {
    this.toClient.info(info);
    return this.toClient.take();
  }

  private end(end: SessionEnd): void {
    if (this.endedWith) return;
    this.endedWith = end;
    this.opts.events.ended(end);
  }

  private refuse(verdict: SubjectVerdict, verb: "Publish" | "Subscription", event: string, subject: string): void {
    const errText = refusalText(verdict, verb, subject);
    this.end({ event, code: REFUSAL_CODES[verdict] ?? "subject_refused", reason: errText, errText, subject });
  }

  /** What a publish subject reaches; undefined when it may not be published to. */
  private publishTarget(buf: Buffer, start: number, end: number): Target | SubjectVerdict {
    const t = tokens(buf, start, end);
    if (buf[start] === DOLLAR) {
      // Only a tenant's JetStream, through the PLATFORM account's imports: $JS.<slug>.API|ACK.…
      if (t === SubjectVerdict.EmptyToken) return t;
      const parts = frameString(buf, start, Math.min(end, start + 200)).split(".", 4);
      if (parts[0] === "$JS" && parts[1] && (parts[2] === "API" || parts[2] === "ACK") && parts.length === 4 && this.opts.isTenant(parts[1])) {
        if (parts[2] === "ACK" && t === SubjectVerdict.Wildcard) return t;
        const target: Target = { tenant: parts[1], jetstream: parts[2] === "API" ? "api" : "ack" };
        if (target.jetstream === "api") target.api = frameString(buf, start, end).split(".").slice(3, 6).join(".");
        return target;
      }
      return SubjectVerdict.Reserved;
    }
    if (t !== SubjectVerdict.Tenant) return t;
    if (startsWith(buf, start, end, INTERNAL)) return SubjectVerdict.Reserved;
    const first = firstToken(buf, start, end);
    return { tenant: this.opts.isTenant(first) ? first : undefined };
  }

  private fromClient(f: ClientFrame): void {
    if (this.endedWith) return;
    const out = this.toUpstream;
    const buf = f.buf;
    switch (f.verb) {
      case ClientVerb.Pub:
      case ClientVerb.Hpub: {
        const target = this.publishTarget(buf, f.subjectStart, f.subjectEnd);
        if (typeof target === "number") return this.refuse(target, "Publish", "publish_refused", frameString(buf, f.subjectStart, f.subjectEnd));
        let reply: SubjectBytes | null = null;
        if (f.replyStart >= 0) {
          const rv = tokens(buf, f.replyStart, f.replyEnd);
          if (rv !== SubjectVerdict.Tenant) return this.refuse(rv, "Publish", "reply_refused", frameString(buf, f.replyStart, f.replyEnd));
          if (buf[f.replyStart] === DOLLAR || startsWith(buf, f.replyStart, f.replyEnd, INTERNAL)) {
            return this.refuse(SubjectVerdict.Reserved, "Publish", "reply_refused", frameString(buf, f.replyStart, f.replyEnd));
          }
          reply = this.reply.set(buf, f.replyStart, f.replyEnd);
        }
        this.counters.msgsIn++;
        this.counters.bytesIn += f.payloadEnd - f.payloadStart;
        if (target.tenant !== undefined) {
          const subject = frameString(buf, f.subjectStart, f.subjectEnd);
          if (target.jetstream === "ack") this.opts.audit.repeated("jetstream_ack", target.tenant, `$JS.${target.tenant}.ACK`);
          else if (target.jetstream === "api") this.opts.audit.repeated("jetstream_api", target.tenant, subject, { api: target.api! });
          else this.opts.audit.repeated(reply ? "request" : "publish", target.tenant, subject);
        }
        // Into a tenant through the PLATFORM account's publish import; everything else as it is.
        const intoTenant = target.tenant !== undefined && target.jetstream === undefined;
        const subject = this.subject.set(buf, f.subjectStart, f.subjectEnd, intoTenant ? PUBLISH_PREFIX : NO_PREFIX);
        if (f.verb === ClientVerb.Pub) out.pub(subject, reply, buf, f.payloadStart, f.payloadEnd);
        else out.hpub(subject, reply, f.headerSize, buf, f.payloadStart, f.payloadEnd);
        return;
      }
      case ClientVerb.Sub: {
        const t = tokens(buf, f.subjectStart, f.subjectEnd);
        const subjectText = frameString(buf, f.subjectStart, f.subjectEnd);
        if (t === SubjectVerdict.EmptyToken) return this.refuse(t, "Subscription", "subscribe_refused", subjectText);
        if (buf[f.subjectStart] === DOLLAR || startsWith(buf, f.subjectStart, f.subjectEnd, INTERNAL)) {
          return this.refuse(SubjectVerdict.Reserved, "Subscription", "subscribe_refused", subjectText);
        }
        const first = firstToken(buf, f.subjectStart, f.subjectEnd);
        const tenant = first === "*" || first === ">" ? ALL_TENANTS : this.opts.isTenant(first) ? first : undefined;
        if (tenant !== undefined) this.opts.audit.now("subscribe", tenant, subjectText);
        const queue = f.queueStart >= 0 ? this.queue.set(buf, f.queueStart, f.queueEnd) : null;
        out.sub(this.subject.set(buf, f.subjectStart, f.subjectEnd), queue, f.sid);
        return;
      }
      case ClientVerb.Unsub:
        out.unsub(f.sid, f.max);
        return;
      case ClientVerb.Ping:
        out.ping();
        return;
      case ClientVerb.Pong:
        out.pong();
        return;
      case ClientVerb.Connect:
        return;
    }
  }

  /** `$JS.<slug>.` for the ack subjects of messages from that tenant. */
  private ackPrefix(slug: string): Buffer {
    let p = this.ackPrefixes.get(slug);
    if (!p) {
      p = Buffer.from(`$JS.${slug}.`, "latin1");
      this.ackPrefixes.set(slug, p);
    }
    return p;
  }

  private fromUpstream(f: ServerFrame): void {
    if (this.endedWith) return;
    const out = this.toClient;
    const buf = f.buf;
    switch (f.verb) {
      case ServerVerb.Msg:
      case ServerVerb.Hmsg: {
        const subject = this.subject.set(buf, f.subjectStart, f.subjectEnd);
        let reply: SubjectBytes | null = null;
        if (f.replyStart >= 0) {
          reply = this.reply.set(buf, f.replyStart, f.replyEnd);
          if (startsWith(buf, f.replyStart, f.replyEnd, JS_ACK)) {
            // An ack subject names no tenant; the message's own subject does.
            const slug = firstToken(buf, f.subjectStart, f.subjectEnd);
            if (this.opts.isTenant(slug)) reply = this.reply.set(buf, f.replyStart + 4, f.replyEnd, this.ackPrefix(slug));
          }
        }
        this.counters.msgsOut++;
        this.counters.bytesOut += f.payloadEnd - f.payloadStart;
        if (f.verb === ServerVerb.Msg) out.msg(subject, f.sid, reply, buf, f.payloadStart, f.payloadEnd);
        else out.hmsg(subject, f.sid, reply, f.headerSize, buf, f.payloadStart, f.payloadEnd);
        return;
      }
      case ServerVerb.Ping:
        out.ping();
        return;
      case ServerVerb.Pong:
        out.pong();
        return;
      case ServerVerb.Ok:
        out.ok();
        return;
      case ServerVerb.Err: {
        const text = frameString(buf, f.errorStart, f.errorEnd);
        out.err(text);
        this.opts.events.natsError(text);
        return;
      }
      case ServerVerb.Info: {
        let ldm = false;
        try {
          ldm = (JSON.parse(frameString(buf, f.jsonStart, f.jsonEnd)) as { ldm?: boolean }).ldm === true;
        } catch {
          // ignored, as for edge sessions
        }
        if (ldm) this.opts.events.natsLameDuck();
        return;
      }
    }
  }

  private protocolError(side: "client" | "nats", err: ProtocolError): void {
    this.end({ event: side === "client" ? "client_protocol_error" : "nats_protocol_error", code: err.code, reason: `${side} protocol error: ${err.code}: ${err.message}`, ...(side === "client" ? { errText: err.wireText } : {}) });
  }
}

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
import { FrameRewriter, type RewriterEvents } from "./session-rewriter.ts";
import { ClientVerb, frameString, ServerVerb, type ClientFrame, type ServerFrame } from "./protocol/frames.ts";
import { SubjectBytes, WIRE } from "./protocol/encoder.ts";
import { checkQueueName, checkTokens, SubjectVerdict } from "./subject-rules.ts";

const NO_PREFIX = new Uint8Array(0);
const DOT = 0x2e;
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

export class PlatformRewriter extends FrameRewriter {
  private readonly subject = new SubjectBytes();
  private readonly reply = new SubjectBytes();
  private readonly queue = new SubjectBytes();
  private readonly ackPrefixes = new Map<string, Buffer>();
  private readonly opts: PlatformRewriterOptions;

  constructor(opts: PlatformRewriterOptions) {
    super(opts.events, { maxPayload: opts.maxPayload });
    this.opts = opts;
  }

  /** The session ended: the audit window's summaries are written now. */
  closed(): void {
    this.opts.audit.flush();
  }

  /** What a publish subject reaches, or the verdict that refuses it. */
  private publishTarget(buf: Buffer, start: number, end: number): Target | SubjectVerdict {
    const t = checkTokens(buf, start, end);
    if (buf[start] === DOLLAR) {
      // Only a tenant's JetStream, through the PLATFORM account's imports: $JS.<slug>.API|ACK.…
      // JetStream API subjects may carry wildcard filter tokens (consumer create); nothing else.
      if (t === SubjectVerdict.EmptyToken || t === SubjectVerdict.ControlCharacter) return t;
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

  protected fromClient(f: ClientFrame): void {
    const out = this.toUpstream;
    const buf = f.buf;
    switch (f.verb) {
      case ClientVerb.Pub:
      case ClientVerb.Hpub: {
        const target = this.publishTarget(buf, f.subjectStart, f.subjectEnd);
        if (typeof target === "number") return this.refuse(target, "Publish", "publish_refused", frameString(buf, f.subjectStart, f.subjectEnd));
        let reply: SubjectBytes | null = null;
        if (f.replyStart >= 0) {
          const rv = checkTokens(buf, f.replyStart, f.replyEnd);
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
        out.rewritten(f.verb === ClientVerb.Pub ? WIRE.PUB : WIRE.HPUB, subject, reply, WIRE.BLANK, 0, 1, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
        return;
      }
      case ClientVerb.Sub: {
        const t = checkTokens(buf, f.subjectStart, f.subjectEnd);
        const subjectText = frameString(buf, f.subjectStart, f.subjectEnd);
        if (t === SubjectVerdict.EmptyToken || t === SubjectVerdict.ControlCharacter) return this.refuse(t, "Subscription", "subscribe_refused", subjectText);
        if (buf[f.subjectStart] === DOLLAR || startsWith(buf, f.subjectStart, f.subjectEnd, INTERNAL)) {
          return this.refuse(SubjectVerdict.Reserved, "Subscription", "subscribe_refused", subjectText);
        }
        const first = firstToken(buf, f.subjectStart, f.subjectEnd);
        const tenant = first === "*" || first === ">" ? ALL_TENANTS : this.opts.isTenant(first) ? first : undefined;
        if (f.queueStart >= 0) {
          const qv = checkQueueName(buf, f.queueStart, f.queueEnd);
          if (qv < 0) return this.refuse(qv, "Subscription", "subscribe_refused", frameString(buf, f.queueStart, f.queueEnd));
        }
        if (tenant !== undefined) this.opts.audit.now("subscribe", tenant, subjectText);
        const queue = f.queueStart >= 0 ? this.queue.set(buf, f.queueStart, f.queueEnd) : null;
        out.sub(this.subject.set(buf, f.subjectStart, f.subjectEnd), queue, f.sid);
        return;
      }
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

  protected fromUpstream(f: ServerFrame): void {
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
        out.rewritten(f.verb === ServerVerb.Msg ? WIRE.MSG : WIRE.HMSG, subject, reply, buf, f.subjectEnd, f.replyStart, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
        return;
      }
    }
  }

}

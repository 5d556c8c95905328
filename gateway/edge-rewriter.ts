/**
 * The decisions of an edge session, without sockets: bytes from the client in, bytes for NATS
 * out (every subject written into `<slug>.`, JetStream API requests translated or refused, the
 * account-scoped namespaces of common/namespaces.ts passed as they are), and bytes from NATS in,
 * bytes for the client out (only what the tenant owns, prefix removed). Pure enough to fuzz: the
 * session owns the I/O, this owns what may cross.
 */
import { classifyJetStreamRequest, translateDirectGetHeaders, translateRequest, translateResponse } from "./jetstream-api.ts";
import { ClientVerb, frameString, ServerVerb, type ClientFrame, type ServerFrame } from "./protocol/frames.ts";
import { SubjectBytes, WIRE } from "./protocol/encoder.ts";
import { tenantSubjectMapper, TenantStores, type SubjectMapper } from "../common/namespaces.ts";
import { PendingReplies } from "./pending-replies.ts";
import { FrameRewriter, type RewriterEvents } from "./session-rewriter.ts";
import { checkPublishSubject, checkQueueName, checkReplySubject, checkSubscribeSubject, hasPrefix, isAccountScopedSubject, isJetStreamReplySubject, isServiceSubject, storeNameOf, SubjectVerdict } from "./subject-rules.ts";

/** Reply subjects NATS makes up for requests that crossed a service import. */
const SERVICE_IMPORT_REPLY = Buffer.from("_R_.", "latin1");
const MAX_FOREIGN_REPLIES = 1024;
const NO_PREFIX = new Uint8Array(0);
const EMPTY = Buffer.alloc(0);
const DOLLAR = 0x24;
/**
 * nats-server's default max_control_line. The gateway writes `<slug>.` in front of a frame's
 * subject and reply, so it accepts client lines shorter by twice the prefix: a line the client
 * could send to NATS directly must still fit once rewritten.
 */
const NATS_MAX_CONTROL_LINE = 4096;
/**
 * `<slug>.` as bytes, one buffer per tenant shared by its sessions. A small buffer made per session
 * comes from Node's 8 KiB pool and would keep a whole pool slab alive for the session's life
 * (measured: 2.3 KB of heap per idle connection).
 */
const PREFIX_BYTES = new Map<string, Buffer>();
function prefixBytes(prefixText: string): Buffer {
  let bytes = PREFIX_BYTES.get(prefixText);
  if (bytes === undefined) {
    bytes = Buffer.from(prefixText, "latin1");
    PREFIX_BYTES.set(prefixText, bytes);
  }
  return bytes;
}

export interface EdgeRewriterOptions {
  maxPayload: number;
  events: RewriterEvents;
  /** The tenant's key-value buckets and object stores, and which of them edge clients may write. */
  stores?: TenantStores;
  /** Milliseconds now (tests move time). */
  clock?: () => number;
}

export class EdgeRewriter extends FrameRewriter {
  readonly slug: string;
  private readonly prefix: Buffer;
  private readonly prefixText: string;
  private readonly mapper: SubjectMapper;
  private readonly subject = new SubjectBytes();
  private readonly reply = new SubjectBytes();
  private readonly queue = new SubjectBytes();
  private readonly foreignReplies = new Set<string>();
  /** JetStream API replies whose bodies need translating, keyed by reply subject (tenant view). */
  private readonly pendingJs: PendingReplies;
  private readonly stores: TenantStores;

  constructor(slug: string, opts: EdgeRewriterOptions) {
    const prefixLength = Buffer.byteLength(`${slug}.`, "latin1");
    super(opts.events, { maxPayload: opts.maxPayload, maxControlLine: NATS_MAX_CONTROL_LINE - 2 * prefixLength });
    this.slug = slug;
    this.prefixText = `${slug}.`;
    this.prefix = prefixBytes(this.prefixText);
    this.mapper = tenantSubjectMapper(slug);
    this.stores = opts.stores ?? TenantStores.NONE;
    this.pendingJs = new PendingReplies(opts.clock);
  }

  /** NATS names subjects in the tenant view; the client knows them without the prefix. */
  protected override natsErrorText(text: string): string {
    return text.split(`"${this.prefixText}`).join('"');
  }

  // ---- client → NATS ------------------------------------------------------------------------

  protected fromClient(f: ClientFrame): void {
    const out = this.toUpstream;
    const buf = f.buf;
    switch (f.verb) {
      case ClientVerb.Pub:
      case ClientVerb.Hpub: {
        const verdict = checkPublishSubject(buf, f.subjectStart, f.subjectEnd);
        if (verdict < 0) return this.refuse(verdict, "Publish", "publish_refused", frameString(buf, f.subjectStart, f.subjectEnd));
        let reply: SubjectBytes | null = null;
        if (f.replyStart >= 0) {
          const rv = checkReplySubject(buf, f.replyStart, f.replyEnd);
          if (rv < 0) return this.refuse(rv, "Publish", "reply_refused", frameString(buf, f.replyStart, f.replyEnd));
          reply = this.reply.set(buf, f.replyStart, f.replyEnd, this.prefix);
        }
        if (verdict === SubjectVerdict.KvWrite || verdict === SubjectVerdict.ObjectWrite) {
          // Into a bucket or store only when its template lets edge clients write it.
          const kind = verdict === SubjectVerdict.KvWrite ? "kv" : "object";
          if (!this.stores.edgeWritable(kind, storeNameOf(buf, f.subjectStart, f.subjectEnd, kind))) return this.refuse(SubjectVerdict.Reserved, "Publish", "publish_refused", frameString(buf, f.subjectStart, f.subjectEnd));
        }
        this.counters.msgsIn++;
        this.counters.bytesIn += f.payloadEnd - f.payloadStart;
        if (verdict === SubjectVerdict.JetStreamApi) return this.jetStreamRequest(f);
        // A JetStream API reply the gateway waits for comes from JetStream, never from the client itself.
        if (this.pendingJs.size > 0 && verdict === SubjectVerdict.Tenant && this.pendingJs.has(this.prefixText + frameString(buf, f.subjectStart, f.subjectEnd))) {
          return this.refuse(SubjectVerdict.Reserved, "Publish", "publish_refused", frameString(buf, f.subjectStart, f.subjectEnd));
        }
        const unprefixed = verdict !== SubjectVerdict.Tenant || (this.foreignReplies.size > 0 && this.isForeignReply(buf, f.subjectStart, f.subjectEnd));
        const subject = this.subject.set(buf, f.subjectStart, f.subjectEnd, unprefixed ? NO_PREFIX : this.prefix);
        // Sizes, payload and line ends pass as the client sent them (the parser checked them).
        out.rewritten(f.verb === ClientVerb.Pub ? WIRE.PUB : WIRE.HPUB, subject, reply, WIRE.BLANK, 0, 1, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
        return;
      }
      case ClientVerb.Sub: {
        const verdict = checkSubscribeSubject(buf, f.subjectStart, f.subjectEnd);
        if (verdict < 0) return this.refuse(verdict, "Subscription", "subscribe_refused", frameString(buf, f.subjectStart, f.subjectEnd));
        if (f.queueStart >= 0) {
          const qv = checkQueueName(buf, f.queueStart, f.queueEnd);
          if (qv < 0) return this.refuse(qv, "Subscription", "subscribe_refused", frameString(buf, f.queueStart, f.queueEnd));
        }
        const queue = f.queueStart >= 0 ? this.queue.set(buf, f.queueStart, f.queueEnd) : null;
        out.sub(this.subject.set(buf, f.subjectStart, f.subjectEnd, this.prefix), queue, f.sid);
        return;
      }
    }
  }

  /** `$JS.API.…` requests: refused here with a JetStream error reply, or translated into the tenant view. */
  private jetStreamRequest(f: ClientFrame): void {
    const subject = frameString(f.buf, f.subjectStart, f.subjectEnd);
    // The reply is written from the bytes the client sent: whatever their encoding, they come back as sent.
    const reply = f.replyStart >= 0 ? this.reply.set(f.buf, f.replyStart, f.replyEnd, this.prefix) : null;
    const headers = f.verb === ClientVerb.Hpub ? f.buf.subarray(f.payloadStart, f.payloadStart + f.headerSize) : undefined;
    const body = f.buf.subarray(f.payloadStart + (headers?.length ?? 0), f.payloadEnd);
    const op = classifyJetStreamRequest(subject, this.stores);
    const translated = translateRequest(op, subject, body.length > 0 ? body : undefined, this.mapper, this.stores);
    const out = this.toUpstream;
    if (translated.kind === "refuse") {
      const r = translated.refusal;
      this.counters.jsRefused++;
      this.events.jetStreamRefused(subject, r.code, r.reason, r.description);
      if (!reply) return;
      // The error goes back through NATS to the client's own reply subscription.
      const payload = r.reply.headers ? Buffer.concat([r.reply.headers, r.reply.body]) : r.reply.body;
      if (r.reply.headers) out.hpub(reply, null, r.reply.headers.length, payload, 0, payload.length);
      else out.pub(reply, null, payload, 0, payload.length);
      return;
    }
    this.counters.jsApi++;
    if (reply && op.decision.kind === "allow" && op.decision.response !== "untouched") this.pendingJs.track(this.prefixText + frameString(f.buf, f.replyStart, f.replyEnd), op);
    const newBody = translated.body ?? EMPTY;
    const to = SubjectBytes.of(translated.subject);
    if (headers) {
      const payload = Buffer.concat([headers, newBody]);
      out.hpub(to, reply, headers.length, payload, 0, payload.length);
    } else out.pub(to, reply, newBody, 0, newBody.length);
  }

  private rememberForeignReply(reply: string): void {
    if (this.foreignReplies.size >= MAX_FOREIGN_REPLIES) this.foreignReplies.delete(this.foreignReplies.values().next().value!);
    this.foreignReplies.add(reply);
  }

  /** A reply subject NATS handed this session (and only once): answered outside the prefix. */
  private isForeignReply(buf: Buffer, start: number, end: number): boolean {
    if (!hasPrefix(buf, start, end, SERVICE_IMPORT_REPLY)) return false;
    return this.foreignReplies.delete(frameString(buf, start, end));
  }

  /** JetStream API replies still expected, and the bytes their keys hold. */
  get pendingJetStreamReplies(): { count: number; bytes: number } {
    return this.pendingJs.held;
  }

  // ---- NATS → client ------------------------------------------------------------------------

  protected fromUpstream(f: ServerFrame): void {
    const out = this.toClient;
    const buf = f.buf;
    switch (f.verb) {
      case ServerVerb.Msg:
      case ServerVerb.Hmsg: {
        let subject: SubjectBytes;
        if (this.ownsPrefixed(buf, f.subjectStart, f.subjectEnd)) subject = this.subject.set(buf, f.subjectStart + this.prefix.length, f.subjectEnd);
        else if (isAccountScopedSubject(buf, f.subjectStart, f.subjectEnd)) subject = this.subject.set(buf, f.subjectStart, f.subjectEnd);
        else {
          this.counters.dropped++;
          this.events.dropped("subject", frameString(buf, f.subjectStart, f.subjectEnd));
          return;
        }
        let reply: SubjectBytes | null = null;
        if (f.replyStart >= 0) {
          if (this.ownsPrefixed(buf, f.replyStart, f.replyEnd)) reply = this.reply.set(buf, f.replyStart + this.prefix.length, f.replyEnd);
          else if (isJetStreamReplySubject(buf, f.replyStart, f.replyEnd)) reply = this.reply.set(buf, f.replyStart, f.replyEnd);
          else if (hasPrefix(buf, f.replyStart, f.replyEnd, SERVICE_IMPORT_REPLY)) {
            // A request from the platform (through the PLATFORM account's import): NATS made up
            // this reply subject; the client may answer it once, unprefixed.
            reply = this.reply.set(buf, f.replyStart, f.replyEnd);
            this.rememberForeignReply(frameString(buf, f.replyStart, f.replyEnd));
          } else {
            this.counters.dropped++;
            this.events.dropped("reply", frameString(buf, f.replyStart, f.replyEnd));
            return;
          }
        }
        this.counters.msgsOut++;
        this.counters.bytesOut += f.payloadEnd - f.payloadStart;
        if (this.pendingJs.size > 0 && this.jetStreamReply(f, subject, reply)) return;
        // The sid, sizes, payload and line ends pass as NATS sent them.
        out.rewritten(f.verb === ServerVerb.Msg ? WIRE.MSG : WIRE.HMSG, subject, reply, buf, f.subjectEnd, f.replyStart, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
        return;
      }
    }
  }

  /**
   * `<slug>.<rest>` where rest is something an edge client can name under its prefix: no `$`
   * subject but the service framework's. `acme-corp.$KV.x` is not its bucket (that is the
   * account's own `$KV.x`), so it is not delivered as one.
   */
  private ownsPrefixed(buf: Buffer, start: number, end: number): boolean {
    return hasPrefix(buf, start, end, this.prefix) && (buf[start + this.prefix.length] !== DOLLAR || isServiceSubject(buf, start + this.prefix.length, end));
  }

  /** A reply to a JetStream API request: translated into the edge view. True when handled. */
  private jetStreamReply(f: ServerFrame, subject: SubjectBytes, reply: SubjectBytes | null): boolean {
    const op = this.pendingJs.take(frameString(f.buf, f.subjectStart, f.subjectEnd));
    if (!op) return false;
    if (f.verb === ServerVerb.Msg) {
      const body = translateResponse(op, f.buf.subarray(f.payloadStart, f.payloadEnd), undefined, this.mapper);
      this.toClient.msg(subject, f.sid, reply, body, 0, body.length);
    } else {
      let headers = f.buf.subarray(f.payloadStart, f.payloadStart + f.headerSize);
      if (op.verb === "DIRECT.GET") headers = translateDirectGetHeaders(headers, this.mapper);
      const body = translateResponse(op, f.buf.subarray(f.payloadStart + f.headerSize, f.payloadEnd), headers, this.mapper);
      const payload = Buffer.concat([headers, body]);
      this.toClient.hmsg(subject, f.sid, reply, headers.length, payload, 0, payload.length);
    }
    return true;
  }

}

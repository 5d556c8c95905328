/**
 * The decisions of an edge session, without sockets: bytes from the client in, bytes for NATS
 * out (every subject written into `<slug>.`, JetStream API requests translated or refused), and
 * bytes from NATS in, bytes for the client out (only what the tenant owns, prefix removed). Pure
 * enough to fuzz: the session owns the I/O, this owns what may cross.
 */
import { classifyJetStreamRequest, translateDirectGetHeaders, translateRequest, translateResponse, type JetStreamApiOperation } from "./jetstream-api.ts";
import { ClientVerb, frameString, ServerVerb, type ClientFrame, type ProtocolError, type ServerFrame } from "./protocol/frames.ts";
import { OutputBuffer, SubjectBytes } from "./protocol/encoder.ts";
import { ClientProtocolParser, ServerProtocolParser } from "./protocol/parser.ts";
import { tenantSubjectMapper, type SubjectMapper } from "./subject-mapper.ts";
import { REFUSAL_CODES, type RewriterEvents, type SessionCounters, type SessionEnd, type SessionRewriter } from "./session-rewriter.ts";
import { checkPublishSubject, checkQueueName, checkReplySubject, checkSubscribeSubject, hasPrefix, isJetStreamSubject, refusalText, SubjectVerdict } from "./subject-rules.ts";

/** JetStream API replies in flight whose bodies need translating, keyed by reply subject (tenant view). */
const MAX_PENDING_JS_REPLIES = 1024;
const JS_REPLY_TTL_MS = 60_000;
/** Reply subjects NATS makes up for requests that crossed a service import. */
const SERVICE_IMPORT_REPLY = Buffer.from("_R_.", "latin1");
const MAX_FOREIGN_REPLIES = 1024;
/** Output slab per direction: small, so an idle session holds little memory. */
const SLAB_BYTES = 16 * 1024;
const NO_PREFIX = new Uint8Array(0);
const EMPTY = Buffer.alloc(0);
/**
 * nats-server's default max_control_line. The gateway writes `<slug>.` in front of a frame's
 * subject and reply, so it accepts client lines shorter by twice the prefix: a line the client
 * could send to NATS directly must still fit once rewritten.
 */
const NATS_MAX_CONTROL_LINE = 4096;

export class EdgeRewriter implements SessionRewriter {
  readonly slug: string;
  readonly counters: SessionCounters = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0, dropped: 0 };
  private readonly prefix: Buffer;
  private readonly prefixText: string;
  private readonly mapper: SubjectMapper;
  private readonly toUpstream = new OutputBuffer(SLAB_BYTES);
  private readonly toClient = new OutputBuffer(SLAB_BYTES);
  private readonly clientParser: ClientProtocolParser;
  private readonly upstreamParser: ServerProtocolParser;
  private readonly subject = new SubjectBytes();
  private readonly reply = new SubjectBytes();
  private readonly queue = new SubjectBytes();
  private readonly foreignReplies = new Set<string>();
  private readonly pendingJs = new Map<string, { op: JetStreamApiOperation; at: number }>();
  private readonly events: RewriterEvents;
  private endedWith: SessionEnd | undefined;

  constructor(slug: string, opts: { maxPayload: number; events: RewriterEvents }) {
    this.slug = slug;
    this.prefixText = `${slug}.`;
    this.prefix = Buffer.from(this.prefixText, "latin1");
    this.mapper = tenantSubjectMapper(slug);
    this.events = opts.events;
    this.clientParser = new ClientProtocolParser(
      { onFrame: (f) => this.fromClient(f), onError: (e) => this.protocolError("client", e) },
      { maxPayload: opts.maxPayload, maxControlLine: NATS_MAX_CONTROL_LINE - 2 * this.prefix.length },
    );
    this.upstreamParser = new ServerProtocolParser({ onFrame: (f) => this.fromUpstream(f), onError: (e) => this.protocolError("nats", e) });
  }

  get ended(): SessionEnd | undefined {
    return this.endedWith;
  }

  /** Client bytes in; the bytes to send to NATS (or undefined). Check `ended` afterwards. */
  clientData(chunk: Buffer): Buffer | undefined {
    if (this.endedWith) return undefined;
    this.clientParser.parse(chunk);
    return this.toUpstream.length > 0 ? this.toUpstream.take() : undefined;
  }

  /** NATS bytes in; the bytes to send to the client (or undefined). */
  upstreamData(chunk: Buffer): Buffer | undefined {
    if (this.endedWith) return undefined;
    this.upstreamParser.parse(chunk);
    return this.toClient.length > 0 ? this.toClient.take() : undefined;
  }

  /** Whatever is still buffered for the client, e.g. before closing. */
  pendingForClient(): Buffer | undefined {
    return this.toClient.length > 0 ? this.toClient.take() : undefined;
  }

  /** Whatever is still buffered for NATS: the frames of a read that came before the one that ended the session. */
  pendingForUpstream(): Buffer | undefined {
    return this.toUpstream.length > 0 ? this.toUpstream.take() : undefined;
  }

  private end(end: SessionEnd): void {
    if (this.endedWith) return;
    this.endedWith = end;
    this.events.ended(end);
  }

  // ---- client → NATS ------------------------------------------------------------------------

  private fromClient(f: ClientFrame): void {
    if (this.endedWith) return;
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
        this.counters.msgsIn++;
        this.counters.bytesIn += f.payloadEnd - f.payloadStart;
        if (verdict === SubjectVerdict.JetStreamApi) return this.jetStreamRequest(f);
        const unprefixed = verdict !== SubjectVerdict.Tenant || (this.foreignReplies.size > 0 && this.isForeignReply(buf, f.subjectStart, f.subjectEnd));
        const subject = this.subject.set(buf, f.subjectStart, f.subjectEnd, unprefixed ? NO_PREFIX : this.prefix);
        if (f.verb === ClientVerb.Pub) out.pub(subject, reply, buf, f.payloadStart, f.payloadEnd);
        else out.hpub(subject, reply, f.headerSize, buf, f.payloadStart, f.payloadEnd);
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
        // A second CONNECT changes nothing: identity and options were fixed by the first.
        return;
    }
  }

  private refuse(verdict: SubjectVerdict, verb: "Publish" | "Subscription", event: string, subject: string): void {
    const errText = refusalText(verdict, verb, subject);
    this.end({ event, code: REFUSAL_CODES[verdict] ?? "subject_refused", reason: errText, errText, subject });
  }

  /** `$JS.API.…` requests: refused here with a JetStream error reply, or translated into the tenant view. */
  private jetStreamRequest(f: ClientFrame): void {
    const subject = frameString(f.buf, f.subjectStart, f.subjectEnd);
    const replyTenant = f.replyStart >= 0 ? this.prefixText + frameString(f.buf, f.replyStart, f.replyEnd) : undefined;
    const headers = f.verb === ClientVerb.Hpub ? f.buf.subarray(f.payloadStart, f.payloadStart + f.headerSize) : undefined;
    const body = f.buf.subarray(f.payloadStart + (headers?.length ?? 0), f.payloadEnd);
    const op = classifyJetStreamRequest(subject);
    const translated = op.decision.kind === "refuse" ? { kind: "refuse" as const, refusal: op.decision.refusal } : translateRequest(op, subject, body.length > 0 ? body : undefined, this.mapper);
    const out = this.toUpstream;
    if (translated.kind === "refuse") {
      const r = translated.refusal;
      this.events.jetStreamRefused(subject, r.code, r.reason, r.description);
      if (!replyTenant) return;
      // The error goes back through NATS to the client's own reply subscription.
      const to = SubjectBytes.of(replyTenant);
      const payload = r.reply.headers ? Buffer.concat([r.reply.headers, r.reply.body]) : r.reply.body;
      if (r.reply.headers) out.hpub(to, null, r.reply.headers.length, payload, 0, payload.length);
      else out.pub(to, null, payload, 0, payload.length);
      return;
    }
    if (replyTenant && op.decision.kind === "allow" && op.decision.response !== "untouched") this.trackJetStreamReply(replyTenant, op);
    const newBody = translated.body ?? EMPTY;
    const to = SubjectBytes.of(translated.subject);
    const reply = replyTenant ? SubjectBytes.of(replyTenant) : null;
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

  private trackJetStreamReply(reply: string, op: JetStreamApiOperation): void {
    const now = Date.now();
    if (this.pendingJs.size >= MAX_PENDING_JS_REPLIES) {
      for (const [key, entry] of this.pendingJs) {
        if (now - entry.at > JS_REPLY_TTL_MS || this.pendingJs.size >= MAX_PENDING_JS_REPLIES) this.pendingJs.delete(key);
      }
    }
    this.pendingJs.set(reply, { op, at: now });
  }

  // ---- NATS → client ------------------------------------------------------------------------

  private fromUpstream(f: ServerFrame): void {
    if (this.endedWith) return;
    const out = this.toClient;
    const buf = f.buf;
    switch (f.verb) {
      case ServerVerb.Msg:
      case ServerVerb.Hmsg: {
        let subject: SubjectBytes;
        if (hasPrefix(buf, f.subjectStart, f.subjectEnd, this.prefix)) subject = this.subject.set(buf, f.subjectStart + this.prefix.length, f.subjectEnd);
        else if (isJetStreamSubject(buf, f.subjectStart, f.subjectEnd)) subject = this.subject.set(buf, f.subjectStart, f.subjectEnd);
        else {
          this.counters.dropped++;
          this.events.dropped("subject", frameString(buf, f.subjectStart, f.subjectEnd));
          return;
        }
        let reply: SubjectBytes | null = null;
        if (f.replyStart >= 0) {
          if (hasPrefix(buf, f.replyStart, f.replyEnd, this.prefix)) reply = this.reply.set(buf, f.replyStart + this.prefix.length, f.replyEnd);
          else if (isJetStreamSubject(buf, f.replyStart, f.replyEnd)) reply = this.reply.set(buf, f.replyStart, f.replyEnd);
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
        // NATS names subjects in the tenant view; the client knows them without the prefix.
        out.err(text.split(`"${this.prefixText}`).join('"'));
        this.events.natsError(text);
        return;
      }
      case ServerVerb.Info: {
        let ldm = false;
        try {
          ldm = (JSON.parse(frameString(buf, f.jsonStart, f.jsonEnd)) as { ldm?: boolean }).ldm === true;
        } catch {
          // An INFO we cannot read changes nothing for the client.
        }
        // NATS's own INFO updates (cluster URLs) are never passed on: clients must keep coming here.
        if (ldm) this.events.natsLameDuck();
        return;
      }
    }
  }

  /** A reply to a JetStream API request: translated into the edge view. True when handled. */
  private jetStreamReply(f: ServerFrame, subject: SubjectBytes, reply: SubjectBytes | null): boolean {
    const key = frameString(f.buf, f.subjectStart, f.subjectEnd);
    const pending = this.pendingJs.get(key);
    if (!pending) return false;
    this.pendingJs.delete(key);
    const { op } = pending;
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

  private protocolError(side: "client" | "nats", err: ProtocolError): void {
    this.end({ event: side === "client" ? "client_protocol_error" : "nats_protocol_error", code: err.code, reason: `${side} protocol error: ${err.code}: ${err.message}`, ...(side === "client" ? { errText: err.wireText } : {}) });
  }

  /** An INFO for the client (limits, lame duck), after whatever is already pending for it. */
  info(info: object): Buffer {
    this.toClient.info(info);
    return this.toClient.take();
  }
}

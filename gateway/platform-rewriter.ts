/**
 * The decisions of a platform session (an allowed `<name>.platform.serviceradar` identity),
 * without sockets. The session lives in the PLATFORM account, which imports every tenant's
 * namespace and JetStream API, so tenant subjects already are in the tenant-qualified view
 * (`acme-corp.events.x`, `*.events.>`, `$JS.acme-corp.API.…`) and pass unchanged.
 *
 * What a platform session sees (issue 13): only tenant namespaces and what is its own. Everything
 * NATS delivers is checked, never passed blindly: a message whose subject names a tenant (audited
 * once per subscription and tenant, then in summaries — whatever subscription it arrived on, and
 * whenever the tenant was created), or a message in the session's own private namespace. The
 * private namespace holds whatever the client names under a first token starting with `_` (its
 * inboxes): `_INBOX.x` is `_tg_s.<session>._INBOX.x` inside NATS, so no other session can receive
 * a reply meant for this one. The PLATFORM account's internals (`$SYS`, `$JS` advisories and its own
 * JetStream API — answered as an account without JetStream —, `$KV`, the audit subjects, other
 * clients' inboxes) are refused here and denied by the platform user's permissions underneath.
 *
 * Writes into a tenant's key-value bucket (`$JS.<slug>.API.$KV.<bucket>.<key>`, what a stock
 * client bound through the API prefix publishes) become the import `_tg_kv.<slug>.…`.
 *
 * Ack subjects: nats-server hands out `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
 * (9 tokens), which names no tenant. The client gets the 11-token form
 * `$JS.ACK.<slug>._.<stream>.…` — the domain slot carries the tenant (whose API is `$JS.<slug>.API`,
 * the JetStream-domain form), the account-hash slot `_` — and its ack comes back to NATS as
 * `$JS.<slug>.ACK.<stream>.…`, which the PLATFORM account routes into that tenant. A server ack that
 * already has a domain and hash (`$JS.ACK.<d>.<h>.…`) keeps them as `<d>~<h>` in the hash slot.
 */
import { PLATFORM_KV_PREFIX, PLATFORM_PUBLISH_PREFIX, platformSessionPrefix } from "../accounts/platform-account.ts";
import { isPrefixedTenantSubject, TenantStores } from "../common/namespaces.ts";
import { ALL_TENANTS, AUDIT_SUBJECT_PREFIX, type SessionAudit } from "./audit.ts";
import { jetStreamUnavailable } from "./jetstream-api.ts";
import { PendingReplies } from "./pending-replies.ts";
import { platformJetStreamRequest, platformJetStreamResponse } from "./platform-jetstream.ts";
import { FrameRewriter, type RewriterEvents } from "./session-rewriter.ts";
import { ClientVerb, frameString, ServerVerb, type ClientFrame, type ServerFrame } from "./protocol/frames.ts";
import { SubjectBytes, WIRE } from "./protocol/encoder.ts";
import { checkQueueName, checkTokens, SubjectVerdict } from "./subject-rules.ts";

const NO_PREFIX = new Uint8Array(0);
const DOT = 0x2e;
const DOLLAR = 0x24;
const JS_ACK = Buffer.from("$JS.ACK.", "latin1");
const JS_API = Buffer.from("$JS.API.", "latin1");
const UNDERSCORE = 0x5f;
/** `_tg.…` (audit), `_tg_to.…` and `_tg_kv.…` (the publish imports), `_tg_s.…` (sessions' private namespaces): the gateway's, never a client's. */
const INTERNAL = Buffer.from(AUDIT_SUBJECT_PREFIX.split(".")[0]!, "latin1");
const PUBLISH_PREFIX = Buffer.from(PLATFORM_PUBLISH_PREFIX, "latin1");
/** Tokens of an ack subject after `$JS.ACK.`: 7 without a domain, 9 or more with domain and account hash. */
const ACK_TOKENS_PLAIN = 7;
const NO_DOMAIN = "_";
const DOMAIN_HASH_SEPARATOR = "~";
const OWN_JETSTREAM_HINT = "platform sessions reach a tenant's JetStream with the API prefix $JS.<tenant>.API, and the platform streams their identity may read";
/** The consumer-origin mark of the session's own account (tenant slugs never start with a NUL). */
const OWN_ACCOUNT = "\u0000platform";
const MAX_CONSUMER_ORIGINS = 1024;

/** Where a publish goes: a tenant (or nowhere in particular), and how it must be written for NATS. */
interface Target {
  tenant: string | undefined;
  kind: "subject" | "api" | "ack" | "kv" | "own-api" | "own-ack" | "private";
  /** The subject for NATS when it differs from the client's (acks, bucket writes). */
  rewritten?: string;
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

/** `$JS.ACK.<rest>` from nats-server → the client's form carrying `slug` (see the module comment). */
export function platformAckSubject(serverAck: string, slug: string): string {
  const rest = serverAck.slice(JS_ACK.length).split(".");
  if (rest.length === ACK_TOKENS_PLAIN) return `$JS.ACK.${slug}.${NO_DOMAIN}.${rest.join(".")}`;
  const [domain, hash, ...tail] = rest;
  return `$JS.ACK.${slug}.${domain}${DOMAIN_HASH_SEPARATOR}${hash}.${tail.join(".")}`;
}

/** The stream and consumer an ack subject names, in either form (without, or with domain and account hash). */
export function ackStreamConsumer(ack: string): { stream: string; consumer: string } | undefined {
  const rest = ack.slice(JS_ACK.length).split(".");
  if (rest.length === ACK_TOKENS_PLAIN) return { stream: rest[0]!, consumer: rest[1]! };
  if (rest.length >= ACK_TOKENS_PLAIN + 2) return { stream: rest[2]!, consumer: rest[3]! };
  return undefined;
}

/** The client's ack subject back to what the PLATFORM account routes into the tenant, or undefined when it is not one. */
export function tenantAckSubject(clientAck: string): { slug: string; subject: string } | undefined {
  const t = clientAck.split(".");
  if (t.length < 4 + ACK_TOKENS_PLAIN || t[0] !== "$JS" || t[1] !== "ACK") return undefined;
  const slug = t[2]!;
  const slot = t[3]!;
  const tail = t.slice(4).join(".");
  if (slot === NO_DOMAIN) return t.length === 4 + ACK_TOKENS_PLAIN ? { slug, subject: `$JS.${slug}.ACK.${tail}` } : undefined;
  const sep = slot.indexOf(DOMAIN_HASH_SEPARATOR);
  if (sep <= 0 || sep === slot.length - 1) return undefined;
  return { slug, subject: `$JS.${slug}.ACK.${slot.slice(0, sep)}.${slot.slice(sep + 1)}.${tail}` };
}

export interface PlatformRewriterOptions {
  /** The session's id: names its private namespace. */
  session: string;
  maxPayload: number;
  isTenant: (slug: string) => boolean;
  audit: SessionAudit;
  events: RewriterEvents;
  /** Which key-value buckets platform sessions may write. */
  stores?: TenantStores;
  /** The PLATFORM account's platform streams this identity may read through `$JS.API` (none: the account has no JetStream for it). */
  readableStreams?: readonly string[];
  clock?: () => number;
}

/** A subscription of the client's: what it named (for the audit), and whether it is in the session's private namespace. */
interface Subscription {
  subject: string;
  private: boolean;
}

export class PlatformRewriter extends FrameRewriter {
  private readonly subject = new SubjectBytes();
  private readonly reply = new SubjectBytes();
  private readonly queue = new SubjectBytes();
  private readonly opts: PlatformRewriterOptions;
  /** `_tg_s.<session>.`: where the client's own `_…` subjects live inside NATS. */
  private readonly privatePrefix: Buffer;
  private readonly subscriptions = new Map<number, Subscription>();
  private readonly readable: ReadonlySet<string>;
  /** Replies of the session's own JetStream requests, to translate (keyed by the reply NATS sees). */
  private readonly pendingJs: PendingReplies;
  /**
   * Whose consumer a `$JS.ACK.<stream>.<consumer>.…` belongs to: a platform stream's (the session's
   * own account) or a tenant's — stream names alone can be the same in both. Learnt from the
   * session's own pulls and consumer creations.
   */
  private readonly consumerOrigins = new Map<string, string>();

  constructor(opts: PlatformRewriterOptions) {
    super(opts.events, { maxPayload: opts.maxPayload });
    this.opts = opts;
    this.privatePrefix = Buffer.from(platformSessionPrefix(opts.session), "latin1");
    this.readable = new Set(opts.readableStreams ?? []);
    this.pendingJs = new PendingReplies(opts.clock);
  }

  /** The session ended: the audit window's summaries are written now. */
  closed(): void {
    this.opts.audit.flush();
  }

  protected override unsubscribed(sid: number): void {
    this.subscriptions.delete(sid);
  }

  private get stores(): TenantStores {
    return this.opts.stores ?? TenantStores.NONE;
  }

  /** What a publish subject reaches, or the verdict that refuses it. */
  private publishTarget(buf: Buffer, start: number, end: number): Target | SubjectVerdict {
    const t = checkTokens(buf, start, end);
    if (buf[start] === DOLLAR) {
      // Only a tenant's JetStream, through the PLATFORM account's imports: $JS.<slug>.API|ACK.…
      // JetStream API subjects may carry wildcard filter tokens (consumer create); nothing else.
      if (t === SubjectVerdict.EmptyToken || t === SubjectVerdict.ControlCharacter) return t;
      if (startsWith(buf, start, end, JS_API)) return { tenant: undefined, kind: "own-api" };
      const text = frameString(buf, start, end);
      if (startsWith(buf, start, end, JS_ACK)) {
        if (t !== SubjectVerdict.Tenant) return SubjectVerdict.Reserved;
        const ack = tenantAckSubject(text);
        if (ack) return this.opts.isTenant(ack.slug) ? { tenant: ack.slug, kind: "ack", rewritten: ack.subject } : SubjectVerdict.Reserved;
        // An ack of a platform stream's consumer, in the session's own account.
        const own = ackStreamConsumer(text);
        return own && this.readable.has(own.stream) ? { tenant: undefined, kind: "own-ack" } : SubjectVerdict.Reserved;
      }
      const parts = text.split(".", 4);
      if (parts[0] !== "$JS" || !parts[1] || (parts[2] !== "API" && parts[2] !== "ACK") || parts.length !== 4 || !this.opts.isTenant(parts[1])) return SubjectVerdict.Reserved;
      const tenant = parts[1];
      if (parts[2] === "ACK") return t === SubjectVerdict.Wildcard ? t : { tenant, kind: "ack" };
      const inApi = text.slice(`$JS.${tenant}.API.`.length);
      if (inApi.startsWith("$KV.")) {
        // A stock client bound to the tenant's bucket through the API prefix, writing a key.
        const bucket = inApi.split(".", 3)[1] ?? "";
        if (t !== SubjectVerdict.Tenant || !this.stores.platformWritable(bucket)) return t === SubjectVerdict.Tenant ? SubjectVerdict.Reserved : t;
        return { tenant, kind: "kv", rewritten: `${PLATFORM_KV_PREFIX}${tenant}.${inApi.slice("$KV.".length)}` };
      }
      const api = inApi.split(".");
      if (api[0] === "CONSUMER" && api[1] === "MSG" && api[2] === "NEXT" && api.length === 5) this.rememberConsumer(api[3]!, api[4]!, tenant);
      return { tenant, kind: "api", api: api.slice(0, 3).join(".") };
    }
    if (t !== SubjectVerdict.Tenant) return t;
    if (startsWith(buf, start, end, INTERNAL)) return SubjectVerdict.Reserved;
    if (buf[start] === UNDERSCORE) return { tenant: undefined, kind: "private" };
    const first = firstToken(buf, start, end);
    // Outside the session's own namespace, a platform session publishes into tenants only, and
    // under a tenant's prefix only what its edge clients can name there: no `$` subject but `$SRV.`.
    if (!this.opts.isTenant(first) || end - start <= first.length + 1) return SubjectVerdict.Reserved;
    if (!isPrefixedTenantSubject(frameString(buf, start + first.length + 1, end))) return SubjectVerdict.Reserved;
    return { tenant: first, kind: "subject" };
  }

  /** A reply subject: always in the session's private namespace, so its answers reach this session only. */
  private replyOf(buf: Buffer, start: number, end: number): SubjectBytes | SubjectVerdict {
    const rv = checkTokens(buf, start, end);
    if (rv !== SubjectVerdict.Tenant) return rv;
    if (buf[start] === DOLLAR || startsWith(buf, start, end, INTERNAL)) return SubjectVerdict.Reserved;
    return this.reply.set(buf, start, end, this.privatePrefix);
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
          const r = this.replyOf(buf, f.replyStart, f.replyEnd);
          if (typeof r === "number") return this.refuse(r, "Publish", "reply_refused", frameString(buf, f.replyStart, f.replyEnd));
          reply = r;
        }
        const subjectText = frameString(buf, f.subjectStart, f.subjectEnd);
        if (target.kind === "own-api") return this.ownJetStream(f, subjectText, reply);
        if (target.kind === "own-ack") this.opts.audit.repeated("jetstream_ack", ALL_TENANTS, subjectText.split(".", 4).join("."));
        this.counters.msgsIn++;
        this.counters.bytesIn += f.payloadEnd - f.payloadStart;
        if (target.tenant !== undefined) {
          if (target.kind === "ack") this.opts.audit.repeated("jetstream_ack", target.tenant, `$JS.${target.tenant}.ACK`);
          else if (target.kind === "api") this.opts.audit.repeated("jetstream_api", target.tenant, subjectText, { api: target.api! });
          else if (target.kind === "kv") this.opts.audit.repeated("kv_write", target.tenant, subjectText);
          else this.opts.audit.repeated(reply ? "request" : "publish", target.tenant, subjectText);
        }
        // Into a tenant through the PLATFORM account's imports, or into the session's own namespace.
        const prefix = target.kind === "subject" ? PUBLISH_PREFIX : target.kind === "private" ? this.privatePrefix : NO_PREFIX;
        const subject = target.rewritten !== undefined ? SubjectBytes.of(target.rewritten) : this.subject.set(buf, f.subjectStart, f.subjectEnd, prefix);
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
        if (f.queueStart >= 0) {
          const qv = checkQueueName(buf, f.queueStart, f.queueEnd);
          if (qv < 0) return this.refuse(qv, "Subscription", "subscribe_refused", frameString(buf, f.queueStart, f.queueEnd));
        }
        const isPrivate = buf[f.subjectStart] === UNDERSCORE;
        this.subscriptions.set(f.sid, { subject: subjectText, private: isPrivate });
        if (!isPrivate) {
          // The tenant view: a tenant, every tenant, or one not created yet. Deliveries are audited as they come.
          const first = firstToken(buf, f.subjectStart, f.subjectEnd);
          this.opts.audit.now("subscribe", first === "*" || first === ">" ? ALL_TENANTS : first, subjectText);
        }
        const queue = f.queueStart >= 0 ? this.queue.set(buf, f.queueStart, f.queueEnd) : null;
        out.sub(this.subject.set(buf, f.subjectStart, f.subjectEnd, isPrivate ? this.privatePrefix : NO_PREFIX), queue, f.sid);
        return;
      }
    }
  }

  /**
   * The PLATFORM account's own JetStream: the platform streams this identity may read (see
   * platform-jetstream.ts), never the audit stream or the registry. With none to read, the request
   * is answered the way an account without JetStream is, on the client's reply subject.
   */
  private ownJetStream(f: ClientFrame, subject: string, reply: SubjectBytes | null): void {
    const headers = f.verb === ClientVerb.Hpub ? f.buf.subarray(f.payloadStart, f.payloadStart + f.headerSize) : undefined;
    const body = f.buf.subarray(f.payloadStart + (headers?.length ?? 0), f.payloadEnd);
    const decided = this.readable.size === 0 ? ({ kind: "refuse", refusal: jetStreamUnavailable(subject, OWN_JETSTREAM_HINT) } as const) : platformJetStreamRequest(subject, body.length > 0 ? body : undefined, this.readable, this.privatePrefix.toString("latin1"));
    if (decided.kind === "refuse") {
      const r = decided.refusal;
      this.events.jetStreamRefused(subject, r.code, r.reason, r.description);
      if (!reply) return;
      const payload = r.reply.headers ? Buffer.concat([r.reply.headers, r.reply.body]) : r.reply.body;
      if (r.reply.headers) this.toUpstream.hpub(reply, null, r.reply.headers.length, payload, 0, payload.length);
      else this.toUpstream.pub(reply, null, payload, 0, payload.length);
      return;
    }
    const { op } = decided;
    this.counters.msgsIn++;
    this.counters.bytesIn += f.payloadEnd - f.payloadStart;
    // Consumers come and go on record; everything else is summarised.
    const tenant = ALL_TENANTS;
    if (op.verb === "CONSUMER.CREATE" || op.verb === "CONSUMER.DURABLE.CREATE" || op.verb === "CONSUMER.DELETE") this.opts.audit.now("jetstream_api", tenant, subject, { api: op.verb });
    else this.opts.audit.repeated("jetstream_api", tenant, subject, { api: op.verb });
    if (op.verb === "CONSUMER.MSG.NEXT" && op.stream !== undefined && op.consumer !== undefined) this.rememberConsumer(op.stream, op.consumer, OWN_ACCOUNT);
    if (reply && decided.translateResponse) this.pendingJs.track(this.privatePrefix.toString("latin1") + frameString(f.buf, f.replyStart, f.replyEnd), op);
    const newBody = decided.body ?? Buffer.alloc(0);
    const to = SubjectBytes.of(subject);
    if (headers) {
      const payload = Buffer.concat([headers, newBody]);
      this.toUpstream.hpub(to, reply, headers.length, payload, 0, payload.length);
    } else this.toUpstream.pub(to, reply, newBody, 0, newBody.length);
  }

  private rememberConsumer(stream: string, consumer: string, origin: string): void {
    const key = `${stream}\u0000${consumer}`;
    this.consumerOrigins.delete(key);
    if (this.consumerOrigins.size >= MAX_CONSUMER_ORIGINS) this.consumerOrigins.delete(this.consumerOrigins.keys().next().value!);
    this.consumerOrigins.set(key, origin);
  }

  /** A reply of the session's own JetStream request, in its view; true when it was one. */
  private ownJetStreamReply(f: ServerFrame, subject: SubjectBytes, reply: SubjectBytes | null): boolean {
    const op = this.pendingJs.take(frameString(f.buf, f.subjectStart, f.subjectEnd));
    if (!op) return false;
    const headers = f.verb === ServerVerb.Hmsg ? f.buf.subarray(f.payloadStart, f.payloadStart + f.headerSize) : undefined;
    const body = platformJetStreamResponse(op, f.buf.subarray(f.payloadStart + (headers?.length ?? 0), f.payloadEnd), this.readable, this.privatePrefix.toString("latin1"));
    if (op.verb === "CONSUMER.CREATE" || op.verb === "CONSUMER.DURABLE.CREATE") {
      // The consumer's name (ephemeral ones are named by the server): its acks are the session's own.
      const created = (() => {
        try {
          return JSON.parse(body.toString("utf8")) as { stream_name?: unknown; name?: unknown };
        } catch {
          return {};
        }
      })();
      if (typeof created.stream_name === "string" && typeof created.name === "string") this.rememberConsumer(created.stream_name, created.name, OWN_ACCOUNT);
    }
    this.counters.msgsOut++;
    this.counters.bytesOut += body.length;
    if (headers) {
      const payload = Buffer.concat([headers, body]);
      this.toClient.hmsg(subject, f.sid, reply, headers.length, payload, 0, payload.length);
    } else this.toClient.msg(subject, f.sid, reply, body, 0, body.length);
    return true;
  }

  protected fromUpstream(f: ServerFrame): void {
    const buf = f.buf;
    switch (f.verb) {
      case ServerVerb.Msg:
      case ServerVerb.Hmsg: {
        // The subject: the session's own (prefix removed), a tenant's (audited), or nothing it may see.
        let subject: SubjectBytes;
        let tenant: string | undefined;
        if (startsWith(buf, f.subjectStart, f.subjectEnd, this.privatePrefix)) {
          subject = this.subject.set(buf, f.subjectStart + this.privatePrefix.length, f.subjectEnd);
          if (this.pendingJs.size > 0 && f.replyStart < 0 && this.ownJetStreamReply(f, subject, null)) return;
        } else {
          const first = firstToken(buf, f.subjectStart, f.subjectEnd);
          if (!this.opts.isTenant(first)) return this.drop("subject", buf, f.subjectStart, f.subjectEnd);
          tenant = first;
          subject = this.subject.set(buf, f.subjectStart, f.subjectEnd);
        }
        let reply: SubjectBytes | null = null;
        let auditAs: string | undefined;
        if (f.replyStart >= 0) {
          if (startsWith(buf, f.replyStart, f.replyEnd, this.privatePrefix)) reply = this.reply.set(buf, f.replyStart + this.privatePrefix.length, f.replyEnd);
          else if (startsWith(buf, f.replyStart, f.replyEnd, JS_ACK)) {
            // An ack names no tenant: the consumer's origin (a platform stream's, or a tenant's)
            // does, else the message's own subject.
            const ack = frameString(buf, f.replyStart, f.replyEnd);
            const consumer = ackStreamConsumer(ack);
            const origin = consumer ? this.consumerOrigins.get(`${consumer.stream}\u0000${consumer.consumer}`) : undefined;
            const owner = origin === OWN_ACCOUNT ? undefined : (origin ?? tenant);
            reply = owner !== undefined ? SubjectBytes.of(platformAckSubject(ack, owner)) : this.reply.set(buf, f.replyStart, f.replyEnd);
            if (consumer) auditAs = `$JS.ACK.${consumer.stream}.${consumer.consumer}`;
          } else if (this.opts.isTenant(firstToken(buf, f.replyStart, f.replyEnd))) reply = this.reply.set(buf, f.replyStart, f.replyEnd);
          else return this.drop("reply", buf, f.replyStart, f.replyEnd);
        }
        if (tenant !== undefined) this.opts.audit.repeated("receive", tenant, auditAs ?? this.subscriptions.get(f.sid)?.subject ?? frameString(buf, f.subjectStart, f.subjectEnd));
        this.counters.msgsOut++;
        this.counters.bytesOut += f.payloadEnd - f.payloadStart;
        this.toClient.rewritten(f.verb === ServerVerb.Msg ? WIRE.MSG : WIRE.HMSG, subject, reply, buf, f.subjectEnd, f.replyStart, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
        return;
      }
    }
  }

  private drop(kind: "subject" | "reply", buf: Buffer, start: number, end: number): void {
    this.counters.dropped++;
    this.events.dropped(kind, frameString(buf, start, end));
  }
}

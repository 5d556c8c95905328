/**
 * The decisions of a leaf session, without sockets: what crosses between a customer site's
 * nats-server (its leafnode connection to the gateway, in the tenant's view) and nats-server (the
 * gateway's leafnode connection into the tenant's account, in the prefixed view). The same rules
 * as an edge client session (edge-rewriter.ts, subject-rules.ts, common/namespaces.ts):
 *
 * site → hub
 * - interest `LS+ events.>` → `LS+ acme-corp.events.>` (queue group and weight as they are); the
 *   loop-detection subject `$LDS.…` passes as it is; interest in any other `$` subject (a site's
 *   system imports, `$JS.<its domain>.API`) is not forwarded — nats-server, too, keeps interest its
 *   peer may not have to itself.
 * - messages `LMSG events.x _INBOX.y` → `LMSG acme-corp.events.x acme-corp._INBOX.y`, queue lists
 *   as they are; refused with `-ERR` as a client publish is (the frame goes nowhere, the session
 *   goes on): wildcards, empty tokens, control characters, `$` subjects, payloads over the tenant's
 *   limit. A reply subject NATS made up for a platform request (`_R_.…`) is answered once, as it is.
 * - JetStream: the site reaches the tenant's streams through the hub's JetStream domain
 *   (`$JS.<domain>.API.…`, the usual set-up of a leaf that has JetStream of its own). nats-server
 *   denies `$JS.API.>`, `$KV.>` and `$OBJ.>` on every leafnode connection of an account
 *   (server/leafnode.go addLeafNodeConnection, denyAllClientJs) and cuts a leaf that sends one, so
 *   these requests — translated as edge clients' are (jetstream-api.ts) — and the acks and
 *   flow-control replies of consumers go out on a client connection of the same user instead
 *   (`toJetStream`). Their replies come back over the leaf, to the interest the site has sent; a
 *   request leaves only after nats-server has confirmed, with a PONG, every interest the site sent
 *   before it (a PING on the leaf), so its reply cannot overtake the reply subject's interest.
 *
 * hub → site
 * - interest in what the tenant owns loses its prefix; `$LDS.…`, consumers' `$JS.ACK.…`/`$JS.FC.…`
 *   and platform request replies `_R_.…` pass as they are; the hub's service imports (`$SYS.…`,
 *   `$JS.API.>`) are kept from the site. The gateway adds the interest `$JS.<domain>.API.>`.
 * - messages only on subjects the tenant owns (prefix removed) — an ownership check, never a blind
 *   strip; JetStream API replies translated back into the edge view.
 * - PING/PONG pass both ways (the gateway's own PINGs are answered to itself), `-ERR` from the hub is
 *   passed on with the tenant prefix removed.
 */
import { classifyJetStreamRequest, jetStreamErrorResponse, translateDirectGetHeaders, translateRequest, translateResponse } from "./jetstream-api.ts";
import { OutputBuffer, SubjectBytes } from "./protocol/encoder.ts";
import { frameString } from "./protocol/frames.ts";
import { LEAF_WIRE, writeInterest, writeLeafMessage, type QueueList } from "./protocol/leaf-encoder.ts";
import { LeafVerb, type LeafFrame, type LeafProtocolError } from "./protocol/leaf-frames.ts";
import { LeafProtocolParser } from "./protocol/leaf-parser.ts";
import { PendingReplies } from "./pending-replies.ts";
import { REFUSAL_CODES, type SessionEnd } from "./session-rewriter.ts";
import { checkPublishSubject, checkQueueName, checkReplySubject, checkSubscribeSubject, checkTokens, hasPrefix, isAccountScopedSubject, isJetStreamReplySubject, isServiceSubject, refusalText, storeNameOf, SubjectVerdict } from "./subject-rules.ts";
import { JETSTREAM_API, KV_PREFIX, tenantSubjectMapper, TenantStores, type SubjectMapper } from "../common/namespaces.ts";
import { sessionFaultMarker } from "../common/fault.ts";

/** nats-server's loop-detection subjects (server/leafnode.go leafNodeLoopDetectionSubjectPrefix). */
const LOOP_DETECTION = Buffer.from("$LDS.", "latin1");
/** Reply subjects NATS makes up for requests that crossed a service import. */
const SERVICE_IMPORT_REPLY = Buffer.from("_R_.", "latin1");
const DOLLAR = 0x24;
const AT = 0x40;
const NO_PREFIX = new Uint8Array(0);
const EMPTY = Buffer.alloc(0);
const MAX_FOREIGN_REPLIES = 1024;
/** JetStream requests waiting for nats-server to confirm the interest sent before them. */
const MAX_HELD_REQUESTS = 256;
const MAX_HELD_BYTES = 1024 * 1024;
/** PINGs the site may have in flight through the gateway; beyond, the gateway answers them itself. */
const MAX_PINGS_IN_FLIGHT = 1024;

/** The `<slug>.` prefix, one buffer per tenant shared by its sessions (see edge-rewriter.ts). */
const PREFIX_BYTES = new Map<string, Buffer>();
function prefixBytes(text: string): Buffer {
  let bytes = PREFIX_BYTES.get(text);
  if (!bytes) {
    bytes = Buffer.from(text, "latin1");
    PREFIX_BYTES.set(text, bytes);
  }
  return bytes;
}

export interface LeafCounters {
  /** Messages (and their payload bytes) from the site into the tenant's account. */
  msgsIn: number;
  bytesIn: number;
  /** Messages delivered to the site. */
  msgsOut: number;
  bytesOut: number;
  /** Messages from NATS on subjects the tenant does not own: never delivered. */
  dropped: number;
  /** Messages from the site refused with -ERR (the session goes on). */
  refused: number;
  /** Interest forwarded each way, and interest kept back (outside the tenant's view). */
  interestToHub: number;
  interestToSite: number;
  interestKept: number;
  /** JetStream requests, acks and flow-control replies sent on the JetStream connection. */
  jetStream: number;
}

export interface LeafRewriterEvents {
  ended(end: SessionEnd): void;
  /** A message of the site refused with -ERR; the session goes on. */
  refused(refusal: SessionEnd): void;
  /** Interest not forwarded: outside the tenant's view. */
  interestKept(side: "site" | "hub", subject: string): void;
  dropped(kind: "subject" | "reply", subject: string): void;
  jetStreamRefused(api: string, code: number, reason: string, description: string): void;
  hubError(text: string): void;
  siteError(text: string): void;
  /** nats-server said it is entering lame duck mode. */
  hubLameDuck(): void;
}

export interface LeafRewriterOptions {
  slug: string;
  /** Largest payload the site may send (the tenant's limit, capped by the hub's). */
  maxPayload: number;
  /** The hub's `max_payload`: beyond it a frame is a protocol violation either way. */
  hubMaxPayload: number;
  /** The JetStream domain the site names the hub by (`$JS.<domain>.API`); undefined: no JetStream across the leaf. */
  jetStreamDomain: string | undefined;
  stores?: TenantStores;
  events: LeafRewriterEvents;
  clock?: () => number;
}

/** What a PONG from the hub answers: the site's PING, or the gateway's own interest barrier. */
type PingOwner = { site: true } | { site: false; interest: number };

interface HeldRequest {
  /** The interest count this request waits for nats-server to confirm. */
  interest: number;
  frame: Buffer;
}

export class LeafRewriter {
  readonly slug: string;
  readonly counters: LeafCounters = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0, dropped: 0, refused: 0, interestToHub: 0, interestToSite: 0, interestKept: 0, jetStream: 0 };
  private readonly toHub = new OutputBuffer(256);
  private readonly toSite = new OutputBuffer(256);
  private readonly toJetStream = new OutputBuffer(256);
  private readonly siteParser: LeafProtocolParser;
  private readonly hubParser: LeafProtocolParser;
  private readonly events: LeafRewriterEvents;
  private readonly opts: LeafRewriterOptions;
  private readonly prefix: Buffer;
  private readonly prefixText: string;
  private readonly mapper: SubjectMapper;
  private readonly stores: TenantStores;
  /** `$JS.<domain>.API.`, as the site names the hub's JetStream API. */
  private readonly domainApi: Buffer | undefined;
  private readonly subject = new SubjectBytes();
  private readonly reply = new SubjectBytes();
  private readonly pendingJs: PendingReplies;
  private readonly foreignReplies = new Set<string>();
  private readonly pings: PingOwner[] = [];
  private interestSent = 0;
  private interestConfirmed = 0;
  private barrierSent = 0;
  private readonly held: HeldRequest[] = [];
  private heldBytes = 0;
  private endedWith: SessionEnd | undefined;
  private readonly fault = sessionFaultMarker();

  constructor(opts: LeafRewriterOptions) {
    this.opts = opts;
    this.slug = opts.slug;
    this.events = opts.events;
    this.prefixText = `${opts.slug}.`;
    this.prefix = prefixBytes(this.prefixText);
    this.mapper = tenantSubjectMapper(opts.slug);
    this.stores = opts.stores ?? TenantStores.NONE;
    this.domainApi = opts.jetStreamDomain === undefined ? undefined : Buffer.from(`$JS.${opts.jetStreamDomain}.API.`, "latin1");
    this.pendingJs = new PendingReplies(opts.clock);
    this.siteParser = new LeafProtocolParser({ onFrame: (f) => this.fromSite(f), onError: (e) => this.protocolError("site", e) }, { maxPayload: opts.hubMaxPayload });
    this.hubParser = new LeafProtocolParser({ onFrame: (f) => this.fromHub(f), onError: (e) => this.protocolError("hub", e) }, { maxPayload: opts.hubMaxPayload });
  }

  get ended(): SessionEnd | undefined {
    return this.endedWith;
  }

  /**
   * The interest the site gets when its session starts, after the gateway's INFO. Replies to the
   * platform's requests (`_R_.>`): nats-server subscribes each one in the tenant's account but
   * tells a leaf only of those its user may publish (server/leafnode.go updateLeafNodes), and a
   * user's one-time permission to answer (`resp`) is not such a permission; the gateway passes on
   * only the replies it delivered, once. The hub's JetStream API, by its domain.
   */
  start(): void {
    writeInterest(this.toSite, true, SubjectBytes.of("_R_.>"), null);
    this.counters.interestToSite++;
    if (!this.domainApi) return;
    writeInterest(this.toSite, true, SubjectBytes.of(`${this.domainApi.toString("latin1")}>`), null);
    this.counters.interestToSite++;
  }

  /** Bytes the site sent; then take what is due to each side. */
  siteData(chunk: Buffer): void {
    if (this.endedWith) return;
    if (this.fault && chunk.includes(this.fault)) throw new Error("fault injected by TENANT_GATEWAY_FAULT");
    this.toHub.reserve(chunk.length + (chunk.length >> 1) + 64);
    this.siteParser.parse(chunk);
  }

  /** Bytes nats-server sent on the leaf connection. */
  hubData(chunk: Buffer): void {
    if (this.endedWith) return;
    this.toSite.reserve(chunk.length + 64);
    this.hubParser.parse(chunk);
  }

  takeForHub(): Buffer | undefined {
    return this.toHub.length > 0 ? this.toHub.take() : undefined;
  }

  takeForSite(): Buffer | undefined {
    return this.toSite.length > 0 ? this.toSite.take() : undefined;
  }

  /** Client-protocol frames for the session's JetStream connection. */
  takeForJetStream(): Buffer | undefined {
    return this.toJetStream.length > 0 ? this.toJetStream.take() : undefined;
  }

  /** JetStream API replies still expected, and requests waiting for their interest to be confirmed. */
  get pending(): { replies: number; heldRequests: number } {
    return { replies: this.pendingJs.size, heldRequests: this.held.length };
  }

  private end(end: SessionEnd): void {
    if (this.endedWith) return;
    this.endedWith = end;
    this.events.ended(end);
  }

  private protocolError(side: "site" | "hub", err: LeafProtocolError): void {
    this.end({ event: side === "site" ? "leaf_protocol_error" : "nats_protocol_error", code: err.code, reason: `${side} protocol error: ${err.code}: ${err.message}`, ...(side === "site" ? { errText: err.wireText } : {}) });
  }

  /** Refuses one message of the site as nats-server refuses a client's: -ERR, the frame goes nowhere, the session goes on. */
  private refuse(verdict: SubjectVerdict, subject: string, event = "publish_refused"): void {
    const errText = refusalText(verdict, "Publish", subject);
    this.counters.refused++;
    this.toSite.err(errText);
    this.events.refused({ event, code: REFUSAL_CODES[verdict] ?? "subject_refused", reason: errText, subject });
  }

  // ---- site → hub ----------------------------------------------------------------------------

  private fromSite(f: LeafFrame): void {
    if (this.endedWith) return;
    switch (f.verb) {
      case LeafVerb.Interest:
      case LeafVerb.InterestGone:
        return this.siteInterest(f);
      case LeafVerb.Lmsg:
      case LeafVerb.Hmsg:
        return this.siteMessage(f);
      case LeafVerb.Ping:
        if (this.pings.length >= MAX_PINGS_IN_FLIGHT) return this.toSite.pong();
        this.pings.push({ site: true });
        return this.toHub.ping();
      case LeafVerb.Pong:
        return this.toHub.pong();
      case LeafVerb.Err:
        return this.events.siteError(frameString(f.buf, f.errorStart, f.errorEnd));
      default:
        // INFO updates (its cluster's URLs), a repeated CONNECT, +OK: nothing for the hub.
        return;
    }
  }

  private siteInterest(f: LeafFrame): void {
    const buf = f.buf;
    const plus = f.verb === LeafVerb.Interest;
    if (f.queueStart >= 0 && checkQueueName(buf, f.queueStart, f.queueEnd) < 0) return this.keep("site", f);
    let subject: SubjectBytes;
    if (hasPrefix(buf, f.subjectStart, f.subjectEnd, LOOP_DETECTION) && checkTokens(buf, f.subjectStart, f.subjectEnd) === SubjectVerdict.Tenant) {
      subject = this.subject.set(buf, f.subjectStart, f.subjectEnd);
    } else {
      const verdict = checkSubscribeSubject(buf, f.subjectStart, f.subjectEnd);
      if (verdict < 0) return this.keep("site", f);
      subject = this.subject.set(buf, f.subjectStart, f.subjectEnd, this.prefix);
    }
    // Queue group and weight pass as the site sent them (the parser checked the weight).
    this.toHub.rewritten(plus ? LEAF_WIRE.INTEREST : LEAF_WIRE.INTEREST_GONE, subject, null, EMPTY, 0, 0, buf, f.subjectEnd, f.end);
    this.interestSent++;
    this.counters.interestToHub++;
  }

  private keep(side: "site" | "hub", f: LeafFrame): void {
    this.counters.interestKept++;
    this.events.interestKept(side, frameString(f.buf, f.subjectStart, f.subjectEnd));
  }

  private siteMessage(f: LeafFrame): void {
    const buf = f.buf;
    const subjectText = (): string => frameString(buf, f.subjectStart, f.subjectEnd);
    if (f.payloadEnd - f.payloadStart > this.opts.maxPayload) {
      this.counters.refused++;
      this.toSite.err("Maximum Payload Violation");
      this.events.refused({ event: "publish_refused", code: "max_payload_exceeded", reason: `a payload of ${f.payloadEnd - f.payloadStart} bytes exceeds the tenant's max_payload ${this.opts.maxPayload}`, subject: subjectText() });
      return;
    }
    if (this.domainApi && hasPrefix(buf, f.subjectStart, f.subjectEnd, this.domainApi)) return this.jetStreamRequest(f);
    const verdict = checkPublishSubject(buf, f.subjectStart, f.subjectEnd);
    if (verdict < 0) return this.refuse(verdict, subjectText());
    let reply: SubjectBytes | null = null;
    if (f.replyStart >= 0) {
      const rv = checkReplySubject(buf, f.replyStart, f.replyEnd);
      if (rv < 0) return this.refuse(rv, frameString(buf, f.replyStart, f.replyEnd), "reply_refused");
      reply = this.reply.set(buf, f.replyStart, f.replyEnd, this.prefix);
    }
    // nats-server splits arguments on CR and LF too: one inside a queue name would re-frame the line.
    if (f.queueStart >= 0 && !onlyBlanksBetween(buf, f.queueStart, f.queueEnd)) return this.refuse(SubjectVerdict.ControlCharacter, subjectText());
    switch (verdict) {
      case SubjectVerdict.JetStreamReply:
        // Consumer acks and flow-control replies: the hub takes them from clients, not from leaves.
        return this.toJetStreamConnection(f, SubjectBytes.of(subjectText()), reply, f.headerSize >= 0 ? buf.subarray(f.payloadStart, f.payloadStart + f.headerSize) : undefined, buf.subarray(f.payloadStart + Math.max(f.headerSize, 0), f.payloadEnd));
      case SubjectVerdict.Tenant:
        break;
      default:
        // `$JS.API.…` (the site must name the hub's domain), `$KV.…`, `$O.…`: nats-server denies
        // them on leafnode connections and would cut the whole site for one.
        return this.refuse(SubjectVerdict.Reserved, subjectText());
    }
    // A JetStream API reply the gateway waits for comes from JetStream, never from the site.
    if (this.pendingJs.size > 0 && this.pendingJs.has(this.prefixText + subjectText())) return this.refuse(SubjectVerdict.Reserved, subjectText());
    const foreign = this.foreignReplies.size > 0 && hasPrefix(buf, f.subjectStart, f.subjectEnd, SERVICE_IMPORT_REPLY) && this.foreignReplies.delete(subjectText());
    this.counters.msgsIn++;
    this.counters.bytesIn += f.payloadEnd - f.payloadStart;
    const subject = this.subject.set(buf, f.subjectStart, f.subjectEnd, foreign ? NO_PREFIX : this.prefix);
    // Reply marker, queue groups, sizes, payload and line ends pass as the site sent them.
    this.toHub.rewritten(f.verb === LeafVerb.Lmsg ? LEAF_WIRE.LMSG : LEAF_WIRE.HMSG, subject, reply, buf, f.subjectEnd, f.replyStart, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
  }

  /** `$JS.<domain>.API.<rest>`: the edge client's `$JS.API.<rest>`, translated, on the JetStream connection. */
  private jetStreamRequest(f: LeafFrame): void {
    const buf = f.buf;
    const domainApi = this.domainApi!;
    const apiSubject = JETSTREAM_API + frameString(buf, f.subjectStart + domainApi.length, f.subjectEnd);
    const tokens = checkTokens(buf, f.subjectStart, f.subjectEnd);
    if (tokens === SubjectVerdict.ControlCharacter || tokens === SubjectVerdict.EmptyToken) return this.refuse(tokens, frameString(buf, f.subjectStart, f.subjectEnd));
    let reply: SubjectBytes | null = null;
    let replyEdge: SubjectBytes | null = null;
    if (f.replyStart >= 0) {
      const rv = checkReplySubject(buf, f.replyStart, f.replyEnd);
      if (rv < 0) return this.refuse(rv, frameString(buf, f.replyStart, f.replyEnd), "reply_refused");
      reply = SubjectBytes.of(frameString(buf, f.replyStart, f.replyEnd), this.prefixText);
      replyEdge = SubjectBytes.of(frameString(buf, f.replyStart, f.replyEnd));
    }
    const headers = f.headerSize >= 0 ? buf.subarray(f.payloadStart, f.payloadStart + f.headerSize) : undefined;
    const body = buf.subarray(f.payloadStart + (headers?.length ?? 0), f.payloadEnd);
    // Key-value writes through the domain (`$JS.<domain>.API.$KV.<bucket>.<key>`, the clients' own
    // mapping): into buckets the templates let edge clients write.
    if (apiSubject.startsWith(JETSTREAM_API + KV_PREFIX)) {
      const kv = SubjectBytes.of(apiSubject.slice(JETSTREAM_API.length));
      if (checkTokens(kv.src, 0, kv.end) !== SubjectVerdict.Tenant || !this.stores.edgeWritable("kv", storeNameOf(kv.src as Buffer, 0, kv.end, "kv"))) return this.refuse(SubjectVerdict.Reserved, frameString(buf, f.subjectStart, f.subjectEnd));
      return this.toJetStreamConnection(f, kv, reply, headers, body);
    }
    const op = classifyJetStreamRequest(apiSubject, this.stores);
    const translated = translateRequest(op, apiSubject, body.length > 0 ? body : undefined, this.mapper, this.stores);
    if (translated.kind === "refuse") {
      const r = translated.refusal;
      this.events.jetStreamRefused(apiSubject, r.code, r.reason, r.description);
      if (!replyEdge) return;
      // The error goes straight back to the site's own reply subscription.
      const payload = r.reply.headers ? Buffer.concat([r.reply.headers, r.reply.body]) : r.reply.body;
      writeLeafMessage(this.toSite, replyEdge, null, null, r.reply.headers ? r.reply.headers.length : -1, payload);
      return;
    }
    if (reply && op.decision.kind === "allow" && op.decision.response !== "untouched") this.pendingJs.track(this.prefixText + frameString(buf, f.replyStart, f.replyEnd), op);
    this.toJetStreamConnection(f, SubjectBytes.of(translated.subject), reply, headers, translated.body ?? EMPTY);
  }

  /**
   * A client-protocol PUB/HPUB for the JetStream connection: now, or once nats-server has confirmed
   * every interest the site sent before it (requests keep their order either way).
   */
  private toJetStreamConnection(f: LeafFrame, subject: SubjectBytes, reply: SubjectBytes | null, headers: Buffer | undefined, body: Buffer): void {
    this.counters.msgsIn++;
    this.counters.bytesIn += f.payloadEnd - f.payloadStart;
    this.counters.jetStream++;
    const confirmed = this.held.length === 0 && this.interestConfirmed >= this.interestSent;
    const out = confirmed ? this.toJetStream : new OutputBuffer(256);
    if (headers) {
      const payload = Buffer.concat([headers, body]);
      out.hpub(subject, reply, headers.length, payload);
    } else out.pub(subject, reply, body);
    if (confirmed) return;
    const frame = out.take();
    if (this.held.length >= MAX_HELD_REQUESTS || this.heldBytes + frame.length > MAX_HELD_BYTES) {
      this.counters.refused++;
      this.events.jetStreamRefused(frameString(f.buf, f.subjectStart, f.subjectEnd), 503, "jetstream_requests_backlogged", "too many JetStream requests wait for the hub");
      if (f.replyStart >= 0) {
        const payload = jetStreamErrorResponse(503, "too many JetStream requests waiting for the hub", 10008);
        writeLeafMessage(this.toSite, SubjectBytes.of(frameString(f.buf, f.replyStart, f.replyEnd)), null, null, -1, payload);
      }
      return;
    }
    this.held.push({ interest: this.interestSent, frame });
    this.heldBytes += frame.length;
    if (this.barrierSent < this.interestSent) {
      this.barrierSent = this.interestSent;
      this.pings.push({ site: false, interest: this.interestSent });
      this.toHub.ping();
    }
  }

  /** nats-server confirmed the interest sent before a barrier PING: release what waited for it. */
  private confirmed(interest: number): void {
    if (interest > this.interestConfirmed) this.interestConfirmed = interest;
    while (this.held.length > 0 && this.held[0]!.interest <= this.interestConfirmed) {
      const next = this.held.shift()!;
      this.heldBytes -= next.frame.length;
      this.toJetStream.bytes(next.frame);
    }
    const waiting = this.held[0];
    if (waiting && this.barrierSent < waiting.interest) {
      this.barrierSent = waiting.interest;
      this.pings.push({ site: false, interest: waiting.interest });
      this.toHub.ping();
    }
  }

  // ---- hub → site ----------------------------------------------------------------------------

  private fromHub(f: LeafFrame): void {
    if (this.endedWith) return;
    switch (f.verb) {
      case LeafVerb.Interest:
      case LeafVerb.InterestGone:
        return this.hubInterest(f);
      case LeafVerb.Lmsg:
      case LeafVerb.Hmsg:
        return this.hubMessage(f);
      case LeafVerb.Ping:
        return this.toSite.ping();
      case LeafVerb.Pong: {
        const owner = this.pings.shift();
        if (owner && !owner.site) return this.confirmed(owner.interest);
        return this.toSite.pong();
      }
      case LeafVerb.Err: {
        const text = frameString(f.buf, f.errorStart, f.errorEnd);
        this.events.hubError(text);
        // NATS names subjects in the tenant's namespace; the site knows them without the prefix.
        this.toSite.err(text.split(`"${this.prefixText}`).join('"'));
        return;
      }
      case LeafVerb.Info: {
        let ldm = false;
        try {
          ldm = (JSON.parse(frameString(f.buf, f.jsonStart, f.jsonEnd)) as { ldm?: boolean }).ldm === true;
        } catch {
          // An INFO we cannot read changes nothing for the site.
        }
        // The hub's URLs and permissions are never passed on: the site must keep coming here.
        if (ldm) this.events.hubLameDuck();
        return;
      }
      default:
        return;
    }
  }

  private hubInterest(f: LeafFrame): void {
    const buf = f.buf;
    const plus = f.verb === LeafVerb.Interest;
    let subject: SubjectBytes;
    if (this.ownsPrefixed(buf, f.subjectStart, f.subjectEnd)) subject = this.subject.set(buf, f.subjectStart + this.prefix.length, f.subjectEnd);
    else if (hasPrefix(buf, f.subjectStart, f.subjectEnd, LOOP_DETECTION) || isJetStreamReplySubject(buf, f.subjectStart, f.subjectEnd) || hasPrefix(buf, f.subjectStart, f.subjectEnd, SERVICE_IMPORT_REPLY)) {
      subject = this.subject.set(buf, f.subjectStart, f.subjectEnd);
    } else return this.keep("hub", f);
    this.toSite.rewritten(plus ? LEAF_WIRE.INTEREST : LEAF_WIRE.INTEREST_GONE, subject, null, EMPTY, 0, 0, buf, f.subjectEnd, f.end);
    this.counters.interestToSite++;
  }

  private hubMessage(f: LeafFrame): void {
    const buf = f.buf;
    if (!this.ownsPrefixed(buf, f.subjectStart, f.subjectEnd)) {
      this.counters.dropped++;
      this.events.dropped("subject", frameString(buf, f.subjectStart, f.subjectEnd));
      return;
    }
    const subject = this.subject.set(buf, f.subjectStart + this.prefix.length, f.subjectEnd);
    let reply: SubjectBytes | null = null;
    if (f.replyStart >= 0) {
      if (this.ownsPrefixed(buf, f.replyStart, f.replyEnd)) reply = this.reply.set(buf, f.replyStart + this.prefix.length, f.replyEnd);
      else if (isJetStreamReplySubject(buf, f.replyStart, f.replyEnd)) {
        const stored = buf.lastIndexOf(AT, f.replyEnd - 1);
        if (stored > f.replyStart && stored < f.replyEnd - 1) {
          // A JetStream delivery to another server carries the message's own subject after `@`
          // (server/client.go processMsgResults): the site shows it to its client, so it is
          // translated like any subject the tenant owns, or the message goes nowhere.
          const ack = buf.subarray(f.replyStart, stored + 1);
          if (this.ownsPrefixed(buf, stored + 1, f.replyEnd)) reply = this.reply.set(buf, stored + 1 + this.prefix.length, f.replyEnd, ack);
          else if (isAccountScopedSubject(buf, stored + 1, f.replyEnd)) reply = this.reply.set(buf, stored + 1, f.replyEnd, ack);
          else {
            this.counters.dropped++;
            this.events.dropped("subject", frameString(buf, stored + 1, f.replyEnd));
            return;
          }
        } else reply = this.reply.set(buf, f.replyStart, f.replyEnd);
      } else if (hasPrefix(buf, f.replyStart, f.replyEnd, SERVICE_IMPORT_REPLY)) {
        // A request from the platform: NATS made up this reply subject; the site may answer it once.
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
    this.toSite.rewritten(f.verb === LeafVerb.Lmsg ? LEAF_WIRE.LMSG : LEAF_WIRE.HMSG, subject, reply, buf, f.subjectEnd, f.replyStart, buf, reply === null ? f.subjectEnd : f.replyEnd, f.end);
  }

  /** A reply to a JetStream API request: translated into the edge view. True when handled. */
  private jetStreamReply(f: LeafFrame, subject: SubjectBytes, reply: SubjectBytes | null): boolean {
    const op = this.pendingJs.take(frameString(f.buf, f.subjectStart, f.subjectEnd));
    if (!op) return false;
    const queues: QueueList | null = f.queueStart >= 0 ? { buf: f.buf, start: f.queueStart, end: f.queueEnd } : null;
    if (f.verb === LeafVerb.Lmsg) {
      const body = translateResponse(op, f.buf.subarray(f.payloadStart, f.payloadEnd), undefined, this.mapper);
      writeLeafMessage(this.toSite, subject, reply, queues, -1, body);
    } else {
      let headers = f.buf.subarray(f.payloadStart, f.payloadStart + f.headerSize);
      if (op.verb === "DIRECT.GET") headers = translateDirectGetHeaders(headers, this.mapper);
      const body = translateResponse(op, f.buf.subarray(f.payloadStart + f.headerSize, f.payloadEnd), headers, this.mapper);
      const payload = Buffer.concat([headers, body]);
      writeLeafMessage(this.toSite, subject, reply, queues, headers.length, payload);
    }
    return true;
  }

  private rememberForeignReply(reply: string): void {
    if (this.foreignReplies.size >= MAX_FOREIGN_REPLIES) this.foreignReplies.delete(this.foreignReplies.values().next().value!);
    this.foreignReplies.add(reply);
  }

  /** `<slug>.<rest>` where rest is something the site can name under the prefix: no `$` but the service framework's. */
  private ownsPrefixed(buf: Buffer, start: number, end: number): boolean {
    return hasPrefix(buf, start, end, this.prefix) && (buf[start + this.prefix.length] !== DOLLAR || isServiceSubject(buf, start + this.prefix.length, end));
  }
}

/** A queue list is names separated by blanks: any other control character is refused. */
function onlyBlanksBetween(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if ((b < 0x20 && b !== 0x09) || b === 0x7f) return false;
  }
  return true;
}

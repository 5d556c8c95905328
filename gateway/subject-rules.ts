/**
 * What an edge client may name, checked on the bytes of the frame (no string is built on the
 * hot path), in the namespaces of common/namespaces.ts. Publish subjects are literal: no `*` or `>`
 * token, no empty token. `$` subjects: the JetStream API (translated), acks and flow control, and
 * key-value and object-store subjects pass unprefixed into the tenant's own account; the service
 * framework's `$SRV.` is a tenant subject like any other; every other `$` subject is refused.
 * Subscriptions may use wildcards; of the `$` namespaces only `$SRV.`. No subject, reply or queue
 * group may hold a control character: the client parser keeps a stray CR or form feed inside an
 * argument, but nats-server splits arguments on them, so `PUB a\rb 1` would reach NATS as subject
 * `<slug>.a` with the unprefixed reply `b`.
 */
import { JETSTREAM_ACK, JETSTREAM_API, JETSTREAM_FLOW_CONTROL, KV_PREFIX, OBJECT_PREFIX, SERVICE_PREFIX } from "../common/namespaces.ts";

/** Non-negative: accepted, and how. Negative: refused, and why. */
export const SubjectVerdict = {
  Tenant: 0,
  JetStreamApi: 1,
  JetStreamReply: 2,
  /** `$KV.<bucket>.…`: passes unprefixed when the bucket's template lets edge clients write it. */
  KvWrite: 3,
  /** `$O.<store>.…`: likewise for object stores. */
  ObjectWrite: 4,
  Wildcard: -1,
  EmptyToken: -2,
  Reserved: -3,
  /** A control character (CR, LF, form feed, NUL, …) or DEL inside the subject. */
  ControlCharacter: -4,
} as const;
export type SubjectVerdict = (typeof SubjectVerdict)[keyof typeof SubjectVerdict];

const DOT = 0x2e;
const STAR = 0x2a;
const GT = 0x3e;
const DOLLAR = 0x24;
const SPACE = 0x20;
const DEL = 0x7f;

function startsWithAscii(buf: Uint8Array, start: number, end: number, text: Uint8Array): boolean {
  if (end - start < text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text[i]) return false;
  return true;
}

const JS_API = Buffer.from(JETSTREAM_API, "latin1");
const JS_ACK = Buffer.from(JETSTREAM_ACK, "latin1");
const JS_FC = Buffer.from(JETSTREAM_FLOW_CONTROL, "latin1");
const KV = Buffer.from(KV_PREFIX, "latin1");
const OBJ = Buffer.from(OBJECT_PREFIX, "latin1");
const SRV = Buffer.from(SERVICE_PREFIX, "latin1");

const TOKENS_OK = 0;
const TOKENS_WILDCARD = 1;
const TOKENS_EMPTY = 2;
const TOKENS_CONTROL = 3;

/**
 * TOKENS_CONTROL for a control character or DEL anywhere, TOKENS_EMPTY for an empty token
 * (leading, trailing or doubled dots), else whether any token is a wildcard.
 */
function scanTokens(buf: Uint8Array, start: number, end: number): number {
  let tokenStart = start;
  let result = TOKENS_OK;
  for (let i = start; i <= end; i++) {
    const b = buf[i]!;
    if (i === end || b === DOT) {
      const len = i - tokenStart;
      if (len === 0) result = TOKENS_EMPTY;
      else if (len === 1 && result === TOKENS_OK && (buf[tokenStart] === STAR || buf[tokenStart] === GT)) result = TOKENS_WILDCARD;
      tokenStart = i + 1;
    } else if (b <= SPACE || b === DEL) return TOKENS_CONTROL;
  }
  return result;
}

function verdictOf(tokens: number): SubjectVerdict {
  switch (tokens) {
    case TOKENS_CONTROL:
      return SubjectVerdict.ControlCharacter;
    case TOKENS_EMPTY:
      return SubjectVerdict.EmptyToken;
    case TOKENS_WILDCARD:
      return SubjectVerdict.Wildcard;
    default:
      return SubjectVerdict.Tenant;
  }
}

/**
 * The token checks alone, for subjects that are neither prefixed nor restricted here: Tenant (fine),
 * Wildcard, EmptyToken or ControlCharacter.
 */
export function checkTokens(buf: Uint8Array, start: number, end: number): SubjectVerdict {
  return verdictOf(scanTokens(buf, start, end));
}

/** A queue group name is passed as it is: it must be one argument to nats-server too. */
export function checkQueueName(buf: Uint8Array, start: number, end: number): SubjectVerdict {
  for (let i = start; i < end; i++) if (buf[i]! <= SPACE || buf[i] === DEL) return SubjectVerdict.ControlCharacter;
  return SubjectVerdict.Tenant;
}

export function checkPublishSubject(buf: Uint8Array, start: number, end: number): SubjectVerdict {
  if (buf[start] === DOLLAR) {
    // JetStream API subjects may carry wildcard filter tokens (consumer create); the API
    // translation validates them.
    if (startsWithAscii(buf, start, end, JS_API)) {
      const tokens = scanTokens(buf, start, end);
      return tokens === TOKENS_CONTROL || tokens === TOKENS_EMPTY ? verdictOf(tokens) : SubjectVerdict.JetStreamApi;
    }
    const v = verdictOf(scanTokens(buf, start, end));
    if (v !== SubjectVerdict.Tenant) return v;
    if (startsWithAscii(buf, start, end, JS_ACK) || startsWithAscii(buf, start, end, JS_FC)) return SubjectVerdict.JetStreamReply;
    if (startsWithAscii(buf, start, end, KV)) return SubjectVerdict.KvWrite;
    if (startsWithAscii(buf, start, end, OBJ)) return SubjectVerdict.ObjectWrite;
    if (startsWithAscii(buf, start, end, SRV)) return SubjectVerdict.Tenant;
    return SubjectVerdict.Reserved;
  }
  return verdictOf(scanTokens(buf, start, end));
}

/** A reply subject is written into the tenant namespace too: literal, no `$`. */
export function checkReplySubject(buf: Uint8Array, start: number, end: number): SubjectVerdict {
  if (buf[start] === DOLLAR) return SubjectVerdict.Reserved;
  return verdictOf(scanTokens(buf, start, end));
}

export function checkSubscribeSubject(buf: Uint8Array, start: number, end: number): SubjectVerdict {
  if (buf[start] === DOLLAR && !startsWithAscii(buf, start, end, SRV)) return SubjectVerdict.Reserved;
  const tokens = scanTokens(buf, start, end);
  return tokens === TOKENS_WILDCARD ? SubjectVerdict.Tenant : verdictOf(tokens);
}

/** The second token of a `$KV.<bucket>.…` / `$O.<store>.…` subject: the bucket or store name. */
export function storeNameOf(buf: Buffer, start: number, end: number, kind: "kv" | "object"): string {
  const from = start + (kind === "kv" ? KV.length : OBJ.length);
  const dot = buf.indexOf(DOT, from);
  return buf.toString("latin1", from, dot < 0 || dot > end ? end : dot);
}

/** Does buf[start, end) begin with `prefix` and have something after it? */
export function hasPrefix(buf: Uint8Array, start: number, end: number, prefix: Uint8Array): boolean {
  const n = prefix.length;
  if (end - start <= n) return false;
  for (let i = 0; i < n; i++) if (buf[start + i] !== prefix[i]) return false;
  return true;
}

/** Subjects NATS hands a tenant client from inside its own account, unprefixed: JetStream, key-value buckets, object stores. */
export function isAccountScopedSubject(buf: Uint8Array, start: number, end: number): boolean {
  return buf[start] === DOLLAR && (startsWithAscii(buf, start, end, JS_ACK) || startsWithAscii(buf, start, end, JS_FC) || startsWithAscii(buf, start, end, JS_API) || startsWithAscii(buf, start, end, KV) || startsWithAscii(buf, start, end, OBJ));
}

/** `$SRV.…`: the service framework's subjects, which live under the tenant prefix. */
export function isServiceSubject(buf: Uint8Array, start: number, end: number): boolean {
  return startsWithAscii(buf, start, end, SRV);
}

/** `$JS.ACK.…` or `$JS.FC.…`: reply subjects NATS hands a tenant client for JetStream messages. */
export function isJetStreamReplySubject(buf: Uint8Array, start: number, end: number): boolean {
  return buf[start] === DOLLAR && (startsWithAscii(buf, start, end, JS_ACK) || startsWithAscii(buf, start, end, JS_FC));
}

/** The `-ERR` text nats-server would use for each refusal. */
export function refusalText(verdict: SubjectVerdict, verb: "Publish" | "Subscription", subject: string): string {
  switch (verdict) {
    case SubjectVerdict.Wildcard:
      return "Invalid Publish Subject";
    case SubjectVerdict.EmptyToken:
    case SubjectVerdict.ControlCharacter:
      return verb === "Publish" ? "Invalid Publish Subject" : "Invalid Subject";
    default:
      return `Permissions Violation for ${verb} to "${subject}"`;
  }
}

/**
 * The JetStream API as edge clients may use it (architecture brief, sections 4 and 6).
 *
 * `$JS.API.…` requests pass unprefixed into the tenant's own account, so stream and consumer names
 * stay as they are; only the subjects the API carries — in its request subjects, request bodies,
 * response bodies and direct-get headers — are translated between the edge view and the tenant's
 * namespace. An operation the gateway does not know is refused, never passed through (the lesson of
 * Kroxylicious #3418), and so is any operation that is the operator's job. Refusals are values: a
 * ready-to-send JetStream error reply, never a timeout and never a thrown exception.
 *
 * A subject in a response that the tenant does not own never reaches the client: it is dropped from
 * arrays and subject-keyed maps, and a scalar field holding one is removed from its object (a header
 * line holding one is removed from the header block).
 *
 * Pure functions, no I/O. The wire layer calls them for `$JS.API.` requests and their replies only;
 * `$JS.ACK.` and `$JS.FC.` never come here.
 */
import { isJetStreamSubject, isStoreSubject, SERVICE_PREFIX, storeSubjectPrefix, TenantStores, type SubjectMapper } from "../common/namespaces.ts";

const API_PREFIX = "$JS.API.";

/** Every operation the gateway recognises; `UNKNOWN` is everything else (refused). */
export type JetStreamApiVerb =
  // allowed
  | "INFO"
  | "STREAM.INFO"
  | "STREAM.NAMES"
  | "STREAM.LIST"
  | "STREAM.MSG.GET"
  | "DIRECT.GET"
  | "CONSUMER.CREATE"
  | "CONSUMER.DURABLE.CREATE"
  | "CONSUMER.INFO"
  | "CONSUMER.NAMES"
  | "CONSUMER.LIST"
  | "CONSUMER.DELETE"
  | "CONSUMER.MSG.NEXT"
  // the operator's job
  | "STREAM.CREATE"
  | "STREAM.UPDATE"
  | "STREAM.DELETE"
  | "STREAM.PURGE"
  | "STREAM.MSG.DELETE"
  | "STREAM.SNAPSHOT"
  | "STREAM.RESTORE"
  | "STREAM.LEADER.STEPDOWN"
  | "STREAM.PEER.REMOVE"
  | "CONSUMER.LEADER.STEPDOWN"
  | "STREAM.TEMPLATE.CREATE"
  | "STREAM.TEMPLATE.NAMES"
  | "STREAM.TEMPLATE.INFO"
  | "STREAM.TEMPLATE.DELETE"
  | "META.LEADER.STEPDOWN"
  | "SERVER.REMOVE"
  | "ACCOUNT.PURGE"
  | "ACCOUNT.STREAM.MOVE"
  | "ACCOUNT.STREAM.CANCEL_MOVE"
  // anything else under the system-level namespaces
  | "STREAM.TEMPLATE.*"
  | "META.*"
  | "SERVER.*"
  | "ACCOUNT.*"
  | "UNKNOWN";

/** Which subject-bearing fields of the request body get mapped into the tenant's namespace. */
export type RequestBodyPlan =
  | "untouched" // no subject in the body: forwarded byte for byte, never parsed
  | "consumer-config" // config.filter_subject, config.filter_subjects, config.deliver_subject
  | "message-query" // last_by_subj, next_by_subj, multi_last (STREAM.MSG.GET and DIRECT.GET)
  | "stream-info-query" // subjects_filter
  | "stream-subject-filter" // subject (STREAM.NAMES, STREAM.LIST)
  | "store-purge"; // filter, inside the bucket's or store's own subjects (STREAM.PURGE of KV_/OBJ_ streams)

/** Which subject-bearing fields of the response body get mapped back to the edge view. */
export type ResponseBodyPlan =
  | "untouched" // no subject in the body (names, account info, deletes, pulled and direct-get payloads)
  | "stream-info"
  | "stream-list"
  | "consumer-info"
  | "consumer-list"
  | "stored-message";

export type JetStreamRefusalReason =
  | "jetstream_api_forbidden"
  | "jetstream_stream_not_readable"
  | "jetstream_api_unavailable"
  | "jetstream_api_unknown"
  | "jetstream_api_malformed"
  | "jetstream_api_invalid_json"
  | "jetstream_api_subject_refused";

export type JetStreamErrorCode = 400 | 403 | 404 | 503;

export interface JetStreamApiRefusal {
  readonly reason: JetStreamRefusalReason;
  readonly code: JetStreamErrorCode;
  /** nats-server's `err_code` (clients report it; the C client says `jserr 0` without one). */
  readonly errCode: number;
  readonly description: string;
  /**
   * What to send on the request's reply subject. JSON APIs get a JSON error body and no headers;
   * direct get and pull requests answer with a status-only header block and an empty body, as the
   * server does for them.
   */
  readonly reply: { readonly headers: Buffer | undefined; readonly body: Buffer };
}

export type JetStreamApiDecision =
  | { readonly kind: "allow"; readonly request: RequestBodyPlan; readonly response: ResponseBodyPlan }
  | { readonly kind: "refuse"; readonly refusal: JetStreamApiRefusal };

export interface JetStreamApiOperation {
  /** The subject this operation was classified from. */
  readonly apiSubject: string;
  readonly verb: JetStreamApiVerb;
  readonly stream: string | undefined;
  readonly consumer: string | undefined;
  /** Edge-view subject carried at the end of the API subject: a consumer-create filter, a direct-get subject. */
  readonly subject: string | undefined;
  readonly decision: JetStreamApiDecision;
}

export type JetStreamRequestTranslation =
  | { readonly kind: "forward"; readonly subject: string; readonly body: Buffer | undefined }
  | { readonly kind: "refuse"; readonly refusal: JetStreamApiRefusal };

// ---------------------------------------------------------------------------------------------
// Error replies

const RESPONSE_TYPE_PREFIX = "io.nats.jetstream.api.v1.";

/** The `type` nats-server 2.9 puts on each API's response, errors included. */
const RESPONSE_TYPES: Partial<Record<JetStreamApiVerb, string>> = {
  INFO: "account_info_response",
  "STREAM.INFO": "stream_info_response",
  "STREAM.NAMES": "stream_names_response",
  "STREAM.LIST": "stream_list_response",
  "STREAM.MSG.GET": "stream_msg_get_response",
  "CONSUMER.CREATE": "consumer_create_response",
  "CONSUMER.DURABLE.CREATE": "consumer_create_response",
  "CONSUMER.INFO": "consumer_info_response",
  "CONSUMER.NAMES": "consumer_names_response",
  "CONSUMER.LIST": "consumer_list_response",
  "CONSUMER.DELETE": "consumer_delete_response",
  "STREAM.CREATE": "stream_create_response",
  "STREAM.UPDATE": "stream_update_response",
  "STREAM.DELETE": "stream_delete_response",
  "STREAM.PURGE": "stream_purge_response",
  "STREAM.MSG.DELETE": "stream_msg_delete_response",
  "STREAM.SNAPSHOT": "stream_snapshot_response",
  "STREAM.RESTORE": "stream_restore_response",
  "STREAM.LEADER.STEPDOWN": "stream_leader_stepdown_response",
  "STREAM.PEER.REMOVE": "stream_remove_peer_response",
  "CONSUMER.LEADER.STEPDOWN": "consumer_leader_stepdown_response",
  "STREAM.TEMPLATE.CREATE": "stream_template_create_response",
  "STREAM.TEMPLATE.NAMES": "stream_template_names_response",
  "STREAM.TEMPLATE.INFO": "stream_template_info_response",
  "STREAM.TEMPLATE.DELETE": "stream_template_delete_response",
  "META.LEADER.STEPDOWN": "meta_leader_stepdown_response",
  "SERVER.REMOVE": "meta_server_remove_response",
  "ACCOUNT.PURGE": "account_purge_response",
  "ACCOUNT.STREAM.MOVE": "stream_update_response",
  "ACCOUNT.STREAM.CANCEL_MOVE": "stream_update_response",
};

/**
 * The server never answers a subject it has no handler for, so it has no type for one; this is the
 * gateway's own. Clients only look at `error`.
 */
const GENERIC_ERROR_TYPE = "error_response";

/** Operations whose replies are messages with a status header, not JSON. */
const STATUS_REPLY_VERBS: ReadonlySet<JetStreamApiVerb> = new Set(["DIRECT.GET", "CONSUMER.MSG.NEXT"]);

/** nats-server 2.9 error codes (server/errors.json) the gateway answers with. */
export const JS_ERR = { BAD_REQUEST: 10003, INVALID_JSON: 10025, DELIVER_TO_WILDCARDS: 10079, NOT_ENABLED_FOR_ACCOUNT: 10039, STREAM_NOT_FOUND: 10059 } as const;
const ERR_BAD_REQUEST = JS_ERR.BAD_REQUEST;
const ERR_INVALID_JSON = JS_ERR.INVALID_JSON;
const ERR_DELIVER_TO_WILDCARDS = JS_ERR.DELIVER_TO_WILDCARDS;
const ERR_NOT_ENABLED_FOR_ACCOUNT = JS_ERR.NOT_ENABLED_FOR_ACCOUNT;

/**
 * The JSON of a JetStream API error reply as nats-server 2.9 sends it:
 * `{"type":"io.nats.jetstream.api.v1.<api>_response","error":{"code":403,"err_code":10003,"description":"…"}}`.
 * `verb` picks the `type`.
 */
export function jetStreamErrorResponse(code: JetStreamErrorCode, description: string, errCode: number, verb?: JetStreamApiVerb): Buffer {
  const type = RESPONSE_TYPE_PREFIX + ((verb === undefined ? undefined : RESPONSE_TYPES[verb]) ?? GENERIC_ERROR_TYPE);
  const error = { code, err_code: errCode, description };
  return Buffer.from(JSON.stringify({ type, error }));
}

/** `NATS/1.0 404 Message Not Found\r\n\r\n`-style status block, the error form of direct get and pull requests. */
function statusHeaders(code: JetStreamErrorCode, description: string): Buffer {
  return Buffer.from(`NATS/1.0 ${code} ${description.replace(/[\r\n]+/g, " ")}\r\n\r\n`);
}

const EMPTY = Buffer.alloc(0);

/** A refusal as the server would send it for `verb`: a JSON error, or a status reply for direct get and pulls. */
export function refusal(
  verb: JetStreamApiVerb,
  reason: JetStreamRefusalReason,
  code: JetStreamErrorCode,
  description: string,
  errCode: number,
): JetStreamApiRefusal {
  const reply = STATUS_REPLY_VERBS.has(verb)
    ? { headers: statusHeaders(code, description), body: EMPTY }
    : { headers: undefined, body: jetStreamErrorResponse(code, description, errCode, verb) };
  return { reason, code, errCode, description, reply };
}

/**
 * The answer to a request for an account's own JetStream that the session may not use (a platform
 * session asking the PLATFORM account's `$JS.API`): what nats-server says for an account without
 * JetStream, so stock clients report it as such instead of losing their connection.
 */
export function jetStreamUnavailable(subject: string, hint: string): JetStreamApiRefusal {
  const verb = parseApiSubject(subject).verb;
  return refusal(verb, "jetstream_api_unavailable", 503, `JetStream not enabled for account (${hint})`, ERR_NOT_ENABLED_FOR_ACCOUNT);
}

// ---------------------------------------------------------------------------------------------
// Classification

const MAX_NAME_LENGTH = 255; // JSMaxNameLen

/** Space, tab, CR, LF and the other control characters: never inside a subject or a name. */
function hasControlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

interface Parsed {
  readonly verb: JetStreamApiVerb;
  readonly stream?: string | undefined;
  readonly consumer?: string | undefined;
  readonly subject?: string | undefined;
  readonly request?: RequestBodyPlan;
  readonly response?: ResponseBodyPlan;
  /** Set for operations that are the operator's job. */
  readonly forbidden?: string;
  /** Set when the subject's arguments do not fit the verb. */
  readonly malformed?: string;
  /** Set when the subject carried at the end of the API subject may not be used. */
  readonly subjectRefused?: string;
}

const OPERATOR_JOB = "streams are provisioned and run by the operator";
const SYSTEM_JOB = "it is a system-account operation";

/**
 * Classify a `$JS.API.` request subject: which operation, on which stream and consumer, and whether
 * an edge client may use it. Never throws; anything unrecognised is refused with 400.
 */
export function classifyJetStreamRequest(subject: string, stores: TenantStores = TenantStores.NONE): JetStreamApiOperation {
  const parsed = storeAccess(parseApiSubject(subject), stores);
  const base = { apiSubject: subject, verb: parsed.verb, stream: parsed.stream, consumer: parsed.consumer, subject: parsed.subject };
  const refuse = (reason: JetStreamRefusalReason, code: JetStreamErrorCode, description: string, errCode: number) => ({
    ...base,
    decision: { kind: "refuse", refusal: refusal(parsed.verb, reason, code, description, errCode) } as const,
  });

  if (parsed.verb === "UNKNOWN") {
    if (parsed.malformed !== undefined) return refuse("jetstream_api_malformed", 400, parsed.malformed, ERR_BAD_REQUEST);
    return refuse("jetstream_api_unknown", 400, `unknown JetStream API request ${quote(subject)}: the gateway refuses operations it does not know`, ERR_BAD_REQUEST);
  }
  if (parsed.forbidden !== undefined) {
    return refuse("jetstream_api_forbidden", 403, `${parsed.verb} is not permitted for edge clients: ${parsed.forbidden}`, ERR_BAD_REQUEST);
  }
  if (parsed.malformed !== undefined) {
    return refuse("jetstream_api_malformed", 400, `malformed ${parsed.verb} request: ${parsed.malformed}`, ERR_BAD_REQUEST);
  }
  if (parsed.subjectRefused !== undefined) {
    return refuse("jetstream_api_subject_refused", 400, `${parsed.verb} refused: ${parsed.subjectRefused}`, ERR_BAD_REQUEST);
  }
  return { ...base, decision: { kind: "allow", request: parsed.request ?? "untouched", response: parsed.response ?? "untouched" } };
}

function parseApiSubject(subject: string): Parsed {
  if (!subject.startsWith(API_PREFIX)) {
    return { verb: "UNKNOWN", malformed: `${quote(subject)} is not a JetStream API subject` };
  }
  if (hasControlOrSpace(subject)) {
    return { verb: "UNKNOWN", malformed: `JetStream API subject ${quote(subject)} contains whitespace or control characters` };
  }
  const t = subject.slice(API_PREFIX.length).split(".");
  if (t.includes("")) {
    return { verb: "UNKNOWN", malformed: `JetStream API subject ${quote(subject)} has an empty token` };
  }
  const [a, b, c] = t;
  switch (a) {
    case "INFO":
      return t.length === 1 ? { verb: "INFO" } : { verb: "UNKNOWN" };
    case "STREAM":
      return parseStreamApi(t, b, c);
    case "CONSUMER":
      return parseConsumerApi(t, b, c);
    case "DIRECT":
      return b === "GET" ? directGet(t.slice(2)) : { verb: "UNKNOWN" };
    case "META":
      return { verb: b === "LEADER" && c === "STEPDOWN" && t.length === 3 ? "META.LEADER.STEPDOWN" : "META.*", forbidden: SYSTEM_JOB };
    case "SERVER":
      return { verb: b === "REMOVE" && t.length === 2 ? "SERVER.REMOVE" : "SERVER.*", forbidden: SYSTEM_JOB };
    case "ACCOUNT":
      return { verb: accountVerb(t), forbidden: SYSTEM_JOB };
    default:
      return { verb: "UNKNOWN" };
  }
}

/** A purge of a bucket's or store's stream is the edge client's own when its template lets edge clients write it. */
function storeAccess(parsed: Parsed, stores: TenantStores): Parsed {
  if (parsed.verb !== "STREAM.PURGE" || parsed.malformed !== undefined || parsed.stream === undefined) return parsed;
  const store = stores.byStream(parsed.stream);
  if (store === undefined || store.edge !== "read-write") return parsed;
  const { forbidden: _operatorsJob, ...allowed } = parsed;
  return allowed;
}

function parseStreamApi(t: string[], b: string | undefined, c: string | undefined): Parsed {
  switch (b) {
    case "NAMES":
      return t.length === 2 ? { verb: "STREAM.NAMES", request: "stream-subject-filter" } : { verb: "UNKNOWN" };
    case "LIST":
      return t.length === 2 ? { verb: "STREAM.LIST", request: "stream-subject-filter", response: "stream-list" } : { verb: "UNKNOWN" };
    case "INFO":
      return withNames({ verb: "STREAM.INFO", request: "stream-info-query", response: "stream-info" }, t.slice(2), 1);
    case "PURGE":
      // The stock key-value and object-store clients purge a key's or an object's old messages.
      return withNames({ verb: "STREAM.PURGE", request: "store-purge", forbidden: OPERATOR_JOB }, t.slice(2), 1);
    case "CREATE":
    case "UPDATE":
    case "DELETE":
    case "SNAPSHOT":
    case "RESTORE":
      return { verb: `STREAM.${b}`, forbidden: OPERATOR_JOB };
    case "MSG":
      if (c === "GET") return withNames({ verb: "STREAM.MSG.GET", request: "message-query", response: "stored-message" }, t.slice(3), 1);
      if (c === "DELETE") return { verb: "STREAM.MSG.DELETE", forbidden: OPERATOR_JOB };
      return { verb: "UNKNOWN" };
    case "LEADER":
      return c === "STEPDOWN" ? { verb: "STREAM.LEADER.STEPDOWN", forbidden: OPERATOR_JOB } : { verb: "UNKNOWN" };
    case "PEER":
      return c === "REMOVE" ? { verb: "STREAM.PEER.REMOVE", forbidden: OPERATOR_JOB } : { verb: "UNKNOWN" };
    case "TEMPLATE":
      return { verb: templateVerb(c), forbidden: OPERATOR_JOB };
    default:
      return { verb: "UNKNOWN" };
  }
}

function parseConsumerApi(t: string[], b: string | undefined, c: string | undefined): Parsed {
  const consumerInfo = { request: "untouched", response: "consumer-info" } as const;
  switch (b) {
    case "CREATE": {
      // CREATE.<stream> (legacy ephemeral), CREATE.<stream>.<consumer>, CREATE.<stream>.<consumer>.<filter…>
      const args = t.slice(2);
      const create = { verb: "CONSUMER.CREATE", request: "consumer-config", response: "consumer-info" } as const;
      if (args.length <= 1) return withNames(create, args, 1);
      if (args.length === 2) return withNames(create, args, 2);
      return withSubject(withNames(create, args.slice(0, 2), 2), args.slice(2));
    }
    case "DURABLE":
      if (c !== "CREATE") return { verb: "UNKNOWN" };
      return withNames({ verb: "CONSUMER.DURABLE.CREATE", request: "consumer-config", response: "consumer-info" }, t.slice(3), 2);
    case "INFO":
      return withNames({ verb: "CONSUMER.INFO", ...consumerInfo }, t.slice(2), 2);
    case "DELETE":
      return withNames({ verb: "CONSUMER.DELETE" }, t.slice(2), 2);
    case "NAMES":
      return withNames({ verb: "CONSUMER.NAMES" }, t.slice(2), 1);
    case "LIST":
      return withNames({ verb: "CONSUMER.LIST", response: "consumer-list" }, t.slice(2), 1);
    case "MSG":
      return c === "NEXT" ? withNames({ verb: "CONSUMER.MSG.NEXT" }, t.slice(3), 2) : { verb: "UNKNOWN" };
    case "LEADER":
      return c === "STEPDOWN" ? { verb: "CONSUMER.LEADER.STEPDOWN", forbidden: OPERATOR_JOB } : { verb: "UNKNOWN" };
    default:
      return { verb: "UNKNOWN" };
  }
}

/** DIRECT.GET.<stream> (query in the body) or DIRECT.GET.<stream>.<subject…> (last message on that subject). */
function directGet(args: string[]): Parsed {
  const get = { verb: "DIRECT.GET", request: "message-query" } as const;
  if (args.length <= 1) return withNames(get, args, 1);
  return withSubject(withNames(get, args.slice(0, 1), 1), args.slice(1));
}

function templateVerb(c: string | undefined): JetStreamApiVerb {
  switch (c) {
    case "CREATE":
    case "NAMES":
    case "INFO":
    case "DELETE":
      return `STREAM.TEMPLATE.${c}`;
    default:
      return "STREAM.TEMPLATE.*";
  }
}

function accountVerb(t: string[]): JetStreamApiVerb {
  if (t[1] === "PURGE") return "ACCOUNT.PURGE";
  if (t[1] === "STREAM" && t[2] === "MOVE") return "ACCOUNT.STREAM.MOVE";
  if (t[1] === "STREAM" && t[2] === "CANCEL_MOVE") return "ACCOUNT.STREAM.CANCEL_MOVE";
  return "ACCOUNT.*";
}

/** Attach `expected` names (stream, then consumer) from `args`, or say why they do not fit. */
function withNames(p: Parsed, args: string[], expected: 1 | 2): Parsed {
  const what = expected === 1 ? "a stream name" : "a stream name and a consumer name";
  if (args.length !== expected) return { ...p, malformed: `expected ${what} after ${p.verb}, found ${args.length} token(s)` };
  const [stream, consumer] = args;
  const problem = nameProblem("stream", stream) ?? (expected === 2 ? nameProblem("consumer", consumer) : undefined);
  return problem === undefined ? { ...p, stream, consumer } : { ...p, malformed: problem };
}

function withSubject(p: Parsed, tokens: string[]): Parsed {
  if (p.malformed !== undefined) return p;
  const subject = tokens.join(".");
  const problem = subjectProblem(subject, true, true);
  return problem === undefined ? { ...p, subject } : { ...p, subjectRefused: `subject ${quote(subject)} ${problem}` };
}

function nameProblem(kind: "stream" | "consumer", name: string | undefined): string | undefined {
  if (name === undefined || name === "") return `${kind} name is empty`;
  if (name.length > MAX_NAME_LENGTH) return `${kind} name is longer than ${MAX_NAME_LENGTH} characters`;
  if (/[*>/\\]/.test(name)) return `${kind} name ${quote(name)} contains a wildcard or a path separator`;
  return undefined;
}

/**
 * Why an edge-view subject may not be used, or undefined when it may. Stricter than the server on
 * purpose: `*` and `>` only as whole tokens (`>` last). Of the `$` namespaces only `$SRV.` (a
 * tenant subject like any other) and, where `stores` allows it (filters and lookups, never a
 * delivery target), the subjects of key-value buckets and object stores: `$JS.` would pass the
 * mapper unprefixed, and every other `$` namespace is not the tenant's.
 */
function subjectProblem(subject: string, wildcards: boolean, stores: boolean): string | undefined {
  if (subject === "") return "is empty";
  if (hasControlOrSpace(subject)) return "contains whitespace or control characters";
  if (subject.startsWith("$") && !subject.startsWith(SERVICE_PREFIX) && !(stores && isStoreSubject(subject))) return "is in a reserved namespace ($...)";
  const tokens = subject.split(".");
  for (const [i, token] of tokens.entries()) {
    if (token === "") return "has an empty token";
    const wildcard = token === "*" || token === ">";
    if (!wildcard && /[*>]/.test(token)) return "has a wildcard inside a token";
    if (wildcard && !wildcards) return "may not contain wildcards";
    if (token === ">" && i !== tokens.length - 1) return "has '>' before its last token";
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Requests: edge view → tenant view

type JsonObject = { [key: string]: unknown };

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Go's encoding/json matches object keys to struct fields case-insensitively, folding `ſ` to `s`
 * and the Kelvin sign to `k`. A key the server would read as a subject field must therefore be
 * spelled exactly, or the gateway would translate one field while the server reads another.
 */
function goFold(key: string): string {
  return key.toLowerCase().replaceAll("\u017f", "s");
}

class RequestRefused {
  constructor(readonly reason: JetStreamRefusalReason, readonly description: string, readonly errCode: number) {}
}

interface RequestEdit {
  readonly mapper: SubjectMapper;
  /** For a purge of a bucket's or store's stream: the subjects its filter must stay inside. */
  readonly purgeWithin: string | undefined;
  changed: boolean;
}

/** How a subject field may be used: a filter or lookup (wildcards, bucket and store subjects), or a delivery target. */
interface SubjectUse {
  wildcards: boolean;
  stores: boolean;
  within?: string | undefined;
  errCode?: number;
}

const FILTER: SubjectUse = { wildcards: true, stores: true };
const DELIVERY: SubjectUse = { wildcards: false, stores: false, errCode: ERR_DELIVER_TO_WILDCARDS };

/** Map one edge-view subject into the tenant's namespace, or refuse it. */
function toTenantSubject(edit: RequestEdit, field: string, subject: string, use: SubjectUse): string {
  const problem = subjectProblem(subject, use.wildcards, use.stores);
  if (problem !== undefined) {
    throw new RequestRefused("jetstream_api_subject_refused", `${field} ${quote(subject)} ${problem}`, use.errCode ?? ERR_BAD_REQUEST);
  }
  if (use.within !== undefined && !subject.startsWith(use.within)) {
    throw new RequestRefused("jetstream_api_subject_refused", `${field} ${quote(subject)} must name subjects of this bucket or store (${use.within}...)`, ERR_BAD_REQUEST);
  }
  const mapped = edit.mapper.toTenant(subject);
  if (!mapped.startsWith(edit.mapper.prefix) && !(use.stores && isStoreSubject(mapped))) {
    throw new RequestRefused("jetstream_api_subject_refused", `${field} ${quote(subject)} does not map into the tenant's namespace`, ERR_BAD_REQUEST);
  }
  return mapped;
}

/** The value of `field` in `obj`, after making sure no other key folds onto it. */
function exactField(obj: JsonObject, field: string, path: string): unknown {
  for (const key of Object.keys(obj)) {
    if (key !== field && goFold(key) === field) {
      throw new RequestRefused("jetstream_api_invalid_json", `field ${quote(path + key)} must be spelled ${quote(field)}`, ERR_INVALID_JSON);
    }
  }
  return Object.hasOwn(obj, field) ? obj[field] : undefined;
}

/** A scalar subject field; null, absent and "" mean unset and stay as they are (unless `required`). */
function mapScalar(edit: RequestEdit, obj: JsonObject, field: string, path: string, use: SubjectUse, required = false): void {
  const value = exactField(obj, field, path);
  if (value === undefined || value === null || value === "") {
    if (required) throw new RequestRefused("jetstream_api_subject_refused", `${path}${field} is required here`, ERR_BAD_REQUEST);
    return;
  }
  if (typeof value !== "string") {
    throw new RequestRefused("jetstream_api_invalid_json", `${path}${field} must be a string`, ERR_INVALID_JSON);
  }
  obj[field] = toTenantSubject(edit, path + field, value, use);
  edit.changed = true;
}

function mapList(edit: RequestEdit, obj: JsonObject, field: string, path: string): void {
  const value = exactField(obj, field, path);
  if (value === undefined || value === null) return;
  if (!Array.isArray(value) || !value.every((s) => typeof s === "string")) {
    throw new RequestRefused("jetstream_api_invalid_json", `${path}${field} must be an array of strings`, ERR_INVALID_JSON);
  }
  obj[field] = value.map((s: string) => toTenantSubject(edit, path + field, s, FILTER));
  edit.changed = true;
}

function mapRequestBody(plan: RequestBodyPlan, body: JsonObject, edit: RequestEdit): void {
  switch (plan) {
    case "consumer-config": {
      const config = exactField(body, "config", "");
      if (config === undefined || config === null) return;
      if (!isObject(config)) throw new RequestRefused("jetstream_api_invalid_json", "config must be an object", ERR_INVALID_JSON);
      mapScalar(edit, config, "filter_subject", "config.", FILTER);
      mapList(edit, config, "filter_subjects", "config.");
      mapScalar(edit, config, "deliver_subject", "config.", DELIVERY);
      return;
    }
    case "message-query":
      mapScalar(edit, body, "last_by_subj", "", FILTER);
      mapScalar(edit, body, "next_by_subj", "", FILTER);
      mapList(edit, body, "multi_last", "");
      return;
    case "stream-info-query":
      mapScalar(edit, body, "subjects_filter", "", FILTER);
      return;
    case "stream-subject-filter":
      mapScalar(edit, body, "subject", "", FILTER);
      return;
    case "store-purge":
      // Never the whole stream: only messages of the bucket's or store's own subjects.
      mapScalar(edit, body, "filter", "", { ...FILTER, within: edit.purgeWithin }, true);
      return;
    case "untouched":
      return;
  }
}

/** Bodies the server requires (it answers "invalid JSON" or "bad request" without one). */
const BODY_REQUIRED: ReadonlySet<JetStreamApiVerb> = new Set(["CONSUMER.CREATE", "CONSUMER.DURABLE.CREATE", "STREAM.MSG.GET", "STREAM.PURGE"]);

/**
 * Translate an allowed request into the tenant view: the subject carried in the API subject and the
 * subject-bearing body fields get the tenant prefix; everything else is kept. A body is re-encoded
 * only when a field changed. Refusals come back as values.
 */
export function translateRequest(
  op: JetStreamApiOperation,
  subject: string,
  body: Buffer | undefined,
  mapper: SubjectMapper,
  stores: TenantStores = TenantStores.NONE,
): JetStreamRequestTranslation {
  const { decision, verb } = op;
  if (decision.kind === "refuse") return { kind: "refuse", refusal: decision.refusal };
  const refuse = (reason: JetStreamRefusalReason, description: string, errCode: number): JetStreamRequestTranslation => ({
    kind: "refuse",
    refusal: refusal(verb, reason, 400, description, errCode),
  });
  if (subject !== op.apiSubject) {
    return refuse("jetstream_api_malformed", `request subject ${quote(subject)} is not the one that was classified`, ERR_BAD_REQUEST);
  }
  const store = decision.request === "store-purge" && op.stream !== undefined ? stores.byStream(op.stream) : undefined;
  const edit: RequestEdit = { mapper, purgeWithin: store ? storeSubjectPrefix(store.kind, store.name) : undefined, changed: false };
  try {
    const tenantSubject =
      op.subject === undefined
        ? subject
        : subject.slice(0, subject.length - op.subject.length) + toTenantSubject(edit, "subject", op.subject, FILTER);
    const payload = body !== undefined && body.length > 0 ? body : undefined;
    if (decision.request === "untouched") return { kind: "forward", subject: tenantSubject, body };
    if (payload === undefined) {
      if (BODY_REQUIRED.has(verb)) return refuse("jetstream_api_invalid_json", `${verb} needs a JSON request body`, ERR_INVALID_JSON);
      return { kind: "forward", subject: tenantSubject, body };
    }
    if (nestingExceeds(payload, MAX_JSON_DEPTH)) return refuse("jetstream_api_invalid_json", `${verb} request body nests deeper than ${MAX_JSON_DEPTH} levels`, ERR_INVALID_JSON);
    const parsed = parseJson(payload);
    // `null` (what async-nats sends for "no request") carries no subject: the server reads it as no body.
    if (parsed === null) {
      if (BODY_REQUIRED.has(verb)) return refuse("jetstream_api_invalid_json", `${verb} needs a JSON request body`, ERR_INVALID_JSON);
      return { kind: "forward", subject: tenantSubject, body };
    }
    if (!isObject(parsed)) return refuse("jetstream_api_invalid_json", `${verb} request body is not a JSON object`, ERR_INVALID_JSON);
    mapRequestBody(decision.request, parsed, edit);
    return { kind: "forward", subject: tenantSubject, body: edit.changed ? Buffer.from(JSON.stringify(parsed)) : payload };
  } catch (err) {
    if (err instanceof RequestRefused) return refuse(err.reason, err.description, err.errCode);
    // Whatever a client's body makes the translation throw is that request's refusal, nothing more.
    return refuse("jetstream_api_invalid_json", `${verb} request body could not be translated`, ERR_INVALID_JSON);
  }
}

/**
 * The deepest nesting a JetStream API body may have. The API's own documents are a few levels deep;
 * a client's body far deeper would only be there to exhaust the stack of whatever walks it.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether `json` opens more than `max` arrays and objects inside each other (strings skipped), without parsing it. */
export function nestingExceeds(json: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

const NOT_JSON = Symbol("not JSON");

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return NOT_JSON;
  }
}

// ---------------------------------------------------------------------------------------------
// Responses: tenant view → edge view

/** Edge view of a subject from a response, or undefined when the tenant does not own it. */
function toEdgeSubject(mapper: SubjectMapper, tenantSubject: string): string | undefined {
  const edge = mapper.toEdge(tenantSubject);
  // `$JS.…` passes the mapper; in a body it is nothing an edge client set, so it is not shown.
  return edge === undefined || isJetStreamSubject(edge) ? undefined : edge;
}

class ResponseEdit {
  changed = false;
  constructor(readonly mapper: SubjectMapper) {}

  scalar(obj: unknown, field: string): void {
    if (!isObject(obj)) return;
    const value = obj[field];
    if (typeof value !== "string" || value === "") return;
    const edge = toEdgeSubject(this.mapper, value);
    if (edge === undefined) delete obj[field];
    else obj[field] = edge;
    this.changed = true;
  }

  list(obj: unknown, field: string): void {
    if (!isObject(obj)) return;
    const value = obj[field];
    if (!Array.isArray(value)) return;
    const edge: string[] = [];
    for (const s of value) {
      const e = typeof s === "string" ? toEdgeSubject(this.mapper, s) : undefined;
      if (e !== undefined) edge.push(e);
    }
    obj[field] = edge;
    this.changed = true;
  }

  /** A map keyed by subject (stream state `subjects`): keys mapped back, foreign keys dropped. */
  keys(obj: unknown, field: string): void {
    if (!isObject(obj)) return;
    const value = obj[field];
    if (!isObject(value)) return;
    const edge: JsonObject = {};
    for (const [k, v] of Object.entries(value)) {
      const e = toEdgeSubject(this.mapper, k);
      if (e !== undefined) edge[e] = v;
    }
    obj[field] = edge;
    this.changed = true;
  }

  streamSource(source: unknown): void {
    if (!isObject(source)) return;
    this.scalar(source, "filter_subject");
    this.scalar(source.external, "api");
    this.scalar(source.external, "deliver");
  }

  streamInfo(info: unknown): void {
    if (!isObject(info)) return;
    const config = info.config;
    if (isObject(config)) {
      this.list(config, "subjects");
      this.streamSource(config.mirror);
      if (Array.isArray(config.sources)) for (const s of config.sources) this.streamSource(s);
      this.scalar(config.republish, "src");
      this.scalar(config.republish, "dest");
    }
    this.keys(info.state, "subjects");
    this.streamSource(info.mirror);
    if (Array.isArray(info.sources)) for (const s of info.sources) this.streamSource(s);
  }

  consumerInfo(info: unknown): void {
    if (!isObject(info)) return;
    this.scalar(info.config, "filter_subject");
    this.list(info.config, "filter_subjects");
    this.scalar(info.config, "deliver_subject");
  }

  storedMessage(response: JsonObject): void {
    const message = response.message;
    if (!isObject(message)) return;
    this.scalar(message, "subject");
    // Stored headers can hold a Nats-Subject (republished messages); the same rule as direct get.
    if (typeof message.hdrs === "string" && message.hdrs !== "") {
      const raw = Buffer.from(message.hdrs, "base64");
      const translated = translateDirectGetHeaders(raw, this.mapper);
      if (translated !== raw) {
        message.hdrs = translated.toString("base64");
        this.changed = true;
      }
    }
  }
}

/** Does this header block carry a status code (`NATS/1.0 503`, `NATS/1.0 408 …`)? */
function isStatusReply(headers: Buffer | undefined): boolean {
  return headers !== undefined && headers.length > 9 && headers.toString("latin1", 0, 9) === "NATS/1.0 ";
}

/**
 * Translate a JSON API response into the edge view (see the module comment for what happens to
 * subjects the tenant does not own). Error responses and status replies pass unchanged; a body is
 * re-encoded only when something changed. A response that should be JSON and is not becomes a 503
 * error, so nothing unchecked reaches the client. Direct-get replies: the payload passes, the
 * headers go through `translateDirectGetHeaders`.
 */
export function translateResponse(op: JetStreamApiOperation, body: Buffer, headers: Buffer | undefined, mapper: SubjectMapper): Buffer {
  const { decision } = op;
  if (decision.kind !== "allow" || decision.response === "untouched") return body;
  if (body.length === 0 || isStatusReply(headers)) return body;
  const unreadable = (): Buffer => jetStreamErrorResponse(503, "the gateway could not read the JetStream API response", ERR_BAD_REQUEST, op.verb);
  // A reply is whatever arrives on the reply subject, which the client itself may publish to: it
  // gets the same limits as a request.
  if (nestingExceeds(body, MAX_JSON_DEPTH)) return unreadable();
  const parsed = parseJson(body);
  if (!isObject(parsed)) return unreadable();
  if (parsed.error !== undefined && parsed.error !== null) return body;
  try {
    return editResponse(decision.response, parsed, mapper) ? Buffer.from(JSON.stringify(parsed)) : body;
  } catch {
    return unreadable();
  }
}

/** Maps the response's subjects into the edge view in place; true when something changed. */
function editResponse(plan: ResponseBodyPlan, parsed: JsonObject, mapper: SubjectMapper): boolean {
  const edit = new ResponseEdit(mapper);
  switch (plan) {
    case "stream-info":
      edit.streamInfo(parsed);
      break;
    case "stream-list":
      if (Array.isArray(parsed.streams)) for (const s of parsed.streams) edit.streamInfo(s);
      break;
    case "consumer-info":
      edit.consumerInfo(parsed);
      break;
    case "consumer-list":
      if (Array.isArray(parsed.consumers)) for (const c of parsed.consumers) edit.consumerInfo(c);
      break;
    case "stored-message":
      edit.storedMessage(parsed);
      break;
    case "untouched":
      break;
  }
  return edit.changed;
}

/**
 * Translate the `Nats-Subject` header(s) of a direct-get reply (`NATS/1.0\r\nNats-Stream: …\r\n
 * Nats-Subject: acme-corp.events.x\r\n…\r\n\r\n`) into the edge view; a line whose subject the tenant
 * does not own is removed. Header names match case-insensitively. The block is handled as latin1 so
 * every other byte comes back exactly as it was; returns the same Buffer when nothing changed.
 */
export function translateDirectGetHeaders(headerBytes: Buffer, mapper: SubjectMapper): Buffer {
  const text = headerBytes.toString("latin1");
  if (!/nats-subject/i.test(text)) return headerBytes;
  const lines = text.split("\r\n");
  const out: string[] = [lines[0] ?? ""];
  let changed = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== "nats-subject") {
      out.push(line);
      continue;
    }
    changed = true;
    const edge = toEdgeSubject(mapper, line.slice(colon + 1).trim());
    if (edge !== undefined) out.push(`${line.slice(0, colon)}: ${edge}`);
  }
  return changed ? Buffer.from(out.join("\r\n"), "latin1") : headerBytes;
}

function quote(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

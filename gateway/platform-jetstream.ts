/**
 * A platform session's own JetStream: the PLATFORM account's platform streams (streams/platform-
 * streams.ts) that its identity may read, through the stock JetStream API (`$JS.API.…`) — and
 * nothing else of the account (the audit stream, the registry bucket, streams the identity may
 * not read). Pure functions, no I/O; the platform rewriter calls them.
 *
 * - Stream-scoped requests name a readable stream, or get "stream not found" (as if the others did
 *   not exist); stream names and lists come back with the readable streams only.
 * - Creating, changing, purging or deleting streams is the operator's job (403).
 * - A push consumer's deliver subject is the session's own (`_INBOX.x` → `_tg_s.<session>._INBOX.x`),
 *   so deliveries reach only the session that created it; consumer info shows it as the client
 *   named it.
 * - Filter subjects are the platform view as the streams store it (`acme-corp.events.>`): no
 *   translation.
 */
import { classifyJetStreamRequest, JS_ERR, jetStreamErrorResponse, MAX_JSON_DEPTH, nestingExceeds, refusal, type JetStreamApiOperation, type JetStreamApiRefusal } from "./jetstream-api.ts";

type JsonObject = { [key: string]: unknown };

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

export type PlatformJetStreamRequest =
  | { kind: "forward"; op: JetStreamApiOperation; body: Buffer | undefined; translateResponse: boolean }
  | { kind: "refuse"; refusal: JetStreamApiRefusal };

/** Verbs that name no stream: the account's info, and stream names and lists (filtered on the way back). */
const ACCOUNT_VERBS = new Set(["INFO", "STREAM.NAMES", "STREAM.LIST"]);

/** Responses that carry stream names or a consumer's deliver subject. */
const TRANSLATED_RESPONSES = new Set(["STREAM.NAMES", "STREAM.LIST", "CONSUMER.CREATE", "CONSUMER.DURABLE.CREATE", "CONSUMER.INFO", "CONSUMER.LIST"]);

function parse(body: Buffer): unknown {
  if (nestingExceeds(body, MAX_JSON_DEPTH)) return undefined;
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

/**
 * Decides a platform session's request to its own account's JetStream API. `readable`: the
 * platform streams its identity may read; `privatePrefix`: the session's own namespace.
 */
export function platformJetStreamRequest(subject: string, body: Buffer | undefined, readable: ReadonlySet<string>, privatePrefix: string): PlatformJetStreamRequest {
  const op = classifyJetStreamRequest(subject);
  if (op.decision.kind === "refuse") return { kind: "refuse", refusal: op.decision.refusal };
  if (!ACCOUNT_VERBS.has(op.verb) && (op.stream === undefined || !readable.has(op.stream))) {
    return { kind: "refuse", refusal: refusal(op.verb, "jetstream_stream_not_readable", 404, "stream not found", JS_ERR.STREAM_NOT_FOUND) };
  }
  const translateResponse = TRANSLATED_RESPONSES.has(op.verb);
  if (op.decision.request !== "consumer-config" || body === undefined || body.length === 0) return { kind: "forward", op, body, translateResponse };
  // A push consumer delivers into the session's own namespace only.
  const parsed = parse(body);
  const config = isObject(parsed) ? parsed.config : undefined;
  const deliver = isObject(config) ? config.deliver_subject : undefined;
  if (deliver === undefined || deliver === null || deliver === "") return { kind: "forward", op, body, translateResponse };
  if (typeof deliver !== "string" || !deliver.startsWith("_") || /[\s*>]/.test(deliver) || deliver.split(".").includes("") || deliver.startsWith("_tg")) {
    return { kind: "refuse", refusal: refusal(op.verb, "jetstream_api_subject_refused", 400, `config.deliver_subject ${JSON.stringify(deliver)} must be an inbox of the session's own (a literal subject starting with "_", e.g. "_INBOX.x")`, JS_ERR.DELIVER_TO_WILDCARDS) };
  }
  (config as JsonObject).deliver_subject = privatePrefix + deliver;
  return { kind: "forward", op, body: Buffer.from(JSON.stringify(parsed)), translateResponse };
}

/** The response in the session's view: only readable streams named, deliver subjects as the client named them. */
export function platformJetStreamResponse(op: JetStreamApiOperation, body: Buffer, readable: ReadonlySet<string>, privatePrefix: string): Buffer {
  if (body.length === 0) return body;
  const parsed = parse(body);
  if (!isObject(parsed)) return jetStreamErrorResponse(503, "the gateway could not read the JetStream API response", JS_ERR.BAD_REQUEST, op.verb);
  if (parsed.error !== undefined && parsed.error !== null) return body;
  const ownDeliver = (info: unknown): void => {
    const config = isObject(info) ? info.config : undefined;
    if (isObject(config) && typeof config.deliver_subject === "string" && config.deliver_subject.startsWith(privatePrefix)) config.deliver_subject = config.deliver_subject.slice(privatePrefix.length);
  };
  switch (op.verb) {
    case "STREAM.NAMES":
      if (Array.isArray(parsed.streams)) parsed.streams = parsed.streams.filter((n) => typeof n === "string" && readable.has(n));
      break;
    case "STREAM.LIST":
      if (Array.isArray(parsed.streams)) parsed.streams = parsed.streams.filter((si) => isObject(si) && isObject(si.config) && typeof si.config.name === "string" && readable.has(si.config.name));
      break;
    case "CONSUMER.LIST":
      if (Array.isArray(parsed.consumers)) parsed.consumers.forEach(ownDeliver);
      break;
    default:
      ownDeliver(parsed);
  }
  // Counts would tell of what is not shown.
  if (op.verb === "STREAM.NAMES" || op.verb === "STREAM.LIST") {
    const shown = Array.isArray(parsed.streams) ? parsed.streams.length : 0;
    parsed.total = shown;
    parsed.offset = 0;
    parsed.limit = Math.max(shown, typeof parsed.limit === "number" ? parsed.limit : 0);
  }
  return Buffer.from(JSON.stringify(parsed));
}

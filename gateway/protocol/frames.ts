/**
 * NATS protocol frames as offsets into the bytes they were read from.
 *
 * A parser owns one frame object and refills it for every frame it reads, so reading a frame
 * allocates nothing. The frame is only valid during the `onFrame` callback: afterwards its buffer
 * is the next socket read or the parser's reused scratch space. A field that a verb does not carry
 * is -1 (a span's start and end both).
 */
import { CodedError } from "../../common/coded-error.ts";

/** What a client sends. (Plain objects rather than `const enum`: tsx compiles file by file.) */
export const ClientVerb = { Connect: 0, Pub: 1, Hpub: 2, Sub: 3, Unsub: 4, Ping: 5, Pong: 6 } as const;
export type ClientVerb = (typeof ClientVerb)[keyof typeof ClientVerb];

/** What nats-server sends to a client. */
export const ServerVerb = { Info: 0, Msg: 1, Hmsg: 2, Ping: 3, Pong: 4, Ok: 5, Err: 6 } as const;
export type ServerVerb = (typeof ServerVerb)[keyof typeof ServerVerb];

const NO_BYTES = Buffer.alloc(0);

/** The fields both directions share. */
abstract class WireFrame {
  buf: Buffer = NO_BYTES;
  /** The whole frame in `buf`: from the verb through the CRLF that ends it (after the payload). */
  start = -1;
  end = -1;
  subjectStart = -1;
  subjectEnd = -1;
  replyStart = -1;
  replyEnd = -1;
  sidStart = -1;
  sidEnd = -1;
  /** The subscription id as a number (stock clients number their subscriptions). */
  sid = -1;
  /** HPUB/HMSG: bytes of headers at the front of the payload. */
  headerSize = -1;
  /** The payload, headers included for HPUB/HMSG, without the CRLF that follows it. */
  payloadStart = -1;
  payloadEnd = -1;
  /** CONNECT/INFO: the JSON argument, the rest of the control line with surrounding blanks trimmed. */
  jsonStart = -1;
  jsonEnd = -1;

  protected clear(): void {
    this.end = -1;
    this.subjectStart = this.subjectEnd = -1;
    this.replyStart = this.replyEnd = -1;
    this.sidStart = this.sidEnd = this.sid = -1;
    this.headerSize = -1;
    this.payloadStart = this.payloadEnd = -1;
    this.jsonStart = this.jsonEnd = -1;
  }
}

export class ClientFrame extends WireFrame {
  verb: ClientVerb = ClientVerb.Ping;
  /** SUB: the queue group. */
  queueStart = -1;
  queueEnd = -1;
  /** UNSUB: unsubscribe after this many messages. */
  max = -1;

  /** Starts a new frame, every field -1; only the parser calls this. */
  reset(verb: ClientVerb, buf: Buffer, start: number): void {
    this.clear();
    this.queueStart = this.queueEnd = -1;
    this.max = -1;
    this.verb = verb;
    this.buf = buf;
    this.start = start;
  }
}

export class ServerFrame extends WireFrame {
  verb: ServerVerb = ServerVerb.Ping;
  /** -ERR: the error text, without the single quotes around it. */
  errorStart = -1;
  errorEnd = -1;

  /** Starts a new frame, every field -1; only the parser calls this. */
  reset(verb: ServerVerb, buf: Buffer, start: number): void {
    this.clear();
    this.errorStart = this.errorEnd = -1;
    this.verb = verb;
    this.buf = buf;
    this.start = start;
  }
}

/** A span as text, for cold paths and debugging (latin1: one character per byte, never fails). */
export function frameString(buf: Buffer, start: number, end: number): string {
  return buf.toString("latin1", start, end);
}

export type ProtocolErrorCode =
  | "unknown_protocol_operation"
  | "malformed_frame"
  | "max_control_line_exceeded"
  | "max_payload_exceeded"
  | "payload_terminator_missing";

/**
 * What nats-server 2.9 sends in `-ERR '<text>'` for each kind of error (checked against
 * server/parser.go, server/client.go and a running v2.9 server). For a malformed argument list
 * (`PUB a b c d`, a bad size) nats-server sends nothing and closes the connection; the gateway
 * still owes the client a reason, and the parser's own word for bytes it cannot use is
 * "Unknown Protocol Operation", which is also what nats-server sends for a payload without its CRLF.
 */
const WIRE_TEXT: Record<ProtocolErrorCode, string> = {
  unknown_protocol_operation: "Unknown Protocol Operation",
  malformed_frame: "Unknown Protocol Operation",
  max_control_line_exceeded: "maximum control line exceeded",
  max_payload_exceeded: "Maximum Payload Violation",
  payload_terminator_missing: "Unknown Protocol Operation",
};

/** Bytes of the offending input kept in the error, like nats-server's protocol snippet. */
const SNIPPET_BYTES = 32;

/** The first bytes at `at`, for the log; never the arguments of a CONNECT (they carry credentials). */
function snippetAt(buf: Uint8Array, at: number): string {
  const from = Math.min(Math.max(at, 0), buf.length);
  const text = Buffer.from(buf.buffer, buf.byteOffset + from, Math.min(buf.length - from, SNIPPET_BYTES)).toString("latin1");
  return /^connect/i.test(text) ? `${text.slice(0, 7)} …` : text;
}

/** A protocol violation by the peer: the session that read it should say so and end. */
export class ProtocolError extends CodedError<ProtocolErrorCode> {
  /** The text to send to the peer as `-ERR '<wireText>'`, worded as nats-server words it. */
  readonly wireText: string;

  constructor(code: ProtocolErrorCode, message: string, buf: Uint8Array, at: number) {
    super(code, message, { details: { snippet: snippetAt(buf, at) } });
    this.name = "ProtocolError";
    this.wireText = WIRE_TEXT[code];
  }
}

/**
 * Leafnode protocol frames as offsets into the bytes they were read from (see frames.ts for the
 * client protocol's). Both ends of a leafnode connection speak the same verbs, so one frame type
 * serves both directions: INFO, CONNECT (from the soliciting side), interest (`LS+`, `LS-`),
 * messages (`LMSG`, `HMSG` with headers), PING, PONG, +OK, -ERR.
 *
 * The grammar is nats-server's (server/parser.go states OP_L/OP_LS, server/leafnode.go
 * processLeafSub, processLeafUnsub, processLeafMsgArgs, processLeafHeaderMsgArgs, and the writer
 * msgHeaderForRouteOrLeaf in server/client.go; the same on v2.9.10 and v2.14):
 *
 *   LS+ <subject>                          LS+ <subject> <queue> <weight>
 *   LS- <subject>                          LS- <subject> <queue>
 *   LMSG <subject> [reply] <size>          LMSG <subject> + <reply> <queue>... <size>
 *                                          LMSG <subject> | <queue>... <size>
 *   HMSG <subject> [reply] <hdr> <size>    HMSG <subject> + <reply> <queue>... <hdr> <size>
 *                                          HMSG <subject> | <queue>... <hdr> <size>
 *
 * A frame object is refilled for every frame and valid only during the `onFrame` callback.
 */
import { CodedError } from "../../common/coded-error.ts";

export const LeafVerb = { Info: 0, Connect: 1, Interest: 2, InterestGone: 3, Lmsg: 4, Hmsg: 5, Ping: 6, Pong: 7, Ok: 8, Err: 9 } as const;
export type LeafVerb = (typeof LeafVerb)[keyof typeof LeafVerb];

const NO_BYTES = Buffer.alloc(0);

export class LeafFrame {
  verb: LeafVerb = LeafVerb.Ping;
  buf: Buffer = NO_BYTES;
  /** The whole frame: from the verb through the CRLF that ends it (after the payload). */
  start = -1;
  end = -1;
  subjectStart = -1;
  subjectEnd = -1;
  /** LMSG/HMSG: the reply subject. */
  replyStart = -1;
  replyEnd = -1;
  /**
   * LS+/LS-: the queue group. LMSG/HMSG: the queue groups the message was sent for, as one span
   * from the first name to the end of the last (blanks between them as they came).
   */
  queueStart = -1;
  queueEnd = -1;
  /** LS+ with a queue group: how many members the sender has (its weight). */
  weight = -1;
  /** LMSG/HMSG: where the size arguments start (the header size for HMSG); the frame's tail from here is copied as it is. */
  sizesStart = -1;
  /** HMSG: bytes of headers at the front of the payload. */
  headerSize = -1;
  /** LMSG/HMSG: the payload, headers included, without the CRLF that follows it. */
  payloadStart = -1;
  payloadEnd = -1;
  /** INFO/CONNECT: the JSON argument, without surrounding blanks. */
  jsonStart = -1;
  jsonEnd = -1;
  /** -ERR: the error text without its quotes. */
  errorStart = -1;
  errorEnd = -1;

  /** Starts a new frame, every field -1; only the parser calls this. */
  reset(verb: LeafVerb, buf: Buffer, start: number): void {
    this.verb = verb;
    this.buf = buf;
    this.start = start;
    this.end = -1;
    this.subjectStart = this.subjectEnd = -1;
    this.replyStart = this.replyEnd = -1;
    this.queueStart = this.queueEnd = -1;
    this.weight = -1;
    this.sizesStart = -1;
    this.headerSize = -1;
    this.payloadStart = this.payloadEnd = -1;
    this.jsonStart = this.jsonEnd = -1;
    this.errorStart = this.errorEnd = -1;
  }
}

export type LeafProtocolErrorCode = "unknown_protocol_operation" | "malformed_frame" | "max_control_line_exceeded" | "max_payload_exceeded" | "payload_terminator_missing";

/** What nats-server sends in `-ERR` for each kind of violation (see frames.ts). */
const WIRE_TEXT: Record<LeafProtocolErrorCode, string> = {
  unknown_protocol_operation: "Unknown Protocol Operation",
  malformed_frame: "Unknown Protocol Operation",
  max_control_line_exceeded: "maximum control line exceeded",
  max_payload_exceeded: "Maximum Payload Violation",
  payload_terminator_missing: "Unknown Protocol Operation",
};

const SNIPPET_BYTES = 32;

/** The first bytes at `at`, for the log; never the arguments of a CONNECT (they carry credentials). */
function snippetAt(buf: Uint8Array, at: number): string {
  const from = Math.min(Math.max(at, 0), buf.length);
  const text = Buffer.from(buf.buffer, buf.byteOffset + from, Math.min(buf.length - from, SNIPPET_BYTES)).toString("latin1");
  return /^connect/i.test(text) ? `${text.slice(0, 7)} …` : text;
}

/** A leafnode protocol violation by the peer: the session that read it says so and ends. */
export class LeafProtocolError extends CodedError<LeafProtocolErrorCode> {
  readonly wireText: string;

  constructor(code: LeafProtocolErrorCode, message: string, buf: Uint8Array, at: number) {
    super(code, message, { details: { snippet: snippetAt(buf, at) } });
    this.name = "LeafProtocolError";
    this.wireText = WIRE_TEXT[code];
  }
}

/**
 * Writing leafnode frames into an OutputBuffer (encoder.ts) without building strings. Frames that
 * only change subjects are written with `OutputBuffer.rewritten` from the parsed frame's own bytes
 * (`LEAF_WIRE` has the verbs for it); these helpers write the frames the gateway makes up or whose
 * payload it changes.
 */
import type { OutputBuffer, SubjectBytes } from "./encoder.ts";

const ascii = (text: string): Buffer => Buffer.from(text, "latin1");

/** Verbs with their blank, for `OutputBuffer.rewritten`. */
export const LEAF_WIRE = { INTEREST: ascii("LS+ "), INTEREST_GONE: ascii("LS- "), LMSG: ascii("LMSG "), HMSG: ascii("HMSG "), BLANK: ascii(" ") } as const;

const REPLY_AND_QUEUES = ascii(" + ");
const QUEUES_ONLY = ascii(" | ");

function subject(out: OutputBuffer, s: SubjectBytes): void {
  if (s.prefix.length > 0) out.bytes(s.prefix);
  out.bytes(s.src, s.start, s.end);
}

/** `LS+ <subject> [<queue> <weight>]` or `LS- <subject> [queue]`. */
export function writeInterest(out: OutputBuffer, plus: boolean, s: SubjectBytes, queue: SubjectBytes | null, weight = 1): void {
  out.bytes(plus ? LEAF_WIRE.INTEREST : LEAF_WIRE.INTEREST_GONE);
  subject(out, s);
  if (queue !== null) {
    out.bytes(LEAF_WIRE.BLANK);
    subject(out, queue);
    if (plus) {
      out.bytes(LEAF_WIRE.BLANK);
      out.decimal(weight);
    }
  }
  out.crlf();
}

/** The queue groups of an LMSG/HMSG as they came (a span of the frame's bytes), or none. */
export interface QueueList {
  buf: Uint8Array;
  start: number;
  end: number;
}

/**
 * `LMSG <subject> [reply] <size>`, with queue groups `LMSG <subject> + <reply> <queues> <size>` or
 * `LMSG <subject> | <queues> <size>`; HMSG when `headerSize` is not negative.
 */
export function writeLeafMessage(out: OutputBuffer, s: SubjectBytes, reply: SubjectBytes | null, queues: QueueList | null, headerSize: number, payload: Uint8Array, start = 0, end = payload.length): void {
  out.reserve(s.length + (reply?.length ?? 0) + (queues ? queues.end - queues.start : 0) + (end - start) + 64);
  out.bytes(headerSize >= 0 ? LEAF_WIRE.HMSG : LEAF_WIRE.LMSG);
  subject(out, s);
  if (queues !== null) {
    if (reply !== null) {
      out.bytes(REPLY_AND_QUEUES);
      subject(out, reply);
      out.bytes(LEAF_WIRE.BLANK);
    } else out.bytes(QUEUES_ONLY);
    out.bytes(queues.buf, queues.start, queues.end);
  } else if (reply !== null) {
    out.bytes(LEAF_WIRE.BLANK);
    subject(out, reply);
  }
  out.bytes(LEAF_WIRE.BLANK);
  if (headerSize >= 0) {
    out.decimal(headerSize);
    out.bytes(LEAF_WIRE.BLANK);
  }
  out.decimal(end - start);
  out.crlf();
  out.bytes(payload, start, end);
  out.crlf();
}

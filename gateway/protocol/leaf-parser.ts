/**
 * A byte-level parser for the leafnode protocol (frames in leaf-frames.ts), one instance per
 * direction of a leaf session. Same design as the client-protocol parsers (parser.ts): `parse(chunk)`
 * takes each socket read and calls `onFrame` synchronously for every complete frame, described by
 * offsets into the read itself; only a frame that spans reads is copied, into a scratch buffer sized
 * once from the payload length when its control line is complete. A protocol violation is reported
 * once through `onError`, after which all input is ignored; `parse` never throws for bad input. The
 * same frames and the same error come out whatever the read boundaries were.
 *
 * Grammar as nats-server reads it from a leafnode connection: verbs in any case, arguments separated
 * by runs of spaces and tabs, control lines ending in CRLF or a bare LF, a payload followed by
 * exactly CRLF. Stricter where no server needs the slack: no blanks before the verb, nothing but
 * blanks after PING/PONG/+OK, and only the verbs a leafnode connection carries (a client's PUB or
 * SUB on a leafnode connection is an unknown operation here).
 */
import { LeafFrame, LeafProtocolError, LeafVerb, type LeafProtocolErrorCode } from "./leaf-frames.ts";

export interface LeafFrameHandler {
  /** A complete frame; `frame` and its buffer are valid only during this call. */
  onFrame(frame: LeafFrame): void;
  /** The peer broke the protocol: called once, after which the parser ignores all input. */
  onError(err: LeafProtocolError): void;
}

export interface LeafParserOptions {
  /** Longest control line, verb included, line end excluded. Queue lists make leaf lines long. */
  maxControlLine?: number;
  /** Largest payload (headers included); set from the peer's INFO `max_payload` once known. */
  maxPayload?: number;
}

/** nats-server allows its non-client peers 16 times the default `max_control_line` (4096). */
export const LEAF_MAX_CONTROL_LINE = 64 * 1024;
/** No server sends a payload over its `max_payload`, which may not exceed 64 MiB. */
export const LEAF_MAX_PAYLOAD = 64 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const TAB = 0x09;
const QUOTE = 0x27;
const PLUS = 0x2b;
const MINUS = 0x2d;
const PIPE = 0x7c;
/** OR-ing a letter with this lowercases it. */
const LOWER = 0x20;

const NEED_MORE = -1;
const STOPPED = -2;

/** Like nats-server's parseSize: at most 9 digits. */
const SIZE_DIGITS = 9;
/** A held line at least this long has had its verb checked (`CONNECT ` is the longest). */
const VERB_ZONE = 8;
const SCRATCH_KEEP = 64 * 1024;
const SCRATCH_MIN = 1024;
const NO_BYTES = Buffer.alloc(0);

function word(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

const W_INFO = word("info");
const W_CONNECT = word("connect");
const W_LS_PLUS = word("ls+");
const W_LS_MINUS = word("ls-");
const W_LMSG = word("lmsg");
const W_HMSG = word("hmsg");
const W_PING = word("ping");
const W_PONG = word("pong");
const W_OK = word("+ok");
const W_ERR = word("-err");

/** 1: `buf[pos..]` matches the lowercase `verb` (letters in any case); 0: the buffer ends first; -1: no match. */
function matchVerb(buf: Buffer, pos: number, end: number, verb: Uint8Array): number {
  for (let i = 0; i < verb.length; i++) {
    if (pos + i >= end) return 0;
    const b = buf[pos + i]!;
    const v = verb[i]!;
    if ((v >= 0x61 && v <= 0x7a ? b | LOWER : b) !== v) return -1;
  }
  return 1;
}

/** A decimal number in `buf[start, end)`, or -1 when it is not digits only or too long. */
function decimal(buf: Buffer, start: number, end: number, maxDigits: number): number {
  if (end <= start || end - start > maxDigits) return -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i]! - 0x30;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

function isBlank(b: number): boolean {
  return b === SP || b === TAB;
}

export class LeafProtocolParser {
  private readonly handler: LeafFrameHandler;
  private readonly frame = new LeafFrame();
  private readonly maxControlLine: number;
  private payloadLimit: number;
  private stopped = false;

  // A frame that spans reads: `held` bytes of it in `scratch`, of `heldTotal` (-1 until its control line is complete).
  private scratch: Buffer = NO_BYTES;
  private holding = false;
  private held = 0;
  private heldTotal = -1;
  /** With NEED_MORE: the frame's total length once its control line is complete, else -1. */
  private frameTotal = -1;

  // The current control line's blank-separated arguments (grown for long queue lists).
  private argc = 0;
  private argStart = new Int32Array(8);
  private argEnd = new Int32Array(8);
  private lineEnd = -1;

  constructor(handler: LeafFrameHandler, options: LeafParserOptions = {}) {
    const maxControlLine = options.maxControlLine ?? LEAF_MAX_CONTROL_LINE;
    if (!Number.isInteger(maxControlLine) || maxControlLine < 32) throw new RangeError(`maxControlLine must be an integer of at least 32, got ${maxControlLine}`);
    this.handler = handler;
    this.maxControlLine = maxControlLine;
    this.payloadLimit = 0;
    this.maxPayload = options.maxPayload ?? LEAF_MAX_PAYLOAD;
  }

  get maxPayload(): number {
    return this.payloadLimit;
  }

  set maxPayload(bytes: number) {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`maxPayload must be a non-negative integer, got ${bytes}`);
    this.payloadLimit = bytes;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Reads one socket read. A handler that throws stops the parser, and the exception propagates. */
  parse(chunk: Buffer): void {
    if (this.stopped) return;
    try {
      const end = chunk.length;
      let pos = 0;
      if (this.holding) {
        pos = this.resume(chunk);
        if (pos < 0) return;
      }
      while (pos < end) {
        const next = this.frameAt(chunk, pos, end);
        if (next < 0) {
          if (next === NEED_MORE) this.hold(chunk, pos, end);
          return;
        }
        pos = next;
      }
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** Stops reading: no frame is delivered after this, not even the rest of the current read. */
  stop(): void {
    this.stopped = true;
    this.holding = false;
    this.scratch = NO_BYTES;
  }

  // ---- framing -------------------------------------------------------------------------------

  private frameAt(buf: Buffer, pos: number, end: number): number {
    let verb: LeafVerb;
    let text: Uint8Array;
    switch (buf[pos]! | LOWER) {
      case 0x6c: {
        // l: LS+, LS-, LMSG
        if (pos + 2 >= end) return this.needLine();
        const second = buf[pos + 1]! | LOWER;
        if (second === 0x73) {
          const third = buf[pos + 2]!;
          if (third === PLUS) [verb, text] = [LeafVerb.Interest, W_LS_PLUS];
          else if (third === MINUS) [verb, text] = [LeafVerb.InterestGone, W_LS_MINUS];
          else return this.unknown(buf, pos);
        } else if (second === 0x6d) [verb, text] = [LeafVerb.Lmsg, W_LMSG];
        else return this.unknown(buf, pos);
        break;
      }
      case 0x68:
        [verb, text] = [LeafVerb.Hmsg, W_HMSG];
        break;
      case 0x69:
        [verb, text] = [LeafVerb.Info, W_INFO];
        break;
      case 0x63:
        [verb, text] = [LeafVerb.Connect, W_CONNECT];
        break;
      case 0x70: {
        if (pos + 1 >= end) return this.needLine();
        const second = buf[pos + 1]! | LOWER;
        if (second === 0x69) [verb, text] = [LeafVerb.Ping, W_PING];
        else if (second === 0x6f) [verb, text] = [LeafVerb.Pong, W_PONG];
        else return this.unknown(buf, pos);
        break;
      }
      default:
        if (buf[pos] === PLUS) [verb, text] = [LeafVerb.Ok, W_OK];
        else if (buf[pos] === MINUS) [verb, text] = [LeafVerb.Err, W_ERR];
        else return this.unknown(buf, pos);
    }
    const matched = matchVerb(buf, pos, end, text);
    if (matched <= 0) return matched === 0 ? this.needLine() : this.unknown(buf, pos);
    const from = pos + text.length;
    if (from >= end) return this.needLine();
    const separator = buf[from]!;
    if (verb === LeafVerb.Ping || verb === LeafVerb.Pong || verb === LeafVerb.Ok) {
      if (!isBlank(separator) && separator !== CR && separator !== LF) return this.unknown(buf, pos);
      return this.bare(buf, pos, from, end, verb);
    }
    if (!isBlank(separator)) return this.unknown(buf, pos);
    switch (verb) {
      case LeafVerb.Interest:
      case LeafVerb.InterestGone:
        return this.interest(buf, pos, from, end, verb);
      case LeafVerb.Lmsg:
      case LeafVerb.Hmsg:
        return this.message(buf, pos, from, end, verb);
      case LeafVerb.Err:
        return this.err(buf, pos, from, end);
      default:
        return this.json(buf, pos, from, end, verb);
    }
  }

  private interest(buf: Buffer, pos: number, from: number, end: number, verb: LeafVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    const argc = this.argc;
    const plus = verb === LeafVerb.Interest;
    if (plus ? argc !== 1 && argc !== 3 : argc !== 1 && argc !== 2) {
      return this.malformed(plus ? "LS+ takes <subject> [<queue> <weight>]" : "LS- takes <subject> [queue]", buf, pos);
    }
    let weight = -1;
    if (plus && argc === 3) {
      weight = decimal(buf, this.argStart[2]!, this.argEnd[2]!, SIZE_DIGITS);
      if (weight < 0) return this.malformed("the queue weight is not a number of at most 9 digits", buf, pos);
    }
    const f = this.frame;
    f.reset(verb, buf, pos);
    f.end = lf + 1;
    f.subjectStart = this.argStart[0]!;
    f.subjectEnd = this.argEnd[0]!;
    if (argc > 1) {
      f.queueStart = this.argStart[1]!;
      f.queueEnd = this.argEnd[1]!;
    }
    f.weight = weight;
    return this.deliver(f.end);
  }

  private message(buf: Buffer, pos: number, from: number, end: number, verb: LeafVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    const headers = verb === LeafVerb.Hmsg;
    const sizes = headers ? 2 : 1;
    const argc = this.argc;
    const usage = headers ? "HMSG takes <subject> [reply | + <reply> <queue>... | \\| <queue>...] <header size> <size>" : "LMSG takes <subject> [reply | + <reply> <queue>... | \\| <queue>...] <size>";
    if (argc < 1 + sizes) return this.malformed(usage, buf, pos);
    const starts = this.argStart;
    const ends = this.argEnd;
    let replyArg = -1;
    let firstQueue = -1;
    const lastQueue = argc - sizes - 1;
    if (argc === 2 + sizes) replyArg = 1;
    else if (argc > 2 + sizes) {
      // args[1] is the reply indicator: `+` (a reply, then queues) or `|` (queues only).
      const marker = ends[1]! - starts[1]! === 1 ? buf[starts[1]!] : -1;
      if (marker === PLUS) {
        replyArg = 2;
        firstQueue = 3;
      } else if (marker === PIPE) firstQueue = 2;
      else return this.malformed("a message with queue groups needs `+ <reply>` or `|` after the subject", buf, pos);
    }
    const size = decimal(buf, starts[argc - 1]!, ends[argc - 1]!, SIZE_DIGITS);
    if (size < 0) return this.fail("malformed_frame", "the message size is missing or not a number of at most 9 digits", buf, pos);
    let headerSize = -1;
    if (headers) {
      headerSize = decimal(buf, starts[argc - 2]!, ends[argc - 2]!, SIZE_DIGITS);
      if (headerSize < 0) return this.fail("malformed_frame", "the header size is missing or not a number of at most 9 digits", buf, pos);
      if (headerSize > size) return this.fail("malformed_frame", "the header size is larger than the total size", buf, pos);
    }
    if (size > this.payloadLimit) return this.fail("max_payload_exceeded", `a payload of ${size} bytes exceeds max_payload ${this.payloadLimit}`, buf, pos);
    const payloadEnd = lf + 1 + size;
    if (payloadEnd + 2 > end) {
      this.frameTotal = payloadEnd + 2 - pos;
      return NEED_MORE;
    }
    if (buf[payloadEnd] !== CR || buf[payloadEnd + 1] !== LF) return this.fail("payload_terminator_missing", "the payload is not followed by CRLF (is the size right?)", buf, pos);
    const f = this.frame;
    f.reset(verb, buf, pos);
    f.end = payloadEnd + 2;
    f.subjectStart = starts[0]!;
    f.subjectEnd = ends[0]!;
    if (replyArg > 0) {
      f.replyStart = starts[replyArg]!;
      f.replyEnd = ends[replyArg]!;
    }
    if (firstQueue > 0 && firstQueue <= lastQueue) {
      f.queueStart = starts[firstQueue]!;
      f.queueEnd = ends[lastQueue]!;
    }
    f.sizesStart = starts[argc - sizes]!;
    f.headerSize = headerSize;
    f.payloadStart = lf + 1;
    f.payloadEnd = payloadEnd;
    return this.deliver(f.end);
  }

  /** INFO and CONNECT: the rest of the line is the JSON. */
  private json(buf: Buffer, pos: number, from: number, end: number, verb: LeafVerb): number {
    const lf = this.findLineEnd(buf, from, end, pos);
    if (lf < 0) return lf;
    const [start, stop] = this.trimmed(buf, from);
    if (start === stop) return this.malformed(verb === LeafVerb.Info ? "INFO takes <json>" : "CONNECT takes <json>", buf, pos);
    const f = this.frame;
    f.reset(verb, buf, pos);
    f.end = lf + 1;
    f.jsonStart = start;
    f.jsonEnd = stop;
    return this.deliver(f.end);
  }

  /** -ERR 'text': anything but a line end; the quotes are optional. */
  private err(buf: Buffer, pos: number, from: number, end: number): number {
    const lf = this.findLineEnd(buf, from, end, pos);
    if (lf < 0) return lf;
    let [start, stop] = this.trimmed(buf, from);
    if (stop - start >= 2 && buf[start] === QUOTE && buf[stop - 1] === QUOTE) {
      start++;
      stop--;
    }
    const f = this.frame;
    f.reset(LeafVerb.Err, buf, pos);
    f.end = lf + 1;
    f.errorStart = start;
    f.errorEnd = stop;
    return this.deliver(f.end);
  }

  private bare(buf: Buffer, pos: number, from: number, end: number, verb: LeafVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    if (this.argc !== 0) return this.malformed("PING, PONG and +OK take no arguments", buf, pos);
    const f = this.frame;
    f.reset(verb, buf, pos);
    f.end = lf + 1;
    return this.deliver(f.end);
  }

  private deliver(next: number): number {
    this.handler.onFrame(this.frame);
    return this.stopped ? STOPPED : next;
  }

  // ---- control lines -------------------------------------------------------------------------

  /**
   * Finds the LF of the control line that starts at `lineStart` (sets `lineEnd`, the CR or LF that
   * ends its text), or NEED_MORE, or STOPPED when the line is too long.
   */
  private findLineEnd(buf: Buffer, from: number, end: number, lineStart: number): number {
    const lf = buf.indexOf(LF, from);
    if (lf < 0 || lf >= end) {
      // maxControlLine + 2 bytes without an LF cannot end as a line short enough, even with a CR.
      if (end - lineStart >= this.maxControlLine + 2) return this.tooLong(buf, lineStart);
      return this.needLine();
    }
    const lineEnd = lf > from && buf[lf - 1] === CR ? lf - 1 : lf;
    if (lineEnd - lineStart > this.maxControlLine) return this.tooLong(buf, lineStart);
    this.lineEnd = lineEnd;
    return lf;
  }

  /**
   * Splits the line from `from` to its end into blank-separated arguments. A control byte other
   * than the final CR belongs to its argument (the rewriter refuses subjects that hold one).
   */
  private scanArgs(buf: Buffer, from: number, end: number, lineStart: number): number {
    const lf = this.findLineEnd(buf, from, end, lineStart);
    if (lf < 0) return lf;
    const lineEnd = this.lineEnd;
    let count = 0;
    let i = from;
    while (i < lineEnd) {
      while (i < lineEnd && isBlank(buf[i]!)) i++;
      if (i >= lineEnd) break;
      const start = i;
      while (i < lineEnd && !isBlank(buf[i]!)) i++;
      if (count === this.argStart.length) this.growArgs();
      this.argStart[count] = start;
      this.argEnd[count] = i;
      count++;
    }
    this.argc = count;
    return lf;
  }

  private growArgs(): void {
    const starts = new Int32Array(this.argStart.length * 2);
    const ends = new Int32Array(this.argEnd.length * 2);
    starts.set(this.argStart);
    ends.set(this.argEnd);
    this.argStart = starts;
    this.argEnd = ends;
  }

  /** The rest of the line from `from`, without blanks at either end. */
  private trimmed(buf: Buffer, from: number): [number, number] {
    let start = from;
    let end = this.lineEnd;
    while (start < end && isBlank(buf[start]!)) start++;
    while (end > start && isBlank(buf[end - 1]!)) end--;
    return [start, end];
  }

  private needLine(): number {
    this.frameTotal = -1;
    return NEED_MORE;
  }

  private tooLong(buf: Buffer, lineStart: number): number {
    return this.fail("max_control_line_exceeded", `control line longer than ${this.maxControlLine} bytes`, buf, lineStart);
  }

  private unknown(buf: Buffer, pos: number): number {
    return this.fail("unknown_protocol_operation", "not a leafnode protocol operation", buf, pos);
  }

  private malformed(message: string, buf: Buffer, pos: number): number {
    return this.fail("malformed_frame", message, buf, pos);
  }

  private fail(code: LeafProtocolErrorCode, message: string, buf: Buffer, at: number): number {
    // Past the bytes held, the scratch buffer holds older input: keep it out of the snippet.
    const err = new LeafProtocolError(code, message, buf === this.scratch ? buf.subarray(0, this.held) : buf, at);
    this.stop();
    this.handler.onError(err);
    return STOPPED;
  }

  // ---- frames that span reads -----------------------------------------------------------------

  private hold(chunk: Buffer, pos: number, end: number): void {
    const n = end - pos;
    this.heldTotal = this.frameTotal;
    this.grow(this.heldTotal >= 0 ? this.heldTotal : Math.max(n, SCRATCH_MIN), 0);
    chunk.copy(this.scratch, 0, pos, end);
    this.held = n;
    this.holding = true;
  }

  /** Completes the held frame from the start of `chunk`: where the rest of the chunk starts, or -1 when it was all used (or the parser stopped). */
  private resume(chunk: Buffer): number {
    let off = 0;
    if (this.heldTotal < 0) {
      // A control line without its LF so far: add bytes up to the LF, never more than a line may have.
      const lf = chunk.indexOf(LF);
      const wanted = lf < 0 ? chunk.length : lf + 1;
      const room = this.maxControlLine + 2 - this.held;
      const before = this.held;
      off = Math.min(wanted, room);
      if (this.held + off > this.scratch.length) this.grow(Math.max(this.held + off, 2 * this.scratch.length), this.held);
      chunk.copy(this.scratch, this.held, 0, off);
      this.held += off;
      // Nothing to decide while the line has no LF, its verb was checked, and it is short enough.
      if (lf < 0 && before >= VERB_ZONE && this.held < this.maxControlLine + 2) return -1;
      const next = this.frameAt(this.scratch, 0, this.held);
      if (next === STOPPED) return -1;
      if (next >= 0) {
        this.release();
        return off;
      }
      if (this.frameTotal < 0) return -1;
      this.heldTotal = this.frameTotal;
      this.grow(this.heldTotal, this.held);
    }
    const n = Math.min(this.heldTotal - this.held, chunk.length - off);
    chunk.copy(this.scratch, this.held, off, off + n);
    this.held += n;
    off += n;
    if (this.held < this.heldTotal) return -1;
    const next = this.frameAt(this.scratch, 0, this.held);
    if (next === STOPPED) return -1;
    this.release();
    return off;
  }

  private grow(size: number, keep: number): void {
    if (this.scratch.length >= size) return;
    const next = Buffer.allocUnsafe(size);
    if (keep > 0) this.scratch.copy(next, 0, 0, keep);
    this.scratch = next;
  }

  private release(): void {
    this.holding = false;
    this.held = 0;
    this.heldTotal = -1;
    if (this.scratch.length > SCRATCH_KEEP) this.scratch = NO_BYTES;
  }
}

/**
 * Byte-level parsers for the NATS wire protocol, one per direction.
 *
 * `parse(chunk)` takes each socket read and calls `onFrame` synchronously for every complete frame
 * in it, in order. A frame that lies entirely inside the chunk is described by offsets into the
 * chunk itself; only a frame that spans reads is copied, into a scratch buffer the parser reuses
 * (sized once from the payload length when the control line is known, so a large payload arriving
 * in many reads costs one copy, not a copy per read).
 *
 * Errors: a protocol violation is reported once through `onError` and the parser then ignores all
 * further input; `parse` itself never throws for bad input, so the caller ends only the session
 * whose bytes they were. The same error is reported whatever the read boundaries were.
 *
 * The grammar follows nats-server 2.9 (server/parser.go, server/client.go): verbs in any case,
 * arguments separated by runs of spaces and tabs, control lines ending in CRLF or a bare LF, and a
 * payload followed by exactly CRLF. Where nats-server is looser than any stock client needs, this
 * parser is strict: no blanks before the verb, a blank after CONNECT/INFO, nothing but blanks after
 * PING/PONG/+OK, and numeric sids (nats-server accepts any token as a sid).
 * The parsers know nothing about tenants or rewriting.
 */
import { ClientFrame, ClientVerb, ProtocolError, ServerFrame, ServerVerb } from "./frames.ts";
import type { ProtocolErrorCode } from "./frames.ts";

export interface ClientFrameHandler {
  /** A complete frame; `frame` and its buffer are valid only during this call. */
  onFrame(frame: ClientFrame): void;
  /** The peer broke the protocol: called once, after which the parser ignores all input. */
  onError(err: ProtocolError): void;
}

export interface ServerFrameHandler {
  /** A complete frame; `frame` and its buffer are valid only during this call. */
  onFrame(frame: ServerFrame): void;
  /** The peer broke the protocol: called once, after which the parser ignores all input. */
  onError(err: ProtocolError): void;
}

export interface ParserOptions {
  /**
   * Longest control line, from the verb up to its line end (CR LF excluded). nats-server's
   * `max_control_line` counts only the arguments, so this is a few bytes stricter.
   */
  maxControlLine?: number;
  /** Largest payload, headers included; usually set later from the server's INFO `max_payload`. */
  maxPayload?: number;
}

/** nats-server's defaults for `max_control_line` and `max_payload`. */
const DEFAULT_MAX_CONTROL_LINE = 4096;
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;
/**
 * What nats-server sends may be longer than what a client may send: INFO lists cluster URLs, and
 * MSG lines carry the subjects of other clients (nats-server 2.10+ allows its own non-client
 * peers 16 times `max_control_line`). No server sends a payload over its `max_payload`, which may
 * not exceed `max_pending`, 64 MiB unless configured otherwise.
 */
const SERVER_MAX_CONTROL_LINE = 16 * DEFAULT_MAX_CONTROL_LINE;
const SERVER_MAX_PAYLOAD = 64 * 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const TAB = 0x09;
const QUOTE = 0x27;
const PLUS = 0x2b;
const MINUS = 0x2d;
/** OR-ing a letter with this lowercases it. */
const LOWER = 0x20;

/** frameAt: the frame is not complete before `end`. */
const NEED_MORE = -1;
/** frameAt: the parser failed or was stopped; stop reading. */
const STOPPED = -2;

/** HMSG has the most arguments: subject sid reply header-size total-size. */
const MAX_ARGS = 5;
/** Like nats-server's parseSize: at most 9 digits (999,999,999). */
const SIZE_DIGITS = 9;
/** Sids and UNSUB max: as many digits as a double holds exactly. */
const ID_DIGITS = 15;
/** The longest verb with its separator (`CONNECT `): a held line this short is re-checked. */
const VERB_ZONE = 8;
/** A scratch buffer larger than this is dropped once its frame is delivered. */
const SCRATCH_KEEP = 64 * 1024;
const SCRATCH_MIN = 1024;

const NO_BYTES = Buffer.alloc(0);
const NO_VIEW = new DataView(new ArrayBuffer(0));

function word(text: string): Uint8Array {
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

const W_CONNECT = word("connect");
const W_PUB = word("pub");
const W_HPUB = word("hpub");
const W_SUB = word("sub");
const W_UNSUB = word("unsub");
const W_PING = word("ping");
const W_PONG = word("pong");
const W_INFO = word("info");
const W_MSG = word("msg");
const W_HMSG = word("hmsg");
const W_OK = word("+ok");
const W_ERR = word("-err");

/**
 * Compares `buf[pos + from ...]` with the rest of a lowercase verb, ignoring the case of letters:
 * 1 when it matches, 0 when the bytes so far match but the buffer ends first, -1 otherwise.
 */
function matchVerb(buf: Buffer, pos: number, end: number, verb: Uint8Array, from: number): number {
  for (let i = from; i < verb.length; i++) {
    if (pos + i >= end) return 0;
    if ((buf[pos + i]! | LOWER) !== verb[i]) return -1;
  }
  return 1;
}

/** A decimal number written in `buf[start, end)`, or -1 when it is not digits only or too long. */
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

/** The framing both directions share: control lines, sizes, frames that span reads. */
abstract class ProtocolParser {
  private readonly maxControlLine: number;
  protected payloadLimit: number;
  private stopped = false;

  // A frame that spans reads is gathered in `scratch`: `held` bytes so far, of `heldTotal` once
  // its control line is complete (-1 until then).
  private scratch: Buffer = NO_BYTES;
  private holding = false;
  private held = 0;
  private heldTotal = -1;

  /** Set with NEED_MORE: the frame's total length once its control line is complete, else -1. */
  protected frameTotal = -1;
  /** The current control line: its arguments (blank-separated) and where it ends. */
  protected argc = 0;
  protected readonly argStart = new Int32Array(MAX_ARGS);
  protected readonly argEnd = new Int32Array(MAX_ARGS);
  protected lineEnd = -1;
  private viewBuf: Buffer = NO_BYTES;
  private view: DataView = NO_VIEW;
  /** A whole-line argument (JSON, error text), see `trimRest`. */
  protected restStart = -1;
  protected restEnd = -1;
  /** Set by `payloadEnd`. */
  protected headerSize = -1;

  protected constructor(maxControlLine: number, maxPayload: number) {
    if (!Number.isInteger(maxControlLine) || maxControlLine < 32) {
      throw new RangeError(`maxControlLine must be an integer of at least 32, got ${maxControlLine}`);
    }
    this.maxControlLine = maxControlLine;
    this.payloadLimit = 0;
    this.maxPayload = maxPayload;
  }

  /** Largest payload accepted (headers included); settable once the server's INFO is known. */
  get maxPayload(): number {
    return this.payloadLimit;
  }

  set maxPayload(bytes: number) {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`maxPayload must be a non-negative integer, got ${bytes}`);
    this.payloadLimit = bytes;
  }

  /** Whether the parser has stopped reading, after an error or `stop()`. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /**
   * Reads one socket read, calling the handler for each complete frame. A handler that throws
   * stops the parser, and the exception propagates out of `parse`.
   */
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
    } finally {
      // The read is done with: an idle session keeps no view of it (nor the read's memory).
      this.viewBuf = NO_BYTES;
      this.view = NO_VIEW;
    }
  }

  /** Stops reading: no frame is delivered after this, not even the rest of the current chunk. */
  stop(): void {
    this.stopped = true;
    this.holding = false;
    this.scratch = NO_BYTES;
  }

  /**
   * Reads the frame at `buf[pos]`, delivering it when complete, and returns where the next frame
   * starts; or NEED_MORE (with `frameTotal` set) when the frame goes past `end`; or STOPPED.
   */
  protected abstract frameAt(buf: Buffer, pos: number, end: number): number;

  /** The frame ends in a later read; its control line is not complete yet. */
  protected needLine(): number {
    this.frameTotal = -1;
    return NEED_MORE;
  }

  /**
   * Splits the control line that starts at `lineStart` into blank-separated arguments, from
   * `from` (just after the verb) to its line end. Returns the index of the LF, NEED_MORE, or
   * STOPPED when the line is too long. Bytes other than blanks (a stray CR) belong to arguments;
   * one CR right before the LF is the line end.
   */
  protected scanArgs(buf: Buffer, from: number, end: number, lineStart: number): number {
    const lf = this.findLineEnd(buf, from, end, lineStart);
    if (lf < 0) return lf;
    const lineEnd = this.lineEnd;
    const starts = this.argStart;
    const ends = this.argEnd;
    const view = this.viewOf(buf);
    const lastWord = buf.length - 4;
    let count = 0;
    let i = from;
    // The byte at lineEnd is a CR or the LF: both stop the loops below.
    for (;;) {
      let b = buf[i]!;
      while (b === SP || b === TAB) b = buf[++i]!;
      if (i >= lineEnd) break;
      const start = i;
      for (;;) {
        // Four bytes at a time while none of them is below 0x21 (a blank, CR, LF or other
        // control byte): the word trick is exact for "is any byte below n", n <= 128.
        while (i <= lastWord) {
          const w = view.getUint32(i, true);
          if (((w - 0x21212121) & ~w & 0x80808080) !== 0) break;
          i += 4;
        }
        b = buf[i]!;
        while (b > SP) b = buf[++i]!;
        // A control byte inside the line (a stray CR) belongs to the argument.
        if (b === SP || b === TAB || i >= lineEnd) break;
        i++;
      }
      if (count < MAX_ARGS) {
        starts[count] = start;
        ends[count] = i;
      }
      count++;
    }
    this.argc = count;
    return lf;
  }

  private viewOf(buf: Buffer): DataView {
    if (buf !== this.viewBuf) {
      this.viewBuf = buf;
      this.view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    }
    return this.view;
  }

  /**
   * Finds the end of a control line whose argument is taken whole (CONNECT, INFO, -ERR): the
   * index of its LF, NEED_MORE, or STOPPED. Sets `lineEnd`.
   */
  protected findLineEnd(buf: Buffer, from: number, end: number, lineStart: number): number {
    const lf = buf.indexOf(LF, from);
    if (lf < 0 || lf >= end) return this.lineIncomplete(buf, end, lineStart);
    const lineEnd = lf > from && buf[lf - 1] === CR ? lf - 1 : lf;
    if (lineEnd - lineStart > this.maxControlLine) return this.controlLineTooLong(buf, lineStart);
    this.lineEnd = lineEnd;
    return lf;
  }

  private lineIncomplete(buf: Buffer, end: number, lineStart: number): number {
    // maxControlLine + 2 bytes without an LF cannot end as a line short enough, even with a CR.
    if (end - lineStart >= this.maxControlLine + 2) return this.controlLineTooLong(buf, lineStart);
    return this.needLine();
  }

  private controlLineTooLong(buf: Buffer, lineStart: number): number {
    return this.fail("max_control_line_exceeded", `control line longer than ${this.maxControlLine} bytes`, buf, lineStart);
  }

  /** Reports a violation once and stops the parser; returns STOPPED. */
  protected fail(code: ProtocolErrorCode, message: string, buf: Buffer, at: number): number {
    // Past the bytes held, the scratch buffer holds older input: keep it out of the snippet.
    const err = new ProtocolError(code, message, buf === this.scratch ? buf.subarray(0, this.held) : buf, at);
    this.stop();
    this.reportError(err);
    return STOPPED;
  }

  protected abstract reportError(err: ProtocolError): void;

  /**
   * The payload of PUB, HPUB, MSG or HMSG, whose control line at `lineStart` ends with the LF at
   * `lf` and has its size last, preceded by the header size when `headers`. Checks the sizes and
   * that the payload is there and followed by CRLF; returns where the payload ends (`headerSize`
   * set), NEED_MORE or STOPPED.
   */
  protected payloadEnd(buf: Buffer, lineStart: number, lf: number, end: number, headers: boolean): number {
    const last = this.argc - 1;
    const size = decimal(buf, this.argStart[last]!, this.argEnd[last]!, SIZE_DIGITS);
    if (size < 0) return this.fail("malformed_frame", "the message size is missing or not a number of at most 9 digits", buf, lineStart);
    let headerSize = -1;
    if (headers) {
      headerSize = decimal(buf, this.argStart[last - 1]!, this.argEnd[last - 1]!, SIZE_DIGITS);
      if (headerSize < 0) return this.fail("malformed_frame", "the header size is missing or not a number of at most 9 digits", buf, lineStart);
      if (headerSize > size) return this.fail("malformed_frame", "the header size is larger than the total size", buf, lineStart);
    }
    if (size > this.payloadLimit) return this.payloadTooLarge(size, buf, lineStart);
    this.headerSize = headerSize;
    const payloadEnd = lf + 1 + size;
    if (payloadEnd + 2 > end) {
      this.frameTotal = payloadEnd + 2 - lineStart;
      return NEED_MORE;
    }
    if (buf[payloadEnd] !== CR || buf[payloadEnd + 1] !== LF) {
      return this.fail("payload_terminator_missing", "the payload is not followed by CRLF (is the size right?)", buf, lineStart);
    }
    return payloadEnd;
  }

  private payloadTooLarge(size: number, buf: Buffer, lineStart: number): number {
    return this.fail("max_payload_exceeded", `a payload of ${size} bytes exceeds max_payload ${this.payloadLimit}`, buf, lineStart);
  }

  /** Sets `restStart`/`restEnd` to the rest of the line, `from` to `lineEnd`, without blanks at either end. */
  protected trimRest(buf: Buffer, from: number): void {
    let start = from;
    let end = this.lineEnd;
    while (start < end && isBlank(buf[start]!)) start++;
    while (end > start && isBlank(buf[end - 1]!)) end--;
    this.restStart = start;
    this.restEnd = end;
  }

  /** Keeps the unfinished frame at `chunk[pos, end)` until the next read. */
  private hold(chunk: Buffer, pos: number, end: number): void {
    const n = end - pos;
    this.heldTotal = this.frameTotal;
    this.grow(this.heldTotal >= 0 ? this.heldTotal : Math.max(n, SCRATCH_MIN), 0);
    chunk.copy(this.scratch, 0, pos, end);
    this.held = n;
    this.holding = true;
  }

  /**
   * Completes the held frame with the start of `chunk`. Returns where the rest of the chunk
   * starts, or -1 when the chunk was all used (or the parser stopped).
   */
  private resume(chunk: Buffer): number {
    let off = 0;
    if (this.heldTotal < 0) {
      // The held bytes are a control line without its LF: add bytes up to the LF, but never
      // more than a line may have.
      const lf = chunk.indexOf(LF);
      const wanted = lf < 0 ? chunk.length : lf + 1;
      const room = this.maxControlLine + 2 - this.held;
      const before = this.held;
      off = Math.min(wanted, room);
      if (this.held + off > this.scratch.length) this.grow(Math.max(this.held + off, 2 * this.scratch.length), this.held);
      chunk.copy(this.scratch, this.held, 0, off);
      this.held += off;
      // Nothing to decide yet while the line has no LF, its verb was already checked, and it
      // is still short enough.
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

  /** Makes the scratch buffer at least `size` bytes, keeping its first `keep` bytes. */
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

/** Reads what a client sends: CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG. */
export class ClientProtocolParser extends ProtocolParser {
  private readonly handler: ClientFrameHandler;
  private readonly frame = new ClientFrame();

  constructor(handler: ClientFrameHandler, options: ParserOptions = {}) {
    super(options.maxControlLine ?? DEFAULT_MAX_CONTROL_LINE, options.maxPayload ?? DEFAULT_MAX_PAYLOAD);
    this.handler = handler;
  }

  protected override reportError(err: ProtocolError): void {
    this.handler.onError(err);
  }

  protected override frameAt(buf: Buffer, pos: number, end: number): number {
    let verb: ClientVerb;
    let text: Uint8Array;
    switch (buf[pos]! | LOWER) {
      case 0x70: {
        // p: PUB, PING, PONG
        if (pos + 1 >= end) return this.needLine();
        const second = buf[pos + 1]! | LOWER;
        if (second === 0x75) {
          verb = ClientVerb.Pub;
          text = W_PUB;
        } else if (second === 0x69) {
          verb = ClientVerb.Ping;
          text = W_PING;
        } else if (second === 0x6f) {
          verb = ClientVerb.Pong;
          text = W_PONG;
        } else {
          return this.unknown(buf, pos);
        }
        break;
      }
      case 0x68:
        verb = ClientVerb.Hpub;
        text = W_HPUB;
        break;
      case 0x73:
        verb = ClientVerb.Sub;
        text = W_SUB;
        break;
      case 0x75:
        verb = ClientVerb.Unsub;
        text = W_UNSUB;
        break;
      case 0x63:
        verb = ClientVerb.Connect;
        text = W_CONNECT;
        break;
      default:
        return this.unknown(buf, pos);
    }
    const matched = matchVerb(buf, pos, end, text, 1);
    if (matched <= 0) return matched === 0 ? this.needLine() : this.unknown(buf, pos);
    const from = pos + text.length;
    if (from >= end) return this.needLine();
    const separator = buf[from]!;
    if (verb === ClientVerb.Ping || verb === ClientVerb.Pong) {
      if (!isBlank(separator) && separator !== CR && separator !== LF) return this.unknown(buf, pos);
      return this.bare(buf, pos, from, end, verb);
    }
    if (!isBlank(separator)) return this.unknown(buf, pos);
    switch (verb) {
      case ClientVerb.Pub:
      case ClientVerb.Hpub:
        return this.pub(buf, pos, from, end, verb);
      case ClientVerb.Sub:
        return this.sub(buf, pos, from, end);
      case ClientVerb.Unsub:
        return this.unsub(buf, pos, from, end);
      default:
        return this.connect(buf, pos, from, end);
    }
  }

  private pub(buf: Buffer, pos: number, from: number, end: number, verb: ClientVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    const headers = verb === ClientVerb.Hpub;
    const argc = this.argc;
    const withReply = headers ? 4 : 3;
    if (argc !== withReply && argc !== withReply - 1) {
      return this.malformed(headers ? "HPUB takes <subject> [reply] <header size> <total size>" : "PUB takes <subject> [reply] <size>", buf, pos);
    }
    const payloadEnd = this.payloadEnd(buf, pos, lf, end, headers);
    if (payloadEnd < 0) return payloadEnd;
    const frame = this.frame;
    frame.reset(verb, buf, pos);
    frame.end = payloadEnd + 2;
    frame.subjectStart = this.argStart[0]!;
    frame.subjectEnd = this.argEnd[0]!;
    if (argc === withReply) {
      frame.replyStart = this.argStart[1]!;
      frame.replyEnd = this.argEnd[1]!;
    }
    frame.headerSize = this.headerSize;
    frame.payloadStart = lf + 1;
    frame.payloadEnd = payloadEnd;
    return this.deliver(frame.end);
  }

  private sub(buf: Buffer, pos: number, from: number, end: number): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    const argc = this.argc;
    if (argc !== 2 && argc !== 3) return this.malformed("SUB takes <subject> [queue] <sid>", buf, pos);
    const starts = this.argStart;
    const ends = this.argEnd;
    const sidStart = starts[argc - 1]!;
    const sidEnd = ends[argc - 1]!;
    const sid = decimal(buf, sidStart, sidEnd, ID_DIGITS);
    if (sid < 0) return this.malformed("the sid is not a number of at most 15 digits", buf, pos);
    const frame = this.frame;
    frame.reset(ClientVerb.Sub, buf, pos);
    frame.end = lf + 1;
    frame.subjectStart = starts[0]!;
    frame.subjectEnd = ends[0]!;
    if (argc === 3) {
      frame.queueStart = starts[1]!;
      frame.queueEnd = ends[1]!;
    }
    frame.sidStart = sidStart;
    frame.sidEnd = sidEnd;
    frame.sid = sid;
    return this.deliver(frame.end);
  }

  private unsub(buf: Buffer, pos: number, from: number, end: number): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    const argc = this.argc;
    if (argc !== 1 && argc !== 2) return this.malformed("UNSUB takes <sid> [max]", buf, pos);
    const starts = this.argStart;
    const ends = this.argEnd;
    const sid = decimal(buf, starts[0]!, ends[0]!, ID_DIGITS);
    if (sid < 0) return this.malformed("the sid is not a number of at most 15 digits", buf, pos);
    let max = -1;
    if (argc === 2) {
      max = decimal(buf, starts[1]!, ends[1]!, ID_DIGITS);
      if (max < 0) return this.malformed("the UNSUB max is not a number of at most 15 digits", buf, pos);
    }
    const frame = this.frame;
    frame.reset(ClientVerb.Unsub, buf, pos);
    frame.end = lf + 1;
    frame.sidStart = starts[0]!;
    frame.sidEnd = ends[0]!;
    frame.sid = sid;
    frame.max = max;
    return this.deliver(frame.end);
  }

  private connect(buf: Buffer, pos: number, from: number, end: number): number {
    const lf = this.findLineEnd(buf, from, end, pos);
    if (lf < 0) return lf;
    this.trimRest(buf, from);
    const jsonStart = this.restStart;
    const jsonEnd = this.restEnd;
    if (jsonStart === jsonEnd) return this.malformed("CONNECT takes <json>", buf, pos);
    const frame = this.frame;
    frame.reset(ClientVerb.Connect, buf, pos);
    frame.end = lf + 1;
    frame.jsonStart = jsonStart;
    frame.jsonEnd = jsonEnd;
    return this.deliver(frame.end);
  }

  /** PING and PONG: nothing but blanks may follow the verb. */
  private bare(buf: Buffer, pos: number, from: number, end: number, verb: ClientVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    if (this.argc !== 0) return this.malformed("PING and PONG take no arguments", buf, pos);
    const frame = this.frame;
    frame.reset(verb, buf, pos);
    frame.end = lf + 1;
    return this.deliver(frame.end);
  }

  private deliver(next: number): number {
    this.handler.onFrame(this.frame);
    return this.isStopped ? STOPPED : next;
  }

  private unknown(buf: Buffer, pos: number): number {
    return this.fail("unknown_protocol_operation", "not a NATS client protocol operation", buf, pos);
  }

  private malformed(message: string, buf: Buffer, pos: number): number {
    return this.fail("malformed_frame", message, buf, pos);
  }
}

/** Reads what nats-server sends to a client: INFO, MSG, HMSG, PING, PONG, +OK, -ERR. */
export class ServerProtocolParser extends ProtocolParser {
  private readonly handler: ServerFrameHandler;
  private readonly frame = new ServerFrame();

  constructor(handler: ServerFrameHandler, options: ParserOptions = {}) {
    super(options.maxControlLine ?? SERVER_MAX_CONTROL_LINE, options.maxPayload ?? SERVER_MAX_PAYLOAD);
    this.handler = handler;
  }

  protected override reportError(err: ProtocolError): void {
    this.handler.onError(err);
  }

  protected override frameAt(buf: Buffer, pos: number, end: number): number {
    let verb: ServerVerb;
    let text: Uint8Array;
    const first = buf[pos]!;
    if (first === PLUS) {
      verb = ServerVerb.Ok;
      text = W_OK;
    } else if (first === MINUS) {
      verb = ServerVerb.Err;
      text = W_ERR;
    } else {
      switch (first | LOWER) {
        case 0x6d:
          verb = ServerVerb.Msg;
          text = W_MSG;
          break;
        case 0x68:
          verb = ServerVerb.Hmsg;
          text = W_HMSG;
          break;
        case 0x69:
          verb = ServerVerb.Info;
          text = W_INFO;
          break;
        case 0x70: {
          if (pos + 1 >= end) return this.needLine();
          const second = buf[pos + 1]! | LOWER;
          if (second === 0x69) {
            verb = ServerVerb.Ping;
            text = W_PING;
          } else if (second === 0x6f) {
            verb = ServerVerb.Pong;
            text = W_PONG;
          } else {
            return this.unknown(buf, pos);
          }
          break;
        }
        default:
          return this.unknown(buf, pos);
      }
    }
    const matched = matchVerb(buf, pos, end, text, 1);
    if (matched <= 0) return matched === 0 ? this.needLine() : this.unknown(buf, pos);
    const from = pos + text.length;
    if (from >= end) return this.needLine();
    const separator = buf[from]!;
    if (verb === ServerVerb.Ping || verb === ServerVerb.Pong || verb === ServerVerb.Ok) {
      if (!isBlank(separator) && separator !== CR && separator !== LF) return this.unknown(buf, pos);
      return this.bare(buf, pos, from, end, verb);
    }
    if (!isBlank(separator)) return this.unknown(buf, pos);
    switch (verb) {
      case ServerVerb.Msg:
      case ServerVerb.Hmsg:
        return this.msg(buf, pos, from, end, verb);
      case ServerVerb.Info:
        return this.info(buf, pos, from, end);
      default:
        return this.err(buf, pos, from, end);
    }
  }

  private msg(buf: Buffer, pos: number, from: number, end: number, verb: ServerVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    const headers = verb === ServerVerb.Hmsg;
    const argc = this.argc;
    const withReply = headers ? 5 : 4;
    if (argc !== withReply && argc !== withReply - 1) {
      return this.malformed(headers ? "HMSG takes <subject> <sid> [reply] <header size> <total size>" : "MSG takes <subject> <sid> [reply] <size>", buf, pos);
    }
    const sid = decimal(buf, this.argStart[1]!, this.argEnd[1]!, ID_DIGITS);
    if (sid < 0) return this.malformed("the sid is not a number of at most 15 digits", buf, pos);
    const payloadEnd = this.payloadEnd(buf, pos, lf, end, headers);
    if (payloadEnd < 0) return payloadEnd;
    const frame = this.frame;
    frame.reset(verb, buf, pos);
    frame.end = payloadEnd + 2;
    frame.subjectStart = this.argStart[0]!;
    frame.subjectEnd = this.argEnd[0]!;
    frame.sidStart = this.argStart[1]!;
    frame.sidEnd = this.argEnd[1]!;
    frame.sid = sid;
    if (argc === withReply) {
      frame.replyStart = this.argStart[2]!;
      frame.replyEnd = this.argEnd[2]!;
    }
    frame.headerSize = this.headerSize;
    frame.payloadStart = lf + 1;
    frame.payloadEnd = payloadEnd;
    return this.deliver(frame.end);
  }

  private info(buf: Buffer, pos: number, from: number, end: number): number {
    const lf = this.findLineEnd(buf, from, end, pos);
    if (lf < 0) return lf;
    this.trimRest(buf, from);
    const jsonStart = this.restStart;
    const jsonEnd = this.restEnd;
    if (jsonStart === jsonEnd) return this.malformed("INFO takes <json>", buf, pos);
    const frame = this.frame;
    frame.reset(ServerVerb.Info, buf, pos);
    frame.end = lf + 1;
    frame.jsonStart = jsonStart;
    frame.jsonEnd = jsonEnd;
    return this.deliver(frame.end);
  }

  /** -ERR 'text': the text may contain anything but a line end; the quotes are optional. */
  private err(buf: Buffer, pos: number, from: number, end: number): number {
    const lf = this.findLineEnd(buf, from, end, pos);
    if (lf < 0) return lf;
    this.trimRest(buf, from);
    let errorStart = this.restStart;
    let errorEnd = this.restEnd;
    if (errorEnd - errorStart >= 2 && buf[errorStart] === QUOTE && buf[errorEnd - 1] === QUOTE) {
      errorStart++;
      errorEnd--;
    }
    const frame = this.frame;
    frame.reset(ServerVerb.Err, buf, pos);
    frame.end = lf + 1;
    frame.errorStart = errorStart;
    frame.errorEnd = errorEnd;
    return this.deliver(frame.end);
  }

  /** PING, PONG and +OK: nothing but blanks may follow the verb. */
  private bare(buf: Buffer, pos: number, from: number, end: number, verb: ServerVerb): number {
    const lf = this.scanArgs(buf, from, end, pos);
    if (lf < 0) return lf;
    if (this.argc !== 0) return this.malformed("PING, PONG and +OK take no arguments", buf, pos);
    const frame = this.frame;
    frame.reset(verb, buf, pos);
    frame.end = lf + 1;
    return this.deliver(frame.end);
  }

  private deliver(next: number): number {
    this.handler.onFrame(this.frame);
    return this.isStopped ? STOPPED : next;
  }

  private unknown(buf: Buffer, pos: number): number {
    return this.fail("unknown_protocol_operation", "not a NATS server protocol operation", buf, pos);
  }

  private malformed(message: string, buf: Buffer, pos: number): number {
    return this.fail("malformed_frame", message, buf, pos);
  }
}

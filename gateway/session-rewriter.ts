/**
 * What a client session needs from the part that decides what crosses: bytes in, bytes out, and
 * the reasons to end. Edge sessions (one tenant, subjects rewritten) and platform sessions (the
 * PLATFORM account, audited) each have their own rewriter behind this interface; the session
 * around it owns the sockets and the flow control.
 */
import { OutputBuffer } from "./protocol/encoder.ts";
import { SubjectVerdict } from "./subject-rules.ts";

export interface SessionCounters {
  msgsIn: number;
  bytesIn: number;
  msgsOut: number;
  bytesOut: number;
  /** Messages from NATS on subjects the session does not own: never delivered. */
  dropped: number;
}

/** Why a session must end: a log event, a stable code, and the -ERR text the client gets (if any). */
export interface SessionEnd {
  event: string;
  code: string;
  reason: string;
  errText?: string;
  subject?: string;
}

/** What a rewriter reports; the session logs it. */
export interface RewriterEvents {
  ended(end: SessionEnd): void;
  dropped(kind: "subject" | "reply", subject: string): void;
  jetStreamRefused(api: string, code: number, reason: string, description: string): void;
  natsError(text: string): void;
  /** NATS said it is entering lame duck mode. */
  natsLameDuck(): void;
}

export interface SessionRewriter {
  readonly counters: SessionCounters;
  readonly ended: SessionEnd | undefined;
  /** Client bytes in; the bytes to send to NATS (or undefined). Check `ended` afterwards. */
  clientData(chunk: Buffer): Buffer | undefined;
  /** NATS bytes in; the bytes to send to the client (or undefined). */
  upstreamData(chunk: Buffer): Buffer | undefined;
  /** Whatever is still buffered for the client, e.g. before closing. */
  pendingForClient(): Buffer | undefined;
  /** Frames accepted before the one that ended the session, still owed to NATS. */
  pendingForUpstream(): Buffer | undefined;
  /** An INFO for the client (limits, lame duck), after whatever is already pending for it. */
  info(info: object): Buffer;
  /** The session is over (flush what the rewriter keeps, e.g. audit summaries). */
  closed?(): void;
}

export const REFUSAL_CODES: Record<number, string> = {
  [SubjectVerdict.Wildcard]: "subject_wildcard",
  [SubjectVerdict.EmptyToken]: "subject_empty_token",
  [SubjectVerdict.Reserved]: "subject_reserved",
  [SubjectVerdict.ControlCharacter]: "subject_control_character",
};

/** `-ERR '<text>'\r\n`, the text made safe for the framing. */
export function errFrame(text: string): Buffer {
  const out = new OutputBuffer(256);
  out.err(text);
  return out.take();
}

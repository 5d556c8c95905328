/**
 * The audit trail of cross-tenant access: who (platform identity), which tenant, what operation,
 * which subject, when. Each record goes to the log and to the PLATFORM account's audit stream
 * (`_tg.audit.<tenant>.<identity>`), which `tenant-gateway audit` reads.
 *
 * Recording is rate-aware: a subscription is one record however many messages it receives; a
 * repeated publish, request or JetStream call on the same subject within a window is one record
 * when first seen and one summary with its count when the window closes.
 */
import type { Logger } from "../common/logger.ts";

export const AUDIT_STREAM = "tenant_gateway_audit";
export const AUDIT_SUBJECT_PREFIX = "_tg.audit";
/** The tenant token for operations that span every tenant (`*.events.>`). */
export const ALL_TENANTS = "_all";

/**
 * `receive`: messages of a tenant delivered on one subscription (one record, then summaries).
 * `admin_api`: a change made through the admin API or the console (`api` names it, `subject` is the request).
 */
export type AuditOperation = "subscribe" | "unsubscribe" | "receive" | "publish" | "request" | "jetstream_api" | "jetstream_ack" | "kv_write" | "admin_api";

export interface AuditRecord {
  time: string;
  identity: string;
  cn: string;
  session: string;
  tenant: string;
  operation: AuditOperation;
  subject: string;
  /** For summaries: how many times within the window (1 for a first sighting). */
  count: number;
  /** JetStream API verb, when operation is jetstream_api; the change (`tenant.suspend`, …) when admin_api. */
  api?: string;
  remote?: string;
}

export function auditSubject(tenant: string, identity: string): string {
  return `${AUDIT_SUBJECT_PREFIX}.${tenant}.${identity}`;
}

/** Where records go besides the log: the audit stream. */
export type AuditSink = (subject: string, record: AuditRecord) => void;

export class AuditTrail {
  private readonly log: Logger;
  private readonly sink: AuditSink | undefined;

  constructor(log: Logger, sink?: AuditSink) {
    this.log = log;
    this.sink = sink;
  }

  record(r: AuditRecord): void {
    this.log.info({ event: "audit", ...r }, `audit: ${r.identity} ${r.operation} ${r.subject} (${r.tenant})`);
    this.sink?.(auditSubject(r.tenant, r.identity), r);
  }
}

interface WindowEntry {
  record: Omit<AuditRecord, "time" | "count">;
  count: number;
}

/** One platform session's view of the trail: dedups within a window, flushes summaries. */
export class SessionAudit {
  private readonly trail: AuditTrail;
  private readonly base: { identity: string; cn: string; session: string; remote?: string };
  private readonly windowMs: number;
  private window = new Map<string, WindowEntry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(trail: AuditTrail, base: { identity: string; cn: string; session: string; remote?: string }, windowMs: number) {
    this.trail = trail;
    this.base = base;
    this.windowMs = windowMs;
  }

  /** Recorded at once, every time (subscriptions: rare, and each one matters). */
  now(operation: AuditOperation, tenant: string, subject: string, extra: { api?: string } = {}): void {
    this.trail.record({ time: new Date().toISOString(), ...this.base, tenant, operation, subject, count: 1, ...extra });
  }

  /** Recorded when first seen in the window; repeats are counted into the window's summary. */
  repeated(operation: AuditOperation, tenant: string, subject: string, extra: { api?: string } = {}): void {
    const key = `${operation}\u0000${tenant}\u0000${subject}`;
    const entry = this.window.get(key);
    if (entry) {
      entry.count++;
      return;
    }
    const record = { ...this.base, tenant, operation, subject, ...extra };
    this.window.set(key, { record, count: 0 });
    this.trail.record({ time: new Date().toISOString(), ...record, count: 1 });
    if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.windowMs);
      this.timer.unref();
    }
  }

  /** Writes the summaries of repeats and starts a new window. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const window = this.window;
    this.window = new Map();
    for (const { record, count } of window.values()) {
      if (count > 0) this.trail.record({ time: new Date().toISOString(), ...record, count });
    }
  }
}

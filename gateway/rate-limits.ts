/**
 * The plans' publish rate limits, per tenant, in this gateway process: every session of a tenant
 * charges what it publishes (messages, payload bytes) to its tenant's bucket, and when the bucket is
 * in debt the session stops reading its client until the debt is paid back. Nothing is dropped: the
 * client's own socket fills and its library waits, as with any slow server. NATS accounts have no
 * such limit; with several gateway processes each enforces the plan's rate on its own share of the
 * tenant's clients.
 */
import { promises as fs } from "node:fs";
import type { Logger } from "../common/logger.ts";
import { errorMessage } from "../common/coded-error.ts";
import { getPlan, loadPlans, plansFilePath, rateLimits, UNLIMITED_RATE, type PlanFile, type PlanRateLimits } from "../accounts/plans.ts";

/** Longest single pause; a longer debt is paid over several (so a closing session is never held long). */
const MAX_PAUSE_MS = 1000;

/**
 * A token bucket per measure (messages, bytes), holding at most one second of the rate: a burst of
 * a second's worth passes at once, then the rate. A charge may take the balance below zero (a read
 * is never cut in two); `charge` says how long until it is back at zero.
 */
export class RateBucket {
  private limits: PlanRateLimits;
  private messages: number;
  private bytes: number;
  private last: number;

  constructor(limits: PlanRateLimits, now = performance.now()) {
    this.limits = limits;
    this.messages = limits.messages_per_second;
    this.bytes = limits.bytes_per_second;
    this.last = now;
  }

  get unlimited(): boolean {
    return this.limits.messages_per_second < 0 && this.limits.bytes_per_second < 0;
  }

  /** New limits (the plan or the plans file changed); the balance carries over, capped at the new burst. */
  configure(limits: PlanRateLimits): void {
    this.refill(performance.now());
    this.limits = limits;
    this.messages = Math.min(this.messages, limits.messages_per_second);
    this.bytes = Math.min(this.bytes, limits.bytes_per_second);
  }

  /** Charges what was just published; returns the milliseconds to wait before reading more (0: go on). */
  charge(messages: number, bytes: number, now = performance.now()): number {
    if (this.unlimited) return 0;
    this.refill(now);
    let wait = 0;
    if (this.limits.messages_per_second > 0) {
      this.messages -= messages;
      if (this.messages < 0) wait = Math.max(wait, (-this.messages * 1000) / this.limits.messages_per_second);
    }
    if (this.limits.bytes_per_second > 0) {
      this.bytes -= bytes;
      if (this.bytes < 0) wait = Math.max(wait, (-this.bytes * 1000) / this.limits.bytes_per_second);
    }
    return Math.min(MAX_PAUSE_MS, Math.ceil(wait));
  }

  private refill(now: number): void {
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.last = now;
    const { messages_per_second: m, bytes_per_second: b } = this.limits;
    if (m > 0) this.messages = Math.min(m, this.messages + elapsed * m);
    if (b > 0) this.bytes = Math.min(b, this.bytes + elapsed * b);
  }
}

export interface TenantRatesOptions {
  dataDir: string;
  /** The plan a tenant is on now (undefined: not known here). */
  planOf: (slug: string) => string | undefined;
  log: Logger;
  /** How often the plans file is checked for an edit. */
  pollMs: number;
}

/** Every tenant's bucket in this process, kept in step with the plans file and the tenants' plans. */
export class TenantRates {
  private readonly opts: TenantRatesOptions;
  private readonly buckets = new Map<string, RateBucket>();
  private plans: PlanFile | undefined;
  private plansMtime = -1;
  private readonly timer: NodeJS.Timeout;

  constructor(opts: TenantRatesOptions) {
    this.opts = opts;
    this.timer = setInterval(() => void this.reload(), opts.pollMs);
    this.timer.unref();
    void this.reload();
  }

  /** The tenant's bucket, shared by all its sessions (one that is unlimited now may be limited later). */
  bucket(slug: string): RateBucket {
    let bucket = this.buckets.get(slug);
    if (!bucket) {
      bucket = new RateBucket(this.limitsOf(slug));
      this.buckets.set(slug, bucket);
    }
    return bucket;
  }

  /** The tenant's plan may have changed. */
  tenantChanged(slug: string): void {
    this.buckets.get(slug)?.configure(this.limitsOf(slug));
  }

  tenantRemoved(slug: string): void {
    this.buckets.delete(slug);
  }

  close(): void {
    clearInterval(this.timer);
  }

  private limitsOf(slug: string): PlanRateLimits {
    const plan = this.opts.planOf(slug);
    if (!plan || !this.plans) return UNLIMITED_RATE;
    try {
      return rateLimits(getPlan(this.plans, plan));
    } catch {
      // A plan missing from this gateway's plans file: no gateway limit (NATS's limits still hold).
      return UNLIMITED_RATE;
    }
  }

  private async reload(): Promise<void> {
    try {
      const mtime = await fs.stat(plansFilePath(this.opts.dataDir)).then(
        (s) => s.mtimeMs,
        () => 0,
      );
      if (mtime === this.plansMtime) return;
      // Taken first: a file that does not read is reported once, and read again when it changes.
      this.plansMtime = mtime;
      this.plans = await loadPlans(this.opts.dataDir);
      for (const slug of this.buckets.keys()) this.tenantChanged(slug);
      const limited = Object.entries(this.plans.plans).filter(([, p]) => p.rate_limits).map(([name, p]) => ({ plan: name, ...rateLimits(p) }));
      this.opts.log.info({ event: "rate_limits_loaded", plans: limited }, "publish rate limits of the plans in force");
    } catch (err) {
      // A plans file being edited may be invalid for a moment: the last good one stays in force.
      this.opts.log.warn({ event: "plans_reload_failed", error: errorMessage(err) }, "the plans file could not be read; keeping the rate limits in force");
    }
  }
}

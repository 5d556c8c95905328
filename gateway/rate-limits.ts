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
  /** The fair-share cap on messages/s while the process is saturated (see FairShare); none when undefined. */
  private fairCap: number | undefined;
  private messages: number;
  private bytes: number;
  private last: number;
  /** Messages charged since the last `takeUsage()`. */
  private used = 0;

  constructor(limits: PlanRateLimits, now = performance.now()) {
    this.limits = limits;
    this.messages = limits.messages_per_second;
    this.bytes = limits.bytes_per_second;
    this.last = now;
  }

  get unlimited(): boolean {
    return this.messageRate < 0 && this.limits.bytes_per_second < 0;
  }

  /** The fair-share cap in force, if any. */
  get cap(): number | undefined {
    return this.fairCap;
  }

  /** Messages/s: the plan's limit, lowered by the fair-share cap; -1 when neither limits. */
  private get messageRate(): number {
    const plan = this.limits.messages_per_second;
    if (this.fairCap === undefined) return plan;
    return plan > 0 ? Math.min(plan, this.fairCap) : this.fairCap;
  }

  /** The most messages a burst may carry: a second of the plan's rate, a tenth of one of a fair-share cap. */
  private get messageBurst(): number {
    const plan = this.limits.messages_per_second;
    const fair = this.fairCap === undefined ? Infinity : this.fairCap * FAIR_BURST_S;
    return Math.min(plan > 0 ? plan : Infinity, fair);
  }

  /** New limits (the plan or the plans file changed); the balance carries over, capped at the new burst. */
  configure(limits: PlanRateLimits): void {
    this.refill(performance.now());
    this.limits = limits;
    this.messages = Math.min(this.messages, this.messageBurst);
    this.bytes = Math.min(this.bytes, limits.bytes_per_second);
  }

  /** Sets or lifts (undefined) the fair-share cap on messages/s. */
  setCap(messagesPerSecond: number | undefined, now = performance.now()): void {
    this.refill(now);
    const wasLimited = this.messageRate > 0;
    this.fairCap = messagesPerSecond;
    if (!wasLimited) this.messages = this.messageBurst;
    this.messages = Math.min(this.messages, this.messageBurst);
  }

  /** Messages charged since the last call. */
  takeUsage(): number {
    const used = this.used;
    this.used = 0;
    return used;
  }

  /** Charges what was just published; returns the milliseconds to wait before reading more (0: go on). */
  charge(messages: number, bytes: number, now = performance.now()): number {
    this.used += messages;
    if (this.unlimited) return 0;
    this.refill(now);
    let wait = 0;
    const rate = this.messageRate;
    if (rate > 0) {
      this.messages -= messages;
      if (this.messages < 0) wait = Math.max(wait, (-this.messages * 1000) / rate);
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
    const m = this.messageRate;
    const b = this.limits.bytes_per_second;
    if (m > 0) this.messages = Math.min(this.messageBurst, this.messages + elapsed * m);
    if (b > 0) this.bytes = Math.min(b, this.bytes + elapsed * b);
  }
}

/** How often the fair share looks at the event loop and the tenants' publishing. */
export const FAIR_INTERVAL_MS = 100;
/** Event-loop utilisation (busy share of the interval) at which the process counts as saturated: `fair_share_busy`'s default. */
export const FAIR_BUSY_HIGH = 0.8;
/** Caps are raised again only below the saturation mark by this much. */
const FAIR_BUSY_HYSTERESIS = 0.2;
/** A saturated step lowers the heaviest tenant's cap to this share of what it published. */
const FAIR_DECREASE = 0.7;
/** A relaxed step raises every cap by this factor. */
const FAIR_INCREASE = 1.25;
/** A fair-share cap never goes below this (messages/s). */
export const FAIR_MIN_CAP = 1000;
/** A fair-share cap's burst: this many seconds of it. */
const FAIR_BURST_S = 0.1;

/**
 * One step of the fair share, a pure decision. `busy` is the event loop's utilisation over the
 * step (0–1). While the process is saturated (`busy` ≥ `high`) and more than one tenant
 * publishes, the tenant that published most — at least half of all messages — is capped at 70% of
 * its observed rate (again each step saturation lasts, never below FAIR_MIN_CAP). Once the loop
 * has room (`busy` under `high` − 0.2), caps grow by a quarter each step and are lifted once they
 * no longer bind (four times what the tenant publishes) or nobody else publishes. A tenant alone
 * on the gateway is never capped: the load is its own. Returns the new caps (messages/s).
 */
export function fairShareStep(caps: ReadonlyMap<string, number>, busy: number, usage: ReadonlyMap<string, number>, intervalMs: number, high = FAIR_BUSY_HIGH): Map<string, number> {
  const next = new Map(caps);
  const active = [...usage].filter(([, n]) => n > 0);
  const total = active.reduce((sum, [, n]) => sum + n, 0);
  const rate = (slug: string): number => ((usage.get(slug) ?? 0) * 1000) / intervalMs;
  if (busy >= high && active.length >= 2) {
    const [top, most] = active.reduce((a, b) => (b[1] > a[1] ? b : a));
    if (most * 2 >= total) next.set(top, Math.max(FAIR_MIN_CAP, Math.min(caps.get(top) ?? Infinity, rate(top) * FAIR_DECREASE)));
  } else if (busy < high - FAIR_BUSY_HYSTERESIS) {
    for (const [slug, cap] of caps) {
      const raised = cap * FAIR_INCREASE;
      if (active.length < 2 || raised > 4 * Math.max(rate(slug), FAIR_MIN_CAP)) next.delete(slug);
      else next.set(slug, raised);
    }
  }
  return next;
}

/** Sessions keep sharing event-loop turns this long after two tenants last published together. */
export const READ_TURNS_LINGER_MS = 1000;

/**
 * One step of the read-turn gate, a pure decision: sessions share event-loop turns (see
 * client-session.ts) while at least two tenants publish, and for READ_TURNS_LINGER_MS after. A
 * tenant alone would only pay for them: a pause and a resume of its socket every 16 KiB, which
 * protects no one (under light load no session reads 16 KiB in a turn, so they cost nothing).
 * Returns whether turns are on and when two tenants last published together.
 */
export function readTurnsStep(lastContendedAt: number, now: number, activeTenants: number): { on: boolean; lastContendedAt: number } {
  const last = activeTenants >= 2 ? now : lastContendedAt;
  return { on: now - last < READ_TURNS_LINGER_MS, lastContendedAt: last };
}

export interface TenantRatesOptions {
  dataDir: string;
  /** The plan a tenant is on now (undefined: not known here). */
  planOf: (slug: string) => string | undefined;
  log: Logger;
  /** How often the plans file is checked for an edit. */
  pollMs: number;
  /** Event-loop utilisation (0–1) at which the fair share caps the heaviest tenant; 0: never. */
  fairShareBusy: number;
}

/** Every tenant's bucket in this process, kept in step with the plans file and the tenants' plans. */
export class TenantRates {
  private readonly opts: TenantRatesOptions;
  private readonly buckets = new Map<string, RateBucket>();
  private plans: PlanFile | undefined;
  private plansMtime = -1;
  private readonly timer: NodeJS.Timeout;
  private readonly fairTimer: NodeJS.Timeout;
  private fairAt = performance.now();
  private loopAt = performance.eventLoopUtilization();
  private caps = new Map<string, number>();
  private turns = false;
  private lastContendedAt = -Infinity;

  constructor(opts: TenantRatesOptions) {
    this.opts = opts;
    this.timer = setInterval(() => void this.reload(), opts.pollMs);
    this.timer.unref();
    this.fairTimer = setInterval(() => this.fairShare(), FAIR_INTERVAL_MS);
    this.fairTimer.unref();
    if (opts.fairShareBusy <= 0) clearInterval(this.fairTimer);
    void this.reload();
  }

  /**
   * The fair share between tenants (see fairShareStep): one tenant's flood must not take the event
   * loop from its neighbours. How busy the loop was comes from Node's event-loop utilisation.
   */
  private fairShare(): void {
    const now = performance.now();
    const elapsed = now - this.fairAt;
    this.fairAt = now;
    const loop = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(loop, this.loopAt).utilization;
    this.loopAt = loop;
    const usage = new Map<string, number>();
    for (const [slug, bucket] of this.buckets) usage.set(slug, bucket.takeUsage());
    const turns = readTurnsStep(this.lastContendedAt, now, [...usage.values()].filter((n) => n > 0).length);
    if (turns.on !== this.turns) this.opts.log.debug({ event: turns.on ? "read_turns_on" : "read_turns_off" }, turns.on ? "several tenants publish: sessions share event-loop turns" : "one tenant or none publishes: sessions read freely again");
    this.turns = turns.on;
    this.lastContendedAt = turns.lastContendedAt;
    const next = fairShareStep(this.caps, busy, usage, elapsed, this.opts.fairShareBusy);
    for (const [slug, cap] of next) {
      if (this.caps.get(slug) === cap) continue;
      if (!this.caps.has(slug)) this.opts.log.warn({ event: "fair_share_capped", tenant: slug, messages_per_second: Math.round(cap), event_loop_busy: Math.round(busy * 100) / 100 }, "the gateway is saturated: capping the tenant that publishes most, so its neighbours are served");
      this.buckets.get(slug)?.setCap(cap, now);
    }
    for (const slug of this.caps.keys()) {
      if (next.has(slug)) continue;
      this.opts.log.info({ event: "fair_share_lifted", tenant: slug }, "fair-share cap lifted");
      this.buckets.get(slug)?.setCap(undefined, now);
    }
    this.caps = next;
  }

  /** Sessions share event-loop turns now (see readTurnsStep). */
  get contended(): boolean {
    return this.turns;
  }

  /** Tenants capped by the fair share now, with their cap (messages/s). */
  get fairCaps(): ReadonlyMap<string, number> {
    return this.caps;
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
    this.caps.delete(slug);
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.fairTimer);
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

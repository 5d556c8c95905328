/**
 * The gateway's live view of the tenant registry: which CAs it trusts (the TrustStore that
 * identify() consults), each tenant's status, the certificates revoked, and the account signing
 * keys it mints user JWTs with. It follows the store's watch (and the platform's trust state), so a
 * new tenant, a suspension, a deletion, a CA rotation or a revocation takes effect for the next
 * connection without a restart; listeners hear about each change — and about the end of each CA
 * overlap, when it comes — so live sessions can be re-checked (see `onChange`).
 */
import { X509Certificate } from "node:crypto";
import { decode, type Account } from "@nats-io/jwt";
import type { Logger } from "../common/logger.ts";
import { errorMessage } from "../common/coded-error.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { PLATFORM_TRUST_KEY, readPlatformTrust } from "../accounts/platform-trust.ts";
import type { PreviousCa, RevokedCertificate, TenantRecord, TenantStore } from "../accounts/tenant-store.ts";
import { UserJwtCache, type AccountSigner } from "../accounts/user-jwt.ts";
import { spkiSha256 } from "../pki/certificates.ts";
import type { Identity, KnownCa, TrustStore } from "../pki/identity.ts";

export interface TenantEntry {
  record: TenantRecord;
  signer: AccountSigner;
  ca: KnownCa & { kind: "tenant" };
  /** CAs rotated out, admitted until their deadline. */
  previousCas: Array<KnownCa & { kind: "tenant" }>;
  /** Revoked certificates by SHA-256 fingerprint. */
  revoked: ReadonlyMap<string, RevokedCertificate>;
  /** The account's payload limit as NATS enforces it (from the account JWT); -1 when unlimited. */
  maxPayload: number;
}

/**
 * A change of one tenant. `revoked`: fingerprints revoked by this change; `overlapEnded`: a previous
 * CA's deadline has just passed (no registry change: the directory's own timer).
 */
export type TenantEvent = { slug: string; kind: "added" | "changed" | "removed"; status?: TenantRecord["status"]; revoked?: string[]; overlapEnded?: boolean };

/** A change of the platform's trust: platform CA rotation, platform certificates revoked, an overlap ended. */
export type PlatformEvent = { revoked?: string[]; overlapEnded?: boolean };

/** The key gateway.ts caches platform users under (no tenant's slug can collide with it). */
const PLATFORM_USERS = "\u0000platform";
/** A tenant that could not be read is read again after this, doubling up to the max. */
const REFRESH_RETRY_MS = 500;
const REFRESH_RETRY_MAX_MS = 10_000;
/**
 * How often the whole registry is compared with what the directory holds: the safety net under the
 * watch (a change the watch never delivered — nats-server 2.9 can skip a message — is applied
 * within this time).
 */
export const RECONCILE_MS = 30_000;
/** setTimeout's longest delay; a later deadline is reached in steps. */
const MAX_TIMER_MS = 2_147_483_647;

function previousCas<K extends "tenant" | "platform">(list: readonly PreviousCa[] | undefined, make: (cert: X509Certificate) => KnownCa & { kind: K }): Array<KnownCa & { kind: K }> {
  return (list ?? []).map((p) => ({ ...make(new X509Certificate(p.cert_pem)), admittedUntil: new Date(p.admitted_until) }));
}

export class TenantDirectory implements TrustStore {
  readonly root: X509Certificate;
  readonly users = new UserJwtCache();
  /** The platform CA(s) the gateway started with (its data dir's files). */
  private readonly filePlatformCas: Array<KnownCa & { kind: "platform" }>;
  /** From the registry's platform trust state: the CA of the last rotation and the previous ones. */
  private trustedPlatformCas: Array<KnownCa & { kind: "platform" }> = [];
  private platformRevoked = new Map<string, RevokedCertificate>();
  private readonly tenants = new Map<string, TenantEntry>();
  private readonly bySubject = new Map<string, KnownCa[]>();
  private readonly listeners = new Set<(event: TenantEvent) => void>();
  private readonly platformListeners = new Set<(event: PlatformEvent) => void>();
  private readonly deadlines = new Map<string, NodeJS.Timeout>();
  private readonly store: TenantStore;
  private readonly log: Logger;
  private stopWatches: Array<() => void> = [];
  private readonly refreshRetries = new Map<string, { attempt: number; timer?: NodeJS.Timeout }>();
  /** The platform trust state last applied, to tell a missed change from none. */
  private platformTrustJson = "";
  /** Tenants not held for want of signing secrets, by slug: the record last read (not a missed change). */
  private readonly withoutSecrets = new Map<string, string>();
  private reconcileTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(store: TenantStore, root: X509Certificate, platformCas: X509Certificate[], log: Logger) {
    this.store = store;
    this.root = root;
    this.log = log;
    this.filePlatformCas = platformCas.map((cert) => ({ kind: "platform" as const, cert, spki: spkiSha256(cert) }));
  }

  static async open(store: TenantStore, root: X509Certificate, platformCas: X509Certificate[], log: Logger, opts: { reconcileMs?: number } = {}): Promise<TenantDirectory> {
    const dir = new TenantDirectory(store, root, platformCas, log);
    // Watch first, then load: a change made in between is seen twice rather than missed.
    dir.stopWatches.push(await store.watch((change) => void dir.refresh(change.slug)));
    dir.stopWatches.push(await store.watchEntry("platform", PLATFORM_TRUST_KEY, () => void dir.refreshPlatform()));
    for (const record of await store.list()) await dir.load(record);
    await dir.loadPlatform();
    dir.reindex();
    for (const slug of dir.tenants.keys()) dir.scheduleDeadlines(slug);
    dir.scheduleDeadlines(undefined);
    const reconcileMs = opts.reconcileMs ?? RECONCILE_MS;
    if (reconcileMs > 0) {
      dir.reconcileTimer = setInterval(() => void dir.reconcile(), reconcileMs);
      dir.reconcileTimer.unref();
    }
    return dir;
  }

  /**
   * Compares the whole registry with what the directory holds and refreshes every tenant that
   * differs (or appeared, or is gone) and the platform trust state if it changed. Returns the
   * slugs it corrected; a correction means the watch missed a change, and is logged as such.
   */
  async reconcile(): Promise<string[]> {
    if (this.closed) return [];
    let records: TenantRecord[];
    let trustJson: string;
    try {
      records = await this.store.list();
      trustJson = JSON.stringify((await readPlatformTrust(this.store)).trust);
    } catch (err) {
      this.log.warn({ event: "reconcile_failed", err: errorMessage(err) }, "could not read the registry to reconcile; the watch still applies changes");
      return [];
    }
    const listed = new Set(records.map((r) => r.slug));
    const held = (slug: string): string | undefined => {
      const record = this.tenants.get(slug)?.record;
      return record ? JSON.stringify(record) : this.withoutSecrets.get(slug);
    };
    const differing = records.filter((r) => JSON.stringify(r) !== held(r.slug)).map((r) => r.slug);
    const gone = [...this.tenants.keys()].filter((slug) => !listed.has(slug));
    // A tenant already being read again (with backoff) is left to that.
    const missed = [...differing, ...gone].filter((slug) => !this.refreshRetries.has(slug));
    for (const slug of missed) await this.refresh(slug);
    const platform = trustJson !== this.platformTrustJson;
    if (platform) await this.refreshPlatform();
    if (missed.length > 0 || platform) this.log.warn({ event: "registry_reconciled", tenants: missed, platform }, "the registry watch had missed changes; applied them");
    else this.log.debug({ event: "registry_reconcile", tenants: records.length }, "registry and gateway view agree");
    return missed;
  }

  /**
   * Every tenant change, and the end of each of its CA overlaps. Sessions of a suspended or deleted
   * tenant must end; for the others, a session whose certificate is no longer admitted (revoked,
   * its CA's overlap ended) is found by running admission again on its certificate. NATS already
   * cuts a revoked certificate's sessions itself (its user is revoked in the account).
   */
  onChange(listener: (event: TenantEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onPlatformChange(listener: (event: PlatformEvent) => void): () => void {
    this.platformListeners.add(listener);
    return () => this.platformListeners.delete(listener);
  }

  get(slug: string): TenantEntry | undefined {
    return this.tenants.get(slug);
  }

  get size(): number {
    return this.tenants.size;
  }

  slugs(): IterableIterator<string> {
    return this.tenants.keys();
  }

  casBySubject(subject: string): readonly KnownCa[] {
    return this.bySubject.get(subject) ?? [];
  }

  activeTenantCaSpki(slug: string): string | undefined {
    return this.tenants.get(slug)?.ca.spki;
  }

  /** The revocation of this identity's certificate, if it is revoked. */
  revocation(identity: Identity): RevokedCertificate | undefined {
    const revoked = identity.kind === "edge" ? this.tenants.get(identity.tenant)?.revoked : this.platformRevoked;
    return revoked?.get(identity.fingerprint);
  }

  /** Re-reads one tenant from the store (called by the watch; safe to call any time). */
  async refresh(slug: string): Promise<void> {
    const before = this.tenants.get(slug);
    try {
      const record = await this.store.get(slug);
      if (!record) {
        this.withoutSecrets.delete(slug);
        if (before) {
          this.tenants.delete(slug);
          this.users.forgetTenant(slug);
          this.reindex();
          this.scheduleDeadlines(slug);
          this.emit({ slug, kind: "removed" });
        }
        return;
      }
      await this.load(record);
      this.users.forgetTenant(slug);
      this.reindex();
      this.scheduleDeadlines(slug);
      const revoked = [...(this.tenants.get(slug)?.revoked.keys() ?? [])].filter((fp) => !before?.revoked.has(fp));
      this.emit({ slug, kind: before ? "changed" : "added", status: record.status, ...(revoked.length > 0 ? { revoked } : {}) });
      const pending = this.refreshRetries.get(slug);
      if (pending?.timer) clearTimeout(pending.timer);
      this.refreshRetries.delete(slug);
    } catch (err) {
      // A tenant that cannot be read keeps its last good state; nothing else is affected. The
      // change is not lost: read again, with backoff, until it succeeds (a NATS node restarting
      // under the KV store, a timeout under load).
      const attempt = (this.refreshRetries.get(slug)?.attempt ?? 0) + 1;
      const delay = Math.min(REFRESH_RETRY_MAX_MS, REFRESH_RETRY_MS * 2 ** (attempt - 1));
      this.log.error({ event: "tenant_refresh_failed", tenant: slug, err: errorMessage(err), retry_in_ms: delay }, "could not reload tenant from the store; retrying");
      if (this.closed || this.refreshRetries.get(slug)?.timer) return;
      const timer = setTimeout(() => {
        this.refreshRetries.set(slug, { attempt });
        void this.refresh(slug);
      }, delay);
      timer.unref();
      this.refreshRetries.set(slug, { attempt, timer });
    }
  }

  /**
   * Reads one tenant's record and refreshes it only when it differs from the one held (status,
   * CA, revocations, plan…): a cheap check for callers that cannot rely on the watch alone.
   */
  async recheck(slug: string): Promise<void> {
    try {
      const record = await this.store.get(slug);
      const held = this.tenants.get(slug)?.record;
      if (record && held && JSON.stringify(record) === JSON.stringify(held)) return;
      if (!record && !held) return;
    } catch {
      return; // the next check, or the watch, will do
    }
    await this.refresh(slug);
  }

  /** Re-reads the platform's trust state (called by its watch). */
  async refreshPlatform(): Promise<void> {
    const before = this.platformRevoked;
    try {
      await this.loadPlatform();
      this.users.forgetTenant(PLATFORM_USERS);
      this.reindex();
      this.scheduleDeadlines(undefined);
      const revoked = [...this.platformRevoked.keys()].filter((fp) => !before.has(fp));
      this.log.info({ event: "platform_trust_changed", platform_cas: this.trustedPlatformCas.length, revoked: this.platformRevoked.size }, "platform trust change applied");
      this.emitPlatform(revoked.length > 0 ? { revoked } : {});
    } catch (err) {
      this.log.error({ event: "platform_refresh_failed", err: errorMessage(err) }, "could not reload the platform trust state; keeping the last good one");
    }
  }

  private async load(record: TenantRecord): Promise<void> {
    // The signing seed alone: a data-plane data dir holds no CA key or account identity seed.
    const secrets = await this.store.getSigningSecrets(record.slug);
    this.withoutSecrets.delete(record.slug);
    if (!secrets) {
      this.withoutSecrets.set(record.slug, JSON.stringify(record));
      this.log.warn({ event: "tenant_without_secrets", tenant: record.slug }, "tenant has no signing key in the store; its clients will be refused");
      return;
    }
    const cert = new X509Certificate(record.ca_cert_pem);
    const limits = decode<Account>(record.account_jwt).nats.limits;
    const tenantCa = (c: X509Certificate): KnownCa & { kind: "tenant" } => ({ kind: "tenant", slug: record.slug, cert: c, spki: spkiSha256(c) });
    this.tenants.set(record.slug, {
      record,
      signer: { account: record.account_public_key, signingKey: NativeKeyPair.fromSeed(secrets.signing_seed) },
      ca: tenantCa(cert),
      previousCas: previousCas(record.previous_cas, tenantCa),
      revoked: new Map((record.revoked_certificates ?? []).map((r) => [r.fingerprint_sha256, r])),
      maxPayload: typeof limits?.payload === "number" ? limits.payload : -1,
    });
  }

  private async loadPlatform(): Promise<void> {
    const { trust } = await readPlatformTrust(this.store);
    this.platformTrustJson = JSON.stringify(trust);
    const platformCa = (cert: X509Certificate): KnownCa & { kind: "platform" } => ({ kind: "platform", cert, spki: spkiSha256(cert) });
    this.trustedPlatformCas = [...(trust.ca_cert_pem ? [platformCa(new X509Certificate(trust.ca_cert_pem))] : []), ...previousCas(trust.previous_cas, platformCa)];
    this.platformRevoked = new Map(trust.revoked_certificates.map((r) => [r.fingerprint_sha256, r]));
  }

  private reindex(): void {
    this.bySubject.clear();
    const add = (ca: KnownCa): void => {
      const list = this.bySubject.get(ca.cert.subject);
      if (list) list.push(ca);
      else this.bySubject.set(ca.cert.subject, [ca]);
    };
    // The registry's word on a platform CA wins over the files the gateway started with: a CA
    // rotated out since start-up is admitted only until its deadline.
    const fromRegistry = new Set(this.trustedPlatformCas.map((ca) => ca.spki));
    for (const ca of this.trustedPlatformCas) add(ca);
    for (const ca of this.filePlatformCas) if (!fromRegistry.has(ca.spki)) add(ca);
    for (const entry of this.tenants.values()) {
      add(entry.ca);
      for (const ca of entry.previousCas) if (ca.spki !== entry.ca.spki) add(ca);
    }
  }

  /** A timer at the next overlap deadline of a tenant (or of the platform: `undefined`) still ahead. */
  private scheduleDeadlines(slug: string | undefined): void {
    const key = slug ?? PLATFORM_USERS;
    const existing = this.deadlines.get(key);
    if (existing) clearTimeout(existing);
    this.deadlines.delete(key);
    const cas = slug === undefined ? this.trustedPlatformCas : (this.tenants.get(slug)?.previousCas ?? []);
    const now = Date.now();
    const next = cas.map((ca) => ca.admittedUntil?.getTime() ?? 0).filter((t) => t > now).sort((a, b) => a - b)[0];
    if (next === undefined) return;
    const wait = next - now;
    const timer = setTimeout(() => {
      this.deadlines.delete(key);
      if (wait > MAX_TIMER_MS) return this.scheduleDeadlines(slug);
      this.scheduleDeadlines(slug);
      if (slug === undefined) {
        this.log.info({ event: "ca_overlap_ended", scope: "platform" }, "a previous platform CA's overlap ended: its certificates are refused from now on");
        this.emitPlatform({ overlapEnded: true });
      } else if (this.tenants.has(slug)) {
        this.log.info({ event: "ca_overlap_ended", tenant: slug }, "a previous tenant CA's overlap ended: its certificates are refused from now on");
        this.users.forgetTenant(slug);
        this.emit({ slug, kind: "changed", status: this.tenants.get(slug)!.record.status, overlapEnded: true });
      }
    }, Math.min(wait + 1, MAX_TIMER_MS));
    timer.unref();
    this.deadlines.set(key, timer);
  }

  private emit(event: TenantEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private emitPlatform(event: PlatformEvent): void {
    for (const listener of this.platformListeners) listener(event);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.reconcileTimer);
    for (const stop of this.stopWatches) stop();
    this.stopWatches = [];
    for (const { timer } of this.refreshRetries.values()) if (timer) clearTimeout(timer);
    this.refreshRetries.clear();
    for (const timer of this.deadlines.values()) clearTimeout(timer);
    this.deadlines.clear();
    this.listeners.clear();
    this.platformListeners.clear();
  }
}

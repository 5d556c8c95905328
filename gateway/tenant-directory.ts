/**
 * The gateway's live view of the tenant registry: which CAs it trusts (the TrustStore that
 * identify() consults), each tenant's status, and the account signing keys it mints user JWTs
 * with. It follows the store's watch, so a new tenant, a suspension, a deletion or a CA change
 * takes effect for the next connection without a restart; listeners hear about each change so
 * sessions of a suspended or deleted tenant can be closed at once.
 */
import { X509Certificate } from "node:crypto";
import { decode, type Account } from "@nats-io/jwt";
import type { Logger } from "../common/logger.ts";
import { errorMessage } from "../common/coded-error.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import type { TenantRecord, TenantStore } from "../accounts/tenant-store.ts";
import { UserJwtCache, type AccountSigner } from "../accounts/user-jwt.ts";
import { spkiSha256 } from "../pki/certificates.ts";
import type { KnownCa, TrustStore } from "../pki/identity.ts";

export interface TenantEntry {
  record: TenantRecord;
  signer: AccountSigner;
  ca: KnownCa & { kind: "tenant" };
  /** The account's payload limit as NATS enforces it (from the account JWT); -1 when unlimited. */
  maxPayload: number;
}

export type TenantEvent = { slug: string; kind: "added" | "changed" | "removed"; status?: TenantRecord["status"] };

export class TenantDirectory implements TrustStore {
  readonly root: X509Certificate;
  readonly users = new UserJwtCache();
  private readonly platformCas: Array<KnownCa & { kind: "platform" }>;
  private readonly tenants = new Map<string, TenantEntry>();
  private readonly bySubject = new Map<string, KnownCa[]>();
  private readonly listeners = new Set<(event: TenantEvent) => void>();
  private readonly store: TenantStore;
  private readonly log: Logger;
  private stopWatch: (() => void) | undefined;

  private constructor(store: TenantStore, root: X509Certificate, platformCas: X509Certificate[], log: Logger) {
    this.store = store;
    this.root = root;
    this.log = log;
    this.platformCas = platformCas.map((cert) => ({ kind: "platform" as const, cert, spki: spkiSha256(cert) }));
  }

  static async open(store: TenantStore, root: X509Certificate, platformCas: X509Certificate[], log: Logger): Promise<TenantDirectory> {
    const dir = new TenantDirectory(store, root, platformCas, log);
    // Watch first, then load: a change made in between is seen twice rather than missed.
    dir.stopWatch = await store.watch((change) => void dir.refresh(change.slug));
    for (const record of await store.list()) await dir.load(record);
    dir.reindex();
    return dir;
  }

  onChange(listener: (event: TenantEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
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

  /** Re-reads one tenant from the store (called by the watch; safe to call any time). */
  async refresh(slug: string): Promise<void> {
    const before = this.tenants.get(slug);
    try {
      const record = await this.store.get(slug);
      if (!record) {
        if (before) {
          this.tenants.delete(slug);
          this.users.forgetTenant(slug);
          this.reindex();
          this.emit({ slug, kind: "removed" });
        }
        return;
      }
      await this.load(record);
      this.users.forgetTenant(slug);
      this.reindex();
      this.emit({ slug, kind: before ? "changed" : "added", status: record.status });
    } catch (err) {
      // A tenant that cannot be read keeps its last good state; nothing else is affected.
      this.log.error({ event: "tenant_refresh_failed", tenant: slug, err: errorMessage(err) }, "could not reload tenant from the store");
    }
  }

  private async load(record: TenantRecord): Promise<void> {
    // The signing seed alone: a data-plane data dir holds no CA key or account identity seed.
    const secrets = await this.store.getSigningSecrets(record.slug);
    if (!secrets) {
      this.log.warn({ event: "tenant_without_secrets", tenant: record.slug }, "tenant has no signing key in the store; its clients will be refused");
      return;
    }
    const cert = new X509Certificate(record.ca_cert_pem);
    const limits = decode<Account>(record.account_jwt).nats.limits;
    this.tenants.set(record.slug, {
      record,
      signer: { account: record.account_public_key, signingKey: NativeKeyPair.fromSeed(secrets.signing_seed) },
      ca: { kind: "tenant", slug: record.slug, cert, spki: spkiSha256(cert) },
      maxPayload: typeof limits?.payload === "number" ? limits.payload : -1,
    });
  }

  private reindex(): void {
    this.bySubject.clear();
    const add = (ca: KnownCa): void => {
      const list = this.bySubject.get(ca.cert.subject);
      if (list) list.push(ca);
      else this.bySubject.set(ca.cert.subject, [ca]);
    };
    for (const ca of this.platformCas) add(ca);
    for (const entry of this.tenants.values()) add(entry.ca);
  }

  private emit(event: TenantEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  close(): void {
    this.stopWatch?.();
    this.listeners.clear();
  }
}

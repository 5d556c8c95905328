/**
 * Tenant lifecycle: create, list, show, suspend, resume, delete, sync. Each operation takes effect
 * in the running NATS at once (account JWT pushed with $SYS.REQ.CLAIMS.UPDATE) — never a NATS
 * restart, never a config edit. A create interrupted at any point leaves a `provisioning` record
 * that `tenant create` or `sync` completes, or (before the record) only CA files that no listing
 * shows and that the next `tenant create` of that slug reuses.
 */
import { randomUUID, X509Certificate } from "node:crypto";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { crashPoint } from "../common/fault.ts";
import { readTextFile } from "../common/files.ts";
import { ensureTenantCa, loadRoot } from "../pki/authority.ts";
import { createTenantCa, summarizeCertificate, type CertificateSummary } from "../pki/certificates.ts";
import { assertTenantSlug } from "../pki/names.ts";
import { deleteAccounts, pushAccountJwt } from "./claims.ts";
import { encodePlatformAccountJwt } from "./platform-account.ts";
import type { ControlPlane } from "./control-plane.ts";
import { NativeKeyPair } from "./native-keys.ts";
import { DEFAULT_PLAN, getPlan, type Plan } from "./plans.ts";
import { encodeTenantAccountJwt } from "./tenant-account.ts";
import type { TenantRecord, TenantSecrets } from "./tenant-store.ts";

/** Stream provisioning plugs in here (the streams/ module); absent, tenants have no streams. */
export interface TenantStreamProvisioner {
  apply(cp: ControlPlane, tenant: LoadedTenant, opts: { prune?: boolean }): Promise<unknown>;
  remove(cp: ControlPlane, tenant: LoadedTenant): Promise<void>;
  describe(cp: ControlPlane, tenant: LoadedTenant): Promise<unknown>;
}

export interface LoadedTenant {
  record: TenantRecord;
  secrets: TenantSecrets;
  signingKey: NativeKeyPair;
}

/** What `tenant show` and `--json` print: never a secret. */
export interface TenantView {
  slug: string;
  id: string;
  name: string;
  plan: string;
  status: TenantRecord["status"];
  created_at: string;
  updated_at: string;
  suspended_at?: string;
  ca: Omit<CertificateSummary, "fingerprint_sha256">;
  account: { public_key: string; signing_key: string };
  limits: Plan;
  streams?: unknown;
}

/** Does `next` give less JetStream storage (disk or memory) than `current`? -1 is unlimited. */
function storageShrinks(current: Plan, next: Plan): boolean {
  const less = (a: number, b: number): boolean => b >= 0 && (a < 0 || b < a);
  return less(current.jetstream.disk, next.jetstream.disk) || less(current.jetstream.memory, next.jetstream.memory);
}

const nowIso = (): string => new Date().toISOString();
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

async function untilSecondAfter(seconds: number): Promise<void> {
  const wait = (seconds + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

export class TenantService {
  private readonly cp: ControlPlane;
  private readonly streams: TenantStreamProvisioner | undefined;

  constructor(cp: ControlPlane, streams?: TenantStreamProvisioner) {
    this.cp = cp;
    this.streams = streams;
  }

  async view(record: TenantRecord, withStreams = false): Promise<TenantView> {
    const plans = await this.cp.plans();
    const { fingerprint_sha256: _fp, ...ca } = summarizeCertificate(new X509Certificate(record.ca_cert_pem));
    const view: TenantView = {
      slug: record.slug,
      id: record.id,
      name: record.name,
      plan: record.plan,
      status: record.status,
      created_at: record.created_at,
      updated_at: record.updated_at,
      ...(record.suspended_at ? { suspended_at: record.suspended_at } : {}),
      ca,
      account: { public_key: record.account_public_key, signing_key: record.signing_public_key },
      limits: plans.plans[record.plan] ?? getPlan(plans, record.plan),
    };
    if (withStreams && this.streams && record.status === "active") {
      view.streams = await this.streams.describe(this.cp, await this.load(record.slug)).catch((err: unknown) => ({ error: errorMessage(err) }));
    } else if (withStreams && this.streams && record.status === "suspended") {
      view.streams = { error: "not shown while the tenant is suspended: its NATS account admits no connection" };
    }
    return view;
  }

  async list(): Promise<TenantRecord[]> {
    return this.cp.store.list();
  }

  async get(slug: string): Promise<TenantRecord> {
    assertTenantSlug(slug);
    const record = await this.cp.store.get(slug);
    if (!record) throw new CodedError("unknown_tenant", `no tenant "${slug}" in ${this.cp.store.location}`);
    return record;
  }

  async load(slug: string): Promise<LoadedTenant> {
    const record = await this.get(slug);
    const secrets = await this.cp.store.getSecrets(slug);
    if (!secrets) throw new CodedError("corrupt_store", `tenant "${slug}" in ${this.cp.store.location} has no secrets (CA key, account seeds)`);
    const signingKey = NativeKeyPair.fromSeed(secrets.signing_seed);
    // Seeds that do not belong to the record's account would sign JWTs NATS rejects, or the wrong tenant's.
    if (signingKey.getPublicKey() !== record.signing_public_key || NativeKeyPair.fromSeed(secrets.account_seed).getPublicKey() !== record.account_public_key) {
      throw new CodedError("corrupt_store", `the secrets of tenant "${slug}" in ${this.cp.store.location} do not belong to its account ${record.account_public_key}`);
    }
    return { record, secrets, signingKey };
  }

  /** `admitConnections`: a suspended tenant's users are revoked but the account still admits users issued later. */
  private async signAccount(record: TenantRecord, opts: { admitConnections?: boolean } = {}): Promise<string> {
    const plan = getPlan(await this.cp.plans(), record.plan);
    const suspended = record.status === "suspended";
    const revoke = suspended && record.suspended_at ? Math.floor(Date.parse(record.suspended_at) / 1000) : undefined;
    return encodeTenantAccountJwt(
      {
        slug: record.slug,
        id: record.id,
        plan: record.plan,
        account: record.account_public_key,
        signingKey: record.signing_public_key,
        suspended: suspended && !opts.admitConnections,
        ...(revoke === undefined ? {} : { revokeUsersIssuedBefore: revoke }),
      },
      plan,
      this.cp.operator.operator,
    );
  }

  private async push(record: TenantRecord): Promise<void> {
    await pushAccountJwt(await this.cp.system(), record.account_jwt, this.cp.operator.operator.getPublicKey());
  }

  /**
   * Re-signs the PLATFORM account with an import set for every tenant NATS knows (active or
   * suspended, plus `including`), and pushes it. Its cost grows with the tenant count (see the
   * README's platform figures), so it runs once per create, delete or sync.
   */
  async pushPlatform(including?: TenantRecord): Promise<{ tenants: number; jwt_bytes: number }> {
    const records = (await this.cp.store.list()).filter((r) => r.status !== "provisioning" || r.slug === including?.slug);
    if (including && !records.some((r) => r.slug === including.slug)) records.push(including);
    const op = this.cp.operator;
    const jwt = await encodePlatformAccountJwt(op.operator, op.platform, op.platformSigning.getPublicKey(), records.map((r) => ({ slug: r.slug, account: r.account_public_key })));
    await pushAccountJwt(await this.cp.system(), jwt, op.operator.getPublicKey(), { timeoutMs: 60_000 });
    return { tenants: records.length, jwt_bytes: jwt.length };
  }

  /** Re-signs (current plan limits, status) and stores and pushes the account. */
  private async publish(record: TenantRecord, secrets: TenantSecrets, writeSecrets = false): Promise<TenantRecord> {
    const updated = { ...record, updated_at: nowIso() };
    updated.account_jwt = await this.signAccount(updated);
    await this.cp.store.put(updated, writeSecrets ? secrets : undefined);
    await this.push(updated);
    return updated;
  }

  /** `deferPlatform`: leave the PLATFORM imports to the next `sync` (bulk on-boarding: one push, not one per tenant). */
  async create(slug: string, opts: { name?: string; plan?: string; deferPlatform?: boolean } = {}): Promise<{ status: "created" | "completed"; tenant: TenantRecord }> {
    assertTenantSlug(slug);
    const plans = await this.cp.plans();
    if (opts.plan !== undefined) getPlan(plans, opts.plan);
    // Reach NATS before writing anything: an unreachable server must leave nothing behind.
    await this.cp.system();

    const existing = await this.cp.store.get(slug);
    if (existing && existing.status !== "provisioning") {
      throw new CodedError("tenant_exists", `tenant "${slug}" already exists (status ${existing.status}, id ${existing.id})`);
    }
    // Completing an interrupted create keeps the plan it was started with.
    const planName = existing?.plan ?? opts.plan ?? DEFAULT_PLAN;
    getPlan(plans, planName);
    const secrets = existing ? await this.cp.store.getSecrets(slug) : undefined;
    if (existing && !secrets) throw new CodedError("corrupt_store", `tenant "${slug}" in ${this.cp.store.location} is provisioning but has no secrets (CA key, account seeds); delete it and create it again`);
    const { caCertPem, caKeyPem } = await this.tenantCa(slug, secrets);
    crashPoint("tenant_create_after_ca");

    const account = secrets ? NativeKeyPair.fromSeed(secrets.account_seed) : NativeKeyPair.create("account");
    const signing = secrets ? NativeKeyPair.fromSeed(secrets.signing_seed) : NativeKeyPair.create("account");
    const fullSecrets: TenantSecrets = { ca_key_pem: caKeyPem, account_seed: account.seedString(), signing_seed: signing.seedString() };
    const now = nowIso();
    let record: TenantRecord = existing ?? {
      slug,
      id: randomUUID(),
      name: opts.name ?? slug,
      plan: planName,
      status: "provisioning",
      created_at: now,
      updated_at: now,
      ca_cert_pem: caCertPem,
      account_public_key: account.getPublicKey(),
      signing_public_key: signing.getPublicKey(),
      account_jwt: "",
    };
    record.account_jwt = await this.signAccount(record);
    await this.cp.store.put(record, fullSecrets);
    crashPoint("tenant_create_after_record");

    await this.push(record);
    await this.streams?.apply(this.cp, { record, secrets: fullSecrets, signingKey: signing }, {});
    record = { ...record, status: "active", updated_at: nowIso() };
    await this.cp.store.put(record);
    if (!opts.deferPlatform) await this.pushPlatform(record);
    return { status: existing ? "completed" : "created", tenant: record };
  }

  /** The tenant's CA: the stored one, else CA files already on disk (an interrupted create), else a new one. */
  private async tenantCa(slug: string, secrets: TenantSecrets | undefined): Promise<{ caCertPem: string; caKeyPem: string }> {
    const existing = await this.cp.store.get(slug);
    if (existing && secrets) return { caCertPem: existing.ca_cert_pem, caKeyPem: secrets.ca_key_pem };
    if (this.cp.store.kind === "directory") {
      await ensureTenantCa(this.cp.layout, slug);
      const files = this.cp.layout.tenantCa(slug);
      return { caCertPem: await readTextFile(files.cert, "tenant CA"), caKeyPem: await readTextFile(files.key, "tenant CA key") };
    }
    const ca = await createTenantCa(await loadRoot(this.cp.layout), slug);
    return { caCertPem: ca.certPem, caKeyPem: ca.keyPem };
  }

  async suspend(slug: string): Promise<TenantRecord> {
    const { record, secrets } = await this.load(slug);
    if (record.status === "suspended") return record;
    if (record.status === "provisioning") throw new CodedError("tenant_provisioning", `tenant "${slug}" is still provisioning; run "tenant-gateway tenant create ${slug}" or "sync" first`);
    return this.publish({ ...record, status: "suspended", suspended_at: new Date(nowSeconds() * 1000).toISOString() }, secrets);
  }

  async resume(slug: string): Promise<TenantRecord> {
    const { record, secrets } = await this.load(slug);
    if (record.status !== "suspended") return record;
    const { suspended_at: _s, ...rest } = record;
    return this.publish({ ...rest, status: "active" }, secrets);
  }

  /**
   * Moves a tenant to another plan. NATS checks every stream change against the account's
   * storage at that moment, so streams shrink before the account does, and grow after it has.
   */
  async setPlan(slug: string, plan: string): Promise<TenantRecord> {
    const plans = await this.cp.plans();
    const next = getPlan(plans, plan);
    const loaded = await this.load(slug);
    const shrinking = storageShrinks(getPlan(plans, loaded.record.plan), next);
    const moved = { ...loaded.record, plan };
    if (this.streams && shrinking && moved.status === "active") await this.streams.apply(this.cp, { ...loaded, record: moved }, {});
    const published = await this.publish(moved, loaded.secrets);
    if (this.streams && !shrinking && published.status === "active") await this.streams.apply(this.cp, { ...loaded, record: published }, {});
    return published;
  }

  /**
   * Cuts every user (a revocation pushed first, so live connections drop; the record is marked
   * suspended, so gateways admit no new session), removes the streams through a control user
   * issued after the revocation, removes the account from the resolver (NATS then closes and
   * refuses every connection of it), then forgets the tenant. Interrupted, it leaves a suspended
   * tenant that a second delete finishes.
   */
  async delete(slug: string): Promise<{ slug: string; account: string; resolver: string }> {
    const loaded = await this.load(slug);
    const cutAt = nowSeconds();
    const revoked: TenantRecord = { ...loaded.record, status: "suspended", suspended_at: new Date(cutAt * 1000).toISOString(), updated_at: nowIso() };
    // Not the suspension's zero-connection limit: the streams are removed from inside this account.
    revoked.account_jwt = await this.signAccount(revoked, { admitConnections: true });
    await this.cp.store.put(revoked);
    await this.push(revoked);
    if (this.streams) {
      // JWT times are whole seconds: a control user issued within the revocation's second is revoked too.
      await untilSecondAfter(cutAt);
      await this.streams.remove(this.cp, { ...loaded, record: revoked });
    }
    const resolver = await deleteAccounts(await this.cp.system(), this.cp.operator.operator, [loaded.record.account_public_key]);
    await this.cp.store.delete(slug);
    await this.pushPlatform();
    return { slug, account: loaded.record.account_public_key, resolver };
  }

  /**
   * Re-pushes the PLATFORM account and every tenant (re-signed with current plans), completes
   * interrupted creates, and applies streams. Reports per tenant; one failure does not stop the rest.
   */
  async sync(): Promise<{ platform: string; tenants: Array<{ slug: string; status: string; result: "pushed" | "completed" | "failed"; error?: string }> }> {
    await this.cp.system();
    const results: Array<{ slug: string; status: string; result: "pushed" | "completed" | "failed"; error?: string }> = [];
    for (const record of await this.cp.store.list()) {
      try {
        if (record.status === "provisioning") {
          const done = await this.create(record.slug);
          results.push({ slug: record.slug, status: done.tenant.status, result: "completed" });
          continue;
        }
        const loaded = await this.load(record.slug);
        const published = await this.publish(loaded.record, loaded.secrets);
        if (this.streams && published.status === "active") await this.streams.apply(this.cp, { ...loaded, record: published }, {});
        results.push({ slug: record.slug, status: published.status, result: "pushed" });
      } catch (err) {
        results.push({ slug: record.slug, status: record.status, result: "failed", error: errorMessage(err) });
      }
    }
    // Last: it imports from every tenant account, which NATS must know first.
    await this.pushPlatform();
    return { platform: this.cp.operator.platform.getPublicKey(), tenants: results };
  }
}

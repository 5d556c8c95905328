/**
 * Tenant lifecycle: create, list, show, suspend, resume, delete, sync. Each operation takes effect
 * in the running NATS at once (account JWT pushed with $SYS.REQ.CLAIMS.UPDATE) — never a NATS
 * restart, never a config edit. A create interrupted at any point leaves a `provisioning` record
 * that `tenant create` or `sync` completes, or (before the record) only CA files that no listing
 * shows and that the next `tenant create` of that slug reuses.
 *
 * Every change goes through one path (`converge`): streams that must shrink first (while the
 * account still allows what they reserve), then the record and the account — pushed only when NATS
 * holds other claims —, then the streams grown and created, and last the account's JetStream
 * checked (and repaired on servers that drop its internal clients on account updates, see
 * tenant-account.ts).
 */
import { randomUUID, X509Certificate } from "node:crypto";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { crashPoint } from "../common/fault.ts";
import { readTextFile } from "../common/files.ts";
import { ensureTenantCa, loadRoot } from "../pki/authority.ts";
import { createTenantCa, summarizeCertificate, type CertificateSummary } from "../pki/certificates.ts";
import { assertTenantSlug } from "../pki/names.ts";
import { deleteAccounts, heldAccountJwt, pushAccountJwt, pushAccountJwtIfChanged, resolverAccounts, sameAccountClaims, type PushResult } from "./claims.ts";
import { AccountJetStreamProbe, type JetStreamHealth } from "./jetstream-health.ts";
import { encodePlatformAccountJwt } from "./platform-account.ts";
import { readPlatformTrust } from "./platform-trust.ts";
import type { ControlPlane } from "./control-plane.ts";
import { NativeKeyPair } from "./native-keys.ts";
import { DEFAULT_PLAN, getPlan, type Plan } from "./plans.ts";
import { admitsNewUsers, encodeTenantAccountJwt, revokedUsersOf, type TenantAccountSpec } from "./tenant-account.ts";
import type { PreviousCa, RevokedCertificate, ServiceCredential, TenantRecord, TenantSecrets } from "./tenant-store.ts";

/** Stream provisioning plugs in here (the streams/ module); absent, tenants have no streams. */
export interface TenantStreamProvisioner {
  /** `shrinkOnly`: only the updates that lower a stream's max_bytes (before the account's limits drop). */
  apply(cp: ControlPlane, tenant: LoadedTenant, opts: { prune?: boolean; shrinkOnly?: boolean }): Promise<unknown>;
  /**
   * Before the tenant moves to the plan its record names: refuses (`streams_exceed_plan`) when its
   * streams hold or reserve more than that plan allows; says whether any stream must shrink, and
   * what the streams reserve now (bytes, × replicas).
   */
  checkResize(cp: ControlPlane, tenant: LoadedTenant): Promise<StreamResize>;
  remove(cp: ControlPlane, tenant: LoadedTenant): Promise<void>;
  describe(cp: ControlPlane, tenant: LoadedTenant): Promise<unknown>;
  /** The PLATFORM account's platform streams (every tenant's traffic on some subjects), reconciled with their templates. */
  applyPlatform?(cp: ControlPlane): Promise<unknown>;
}

export interface StreamResize {
  shrinks: boolean;
  reserved: { disk: number; memory: number };
}

/** A tenant's JetStream after an operation: `repaired` when it had stopped taking messages and was restarted. */
export interface JetStreamReport {
  status: "ok" | "repaired" | "unavailable" | "not_checked";
  streams?: number;
  consumers?: number;
  /** What took or delivered no messages (before a repair, or still). */
  dead?: string[];
  hint?: string;
}

/** What an operation did to NATS: the account pushed or already there, JetStream's health, the streams applied. */
interface Converged {
  record: TenantRecord;
  account: PushResult;
  jetstream: JetStreamReport;
  streams?: unknown;
}

export interface TenantSyncResult {
  slug: string;
  status: string;
  /** `failed` also when the account is in NATS but its JetStream takes no messages (`code: jetstream_unavailable`). */
  result: "pushed" | "unchanged" | "completed" | "failed";
  jetstream?: JetStreamReport;
  code?: string;
  error?: string;
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
  /** CAs rotated out: `overlap` while their certificates are still admitted, `ended` after the deadline. */
  previous_cas: PreviousCaView[];
  revoked_certificates: Array<Omit<RevokedCertificate, "user_public_key">>;
  credentials: Array<ServiceCredential & { status: "active" | "revoked" | "expired" }>;
  account: { public_key: string; signing_key: string };
  limits: Plan;
  streams?: unknown;
}

export type PreviousCaView = Omit<CertificateSummary, "fingerprint_sha256"> & Omit<PreviousCa, "cert_pem"> & { state: "overlap" | "ended" };

/** What `tenant show` and `pki ca-status` say about a CA rotated out. */
export function previousCaView(previous: PreviousCa, now = Date.now()): PreviousCaView {
  const { fingerprint_sha256: _fp, ...summary } = summarizeCertificate(new X509Certificate(previous.cert_pem));
  return { ...summary, retired_at: previous.retired_at, admitted_until: previous.admitted_until, state: Date.parse(previous.admitted_until) > now ? "overlap" : "ended" };
}

/** nats-server refused a stream change for lack of account storage (the report of a failed apply says). */
function storageRefused(err: unknown): boolean {
  const report = err instanceof CodedError ? (err.details?.report as { streams?: Array<{ error?: { code?: string } }> } | undefined) : undefined;
  return (report?.streams ?? []).some((r) => r.error?.code === "jetstream_resources_exceeded");
}

const planHasJetStream = (plan: Plan): boolean => plan.jetstream.disk !== 0 || plan.jetstream.memory !== 0;

const nowIso = (): string => new Date().toISOString();
const nowSeconds = (): number => Math.floor(Date.now() / 1000);

async function untilSecondAfter(seconds: number): Promise<void> {
  const wait = (seconds + 1) * 1000 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

export class TenantService {
  private readonly cp: ControlPlane;
  private readonly streams: TenantStreamProvisioner | undefined;
  private probe: AccountJetStreamProbe | undefined;

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
      previous_cas: (record.previous_cas ?? []).map((p) => previousCaView(p)),
      revoked_certificates: (record.revoked_certificates ?? []).map(({ user_public_key: _u, ...r }) => r),
      credentials: (record.credentials ?? []).map((c) => ({ ...c, status: c.revoked_at ? "revoked" : c.expires_at && Date.parse(c.expires_at) <= Date.now() ? "expired" : "active" })),
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

  /** The account JWT for a record: its plan's limits, its status; `overrides` for the steps of a change. */
  private async signAccount(record: TenantRecord, overrides: Pick<TenantAccountSpec, "suspended" | "revokeUsersIssuedBefore" | "storageFloor" | "jetstreamOff"> = {}): Promise<string> {
    const plan = getPlan(await this.cp.plans(), record.plan);
    return encodeTenantAccountJwt(
      {
        slug: record.slug,
        id: record.id,
        plan: record.plan,
        account: record.account_public_key,
        signingKey: record.signing_public_key,
        suspended: record.status === "suspended",
        revokedUsers: revokedUsersOf(record),
        ...overrides,
      },
      plan,
      this.cp.operator.operator,
    );
  }

  private async jetstreamProbe(): Promise<AccountJetStreamProbe> {
    this.probe ??= new AccountJetStreamProbe(await this.cp.system());
    return this.probe;
  }

  /**
   * Re-signs the PLATFORM account with an import set for every tenant NATS knows (active or
   * suspended, plus `including`), and pushes it. Its cost grows with the tenant count (see the
   * README's platform figures), so it runs once per create, delete or sync.
   */
  async pushPlatform(including?: TenantRecord): Promise<{ tenants: number; jwt_bytes: number; result: PushResult }> {
    const records = (await this.cp.store.list()).filter((r) => r.status !== "provisioning" || r.slug === including?.slug);
    if (including && !records.some((r) => r.slug === including.slug)) records.push(including);
    const op = this.cp.operator;
    const { trust } = await readPlatformTrust(this.cp.store);
    const tenants = records.map((r) => ({ slug: r.slug, account: r.account_public_key }));
    const jwt = await encodePlatformAccountJwt(op.operator, op.platform, op.platformSigning.getPublicKey(), tenants, revokedUsersOf(trust));
    const { result } = await pushAccountJwtIfChanged(await this.cp.system(), jwt, op.operator.getPublicKey(), { timeoutMs: 60_000 });
    return { tenants: records.length, jwt_bytes: jwt.length, result };
  }

  /**
   * Brings NATS to `target` (the record as it must become): shrinks streams before the account's
   * storage drops, stores the record when it changed, pushes the account when NATS holds other
   * claims, applies the streams, then checks (and on affected servers repairs) the account's
   * JetStream. Streams are reached through a control user of the account, so only while NATS holds
   * the account and it admits users: a suspended tenant's streams are left alone, and those of a
   * resumed (or re-pushed) one are shrunk after its push.
   */
  private async converge(loaded: LoadedTenant, target: TenantRecord, ctx: { known?: ReadonlySet<string> } = {}): Promise<Converged> {
    const system = await this.cp.system();
    const operator = this.cp.operator.operator.getPublicKey();
    const accountKey = loaded.record.account_public_key;
    const streams = target.status === "active" ? this.streams : undefined;
    const fresh = await this.signAccount(target);
    const held = await heldAccountJwt(system, accountKey, ctx.known);
    const accountChanges = held === undefined || !sameAccountClaims(held, fresh);
    const reachable = held !== undefined && admitsNewUsers(held);

    let extraPush = streams && reachable && accountChanges ? await this.shrinkStreams(streams, { ...loaded, record: target }) : false;
    // Gateways act on the record: on a suspension they stop admitting before NATS cuts the users,
    // so the record goes first; on a resume they release the clients they held, so NATS must
    // admit them by then and the account goes first.
    const accountFirst = loaded.record.status === "suspended" && target.status === "active";
    if (accountFirst && (accountChanges || extraPush)) await pushAccountJwt(system, fresh, operator);
    let record = target;
    if (target !== loaded.record || !sameAccountClaims(loaded.record.account_jwt, fresh)) {
      record = { ...target, account_jwt: fresh, updated_at: nowIso() };
      await this.cp.store.put(record);
    }
    if (!accountFirst && (accountChanges || extraPush)) await pushAccountJwt(system, fresh, operator);
    const tenant = { ...loaded, record };
    if (streams && !reachable && (await this.shrinkStreams(streams, tenant))) {
      await pushAccountJwt(system, await this.signAccount(record), operator);
      extraPush = true;
    }

    let applied: { report: unknown; pushed: boolean } | undefined;
    let failure: unknown;
    try {
      applied = streams ? await this.applyStreams(streams, tenant) : undefined;
    } catch (err) {
      failure = err;
    }
    // Last, after every push this change made: any of them may have cost the account its JetStream clients.
    const jetstream = await this.checkJetStream(record);
    if (failure !== undefined) throw failure;
    const pushed = accountChanges || extraPush || applied?.pushed === true;
    return { record, account: pushed ? "pushed" : "unchanged", jetstream, ...(applied === undefined ? {} : { streams: applied.report }) };
  }

  /**
   * Shrinks the streams the tenant's plan gives less, refusing a plan their data does not fit.
   * When the account already allows less than the streams reserve (its plan was lowered under
   * them), nats-server refuses every stream change, shrinking ones too: the account is pushed with
   * room for what they reserve now, then they shrink. True when that extra push happened (the
   * account must then be pushed as it is meant to be).
   */
  private async shrinkStreams(streams: TenantStreamProvisioner, tenant: LoadedTenant): Promise<boolean> {
    const resize = await streams.checkResize(this.cp, tenant);
    if (!resize.shrinks) return false;
    try {
      await streams.apply(this.cp, tenant, { shrinkOnly: true });
      return false;
    } catch (err) {
      if (!storageRefused(err)) throw err;
      await pushAccountJwt(await this.cp.system(), await this.signAccount(tenant.record, { storageFloor: resize.reserved }), this.cp.operator.operator.getPublicKey());
      await streams.apply(this.cp, tenant, { shrinkOnly: true });
      return true;
    }
  }

  /**
   * Applies the templates. Streams found above what the account allows (its plan lowered under
   * them before set-plan resized streams) are shrunk first; `pushed` when that took account pushes.
   */
  private async applyStreams(streams: TenantStreamProvisioner, tenant: LoadedTenant): Promise<{ report: unknown; pushed: boolean }> {
    try {
      return { report: await streams.apply(this.cp, tenant, {}), pushed: false };
    } catch (err) {
      if (!storageRefused(err)) throw err;
      const pushed = await this.shrinkStreams(streams, tenant);
      if (pushed) await pushAccountJwt(await this.cp.system(), await this.signAccount(tenant.record), this.cp.operator.operator.getPublicKey());
      return { report: await streams.apply(this.cp, tenant, {}), pushed };
    }
  }

  /**
   * Whether the account's streams and consumers still take and deliver messages. On servers that
   * close them on account updates the remedy is a JetStream restart of the account alone: pushed
   * once with JetStream off (its streams stay on disk), once as it must be; the server then
   * recovers every stream and durable consumer with new internal clients.
   */
  private async checkJetStream(record: TenantRecord): Promise<JetStreamReport> {
    if (!planHasJetStream(getPlan(await this.cp.plans(), record.plan))) return { status: "not_checked" };
    const probe = await this.jetstreamProbe();
    if (!(await probe.hasJetStream())) return { status: "not_checked" };
    const account = record.account_public_key;
    const seen: JetStreamHealth = await probe.check(account);
    const counts = { streams: seen.streams, consumers: seen.consumers };
    if (seen.status === "ok") return { status: "ok", ...counts };
    if (await probe.dropsClientsOnUpdate()) {
      const op = this.cp.operator.operator.getPublicKey();
      await pushAccountJwt(await this.cp.system(), await this.signAccount(record, { jetstreamOff: true }), op);
      await pushAccountJwt(await this.cp.system(), await this.signAccount(record), op);
      const after = await probe.check(account);
      if (after.status === "ok") return { status: "repaired", streams: after.streams, consumers: after.consumers, dead: seen.dead };
      return { status: "unavailable", streams: after.streams, consumers: after.consumers, dead: after.dead, hint: "a JetStream restart of the account did not bring them back; restart nats-server (it recovers every stream from disk)" };
    }
    return {
      status: "unavailable",
      ...counts,
      dead: seen.dead,
      hint: "nats-server holds no subscription for them, so publishes get no responder (503); run sync again, and if it persists restart nats-server (it recovers every stream from disk)",
    };
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

    await pushAccountJwtIfChanged(await this.cp.system(), record.account_jwt, this.cp.operator.operator.getPublicKey());
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

  /**
   * Every user of the account revoked, whenever issued (NATS cuts live connections at once and
   * admits none later); the record marked suspended, so gateways refuse new sessions and close
   * theirs. The account keeps its JetStream: streams keep their messages and consumers, and take
   * messages again when the tenant resumes.
   */
  async suspend(slug: string): Promise<TenantRecord> {
    const loaded = await this.load(slug);
    const { record } = loaded;
    if (record.status === "suspended") return record;
    if (record.status === "provisioning") throw new CodedError("tenant_provisioning", `tenant "${slug}" is still provisioning; run "tenant-gateway tenant create ${slug}" or "sync" first`);
    return this.changed(await this.converge(loaded, { ...record, status: "suspended", suspended_at: new Date(nowSeconds() * 1000).toISOString() }));
  }

  async resume(slug: string): Promise<TenantRecord> {
    const loaded = await this.load(slug);
    if (loaded.record.status !== "suspended") return loaded.record;
    const { suspended_at: _s, ...rest } = loaded.record;
    return this.changed(await this.converge(loaded, { ...rest, status: "active" }));
  }

  /**
   * Moves a tenant to another plan, its streams with it. NATS checks every stream change against
   * the account's storage at that moment, so streams shrink before the account's limits drop and
   * grow after they rise; a plan the streams' data does not fit is refused before anything changes.
   * A suspended tenant's streams cannot be reached (its account admits no user): resume it first.
   */
  async setPlan(slug: string, plan: string): Promise<TenantRecord> {
    getPlan(await this.cp.plans(), plan);
    const loaded = await this.load(slug);
    if (loaded.record.status !== "active") {
      throw new CodedError(`tenant_${loaded.record.status}`, `tenant "${slug}" is ${loaded.record.status}: its streams are resized from inside its account, which admits no user now; ${loaded.record.status === "suspended" ? "resume it" : `run "tenant-gateway tenant create ${slug}"`} first`);
    }
    return this.changed(await this.converge(loaded, { ...loaded.record, plan }));
  }

  /**
   * A change of an active or suspended tenant's record that its account follows (revoked
   * certificates and service credentials are revoked users of the account): stored and pushed
   * through the one convergence path.
   */
  async update(slug: string, change: (record: TenantRecord) => TenantRecord): Promise<TenantRecord> {
    const loaded = await this.load(slug);
    if (loaded.record.status === "provisioning") throw new CodedError("tenant_provisioning", `tenant "${slug}" is still provisioning; run "tenant-gateway tenant create ${slug}" or "sync" first`);
    return this.changed(await this.converge(loaded, change(loaded.record)));
  }

  /** The changed record; a JetStream left taking no messages is a failure of the operation (the change itself stays). */
  private changed(done: Converged): TenantRecord {
    if (done.jetstream.status === "unavailable") throw jetstreamUnavailable(done.record, done.jetstream);
    return done.record;
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
    // Not the suspension's revocation of every user: the streams are removed from inside this account.
    revoked.account_jwt = await this.signAccount(revoked, { suspended: false, revokeUsersIssuedBefore: cutAt });
    await this.cp.store.put(revoked);
    await pushAccountJwt(await this.cp.system(), revoked.account_jwt, this.cp.operator.operator.getPublicKey());
    if (this.streams) {
      // JWT times are whole seconds: a control user issued within the revocation's second is revoked too.
      await untilSecondAfter(cutAt);
      await this.streams.remove(this.cp, { ...loaded, record: revoked });
    }
    const resolver = await deleteAccounts(await this.cp.system(), this.cp.operator.operator, [loaded.record.account_public_key]);
    await this.cp.store.delete(slug);
    // Its certificates' inventory goes with it (their CA and account are gone).
    for (const entry of await this.cp.store.listEntries("certificates", `${slug}.`)) await this.cp.store.deleteEntry("certificates", entry.key);
    await this.pushPlatform();
    return { slug, account: loaded.record.account_public_key, resolver };
  }

  /**
   * Brings every tenant's account and streams to its record and the current plans, pushing an
   * account only when NATS holds other claims; completes interrupted creates; checks each account's
   * JetStream (repairing it on servers that drop its internal clients); pushes the PLATFORM account
   * if its imports changed. Reports per tenant; one failure does not stop the rest.
   */
  async sync(): Promise<{ platform: string; platform_result: PushResult; platform_streams?: unknown; tenants: TenantSyncResult[] }> {
    const known = await resolverAccounts(await this.cp.system()).catch(() => undefined);
    const results: TenantSyncResult[] = [];
    for (const record of await this.cp.store.list()) {
      try {
        if (record.status === "provisioning") {
          const done = await this.create(record.slug);
          results.push({ slug: record.slug, status: done.tenant.status, result: "completed" });
          continue;
        }
        const loaded = await this.load(record.slug);
        const done = await this.converge(loaded, loaded.record, known ? { known } : {});
        if (done.jetstream.status === "unavailable") {
          const err = jetstreamUnavailable(done.record, done.jetstream);
          results.push({ slug: record.slug, status: done.record.status, result: "failed", jetstream: done.jetstream, code: err.code, error: err.message });
        } else {
          results.push({ slug: record.slug, status: done.record.status, result: done.account, jetstream: done.jetstream });
        }
      } catch (err) {
        results.push({ slug: record.slug, status: record.status, result: "failed", ...(err instanceof CodedError ? { code: err.code } : {}), error: errorMessage(err) });
      }
    }
    // Last: it imports from every tenant account, which NATS must know first.
    const platform = await this.pushPlatform();
    // Then the platform streams, which capture what those imports bring in.
    const platformStreams = this.streams?.applyPlatform ? await this.streams.applyPlatform(this.cp).catch((err: unknown) => ({ error: { code: err instanceof CodedError ? err.code : "streams_apply_failed", message: errorMessage(err) } })) : undefined;
    return { platform: this.cp.operator.platform.getPublicKey(), platform_result: platform.result, ...(platformStreams ? { platform_streams: platformStreams } : {}), tenants: results };
  }
}

function jetstreamUnavailable(record: TenantRecord, js: JetStreamReport): CodedError {
  const what = (js.dead ?? []).join(", ") || "its JetStream";
  return new CodedError("jetstream_unavailable", `tenant ${record.slug}: ${what} take${js.dead?.length === 1 ? "s" : ""} no messages; ${js.hint ?? ""}`.trim(), { details: { tenant: record.slug, jetstream: js } });
}

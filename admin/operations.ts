/**
 * What an operator can do over HTTP — the admin API and the console both call these, and these
 * call the same services as the CLI (TenantService, the certificate lifecycle, PackageService):
 * one implementation of each operation. Every change is audited like a cross-tenant operation:
 * a record `admin_api` with who (the platform identity), which tenant, what, in the log and in the
 * audit stream, written before the answer goes out.
 */
import { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import { jetstream } from "@nats-io/jetstream";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import { summarizeCertificate } from "../pki/certificates.ts";
import { assertTenantSlug } from "../pki/names.ts";
import { rotateTenantCa, tenantCaStatus, type CaStatus, type RotationResult } from "../accounts/ca-rotation.ts";
import { listIssued, type IssuedCertificate } from "../accounts/certificate-inventory.ts";
import { issueEdge, revokeCertificate, type RevocationResult } from "../accounts/certificate-lifecycle.ts";
import { getPlan, type Plan } from "../accounts/plans.ts";
import { parseDurationSeconds } from "../streams/units.ts";
import type { TenantRecord } from "../accounts/tenant-store.ts";
import { TenantService, type TenantView } from "../accounts/tenants.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { readAuditRecords, type AuditQuery } from "../gateway/audit-stream.ts";
import { AuditTrail, type AuditRecord } from "../gateway/audit.ts";
import type { SessionSummary } from "../gateway/telemetry.ts";
import { httpError } from "./errors.ts";
import type { TenantPageData } from "./console/pages.ts";
import type { JetStreamStats, StreamStats } from "./jetstream-stats.ts";
import type { GatewayRuntime } from "./runtime.ts";

/** Who asks: the platform identity of the client certificate, where from, and the request. */
export interface Actor {
  identity: string;
  cn: string;
  remote: string;
  requestId: string;
  /** `METHOD /path` of the request that makes the change. */
  request: string;
}

/** The operations, once the gateway runs; until then they throw 503 `starting`. */
export type OperationsSlot = () => AdminOperations;

/** The audit stream's tenant token for changes that are not one tenant's. */
export const PLATFORM_AUDIT_SCOPE = "_platform";

export type CertificateState = "valid" | "revoked" | "expired";

export interface IssuedCertificateView extends IssuedCertificate {
  state: CertificateState;
}

/** A certificate issued through the API: its inventory entry and, this once, its files' contents. */
export interface IssuedThroughApi {
  certificate: IssuedCertificate;
  pem: { certificate: string; key: string; chain: string };
}

/** An onboarding package as the API and the console show it (onboarding/packages.ts PackageView): never its token or bundle. */
export interface PackageSummary {
  id: string;
  tenant: string;
  component: string;
  partition: string;
  type: string;
  profile: string;
  cn: string;
  state: string;
  created_at: string;
  expires_at: string;
  delivered_at?: string;
  revoked_at?: string;
  download_path: string;
}

export interface PackageRequest {
  tenant: string;
  component: string;
  partition: string;
  type: string;
  collector?: string;
  ttl?: string;
  days?: number;
  gatewayUrl?: string;
}

/** Onboarding packages (onboarding/, issue 15), plugged in by serving.ts. */
export interface PackageOperations {
  list(filter: { tenant?: string }): Promise<PackageSummary[]>;
  show(id: string): Promise<PackageSummary>;
  /** The token is in this answer only. */
  create(actor: Actor, spec: PackageRequest): Promise<{ package: PackageSummary; token: string }>;
  revoke(actor: Actor, id: string, reason?: string): Promise<PackageSummary>;
  /** For whoever holds the token: the bundle, once (400/401/404/409/410 otherwise). */
  download(id: string, token: string | undefined, remote: string): Promise<{ package: PackageSummary; filename: string; bundle: Buffer }>;
  readonly types: readonly string[];
}

export interface TenantSummary {
  slug: string;
  name: string;
  plan: string;
  status: TenantRecord["status"];
  created_at: string;
  suspended_at?: string;
  ca: { subject_cn: string; serial_number: string; not_after: string };
  sessions: number;
}

export class AdminOperations {
  readonly runtime: GatewayRuntime;
  readonly tenants: TenantService;
  readonly stats: JetStreamStats;
  private readonly log: Logger;
  private readonly trail: AuditTrail;
  private published: Promise<unknown> | undefined;

  constructor(runtime: GatewayRuntime, stats: JetStreamStats, log: Logger) {
    this.runtime = runtime;
    this.stats = stats;
    this.log = log;
    this.tenants = new TenantService(runtime.cp, tenantStreamProvisioner);
    this.trail = new AuditTrail(log, (subject, record) => {
      this.published = runtime.cp.platformConnection("tenant-gateway-admin").then((nc) => jetstream(nc).publish(subject, JSON.stringify(record)));
    });
  }

  private packageOps: PackageOperations | undefined;

  /** Onboarding packages, where this gateway has them. */
  enablePackages(packages: PackageOperations): void {
    this.packageOps = packages;
  }

  get packages(): PackageOperations {
    if (!this.packageOps) throw httpError(501, "packages_unavailable", "onboarding packages are not available on this gateway");
    return this.packageOps;
  }

  get hasPackages(): boolean {
    return this.packageOps !== undefined;
  }

  /** Records a change (log and audit stream); a stream that cannot take it is logged, the change stands. */
  async audit(actor: Pick<Actor, "identity" | "cn" | "remote" | "requestId" | "request">, tenant: string, api: string): Promise<void> {
    const record: AuditRecord = { time: new Date().toISOString(), identity: actor.identity, cn: actor.cn, session: actor.requestId, tenant, operation: "admin_api", subject: actor.request, count: 1, api, remote: actor.remote };
    this.published = undefined;
    this.trail.record(record);
    const published = this.published as Promise<unknown> | undefined;
    await published?.catch((err: unknown) => this.log.error({ event: "audit_write_failed", error: errorMessage(err), api, tenant }, "audit record not stored in the audit stream (it is in this log)"));
  }

  /**
   * Runs a change of one tenant, then has this process's registry read the tenant at once (the
   * gateway acts on it now, not at its next poll of the store), then audits it.
   */
  private async change<T>(actor: Actor, tenant: string, api: string, run: () => Promise<T>): Promise<T> {
    const result = await run();
    await this.runtime.registry.refresh(tenant);
    await this.audit(actor, tenant, api);
    return result;
  }

  async plans(): Promise<Array<{ name: string; limits: Plan }>> {
    const file = await this.runtime.cp.plans();
    return Object.keys(file.plans).map((name) => ({ name, limits: getPlan(file, name) }));
  }

  async listTenants(): Promise<TenantSummary[]> {
    const sessions = countBy(await this.runtime.sessions(), (s) => s.tenant);
    const records = await this.tenants.list();
    return records
      .map((r) => {
        const ca = summarizeCertificate(new X509Certificate(r.ca_cert_pem));
        return {
          slug: r.slug,
          name: r.name,
          plan: r.plan,
          status: r.status,
          created_at: r.created_at,
          ...(r.suspended_at ? { suspended_at: r.suspended_at } : {}),
          ca: { subject_cn: ca.subject_cn, serial_number: ca.serial_number, not_after: ca.not_after },
          sessions: sessions.get(r.slug) ?? 0,
        };
      })
      .sort((a, b) => a.slug.localeCompare(b.slug));
  }

  async showTenant(slug: string): Promise<TenantView> {
    return this.tenants.view(await this.tenants.get(slug));
  }

  async createTenant(actor: Actor, spec: { slug: string; name?: string; plan?: string }): Promise<{ status: "created" | "completed"; tenant: TenantView }> {
    assertTenantSlug(spec.slug);
    return this.change(actor, spec.slug, "tenant.create", async () => {
      const done = await this.tenants.create(spec.slug, { ...(spec.name ? { name: spec.name } : {}), ...(spec.plan ? { plan: spec.plan } : {}) });
      return { status: done.status, tenant: await this.tenants.view(done.tenant) };
    });
  }

  async suspendTenant(actor: Actor, slug: string): Promise<TenantView> {
    return this.change(actor, slug, "tenant.suspend", async () => this.tenants.view(await this.tenants.suspend(slug)));
  }

  async resumeTenant(actor: Actor, slug: string): Promise<TenantView> {
    return this.change(actor, slug, "tenant.resume", async () => this.tenants.view(await this.tenants.resume(slug)));
  }

  async setPlan(actor: Actor, slug: string, plan: string): Promise<TenantView> {
    return this.change(actor, slug, "tenant.set_plan", async () => this.tenants.view(await this.tenants.setPlan(slug, plan)));
  }

  async deleteTenant(actor: Actor, slug: string): Promise<{ status: "deleted"; slug: string; account: string; resolver: string }> {
    return this.change(actor, slug, "tenant.delete", async () => {
      const done = await this.tenants.delete(slug);
      return { status: "deleted" as const, ...done };
    });
  }

  /** The tenant's streams with their consumers, now. */
  async tenantStreams(slug: string): Promise<StreamStats[]> {
    const record = await this.tenants.get(slug);
    if (record.status !== "active") throw new CodedError(`tenant_${record.status}`, `tenant "${slug}" is ${record.status}: its streams are read from inside its account, which admits no user now`);
    return this.stats.tenant(record);
  }

  async caStatus(slug: string): Promise<CaStatus> {
    return tenantCaStatus(this.tenants, slug);
  }

  /** A new CA issues from now on; the current one's certificates are admitted until the overlap ends. */
  async rotateCa(actor: Actor, slug: string, opts: { overlap: string; validityYears?: number }): Promise<RotationResult> {
    const overlapSeconds = parseDurationSeconds(opts.overlap);
    if (overlapSeconds === undefined) throw new CodedError("invalid_argument", `the overlap must be a duration like 30d, 12h or 0, got "${opts.overlap}"`);
    return this.change(actor, slug, "ca.rotate", () => rotateTenantCa(this.runtime.cp, this.tenants, slug, { overlapSeconds, ...(opts.validityYears === undefined ? {} : { validityYears: opts.validityYears }) }));
  }

  /** The tenant's issued certificates (the inventory), with their state. */
  async certificates(slug: string): Promise<IssuedCertificateView[]> {
    const record = await this.tenants.get(slug);
    const revoked = new Set((record.revoked_certificates ?? []).map((r) => r.fingerprint_sha256));
    const now = Date.now();
    const list = await listIssued(this.runtime.cp.store, slug);
    return list
      .map((c) => ({ ...c, state: (revoked.has(c.fingerprint_sha256) ? "revoked" : Date.parse(c.not_after) <= now ? "expired" : "valid") as CertificateState }))
      .sort((a, b) => b.issued_at.localeCompare(a.issued_at));
  }

  /** An edge certificate from the tenant's CA (into the data dir's files, as `pki issue` does), returned once with its key. */
  async issueCertificate(actor: Actor, slug: string, spec: { component: string; partition: string; days?: number }): Promise<IssuedThroughApi> {
    return this.change(actor, slug, "certificate.issue", async () => {
      const { record, secrets } = await this.tenants.load(slug);
      if (record.status !== "active") throw new CodedError(`tenant_${record.status}`, `tenant "${slug}" is ${record.status}; certificates are issued for active tenants`);
      const tenantCa = { certPem: record.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(record.ca_cert_pem) };
      const issued = await issueEdge(this.runtime.cp.layout, this.runtime.cp.store, { tenant: slug, component: spec.component, partition: spec.partition, days: spec.days ?? 365 }, { tenantCa, source: `admin API (${actor.identity})` });
      const [certificate, key, chain] = await Promise.all([fs.readFile(issued.files.cert, "utf8"), fs.readFile(issued.files.key, "utf8"), fs.readFile(issued.files.chain, "utf8")]);
      return { certificate: issued.inventory, pem: { certificate, key, chain } };
    });
  }

  /** Revokes one of the tenant's certificates by serial, live (sessions cut, new ones refused). */
  async revokeCertificate(actor: Actor, slug: string, serial: string, reason?: string): Promise<RevocationResult> {
    return this.change(actor, slug, "certificate.revoke", () => revokeCertificate(this.runtime.cp, this.tenants, { scope: { tenant: slug }, serial, reason: reason ?? `revoked by ${actor.identity} through the admin API` }));
  }

  /** Everything the console's tenant page shows, read now. */
  async tenantPage(slug: string): Promise<TenantPageData> {
    const tenant = await this.showTenant(slug);
    const [plans, sessions, streams] = await Promise.all([
      this.plans(),
      this.sessions({ tenant: slug }),
      this.tenantStreams(slug).catch((err: unknown) => ({ error: `streams not shown: ${errorMessage(err)}` })),
    ]);
    const certificates = await this.certificates(slug);
    const packages = this.packageOps ? await this.packageOps.list({ tenant: slug }) : undefined;
    return { tenant, plans: plans.map((p) => p.name), sessions, streams, certificates, ...(packages && this.packageOps ? { packages, packageTypes: this.packageOps.types } : {}) };
  }

  async sessions(filter: { tenant?: string } = {}): Promise<SessionSummary[]> {
    if (filter.tenant !== undefined) assertTenantSlug(filter.tenant);
    const sessions = await this.runtime.sessions(filter);
    return sessions.sort((a, b) => a.started_at.localeCompare(b.started_at));
  }

  async disconnect(actor: Actor, id: string): Promise<SessionSummary> {
    if (!/^[0-9a-f]{12}$/.test(id)) throw httpError(400, "invalid_argument", `"${id.slice(0, 64)}" is not a session id (12 hexadecimal digits)`);
    const session = await this.runtime.disconnect(id, `disconnected by ${actor.identity} through the admin API`);
    if (!session) throw httpError(404, "session_not_found", `no live session ${id} on this gateway`);
    await this.audit(actor, session.tenant ?? PLATFORM_AUDIT_SCOPE, "session.disconnect");
    return session;
  }

  async auditRecords(q: AuditQuery): Promise<AuditRecord[]> {
    const nc = await this.runtime.cp.platformConnection("tenant-gateway-admin");
    return readAuditRecords(nc, q);
  }
}

function countBy<T>(items: readonly T[], key: (item: T) => string | undefined): Map<string, number> {
  const counts = new Map<string, number>();
  for (const item of items) {
    const k = key(item);
    if (k !== undefined) counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/**
 * What happens to a certificate after the CA: issued (and put in the inventory), renewed (a new
 * key and certificate for the same identity; the old one stays valid until it expires or is
 * revoked), and revoked — live: the record's revocation list makes every gateway replica refuse it
 * (`certificate_revoked`), and the NATS user minted for it is revoked in its account, so NATS cuts
 * its sessions on every server at once. One implementation for the CLI and the admin API.
 */
import type { X509Certificate } from "node:crypto";
import { CodedError } from "../common/coded-error.ts";
import { findCertificateFile, issueComponentFiles, issuePlatformIdentityFiles, loadPlatformCa, loadTenantCa, readCertificateFile, type LeafResult } from "../pki/authority.ts";
import { summarizeCertificate, type EdgeCertificateSpec, type KeyedCertificate } from "../pki/certificates.ts";
import type { DataLayout } from "../pki/layout.ts";
import { assertPlatformName, assertTenantSlug, NameError, parseCommonName } from "../pki/names.ts";
import { findIssued, normalizeHex, PLATFORM_SCOPE, recordIssued, type IssuedCertificate } from "./certificate-inventory.ts";
import type { ControlPlane } from "./control-plane.ts";
import { readPlatformTrust, updatePlatformTrust } from "./platform-trust.ts";
import type { TenantService } from "./tenants.ts";
import type { RevokedCertificate, TenantStore } from "./tenant-store.ts";
import { certificateUserKey } from "./user-keys.ts";

export type IssueResult = LeafResult & { inventory: IssuedCertificate };

/**
 * Issues an edge certificate into the data dir's files and records it. `tenantCa`: the CA from the
 * tenant store (the KV store keeps no CA files). When the files held a certificate, it is recorded
 * too (so it can be revoked by serial later) and reported as `replaced`.
 */
export async function issueEdge(layout: DataLayout, store: TenantStore, spec: EdgeCertificateSpec, opts: { tenantCa?: KeyedCertificate; source?: string; replaces?: string } = {}): Promise<IssueResult> {
  const ca = opts.tenantCa ?? (await loadTenantCa(layout, spec.tenant));
  const files = layout.component(spec.tenant, spec.component, spec.partition);
  const previous = await readCertificateFile(files.cert).catch(() => undefined);
  const result = await issueComponentFiles(layout, spec, ca);
  if (previous && !(await findIssued(store, spec.tenant, { serial: summarizeCertificate(previous).serial_number }))) {
    await recordIssued(store, previous, ca.cert, { scope: spec.tenant, source: "found in the data dir", component: spec.component, partition: spec.partition });
  }
  const inventory = await recordIssued(store, await readCertificateFile(files.cert), ca.cert, {
    scope: spec.tenant,
    source: opts.source ?? "pki issue",
    component: spec.component,
    partition: spec.partition,
    ...(opts.replaces ? { replaces: opts.replaces } : {}),
  });
  return { ...result, inventory };
}

export async function issuePlatform(layout: DataLayout, store: TenantStore, name: string, opts: { days?: number; source?: string; replaces?: string } = {}): Promise<IssueResult> {
  assertPlatformName(name);
  const ca = await loadPlatformCa(layout);
  const files = layout.platformIdentity(name);
  const previous = await readCertificateFile(files.cert).catch(() => undefined);
  const result = await issuePlatformIdentityFiles(layout, name, opts.days === undefined ? {} : { days: opts.days });
  if (previous && !(await findIssued(store, PLATFORM_SCOPE, { serial: summarizeCertificate(previous).serial_number }))) {
    await recordIssued(store, previous, ca.cert, { scope: PLATFORM_SCOPE, source: "found in the data dir", name });
  }
  const inventory = await recordIssued(store, await readCertificateFile(files.cert), ca.cert, { scope: PLATFORM_SCOPE, source: opts.source ?? "pki issue-platform", name, ...(opts.replaces ? { replaces: opts.replaces } : {}) });
  return { ...result, inventory };
}

/** Where a certificate belongs: a tenant (edge identities) or the platform. */
export type CertificateScope = { tenant: string } | { platform: true };

function scopeKey(scope: CertificateScope): string {
  return "tenant" in scope ? scope.tenant : PLATFORM_SCOPE;
}

function scopeText(scope: CertificateScope): string {
  return "tenant" in scope ? `tenant "${scope.tenant}"` : "the platform";
}

/** The scope a certificate's CN puts it in. */
function scopeOfCommonName(cn: string | undefined): CertificateScope {
  try {
    if (cn !== undefined) {
      const parsed = parseCommonName(cn);
      return parsed.kind === "edge" ? { tenant: parsed.tenant } : { platform: true };
    }
  } catch (err) {
    if (!(err instanceof NameError)) throw err;
  }
  throw new CodedError("invalid_argument", `certificate "${cn ?? "without a CN"}" is neither an edge identity <component>.<partition>.<tenant>.serviceradar nor a platform identity <name>.platform.serviceradar`);
}

export interface RenewResult {
  issued: IssueResult;
  previous: { serial_number: string; fingerprint_sha256: string; not_after: string; status: "revoked" | "valid_until_expiry" };
}

/**
 * A new key and certificate for an identity that has one in the data dir. The old certificate
 * stays valid until it expires, or is revoked at once with `revoke` (`--revoke-old`).
 */
export async function renew(
  layout: DataLayout,
  store: TenantStore,
  identity: { tenant: string; component: string; partition: string; tenantCa?: KeyedCertificate } | { platform: string },
  opts: { days?: number; revoke?: (old: X509Certificate) => Promise<unknown> } = {},
): Promise<RenewResult> {
  const files = "platform" in identity ? layout.platformIdentity(assertPlatformName(identity.platform)) : layout.component(assertTenantSlug(identity.tenant), identity.component, identity.partition);
  const old = await readCertificateFile(files.cert).catch(() => undefined);
  if (!old) {
    const what = "platform" in identity ? `platform identity "${identity.platform}"` : `component ${identity.component}/${identity.partition} of tenant "${identity.tenant}"`;
    throw new CodedError("certificate_not_found", `no certificate of ${what} in ${files.cert} to renew; issue one with "tenant-gateway pki ${"platform" in identity ? "issue-platform" : "issue"}"`);
  }
  const oldSummary = summarizeCertificate(old);
  const days = opts.days ?? Math.max(1, Math.round((Date.parse(oldSummary.not_after) - Date.parse(oldSummary.not_before)) / 86_400_000));
  const issued =
    "platform" in identity
      ? await issuePlatform(layout, store, identity.platform, { days, source: "pki renew", replaces: oldSummary.serial_number })
      : await issueEdge(layout, store, { tenant: identity.tenant, component: identity.component, partition: identity.partition, days }, { ...(identity.tenantCa ? { tenantCa: identity.tenantCa } : {}), source: "pki renew", replaces: oldSummary.serial_number });
  if (opts.revoke) await opts.revoke(old);
  return {
    issued,
    previous: { serial_number: oldSummary.serial_number, fingerprint_sha256: oldSummary.fingerprint_sha256, not_after: oldSummary.not_after, status: opts.revoke ? "revoked" : "valid_until_expiry" },
  };
}

export interface RevocationTarget {
  /** Default: from the certificate's CN. */
  scope?: CertificateScope;
  cert?: X509Certificate;
  serial?: string;
  fingerprint?: string;
  reason?: string;
}

export interface RevocationResult {
  status: "revoked" | "already_revoked";
  scope: string;
  certificate: Omit<RevokedCertificate, "user_public_key">;
}

/** Entries whose certificate has expired are dropped: it is refused as expired anyway. */
function pruned(list: readonly RevokedCertificate[], now = Date.now()): RevokedCertificate[] {
  return list.filter((r) => Date.parse(r.not_after) > now);
}

/** What a revocation needs to know of a certificate. */
type CertificateFacts = Pick<RevokedCertificate, "serial_number" | "fingerprint_sha256" | "subject_cn" | "not_after">;

function factsOf(cert: X509Certificate): CertificateFacts {
  const { serial_number, fingerprint_sha256, subject_cn, not_after } = summarizeCertificate(cert);
  return { serial_number, fingerprint_sha256, subject_cn, not_after };
}

/**
 * Revokes one certificate, found by the certificate itself, or by serial or fingerprint in the
 * inventory (or, for certificates issued before it, the data dir's files). Takes effect live: the
 * registry change reaches every gateway (new sessions refused), the account push cuts its sessions.
 */
export async function revokeCertificate(cp: ControlPlane, tenants: TenantService, target: RevocationTarget): Promise<RevocationResult> {
  const facts = target.cert ? factsOf(target.cert) : await locate(cp, target);
  const certScope = scopeOfCommonName(facts.subject_cn);
  if (target.scope && scopeKey(target.scope) !== scopeKey(certScope)) {
    throw new CodedError("invalid_argument", `certificate "${facts.subject_cn}" belongs to ${scopeText(certScope)}, not to ${scopeText(target.scope)}`);
  }
  const signingKey = "tenant" in certScope ? (await tenants.load(certScope.tenant)).signingKey : cp.platform.signingKey;
  const entry: RevokedCertificate = {
    ...facts,
    revoked_at: new Date().toISOString(),
    ...(target.reason ? { reason: target.reason } : {}),
    user_public_key: certificateUserKey(signingKey, facts.fingerprint_sha256).getPublicKey(),
  };
  const result = (existing: RevokedCertificate | undefined): RevocationResult => {
    const { user_public_key: _u, ...shown } = existing ?? entry;
    return { status: existing ? "already_revoked" : "revoked", scope: scopeKey(certScope), certificate: shown };
  };
  if ("tenant" in certScope) {
    const current = (await tenants.get(certScope.tenant)).revoked_certificates?.find((r) => r.fingerprint_sha256 === entry.fingerprint_sha256);
    if (current) return result(current);
    await tenants.update(certScope.tenant, (record) => ({ ...record, revoked_certificates: [...pruned(record.revoked_certificates ?? []), entry] }));
    return result(undefined);
  }
  const current = (await readPlatformTrust(cp.store)).trust.revoked_certificates.find((r) => r.fingerprint_sha256 === entry.fingerprint_sha256);
  if (current) return result(current);
  await updatePlatformTrust(cp.store, (trust) => ({ ...trust, revoked_certificates: [...pruned(trust.revoked_certificates), entry] }));
  await tenants.pushPlatform();
  return result(undefined);
}

/** A certificate by serial or fingerprint: the inventory first, then the data dir's files. */
async function locate(cp: ControlPlane, target: RevocationTarget): Promise<CertificateFacts> {
  if (!target.scope) throw new CodedError("invalid_argument", "name the certificate's tenant (--tenant) or --platform, or give the certificate itself (--cert)");
  if (!target.serial && !target.fingerprint) throw new CodedError("invalid_argument", "give the certificate's --serial, --fingerprint or the certificate itself (--cert)");
  const match = { ...(target.serial ? { serial: normalizeHex(target.serial) } : {}), ...(target.fingerprint ? { fingerprint: normalizeHex(target.fingerprint) } : {}) };
  const issued = await findIssued(cp.store, scopeKey(target.scope), match);
  if (issued) return { serial_number: issued.serial_number, fingerprint_sha256: issued.fingerprint_sha256, subject_cn: issued.subject_cn, not_after: issued.not_after };
  const fromFiles = await findCertificateFile(cp.layout, target.scope, match);
  if (fromFiles) return factsOf(fromFiles);
  throw new CodedError(
    "certificate_not_found",
    `no certificate with ${match.serial ? `serial ${match.serial}` : `fingerprint ${match.fingerprint}`} issued for ${scopeText(target.scope)} in ${cp.store.location} or the data dir's files; revoke it with --cert <file.pem>`,
  );
}

/**
 * CA rotation with an overlap: a new CA becomes the one that issues, and the certificates of the
 * previous one are still admitted until a deadline (`--overlap 30d`), then refused (`retired_ca`).
 * For a tenant CA the tenant record carries both (every gateway replica follows it live); for the
 * platform CA the files of the data dir hold the new one and the registry's platform trust state
 * lists the previous one with its deadline. Identities of the previous CA are renewed during the
 * overlap (`pki renew`); `end-overlap` ends it early.
 */
import { X509Certificate } from "node:crypto";
import { CodedError } from "../common/coded-error.ts";
import { writeFileAtomic } from "../common/files.ts";
import { loadPlatformCa, loadRoot, reissueGatewayCertificate, writePlatformCa, type GatewayCertificateResult } from "../pki/authority.ts";
import { createPlatformCa, createTenantCa, summarizeCertificate, type CertificateSummary } from "../pki/certificates.ts";
import type { ControlPlane } from "./control-plane.ts";
import { readPlatformTrust, updatePlatformTrust } from "./platform-trust.ts";
import { previousCaView, type PreviousCaView, type TenantService } from "./tenants.ts";
import type { PreviousCa } from "./tenant-store.ts";

/** Previous CAs kept per tenant (and for the platform), newest first; older ones are forgotten. */
const KEEP_PREVIOUS = 5;

export interface CaStatus {
  /** Tenant slug, or `platform`. */
  scope: string;
  active: Omit<CertificateSummary, "fingerprint_sha256">;
  previous: PreviousCaView[];
  /** The latest overlap deadline still ahead, if any: until then both CAs' certificates connect. */
  overlap_until?: string;
}

export interface RotationResult extends CaStatus {
  status: "rotated";
  /** Platform rotations re-issue the gateway's server certificate from the new CA. */
  gateway_certificate?: GatewayCertificateResult;
}

function caStatus(scope: string, activePem: string, previous: readonly PreviousCa[]): CaStatus {
  const { fingerprint_sha256: _fp, ...active } = summarizeCertificate(new X509Certificate(activePem));
  const views = previous.map((p) => previousCaView(p));
  const ahead = views.filter((v) => v.state === "overlap").map((v) => v.admitted_until).sort();
  return { scope, active, previous: views, ...(ahead.length > 0 ? { overlap_until: ahead[ahead.length - 1] } : {}) };
}

/**
 * The deadline is a whole second: user JWTs expire in whole seconds, so the JWT of a session from
 * the previous CA (see identify) expires exactly when the CA stops being admitted.
 */
function retire(certPem: string, overlapSeconds: number, older: readonly PreviousCa[]): PreviousCa[] {
  const now = Date.now();
  const deadline = Math.ceil(now / 1000) * 1000 + overlapSeconds * 1000;
  return [{ cert_pem: certPem, retired_at: new Date(now).toISOString(), admitted_until: new Date(deadline).toISOString() }, ...older].slice(0, KEEP_PREVIOUS);
}

/** Deadlines still ahead brought to now. */
function ended(previous: readonly PreviousCa[]): PreviousCa[] {
  const now = new Date().toISOString();
  return previous.map((p) => (p.admitted_until > now ? { ...p, admitted_until: now } : p));
}

function checkOverlap(overlapSeconds: number): void {
  if (!Number.isSafeInteger(overlapSeconds) || overlapSeconds < 0) throw new CodedError("invalid_argument", `the overlap must be a duration like 30d, 12h or 0, got ${overlapSeconds}`);
}

export async function tenantCaStatus(tenants: TenantService, slug: string): Promise<CaStatus> {
  const record = await tenants.get(slug);
  return caStatus(slug, record.ca_cert_pem, record.previous_cas ?? []);
}

/**
 * A new CA for the tenant. No NATS change: the account is not affected, only who may connect; the
 * registry write is what every gateway follows. With the directory store the CA files
 * (`ca.pem`, `ca-key.pem`, `ca-chain.pem`) are the new CA's afterwards.
 */
export async function rotateTenantCa(cp: ControlPlane, tenants: TenantService, slug: string, opts: { overlapSeconds: number; validityYears?: number }): Promise<RotationResult> {
  checkOverlap(opts.overlapSeconds);
  const { record, secrets } = await tenants.load(slug);
  if (record.status === "provisioning") throw new CodedError("tenant_provisioning", `tenant "${slug}" is still provisioning; run "tenant-gateway tenant create ${slug}" first`);
  const root = await loadRoot(cp.layout);
  const ca = await createTenantCa(root, slug, opts.validityYears === undefined ? {} : { validityYears: opts.validityYears });
  const previous = retire(record.ca_cert_pem, opts.overlapSeconds, record.previous_cas ?? []);
  const next = { ...record, ca_cert_pem: ca.certPem, previous_cas: previous, updated_at: new Date().toISOString() };
  await cp.store.put(next, { ...secrets, ca_key_pem: ca.keyPem });
  if (cp.store.kind === "directory") await writeFileAtomic(cp.layout.tenantCa(slug).chain, `${ca.certPem.trim()}\n${root.certPem.trim()}\n`);
  return { status: "rotated", ...caStatus(slug, next.ca_cert_pem, previous) };
}

export async function endTenantOverlap(tenants: TenantService, cp: ControlPlane, slug: string): Promise<CaStatus> {
  const record = await tenants.get(slug);
  const previous = ended(record.previous_cas ?? []);
  await cp.store.put({ ...record, previous_cas: previous, updated_at: new Date().toISOString() });
  return caStatus(slug, record.ca_cert_pem, previous);
}

export async function platformCaStatus(cp: ControlPlane): Promise<CaStatus> {
  const { trust } = await readPlatformTrust(cp.store);
  return caStatus("platform", (await loadPlatformCa(cp.layout)).certPem, trust.previous_cas);
}

/**
 * A new platform CA: the registry lists the current one as previous (with its deadline) and the new
 * one as active before the files change, so running gateways admit both throughout; then the
 * files, then the gateway's server certificate re-issued from the new CA with the same names (a
 * gateway serves it after a restart; clients trust the root, so the old one keeps working until
 * then). Platform identities are renewed from the new CA with `pki renew --platform <name>`.
 */
export async function rotatePlatformCa(cp: ControlPlane, opts: { overlapSeconds: number; validityYears?: number }): Promise<RotationResult> {
  checkOverlap(opts.overlapSeconds);
  const root = await loadRoot(cp.layout);
  const current = await loadPlatformCa(cp.layout);
  const ca = await createPlatformCa(root, opts.validityYears === undefined ? {} : { validityYears: opts.validityYears });
  const trust = await updatePlatformTrust(cp.store, (t) => ({ ...t, ca_cert_pem: ca.certPem, previous_cas: retire(current.certPem, opts.overlapSeconds, t.previous_cas) }));
  await writePlatformCa(cp.layout, ca);
  const gateway = await reissueGatewayCertificate(cp.layout);
  return { status: "rotated", ...caStatus("platform", ca.certPem, trust.previous_cas), gateway_certificate: gateway };
}

export async function endPlatformOverlap(cp: ControlPlane): Promise<CaStatus> {
  const trust = await updatePlatformTrust(cp.store, (t) => ({ ...t, previous_cas: ended(t.previous_cas) }));
  return caStatus("platform", (await loadPlatformCa(cp.layout)).certPem, trust.previous_cas);
}

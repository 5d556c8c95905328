/**
 * Who is the client? Decided from the client certificate and its chain, never from anything the
 * client claims (architecture brief, section 2): the chain must verify to our root, the CN must
 * parse strictly, and the CA that issued the leaf must be the active CA of the tenant the CN names
 * (compared by SPKI SHA-256), or a platform CA for a platform CN.
 *
 * During a CA rotation the previous CA is still admitted until its overlap deadline: an identity it
 * issued is accepted with `notAfter` no later than the deadline (the user JWT minted for it expires
 * then, so NATS ends its session at the deadline), and refused afterwards (`retired_ca`).
 */
import type { X509Certificate } from "node:crypto";
import { CodedError } from "../common/coded-error.ts";
import { commonNameOf, isClientCertificate, signedBy, spkiSha256 } from "./certificates.ts";
import { NameError, parseCommonName } from "./names.ts";

export type IdentityErrorCode =
  | "missing_certificate"
  | "missing_chain"
  | "invalid_cn_format"
  | "reserved_slug"
  | "unknown_issuer"
  | "unknown_tenant"
  | "tenant_suspended"
  | "tenant_slug_mismatch"
  | "platform_cn_from_tenant_ca"
  | "platform_identity_not_allowed"
  | "not_a_client_certificate"
  | "expired"
  | "not_yet_valid"
  | "bad_signature"
  | "retired_ca"
  | "certificate_revoked";

export class IdentityError extends CodedError<IdentityErrorCode> {}

export interface EdgeIdentity {
  kind: "edge";
  cn: string;
  tenant: string;
  component: string;
  partition: string;
  /** The certificate's expiry, or the end of its CA's overlap when that comes first. */
  notAfter: Date;
  /** SHA-256 fingerprint of the leaf, hex: the key for caches of verified identities and for revocations. */
  fingerprint: string;
  /** Serial number, lower-case hex (absent only in identities made up by tests). */
  serial?: string;
}

export interface PlatformIdentity {
  kind: "platform";
  cn: string;
  name: string;
  notAfter: Date;
  fingerprint: string;
  serial?: string;
}

export type Identity = EdgeIdentity | PlatformIdentity;

/**
 * A CA the gateway knows under its root. `admittedUntil`: a previous CA (rotated out), whose
 * certificates are admitted until then; absent for an active CA.
 */
export type KnownCa = ({ kind: "platform"; cert: X509Certificate; spki: string } | { kind: "tenant"; slug: string; cert: X509Certificate; spki: string }) & { admittedUntil?: Date };

/** A CA to put into a CaIndex. */
export type CaEntry = ({ kind: "platform"; cert: X509Certificate } | { kind: "tenant"; slug: string; cert: X509Certificate }) & { admittedUntil?: Date };

/**
 * What identify() trusts: the root, and the CAs under it by subject name. For a tenant, only the
 * CA returned by activeTenantCa() may issue its edge certificates.
 */
export interface TrustStore {
  readonly root: X509Certificate;
  /** Known CAs whose subject DN equals `subject` (Node's `X509Certificate.subject` format). */
  casBySubject(subject: string): readonly KnownCa[];
  /** SPKI SHA-256 of the tenant's active CA, or undefined when the tenant has no CA here. */
  activeTenantCaSpki(slug: string): string | undefined;
}

const TENANT_CA_CN = /^tenant-([a-z0-9-]+)\.ca\.serviceradar$/;

/** A previous CA's certificates are admitted until its deadline, with a notAfter no later than it. */
function withinOverlap(known: KnownCa, cn: string, notAfter: Date, now: Date): Date {
  if (!known.admittedUntil) return notAfter;
  if (now.getTime() >= known.admittedUntil.getTime()) {
    const whose = known.kind === "tenant" ? `tenant "${known.slug}"` : "the platform";
    throw new IdentityError(
      "retired_ca",
      `certificate "${cn}" is signed by a previous CA of ${whose}, whose overlap ended at ${known.admittedUntil.toISOString()}; renew it from the active CA ("tenant-gateway pki renew")`,
    );
  }
  return notAfter.getTime() < known.admittedUntil.getTime() ? notAfter : known.admittedUntil;
}

function checkValidity(cert: X509Certificate, now: Date, what: string): void {
  if (now.getTime() < new Date(cert.validFrom).getTime()) {
    throw new IdentityError("not_yet_valid", `${what} is not valid before ${new Date(cert.validFrom).toISOString()}`);
  }
  if (now.getTime() > new Date(cert.validTo).getTime()) {
    throw new IdentityError("expired", `${what} expired at ${new Date(cert.validTo).toISOString()}`);
  }
}

/** Finds the CA that signed `leaf` among the certificates the client sent and the ones we know. */
function findIssuer(leaf: X509Certificate, chain: readonly X509Certificate[], trust: TrustStore): X509Certificate {
  const candidates = [...chain.filter((c) => c.subject === leaf.issuer), ...trust.casBySubject(leaf.issuer).map((k) => k.cert)];
  if (candidates.length === 0) {
    if (chain.length === 0) {
      throw new IdentityError("missing_chain", `the client sent only its certificate and its issuer "${commonNameOf(leaf.issuer) ?? leaf.issuer}" is not a CA this gateway knows; send the chain (leaf, tenant CA)`);
    }
    throw new IdentityError("unknown_issuer", `certificate issuer "${commonNameOf(leaf.issuer) ?? leaf.issuer}" is not a CA under the platform root`);
  }
  const issuer = candidates.find((c) => c.ca && signedBy(leaf, c));
  if (!issuer) {
    throw new IdentityError("bad_signature", `certificate signature does not verify with the key of its named issuer "${commonNameOf(leaf.issuer) ?? leaf.issuer}"`);
  }
  return issuer;
}

function checkIssuedByRoot(ca: X509Certificate, root: X509Certificate, now: Date): void {
  if (ca.fingerprint256 === root.fingerprint256) {
    throw new IdentityError("unknown_issuer", "certificate is signed by the root itself; clients must hold a certificate from a tenant or platform CA");
  }
  if (ca.issuer !== root.subject) {
    throw new IdentityError("unknown_issuer", `issuing CA "${commonNameOf(ca.subject) ?? ca.subject}" is not issued by the platform root "${commonNameOf(root.subject)}"`);
  }
  if (!signedBy(ca, root)) {
    throw new IdentityError("unknown_issuer", `issuing CA "${commonNameOf(ca.subject) ?? ca.subject}" does not verify against the platform root (a CA from another root with the same name)`);
  }
  checkValidity(ca, now, `issuing CA "${commonNameOf(ca.subject)}"`);
}

/**
 * Decides who the client is. `chain` is whatever else the client sent (may be empty).
 * Throws IdentityError with a stable code; returns the identity when accepted.
 */
export function identify(leaf: X509Certificate | undefined, chain: readonly X509Certificate[], trust: TrustStore, now: Date = new Date()): Identity {
  if (!leaf) throw new IdentityError("missing_certificate", "no client certificate was presented");
  if (!isClientCertificate(leaf)) {
    throw new IdentityError("not_a_client_certificate", `certificate "${commonNameOf(leaf.subject) ?? leaf.subject}" is ${leaf.ca ? "a CA certificate" : "not usable for client authentication (extended key usage lacks clientAuth)"}`);
  }
  const cn = commonNameOf(leaf.subject);
  checkValidity(leaf, now, `certificate "${cn ?? leaf.subject}"`);
  const issuer = findIssuer(leaf, chain, trust);
  checkIssuedByRoot(issuer, trust.root, now);

  if (cn === undefined) throw new IdentityError("invalid_cn_format", "certificate subject has no single CN");
  let parsed;
  try {
    parsed = parseCommonName(cn);
  } catch (err) {
    if (err instanceof NameError) throw new IdentityError(err.code === "reserved_slug" ? "reserved_slug" : "invalid_cn_format", err.message);
    throw err;
  }

  const issuerSpki = spkiSha256(issuer);
  const known = trust.casBySubject(issuer.subject).find((k) => k.spki === issuerSpki);
  const issuerTenant = known?.kind === "tenant" ? known.slug : TENANT_CA_CN.exec(commonNameOf(issuer.subject) ?? "")?.[1];
  const notAfter = new Date(leaf.validTo);
  const fingerprint = leaf.fingerprint256.replaceAll(":", "").toLowerCase();
  const serial = leaf.serialNumber.toLowerCase();

  if (parsed.kind === "platform") {
    if (known?.kind === "platform") return { kind: "platform", cn, name: parsed.name, notAfter: withinOverlap(known, cn, notAfter, now), fingerprint, serial };
    if (issuerTenant !== undefined) {
      throw new IdentityError("platform_cn_from_tenant_ca", `platform identity "${cn}" is signed by tenant CA of "${issuerTenant}"; only the platform CA may issue platform identities`);
    }
    throw new IdentityError("unknown_issuer", `platform identity "${cn}" is signed by "${commonNameOf(issuer.subject)}", which is not the platform CA`);
  }

  const activeSpki = trust.activeTenantCaSpki(parsed.tenant);
  const edge = (until: Date): EdgeIdentity => ({ kind: "edge", cn, tenant: parsed.tenant, component: parsed.component, partition: parsed.partition, notAfter: until, fingerprint, serial });
  if (activeSpki !== undefined && activeSpki === issuerSpki) return edge(notAfter);
  if (activeSpki !== undefined && known?.kind === "tenant" && known.slug === parsed.tenant && known.admittedUntil) return edge(withinOverlap(known, cn, notAfter, now));
  if (issuerTenant !== undefined && issuerTenant !== parsed.tenant) {
    throw new IdentityError("tenant_slug_mismatch", `certificate "${cn}" names tenant "${parsed.tenant}" but is signed by the CA of tenant "${issuerTenant}"`);
  }
  if (activeSpki === undefined) {
    throw new IdentityError("unknown_tenant", `certificate "${cn}" names tenant "${parsed.tenant}", which has no CA here`);
  }
  if (known?.kind === "platform") {
    throw new IdentityError("unknown_issuer", `edge certificate "${cn}" is signed by the platform CA; edge certificates come from the tenant's own CA`);
  }
  throw new IdentityError("unknown_issuer", `certificate "${cn}" is signed by a CA that is not the active CA of tenant "${parsed.tenant}" (spki ${issuerSpki.slice(0, 16)}…)`);
}

/** A TrustStore over an in-memory list of CAs, indexed by subject. */
export class CaIndex implements TrustStore {
  readonly root: X509Certificate;
  private readonly bySubject = new Map<string, KnownCa[]>();
  private readonly tenantSpki = new Map<string, string>();

  constructor(root: X509Certificate, cas: Iterable<CaEntry>) {
    this.root = root;
    for (const ca of cas) {
      const known = { ...ca, spki: spkiSha256(ca.cert) } as KnownCa;
      const list = this.bySubject.get(ca.cert.subject) ?? [];
      list.push(known);
      this.bySubject.set(ca.cert.subject, list);
      if (known.kind === "tenant" && !known.admittedUntil) this.tenantSpki.set(known.slug, known.spki);
    }
  }

  casBySubject(subject: string): readonly KnownCa[] {
    return this.bySubject.get(subject) ?? [];
  }

  activeTenantCaSpki(slug: string): string | undefined {
    return this.tenantSpki.get(slug);
  }
}

/**
 * Certificates from before tenants (the migration path of ServiceRadar's tenant-isolation plan):
 * components were issued `CN=<component>.serviceradar` by one platform CA, and published
 * un-prefixed subjects. With legacy admission configured, such a certificate is admitted as an
 * edge component of one configured tenant (`default`), so those components keep working, in that
 * tenant's namespace, while they are re-issued from the tenant's own CA. Off unless configured.
 *
 * Nothing is taken on trust that identify() would not take: the certificate must be a client
 * certificate, valid now, and signed by a platform CA the gateway knows (its own trust store, never
 * a chain the client sent).
 */
import type { X509Certificate } from "node:crypto";
import { commonNameOf, isClientCertificate, signedBy } from "./certificates.ts";
import { IdentityError, type EdgeIdentity, type TrustStore } from "./identity.ts";
import { CN_SUFFIX } from "./names.ts";

/** `<component>.serviceradar`, the component token as component ids are written. */
const LEGACY_CN = new RegExp(`^([a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?)\\.${CN_SUFFIX}$`);

/** The partition legacy components are counted under (their certificates name none). */
export const LEGACY_PARTITION = "legacy";

/**
 * The identity a pre-tenant certificate gets in `tenant`, or undefined when it is not one (another
 * CN, or not signed by a known platform CA). Throws IdentityError when it is one but expired, not
 * yet valid, or from a platform CA whose overlap has ended.
 */
export function identifyLegacy(leaf: X509Certificate | undefined, trust: TrustStore, tenant: string, now: Date = new Date()): EdgeIdentity | undefined {
  if (!leaf || !isClientCertificate(leaf)) return undefined;
  const cn = commonNameOf(leaf.subject);
  const component = cn === undefined ? undefined : LEGACY_CN.exec(cn)?.[1];
  if (cn === undefined || component === undefined) return undefined;
  const issuer = trust.casBySubject(leaf.issuer).find((ca) => ca.kind === "platform" && signedBy(leaf, ca.cert));
  if (!issuer) return undefined;
  if (now.getTime() < new Date(leaf.validFrom).getTime()) throw new IdentityError("not_yet_valid", `certificate "${cn}" is not valid before ${new Date(leaf.validFrom).toISOString()}`);
  if (now.getTime() > new Date(leaf.validTo).getTime()) throw new IdentityError("expired", `certificate "${cn}" expired at ${new Date(leaf.validTo).toISOString()}`);
  if (now.getTime() > new Date(issuer.cert.validTo).getTime()) throw new IdentityError("expired", `issuing CA "${commonNameOf(issuer.cert.subject)}" expired at ${new Date(issuer.cert.validTo).toISOString()}`);
  let notAfter = new Date(leaf.validTo);
  if (issuer.admittedUntil) {
    if (now.getTime() > issuer.admittedUntil.getTime()) {
      throw new IdentityError("retired_ca", `certificate "${cn}" is signed by a previous platform CA, whose overlap ended at ${issuer.admittedUntil.toISOString()}`);
    }
    if (issuer.admittedUntil.getTime() < notAfter.getTime()) notAfter = issuer.admittedUntil;
  }
  return {
    kind: "edge",
    cn,
    tenant,
    component,
    partition: LEGACY_PARTITION,
    notAfter,
    fingerprint: leaf.fingerprint256.replaceAll(":", "").toLowerCase(),
    serial: leaf.serialNumber.toLowerCase(),
  };
}

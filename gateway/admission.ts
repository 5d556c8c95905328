/**
 * Admission: who a client is and whether it may have a session, decided from its certificate,
 * the tenant registry and the gateway's configuration. The one implementation the serving
 * gateway and `tenant-gateway pki identify` share, so troubleshooting says exactly what the
 * gateway would do.
 */
import type { X509Certificate } from "node:crypto";
import { identify, IdentityError, type EdgeIdentity, type Identity, type PlatformIdentity, type TrustStore } from "../pki/identity.ts";
import type { RevokedCertificate, TenantRecord } from "../accounts/tenant-store.ts";
import { identifyLegacy } from "../pki/legacy-identity.ts";

/** What admission needs to know of the registry, beyond the CAs: each tenant's status, and the certificates revoked. */
export interface AdmissionRegistry<T extends { record: Pick<TenantRecord, "status"> }> extends TrustStore {
  get(slug: string): T | undefined;
  revocation(identity: Identity): Pick<RevokedCertificate, "revoked_at" | "reason" | "serial_number"> | undefined;
}

/** `legacy`: a pre-tenant certificate admitted into the configured legacy tenant (pki/legacy-identity.ts). */
export type Admitted<T> = { kind: "edge"; identity: EdgeIdentity; tenant: T; legacy?: true } | { kind: "platform"; identity: PlatformIdentity };

export interface AdmissionOptions {
  /** Admit pre-tenant certificates (`<component>.serviceradar` from the platform CA) into this tenant; off when unset. */
  legacyTenant?: string | undefined;
}

/** Throws IdentityError with a stable code, or says who the client is and what it gets. */
export function admit<T extends { record: Pick<TenantRecord, "status"> }>(
  leaf: X509Certificate | undefined,
  chain: readonly X509Certificate[],
  registry: AdmissionRegistry<T>,
  allowedPlatformIdentities: readonly string[],
  now?: Date,
  options: AdmissionOptions = {},
): Admitted<T> {
  let identity: Identity;
  let legacy = false;
  try {
    identity = identify(leaf, chain, registry, now);
  } catch (err) {
    // Only a CN of no current format may be a pre-tenant one; every other refusal stands.
    const old = options.legacyTenant !== undefined && err instanceof IdentityError && err.code === "invalid_cn_format" ? identifyLegacy(leaf, registry, options.legacyTenant, now) : undefined;
    if (!old) throw err;
    identity = old;
    legacy = true;
  }
  const revoked = registry.revocation(identity);
  if (revoked) {
    throw new IdentityError(
      "certificate_revoked",
      `certificate "${identity.cn}" (serial ${revoked.serial_number}) was revoked at ${revoked.revoked_at}${revoked.reason ? ` (${revoked.reason})` : ""}; issue the component a new one ("tenant-gateway pki renew")`,
    );
  }
  if (identity.kind === "platform") {
    if (!allowedPlatformIdentities.includes(identity.name)) {
      throw new IdentityError("platform_identity_not_allowed", `platform identity "${identity.name}" may not use the gateway (allowed: ${allowedPlatformIdentities.join(", ") || "none"})`);
    }
    return { kind: "platform", identity };
  }
  const tenant = registry.get(identity.tenant);
  if (!tenant) throw new IdentityError("unknown_tenant", `tenant "${identity.tenant}" is not registered here`);
  if (tenant.record.status === "suspended") throw new IdentityError("tenant_suspended", `tenant "${identity.tenant}" is suspended`);
  if (tenant.record.status !== "active") throw new IdentityError("unknown_tenant", `tenant "${identity.tenant}" is still being provisioned`);
  return legacy ? { kind: "edge", identity, tenant, legacy: true } : { kind: "edge", identity, tenant };
}

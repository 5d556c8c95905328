/**
 * The platform's trust state in the registry (entry `platform/trust`), shared by every gateway
 * replica like a tenant record: the platform CA as last rotated and the previous ones still
 * admitted until their overlap deadline, and the platform certificates revoked. The active platform
 * CA and its key also stay files of the data dir (`platform/ca.pem`), which is what a gateway
 * loads at start-up; the entry is what running gateways follow.
 */
import { ajv, validateOrThrow } from "../common/schema.ts";
import { revokedSchema, type PreviousCa, type RevokedCertificate, type TenantStore } from "./tenant-store.ts";

export const PLATFORM_TRUST_KEY = "trust";

export interface PlatformTrust {
  /** The active platform CA since the last rotation (absent before any). */
  ca_cert_pem?: string;
  previous_cas: PreviousCa[];
  revoked_certificates: RevokedCertificate[];
  updated_at: string;
}

const validateTrust = ajv.compile<PlatformTrust>({
  type: "object",
  required: ["previous_cas", "revoked_certificates", "updated_at"],
  additionalProperties: false,
  properties: {
    ca_cert_pem: { type: "string", pattern: "BEGIN CERTIFICATE" },
    previous_cas: {
      type: "array",
      items: {
        type: "object",
        required: ["cert_pem", "retired_at", "admitted_until"],
        additionalProperties: false,
        properties: { cert_pem: { type: "string", pattern: "BEGIN CERTIFICATE" }, retired_at: { type: "string" }, admitted_until: { type: "string" } },
      },
    },
    revoked_certificates: { type: "array", items: revokedSchema },
    updated_at: { type: "string" },
  },
});

const EMPTY: PlatformTrust = { previous_cas: [], revoked_certificates: [], updated_at: new Date(0).toISOString() };

export async function readPlatformTrust(store: TenantStore): Promise<{ trust: PlatformTrust; revision: number }> {
  const entry = await store.getEntry("platform", PLATFORM_TRUST_KEY);
  if (!entry) return { trust: EMPTY, revision: 0 };
  return { trust: validateOrThrow(validateTrust, entry.value, "corrupt_store", `platform trust state in ${store.location}`), revision: entry.revision };
}

/** Applies `change` to the current state and writes it, again from the top when someone else wrote meanwhile. */
export async function updatePlatformTrust(store: TenantStore, change: (current: PlatformTrust) => PlatformTrust): Promise<PlatformTrust> {
  for (let attempt = 1; ; attempt++) {
    const { trust, revision } = await readPlatformTrust(store);
    const next = validateOrThrow(validateTrust, { ...change(trust), updated_at: new Date().toISOString() }, "invalid_argument", "the new platform trust state");
    try {
      await store.putEntry("platform", PLATFORM_TRUST_KEY, next, { expectRevision: revision });
      return next;
    } catch (err) {
      if (attempt >= 5 || (err as { code?: string }).code !== "entry_conflict") throw err;
    }
  }
}

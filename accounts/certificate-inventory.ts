/**
 * The inventory of issued certificates, in the registry (`certificates/<scope>.<serial>`, scope =
 * tenant slug or `platform`): what was issued, to whom, by which operation, so that a certificate
 * can be revoked by serial or fingerprint alone and a tenant's certificates listed. Public data only
 * (the private keys go to the requester and nowhere else).
 */
import type { X509Certificate } from "node:crypto";
import { ajv, validateOrThrow } from "../common/schema.ts";
import { summarizeCertificate, spkiSha256, type CertificateSummary } from "../pki/certificates.ts";
import { PLATFORM_TOKEN } from "../pki/names.ts";
import type { TenantStore } from "./tenant-store.ts";

/** The scope of platform identities' certificates (a reserved slug, so never a tenant's). */
export const PLATFORM_SCOPE = PLATFORM_TOKEN;

export interface IssuedCertificate extends CertificateSummary {
  /** Tenant slug, or `platform`. */
  scope: string;
  component?: string;
  partition?: string;
  /** A platform identity's name. */
  name?: string;
  issuer_spki_sha256: string;
  issued_at: string;
  /** What issued it: `pki issue`, `pki renew`, `package <id>`, … */
  source: string;
  /** Serial of the certificate it renews. */
  replaces?: string;
}

const validateIssued = ajv.compile<IssuedCertificate>({
  type: "object",
  required: ["scope", "subject_cn", "serial_number", "not_before", "not_after", "spki_sha256", "fingerprint_sha256", "issuer_spki_sha256", "issued_at", "source"],
  additionalProperties: false,
  properties: {
    scope: { type: "string" },
    component: { type: "string" },
    partition: { type: "string" },
    name: { type: "string" },
    subject_cn: { type: "string" },
    serial_number: { type: "string", pattern: "^[0-9a-f]+$" },
    not_before: { type: "string" },
    not_after: { type: "string" },
    spki_sha256: { type: "string" },
    fingerprint_sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
    issuer_spki_sha256: { type: "string" },
    issued_at: { type: "string" },
    source: { type: "string" },
    replaces: { type: "string" },
  },
});

export async function recordIssued(
  store: TenantStore,
  cert: X509Certificate,
  issuer: X509Certificate,
  meta: Pick<IssuedCertificate, "scope" | "source" | "component" | "partition" | "name" | "replaces">,
): Promise<IssuedCertificate> {
  const entry: IssuedCertificate = { ...meta, ...summarizeCertificate(cert), issuer_spki_sha256: spkiSha256(issuer), issued_at: new Date().toISOString() };
  await store.putEntry("certificates", `${meta.scope}.${entry.serial_number}`, validateOrThrow(validateIssued, entry, "invalid_argument", "certificate inventory entry"));
  return entry;
}

export async function listIssued(store: TenantStore, scope: string): Promise<IssuedCertificate[]> {
  const entries = await store.listEntries("certificates", `${scope}.`);
  return entries.map((e) => validateOrThrow(validateIssued, e.value, "corrupt_store", `certificate inventory entry ${e.key} in ${store.location}`));
}

/** By serial (any case, with or without colons) or SHA-256 fingerprint. */
export async function findIssued(store: TenantStore, scope: string, match: { serial?: string; fingerprint?: string }): Promise<IssuedCertificate | undefined> {
  if (match.serial) {
    const entry = await store.getEntry("certificates", `${scope}.${normalizeHex(match.serial)}`);
    if (entry) return validateOrThrow(validateIssued, entry.value, "corrupt_store", `certificate inventory entry ${entry.key} in ${store.location}`);
  }
  if (match.fingerprint) {
    const fingerprint = normalizeHex(match.fingerprint);
    return (await listIssued(store, scope)).find((c) => c.fingerprint_sha256 === fingerprint);
  }
  return undefined;
}

/** `0A:1B…` / `0a1b…` → `0a1b…` (serials without leading zeros, as X509Certificate prints them). */
export function normalizeHex(value: string): string {
  return value.replaceAll(":", "").toLowerCase();
}

/**
 * The tenant registry behind one interface. A tenant record ties together its slug and id, its
 * CA (and the previous ones still admitted during a rotation), its NATS account and plan, its
 * status, the certificates revoked and the service credentials issued in it; its secrets (CA key,
 * account and signing seeds) travel separately so that listing tenants never touches them.
 *
 * Beside the tenant records the registry holds entries of a few collections (see
 * RegistryCollection): the inventory of issued certificates, onboarding packages and the
 * platform's trust state. None of them holds a secret in the clear.
 */
import { CodedError } from "../common/coded-error.ts";
import { ajv, validateOrThrow } from "../common/schema.ts";
import { REGISTRY_KEY, type RegistryCollection } from "../pki/layout.ts";

export type TenantStatus = "provisioning" | "active" | "suspended";

export interface TenantRecord {
  slug: string;
  id: string;
  name: string;
  plan: string;
  status: TenantStatus;
  created_at: string;
  updated_at: string;
  suspended_at?: string;
  ca_cert_pem: string;
  account_public_key: string;
  signing_public_key: string;
  /** The account JWT as last signed and pushed. */
  account_jwt: string;
  /** CAs rotated out, newest first: their certificates are admitted until `admitted_until`. */
  previous_cas?: PreviousCa[];
  /** Certificates refused by the gateway, whose NATS users are revoked in the account. */
  revoked_certificates?: RevokedCertificate[];
  /** `.creds` users issued for the tenant's services (`tenant creds`). */
  credentials?: ServiceCredential[];
}

export interface PreviousCa {
  cert_pem: string;
  retired_at: string;
  /** Until then its certificates are admitted; afterwards refused (`retired_ca`). */
  admitted_until: string;
}

export interface RevokedCertificate {
  serial_number: string;
  fingerprint_sha256: string;
  subject_cn: string;
  /** Once past, the entry may be dropped: the certificate is refused as expired anyway. */
  not_after: string;
  revoked_at: string;
  reason?: string;
  /** The NATS user the gateway mints for this certificate (see user-keys.ts), revoked in the account. */
  user_public_key: string;
}

export interface ServiceCredential {
  name: string;
  user_public_key: string;
  /** Subjects as NATS sees them (`<slug>.…`). */
  publish: string[];
  subscribe: string[];
  jetstream: boolean;
  issued_at: string;
  expires_at?: string;
  revoked_at?: string;
}

/** What the data path needs of a tenant's secrets: the key it signs the tenant's user JWTs with. */
export interface TenantSigningSecrets {
  signing_seed: string;
}

/** All of a tenant's secrets; the CA key and the account identity seed stay on the control plane. */
export interface TenantSecrets extends TenantSigningSecrets {
  ca_key_pem: string;
  account_seed: string;
}

export interface TenantChange {
  slug: string;
  kind: "put" | "delete";
}

/** A registry entry as stored: its value and the revision a conditional write must name. */
export interface RegistryEntry {
  key: string;
  value: unknown;
  revision: number;
}

export interface EntryWriteOptions {
  /** Write only if the entry is still at this revision (0: only if it does not exist); else `entry_conflict`. */
  expectRevision?: number;
  /** The directory store writes it owner-only (0600), e.g. a sealed bundle. */
  secret?: boolean;
}

export interface TenantStore {
  readonly kind: "directory" | "kv";
  /** Where it lives, for messages: a directory path or `kv:<bucket>`. */
  readonly location: string;
  list(): Promise<TenantRecord[]>;
  get(slug: string): Promise<TenantRecord | undefined>;
  getSecrets(slug: string): Promise<TenantSecrets | undefined>;
  /** The signing seed alone: all a serving gateway reads (a data-plane data dir holds nothing more). */
  getSigningSecrets(slug: string): Promise<TenantSigningSecrets | undefined>;
  /** Writes the record, and the secrets when given; the record is what makes a tenant visible. */
  put(record: TenantRecord, secrets?: TenantSecrets): Promise<void>;
  delete(slug: string): Promise<void>;
  /** Calls `listener` for every change made by anyone (this process or another) until stopped. */
  watch(listener: (change: TenantChange) => void): Promise<() => void>;
  getEntry(collection: RegistryCollection, key: string): Promise<RegistryEntry | undefined>;
  /** Entries whose key starts with `prefix` (whole tokens: `acme-corp.` lists that tenant's), by key. */
  listEntries(collection: RegistryCollection, prefix?: string): Promise<RegistryEntry[]>;
  /** Returns the new revision. */
  putEntry(collection: RegistryCollection, key: string, value: unknown, opts?: EntryWriteOptions): Promise<number>;
  deleteEntry(collection: RegistryCollection, key: string): Promise<void>;
  /** Calls `listener` whenever the entry changes (by anyone) until stopped. */
  watchEntry(collection: RegistryCollection, key: string, listener: () => void): Promise<() => void>;
  close(): Promise<void>;
}

export function checkRegistryKey(key: string): string {
  if (!REGISTRY_KEY.test(key)) throw new CodedError("invalid_argument", `invalid registry key ${JSON.stringify(key)}: dot-separated tokens of lower-case letters, digits, '-' and '_'`);
  return key;
}

export function entryConflict(collection: RegistryCollection, key: string, location: string): CodedError {
  return new CodedError("entry_conflict", `${collection} entry "${key}" in ${location} was changed by someone else meanwhile; repeat the operation`);
}

/** One revoked certificate (tenant records and the platform's trust state share it). */
export const revokedSchema = {
  type: "object",
  required: ["serial_number", "fingerprint_sha256", "subject_cn", "not_after", "revoked_at", "user_public_key"],
  additionalProperties: false,
  properties: {
    serial_number: { type: "string", pattern: "^[0-9a-f]+$" },
    fingerprint_sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
    subject_cn: { type: "string" },
    not_after: { type: "string" },
    revoked_at: { type: "string" },
    reason: { type: "string" },
    user_public_key: { type: "string", pattern: "^U[A-Z2-7]{55}$" },
  },
};

const recordSchema = {
  type: "object",
  required: ["slug", "id", "name", "plan", "status", "created_at", "updated_at", "ca_cert_pem", "account_public_key", "signing_public_key", "account_jwt"],
  additionalProperties: false,
  properties: {
    slug: { type: "string", minLength: 1 },
    id: { type: "string", pattern: "^[0-9a-f-]{36}$" },
    name: { type: "string" },
    plan: { type: "string", minLength: 1 },
    status: { enum: ["provisioning", "active", "suspended"] },
    created_at: { type: "string" },
    updated_at: { type: "string" },
    suspended_at: { type: "string" },
    ca_cert_pem: { type: "string", pattern: "BEGIN CERTIFICATE" },
    account_public_key: { type: "string", pattern: "^A[A-Z2-7]{55}$" },
    signing_public_key: { type: "string", pattern: "^A[A-Z2-7]{55}$" },
    account_jwt: { type: "string" },
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
    credentials: {
      type: "array",
      items: {
        type: "object",
        required: ["name", "user_public_key", "publish", "subscribe", "jetstream", "issued_at"],
        additionalProperties: false,
        properties: {
          name: { type: "string", minLength: 1 },
          user_public_key: { type: "string", pattern: "^U[A-Z2-7]{55}$" },
          publish: { type: "array", items: { type: "string" } },
          subscribe: { type: "array", items: { type: "string" } },
          jetstream: { type: "boolean" },
          issued_at: { type: "string" },
          expires_at: { type: "string" },
          revoked_at: { type: "string" },
        },
      },
    },
  },
};

const secretsSchema = {
  type: "object",
  required: ["ca_key_pem", "account_seed", "signing_seed"],
  additionalProperties: false,
  properties: {
    ca_key_pem: { type: "string", pattern: "PRIVATE KEY" },
    account_seed: { type: "string", pattern: "^SA[A-Z2-7]{56}$" },
    signing_seed: { type: "string", pattern: "^SA[A-Z2-7]{56}$" },
  },
};

const validateRecord = ajv.compile<TenantRecord>(recordSchema);
const validateSecrets = ajv.compile<TenantSecrets>(secretsSchema);
const validateSigningSecrets = ajv.compile<TenantSigningSecrets>({ ...secretsSchema, required: ["signing_seed"], properties: { signing_seed: secretsSchema.properties.signing_seed } });

/** Validates a stored record; with `slug`, also that it is that tenant's (a copied directory or key is not). */
export function checkRecord(value: unknown, where: string, slug?: string): TenantRecord {
  const record = validateOrThrow(validateRecord, value, "corrupt_store", `tenant record ${where}`);
  if (slug !== undefined && record.slug !== slug) throw new CodedError("corrupt_store", `tenant record ${where} is for tenant "${record.slug}", not "${slug}"; restore it from a backup or delete it`);
  return record;
}

export function checkSecrets(value: unknown, where: string): TenantSecrets {
  return validateOrThrow(validateSecrets, value, "corrupt_store", `tenant secrets ${where}`);
}

export function checkSigningSecrets(value: unknown, where: string): TenantSigningSecrets {
  return validateOrThrow(validateSigningSecrets, value, "corrupt_store", `tenant signing seed ${where}`);
}

export function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CodedError("corrupt_store", `tenant record ${where} is not valid JSON (${(err as Error).message}); restore it from a backup or delete the tenant`);
  }
}

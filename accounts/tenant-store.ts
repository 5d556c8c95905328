/**
 * The tenant registry behind one interface. A tenant record ties together its slug and id, its
 * CA, its NATS account and plan, and its status; its secrets (CA key, account and signing seeds)
 * travel separately so that listing tenants never touches them.
 */
import { CodedError } from "../common/coded-error.ts";
import { ajv, validateOrThrow } from "../common/schema.ts";

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
  close(): Promise<void>;
}

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

/**
 * JSON schemas of the admin API: what ajv checks on the way in (params, query, body) and what the
 * OpenAPI document says comes out. Formats are the ones the CLI's `--json` prints.
 */

export const SLUG = { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", description: "tenant slug (a DNS label)" } as const;
export const SESSION_ID = { type: "string", pattern: "^[0-9a-f]{12}$" } as const;
const DATE_TIME = { type: "string", format: "date-time" } as const;

export const ERROR = {
  $id: "Error",
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: { code: { type: "string", description: "stable code, e.g. unknown_tenant" }, message: { type: "string" } },
    },
  },
} as const;

const CERTIFICATE_SUMMARY = {
  type: "object",
  properties: {
    subject_cn: { type: "string" },
    serial_number: { type: "string" },
    not_before: DATE_TIME,
    not_after: DATE_TIME,
    spki_sha256: { type: "string" },
  },
} as const;

export const TENANT_SUMMARY = {
  type: "object",
  required: ["slug", "name", "plan", "status", "created_at", "ca", "sessions"],
  properties: {
    slug: SLUG,
    name: { type: "string" },
    plan: { type: "string" },
    status: { enum: ["provisioning", "active", "suspended"] },
    created_at: DATE_TIME,
    suspended_at: DATE_TIME,
    ca: { type: "object", properties: { subject_cn: { type: "string" }, serial_number: { type: "string" }, not_after: DATE_TIME } },
    sessions: { type: "integer", description: "live sessions of the tenant on this gateway" },
  },
} as const;

export const TENANT_VIEW = {
  type: "object",
  required: ["slug", "id", "name", "plan", "status", "ca", "previous_cas", "account", "limits"],
  description: "what `tenant-gateway tenant show --json` prints; never a key or a seed",
  properties: {
    slug: SLUG,
    id: { type: "string" },
    name: { type: "string" },
    plan: { type: "string" },
    status: { enum: ["provisioning", "active", "suspended"] },
    created_at: DATE_TIME,
    updated_at: DATE_TIME,
    suspended_at: DATE_TIME,
    ca: CERTIFICATE_SUMMARY,
    previous_cas: { type: "array", items: { type: "object", description: "see CaStatus.previous" } },
    revoked_certificates: { type: "array", items: { type: "object" } },
    credentials: { type: "array", items: { type: "object" } },
    account: { type: "object", properties: { public_key: { type: "string" }, signing_key: { type: "string" } } },
    limits: { type: "object" },
  },
} as const;

const PREVIOUS_CA = { ...CERTIFICATE_SUMMARY, properties: { ...CERTIFICATE_SUMMARY.properties, retired_at: DATE_TIME, admitted_until: DATE_TIME, state: { enum: ["overlap", "ended"] } } } as const;

export const CA_STATUS = {
  type: "object",
  required: ["scope", "active", "previous"],
  properties: {
    scope: { type: "string" },
    active: CERTIFICATE_SUMMARY,
    previous: { type: "array", items: PREVIOUS_CA, description: "CAs rotated out: certificates of those in overlap still connect until admitted_until" },
    overlap_until: { ...DATE_TIME, description: "the latest overlap deadline still ahead" },
    status: { const: "rotated" },
  },
} as const;

export const ISSUED_CERTIFICATE = {
  type: "object",
  required: ["scope", "subject_cn", "serial_number", "not_before", "not_after", "fingerprint_sha256", "issued_at", "source"],
  properties: {
    scope: { type: "string" },
    component: { type: "string" },
    partition: { type: "string" },
    subject_cn: { type: "string" },
    serial_number: { type: "string" },
    not_before: DATE_TIME,
    not_after: DATE_TIME,
    spki_sha256: { type: "string" },
    fingerprint_sha256: { type: "string" },
    issuer_spki_sha256: { type: "string" },
    issued_at: DATE_TIME,
    source: { type: "string", description: "what issued it: pki issue, admin API, package <id>, …" },
    replaces: { type: "string" },
    state: { enum: ["valid", "revoked", "expired"] },
  },
} as const;

export const REVOCATION = {
  type: "object",
  required: ["status", "scope", "certificate"],
  properties: {
    status: { enum: ["revoked", "already_revoked"] },
    scope: { type: "string" },
    certificate: { type: "object", properties: { serial_number: { type: "string" }, fingerprint_sha256: { type: "string" }, subject_cn: { type: "string" }, not_after: DATE_TIME, revoked_at: DATE_TIME, reason: { type: "string" } } },
  },
} as const;

export const PACKAGE = {
  type: "object",
  required: ["id", "tenant", "component", "partition", "type", "state", "created_at", "expires_at", "download_path"],
  description: "an onboarding package: never its token or its bundle",
  properties: {
    id: { type: "string", format: "uuid" },
    tenant: SLUG,
    component: { type: "string" },
    partition: { type: "string" },
    type: { enum: ["agent", "poller", "checker", "collector", "leaf"] },
    profile: { type: "string" },
    cn: { type: "string" },
    certificate: { type: "object", properties: { serial_number: { type: "string" }, fingerprint_sha256: { type: "string" }, not_after: DATE_TIME } },
    gateway_url: { type: "string" },
    filename: { type: "string" },
    status: { enum: ["pending", "delivered", "revoked"] },
    state: { enum: ["pending", "delivered", "revoked", "expired"] },
    created_at: DATE_TIME,
    expires_at: { ...DATE_TIME, description: "until then the token works (once)" },
    delivered_at: DATE_TIME,
    revoked_at: DATE_TIME,
    download_path: { type: "string" },
  },
} as const;

export const CONSUMER_STATS = {
  type: "object",
  properties: {
    name: { type: "string" },
    durable: { type: "boolean" },
    num_pending: { type: "integer", description: "messages not yet delivered to it: its lag" },
    num_ack_pending: { type: "integer" },
    num_redelivered: { type: "integer" },
    num_waiting: { type: "integer" },
    delivered_stream_seq: { type: "integer" },
    ack_floor_stream_seq: { type: "integer" },
  },
} as const;

export const STREAM_STATS = {
  type: "object",
  required: ["tenant", "stream", "messages", "bytes", "consumers", "consumer_lag", "ack_pending"],
  properties: {
    tenant: SLUG,
    stream: { type: "string" },
    subjects: { type: "array", items: { type: "string" }, description: "edge view" },
    messages: { type: "integer" },
    bytes: { type: "integer" },
    consumers: { type: "integer" },
    consumer_lag: { type: "integer", description: "the largest num_pending of its consumers" },
    ack_pending: { type: "integer" },
    consumer_detail: { type: "array", items: CONSUMER_STATS },
  },
} as const;

export const SESSION = {
  type: "object",
  required: ["id", "kind", "cn", "remote", "nats", "started_at", "counters", "pid"],
  properties: {
    id: SESSION_ID,
    kind: { enum: ["edge", "platform"] },
    tenant: SLUG,
    component: { type: "string" },
    partition: { type: "string" },
    platform: { type: "string" },
    cn: { type: "string" },
    remote: { type: "string" },
    nats: { type: "string" },
    tls_first: { type: "boolean" },
    started_at: DATE_TIME,
    pid: { type: "integer" },
    counters: {
      type: "object",
      properties: {
        msgsIn: { type: "integer" },
        bytesIn: { type: "integer" },
        msgsOut: { type: "integer" },
        bytesOut: { type: "integer" },
        dropped: { type: "integer" },
        refused: { type: "integer" },
        jsApi: { type: "integer" },
        jsRefused: { type: "integer" },
      },
    },
  },
} as const;

export const AUDIT_RECORD = {
  type: "object",
  required: ["time", "identity", "tenant", "operation", "subject", "count"],
  properties: {
    time: DATE_TIME,
    identity: { type: "string" },
    cn: { type: "string" },
    session: { type: "string", description: "the session, or for admin_api the request id" },
    tenant: { type: "string" },
    operation: { type: "string" },
    subject: { type: "string" },
    count: { type: "integer" },
    api: { type: "string" },
    remote: { type: "string" },
  },
} as const;

export const READINESS = {
  type: "object",
  required: ["ready", "checks"],
  properties: {
    ready: { type: "boolean" },
    checks: { type: "object", additionalProperties: { type: "object", properties: { ok: { type: "boolean" }, detail: { type: "string" } } } },
  },
} as const;

export function errors(...statuses: number[]): Record<number, typeof ERROR> {
  return Object.fromEntries(statuses.map((s) => [s, ERROR]));
}

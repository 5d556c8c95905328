/**
 * Onboarding packages (seed 3.x): for one edge component, a certificate from its tenant's CA and
 * a bundle with everything the site needs (see bundle.ts), handed out once against a one-time
 * token. The package record lives in the registry (`packages/<id>`) with the token's hash and the
 * bundle sealed under a key derived from the token (token.ts); the first download with the right
 * token takes the bundle and marks the package delivered, in one conditional write, so a second
 * download — or a race of two — gets 409.
 *
 * `PackageService` is what the CLI and the admin API call; `downloadPackage` needs only the tenant
 * store, so a serving gateway (data plane, no CA keys) can answer downloads. Failures are
 * CodedErrors carrying their HTTP status (`details.http_status`): 400 malformed request, 401
 * missing or wrong token, 404 unknown package, 409 delivered or revoked, 410 expired.
 */
import { randomUUID, X509Certificate } from "node:crypto";
import { CodedError } from "../common/coded-error.ts";
import { ajv, validateOrThrow } from "../common/schema.ts";
import { recordIssued } from "../accounts/certificate-inventory.ts";
import { revokeCertificate } from "../accounts/certificate-lifecycle.ts";
import type { ControlPlane } from "../accounts/control-plane.ts";
import type { TenantService } from "../accounts/tenants.ts";
import type { TenantStore } from "../accounts/tenant-store.ts";
import { loadRoot, readCertificateFile, subjectAltNames } from "../pki/authority.ts";
import { issueEdgeCertificate, summarizeCertificate } from "../pki/certificates.ts";
import { assertComponentId, edgeCommonName } from "../pki/names.ts";
import { loadStreamTemplates, resolveTemplatesDir } from "../streams/templates.ts";
import { parseDurationSeconds } from "../streams/units.ts";
import { bundleFiles, bundleProfile, leafUrlOf, PACKAGE_TYPES, type PackageType } from "./bundle.ts";
import { tarGz } from "./tar.ts";
import { newToken, openBundle, sealBundle, TOKEN_PATTERN, tokenHash, tokenMatches, type SealedBundle } from "./token.ts";

export const DEFAULT_PACKAGE_TTL = "24h";
/** Where edge sites reach the gateway when the operator does not say (`--gateway-url`). */
export const PUBLIC_URL_ENV = "TENANT_GATEWAY_PUBLIC_URL";
const GATEWAY_PORT = 4222;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type PackageStatus = "pending" | "delivered" | "revoked";

export interface PackageRecord {
  id: string;
  tenant: string;
  component: string;
  partition: string;
  type: PackageType;
  /** The config template: agent, poller, checker, collector-otel, collector-syslog-flow. */
  profile: string;
  cn: string;
  certificate: { serial_number: string; fingerprint_sha256: string; not_after: string };
  gateway_url: string;
  filename: string;
  status: PackageStatus;
  created_at: string;
  expires_at: string;
  delivered_at?: string;
  revoked_at?: string;
  revoke_reason?: string;
  token_sha256: string;
  /** Until delivered, revoked or found expired. */
  bundle?: SealedBundle;
}

/** What list/show/API print: never the token's hash or the bundle. `state` adds `expired`. */
export type PackageView = Omit<PackageRecord, "token_sha256" | "bundle"> & { state: PackageStatus | "expired"; download_path: string };

const validatePackage = ajv.compile<PackageRecord>({
  type: "object",
  required: ["id", "tenant", "component", "partition", "type", "profile", "cn", "certificate", "gateway_url", "filename", "status", "created_at", "expires_at", "token_sha256"],
  additionalProperties: false,
  properties: {
    id: { type: "string", pattern: UUID.source },
    tenant: { type: "string" },
    component: { type: "string" },
    partition: { type: "string" },
    type: { enum: [...PACKAGE_TYPES] },
    profile: { type: "string" },
    cn: { type: "string" },
    certificate: {
      type: "object",
      required: ["serial_number", "fingerprint_sha256", "not_after"],
      additionalProperties: false,
      properties: { serial_number: { type: "string" }, fingerprint_sha256: { type: "string" }, not_after: { type: "string" } },
    },
    gateway_url: { type: "string" },
    filename: { type: "string" },
    status: { enum: ["pending", "delivered", "revoked"] },
    created_at: { type: "string" },
    expires_at: { type: "string" },
    delivered_at: { type: "string" },
    revoked_at: { type: "string" },
    revoke_reason: { type: "string" },
    token_sha256: { type: "string", pattern: "^[0-9a-f]{64}$" },
    bundle: {
      type: "object",
      required: ["alg", "iv", "tag", "data"],
      additionalProperties: false,
      properties: { alg: { const: "AES-256-GCM" }, iv: { type: "string" }, tag: { type: "string" }, data: { type: "string" } },
    },
  },
});

function downloadError(status: 400 | 401 | 404 | 409 | 410, code: string, message: string): CodedError {
  return new CodedError(code, message, { details: { http_status: status } });
}

/** The download endpoint's path on the gateway's HTTP listener (the token goes in `?token=`). */
function downloadPath(id: string): string {
  return `/api/v1/packages/${id}/download`;
}

export function viewOf(record: PackageRecord, now = Date.now()): PackageView {
  const { token_sha256: _t, bundle: _b, ...rest } = record;
  const state = record.status === "pending" && Date.parse(record.expires_at) <= now ? "expired" : record.status;
  return { ...rest, state, download_path: downloadPath(record.id) };
}

async function readPackage(store: TenantStore, id: string): Promise<{ record: PackageRecord; revision: number } | undefined> {
  const entry = await store.getEntry("packages", id);
  if (!entry) return undefined;
  return { record: validateOrThrow(validatePackage, entry.value, "corrupt_store", `onboarding package ${id} in ${store.location}`), revision: entry.revision };
}

/** Writes a new state of a package unless someone else changed it since it was read (then `entry_conflict`). */
async function writePackage(store: TenantStore, record: PackageRecord, revision: number): Promise<void> {
  await store.putEntry("packages", record.id, validateOrThrow(validatePackage, record, "invalid_argument", "onboarding package"), { expectRevision: revision, secret: record.bundle !== undefined });
}

/**
 * Hands out a package's bundle once. Checks, in order: well-formed id and token (400), a token at
 * all (401), the package exists (404), the token is its token (401), not revoked or delivered
 * (409), not expired (410). The bundle is removed from the registry in the same conditional write
 * that marks the package delivered: only one download can win.
 */
export async function downloadPackage(store: TenantStore, id: string, token: string | undefined): Promise<{ package: PackageView; filename: string; bundle: Buffer }> {
  if (!UUID.test(id)) throw downloadError(400, "malformed_request", `"${id.slice(0, 64)}" is not a package id (a UUID)`);
  if (token === undefined || token === "") throw downloadError(401, "token_required", `downloading package ${id} needs its one-time token (?token=… or --token)`);
  if (!TOKEN_PATTERN.test(token)) throw downloadError(400, "malformed_request", "the token is not a package token (43 characters of A-Z, a-z, 0-9, - and _)");
  for (;;) {
    const found = await readPackage(store, id);
    if (!found) throw downloadError(404, "package_not_found", `no onboarding package ${id}`);
    const { record, revision } = found;
    if (!tokenMatches(token, record.token_sha256)) throw downloadError(401, "token_invalid", `the token is not package ${id}'s`);
    if (record.status === "revoked") throw downloadError(409, "package_revoked", `package ${id} was revoked at ${record.revoked_at ?? "?"}; ask the operator for a new one`);
    if (record.status === "delivered") throw downloadError(409, "package_delivered", `package ${id} was already downloaded at ${record.delivered_at ?? "?"}; a package is handed out once — ask the operator for a new one`);
    if (Date.parse(record.expires_at) <= Date.now() || !record.bundle) {
      if (record.bundle) {
        // Nothing may still open it: the sealed bundle goes, the record stays for the listing.
        const { bundle: _b, ...expired } = record;
        await writePackage(store, expired, revision).catch(() => undefined);
      }
      throw downloadError(410, "package_expired", `package ${id} expired at ${record.expires_at}; ask the operator for a new one`);
    }
    const bundle = openBundle(record.bundle, token, id);
    const { bundle: _b, ...rest } = record;
    const delivered: PackageRecord = { ...rest, status: "delivered", delivered_at: new Date().toISOString() };
    try {
      await writePackage(store, delivered, revision);
    } catch (err) {
      // Someone else changed it meanwhile (a concurrent download, a revocation): decide again.
      if ((err as { code?: string }).code === "entry_conflict") continue;
      throw err;
    }
    return { package: viewOf(delivered), filename: record.filename, bundle };
  }
}

export interface PackageSpec {
  tenant: string;
  component: string;
  partition: string;
  type: string;
  collector?: string;
  /** Token lifetime, e.g. "24h" (default). */
  ttl?: string;
  /** Certificate validity in days (default 365). */
  days?: number;
  /** `tls://host:port` edge sites connect to (default: TENANT_GATEWAY_PUBLIC_URL, else from the gateway certificate's names). */
  gatewayUrl?: string;
  /** A `leaf` package's remote, `tls://host:port` of the gateway's leaf listener (default: the gateway URL's host, port 7422). */
  leafUrl?: string;
  image?: string;
}

export interface CreatedPackage {
  package: PackageView;
  /** Shown once; only its hash is kept. */
  token: string;
}

export class PackageService {
  private readonly cp: ControlPlane;
  private readonly tenants: TenantService;

  constructor(cp: ControlPlane, tenants: TenantService) {
    this.cp = cp;
    this.tenants = tenants;
  }

  /** Issues the component's certificate, builds and seals the bundle, and records the package with its token's hash. */
  async create(spec: PackageSpec): Promise<CreatedPackage> {
    const profile = bundleProfile(spec.type, spec.collector);
    assertComponentId(spec.component, "component");
    assertComponentId(spec.partition, "partition");
    const cn = edgeCommonName(spec.tenant, spec.component, spec.partition);
    const ttlSeconds = parseDurationSeconds(spec.ttl ?? DEFAULT_PACKAGE_TTL);
    if (ttlSeconds === undefined || ttlSeconds === 0) throw new CodedError("invalid_argument", `--ttl must be a duration like 24h or 7d, got "${spec.ttl}"`);
    const gatewayUrl = spec.gatewayUrl ?? (await this.defaultGatewayUrl());
    if (!/^tls:\/\/[A-Za-z0-9.:[\]-]+:\d{1,5}$/.test(gatewayUrl)) throw new CodedError("invalid_argument", `--gateway-url must look like tls://gateway.example.com:4222, got "${gatewayUrl}"`);
    const leafUrl = profile.type === "leaf" ? (spec.leafUrl ?? leafUrlOf(gatewayUrl)) : undefined;
    if (leafUrl !== undefined && !/^tls:\/\/[A-Za-z0-9.:[\]-]+:\d{1,5}$/.test(leafUrl)) throw new CodedError("invalid_argument", `--leaf-url must look like tls://gateway.example.com:7422, got "${leafUrl}"`);

    const { record: tenant, secrets } = await this.tenants.load(spec.tenant);
    if (tenant.status !== "active") throw new CodedError(`tenant_${tenant.status}`, `tenant "${spec.tenant}" is ${tenant.status}; packages are created for active tenants`);
    const ca = { certPem: tenant.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(tenant.ca_cert_pem) };
    const root = await loadRoot(this.cp.layout);
    const streams = await loadStreamTemplates((await resolveTemplatesDir(this.cp.layout.dir)).dir);

    const id = randomUUID();
    const createdAt = new Date();
    const leaf = await issueEdgeCertificate(ca, { tenant: spec.tenant, component: spec.component, partition: spec.partition, days: spec.days ?? 365 });
    const summary = summarizeCertificate(leaf.cert);
    const files = await bundleFiles({
      packageId: id,
      createdAt: createdAt.toISOString(),
      tenant: spec.tenant,
      component: spec.component,
      partition: spec.partition,
      cn,
      profile,
      gatewayUrl,
      ...(leafUrl ? { leafUrl } : {}),
      certPem: leaf.certPem,
      keyPem: leaf.keyPem,
      caChainPem: `${ca.certPem.trim()}\n${root.certPem.trim()}\n`,
      certSerial: summary.serial_number,
      certNotAfter: summary.not_after,
      streams,
      ...(spec.image ? { image: spec.image } : {}),
      templatesDir: this.cp.layout.onboardingTemplatesDir,
    });
    const token = newToken();
    const record: PackageRecord = {
      id,
      tenant: spec.tenant,
      component: spec.component,
      partition: spec.partition,
      type: profile.type,
      profile: profile.name,
      cn,
      certificate: { serial_number: summary.serial_number, fingerprint_sha256: summary.fingerprint_sha256, not_after: summary.not_after },
      gateway_url: gatewayUrl,
      filename: `${spec.tenant}-${spec.component}-${spec.partition}.tar.gz`,
      status: "pending",
      created_at: createdAt.toISOString(),
      expires_at: new Date(createdAt.getTime() + ttlSeconds * 1000).toISOString(),
      token_sha256: tokenHash(token),
      bundle: sealBundle(tarGz(files, Math.floor(createdAt.getTime() / 1000)), token, id),
    };
    await recordIssued(this.cp.store, leaf.cert, ca.cert, { scope: spec.tenant, source: `package ${id}`, component: spec.component, partition: spec.partition });
    await writePackage(this.cp.store, record, 0);
    return { package: viewOf(record), token };
  }

  async list(filter: { tenant?: string } = {}): Promise<PackageView[]> {
    const entries = await this.cp.store.listEntries("packages");
    const views = entries.map((e) => viewOf(validateOrThrow(validatePackage, e.value, "corrupt_store", `onboarding package ${e.key} in ${this.cp.store.location}`)));
    return views.filter((v) => filter.tenant === undefined || v.tenant === filter.tenant).sort((a, b) => a.created_at.localeCompare(b.created_at));
  }

  async show(id: string): Promise<PackageView> {
    if (!UUID.test(id)) throw downloadError(400, "malformed_request", `"${id.slice(0, 64)}" is not a package id (a UUID)`);
    const found = await readPackage(this.cp.store, id);
    if (!found) throw downloadError(404, "package_not_found", `no onboarding package ${id}`);
    return viewOf(found.record);
  }

  /** No download from now on, and its certificate revoked (live: sessions cut, new ones refused), whether or not it was delivered. */
  async revoke(id: string, reason?: string): Promise<PackageView & { certificate_revocation: string }> {
    const current = await this.show(id);
    const cert = await revokeCertificate(this.cp, this.tenants, { scope: { tenant: current.tenant }, serial: current.certificate.serial_number, reason: reason ?? `onboarding package ${id} revoked` });
    for (;;) {
      const found = await readPackage(this.cp.store, id);
      if (!found) throw downloadError(404, "package_not_found", `no onboarding package ${id}`);
      if (found.record.status === "revoked") return { ...viewOf(found.record), certificate_revocation: cert.status };
      const { bundle: _b, ...rest } = found.record;
      const revoked: PackageRecord = { ...rest, status: "revoked", revoked_at: new Date().toISOString(), ...(reason ? { revoke_reason: reason } : {}) };
      try {
        await writePackage(this.cp.store, revoked, found.revision);
        return { ...viewOf(revoked), certificate_revocation: cert.status };
      } catch (err) {
        if ((err as { code?: string }).code !== "entry_conflict") throw err;
      }
    }
  }

  async download(id: string, token: string | undefined): Promise<{ package: PackageView; filename: string; bundle: Buffer }> {
    return downloadPackage(this.cp.store, id, token);
  }

  /** TENANT_GATEWAY_PUBLIC_URL, else the first name of the gateway's certificate that is not a loopback one, on 4222. */
  private async defaultGatewayUrl(): Promise<string> {
    const env = process.env[PUBLIC_URL_ENV];
    if (env) return env;
    const cert = await readCertificateFile(this.cp.layout.gatewayCert, "gateway certificate");
    const host = subjectAltNames(cert).find((n) => !["localhost", "127.0.0.1", "::1"].includes(n)) ?? "localhost";
    return `tls://${host.includes(":") ? `[${host}]` : host}:${GATEWAY_PORT}`;
  }
}

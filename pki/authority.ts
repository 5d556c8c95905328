/**
 * The certificate authority as files under the data dir: create the platform PKI, tenant CAs,
 * edge and platform identity certificates, and load them back. Each operation writes its files
 * atomically, private keys 0600, and a second run of a create reports `exists` and changes nothing.
 * Re-issuing an identity over existing files says which certificate it replaced (that one stays
 * valid until it expires or is revoked); the gateway's server certificate can be re-issued (new
 * hostnames, renewal) without touching any CA.
 */
import type { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { CodedError } from "../common/coded-error.ts";
import { fileExists, readTextFile, writeFileAtomic, writeSecretFile } from "../common/files.ts";
import {
  createPlatformCa,
  createRootCa,
  createTenantCa,
  issueEdgeCertificate,
  issueGatewayServerCertificate,
  issuePlatformIdentity,
  parseCertificateBundle,
  summarizeCertificate,
  type CertificateSummary,
  type EdgeCertificateSpec,
  type KeyedCertificate,
} from "./certificates.ts";
import { CaIndex, type CaEntry, type TrustStore } from "./identity.ts";
import type { DataLayout, LeafFiles } from "./layout.ts";
import { assertComponentId, assertPlatformName, assertTenantSlug, edgeCommonName, platformCommonName } from "./names.ts";

export type CreateStatus = "created" | "exists";

/** Reads one PEM certificate, with errors that say which file and what is wrong with it. */
export async function readCertificateFile(file: string, what = "certificate"): Promise<X509Certificate> {
  const text = await readTextFile(file, what);
  let certs: X509Certificate[];
  try {
    certs = parseCertificateBundle(text);
  } catch (err) {
    throw new CodedError("invalid_pem", `${what} ${file} holds a PEM block that is not a valid X.509 certificate`, { cause: err });
  }
  if (certs.length === 0) throw new CodedError("invalid_pem", `${what} ${file} is not a PEM certificate (no "BEGIN CERTIFICATE" block)`);
  return certs[0]!;
}

export async function readCertificateBundleFile(file: string, what = "certificate chain"): Promise<X509Certificate[]> {
  const text = await readTextFile(file, what);
  try {
    const certs = parseCertificateBundle(text);
    if (certs.length === 0) throw new CodedError("invalid_pem", `${what} ${file} holds no PEM certificate`);
    return certs;
  } catch (err) {
    if (err instanceof CodedError) throw err;
    throw new CodedError("invalid_pem", `${what} ${file} holds a PEM block that is not a valid X.509 certificate`, { cause: err });
  }
}

async function readKeyed(certFile: string, keyFile: string, what: string): Promise<KeyedCertificate> {
  const cert = await readCertificateFile(certFile, `${what} certificate`);
  const keyPem = await readTextFile(keyFile, `${what} private key`);
  if (!keyPem.includes("PRIVATE KEY")) throw new CodedError("invalid_pem", `${what} private key ${keyFile} is not a PEM private key`);
  return { cert, certPem: cert.toString(), keyPem };
}

async function requirePkiInitialised(layout: DataLayout): Promise<void> {
  if (!(await fileExists(layout.rootCert))) {
    throw new CodedError("pki_not_initialised", `no platform PKI in ${layout.dir} (missing ${layout.rootCert}); run "tenant-gateway pki init --data-dir ${layout.dir}" first`);
  }
}

export async function loadRoot(layout: DataLayout): Promise<KeyedCertificate> {
  await requirePkiInitialised(layout);
  return readKeyed(layout.rootCert, layout.rootKey, "root CA");
}

export async function loadPlatformCa(layout: DataLayout): Promise<KeyedCertificate> {
  await requirePkiInitialised(layout);
  return readKeyed(layout.platformCaCert, layout.platformCaKey, "platform CA");
}

async function writeLeaf(files: LeafFiles, leaf: KeyedCertificate, chain: string[]): Promise<void> {
  await writeSecretFile(files.key, leaf.keyPem);
  await writeFileAtomic(files.chain, [leaf.certPem, ...chain].map((p) => p.trim()).join("\n") + "\n");
  await writeFileAtomic(files.cert, leaf.certPem);
}

export interface PkiInitResult {
  status: CreateStatus | "reissued";
  root: CertificateSummary & { status: CreateStatus };
  platform_ca: CertificateSummary & { status: CreateStatus };
  gateway: CertificateSummary & { status: CreateStatus | "reissued"; hostnames: string[] };
  files: Record<string, string>;
}

/**
 * Root CA, platform CA and the gateway server certificate. Whatever already exists is kept (each
 * item reports `exists`), unless `force`, which re-creates all three. Hostnames the existing
 * gateway certificate lacks get it re-issued from the same platform CA (`reissued`), keeping its
 * other names.
 */
export async function initPki(layout: DataLayout, opts: { hostnames?: string[]; force?: boolean } = {}): Promise<PkiInitResult> {
  const force = opts.force ?? false;
  const keep = async (file: string): Promise<boolean> => !force && (await fileExists(file));

  let root: KeyedCertificate;
  let rootStatus: CreateStatus = "exists";
  if (await keep(layout.rootCert)) {
    root = await readKeyed(layout.rootCert, layout.rootKey, "root CA");
  } else {
    root = await createRootCa();
    await writeSecretFile(layout.rootKey, root.keyPem);
    await writeFileAtomic(layout.rootCert, root.certPem);
    rootStatus = "created";
  }

  let platformCa: KeyedCertificate;
  let caStatus: CreateStatus = "exists";
  if (rootStatus === "exists" && (await keep(layout.platformCaCert))) {
    platformCa = await readKeyed(layout.platformCaCert, layout.platformCaKey, "platform CA");
  } else {
    platformCa = await createPlatformCa(root);
    await writeSecretFile(layout.platformCaKey, platformCa.keyPem);
    await writeFileAtomic(layout.platformCaCert, platformCa.certPem);
    caStatus = "created";
  }

  let gateway: X509Certificate;
  let gwStatus: CreateStatus | "reissued" = "exists";
  if (caStatus === "exists" && (await keep(layout.gatewayCert))) {
    gateway = await readCertificateFile(layout.gatewayCert, "gateway certificate");
    const names = subjectAltNames(gateway);
    if ((opts.hostnames ?? []).some((h) => !names.includes(h))) {
      await reissueGatewayCertificate(layout, { hostnames: opts.hostnames ?? [] });
      gateway = await readCertificateFile(layout.gatewayCert, "gateway certificate");
      gwStatus = "reissued";
    }
  } else {
    const issued = await issueGatewayServerCertificate(platformCa, { hostnames: opts.hostnames ?? [] });
    await writeLeaf({ cert: layout.gatewayCert, key: layout.gatewayKey, chain: layout.gatewayChain }, issued, [platformCa.certPem, root.certPem]);
    gateway = issued.cert;
    gwStatus = "created";
  }

  const status = [rootStatus, caStatus, gwStatus].includes("created") ? "created" : gwStatus === "reissued" ? "reissued" : "exists";
  return {
    status,
    root: { status: rootStatus, ...summarizeCertificate(root.cert) },
    platform_ca: { status: caStatus, ...summarizeCertificate(platformCa.cert) },
    gateway: { status: gwStatus, hostnames: subjectAltNames(gateway), ...summarizeCertificate(gateway) },
    files: {
      root_cert: layout.rootCert,
      root_key: layout.rootKey,
      platform_ca_cert: layout.platformCaCert,
      platform_ca_key: layout.platformCaKey,
      gateway_cert: layout.gatewayCert,
      gateway_key: layout.gatewayKey,
      gateway_chain: layout.gatewayChain,
    },
  };
}

export function subjectAltNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "").split(", ").filter(Boolean).map((s) => s.replace(/^(DNS|IP Address|URI):/, ""));
}

export interface GatewayCertificateResult extends CertificateSummary {
  status: "reissued";
  hostnames: string[];
  replaced?: ReplacedCertificate;
  files: { cert: string; key: string; chain: string };
}

/**
 * A new key and server certificate for the gateway from the current platform CA: its names are the
 * current certificate's plus `hostnames` (or exactly `hostnames`, with `replaceHostnames`). No CA
 * changes; a running gateway serves it after a restart.
 */
export async function reissueGatewayCertificate(layout: DataLayout, opts: { hostnames?: string[]; replaceHostnames?: boolean; days?: number } = {}): Promise<GatewayCertificateResult> {
  const platformCa = await loadPlatformCa(layout);
  const root = await loadRoot(layout);
  const current = (await fileExists(layout.gatewayCert)) ? await readCertificateFile(layout.gatewayCert, "gateway certificate") : undefined;
  const kept = opts.replaceHostnames || !current ? [] : subjectAltNames(current);
  const issued = await issueGatewayServerCertificate(platformCa, { hostnames: [...kept, ...(opts.hostnames ?? [])], ...(opts.days === undefined ? {} : { days: opts.days }) });
  const files = { cert: layout.gatewayCert, key: layout.gatewayKey, chain: layout.gatewayChain };
  await writeLeaf(files, issued, [platformCa.certPem, root.certPem]);
  return { status: "reissued", hostnames: subjectAltNames(issued.cert), ...summarizeCertificate(issued.cert), ...(current ? { replaced: replacedBy(current) } : {}), files };
}

/** Replaces the platform CA's files (a rotation: see accounts/ca-rotation.ts); the certificate last, as it marks the CA complete. */
export async function writePlatformCa(layout: DataLayout, ca: KeyedCertificate): Promise<void> {
  await writeSecretFile(layout.platformCaKey, ca.keyPem);
  await writeFileAtomic(layout.platformCaCert, ca.certPem);
}

/** The certificate an issue over existing files replaced: it stays valid until it expires or is revoked. */
export interface ReplacedCertificate {
  serial_number: string;
  fingerprint_sha256: string;
  not_after: string;
}

function replacedBy(cert: X509Certificate): ReplacedCertificate {
  const s = summarizeCertificate(cert);
  return { serial_number: s.serial_number, fingerprint_sha256: s.fingerprint_sha256, not_after: s.not_after };
}

async function currentLeaf(files: LeafFiles): Promise<ReplacedCertificate | undefined> {
  if (!(await fileExists(files.cert))) return undefined;
  return replacedBy(await readCertificateFile(files.cert, "certificate"));
}

export interface TenantCaResult extends CertificateSummary {
  status: CreateStatus;
  tenant_slug: string;
  files: { cert: string; key: string; chain: string };
}

export async function loadTenantCa(layout: DataLayout, slug: string): Promise<KeyedCertificate> {
  assertTenantSlug(slug);
  const files = layout.tenantCa(slug);
  if (!(await fileExists(files.cert))) {
    throw new CodedError("unknown_tenant", `tenant "${slug}" has no CA in ${layout.dir} (missing ${files.cert}); create it with "tenant-gateway pki tenant-ca ${slug}" or "tenant-gateway tenant create ${slug}"`);
  }
  return readKeyed(files.cert, files.key, `tenant "${slug}" CA`);
}

export async function ensureTenantCa(layout: DataLayout, slug: string, opts: { validityYears?: number; force?: boolean } = {}): Promise<TenantCaResult> {
  assertTenantSlug(slug);
  const files = layout.tenantCa(slug);
  if (opts.force && (await fileExists(layout.tenantRecord(slug).record))) {
    throw new CodedError(
      "tenant_registered",
      `tenant "${slug}" is registered: replacing its CA here would cut every certificate it issued at once; rotate it with an overlap instead: "tenant-gateway pki rotate-ca ${slug} --overlap 30d"`,
    );
  }
  const describe = (cert: X509Certificate, status: CreateStatus): TenantCaResult => ({
    status,
    tenant_slug: slug,
    ...summarizeCertificate(cert),
    files: { cert: files.cert, key: files.key, chain: files.chain },
  });
  if (!opts.force && (await fileExists(files.cert))) {
    return describe((await loadTenantCa(layout, slug)).cert, "exists");
  }
  const root = await loadRoot(layout);
  const ca = await createTenantCa(root, slug, opts.validityYears === undefined ? {} : { validityYears: opts.validityYears });
  // The certificate is written last: its presence is what marks the CA as complete.
  await writeSecretFile(files.key, ca.keyPem);
  await writeFileAtomic(files.chain, `${ca.certPem.trim()}\n${root.certPem.trim()}\n`);
  await writeFileAtomic(files.cert, ca.certPem);
  return describe(ca.cert, "created");
}

export interface LeafResult extends CertificateSummary {
  status: "created";
  common_name: string;
  files: LeafFiles;
  /** The certificate these files held before: still valid until it expires or is revoked. */
  replaced?: ReplacedCertificate;
}

/** `tenantCa`: the CA from the tenant store (the KV store keeps no CA files); default: the data dir's files. */
export async function issueComponentFiles(layout: DataLayout, spec: EdgeCertificateSpec, tenantCa?: KeyedCertificate): Promise<LeafResult & { tenant_slug: string; component: string; partition: string }> {
  assertTenantSlug(spec.tenant);
  assertComponentId(spec.component, "component");
  assertComponentId(spec.partition, "partition");
  const cn = edgeCommonName(spec.tenant, spec.component, spec.partition);
  const ca = tenantCa ?? (await loadTenantCa(layout, spec.tenant));
  const root = await loadRoot(layout);
  const leaf = await issueEdgeCertificate(ca, spec);
  const files = layout.component(spec.tenant, spec.component, spec.partition);
  const replaced = await currentLeaf(files);
  await writeLeaf(files, leaf, [ca.certPem, root.certPem]);
  return { status: "created", common_name: cn, tenant_slug: spec.tenant, component: spec.component, partition: spec.partition, ...summarizeCertificate(leaf.cert), files, ...(replaced ? { replaced } : {}) };
}

export async function issuePlatformIdentityFiles(layout: DataLayout, name: string, opts: { days?: number } = {}): Promise<LeafResult & { name: string }> {
  assertPlatformName(name);
  const cn = platformCommonName(name);
  const platformCa = await loadPlatformCa(layout);
  const root = await loadRoot(layout);
  const leaf = await issuePlatformIdentity(platformCa, name, opts);
  const files = layout.platformIdentity(name);
  const replaced = await currentLeaf(files);
  await writeLeaf(files, leaf, [platformCa.certPem, root.certPem]);
  return { status: "created", common_name: cn, name, ...summarizeCertificate(leaf.cert), files, ...(replaced ? { replaced } : {}) };
}

/**
 * An issued certificate still in the data dir's files (edge components of a tenant, or platform
 * identities), by serial or fingerprint: what `pki revoke` falls back to for certificates issued
 * before the registry kept an inventory.
 */
export async function findCertificateFile(layout: DataLayout, scope: { tenant: string } | { platform: true }, match: { serial?: string; fingerprint?: string }): Promise<X509Certificate | undefined> {
  const dir = "tenant" in scope ? path.join(layout.tenantDir(scope.tenant), "components") : path.join(layout.platformDir, "identities");
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return undefined;
  }
  const serial = match.serial?.replaceAll(":", "").toLowerCase();
  const fingerprint = match.fingerprint?.replaceAll(":", "").toLowerCase();
  for (const name of names.filter((n) => n.endsWith(".pem") && !n.endsWith("-key.pem") && !n.endsWith("-chain.pem"))) {
    const cert = await readCertificateFile(path.join(dir, name)).catch(() => undefined);
    if (!cert) continue;
    const s = summarizeCertificate(cert);
    if (s.serial_number === serial || s.fingerprint_sha256 === fingerprint) return cert;
  }
  return undefined;
}

/** Slugs that have a tenant directory with a CA certificate. */
export async function listTenantCaSlugs(layout: DataLayout): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fs.readdir(layout.tenantsDir);
  } catch {
    return [];
  }
  const slugs: string[] = [];
  for (const entry of entries.sort()) {
    if (await fileExists(layout.tenantCa(entry).cert)) slugs.push(entry);
  }
  return slugs;
}

/** The trust store of the files: root, platform CA, and every tenant CA under tenants/. */
/** The trust store of the files: root, platform CA, and every tenant CA under tenants/ (plus `tenantCas` from a store). */
export async function trustStoreFromDataDir(layout: DataLayout, tenantCas: Array<{ slug: string; cert: X509Certificate }> = []): Promise<TrustStore> {
  const root = await loadRoot(layout);
  const platform = await readCertificateFile(layout.platformCaCert, "platform CA certificate");
  const cas: CaEntry[] = [{ kind: "platform", cert: platform }];
  const fromStore = new Set(tenantCas.map((c) => c.slug));
  for (const slug of await listTenantCaSlugs(layout)) {
    if (!fromStore.has(slug)) cas.push({ kind: "tenant", slug, cert: await readCertificateFile(layout.tenantCa(slug).cert, `tenant "${slug}" CA certificate`) });
  }
  for (const { slug, cert } of tenantCas) cas.push({ kind: "tenant", slug, cert });
  return new CaIndex(root.cert, cas);
}

/** The Kubernetes Secret manifest (YAML) for a tenant CA, as the brief names and labels it. */
export async function tenantCaSecretManifest(layout: DataLayout, slug: string, namespace?: string, tenantCa?: KeyedCertificate): Promise<string> {
  const ca = tenantCa ?? (await loadTenantCa(layout, slug));
  const root = await loadRoot(layout);
  const b64 = (s: string): string => Buffer.from(s).toString("base64");
  const lines = [
    "apiVersion: v1",
    "kind: Secret",
    "metadata:",
    `  name: tenant-${slug}-ca`,
    ...(namespace ? [`  namespace: ${namespace}`] : []),
    "  labels:",
    "    app.kubernetes.io/component: tenant-ca",
    `    serviceradar.io/tenant: ${slug}`,
    "type: kubernetes.io/tls",
    "data:",
    `  tls.crt: ${b64(ca.certPem)}`,
    `  tls.key: ${b64(ca.keyPem)}`,
    `  ca.crt: ${b64(root.certPem)}`,
  ];
  return lines.join("\n") + "\n";
}

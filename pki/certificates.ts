/**
 * Certificate issuance in exactly the formats of the architecture brief (section 2): the root CA,
 * the platform CA, tenant intermediate CAs, edge component certificates, platform identity
 * certificates and the gateway's own server certificate.
 *
 * node-forge builds the certificate structures; RSA key generation and the RSA signature over the
 * to-be-signed bytes use Node's native crypto (forge's pure-JS RSA takes ~25 ms per 2048-bit
 * signature and several times that with a 4096-bit CA key).
 */
import { createHash, createPrivateKey, generateKeyPair, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { promisify } from "node:util";
import forge from "node-forge";
import { CodedError } from "../common/coded-error.ts";
import { Remembered } from "../common/remembered.ts";
import { CN_SUFFIX, edgeCommonName, platformCommonName, tenantCaCommonName } from "./names.ts";

const generateKeyPairAsync = promisify(generateKeyPair);
// Present in node-forge, missing from its type definitions.
const forgeTbs = forge.pki as unknown as { getTBSCertificate(cert: forge.pki.Certificate): forge.asn1.Asn1 };

export const ROOT_CA_CN = "ServiceRadar Root CA";
export const PLATFORM_CA_CN = "ServiceRadar Platform CA";
export const GATEWAY_SERVER_CN = `tenant-gateway.${CN_SUFFIX}`;
export const ORGANIZATION = "ServiceRadar";
export const CA_KEY_BITS = 4096;
export const LEAF_KEY_BITS = 2048;
/** RSA sizes a CA key may have (`TENANT_GATEWAY_CA_KEY_BITS`); 4096 unless set. */
export const CA_KEY_SIZES = [2048, 3072, 4096] as const;

/**
 * The CA key size: 4096 bits (the architecture brief), or `TENANT_GATEWAY_CA_KEY_BITS` for
 * throw-away data dirs (development, tests), where a 4096-bit key's ~2 s of CPU per CA dominates.
 */
export function caKeyBits(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.TENANT_GATEWAY_CA_KEY_BITS;
  if (raw === undefined || raw === "") return CA_KEY_BITS;
  const bits = Number(raw);
  if (!(CA_KEY_SIZES as readonly number[]).includes(bits)) throw new CodedError("invalid_config", `environment TENANT_GATEWAY_CA_KEY_BITS: must be one of ${CA_KEY_SIZES.join(", ")}, got ${JSON.stringify(raw)}`);
  return bits;
}
export const SPIFFE_TRUST_DOMAIN = "serviceradar.local";

const OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const BACKDATE_MS = 60_000;
const DAY_MS = 86_400_000;

/** A certificate together with its private key, both PEM, plus the parsed certificate. */
export interface KeyedCertificate {
  certPem: string;
  keyPem: string;
  cert: X509Certificate;
}

/** What `--json` output and `tenant show` say about a certificate. */
export interface CertificateSummary {
  subject_cn: string;
  serial_number: string;
  not_before: string;
  not_after: string;
  spki_sha256: string;
  fingerprint_sha256: string;
}

type Attribute = { shortName: string; value: string };

interface IssueSpec {
  subject: Attribute[];
  publicKeyPem: string;
  notAfter: Date;
  /** Default: a minute ago. */
  notBefore?: Date;
  extensions: object[];
  /** Absent for the self-signed root. */
  issuer?: { cert: X509Certificate; keyPem: string };
  selfSignKeyPem?: string;
}

async function newRsaKey(bits: number): Promise<{ publicKeyPem: string; keyPem: string }> {
  const { publicKey, privateKey } = await generateKeyPairAsync("rsa", {
    modulusLength: bits,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  return { publicKeyPem: publicKey, keyPem: privateKey };
}

/** A random positive 128-bit serial number, as hex. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive in DER and never a leading zero byte
  return bytes.toString("hex");
}

function signCertificate(spec: IssueSpec): Omit<KeyedCertificate, "keyPem"> {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(spec.publicKeyPem);
  cert.serialNumber = randomSerial();
  const now = Date.now();
  cert.validity.notBefore = spec.notBefore ?? new Date(now - BACKDATE_MS);
  cert.validity.notAfter = spec.notAfter;
  cert.setSubject(spec.subject);
  const issuerCert = spec.issuer ? forge.pki.certificateFromPem(spec.issuer.cert.toString()) : undefined;
  cert.setIssuer(issuerCert ? issuerCert.subject.attributes : spec.subject);
  // forge derives the subject key identifier from the certificate's own key (RFC 5280 method 1);
  // the authority key identifier must be the issuer's, derived the same way.
  cert.setExtensions([
    ...spec.extensions,
    { name: "subjectKeyIdentifier" },
    { name: "authorityKeyIdentifier", keyIdentifier: issuerCert ? issuerCert.generateSubjectKeyIdentifier().getBytes() : true },
  ]);
  const signingKey: KeyObject = createPrivateKey(spec.issuer ? spec.issuer.keyPem : spec.selfSignKeyPem!);
  const oid = forge.pki.oids.sha256WithRSAEncryption!;
  cert.siginfo.algorithmOid = oid;
  cert.signatureOid = oid;
  const tbs = forge.asn1.toDer(forgeTbs.getTBSCertificate(cert)).getBytes();
  cert.signature = sign("sha256", Buffer.from(tbs, "binary"), signingKey).toString("binary");
  const certPem = forge.pki.certificateToPem(cert).replaceAll("\r\n", "\n");
  return { certPem, cert: new X509Certificate(certPem) };
}

function addYears(years: number): Date {
  const d = new Date();
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d;
}

function addDays(days: number): Date {
  return new Date(Date.now() + days * DAY_MS);
}

function caExtensions(pathLen: number | undefined): object[] {
  const basic: Record<string, unknown> = { name: "basicConstraints", cA: true, critical: true };
  if (pathLen !== undefined) basic.pathLenConstraint = pathLen;
  return [basic, { name: "keyUsage", critical: true, keyCertSign: true, cRLSign: true }];
}

function leafExtensions(altNames: object[], extKeyUsage: { serverAuth?: boolean; clientAuth?: boolean }): object[] {
  return [
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true },
    { name: "extKeyUsage", ...extKeyUsage },
    { name: "subjectAltName", altNames },
  ];
}

async function issue(spec: Omit<IssueSpec, "publicKeyPem">, bits: number, selfSigned = false): Promise<KeyedCertificate> {
  const key = await newRsaKey(bits);
  const signed = signCertificate({ ...spec, publicKeyPem: key.publicKeyPem, ...(selfSigned ? { selfSignKeyPem: key.keyPem } : {}) });
  return { ...signed, keyPem: key.keyPem };
}

export function createRootCa(opts: { validityYears?: number } = {}): Promise<KeyedCertificate> {
  return issue(
    {
      subject: [{ shortName: "CN", value: ROOT_CA_CN }, { shortName: "O", value: ORGANIZATION }],
      notAfter: addYears(opts.validityYears ?? 10),
      extensions: caExtensions(undefined),
    },
    caKeyBits(),
    true,
  );
}

export function createPlatformCa(root: KeyedCertificate, opts: { validityYears?: number } = {}): Promise<KeyedCertificate> {
  return issue(
    {
      subject: [{ shortName: "CN", value: PLATFORM_CA_CN }, { shortName: "O", value: ORGANIZATION }, { shortName: "OU", value: "Platform" }],
      notAfter: addYears(opts.validityYears ?? 10),
      extensions: caExtensions(0),
      issuer: root,
    },
    caKeyBits(),
  );
}

export function createTenantCa(root: KeyedCertificate, slug: string, opts: { validityYears?: number } = {}): Promise<KeyedCertificate> {
  return issue(
    {
      subject: [{ shortName: "CN", value: tenantCaCommonName(slug) }, { shortName: "O", value: ORGANIZATION }, { shortName: "OU", value: `Tenant-${slug}` }],
      notAfter: addYears(opts.validityYears ?? 10),
      extensions: caExtensions(0),
      issuer: root,
    },
    caKeyBits(),
  );
}

export interface EdgeCertificateSpec {
  tenant: string;
  component: string;
  partition: string;
  days?: number;
  /** Extra DNS SANs beyond the two of the brief. */
  dns?: string[];
  /** An explicit validity window instead of "a minute ago + days" (renewals, pre-issued certificates). */
  validity?: { notBefore: Date; notAfter: Date };
}

export function issueEdgeCertificate(tenantCa: KeyedCertificate, spec: EdgeCertificateSpec): Promise<KeyedCertificate> {
  const cn = edgeCommonName(spec.tenant, spec.component, spec.partition);
  const dns = [cn, `${spec.component}.${CN_SUFFIX}`, ...(spec.dns ?? [])];
  const altNames = [
    ...[...new Set(dns)].map((value) => ({ type: 2, value })),
    { type: 6, value: `spiffe://${SPIFFE_TRUST_DOMAIN}/${spec.component}/${spec.tenant}/${spec.partition}` },
  ];
  return issue(
    {
      subject: [{ shortName: "CN", value: cn }, { shortName: "O", value: ORGANIZATION }, { shortName: "OU", value: `Tenant-${spec.tenant}` }],
      notAfter: spec.validity?.notAfter ?? addDays(spec.days ?? 365),
      ...(spec.validity ? { notBefore: spec.validity.notBefore } : {}),
      extensions: leafExtensions(altNames, { serverAuth: true, clientAuth: true }),
      issuer: tenantCa,
    },
    LEAF_KEY_BITS,
  );
}

export function issuePlatformIdentity(platformCa: KeyedCertificate, name: string, opts: { days?: number } = {}): Promise<KeyedCertificate> {
  const cn = platformCommonName(name);
  return issue(
    {
      subject: [{ shortName: "CN", value: cn }, { shortName: "O", value: ORGANIZATION }, { shortName: "OU", value: "Platform" }],
      notAfter: addDays(opts.days ?? 365),
      extensions: leafExtensions([{ type: 2, value: cn }, { type: 6, value: `spiffe://${SPIFFE_TRUST_DOMAIN}/platform/${name}` }], { clientAuth: true }),
      issuer: platformCa,
    },
    LEAF_KEY_BITS,
  );
}

/** The gateway's TLS server certificate: SANs for localhost, 127.0.0.1 and every extra hostname. */
export function issueGatewayServerCertificate(platformCa: KeyedCertificate, opts: { hostnames?: string[]; days?: number } = {}): Promise<KeyedCertificate> {
  const names = [...new Set(["localhost", "127.0.0.1", ...(opts.hostnames ?? [])])];
  const altNames = names.map((n) => (isIpAddress(n) ? { type: 7, ip: n } : { type: 2, value: n }));
  return issue(
    {
      subject: [{ shortName: "CN", value: GATEWAY_SERVER_CN }, { shortName: "O", value: ORGANIZATION }, { shortName: "OU", value: "Platform" }],
      notAfter: addDays(opts.days ?? 825),
      extensions: leafExtensions(altNames, { serverAuth: true }),
      issuer: platformCa,
    },
    LEAF_KEY_BITS,
  );
}

function isIpAddress(value: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(value) || value.includes(":");
}

/**
 * What never changes about a certificate's bytes — its key's SPKI hash, whether an issuer's key
 * signed it — remembered by SHA-256 fingerprint. A component presents the same chain on every
 * reconnect, and each of these costs tens of microseconds (exporting a key, an RSA verification).
 */
const SPKI_BY_FINGERPRINT = new Remembered<string>(4096);
const SIGNED_BY = new Remembered<true>(16_384);

export function spkiSha256(cert: X509Certificate): string {
  const key = cert.fingerprint256;
  let spki = SPKI_BY_FINGERPRINT.get(key);
  if (spki === undefined) {
    spki = createHash("sha256").update(cert.publicKey.export({ type: "spki", format: "der" })).digest("hex");
    SPKI_BY_FINGERPRINT.set(key, spki);
  }
  return spki;
}

/** Whether `issuer`'s key signed `cert`. Only a signature that verified is remembered. */
export function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  const key = `${cert.fingerprint256}>${issuer.fingerprint256}`;
  if (SIGNED_BY.get(key)) return true;
  const verified = cert.verify(issuer.publicKey);
  if (verified) SIGNED_BY.set(key, true);
  return verified;
}

/** The CN of a subject or issuer string as Node prints it (`CN=...\nO=...`). */
export function commonNameOf(dn: string): string | undefined {
  const cns = dn.split("\n").filter((line) => line.startsWith("CN="));
  return cns.length === 1 ? cns[0]!.slice(3) : undefined;
}

export function summarizeCertificate(cert: X509Certificate): CertificateSummary {
  return {
    subject_cn: commonNameOf(cert.subject) ?? "",
    serial_number: cert.serialNumber.toLowerCase(),
    not_before: new Date(cert.validFrom).toISOString(),
    not_after: new Date(cert.validTo).toISOString(),
    spki_sha256: spkiSha256(cert),
    fingerprint_sha256: cert.fingerprint256.replaceAll(":", "").toLowerCase(),
  };
}

export function isClientCertificate(cert: X509Certificate): boolean {
  const eku = cert.keyUsage;
  return !cert.ca && (eku === undefined || eku.includes(OID_CLIENT_AUTH));
}

export function isServerCertificate(cert: X509Certificate): boolean {
  const eku = cert.keyUsage;
  return !cert.ca && (eku === undefined || eku.includes(OID_SERVER_AUTH));
}

/** Splits a PEM bundle into its certificates; a non-certificate PEM or no PEM at all yields none. */
export function parseCertificateBundle(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

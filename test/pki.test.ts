import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { promises as fs, statSync } from "node:fs";
import path from "node:path";
import test from "ava";
import { ensureTenantCa, initPki, issueComponentFiles, issuePlatformIdentityFiles, loadPlatformCa, loadTenantCa, trustStoreFromDataDir } from "../pki/authority.ts";
import { caKeyBits, createRootCa, createTenantCa, issueEdgeCertificate, issuePlatformIdentity } from "../pki/certificates.ts";
import { identify, type IdentityErrorCode } from "../pki/identity.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const dataDir = tempDir();
const layout = new DataLayout(dataDir);

const ready = (async () => {
  await initPki(layout, { hostnames: ["gw.example.test"] });
  await ensureTenantCa(layout, "acme-corp");
  await ensureTenantCa(layout, "globex");
  const acmeLeaf = await issueComponentFiles(layout, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
  const admin = await issuePlatformIdentityFiles(layout, "admin");
  return { acmeLeaf, admin, trust: await trustStoreFromDataDir(layout) };
})();

function openssl(args: string[]): string {
  return execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function codeOf(fn: () => unknown): IdentityErrorCode | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code: IdentityErrorCode }).code;
  }
}

test("an edge certificate verifies with openssl against the root and the tenant CA", async (t) => {
  const { acmeLeaf } = await ready;
  const out = openssl(["verify", "-CAfile", layout.rootCert, "-untrusted", layout.tenantCa("acme-corp").cert, acmeLeaf.files.cert]);
  t.regex(out, /: OK/);
  // and not against another tenant's CA alone
  t.throws(() => openssl(["verify", "-CAfile", layout.rootCert, "-untrusted", layout.tenantCa("globex").cert, acmeLeaf.files.cert]));
});

test("the edge certificate carries the extensions of the brief", async (t) => {
  const { acmeLeaf } = await ready;
  const text = openssl(["x509", "-in", acmeLeaf.files.cert, "-noout", "-text"]);
  t.regex(text, /Subject: CN = agent-001\.partition-1\.acme-corp\.serviceradar/);
  t.regex(text, /CA:FALSE/);
  t.regex(text, /Digital Signature, Key Encipherment/);
  t.regex(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
  t.regex(text, /DNS:agent-001\.partition-1\.acme-corp\.serviceradar, DNS:agent-001\.serviceradar, URI:spiffe:\/\/serviceradar\.local\/agent-001\/acme-corp\/partition-1/);
  t.regex(text, /Public-Key: \(2048 bit\)/);
  t.regex(text, /sha256WithRSAEncryption/);
  const cert = new X509Certificate(await fs.readFile(acmeLeaf.files.cert));
  const notBefore = new Date(cert.validFrom).getTime();
  t.true(notBefore <= Date.now() - 30_000, "notBefore is backdated about a minute");
  t.is(cert.serialNumber.length, 32, "128-bit serial");
  const days = (new Date(cert.validTo).getTime() - notBefore) / 86_400_000;
  t.true(days > 364.9 && days < 365.1, `365 days by default, got ${days}`);
});

test("the tenant CA is a pathlen-0 intermediate with key identifiers", async (t) => {
  await ready;
  const text = openssl(["x509", "-in", layout.tenantCa("acme-corp").cert, "-noout", "-text"]);
  t.regex(text, /Subject: CN = tenant-acme-corp\.ca\.serviceradar, O = ServiceRadar, OU = Tenant-acme-corp/);
  t.regex(text, /Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
  t.regex(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
  t.regex(text, /Subject Key Identifier/);
  t.regex(text, /Authority Key Identifier/);
  t.regex(text, new RegExp(`Public-Key: \\(${caKeyBits()} bit\\)`));
  t.regex(openssl(["verify", "-CAfile", layout.rootCert, layout.tenantCa("acme-corp").cert]), /: OK/);
  const root = openssl(["x509", "-in", layout.rootCert, "-noout", "-subject"]);
  t.regex(root, /CN = ServiceRadar Root CA/);
});

test("the gateway certificate names localhost, 127.0.0.1 and extra hostnames", async (t) => {
  await ready;
  const san = openssl(["x509", "-in", layout.gatewayCert, "-noout", "-ext", "subjectAltName"]);
  t.regex(san, /DNS:localhost/);
  t.regex(san, /IP Address:127\.0\.0\.1/);
  t.regex(san, /DNS:gw\.example\.test/);
  t.regex(openssl(["verify", "-CAfile", layout.rootCert, "-untrusted", layout.platformCaCert, layout.gatewayCert]), /: OK/);
});

test("private keys are written 0600", async (t) => {
  const { acmeLeaf, admin } = await ready;
  for (const file of [layout.rootKey, layout.platformCaKey, layout.gatewayKey, layout.tenantCa("acme-corp").key, acmeLeaf.files.key, admin.files.key]) {
    t.is(statSync(file).mode & 0o777, 0o600, file);
  }
});

test("identify accepts a tenant's own certificate, with or without the chain", async (t) => {
  const { acmeLeaf, trust } = await ready;
  const [leaf, ...chain] = (await fs.readFile(acmeLeaf.files.chain, "utf8")).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((p) => new X509Certificate(p));
  for (const sent of [chain, []]) {
    const id = identify(leaf, sent, trust);
    t.like(id, { kind: "edge", tenant: "acme-corp", component: "agent-001", partition: "partition-1", cn: "agent-001.partition-1.acme-corp.serviceradar" });
  }
});

test("identify accepts the platform admin certificate", async (t) => {
  const { admin, trust } = await ready;
  const id = identify(new X509Certificate(await fs.readFile(admin.files.cert)), [], trust);
  t.like(id, { kind: "platform", name: "admin", cn: "admin.platform.serviceradar" });
});

test("a globex certificate signed by acme-corp's CA is refused: tenant_slug_mismatch", async (t) => {
  const { trust } = await ready;
  const acmeCa = await loadTenantCa(layout, "acme-corp");
  const forged = await issueEdgeCertificate(acmeCa, { tenant: "globex", component: "agent-001", partition: "partition-1" });
  t.is(codeOf(() => identify(forged.cert, [acmeCa.cert], trust)), "tenant_slug_mismatch");
  t.is(codeOf(() => identify(forged.cert, [], trust)), "tenant_slug_mismatch");
});

test("admin.platform.serviceradar signed by a tenant CA is refused: platform_cn_from_tenant_ca", async (t) => {
  const { trust } = await ready;
  const acmeCa = await loadTenantCa(layout, "acme-corp");
  const forged = await issuePlatformIdentity(acmeCa, "admin");
  t.is(codeOf(() => identify(forged.cert, [acmeCa.cert], trust)), "platform_cn_from_tenant_ca");
});

test("a certificate from another root is refused: unknown_issuer, bad_signature or missing_chain", async (t) => {
  const { trust } = await ready;
  const otherRoot = await createRootCa();
  const otherCa = await createTenantCa(otherRoot, "acme-corp");
  const leaf = await issueEdgeCertificate(otherCa, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
  // Same CA name as the real acme-corp CA, different key: the signature check catches it.
  t.is(codeOf(() => identify(leaf.cert, [otherCa.cert, otherRoot.cert], trust)), "unknown_issuer");
  t.is(codeOf(() => identify(leaf.cert, [], trust)), "bad_signature");
  // A CA name we have never seen, leaf sent alone: we cannot even find the issuer.
  const strangerCa = await createTenantCa(otherRoot, "initrode");
  const stranger = await issueEdgeCertificate(strangerCa, { tenant: "initrode", component: "agent-001", partition: "partition-1" });
  t.is(codeOf(() => identify(stranger.cert, [], trust)), "missing_chain");
  t.is(codeOf(() => identify(stranger.cert, [strangerCa.cert], trust)), "unknown_issuer");
});

test("an edge certificate signed by the platform CA is refused", async (t) => {
  const { trust } = await ready;
  const platformCa = await loadPlatformCa(layout);
  const leaf = await issueEdgeCertificate(platformCa, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
  t.is(codeOf(() => identify(leaf.cert, [], trust)), "unknown_issuer");
});

test("expired and not-yet-valid certificates are refused", async (t) => {
  const { acmeLeaf, trust } = await ready;
  const leaf = new X509Certificate(await fs.readFile(acmeLeaf.files.cert));
  t.is(codeOf(() => identify(leaf, [], trust, new Date(Date.now() + 400 * 86_400_000))), "expired");
  t.is(codeOf(() => identify(leaf, [], trust, new Date(Date.now() - 86_400_000))), "not_yet_valid");
});

test("a CN in a bad format from a genuine tenant CA is refused: invalid_cn_format", async (t) => {
  const { trust } = await ready;
  const acmeCa = await loadTenantCa(layout, "acme-corp");
  // Our issuer refuses bad names, so openssl signs this one with the real tenant CA key.
  const bad = await signWithCn(acmeCa, "agent-001.acme-corp.serviceradar");
  t.is(codeOf(() => identify(bad, [], trust)), "invalid_cn_format");
});

test("a CA certificate presented as a client certificate is refused", async (t) => {
  const { trust } = await ready;
  const caCert = new X509Certificate(await fs.readFile(layout.tenantCa("acme-corp").cert));
  t.is(codeOf(() => identify(caCert, [], trust)), "not_a_client_certificate");
});

async function signWithCn(ca: Awaited<ReturnType<typeof loadTenantCa>>, cn: string): Promise<X509Certificate> {
  // openssl builds a leaf with an arbitrary CN, signed by the real tenant CA key.
  const dir = tempDir();
  const keyFile = path.join(dir, "ca-key.pem");
  const caFile = path.join(dir, "ca.pem");
  await fs.writeFile(keyFile, ca.keyPem, { mode: 0o600 });
  await fs.writeFile(caFile, ca.certPem);
  openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", path.join(dir, "leaf-key.pem"), "-subj", `/CN=${cn}`, "-out", path.join(dir, "leaf.csr")]);
  await fs.writeFile(path.join(dir, "ext.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  openssl(["x509", "-req", "-in", path.join(dir, "leaf.csr"), "-CA", caFile, "-CAkey", keyFile, "-CAcreateserial", "-days", "30", "-extfile", path.join(dir, "ext.cnf"), "-out", path.join(dir, "leaf.pem")]);
  return new X509Certificate(await fs.readFile(path.join(dir, "leaf.pem")));
}

// ---- the CLI ----

test("cli: pki init twice reports exists and changes nothing", async (t) => {
  await ready;
  const before = await fs.readFile(layout.rootCert, "utf8");
  const beforeGw = await fs.readFile(layout.gatewayCert, "utf8");
  const { code, json } = await runCliJson<{ status: string; root: { status: string } }>(["pki", "init", "--data-dir", dataDir]);
  t.is(code, 0);
  t.is(json.status, "exists");
  t.is(json.root.status, "exists");
  t.is(await fs.readFile(layout.rootCert, "utf8"), before);
  t.is(await fs.readFile(layout.gatewayCert, "utf8"), beforeGw);
});

test("cli: pki tenant-ca prints the fields of the brief and is idempotent", async (t) => {
  await ready;
  const first = await runCliJson<Record<string, unknown>>(["pki", "tenant-ca", "initech", "--data-dir", dataDir]);
  t.is(first.code, 0);
  t.like(first.json, { status: "created", tenant_slug: "initech", subject_cn: "tenant-initech.ca.serviceradar" });
  for (const key of ["serial_number", "not_before", "not_after", "spki_sha256", "files"]) t.truthy(first.json[key], key);
  const years = (Date.parse(first.json.not_after as string) - Date.now()) / (365.25 * 86_400_000);
  t.true(years > 9.9 && years < 10.1);
  const second = await runCliJson<Record<string, unknown>>(["pki", "tenant-ca", "initech", "--data-dir", dataDir]);
  t.like(second.json, { status: "exists", serial_number: first.json.serial_number });
});

test("cli: pki identify exits 0 for an accepted certificate and 1 with the code for a refused one", async (t) => {
  const { acmeLeaf, admin } = await ready;
  const ok = await runCliJson<{ accepted: boolean; identity: { name: string } }>(["pki", "identify", admin.files.cert, "--data-dir", dataDir]);
  t.is(ok.code, 0);
  t.true(ok.json.accepted);
  t.is(ok.json.identity.name, "admin");
  const human = await runCli(["pki", "identify", admin.files.chain, "--data-dir", dataDir]);
  t.is(human.code, 0);
  t.regex(human.stdout, /accepted: platform identity: name=admin/);

  // A tenant CA is not a tenant: this data dir has no tenant records, so the gateway would refuse it.
  const refused = await runCliJson<{ accepted: boolean; code: string; reason: string }>(["pki", "identify", acmeLeaf.files.cert, "--chain", layout.tenantCa("acme-corp").chain, "--data-dir", dataDir]);
  t.is(refused.code, 1);
  t.false(refused.json.accepted);
  t.is(refused.json.code, "unknown_tenant");
  const text = await runCli(["pki", "identify", acmeLeaf.files.chain, "--data-dir", dataDir]);
  t.is(text.code, 1);
  t.regex(text.stdout, /^refused: unknown_tenant: /);
});

test("cli: pki k8s-secret prints the tenant CA secret of the brief", async (t) => {
  await ready;
  const r = await runCli(["pki", "k8s-secret", "acme-corp", "--data-dir", dataDir]);
  t.is(r.code, 0);
  t.regex(r.stdout, /^apiVersion: v1\nkind: Secret\nmetadata:\n {2}name: tenant-acme-corp-ca\n/);
  t.regex(r.stdout, /app\.kubernetes\.io\/component: tenant-ca/);
  t.regex(r.stdout, /serviceradar\.io\/tenant: acme-corp/);
  t.regex(r.stdout, /type: kubernetes\.io\/tls/);
  const crt = /tls\.crt: (\S+)/.exec(r.stdout)![1]!;
  t.is(Buffer.from(crt, "base64").toString(), await fs.readFile(layout.tenantCa("acme-corp").cert, "utf8"));
  const caCrt = /ca\.crt: (\S+)/.exec(r.stdout)![1]!;
  t.is(Buffer.from(caCrt, "base64").toString(), await fs.readFile(layout.rootCert, "utf8"));
  t.regex(Buffer.from(/tls\.key: (\S+)/.exec(r.stdout)![1]!, "base64").toString(), /PRIVATE KEY/);
});

test("cli: pki issue-platform issues admin.platform.serviceradar with its chain", async (t) => {
  const { admin } = await ready;
  t.is(admin.common_name, "admin.platform.serviceradar");
  const chain = await fs.readFile(admin.files.chain, "utf8");
  t.is(chain.match(/BEGIN CERTIFICATE/g)!.length, 3, "leaf, platform CA, root");
});

const badInputs: Array<[string, string[], string]> = [
  ["bad slug", ["pki", "tenant-ca", "Acme_Corp"], "invalid_slug"],
  ["reserved slug", ["pki", "tenant-ca", "system"], "reserved_slug"],
  ["bad component id", ["pki", "issue", "--tenant", "acme-corp", "--component", "Agent!", "--partition", "p1"], "invalid_component_id"],
  ["unknown tenant", ["pki", "issue", "--tenant", "nobody", "--component", "a1", "--partition", "p1"], "unknown_tenant"],
  ["bad platform name", ["pki", "issue-platform", "Admin"], "invalid_platform_name"],
  ["non-PEM file", ["pki", "identify", "/etc/hostname"], "invalid_pem"],
  ["missing file", ["pki", "identify", "/nonexistent/cert.pem"], "file_not_found"],
  ["directory as file", ["pki", "identify", "/etc"], "file_unreadable"],
];

for (const [name, args, code] of badInputs) {
  test(`cli: ${name} exits non-zero with one clear line and code ${code}`, async (t) => {
    await ready;
    const human = await runCli([...args, "--data-dir", dataDir]);
    t.not(human.code, 0);
    t.is(human.stderr.trim().split("\n").length, 1, human.stderr);
    t.regex(human.stderr, new RegExp(`^error: .+ \\[${code}\\]`));
    const { code: exit, json } = await runCliJson<{ error: { code: string } }>([...args, "--data-dir", dataDir]);
    t.not(exit, 0);
    t.is(json.error.code, code);
  });
}

test("cli: a missing data dir is reported with how to create it, and nothing is written", async (t) => {
  const dir = path.join(tempDir(), "absent");
  const r = await runCliJson<{ error: { code: string; message: string } }>(["pki", "tenant-ca", "acme-corp", "--data-dir", dir]);
  t.is(r.code, 1);
  t.is(r.json.error.code, "pki_not_initialised");
  t.regex(r.json.error.message, /pki init/);
  await t.throwsAsync(fs.access(dir));
});

test("cli: a bad option value is a usage error (exit 2)", async (t) => {
  const r = await runCli(["pki", "issue", "--tenant", "acme-corp", "--component", "a", "--partition", "p", "--days", "soon", "--data-dir", dataDir]);
  t.is(r.code, 2);
  t.regex(r.stderr, /--days must be a whole number/);
});

test("CA keys are 4096-bit RSA unless TENANT_GATEWAY_CA_KEY_BITS names another allowed size", (t) => {
  t.is(caKeyBits({}), 4096);
  t.is(caKeyBits({ TENANT_GATEWAY_CA_KEY_BITS: "2048" }), 2048);
  t.throws(() => caKeyBits({ TENANT_GATEWAY_CA_KEY_BITS: "1024" }), { message: /TENANT_GATEWAY_CA_KEY_BITS: must be one of 2048, 3072, 4096, got "1024"/ });
});

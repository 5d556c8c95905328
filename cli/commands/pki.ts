/** `tenant-gateway pki …`: the platform PKI, tenant CAs, certificates, and the identify tool. */
import { X509Certificate } from "node:crypto";
import { Command } from "commander";
import { TenantService } from "../../accounts/tenants.ts";
import type { KeyedCertificate } from "../../pki/certificates.ts";
import { storeKind, withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import {
  ensureTenantCa,
  initPki,
  issueComponentFiles,
  issuePlatformIdentityFiles,
  readCertificateBundleFile,
  tenantCaSecretManifest,
  trustStoreFromDataDir,
} from "../../pki/authority.ts";
import { identify, IdentityError } from "../../pki/identity.ts";
import { DataLayout } from "../../pki/layout.ts";
import { action, collect, parseIntegerOption, withCommonOptions, EXIT_FAILURE } from "../output.ts";

/**
 * With the KV tenant store, tenant CAs live in the store, not in files: the CA (or every tenant
 * CA, for identify) comes from there. With the directory store, undefined: the files are used.
 */
async function tenantCaFromStore(opts: NatsOptions & { dataDir: string }, slug: string): Promise<KeyedCertificate | undefined> {
  if (storeKind(opts) !== "kv") return undefined;
  return withControlPlane(opts, async (cp) => {
    const { record, secrets } = await new TenantService(cp).load(slug);
    return { certPem: record.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(record.ca_cert_pem) };
  });
}

async function tenantCasFromStore(opts: NatsOptions & { dataDir: string }): Promise<Array<{ slug: string; cert: X509Certificate }>> {
  if (storeKind(opts) !== "kv") return [];
  return withControlPlane(opts, async (cp) => (await cp.store.list()).map((r) => ({ slug: r.slug, cert: new X509Certificate(r.ca_cert_pem) })));
}

function filesText(files: object): string[] {
  return Object.entries(files).map(([k, v]) => `  ${k.padEnd(16)} ${String(v)}`);
}

export function pkiCommand(): Command {
  const pki = new Command("pki").description("certificates: platform PKI, tenant CAs, edge and platform identities");

  withCommonOptions(
    pki
      .command("init")
      .description("create the root CA, the platform CA and the gateway server certificate (idempotent)")
      .option("--hostname <name>", "extra DNS name or IP in the gateway certificate (repeatable)", collect, [])
      .option("--force", "re-create root, platform CA and gateway certificate; existing tenant CAs no longer chain", false),
  ).action(
    action<{ hostname: string[]; force: boolean }>(async (opts) => {
      const result = await initPki(new DataLayout(opts.dataDir), { hostnames: opts.hostname, force: opts.force });
      return {
        json: result,
        text: [
          `platform PKI in ${opts.dataDir}: ${result.status}`,
          `  root CA          ${result.root.status}  serial ${result.root.serial_number}  expires ${result.root.not_after}`,
          `  platform CA      ${result.platform_ca.status}  serial ${result.platform_ca.serial_number}`,
          `  gateway cert     ${result.gateway.status}  names ${result.gateway.hostnames.join(", ")}`,
          ...filesText(result.files),
        ],
      };
    }),
  );

  withCommonOptions(
    pki
      .command("tenant-ca")
      .argument("<slug>", "tenant slug")
      .description("create a tenant's intermediate CA (idempotent)")
      .option("--validity-years <n>", "validity in years", parseIntegerOption("--validity-years", 1, 30), 10)
      .option("--force", "replace an existing tenant CA (its edge certificates stop verifying)", false),
  ).action(
    action<{ validityYears: number; force: boolean }>(async (opts, slug) => {
      const result = await ensureTenantCa(new DataLayout(opts.dataDir), slug!, { validityYears: opts.validityYears, force: opts.force });
      return {
        json: result,
        text: [`tenant CA ${result.subject_cn}: ${result.status}`, `  serial           ${result.serial_number}`, `  expires          ${result.not_after}`, `  spki_sha256      ${result.spki_sha256}`, ...filesText(result.files)],
      };
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("issue")
      .description("issue an edge component certificate signed by the tenant's CA")
      .requiredOption("--tenant <slug>", "tenant slug")
      .requiredOption("--component <id>", "component id, e.g. agent-001")
      .requiredOption("--partition <id>", "partition id, e.g. partition-1")
      .option("--days <n>", "validity in days", parseIntegerOption("--days", 1, 3650), 365)
      .option("--dns <name>", "extra DNS SAN (repeatable)", collect, []),
  )).action(
    action<NatsOptions & { tenant: string; component: string; partition: string; days: number; dns: string[] }>(async (opts) => {
      const result = await issueComponentFiles(new DataLayout(opts.dataDir), opts, await tenantCaFromStore(opts, opts.tenant));
      return { json: result, text: [`issued ${result.common_name}`, `  serial           ${result.serial_number}`, `  expires          ${result.not_after}`, ...filesText(result.files)] };
    }),
  );

  withCommonOptions(
    pki
      .command("issue-platform")
      .argument("<name>", "platform identity name, e.g. admin")
      .description("issue a platform identity certificate <name>.platform.serviceradar signed by the platform CA")
      .option("--days <n>", "validity in days", parseIntegerOption("--days", 1, 3650), 365),
  ).action(
    action<{ days: number }>(async (opts, name) => {
      const result = await issuePlatformIdentityFiles(new DataLayout(opts.dataDir), name!, { days: opts.days });
      return { json: result, text: [`issued ${result.common_name}`, `  serial           ${result.serial_number}`, `  expires          ${result.not_after}`, ...filesText(result.files)] };
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("identify")
      .argument("<cert>", "PEM file with the client certificate (optionally followed by its chain)")
      .option("--chain <pem>", "PEM file with the rest of the chain the client would send")
      .description("decide who a certificate identifies, exactly as the gateway does; exit code 0 only when accepted"),
  )).action(
    action<NatsOptions & { chain?: string }>(async (opts, certFile) => {
      const layout = new DataLayout(opts.dataDir);
      const [leaf, ...sent] = await readCertificateBundleFile(certFile!, "client certificate");
      const chain = opts.chain ? [...sent, ...(await readCertificateBundleFile(opts.chain, "chain"))] : sent;
      const trust = await trustStoreFromDataDir(layout, await tenantCasFromStore(opts));
      try {
        const id = identify(leaf, chain, trust);
        const json = { accepted: true, identity: { ...id, notAfter: id.notAfter.toISOString() } };
        const who = id.kind === "edge" ? `edge identity: tenant=${id.tenant} component=${id.component} partition=${id.partition}` : `platform identity: name=${id.name}`;
        return { json, text: [`accepted: ${who}`, `  cn               ${id.cn}`, `  expires          ${id.notAfter.toISOString()}`] };
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
        return { json: { accepted: false, code: err.code, reason: err.message }, text: [`refused: ${err.code}: ${err.message}`], exitCode: EXIT_FAILURE };
      }
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("k8s-secret")
      .argument("<slug>", "tenant slug")
      .option("--namespace <ns>", "metadata.namespace of the Secret")
      .description("print the Kubernetes Secret manifest (kubernetes.io/tls) of a tenant CA"),
  )).action(
    action<NatsOptions & { namespace?: string }>(async (opts, slug) => {
      const manifest = await tenantCaSecretManifest(new DataLayout(opts.dataDir), slug!, opts.namespace, await tenantCaFromStore(opts, slug!));
      return { json: { tenant_slug: slug, name: `tenant-${slug}-ca`, manifest }, text: [manifest.trimEnd()] };
    }),
  );

  return pki;
}

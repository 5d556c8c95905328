/** `tenant-gateway pki …`: the platform PKI, tenant CAs, certificates, and the identify tool. */
import { X509Certificate } from "node:crypto";
import { Command } from "commander";
import { DirectoryTenantStore } from "../../accounts/directory-store.ts";
import type { TenantStore } from "../../accounts/tenant-store.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { readTextFile } from "../../common/files.ts";
import { createLogger } from "../../common/logger.ts";
import { admit } from "../../gateway/admission.ts";
import { resolveConfig } from "../../gateway/config.ts";
import { TenantDirectory } from "../../gateway/tenant-directory.ts";
import type { KeyedCertificate } from "../../pki/certificates.ts";
import { storeKind, withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import {
  ensureTenantCa,
  initPki,
  issueComponentFiles,
  issuePlatformIdentityFiles,
  readCertificateBundleFile,
  tenantCaSecretManifest,
} from "../../pki/authority.ts";
import { IdentityError } from "../../pki/identity.ts";
import { DataLayout } from "../../pki/layout.ts";
import { action, collect, parseIntegerOption, withCommonOptions, EXIT_FAILURE } from "../output.ts";

/**
 * With the KV tenant store, tenant CAs live in the store, not in files: the CA comes from there.
 * With the directory store, undefined: the files are used.
 */
async function tenantCaFromStore(opts: NatsOptions & { dataDir: string }, slug: string): Promise<KeyedCertificate | undefined> {
  if (storeKind(opts) !== "kv") return undefined;
  return withControlPlane(opts, async (cp) => {
    const { record, secrets } = await new TenantService(cp).load(slug);
    return { certPem: record.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(record.ca_cert_pem) };
  });
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
      .option("--config <file>", "the gateway's config file (env TENANT_GATEWAY_CONFIG): platform.allowed_identities, store, NATS")
      .description("decide whether the gateway admits a certificate, with the gateway's own admission (the registry's tenants, CAs and status, and its config); exit code 0 only when accepted"),
  )).action(
    action<NatsOptions & { chain?: string; config?: string }>(async (opts, certFile) => {
      const [leaf, ...sent] = await readCertificateBundleFile(certFile!, "client certificate");
      const chain = opts.chain ? [...sent, ...(await readCertificateBundleFile(opts.chain, "chain"))] : sent;
      // The gateway's configuration, resolved as `serve` resolves it; the command line wins.
      const config = await resolveConfig({
        ...(opts.config ? { file: opts.config } : {}),
        flags: { data_dir: opts.dataDir, nats: opts.nats, store: opts.store as "dir" | "kv" | undefined, master_key_file: opts.masterKeyFile, bucket: opts.bucket },
      });
      const layout = new DataLayout(config.data_dir);
      const registry = { dataDir: config.data_dir, nats: config.nats.join(","), store: config.store, ...(config.master_key_file ? { masterKeyFile: config.master_key_file } : {}), ...(config.bucket ? { bucket: config.bucket } : {}) };
      // The directory store is read as files (no NATS, no operator needed); the KV store through NATS.
      const withStore = <T>(fn: (store: TenantStore) => Promise<T>): Promise<T> => (config.store === "dir" ? fn(new DirectoryTenantStore(layout)) : withControlPlane(registry, (cp) => fn(cp.store)));
      return withStore(async (store) => {
        const root = new X509Certificate(await readTextFile(layout.rootCert, "root CA certificate"));
        const platformCa = new X509Certificate(await readTextFile(layout.platformCaCert, "platform CA certificate"));
        // The gateway's own view of the registry: only tenants it would load, with their status.
        const directory = await TenantDirectory.open(store, root, [platformCa], createLogger({ level: "silent" }));
        try {
          const admitted = admit(leaf, chain, directory, config.platform.allowed_identities);
          const id = admitted.identity;
          const tenant = admitted.kind === "edge" ? { slug: admitted.tenant.record.slug, status: admitted.tenant.record.status, plan: admitted.tenant.record.plan } : undefined;
          const json = { accepted: true, identity: { ...id, notAfter: id.notAfter.toISOString() }, ...(tenant ? { tenant } : {}) };
          const who = id.kind === "edge" ? `edge identity: tenant=${id.tenant} component=${id.component} partition=${id.partition}` : `platform identity: name=${id.name}`;
          return {
            json,
            text: [`accepted: ${who}`, `  cn               ${id.cn}`, `  expires          ${id.notAfter.toISOString()}`, ...(tenant ? [`  tenant           ${tenant.slug} (${tenant.status}, plan ${tenant.plan})`] : [])],
          };
        } catch (err) {
          if (!(err instanceof IdentityError)) throw err;
          return { json: { accepted: false, code: err.code, reason: err.message }, text: [`refused: ${err.code}: ${err.message}`], exitCode: EXIT_FAILURE };
        } finally {
          directory.close();
        }
      });
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

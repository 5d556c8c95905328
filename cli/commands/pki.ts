/**
 * `tenant-gateway pki …`: the platform PKI, tenant CAs and their rotation, certificates (issue,
 * renew, revoke, inventory), the gateway's server certificate, and the identify tool.
 */
import { X509Certificate } from "node:crypto";
import { Command } from "commander";
import { endPlatformOverlap, endTenantOverlap, platformCaStatus, rotatePlatformCa, rotateTenantCa, tenantCaStatus, type CaStatus } from "../../accounts/ca-rotation.ts";
import { listIssued, PLATFORM_SCOPE } from "../../accounts/certificate-inventory.ts";
import { issueEdge, issuePlatform, renew, revokeCertificate, type CertificateScope, type IssueResult, type RevocationResult } from "../../accounts/certificate-lifecycle.ts";
import type { ControlPlane } from "../../accounts/control-plane.ts";
import { DirectoryTenantStore } from "../../accounts/directory-store.ts";
import { readPlatformTrust } from "../../accounts/platform-trust.ts";
import type { RevokedCertificate, TenantStore } from "../../accounts/tenant-store.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { CodedError } from "../../common/coded-error.ts";
import { readTextFile } from "../../common/files.ts";
import { parseDurationSeconds } from "../../streams/units.ts";
import { createLogger } from "../../common/logger.ts";
import { admit } from "../../gateway/admission.ts";
import { resolveConfig } from "../../gateway/config.ts";
import { TenantDirectory } from "../../gateway/tenant-directory.ts";
import type { KeyedCertificate } from "../../pki/certificates.ts";
import { storeKind, withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import { ensureTenantCa, initPki, readCertificateBundleFile, readCertificateFile, reissueGatewayCertificate, tenantCaSecretManifest } from "../../pki/authority.ts";
import { IdentityError } from "../../pki/identity.ts";
import { DataLayout } from "../../pki/layout.ts";
import { assertTenantSlug, PLATFORM_TOKEN } from "../../pki/names.ts";
import { action, collect, parseIntegerOption, withCommonOptions, EXIT_FAILURE, type CommonOptions, type Report } from "../output.ts";

type RegistryOptions = NatsOptions & CommonOptions;

/**
 * The registry a certificate operation records into: the data dir's files for the directory store
 * (no NATS needed), the bucket for the KV store. With the KV store the tenant CAs live there too.
 */
async function withRegistry<T>(opts: RegistryOptions, fn: (store: TenantStore, cp: ControlPlane | undefined) => Promise<T>): Promise<T> {
  if (storeKind(opts) === "dir") return fn(new DirectoryTenantStore(new DataLayout(opts.dataDir)), undefined);
  return withControlPlane(opts, (cp) => fn(cp.store, cp));
}

/** With the KV tenant store, the tenant's CA from the store; with the directory store, undefined: the files are used. */
async function tenantCaFrom(cp: ControlPlane | undefined, slug: string): Promise<KeyedCertificate | undefined> {
  if (!cp) return undefined;
  const { record, secrets } = await new TenantService(cp).load(slug);
  return { certPem: record.ca_cert_pem, keyPem: secrets.ca_key_pem, cert: new X509Certificate(record.ca_cert_pem) };
}

function filesText(files: object): string[] {
  return Object.entries(files).map(([k, v]) => `  ${k.padEnd(16)} ${String(v)}`);
}

/** `<slug>` or `platform` (a reserved slug, so never a tenant's). */
function parseScope(value: string): CertificateScope {
  return value === PLATFORM_TOKEN ? { platform: true } : { tenant: assertTenantSlug(value) };
}

function parseOverlap(value: string): number {
  const seconds = parseDurationSeconds(value);
  if (seconds === undefined) throw new CodedError("invalid_argument", `--overlap must be a duration like 30d, 12h or 0, got "${value}"`);
  return seconds;
}

function issuedText(result: IssueResult, what: string): string[] {
  return [
    `issued ${what}`,
    `  serial           ${result.serial_number}`,
    `  fingerprint      ${result.fingerprint_sha256}`,
    `  expires          ${result.not_after}`,
    ...filesText(result.files),
    ...(result.replaced
      ? [
          `warning: it replaces certificate ${result.replaced.serial_number}, which stays valid until ${result.replaced.not_after};`,
          `  revoke it with "tenant-gateway pki revoke --serial ${result.replaced.serial_number} --${result.inventory.scope === PLATFORM_SCOPE ? "platform" : `tenant ${result.inventory.scope}`}" (or use "pki renew --revoke-old")`,
        ]
      : []),
  ];
}

function caStatusText(status: CaStatus): string[] {
  const who = status.scope === PLATFORM_SCOPE ? "platform CA" : `tenant ${status.scope} CA`;
  return [
    `${who}: active ${status.active.subject_cn}  serial ${status.active.serial_number}  expires ${status.active.not_after}`,
    `  spki_sha256      ${status.active.spki_sha256}`,
    ...status.previous.map((p) => `  previous         serial ${p.serial_number}  ${p.state === "overlap" ? "admitted until" : "refused since"} ${p.admitted_until}`),
    ...(status.overlap_until ? [`  overlap          both CAs' certificates connect until ${status.overlap_until}`] : []),
  ];
}

function revocationText(r: RevocationResult): string[] {
  const c = r.certificate;
  return [`${r.status === "revoked" ? "revoked" : "already revoked"}: ${c.subject_cn}`, `  serial           ${c.serial_number}`, `  revoked at       ${c.revoked_at}${c.reason ? `  (${c.reason})` : ""}`];
}

function revokedLines(list: ReadonlyArray<Omit<RevokedCertificate, "user_public_key">>): string[] {
  return list.map((r) => `  ${r.serial_number}  ${r.subject_cn}  revoked ${r.revoked_at}${r.reason ? `  (${r.reason})` : ""}`);
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
          ...(result.gateway.status === "reissued" ? ["restart the gateway (lame duck: SIGTERM) to serve the re-issued certificate"] : []),
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
      .option("--force", "replace the CA files of a tenant that is not registered (a registered tenant's CA is rotated with pki rotate-ca)", false),
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
    action<NatsOptions & { tenant: string; component: string; partition: string; days: number; dns: string[] }>(async (opts) =>
      withRegistry(opts, async (store, cp) => {
        const tenantCa = await tenantCaFrom(cp, opts.tenant);
        const spec = { tenant: opts.tenant, component: opts.component, partition: opts.partition, days: opts.days, dns: opts.dns };
        const result = await issueEdge(new DataLayout(opts.dataDir), store, spec, tenantCa ? { tenantCa } : {});
        return { json: result, text: issuedText(result, result.common_name) };
      }),
    ),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("issue-platform")
      .argument("<name>", "platform identity name, e.g. admin")
      .description("issue a platform identity certificate <name>.platform.serviceradar signed by the platform CA")
      .option("--days <n>", "validity in days", parseIntegerOption("--days", 1, 3650), 365),
  )).action(
    action<NatsOptions & { days: number }>(async (opts, name) =>
      withRegistry(opts, async (store) => {
        const result = await issuePlatform(new DataLayout(opts.dataDir), store, name!, { days: opts.days });
        return { json: result, text: issuedText(result, result.common_name) };
      }),
    ),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("renew")
      .description("a new key and certificate for an identity that has one in the data dir; the old certificate stays valid until it expires, or is revoked at once with --revoke-old")
      .option("--tenant <slug>", "tenant of the edge component")
      .option("--component <id>", "component id")
      .option("--partition <id>", "partition id")
      .option("--platform <name>", "a platform identity instead, e.g. admin")
      .option("--days <n>", "validity in days (default: the old certificate's)", parseIntegerOption("--days", 1, 3650))
      .option("--revoke-old", "revoke the old certificate now: its sessions are cut and it is refused (needs NATS)", false)
      .option("--reason <text>", "why the old certificate is revoked (with --revoke-old)"),
  )).action(
    action<NatsOptions & { tenant?: string; component?: string; partition?: string; platform?: string; days?: number; revokeOld: boolean; reason?: string }>(async (opts) => {
      const edge = opts.tenant !== undefined || opts.component !== undefined || opts.partition !== undefined;
      if (edge === (opts.platform !== undefined) || (edge && (!opts.tenant || !opts.component || !opts.partition))) {
        throw new CodedError("invalid_argument", "name the identity: --tenant, --component and --partition, or --platform <name>");
      }
      const layout = new DataLayout(opts.dataDir);
      const run = async (store: TenantStore, cp: ControlPlane | undefined): Promise<Report> => {
        const revoke = opts.revokeOld ? (old: X509Certificate) => revokeCertificate(cp!, new TenantService(cp!), { cert: old, reason: opts.reason ?? "renewed" }) : undefined;
        const identity = opts.platform !== undefined ? { platform: opts.platform } : { tenant: opts.tenant!, component: opts.component!, partition: opts.partition!, ...(storeKind(opts) === "kv" ? { tenantCa: (await tenantCaFrom(cp, opts.tenant!))! } : {}) };
        const result = await renew(layout, store, identity, { ...(opts.days === undefined ? {} : { days: opts.days }), ...(revoke ? { revoke } : {}) });
        const { replaced: _r, ...issued } = result.issued;
        return {
          json: { issued, previous: result.previous },
          text: [
            `renewed ${issued.common_name}`,
            `  serial           ${issued.serial_number}`,
            `  expires          ${issued.not_after}`,
            ...filesText(issued.files),
            `  previous         ${result.previous.serial_number}: ${result.previous.status === "revoked" ? "revoked" : `valid until ${result.previous.not_after} (revoke it with pki revoke, or renew with --revoke-old)`}`,
          ],
        };
      };
      // Revoking pushes the account: that needs the control plane (and NATS) whatever the store.
      return opts.revokeOld ? withControlPlane(opts, (cp) => run(cp.store, cp)) : withRegistry(opts, run);
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("revoke")
      .description("revoke one edge or platform certificate, live: its sessions are cut on every gateway and NATS server, new connections refused (certificate_revoked)")
      .option("--cert <pem>", "the certificate itself")
      .option("--serial <hex>", "its serial number (with --tenant or --platform)")
      .option("--fingerprint <hex>", "its SHA-256 fingerprint (with --tenant or --platform)")
      .option("--tenant <slug>", "the tenant it belongs to")
      .option("--component <id>", "with --tenant and --partition: the component's current certificate in the data dir")
      .option("--partition <id>", "partition id (with --component)")
      .option("--platform", "it is a platform identity's certificate", false)
      .option("--reason <text>", "why (shown by tenant show and in the refusal)"),
  )).action(
    action<NatsOptions & { cert?: string; serial?: string; fingerprint?: string; tenant?: string; component?: string; partition?: string; platform: boolean; reason?: string }>(async (opts) => {
      const layout = new DataLayout(opts.dataDir);
      let certFile = opts.cert;
      if (opts.component !== undefined || opts.partition !== undefined) {
        if (!opts.tenant || !opts.component || !opts.partition) throw new CodedError("invalid_argument", "--component needs --tenant and --partition");
        certFile = layout.component(assertTenantSlug(opts.tenant), opts.component, opts.partition).cert;
      }
      if (opts.tenant !== undefined && opts.platform) throw new CodedError("invalid_argument", "give --tenant or --platform, not both");
      const scope: CertificateScope | undefined = opts.platform ? { platform: true } : opts.tenant !== undefined ? { tenant: assertTenantSlug(opts.tenant) } : undefined;
      const cert = certFile ? await readCertificateFile(certFile, "certificate to revoke") : undefined;
      return withControlPlane(opts, async (cp) => {
        const result = await revokeCertificate(cp, new TenantService(cp), {
          ...(scope ? { scope } : {}),
          ...(cert ? { cert } : {}),
          ...(opts.serial ? { serial: opts.serial } : {}),
          ...(opts.fingerprint ? { fingerprint: opts.fingerprint } : {}),
          ...(opts.reason ? { reason: opts.reason } : {}),
        });
        return { json: result, text: revocationText(result) };
      });
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("revocations")
      .argument("<scope>", 'tenant slug, or "platform"')
      .description("the certificates revoked in a tenant or for the platform (still unexpired)"),
  )).action(
    action<NatsOptions>(async (opts, scopeArg) => {
      const scope = parseScope(scopeArg!);
      return withRegistry(opts, async (store) => {
        const list = "tenant" in scope ? ((await store.get(scope.tenant)) ?? unknownTenant(scope.tenant, store)).revoked_certificates ?? [] : (await readPlatformTrust(store)).trust.revoked_certificates;
        const shown = list.map(({ user_public_key: _u, ...r }) => r);
        return { json: { scope: scopeArg, revoked_certificates: shown }, text: shown.length === 0 ? [`no revoked certificates (${scopeArg})`] : [`revoked certificates (${scopeArg}):`, ...revokedLines(shown)] };
      });
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("certificates")
      .argument("<scope>", 'tenant slug, or "platform"')
      .description("the inventory of certificates issued for a tenant or the platform, with their state (valid, expired, revoked)"),
  )).action(
    action<NatsOptions>(async (opts, scopeArg) => {
      const scope = parseScope(scopeArg!);
      return withRegistry(opts, async (store) => {
        const revoked = new Set(("tenant" in scope ? ((await store.get(scope.tenant)) ?? unknownTenant(scope.tenant, store)).revoked_certificates ?? [] : (await readPlatformTrust(store)).trust.revoked_certificates).map((r) => r.fingerprint_sha256));
        const now = Date.now();
        const certificates = (await listIssued(store, "tenant" in scope ? scope.tenant : PLATFORM_SCOPE)).map((c) => ({ ...c, state: revoked.has(c.fingerprint_sha256) ? "revoked" : Date.parse(c.not_after) <= now ? "expired" : "valid" }));
        return {
          json: { scope: scopeArg, certificates },
          text: certificates.length === 0 ? [`no certificates recorded (${scopeArg})`] : certificates.map((c) => `  ${c.serial_number}  ${c.state.padEnd(8)} ${c.subject_cn}  expires ${c.not_after}  (${c.source})`),
        };
      });
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("rotate-ca")
      .argument("<scope>", 'tenant slug, or "platform"')
      .description("a new CA that issues from now on; certificates of the previous one are admitted until the overlap ends, then refused (retired_ca)")
      .option("--overlap <duration>", "how long the previous CA's certificates are still admitted (e.g. 30d, 12h, 0)", "30d")
      .option("--validity-years <n>", "validity of the new CA in years", parseIntegerOption("--validity-years", 1, 30), 10),
  )).action(
    action<NatsOptions & { overlap: string; validityYears: number }>(async (opts, scopeArg) => {
      const scope = parseScope(scopeArg!);
      const overlapSeconds = parseOverlap(opts.overlap);
      return withControlPlane(opts, async (cp) => {
        const result = "tenant" in scope ? await rotateTenantCa(cp, new TenantService(cp), scope.tenant, { overlapSeconds, validityYears: opts.validityYears }) : await rotatePlatformCa(cp, { overlapSeconds, validityYears: opts.validityYears });
        const next = "tenant" in scope ? `re-issue the tenant's certificates before ${result.overlap_until ?? "now"}: "tenant-gateway pki renew --tenant ${scope.tenant} --component <id> --partition <id>" or new onboarding packages` : `restart the gateway(s) to serve the re-issued server certificate; renew platform identities before ${result.overlap_until ?? "now"}: "tenant-gateway pki renew --platform admin"`;
        return { json: result, text: [`rotated: ${scopeArg}`, ...caStatusText(result), next] };
      });
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("end-overlap")
      .argument("<scope>", 'tenant slug, or "platform"')
      .description("end a CA rotation's overlap now: certificates of previous CAs are refused from now on"),
  )).action(
    action<NatsOptions>(async (opts, scopeArg) => {
      const scope = parseScope(scopeArg!);
      return withControlPlane(opts, async (cp) => {
        const result = "tenant" in scope ? await endTenantOverlap(new TenantService(cp), cp, scope.tenant) : await endPlatformOverlap(cp);
        return { json: result, text: caStatusText(result) };
      });
    }),
  );

  withNatsOptions(withCommonOptions(
    pki
      .command("ca-status")
      .argument("<scope>", 'tenant slug, or "platform"')
      .description("the active CA and the previous ones with their overlap deadlines"),
  )).action(
    action<NatsOptions>(async (opts, scopeArg) => {
      const scope = parseScope(scopeArg!);
      return withControlPlane(opts, async (cp) => {
        const result = "tenant" in scope ? await tenantCaStatus(new TenantService(cp), scope.tenant) : await platformCaStatus(cp);
        return { json: result, text: caStatusText(result) };
      });
    }),
  );

  withCommonOptions(
    pki
      .command("gateway-cert")
      .description("re-issue the gateway's server certificate from the current platform CA (new names, renewal), touching no CA; a gateway serves it after a restart")
      .option("--hostname <name>", "DNS name or IP to add (repeatable)", collect, [])
      .option("--replace-hostnames", "exactly localhost, 127.0.0.1 and the --hostname names, dropping the others", false)
      .option("--days <n>", "validity in days", parseIntegerOption("--days", 1, 3650), 825),
  ).action(
    action<{ hostname: string[]; replaceHostnames: boolean; days: number }>(async (opts) => {
      const result = await reissueGatewayCertificate(new DataLayout(opts.dataDir), { hostnames: opts.hostname, replaceHostnames: opts.replaceHostnames, days: opts.days });
      return {
        json: result,
        text: [`gateway certificate re-issued`, `  names            ${result.hostnames.join(", ")}`, `  serial           ${result.serial_number}`, `  expires          ${result.not_after}`, ...filesText(result.files), "restart the gateway (lame duck: SIGTERM) to serve it"],
      };
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
        const directory = await TenantDirectory.open(store, root, [platformCa], createLogger({ level: "silent" }), { reconcileMs: 0 });
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
    action<NatsOptions & { namespace?: string }>(async (opts, slug) =>
      withRegistry(opts, async (_store, cp) => {
        const manifest = await tenantCaSecretManifest(new DataLayout(opts.dataDir), slug!, opts.namespace, await tenantCaFrom(cp, slug!));
        return { json: { tenant_slug: slug, name: `tenant-${slug}-ca`, manifest }, text: [manifest.trimEnd()] };
      }),
    ),
  );

  return pki;
}

function unknownTenant(slug: string, store: TenantStore): never {
  throw new CodedError("unknown_tenant", `no tenant "${slug}" in ${store.location}`);
}

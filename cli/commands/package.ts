/**
 * `tenant-gateway package …`: onboarding packages for edge sites — a certificate and a bundle
 * (certs, config, nats context, install.sh, Kubernetes manifests) handed out once against a
 * one-time token.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { Command } from "commander";
import { TenantService } from "../../accounts/tenants.ts";
import { writeSecretFile } from "../../common/files.ts";
import { COLLECTOR_KINDS, PACKAGE_TYPES } from "../../onboarding/bundle.ts";
import { DEFAULT_PACKAGE_TTL, PackageService, PUBLIC_URL_ENV, type PackageView } from "../../onboarding/packages.ts";
import { withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import { action, parseIntegerOption, withCommonOptions } from "../output.ts";

/** The token from the environment rather than the command line (which other users can see in ps). */
const TOKEN_ENV = "TENANT_GATEWAY_PACKAGE_TOKEN";

function viewText(v: PackageView): string[] {
  return [
    `package ${v.id}: ${v.state}`,
    `  tenant           ${v.tenant}`,
    `  component        ${v.component} (partition ${v.partition}, ${v.profile})`,
    `  certificate      ${v.cn}  serial ${v.certificate.serial_number}  expires ${v.certificate.not_after}`,
    `  gateway          ${v.gateway_url}`,
    `  created          ${v.created_at}`,
    `  token expires    ${v.expires_at}`,
    ...(v.delivered_at ? [`  delivered        ${v.delivered_at}`] : []),
    ...(v.revoked_at ? [`  revoked          ${v.revoked_at}${v.revoke_reason ? ` (${v.revoke_reason})` : ""}`] : []),
  ];
}

export function packageCommand(): Command {
  const pkg = new Command("package").description("onboarding packages: a certificate and a bundle for an edge site, downloaded once with a one-time token");
  const sub = (name: string): Command => withNatsOptions(withCommonOptions(pkg.command(name)));

  sub("create")
    .requiredOption("--tenant <slug>", "tenant slug")
    .requiredOption("--component <id>", "component id, e.g. agent-001")
    .requiredOption("--partition <id>", "partition id, e.g. partition-1")
    .requiredOption("--type <type>", `component type: ${PACKAGE_TYPES.join(", ")}`)
    .option("--collector <kind>", `with --type collector: ${COLLECTOR_KINDS.join(" or ")} (default otel)`)
    .option("--ttl <duration>", "how long the download token is valid", DEFAULT_PACKAGE_TTL)
    .option("--days <n>", "certificate validity in days", parseIntegerOption("--days", 1, 3650), 365)
    .option("--gateway-url <url>", `where the site reaches the gateway, tls://host:port (env ${PUBLIC_URL_ENV}; default: the gateway certificate's first non-loopback name, port 4222)`)
    .option("--leaf-url <url>", "with --type leaf: the gateway's leaf listener, tls://host:port (default: the gateway URL's host, port 7422)")
    .option("--image <ref>", "container image for install.sh docker and the Deployment (default: the type's ServiceRadar image)")
    .description("issue the component's certificate and build its bundle; prints the package id and its one-time download token (shown only now)")
    .action(
      action<NatsOptions & { tenant: string; component: string; partition: string; type: string; collector?: string; ttl: string; days: number; gatewayUrl?: string; leafUrl?: string; image?: string }>(async (opts) =>
        withControlPlane(opts, async (cp) => {
          const created = await new PackageService(cp, new TenantService(cp)).create({
            tenant: opts.tenant,
            component: opts.component,
            partition: opts.partition,
            type: opts.type,
            ...(opts.collector ? { collector: opts.collector } : {}),
            ttl: opts.ttl,
            days: opts.days,
            ...(opts.gatewayUrl ? { gatewayUrl: opts.gatewayUrl } : {}),
            ...(opts.leafUrl ? { leafUrl: opts.leafUrl } : {}),
            ...(opts.image ? { image: opts.image } : {}),
          });
          const v = created.package;
          return {
            json: created,
            text: [
              ...viewText(v),
              `  token            ${created.token}`,
              "the token is shown only now and works once; hand it to the site with the package id:",
              `  tenant-gateway package download ${v.id} --token ${created.token}`,
              `  or GET ${v.download_path}?token=<token> on the gateway's HTTP listener`,
            ],
          };
        }),
      ),
    );

  sub("download")
    .argument("<id>", "package id")
    .option("--token <token>", `the one-time token (env ${TOKEN_ENV})`)
    .option("--out <file>", "where the .tar.gz goes (default: ./<tenant>-<component>-<partition>.tar.gz); written 0600")
    .description("download a package's bundle, once: the token is used up (409 package_delivered after); 401 wrong token, 404 unknown, 410 expired")
    .action(
      action<NatsOptions & { token?: string; out?: string }>(async (opts, id) =>
        withControlPlane(opts, async (cp) => {
          const got = await new PackageService(cp, new TenantService(cp)).download(id!, opts.token ?? process.env[TOKEN_ENV]);
          const out = path.resolve(opts.out ?? got.filename);
          await fs.mkdir(path.dirname(out), { recursive: true });
          await writeSecretFile(out, got.bundle);
          return {
            json: { file: out, bytes: got.bundle.length, package: got.package },
            text: [`package ${id}: delivered to ${out} (${got.bundle.length} bytes)`, `unpack it with: mkdir site && tar -xzf ${out} -C site && cat site/README.md`],
          };
        }),
      ),
    );

  sub("list")
    .option("--tenant <slug>", "only this tenant's")
    .description("packages with their state (pending, delivered, expired, revoked)")
    .action(
      action<NatsOptions & { tenant?: string }>(async (opts) =>
        withControlPlane(opts, async (cp) => {
          const packages = await new PackageService(cp, new TenantService(cp)).list(opts.tenant ? { tenant: opts.tenant } : {});
          return {
            json: { packages },
            text: packages.length === 0 ? ["no packages"] : [`${"ID".padEnd(36)} ${"STATE".padEnd(10)} ${"TENANT".padEnd(20)} COMPONENT`, ...packages.map((p) => `${p.id} ${p.state.padEnd(10)} ${p.tenant.padEnd(20)} ${p.component}/${p.partition} (${p.profile})`)],
          };
        }),
      ),
    );

  sub("show")
    .argument("<id>", "package id")
    .description("a package's state, certificate and deadlines (never its token)")
    .action(
      action<NatsOptions>(async (opts, id) =>
        withControlPlane(opts, async (cp) => {
          const view = await new PackageService(cp, new TenantService(cp)).show(id!);
          return { json: view, text: viewText(view) };
        }),
      ),
    );

  sub("revoke")
    .argument("<id>", "package id")
    .option("--reason <text>", "why")
    .description("no download from now on, and the package's certificate revoked (live), whether or not it was downloaded")
    .action(
      action<NatsOptions & { reason?: string }>(async (opts, id) =>
        withControlPlane(opts, async (cp) => {
          const view = await new PackageService(cp, new TenantService(cp)).revoke(id!, opts.reason);
          return { json: view, text: [...viewText(view), `  certificate      ${view.certificate_revocation === "revoked" ? "revoked" : "already revoked"}`] };
        }),
      ),
    );

  return pkg;
}

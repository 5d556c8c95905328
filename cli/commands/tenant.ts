/** `tenant-gateway tenant …`: tenant lifecycle and its services' credentials, each step live in NATS. */
import { Command } from "commander";
import { CodedError } from "../../common/coded-error.ts";
import { issueCredential, revokeCredential } from "../../accounts/service-credentials.ts";
import { TenantService, type TenantView } from "../../accounts/tenants.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import { action, collect, parseIntegerOption, withCommonOptions } from "../output.ts";

function limitText(n: number): string {
  return n < 0 ? "unlimited" : String(n);
}

function viewText(v: TenantView): string[] {
  const js = v.limits.jetstream;
  const lines = [
    `tenant ${v.slug} (${v.name})`,
    `  id               ${v.id}`,
    `  status           ${v.status}${v.suspended_at ? ` since ${v.suspended_at}` : ""}`,
    `  plan             ${v.plan}`,
    `  CA               ${v.ca.subject_cn}  serial ${v.ca.serial_number}  expires ${v.ca.not_after}`,
    `  CA spki_sha256   ${v.ca.spki_sha256}`,
    ...v.previous_cas.map((p) => `  previous CA      serial ${p.serial_number}  ${p.state === "overlap" ? "admitted until" : "refused since"} ${p.admitted_until}`),
    `  account          ${v.account.public_key}`,
    `  limits           connections ${limitText(v.limits.connections)}, subscriptions ${limitText(v.limits.subscriptions)}, payload ${limitText(v.limits.max_payload)}`,
    `  JetStream        memory ${limitText(js.memory)}, disk ${limitText(js.disk)}, streams ${limitText(js.streams)}, consumers ${limitText(js.consumers)}`,
  ];
  for (const r of v.revoked_certificates) lines.push(`  revoked          ${r.serial_number}  ${r.subject_cn}  ${r.revoked_at}${r.reason ? `  (${r.reason})` : ""}`);
  for (const c of v.credentials) lines.push(`  credentials      ${c.name.padEnd(16)} ${c.status.padEnd(8)} ${c.user_public_key}`);
  if (Array.isArray(v.streams)) {
    for (const s of v.streams as Array<{ name: string; subjects: string[]; messages?: number; bytes?: number }>) {
      lines.push(`  stream           ${s.name.padEnd(12)} ${s.subjects.join(", ")}${s.messages === undefined ? "" : `  (${s.messages} msgs, ${s.bytes} bytes)`}`);
    }
  }
  return lines;
}

export function tenantCommand(): Command {
  const tenant = new Command("tenant").description("tenants: one record ties slug, id, CA, NATS account, plan and status");
  const sub = (name: string): Command => withNatsOptions(withCommonOptions(tenant.command(name)));

  sub("create")
    .argument("<slug>", "tenant slug (a DNS label)")
    .option("--name <name>", "display name")
    .option("--plan <plan>", "plan from the plans file", "free")
    .option("--defer-platform", "do not update the PLATFORM account's imports now (bulk on-boarding: run sync once at the end)", false)
    .description("create a tenant: CA, NATS account (pushed live), streams, PLATFORM imports")
    .action(
      action<NatsOptions & { name?: string; plan: string; deferPlatform: boolean }>(async (opts, slug) =>
        withControlPlane(opts, async (cp) => {
          const svc = new TenantService(cp, tenantStreamProvisioner);
          const { status, tenant: record } = await svc.create(slug!, { ...(opts.name ? { name: opts.name } : {}), plan: opts.plan, deferPlatform: opts.deferPlatform });
          const view = await svc.view(record, true);
          return { json: { status, tenant: view }, text: [`tenant ${slug}: ${status}`, ...viewText(view).slice(1)] };
        }),
      ),
    );

  sub("list")
    .description("list tenants")
    .action(
      action<NatsOptions>(async (opts) =>
        withControlPlane(opts, async (cp) => {
          const svc = new TenantService(cp);
          const records = await svc.list();
          const views = await Promise.all(records.map((r) => svc.view(r)));
          return {
            json: { tenants: views },
            text: views.length === 0 ? ["no tenants"] : [`${"SLUG".padEnd(24)} ${"STATUS".padEnd(12)} ${"PLAN".padEnd(12)} ID`, ...views.map((v) => `${v.slug.padEnd(24)} ${v.status.padEnd(12)} ${v.plan.padEnd(12)} ${v.id}`)],
          };
        }),
      ),
    );

  sub("show")
    .argument("<slug>")
    .description("show a tenant: id, status, plan, CA, account, limits, streams")
    .action(
      action<NatsOptions>(async (opts, slug) =>
        withControlPlane(opts, async (cp) => {
          const svc = new TenantService(cp, tenantStreamProvisioner);
          const view = await svc.view(await svc.get(slug!), true);
          return { json: view, text: viewText(view) };
        }),
      ),
    );

  sub("suspend")
    .argument("<slug>")
    .description("suspend a tenant: its users are revoked in NATS (live connections are cut) and the gateway refuses new ones")
    .action(
      action<NatsOptions>(async (opts, slug) =>
        withControlPlane(opts, async (cp) => {
          const record = await new TenantService(cp, tenantStreamProvisioner).suspend(slug!);
          return { json: { slug, status: record.status, suspended_at: record.suspended_at }, text: [`tenant ${slug}: ${record.status} since ${record.suspended_at}`] };
        }),
      ),
    );

  sub("resume")
    .argument("<slug>")
    .description("resume a suspended tenant")
    .action(
      action<NatsOptions>(async (opts, slug) =>
        withControlPlane(opts, async (cp) => {
          const record = await new TenantService(cp, tenantStreamProvisioner).resume(slug!);
          return { json: { slug, status: record.status }, text: [`tenant ${slug}: ${record.status}`] };
        }),
      ),
    );

  sub("set-plan")
    .argument("<slug>")
    .argument("<plan>")
    .description("move a tenant to another plan: streams resized (shrunk before the account, grown after), limits live; refused when its streams hold more than the plan allows")
    .action(
      action<NatsOptions>(async (opts, slug, plan) =>
        withControlPlane(opts, async (cp) => {
          const svc = new TenantService(cp, tenantStreamProvisioner);
          const view = await svc.view(await svc.setPlan(slug!, plan!), true);
          const streams = Array.isArray(view.streams) ? (view.streams as Array<{ name: string; limits: { max_bytes: number } }>) : [];
          return {
            json: { slug, plan: view.plan, limits: view.limits, streams: streams.map((s) => ({ name: s.name, max_bytes: s.limits.max_bytes })) },
            text: [`tenant ${slug}: plan ${view.plan}`, ...streams.map((s) => `  stream ${s.name.padEnd(12)} max_bytes ${s.limits.max_bytes < 0 ? "unlimited" : s.limits.max_bytes}`)],
          };
        }),
      ),
    );

  sub("delete")
    .argument("<slug>")
    .option("--yes", "confirm: revoke every user, delete the tenant's streams and account, forget the tenant", false)
    .description("delete a tenant and its data")
    .action(
      action<NatsOptions & { yes: boolean }>(async (opts, slug) => {
        if (!opts.yes) throw new CodedError("confirmation_required", `deleting tenant "${slug}" destroys its streams and certificates; repeat with --yes`);
        return withControlPlane(opts, async (cp) => {
          const result = await new TenantService(cp, tenantStreamProvisioner).delete(slug!);
          return { json: { status: "deleted", ...result }, text: [`tenant ${slug}: deleted (account ${result.account}; ${result.resolver})`] };
        });
      }),
    );

  sub("creds")
    .argument("<slug>")
    .argument("<name>", "the service's name, e.g. rules-engine")
    .option("--pub <subject>", "subject it may publish, edge view (e.g. events.>; repeatable; default: the tenant's whole namespace)", collect, [])
    .option("--sub <subject>", "subject it may subscribe to, edge view (repeatable; default: the tenant's whole namespace)", collect, [])
    .option("--no-jetstream", "without the JetStream API (reading and consuming the tenant's streams)")
    .option("--days <n>", "validity in days (default: no expiry)", parseIntegerOption("--days", 1, 3650))
    .option("--out <file>", "where the .creds file goes (default <data-dir>/tenants/<slug>/creds/<name>.creds), written 0600")
    .description("a .creds file (user JWT + seed) for a service in the tenant's account, connecting to NATS directly, scoped to the tenant's namespace; listed by tenant show, revocable with creds-revoke")
    .action(
      action<NatsOptions & { pub: string[]; sub: string[]; jetstream: boolean; days?: number; out?: string }>(async (opts, slug, name) =>
        withControlPlane(opts, async (cp) => {
          const issued = await issueCredential(new TenantService(cp), slug!, name!, { publish: opts.pub, subscribe: opts.sub, jetstream: opts.jetstream, ...(opts.days === undefined ? {} : { days: opts.days }), ...(opts.out ? { out: opts.out } : {}) }, (s, n) => cp.layout.tenantCreds(s, n));
          const c = issued.credential;
          return {
            json: issued,
            text: [
              `credentials ${c.name} for tenant ${slug}: ${issued.file}`,
              `  user             ${c.user_public_key}`,
              `  publish          ${c.publish.join(", ")}${c.jetstream ? " + JetStream API (read, consume)" : ""}`,
              `  subscribe        ${c.subscribe.join(", ")}`,
              `  expires          ${c.expires_at ?? "never"}`,
              `connect to NATS directly (not the gateway), e.g. nats --creds ${issued.file} -s <nats-url> sub '${slug}.events.>'`,
            ],
          };
        }),
      ),
    );

  sub("creds-list")
    .argument("<slug>")
    .description("the service credentials issued in a tenant (public keys and scopes; the seeds are only in the .creds files)")
    .action(
      action<NatsOptions>(async (opts, slug) =>
        withControlPlane(opts, async (cp) => {
          const svc = new TenantService(cp);
          const view = await svc.view(await svc.get(slug!));
          return {
            json: { slug, credentials: view.credentials },
            text: view.credentials.length === 0 ? [`tenant ${slug}: no credentials`] : view.credentials.map((c) => `${c.name.padEnd(20)} ${c.status.padEnd(8)} ${c.user_public_key}  pub ${c.publish.join(",")}  sub ${c.subscribe.join(",")}`),
          };
        }),
      ),
    );

  sub("creds-revoke")
    .argument("<slug>")
    .argument("<name>")
    .description("revoke a service's credentials: NATS cuts its connections at once and refuses the .creds file from then on")
    .action(
      action<NatsOptions>(async (opts, slug, name) =>
        withControlPlane(opts, async (cp) => {
          const result = await revokeCredential(new TenantService(cp), slug!, name!);
          return { json: result, text: [`credentials ${name} of tenant ${slug}: ${result.status === "revoked" ? "revoked" : "already revoked"} (user ${result.credential.user_public_key})`] };
        }),
      ),
    );

  return tenant;
}

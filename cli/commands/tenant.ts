/** `tenant-gateway tenant …`: tenant lifecycle, each step live in NATS. */
import { Command } from "commander";
import { CodedError } from "../../common/coded-error.ts";
import { TenantService, type TenantView } from "../../accounts/tenants.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import { action, withCommonOptions } from "../output.ts";

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
    `  account          ${v.account.public_key}`,
    `  limits           connections ${limitText(v.limits.connections)}, subscriptions ${limitText(v.limits.subscriptions)}, payload ${limitText(v.limits.max_payload)}`,
    `  JetStream        memory ${limitText(js.memory)}, disk ${limitText(js.disk)}, streams ${limitText(js.streams)}, consumers ${limitText(js.consumers)}`,
  ];
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

  return tenant;
}

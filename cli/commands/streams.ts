/** `tenant-gateway streams …`: per-tenant JetStream streams reconciled with the stream templates. */
import { Command } from "commander";
import type { ControlPlane } from "../../accounts/control-plane.ts";
import { getPlan, loadPlans } from "../../accounts/plans.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { CodedError, errorMessage } from "../../common/coded-error.ts";
import { StreamProvisioner, type StreamApplyReport } from "../../streams/provisioner.ts";
import type { StreamResult, TenantStreamView } from "../../streams/reconcile.ts";
import { fitTemplatesToPlan } from "../../streams/stream-specs.ts";
import { loadStreamTemplates, resolveTemplatesDir, TEMPLATES_DIR_ENV } from "../../streams/templates.ts";
import { loadPlatformStreamTemplates, PLATFORM_TEMPLATES_DIR_ENV, PlatformStreamProvisioner, resolvePlatformTemplatesDir, type PlatformStreamReport } from "../../streams/platform-streams.ts";
import { formatBytes, formatDuration } from "../../streams/units.ts";
import { withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import { action, withCommonOptions } from "../output.ts";

interface TemplatesOption {
  templates?: string;
}

interface TenantApplyResult {
  slug: string;
  result: "applied" | "failed" | "skipped";
  streams?: StreamResult[];
  error?: { code: string; message: string };
}

const TEMPLATES_HELP = `stream templates directory (env ${TEMPLATES_DIR_ENV}; default <data-dir>/streams/ when it exists, else the built-in templates)`;

function show(value: unknown): string {
  return Array.isArray(value) ? value.join(",") : String(value);
}

function resultText(r: StreamResult): string {
  const head = `  ${r.stream.padEnd(16)} ${r.action.padEnd(10)}`;
  switch (r.action) {
    case "created":
      return `${head} ${r.subjects.join(", ")}  max_bytes ${formatBytes(r.max_bytes)}`;
    case "updated":
      return `${head} ${r.changes.map((c) => `${c.field} ${show(c.before)} → ${show(c.after)}`).join("; ")}`;
    case "unchanged":
      return head.trimEnd();
    case "pruned":
      return `${head} deleted with ${r.messages} msgs, ${r.bytes} bytes`;
    case "unmanaged":
      return `${head} ${r.subjects.join(", ")}  (in no template; kept, --prune deletes it)`;
    case "failed":
      return `${head} ${r.error.message}`;
  }
}

function tenantText(t: TenantApplyResult): string[] {
  if (t.result === "skipped") return [`${t.slug}: skipped: ${t.error?.message ?? ""}`];
  // A failed apply lists its streams, each with its own error; otherwise the error is the story.
  const head = t.result !== "failed" ? `${t.slug}:` : t.streams ? `${t.slug}: failed` : `${t.slug}: failed: ${t.error?.message ?? ""}`;
  return [head, ...(t.streams ?? []).map(resultText)];
}

async function applyOne(cp: ControlPlane, svc: TenantService, provisioner: StreamProvisioner, slug: string, prune: boolean): Promise<TenantApplyResult> {
  try {
    const tenant = await svc.load(slug);
    if (tenant.record.status === "provisioning") {
      return { slug, result: "skipped", error: { code: "tenant_provisioning", message: `still provisioning; run "tenant-gateway tenant create ${slug}" or "sync"` } };
    }
    const report = await provisioner.apply(cp, tenant, { prune });
    return { slug, result: "applied", streams: report.streams };
  } catch (err) {
    const report = err instanceof CodedError ? (err.details?.report as StreamApplyReport | undefined) : undefined;
    return { slug, result: "failed", error: { code: err instanceof CodedError ? err.code : "internal_error", message: errorMessage(err) }, ...(report ? { streams: report.streams } : {}) };
  }
}

function viewLines(views: TenantStreamView[]): string[] {
  if (views.length === 0) return ["no streams"];
  const header = `${"NAME".padEnd(16)} ${"MESSAGES".padStart(10)} ${"BYTES".padStart(12)} ${"CONSUMERS".padStart(9)}  ${"STORAGE".padEnd(7)} ${"MAX_AGE".padEnd(8)} ${"MAX_BYTES".padEnd(12)} SUBJECTS`;
  return [
    header,
    ...views.map(
      (v) =>
        `${(v.managed ? v.name : `${v.name}*`).padEnd(16)} ${String(v.messages).padStart(10)} ${String(v.bytes).padStart(12)} ${String(v.consumers).padStart(9)}  ${v.limits.storage.padEnd(7)} ${v.limits.max_age.padEnd(8)} ${formatBytes(v.limits.max_bytes).padEnd(12)} ${v.subjects.join(", ")}`,
    ),
    ...(views.some((v) => !v.managed) ? ["* in no template"] : []),
  ];
}

const PLATFORM_TEMPLATES_HELP = `platform stream templates directory (env ${PLATFORM_TEMPLATES_DIR_ENV}; default <data-dir>/streams/platform/ when it exists, else the built-in ones)`;

async function applyPlatform(opts: NatsOptions & { dataDir: string; platformTemplates?: string }): Promise<{ json: unknown; text: string[]; exitCode?: number }> {
  const { dir } = await resolvePlatformTemplatesDir(opts.dataDir, opts.platformTemplates);
  // A broken template is refused before anything touches NATS.
  await loadPlatformStreamTemplates(dir);
  return withControlPlane(opts, async (cp) => {
    try {
      const report = await new PlatformStreamProvisioner({ templatesDir: dir }).apply(cp);
      return { json: { platform: true, ...report }, text: [`platform templates ${dir}`, ...report.streams.map(resultText)] };
    } catch (err) {
      const report = err instanceof CodedError ? (err.details?.report as PlatformStreamReport | undefined) : undefined;
      if (!report) throw err;
      return { json: { platform: true, ...report, error: { code: (err as CodedError).code, message: errorMessage(err) } }, text: [`platform templates ${dir}: failed`, ...report.streams.map(resultText)], exitCode: 1 };
    }
  });
}

export function streamsCommand(): Command {
  const streams = new Command("streams").description("per-tenant JetStream streams, provisioned from the stream templates in each tenant's own account");
  const sub = (name: string): Command => withNatsOptions(withCommonOptions(streams.command(name))).option("--templates <dir>", TEMPLATES_HELP);

  sub("apply")
    .argument("[slug]", "tenant slug")
    .option("--all", "every tenant", false)
    .option("--platform", "the PLATFORM account's platform streams (every tenant's traffic on their subjects)", false)
    .option("--platform-templates <dir>", PLATFORM_TEMPLATES_HELP)
    .option("--prune", "also delete streams no template defines (their messages are lost)", false)
    .description("reconcile streams with the templates: create missing, update drifted, report each change")
    .action(
      action<NatsOptions & TemplatesOption & { all: boolean; prune: boolean; platform: boolean; platformTemplates?: string }>(async (opts, slug) => {
        if (opts.platform) {
          if (slug !== undefined || opts.all || opts.prune) throw new CodedError("invalid_argument", "--platform takes no tenant slug, --all or --prune (platform streams are deleted by hand)");
          return applyPlatform(opts);
        }
        if (opts.all === (slug !== undefined)) throw new CodedError("invalid_argument", "give a tenant slug or --all (not both)");
        // A broken template stops everything up front instead of failing every tenant alike.
        const { dir } = await resolveTemplatesDir(opts.dataDir, opts.templates);
        await loadStreamTemplates(dir);
        const provisioner = new StreamProvisioner({ templatesDir: dir });
        return withControlPlane(opts, async (cp) => {
          const svc = new TenantService(cp, provisioner);
          const slugs = slug === undefined ? (await svc.list()).map((r) => r.slug) : [slug];
          const tenants: TenantApplyResult[] = [];
          for (const s of slugs) tenants.push(await applyOne(cp, svc, provisioner, s, opts.prune));
          const failed = tenants.filter((t) => t.result === "failed").length;
          const applied = tenants.filter((t) => t.result === "applied").length;
          return {
            json: { templates_dir: dir, prune: opts.prune, tenants },
            text: [`templates ${dir}`, ...tenants.flatMap(tenantText), `${tenants.length} tenant(s): ${applied} applied, ${failed} failed, ${tenants.length - applied - failed} skipped`],
            ...(failed > 0 ? { exitCode: 1 } : {}),
          };
        });
      }),
    );

  sub("list")
    .argument("[slug]", "tenant slug")
    .option("--platform", "the PLATFORM account's platform streams instead", false)
    .option("--platform-templates <dir>", PLATFORM_TEMPLATES_HELP)
    .description("a tenant's streams (subjects in the edge view), or the platform streams: messages, bytes, consumers, limits")
    .action(
      action<NatsOptions & TemplatesOption & { platform: boolean; platformTemplates?: string }>(async (opts, slug) =>
        withControlPlane(opts, async (cp) => {
          if (opts.platform === (slug !== undefined)) throw new CodedError("invalid_argument", "give a tenant slug or --platform (not both)");
          if (opts.platform) {
            const views = await new PlatformStreamProvisioner(opts.platformTemplates ? { templatesDir: opts.platformTemplates } : {}).describe(cp);
            return { json: { platform: true, streams: views }, text: ["platform streams", ...viewLines(views)] };
          }
          const tenant = await new TenantService(cp).load(slug!);
          const views = await new StreamProvisioner(opts.templates ? { templatesDir: opts.templates } : {}).describe(cp, tenant);
          return { json: { slug, streams: views }, text: [`tenant ${slug}`, ...viewLines(views)] };
        }),
      ),
    );

  withCommonOptions(streams.command("templates"))
    .option("--templates <dir>", TEMPLATES_HELP)
    .option("--plan <plan>", "plan whose limits derive max_bytes", "free")
    .description("check the stream templates and show the streams a tenant on a plan gets (no NATS needed)")
    .action(
      action<TemplatesOption & { plan: string }>(async (opts) => {
        const { dir, source } = await resolveTemplatesDir(opts.dataDir, opts.templates);
        const templates = await loadStreamTemplates(dir);
        const maxBytes = fitTemplatesToPlan(templates, opts.plan, getPlan(await loadPlans(opts.dataDir), opts.plan));
        const rows = templates.map((t) => ({
          name: t.name,
          file: t.file,
          subjects: t.subjects,
          storage: t.storage,
          retention: t.retention,
          max_age: formatDuration(t.maxAgeSeconds),
          max_bytes: maxBytes.get(t.name)!,
          max_bytes_source: t.maxBytes === undefined ? "plan share" : "template",
          max_msgs: t.maxMsgs,
          max_msg_size: t.maxMsgSize,
          discard: t.discard,
          duplicate_window: formatDuration(t.duplicateWindowSeconds),
          replicas: t.replicas,
        }));
        return {
          json: { templates_dir: dir, source, plan: opts.plan, templates: rows },
          text: [
            `templates ${dir} (${source}), plan ${opts.plan}`,
            ...rows.map((r) => `  ${r.name.padEnd(16)} ${r.storage.padEnd(7)} ${r.retention.padEnd(10)} max_age ${r.max_age.padEnd(6)} max_bytes ${formatBytes(r.max_bytes)} (${r.max_bytes_source})  ${r.subjects.join(", ")}`),
          ],
        };
      }),
    );

  return streams;
}

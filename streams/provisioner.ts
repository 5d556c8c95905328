/**
 * A tenant's JetStream streams, reconciled with the templates in its own NATS account: stream
 * names as in the templates (each tenant has its own account), subjects in the tenant's namespace
 * (`events.>` → `acme-corp.events.>`), limits within the tenant's plan. `apply` is idempotent and
 * deletes nothing unless asked to prune; `remove` deletes every stream of the account (tenant
 * deletion); `describe` shows streams in the edge view.
 */
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { ControlPlane } from "../accounts/control-plane.ts";
import { getPlan } from "../accounts/plans.ts";
import type { LoadedTenant, StreamResize, TenantStreamProvisioner } from "../accounts/tenants.ts";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { tenantSubjectMapper } from "../common/namespaces.ts";
import { PlatformStreamProvisioner, type PlatformStreamReport } from "./platform-streams.ts";
import { listStreams, reconcileStreams, reservation, shrinks, streamError, view, type StreamResult, type TenantStreamView } from "./reconcile.ts";
import { tenantStreamSpecs, type TenantStreamSpec } from "./stream-specs.ts";
import { loadStreamTemplates, resolveTemplatesDir } from "./templates.ts";
import { formatBytes } from "./units.ts";

const STREAMS_CONNECTION_NAME = "tenant-gateway-streams";

export interface StreamApplyReport {
  tenant: string;
  plan: string;
  templates_dir: string;
  streams: StreamResult[];
}

export class StreamProvisioner implements TenantStreamProvisioner {
  private readonly templatesDir: string | undefined;
  private readonly platform = new PlatformStreamProvisioner();

  applyPlatform(cp: ControlPlane): Promise<PlatformStreamReport> {
    return this.platform.apply(cp);
  }

  /** `templatesDir` overrides the env and data-dir choice (see resolveTemplatesDir). */
  constructor(opts: { templatesDir?: string } = {}) {
    this.templatesDir = opts.templatesDir;
  }

  /** The streams the tenant must have; refuses broken templates and templates beyond the plan before touching NATS. */
  async specs(cp: ControlPlane, tenant: LoadedTenant): Promise<{ dir: string; specs: TenantStreamSpec[] }> {
    const { dir } = await resolveTemplatesDir(cp.layout.dir, this.templatesDir);
    const templates = await loadStreamTemplates(dir);
    const plan = getPlan(await cp.plans(), tenant.record.plan);
    return { dir, specs: tenantStreamSpecs(templates, tenant.record.plan, plan, tenantSubjectMapper(tenant.record.slug)) };
  }

  /**
   * Creates missing streams, updates drifted ones, and with `prune` deletes streams no template
   * defines. Every stream is attempted; when any failed, throws `streams_apply_failed` carrying
   * the whole report. Storage is released before it is taken: deletions first, then updates in
   * order of growing reservation, then creations, so a plan change fits whatever its direction.
   * `shrinkOnly`: only the streams whose max_bytes drops (a plan change, before the account's).
   */
  async apply(cp: ControlPlane, tenant: LoadedTenant, opts: { prune?: boolean; shrinkOnly?: boolean } = {}): Promise<StreamApplyReport> {
    const { dir, specs } = await this.specs(cp, tenant);
    const slug = tenant.record.slug;
    const mapper = tenantSubjectMapper(slug);
    const { results, hint } = await this.withJetStream(cp, tenant, (jsm) => reconcileStreams(jsm, specs, mapper, opts));

    const report: StreamApplyReport = { tenant: slug, plan: tenant.record.plan, templates_dir: dir, streams: results };
    const failed = results.filter((r): r is Extract<StreamResult, { action: "failed" }> => r.action === "failed");
    if (failed.length > 0) {
      const message = `streams of tenant ${slug}: ${failed.map((f) => `${f.stream}: ${f.error.message}`).join("; ")}${hint ? `; ${hint}` : ""}`;
      throw new CodedError("streams_apply_failed", message, { details: { report } });
    }
    return report;
  }

  /**
   * Whether the tenant's streams can move to the plan its record names (before the account does):
   * refuses with `streams_exceed_plan` when a stream holds more than its new max_bytes (shrinking
   * it would drop its oldest messages) or when the streams no template defines leave the managed
   * ones too little of the plan's storage. Changes nothing.
   */
  async checkResize(cp: ControlPlane, tenant: LoadedTenant): Promise<StreamResize> {
    const { specs } = await this.specs(cp, tenant);
    const { record } = tenant;
    const plan = getPlan(await cp.plans(), record.plan);
    const existing = await this.withJetStream(cp, tenant, listStreams);
    const kindOf = (storage: string | undefined): "disk" | "memory" => (storage === "memory" ? "memory" : "disk");
    const reserved = { disk: 0, memory: 0 };
    const after = { disk: 0, memory: 0 };
    const problems: string[] = [];
    const unmanaged: string[] = [];
    let shrinking = false;
    for (const si of existing) {
      const kind = kindOf(si.config.storage);
      reserved[kind] += reservation(si.config);
      const spec = specs.find((s) => s.config.name === si.config.name);
      if (!spec) {
        after[kind] += reservation(si.config);
        if (reservation(si.config) > 0) unmanaged.push(`${si.config.name} (${formatBytes(reservation(si.config))})`);
        continue;
      }
      after[kind] += reservation(spec.config);
      if (!shrinks(si.config, spec.config)) continue;
      shrinking = true;
      if (si.state.bytes > spec.config.max_bytes) problems.push(`stream ${si.config.name} holds ${formatBytes(si.state.bytes)}, plan "${record.plan}" gives it ${formatBytes(spec.config.max_bytes)}`);
    }
    for (const spec of specs.filter((s) => !existing.some((si) => si.config.name === s.config.name))) after[kindOf(spec.config.storage)] += reservation(spec.config);
    for (const [kind, allowed] of [["disk", plan.jetstream.disk], ["memory", plan.jetstream.memory]] as const) {
      if (allowed >= 0 && after[kind] > allowed) {
        problems.push(`its streams would reserve ${formatBytes(after[kind])} of JetStream ${kind}, plan "${record.plan}" allows ${formatBytes(allowed)}${unmanaged.length > 0 ? ` (streams no template defines: ${unmanaged.join(", ")})` : ""}`);
      }
    }
    if (problems.length > 0) {
      throw new CodedError("streams_exceed_plan", `tenant ${record.slug} cannot move to plan "${record.plan}": ${problems.join("; ")}; purge or delete what it no longer needs, or choose a larger plan`, {
        details: { tenant: record.slug, plan: record.plan },
      });
    }
    return { shrinks: shrinking, reserved };
  }

  /**
   * Deletes every stream in the tenant's account (the tenant is being deleted). Deletion has just
   * revoked every user issued up to the current second, and JWTs carry whole seconds, so the
   * control user doing this must be minted in a later second.
   */
  async remove(cp: ControlPlane, tenant: LoadedTenant): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 1001 - (Date.now() % 1000)));
    await this.withJetStream(cp, tenant, async (jsm) => {
      const failures: string[] = [];
      for (const si of await listStreams(jsm)) {
        await jsm.streams.delete(si.config.name).catch((err: unknown) => failures.push(`${si.config.name}: ${streamError(err).message}`));
      }
      if (failures.length > 0) throw new CodedError("streams_remove_failed", `could not delete streams of tenant ${tenant.record.slug}: ${failures.join("; ")}`);
    });
  }

  /** Every stream in the tenant's account, sorted by name, subjects in the edge view. */
  async describe(cp: ControlPlane, tenant: LoadedTenant): Promise<TenantStreamView[]> {
    const { specs } = await this.specs(cp, tenant).catch(() => ({ specs: [] as TenantStreamSpec[] }));
    const managed = new Set(specs.map((s) => s.config.name));
    const mapper = tenantSubjectMapper(tenant.record.slug);
    const infos = await this.withJetStream(cp, tenant, listStreams);
    return infos.map((si) => view(si, managed.has(si.config.name), mapper)).sort((a, b) => a.name.localeCompare(b.name));
  }

  private async withJetStream<T>(cp: ControlPlane, tenant: LoadedTenant, run: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
    const nc = await cp.accountConnection(tenant.record.account_public_key, tenant.signingKey, STREAMS_CONNECTION_NAME);
    try {
      let jsm: JetStreamManager;
      try {
        jsm = await jetStreamOnceEnabled(nc);
      } catch (err) {
        throw new CodedError("jetstream_unavailable", `JetStream is not available in the account of tenant ${tenant.record.slug} (plan ${tenant.record.plan}): ${errorMessage(err)}`, { cause: err });
      }
      return await run(jsm);
    } finally {
      await nc.close();
    }
  }
}

/**
 * In a cluster the account's claims reach the server the control connection landed on before
 * that server's JetStream has enabled the account (seen on nats-server 2.15: "JetStream not
 * enabled for account" right after a tenant was created). That one answer is asked again, every
 * JETSTREAM_ENABLE_RETRY_MS up to JETSTREAM_ENABLE_WAIT_MS; any other error, or the same one
 * after the wait, is the caller's.
 */
const JETSTREAM_ENABLE_WAIT_MS = 5000;
const JETSTREAM_ENABLE_RETRY_MS = 200;

async function jetStreamOnceEnabled(nc: Parameters<typeof jetstreamManager>[0]): Promise<JetStreamManager> {
  const deadline = Date.now() + JETSTREAM_ENABLE_WAIT_MS;
  for (;;) {
    try {
      return await jetstreamManager(nc);
    } catch (err) {
      if (!/not enabled for account/i.test(errorMessage(err)) || Date.now() + JETSTREAM_ENABLE_RETRY_MS > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, JETSTREAM_ENABLE_RETRY_MS));
    }
  }
}

/** The provisioner `tenant create`, `sync` and `tenant delete` use: templates from env, data dir, or the built-in ones. */
export const tenantStreamProvisioner = new StreamProvisioner();

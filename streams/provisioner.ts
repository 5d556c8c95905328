/**
 * A tenant's JetStream streams, reconciled with the templates in its own NATS account: stream
 * names as in the templates (each tenant has its own account), subjects in the tenant's namespace
 * (`events.>` → `acme-corp.events.>`), limits within the tenant's plan. `apply` is idempotent and
 * deletes nothing unless asked to prune; `remove` deletes every stream of the account (tenant
 * deletion); `describe` shows streams in the edge view.
 */
import { JetStreamApiError, jetstreamManager, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import type { ControlPlane } from "../accounts/control-plane.ts";
import { getPlan } from "../accounts/plans.ts";
import type { LoadedTenant, StreamResize, TenantStreamProvisioner } from "../accounts/tenants.ts";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { tenantSubjectMapper, type SubjectMapper } from "../common/namespaces.ts";
import { edgeSubjects, IMMUTABLE_FIELDS, streamConfigDrift, tenantStreamSpecs, type FieldChange, type TenantStreamSpec } from "./stream-specs.ts";
import { loadStreamTemplates, resolveTemplatesDir } from "./templates.ts";
import { formatBytes, formatNanos } from "./units.ts";

const STREAMS_CONNECTION_NAME = "tenant-gateway-streams";

export interface StreamError {
  code: string;
  message: string;
}

/** What `apply` did to one stream. `unmanaged`: in the account but in no template, kept (no prune). */
export type StreamResult =
  | { stream: string; action: "created"; subjects: string[]; max_bytes: number }
  | { stream: string; action: "updated"; changes: FieldChange[] }
  | { stream: string; action: "unchanged" }
  | { stream: string; action: "pruned"; messages: number; bytes: number }
  | { stream: string; action: "unmanaged"; subjects: string[] }
  | { stream: string; action: "failed"; error: StreamError; changes?: FieldChange[] };

export interface StreamApplyReport {
  tenant: string;
  plan: string;
  templates_dir: string;
  streams: StreamResult[];
}

/** A stream as `tenant show` and `streams list` print it. */
export interface TenantStreamView {
  name: string;
  /** Whether a template defines it. */
  managed: boolean;
  /** Edge view. */
  subjects: string[];
  messages: number;
  bytes: number;
  consumers: number;
  limits: { storage: string; retention: string; max_age: string; max_bytes: number; max_msgs: number; max_msg_size: number; discard: string; replicas: number };
  created: string;
}

/** nats-server's err_codes for "the account's JetStream storage (disk, memory) cannot take this". */
const RESOURCES_EXCEEDED = new Set([10047, 10028]);

function streamError(err: unknown): StreamError {
  if (err instanceof CodedError) return { code: err.code, message: err.message };
  if (err instanceof JetStreamApiError) {
    const code = RESOURCES_EXCEEDED.has(err.code) ? "jetstream_resources_exceeded" : "jetstream_refused";
    return { code, message: `nats-server refused: ${err.apiError().description} (err_code ${err.code})` };
  }
  return { code: "jetstream_failed", message: errorMessage(err) };
}

/**
 * Why storage ran out, when the cause is the known one: nats-server 2.9 checks every stream
 * update (even one that shrinks) against the account's total reservation, so once a plan's limit
 * drops below what the streams reserve, no stream can change until the limit is raised again.
 */
async function reservationHint(jsm: JetStreamManager, streams: StreamInfo[]): Promise<string> {
  const limits = (await jsm.getAccountInfo()).limits;
  const parts: string[] = [];
  for (const [storage, kind, allowed] of [["file", "disk", limits.max_storage], ["memory", "memory", limits.max_memory]] as const) {
    const reserved = streams.filter((si) => si.config.storage === storage).reduce((sum, si) => sum + reservation(si.config), 0);
    if (allowed >= 0 && reserved > allowed) {
      parts.push(`the account's streams reserve ${formatBytes(reserved)} of JetStream ${kind} but its limit is ${formatBytes(allowed)}; nats-server refuses every stream change until they fit: "tenant-gateway sync" (or "tenant set-plan") resizes them in the safe order`);
    }
  }
  return parts.join("; ");
}

/** Does the new max_bytes cap a stream more tightly than the old one (-1: unlimited)? */
function shrinks(before: { max_bytes?: number }, after: { max_bytes: number }): boolean {
  const old = before.max_bytes ?? -1;
  return after.max_bytes >= 0 && (old < 0 || after.max_bytes < old);
}

/** Bytes a stream reserves against the account's storage (nats-server counts max_bytes × replicas). */
function reservation(cfg: { max_bytes?: number; num_replicas?: number }): number {
  return (cfg.max_bytes ?? -1) > 0 ? cfg.max_bytes! * (cfg.num_replicas || 1) : 0;
}

async function listStreams(jsm: JetStreamManager): Promise<StreamInfo[]> {
  const infos: StreamInfo[] = [];
  for await (const si of jsm.streams.list()) infos.push(si);
  return infos;
}

function view(si: StreamInfo, managed: boolean, mapper: SubjectMapper): TenantStreamView {
  const c = si.config;
  return {
    name: c.name,
    managed,
    subjects: edgeSubjects(c.subjects, mapper),
    messages: si.state.messages,
    bytes: si.state.bytes,
    consumers: si.state.consumer_count,
    limits: { storage: c.storage, retention: c.retention, max_age: formatNanos(c.max_age ?? 0), max_bytes: c.max_bytes, max_msgs: c.max_msgs, max_msg_size: c.max_msg_size ?? -1, discard: c.discard, replicas: c.num_replicas },
    created: si.created,
  };
}

export class StreamProvisioner implements TenantStreamProvisioner {
  private readonly templatesDir: string | undefined;

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
    const { results, hint } = await this.withJetStream(cp, tenant, async (jsm) => {
      const existing = new Map((await listStreams(jsm)).map((si) => [si.config.name, si]));
      const wanted = new Set(specs.map((s) => s.config.name));
      const results = new Map<string, StreamResult>();
      const attempt = async (stream: string, run: () => Promise<StreamResult>, changes?: FieldChange[]): Promise<void> => {
        try {
          results.set(stream, await run());
        } catch (err) {
          results.set(stream, { stream, action: "failed", error: streamError(err), ...(changes ? { changes } : {}) });
        }
      };

      for (const si of existing.values()) {
        const stream = si.config.name;
        if (wanted.has(stream)) continue;
        if (!opts.prune || opts.shrinkOnly) {
          results.set(stream, { stream, action: "unmanaged", subjects: edgeSubjects(si.config.subjects, mapper) });
          continue;
        }
        await attempt(stream, async () => {
          await jsm.streams.delete(stream);
          return { stream, action: "pruned", messages: si.state.messages, bytes: si.state.bytes };
        });
      }

      const present = specs
        .filter((s) => existing.has(s.config.name))
        .map((spec) => ({ spec, before: existing.get(spec.config.name)!.config }))
        .filter(({ spec, before }) => !opts.shrinkOnly || shrinks(before, spec.config));
      present.sort((a, b) => reservation(a.spec.config) - reservation(a.before) - (reservation(b.spec.config) - reservation(b.before)));
      for (const { spec, before } of present) {
        const stream = spec.config.name;
        const changes = streamConfigDrift(spec.config, before, mapper);
        if (changes.length === 0) {
          results.set(stream, { stream, action: "unchanged" });
          continue;
        }
        const immutable = changes.filter((c) => IMMUTABLE_FIELDS.has(c.field));
        if (immutable.length > 0) {
          const what = immutable.map((c) => `${c.field} ${String(c.before)} → ${String(c.after)}`).join(", ");
          const message = `stream ${stream} differs from template ${spec.template.file} in ${what}, which nats-server cannot change on an existing stream; change the template back, or delete the stream (its messages are lost) and apply again`;
          results.set(stream, { stream, action: "failed", error: { code: "stream_drift_not_updatable", message }, changes });
          continue;
        }
        const { name: _name, storage: _storage, retention: _retention, ...update } = spec.config;
        await attempt(
          stream,
          async () => {
            await jsm.streams.update(stream, update);
            return { stream, action: "updated", changes };
          },
          changes,
        );
      }

      for (const spec of specs.filter((s) => !existing.has(s.config.name) && !opts.shrinkOnly)) {
        const stream = spec.config.name;
        await attempt(stream, async () => {
          await jsm.streams.add({ ...spec.config });
          return { stream, action: "created", subjects: spec.template.subjects, max_bytes: spec.config.max_bytes };
        });
      }

      // Report in template order, then the streams no template defines.
      const ordered = [...specs.flatMap((s) => results.get(s.config.name) ?? []), ...[...results.values()].filter((r) => !wanted.has(r.stream))];
      const exceeded = ordered.some((r) => r.action === "failed" && r.error.code === "jetstream_resources_exceeded");
      return { results: ordered, hint: exceeded ? await reservationHint(jsm, await listStreams(jsm)) : "" };
    });

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
        jsm = await jetstreamManager(nc);
      } catch (err) {
        throw new CodedError("jetstream_unavailable", `JetStream is not available in the account of tenant ${tenant.record.slug} (plan ${tenant.record.plan}): ${errorMessage(err)}`, { cause: err });
      }
      return await run(jsm);
    } finally {
      await nc.close();
    }
  }
}

/** The provisioner `tenant create`, `sync` and `tenant delete` use: templates from env, data dir, or the built-in ones. */
export const tenantStreamProvisioner = new StreamProvisioner();

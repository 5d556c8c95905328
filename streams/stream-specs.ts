/**
 * What a tenant's streams must look like: templates + the tenant's plan + its subject prefix →
 * the exact nats-server stream configurations, and the drift between one of those and a stream
 * as it is. Pure; the provisioner does the I/O.
 *
 * max_bytes policy. A template may set max_bytes; one that leaves it out gets an even share of
 * what the plan's storage of its kind (disk for file, memory for memory) leaves after the
 * templates that set it: free plan, 1 GiB disk, three templates → 357913941 bytes each. Every
 * stream of a plan with bounded storage thus has a cap, and the caps add up to at most the plan:
 * a full stream discards its oldest messages (or refuses new ones with discard "new") instead of
 * the whole account running out of storage and every stream refusing writes; nats-server also
 * reserves each stream's max_bytes against the account, so the last stream always fits. Replicas
 * count: a stream reserves max_bytes × replicas. On a plan with unlimited storage (-1) streams
 * without max_bytes stay unlimited. A plan change is picked up by the next apply.
 */
import type { StreamConfig } from "@nats-io/jetstream";
import type { SubjectMapper } from "../common/namespaces.ts";
import type { Plan } from "../accounts/plans.ts";
import { CodedError } from "../common/coded-error.ts";
import type { DiscardKind, RetentionKind, StorageKind, StreamTemplate } from "./templates.ts";
import { formatBytes, formatNanos, NANOS_PER_SECOND } from "./units.ts";

/** The stream fields templates control, in nats-server's terms. */
export interface ManagedStreamConfig {
  name: string;
  subjects: string[];
  storage: StorageKind;
  retention: RetentionKind;
  max_age: number;
  max_bytes: number;
  max_msgs: number;
  max_msg_size: number;
  discard: DiscardKind;
  duplicate_window: number;
  num_replicas: number;
  /** A bucket's history; -1 for streams. */
  max_msgs_per_subject: number;
  allow_rollup_hdrs: boolean;
  allow_direct: boolean;
  deny_delete: boolean;
  /** Platform streams: nobody waits for their acks (publishers get their tenant stream's), and nats-server requires it of `*.…` subjects, which could be `$JS.…` ones. */
  no_ack: boolean;
  description?: string;
}

export interface TenantStreamSpec {
  template: StreamTemplate;
  config: ManagedStreamConfig;
}

/** The smallest derived share worth creating a stream for. */
const MIN_DERIVED_MAX_BYTES = 1024 * 1024;

function exceeds(template: StreamTemplate | undefined, planName: string, message: string, details: Record<string, unknown>): CodedError {
  return new CodedError("stream_template_exceeds_plan", message, { details: { plan: planName, ...(template ? { template: template.name, file: template.file } : {}), ...details } });
}

const names = (ts: StreamTemplate[]): string => ts.map((t) => t.name).join(", ");

/** max_bytes per template name, derived as the module comment says; throws when the plan cannot hold the templates. */
export function fitTemplatesToPlan(templates: StreamTemplate[], planName: string, plan: Plan): Map<string, number> {
  const js = plan.jetstream;
  if (js.streams >= 0 && templates.length > js.streams) {
    throw exceeds(undefined, planName, `${templates.length} stream templates (${names(templates)}) but plan "${planName}" allows ${js.streams} stream(s)`, { limit: "streams", allowed: js.streams });
  }
  const maxBytes = new Map<string, number>();
  for (const storage of ["file", "memory"] as const) {
    const group = templates.filter((t) => t.storage === storage);
    if (group.length === 0) continue;
    const kind = storage === "file" ? "disk" : "memory";
    const allowed = storage === "file" ? js.disk : js.memory;
    const where = (t: StreamTemplate): string => `stream template ${t.name} (${t.file})`;
    if (allowed === 0) {
      throw exceeds(group[0], planName, `${where(group[0]!)} asks for ${storage} storage, but plan "${planName}" has no JetStream ${kind} (limit 0)`, { limit: kind, allowed });
    }
    const explicit = group.filter((t) => t.maxBytes !== undefined);
    for (const t of explicit) {
      if (allowed < 0) continue;
      if (t.maxBytes === -1) {
        throw exceeds(t, planName, `${where(t)} asks for unlimited max_bytes, but plan "${planName}" limits JetStream ${kind} to ${formatBytes(allowed)} (${allowed} bytes); set max_bytes or leave it out for an even share`, { limit: kind, allowed });
      }
      if (t.maxBytes! * t.replicas > allowed) {
        const asked = t.replicas > 1 ? `max_bytes ${t.maxBytes} × ${t.replicas} replicas` : `max_bytes ${formatBytes(t.maxBytes!)} (${t.maxBytes} bytes)`;
        throw exceeds(t, planName, `${where(t)} asks for ${asked}, more than plan "${planName}" allows for JetStream ${kind}: ${formatBytes(allowed)} (${allowed} bytes)`, { limit: kind, allowed, requested: t.maxBytes! * t.replicas });
      }
      maxBytes.set(t.name, t.maxBytes!);
    }
    const derived = group.filter((t) => t.maxBytes === undefined);
    if (allowed < 0) {
      for (const t of derived) maxBytes.set(t.name, -1);
      continue;
    }
    const reserved = explicit.reduce((sum, t) => sum + t.maxBytes! * t.replicas, 0);
    if (reserved > allowed) {
      throw exceeds(explicit[0], planName, `stream templates ${names(explicit)} together ask for ${formatBytes(reserved)} (${reserved} bytes) of JetStream ${kind}, more than plan "${planName}" allows: ${formatBytes(allowed)} (${allowed} bytes)`, { limit: kind, allowed, requested: reserved });
    }
    if (derived.length === 0) continue;
    const share = Math.floor((allowed - reserved) / derived.reduce((sum, t) => sum + t.replicas, 0));
    if (share < MIN_DERIVED_MAX_BYTES) {
      throw exceeds(derived[0], planName, `stream templates ${names(derived)} leave max_bytes to the plan, but templates ${names(explicit)} take ${formatBytes(reserved)} of plan "${planName}"'s ${formatBytes(allowed)} JetStream ${kind}, leaving less than ${formatBytes(MIN_DERIVED_MAX_BYTES)} each`, { limit: kind, allowed, requested: reserved });
    }
    for (const t of derived) maxBytes.set(t.name, share);
  }
  return maxBytes;
}

/** The stream configurations a tenant must have: stream names as in the templates, subjects in the tenant's namespace. */
export function tenantStreamSpecs(templates: StreamTemplate[], planName: string, plan: Plan, mapper: SubjectMapper): TenantStreamSpec[] {
  const maxBytes = fitTemplatesToPlan(templates, planName, plan);
  return templates.map((template) => ({
    template,
    config: {
      name: template.stream,
      subjects: template.subjects.map((s) => mapper.toTenant(s)),
      storage: template.storage,
      retention: template.retention,
      max_age: template.maxAgeSeconds * NANOS_PER_SECOND,
      max_bytes: maxBytes.get(template.name)!,
      max_msgs: template.maxMsgs,
      max_msg_size: template.maxMsgSize,
      discard: template.discard,
      duplicate_window: template.duplicateWindowSeconds * NANOS_PER_SECOND,
      num_replicas: template.replicas,
      max_msgs_per_subject: template.maxMsgsPerSubject,
      allow_rollup_hdrs: template.allowRollup,
      allow_direct: template.allowDirect,
      deny_delete: template.denyDelete,
      no_ack: false,
      ...(template.description === undefined ? {} : { description: template.description }),
    },
  }));
}

/** A field that differs, named and shown as in templates (edge-view subjects, "7d" durations). */
export interface FieldChange {
  field: string;
  before: unknown;
  after: unknown;
}

/** Fields nats-server 2.9 refuses to change on an existing stream. */
export const IMMUTABLE_FIELDS: ReadonlySet<string> = new Set(["storage", "retention"]);

/** Stream subjects in the edge view; a subject outside the tenant's namespace is shown as it is, marked. */
export function edgeSubjects(subjects: string[] | undefined, mapper: SubjectMapper): string[] {
  return (subjects ?? []).map((s) => mapper.toEdge(s) ?? `(not owned) ${s}`);
}

const sameSet = (a: string[], b: string[]): boolean => a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");

/** How `actual` differs from `desired` in the fields the template controls (description only when the template sets one). */
export function streamConfigDrift(desired: ManagedStreamConfig, actual: Partial<StreamConfig>, mapper: SubjectMapper): FieldChange[] {
  const changes: FieldChange[] = [];
  if (!sameSet(actual.subjects ?? [], desired.subjects)) changes.push({ field: "subjects", before: edgeSubjects(actual.subjects, mapper), after: edgeSubjects(desired.subjects, mapper) });
  const scalar = (field: string, before: unknown, after: unknown, show: (v: never) => unknown = (v) => v): void => {
    if (before !== after) changes.push({ field, before: show(before as never), after: show(after as never) });
  };
  scalar("storage", actual.storage, desired.storage);
  scalar("retention", actual.retention, desired.retention);
  scalar("max_age", actual.max_age ?? 0, desired.max_age, formatNanos);
  scalar("max_bytes", actual.max_bytes ?? -1, desired.max_bytes);
  scalar("max_msgs", actual.max_msgs ?? -1, desired.max_msgs);
  scalar("max_msg_size", actual.max_msg_size ?? -1, desired.max_msg_size);
  scalar("discard", actual.discard, desired.discard);
  scalar("duplicate_window", actual.duplicate_window ?? 0, desired.duplicate_window, formatNanos);
  scalar("replicas", actual.num_replicas ?? 1, desired.num_replicas);
  scalar("max_msgs_per_subject", actual.max_msgs_per_subject ?? -1, desired.max_msgs_per_subject);
  scalar("allow_rollup_hdrs", actual.allow_rollup_hdrs ?? false, desired.allow_rollup_hdrs);
  scalar("allow_direct", actual.allow_direct ?? false, desired.allow_direct);
  scalar("deny_delete", actual.deny_delete ?? false, desired.deny_delete);
  scalar("no_ack", actual.no_ack ?? false, desired.no_ack);
  if (desired.description !== undefined) scalar("description", actual.description ?? "", desired.description);
  return changes;
}

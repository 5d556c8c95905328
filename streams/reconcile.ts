/**
 * Streams reconciled with their specs inside one account's JetStream — the part a tenant's
 * streams and the PLATFORM account's platform streams share: create what is missing, update what
 * drifted (storage released before it is taken), report what no spec defines, delete it only when
 * asked to prune. Every stream is attempted; the report says what happened to each.
 */
import { JetStreamApiError, type JetStreamManager, type StreamInfo } from "@nats-io/jetstream";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { SubjectMapper } from "../common/namespaces.ts";
import { edgeSubjects, IMMUTABLE_FIELDS, streamConfigDrift, type FieldChange, type TenantStreamSpec } from "./stream-specs.ts";
import { formatBytes, formatNanos } from "./units.ts";

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

export function streamError(err: unknown): StreamError {
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
export function shrinks(before: { max_bytes?: number }, after: { max_bytes: number }): boolean {
  const old = before.max_bytes ?? -1;
  return after.max_bytes >= 0 && (old < 0 || after.max_bytes < old);
}

/** Bytes a stream reserves against the account's storage (nats-server counts max_bytes × replicas). */
export function reservation(cfg: { max_bytes?: number; num_replicas?: number }): number {
  return (cfg.max_bytes ?? -1) > 0 ? cfg.max_bytes! * (cfg.num_replicas || 1) : 0;
}

export async function listStreams(jsm: JetStreamManager): Promise<StreamInfo[]> {
  const infos: StreamInfo[] = [];
  for await (const si of jsm.streams.list()) infos.push(si);
  return infos;
}

export function view(si: StreamInfo, managed: boolean, mapper: SubjectMapper): TenantStreamView {
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

/**
 * Creates missing streams, updates drifted ones, and with `prune` deletes streams no spec
 * defines. Storage is released before it is taken: deletions first, then updates in order of
 * growing reservation, then creations, so a change of limits fits whatever its direction.
 * `shrinkOnly`: only the streams whose max_bytes drops. `mapper` shows subjects in the view the
 * report is for.
 */
export async function reconcileStreams(
  jsm: JetStreamManager,
  specs: TenantStreamSpec[],
  mapper: SubjectMapper,
  opts: { prune?: boolean; shrinkOnly?: boolean },
): Promise<{ results: StreamResult[]; hint: string }> {
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
}

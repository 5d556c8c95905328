/**
 * Platform streams: streams in the PLATFORM account, in the platform's prefixed view, that capture
 * every tenant's traffic on some subjects — the seed system's `events` stream on `*.events.>`,
 * which the platform's own services (a database writer, a rules engine) consume with one consumer
 * for all tenants instead of one per tenant. The PLATFORM account imports each tenant's namespace,
 * so a stream there on `*.events.>` takes `acme-corp.events.x` from acme-corp, and a tenant created
 * later is captured from its first message, with no edge client doing anything.
 *
 * Templates are the tenant templates' format with subjects in the platform view: the first token
 * is `*` (every tenant), the rest an edge-view pattern (`*.events.>`). A template also names the
 * platform identities that may read the stream (`readers`, default `["admin"]`). Limits are the
 * template's own (plans bound tenants, not the PLATFORM account); `discard` defaults to `new`, so
 * a full stream refuses new messages rather than evicting other tenants' stored ones. Platform
 * streams do not ack (publishers get their ack from their tenant's own stream) and do not
 * deduplicate (message ids are each tenant's own).
 *
 * Where templates come from: `--platform-templates`, else `TENANT_GATEWAY_PLATFORM_STREAM_TEMPLATES`,
 * else `<data-dir>/streams/platform/` when it exists, else the built-in `streams/platform/`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { ControlPlane } from "../accounts/control-plane.ts";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { SubjectMapper } from "../common/namespaces.ts";
import { readTextFile } from "../common/files.ts";
import { listStreams, reconcileStreams, view, type StreamResult, type TenantStreamView } from "./reconcile.ts";
import type { TenantStreamSpec } from "./stream-specs.ts";
import { parseStreamTemplate, type StreamTemplate } from "./templates.ts";
import { subjectPatternsOverlap } from "./subject-patterns.ts";
import { NANOS_PER_SECOND } from "./units.ts";

export const BUILTIN_PLATFORM_TEMPLATES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "platform");
export const PLATFORM_TEMPLATES_DIR_ENV = "TENANT_GATEWAY_PLATFORM_STREAM_TEMPLATES";
const PLATFORM_STREAMS_CONNECTION_NAME = "tenant-gateway-platform-streams";
const DEFAULT_READERS = ["admin"];
/** nats-server has no "no deduplication"; its smallest window, 100 ms, is the closest to none. */
const PLATFORM_DUPLICATE_WINDOW_NS = 100_000_000;

export interface PlatformStreamTemplate {
  template: StreamTemplate;
  /** Platform identity names (`admin` for `admin.platform.serviceradar`) that may read the stream. */
  readers: string[];
}

/** Platform subjects are shown as they are: the platform's view is the prefixed one. */
const PLATFORM_VIEW: SubjectMapper = { prefix: "", toTenant: (s) => s, toEdge: (s) => s };

function invalid(file: string, problem: string): CodedError {
  return new CodedError("invalid_stream_template", `platform stream template ${file} is invalid: ${problem}`, { details: { file } });
}

/** Parses one platform template: a stream template whose subjects start with `*.`, plus its readers. */
export function parsePlatformStreamTemplate(text: string, file: string): PlatformStreamTemplate {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalid(file, "not a JSON object");
  const { readers, discard, ...rest } = json as { readers?: unknown; discard?: unknown; kind?: unknown; subjects?: unknown };
  if (rest.kind !== undefined && rest.kind !== "stream") throw invalid(file, "a platform template declares a stream (no kind, or kind \"stream\")");
  if (readers !== undefined && (!Array.isArray(readers) || !readers.every((r) => typeof r === "string" && /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(r)))) {
    throw invalid(file, "readers must be a list of platform identity names (e.g. [\"admin\"])");
  }
  const subjects = Array.isArray(rest.subjects) ? (rest.subjects as unknown[]) : [];
  for (const subject of subjects) {
    if (typeof subject !== "string" || !subject.startsWith("*.")) throw invalid(file, `subject ${JSON.stringify(subject)} must start with "*." (every tenant), e.g. "*.events.>"`);
    // A literal second token keeps the stream to tenants' subjects: the PLATFORM account's own
    // (`_tg.audit.…`, sessions' inboxes, the import prefixes) have the gateway's tokens there.
    const second = subject.split(".")[1] ?? "";
    if (second === "*" || second === ">" || second === "" || /^[_$]/.test(second)) throw invalid(file, `subject "${subject}" must name a literal subject after "*." (e.g. "*.events.>"), not a wildcard or a "_"/"$" namespace`);
  }
  // The rest of the subject is an edge-view pattern: the tenant templates' own checks apply to it.
  const edgeView = { ...rest, subjects: subjects.map((s) => (s as string).slice(2)), discard: discard ?? "new" };
  const parsed = parseStreamTemplate(JSON.stringify(edgeView), file);
  const template: StreamTemplate = { ...parsed, subjects: parsed.subjects.map((s) => `*.${s}`) };
  return { template, readers: (readers as string[] | undefined) ?? DEFAULT_READERS };
}

/** The directory platform templates are read from, and why that one. */
export async function resolvePlatformTemplatesDir(dataDir: string, explicit?: string): Promise<{ dir: string; source: "option" | "env" | "data-dir" | "built-in" }> {
  if (explicit) return { dir: path.resolve(explicit), source: "option" };
  const env = process.env[PLATFORM_TEMPLATES_DIR_ENV];
  if (env) return { dir: path.resolve(env), source: "env" };
  const own = path.join(dataDir, "streams", "platform");
  const isDir = await fs.stat(own).then(
    (st) => st.isDirectory(),
    () => false,
  );
  return isDir ? { dir: own, source: "data-dir" } : { dir: BUILTIN_PLATFORM_TEMPLATES_DIR, source: "built-in" };
}

/** Every `*.json` in `dir` (none is fine: no platform streams), parsed and checked against each other. */
export async function loadPlatformStreamTemplates(dir: string): Promise<PlatformStreamTemplate[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    throw new CodedError("stream_templates_unreadable", `cannot read the platform stream templates directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err });
  }
  const templates: PlatformStreamTemplate[] = [];
  for (const name of names.filter((n) => n.endsWith(".json")).sort()) {
    const file = path.join(dir, name);
    templates.push(parsePlatformStreamTemplate(await readTextFile(file, "platform stream template"), file));
  }
  for (const [i, a] of templates.entries()) {
    for (const b of templates.slice(i + 1)) {
      const clash = a.template.subjects.find((sa) => b.template.subjects.some((sb) => subjectPatternsOverlap(sa, sb)));
      if (clash) throw new CodedError("overlapping_stream_templates", `platform stream templates ${a.template.file} and ${b.template.file} overlap on "${clash}"`, { details: { files: [a.template.file, b.template.file] } });
    }
  }
  return templates;
}

/** The stream configurations the PLATFORM account must have. */
export function platformStreamSpecs(templates: readonly PlatformStreamTemplate[]): TenantStreamSpec[] {
  return templates.map(({ template }) => ({
    template,
    config: {
      name: template.stream,
      subjects: template.subjects,
      storage: template.storage,
      retention: template.retention,
      max_age: template.maxAgeSeconds * NANOS_PER_SECOND,
      max_bytes: template.maxBytes ?? -1,
      max_msgs: template.maxMsgs,
      max_msg_size: template.maxMsgSize,
      discard: template.discard,
      // Message ids are each tenant's own: a shared window would let one tenant's Nats-Msg-Id drop
      // another's message. Each tenant's stream deduplicates; the platform stream does not.
      duplicate_window: PLATFORM_DUPLICATE_WINDOW_NS,
      num_replicas: template.replicas,
      max_msgs_per_subject: template.maxMsgsPerSubject,
      allow_rollup_hdrs: template.allowRollup,
      allow_direct: template.allowDirect,
      deny_delete: template.denyDelete,
      no_ack: true,
      ...(template.description === undefined ? {} : { description: template.description }),
    },
  }));
}

/** Which platform streams each platform identity may read (the gateway and the user JWTs use it). */
export class PlatformStreams {
  private readonly byReader = new Map<string, string[]>();
  readonly names: ReadonlySet<string>;

  constructor(templates: readonly PlatformStreamTemplate[]) {
    this.names = new Set(templates.map((t) => t.template.stream));
    for (const { template, readers } of templates) {
      for (const reader of readers) this.byReader.set(reader, [...(this.byReader.get(reader) ?? []), template.stream]);
    }
  }

  static readonly NONE = new PlatformStreams([]);

  readableBy(identity: string): readonly string[] {
    return this.byReader.get(identity) ?? [];
  }
}

export async function loadPlatformStreams(dataDir: string): Promise<PlatformStreams> {
  const { dir } = await resolvePlatformTemplatesDir(dataDir);
  return new PlatformStreams(await loadPlatformStreamTemplates(dir));
}

export interface PlatformStreamReport {
  templates_dir: string;
  streams: StreamResult[];
}

/** Reconciles the PLATFORM account's platform streams with their templates, and shows them. */
export class PlatformStreamProvisioner {
  private readonly templatesDir: string | undefined;

  constructor(opts: { templatesDir?: string } = {}) {
    this.templatesDir = opts.templatesDir;
  }

  /** Creates and updates; never deletes (a platform stream no template names is the operator's to delete). */
  async apply(cp: ControlPlane): Promise<PlatformStreamReport> {
    const { dir } = await resolvePlatformTemplatesDir(cp.layout.dir, this.templatesDir);
    const specs = platformStreamSpecs(await loadPlatformStreamTemplates(dir));
    // Only platform streams are this provisioner's: the audit stream and the registry are never pruned.
    const own = new Set(specs.map((s) => s.config.name));
    const { results, hint } = await this.withJetStream(cp, (jsm) => reconcileStreams(jsm, specs, PLATFORM_VIEW, { prune: false }));
    const mine = results.filter((r) => own.has(r.stream));
    const failed = mine.filter((r): r is Extract<StreamResult, { action: "failed" }> => r.action === "failed");
    if (failed.length > 0) {
      throw new CodedError("streams_apply_failed", `platform streams: ${failed.map((f) => `${f.stream}: ${f.error.message}`).join("; ")}${hint ? `; ${hint}` : ""}`, { details: { report: { templates_dir: dir, streams: mine } } });
    }
    return { templates_dir: dir, streams: mine };
  }

  /** The platform streams (not the account's internal ones), subjects as they are. */
  async describe(cp: ControlPlane): Promise<TenantStreamView[]> {
    const { dir } = await resolvePlatformTemplatesDir(cp.layout.dir, this.templatesDir);
    const own = new Set(platformStreamSpecs(await loadPlatformStreamTemplates(dir)).map((s) => s.config.name));
    const infos = await this.withJetStream(cp, listStreams);
    return infos.filter((si) => own.has(si.config.name)).map((si) => view(si, true, PLATFORM_VIEW));
  }

  private async withJetStream<T>(cp: ControlPlane, run: (jsm: JetStreamManager) => Promise<T>): Promise<T> {
    const platform = cp.platform;
    const nc = await cp.accountConnection(platform.account, platform.signingKey, PLATFORM_STREAMS_CONNECTION_NAME);
    try {
      let jsm: JetStreamManager;
      try {
        jsm = await jetstreamManager(nc);
      } catch (err) {
        throw new CodedError("jetstream_unavailable", `JetStream is not available in the PLATFORM account: ${errorMessage(err)}`, { cause: err });
      }
      return await run(jsm);
    } finally {
      await nc.close();
    }
  }
}

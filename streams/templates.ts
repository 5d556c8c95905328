/**
 * Stream templates: one JSON file per stream (`<name>.json`), subjects in the edge view, validated
 * by an ajv schema and then read into whole seconds and bytes. A template of kind `kv` or
 * `object` declares a key-value bucket or an object store instead: the stream behind it
 * (`KV_<name>` on `$KV.<name>.>`, `OBJ_<name>` on `$O.<name>.C.>` and `$O.<name>.M.>`) is
 * configured the way the stock clients create one, and the template says what edge clients (and,
 * for buckets, platform sessions) may do with it. Which directory holds them is decided here too:
 * `--templates`, else `TENANT_GATEWAY_STREAM_TEMPLATES`, else `<data-dir>/streams/` when it
 * exists, else the built-in `streams/templates/`.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { CodedError } from "../common/coded-error.ts";
import { KV_PREFIX, OBJECT_PREFIX, storeStreamName, TenantStores, type StoreAccess, type StorePolicy } from "../common/namespaces.ts";
import { readTextFile } from "../common/files.ts";
import { ajv, validateOrThrow } from "../common/schema.ts";
import { edgeSubjectPatternProblem, subjectPatternsOverlap } from "./subject-patterns.ts";
import { parseByteSize, parseDurationSeconds } from "./units.ts";

export type StorageKind = "file" | "memory";
export type RetentionKind = "limits" | "interest" | "workqueue";
export type DiscardKind = "old" | "new";

/** A stream template file as written. */
interface StreamTemplateFile {
  $comment?: string;
  kind?: "stream";
  name: string;
  description?: string;
  subjects: string[];
  storage: StorageKind;
  retention: RetentionKind;
  max_age: string | number;
  max_bytes?: string | number;
  max_msgs: number;
  max_msgs_per_subject: number;
  max_msg_size: string | number;
  discard: DiscardKind;
  duplicate_window?: string | number;
  replicas: number;
}

/** A key-value bucket or object store template file as written. */
interface StoreTemplateFile {
  $comment?: string;
  kind: "kv" | "object";
  name: string;
  description?: string;
  /** Key-value only: values kept per key. */
  history?: number;
  /** How long a value (or object) is kept; 0 = forever. */
  ttl: string | number;
  max_bytes?: string | number;
  /** Key-value only: the largest value. */
  max_value_size?: string | number;
  storage: StorageKind;
  replicas: number;
  edge: StoreAccess;
  platform?: StoreAccess;
}

/** A template read and checked: durations in seconds, sizes in bytes, every default filled in. */
export interface StreamTemplate {
  /** The file it came from, for error messages. */
  file: string;
  /** `stream`, or the key-value bucket or object store the stream is behind. */
  kind: "stream" | "kv" | "object";
  /** The template's name: the stream's, or the bucket's or store's. */
  name: string;
  /** The stream's name: `name` for a stream, `KV_<name>` / `OBJ_<name>` for a bucket or store. */
  stream: string;
  description?: string;
  /** Edge view, e.g. `events.>`; a bucket's or store's own `$KV.` / `$O.` subjects. */
  subjects: string[];
  storage: StorageKind;
  retention: RetentionKind;
  /** 0 = no age limit. */
  maxAgeSeconds: number;
  /** Undefined = an even share of the plan's storage (see tenantStreamSpecs); -1 = unlimited. */
  maxBytes: number | undefined;
  /** -1 = unlimited. */
  maxMsgs: number;
  /** -1 = unlimited. */
  maxMsgSize: number;
  discard: DiscardKind;
  duplicateWindowSeconds: number;
  replicas: number;
  /** Messages kept per subject (a bucket's history); -1 = unlimited. */
  maxMsgsPerSubject: number;
  /** What the stock clients of buckets and stores rely on: rollups, direct get, no deletes of single messages (buckets). */
  allowRollup: boolean;
  allowDirect: boolean;
  denyDelete: boolean;
  /** Buckets and stores: who may write them. */
  store?: StorePolicy;
}

/** nats-server's duplicate window when a stream sets none. */
const SERVER_DEFAULT_DUPLICATE_WINDOW_SECONDS = 120;

const durationSchema = { type: ["integer", "string"], minimum: 0 } as const;
const sizeSchema = { type: ["integer", "string"], minimum: -1 } as const;

const NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$";
const accessSchema = { enum: ["read", "read-write"] } as const;

const templateSchema = {
  type: "object",
  additionalProperties: false,
  required: ["name", "subjects"],
  properties: {
    $comment: { type: "string" },
    kind: { const: "stream" },
    name: { type: "string", pattern: NAME_PATTERN },
    description: { type: "string", maxLength: 1024 },
    subjects: { type: "array", minItems: 1, uniqueItems: true, items: { type: "string" } },
    storage: { enum: ["file", "memory"], default: "file" },
    retention: { enum: ["limits", "interest", "workqueue"], default: "limits" },
    max_age: { ...durationSchema, default: "7d" },
    max_bytes: sizeSchema,
    max_msgs: { type: "integer", minimum: -1, default: -1 },
    max_msgs_per_subject: { type: "integer", minimum: -1, default: -1 },
    max_msg_size: { ...sizeSchema, default: -1 },
    discard: { enum: ["old", "new"], default: "old" },
    duplicate_window: durationSchema,
    replicas: { type: "integer", minimum: 1, maximum: 5, default: 1 },
  },
};

const storeTemplateSchema = {
  type: "object",
  additionalProperties: false,
  required: ["kind", "name", "edge"],
  properties: {
    $comment: { type: "string" },
    kind: { enum: ["kv", "object"] },
    name: { type: "string", pattern: NAME_PATTERN },
    description: { type: "string", maxLength: 1024 },
    history: { type: "integer", minimum: 1, maximum: 64 },
    ttl: { ...durationSchema, default: 0 },
    max_bytes: sizeSchema,
    max_value_size: sizeSchema,
    storage: { enum: ["file", "memory"], default: "file" },
    replicas: { type: "integer", minimum: 1, maximum: 5, default: 1 },
    edge: accessSchema,
    platform: accessSchema,
  },
};

const validateStoreTemplateFile = ajv.compile<StoreTemplateFile>(storeTemplateSchema);
const validateTemplateFile = ajv.compile<StreamTemplateFile>(templateSchema);

export const BUILTIN_TEMPLATES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "templates");
export const TEMPLATES_DIR_ENV = "TENANT_GATEWAY_STREAM_TEMPLATES";

/** Operators' own templates inside a data dir; used instead of the built-in ones when present. */
export function dataDirTemplatesDir(dataDir: string): string {
  return path.join(dataDir, "streams");
}

async function isDirectory(dir: string): Promise<boolean> {
  return fs.stat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** The directory templates are read from, and why that one. */
export async function resolveTemplatesDir(dataDir: string, explicit?: string): Promise<{ dir: string; source: "option" | "env" | "data-dir" | "built-in" }> {
  if (explicit) return { dir: path.resolve(explicit), source: "option" };
  const env = process.env[TEMPLATES_DIR_ENV];
  if (env) return { dir: path.resolve(env), source: "env" };
  const own = dataDirTemplatesDir(dataDir);
  if (await isDirectory(own)) return { dir: own, source: "data-dir" };
  return { dir: BUILTIN_TEMPLATES_DIR, source: "built-in" };
}

function invalid(file: string, problem: string): CodedError {
  return new CodedError("invalid_stream_template", `stream template ${file} is invalid: ${problem}`, { details: { file } });
}

const DURATION_HINT = `a duration (e.g. "7d", "24h", "90m", "30s", or whole seconds)`;
const SIZE_HINT = `a size (bytes, e.g. 1048576 or "512MiB"; -1 for unlimited)`;

function duration(file: string, field: string, value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = parseDurationSeconds(value);
  if (seconds === undefined) throw invalid(file, `${field} ${JSON.stringify(value)} is not ${DURATION_HINT}`);
  return seconds;
}

/** A size limit; 0 is refused because nats-server would read it as "unlimited". */
function sizeLimit(file: string, field: string, value: string | number | undefined): number | undefined {
  if (value === undefined) return undefined;
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw invalid(file, `${field} ${JSON.stringify(value)} is not ${SIZE_HINT}`);
  if (bytes === 0) throw invalid(file, `${field} 0 is ambiguous; use -1 for unlimited or a positive size`);
  return bytes;
}

/** Parses and checks one template file's text; every problem names the file. */
export function parseStreamTemplate(text: string, file: string): StreamTemplate {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `not valid JSON: ${(err as Error).message}`);
  }
  const kind = typeof json === "object" && json !== null ? (json as { kind?: unknown }).kind : undefined;
  const template = kind === "kv" || kind === "object" ? parseStoreTemplate(json, file) : parseStreamOnlyTemplate(json, file);
  const expected = path.basename(file, ".json");
  if (template.name !== expected) throw invalid(file, `name "${template.name}" must match the file name (${expected}.json)`);
  return template;
}

function parseStreamOnlyTemplate(json: unknown, file: string): StreamTemplate {
  const t = validateOrThrow(validateTemplateFile, json, "invalid_stream_template", `stream template ${file}`);
  for (const subject of t.subjects) {
    const problem = edgeSubjectPatternProblem(subject);
    if (problem) throw invalid(file, `subject "${subject}" ${problem}`);
  }
  for (const [i, a] of t.subjects.entries()) {
    const b = t.subjects.slice(i + 1).find((s) => subjectPatternsOverlap(a, s));
    if (b) throw invalid(file, `subjects "${a}" and "${b}" overlap`);
  }
  const maxAgeSeconds = duration(file, "max_age", t.max_age)!;
  const maxBytes = sizeLimit(file, "max_bytes", t.max_bytes);
  const maxMsgSize = sizeLimit(file, "max_msg_size", t.max_msg_size)!;
  if (t.max_msgs === 0) throw invalid(file, "max_msgs 0 is ambiguous; use -1 for unlimited or a positive count");
  if (t.max_msgs_per_subject === 0) throw invalid(file, "max_msgs_per_subject 0 is ambiguous; use -1 for unlimited or a positive count");
  const duplicateWindowSeconds = duration(file, "duplicate_window", t.duplicate_window) ?? defaultDuplicateWindow(maxAgeSeconds);
  if (duplicateWindowSeconds === 0) throw invalid(file, "duplicate_window must be at least 1s");
  if (maxAgeSeconds > 0 && duplicateWindowSeconds > maxAgeSeconds) throw invalid(file, "duplicate_window cannot be longer than max_age");
  return {
    file,
    kind: "stream",
    name: t.name,
    stream: t.name,
    ...(t.description === undefined ? {} : { description: t.description }),
    subjects: t.subjects,
    storage: t.storage,
    retention: t.retention,
    maxAgeSeconds,
    maxBytes,
    maxMsgs: t.max_msgs,
    maxMsgSize,
    discard: t.discard,
    duplicateWindowSeconds,
    replicas: t.replicas,
    maxMsgsPerSubject: t.max_msgs_per_subject,
    allowRollup: false,
    allowDirect: false,
    denyDelete: false,
  };
}

/** nats-server's own default: two minutes, or the max age when that is shorter. */
function defaultDuplicateWindow(maxAgeSeconds: number): number {
  return maxAgeSeconds > 0 ? Math.min(maxAgeSeconds, SERVER_DEFAULT_DUPLICATE_WINDOW_SECONDS) : SERVER_DEFAULT_DUPLICATE_WINDOW_SECONDS;
}

/** The stream behind a bucket or store, configured as the stock clients (nats.go, nats.js) create it. */
function parseStoreTemplate(json: unknown, file: string): StreamTemplate {
  const t = validateOrThrow(validateStoreTemplateFile, json, "invalid_stream_template", `stream template ${file}`);
  const kv = t.kind === "kv";
  if (!kv && (t.history !== undefined || t.max_value_size !== undefined)) throw invalid(file, "history and max_value_size are key-value settings; an object store has neither");
  if (!kv && t.platform !== undefined) throw invalid(file, "platform access is a key-value setting: platform sessions write buckets, not object stores");
  const maxAgeSeconds = duration(file, "ttl", t.ttl)!;
  const store: StorePolicy = { kind: t.kind, name: t.name, edge: t.edge, platform: kv ? (t.platform ?? "read-write") : "read" };
  return {
    file,
    kind: t.kind,
    name: t.name,
    stream: storeStreamName(t.kind, t.name),
    ...(t.description === undefined ? {} : { description: t.description }),
    subjects: kv ? [`${KV_PREFIX}${t.name}.>`] : [`${OBJECT_PREFIX}${t.name}.C.>`, `${OBJECT_PREFIX}${t.name}.M.>`],
    storage: t.storage,
    retention: "limits",
    maxAgeSeconds,
    maxBytes: sizeLimit(file, "max_bytes", t.max_bytes),
    maxMsgs: -1,
    maxMsgSize: kv ? (sizeLimit(file, "max_value_size", t.max_value_size) ?? -1) : -1,
    discard: "new",
    duplicateWindowSeconds: defaultDuplicateWindow(maxAgeSeconds),
    replicas: t.replicas,
    maxMsgsPerSubject: kv ? (t.history ?? 1) : -1,
    allowRollup: true,
    allowDirect: true,
    denyDelete: kv,
    store,
  };
}

/** The buckets and stores the templates declare, and who may write them. */
export function storesOf(templates: readonly StreamTemplate[]): TenantStores {
  return new TenantStores(templates.flatMap((t) => (t.store ? [t.store] : [])));
}

/** Checks a set of templates against each other: no two may claim the same subject. */
function assertTemplatesDisjoint(templates: StreamTemplate[]): void {
  for (const [i, a] of templates.entries()) {
    for (const b of templates.slice(i + 1)) {
      if (a.stream === b.stream) {
        throw new CodedError("overlapping_stream_templates", `stream templates ${a.file} and ${b.file} both define the stream ${a.stream}`, { details: { files: [a.file, b.file] } });
      }
      for (const sa of a.subjects) {
        const sb = b.subjects.find((s) => subjectPatternsOverlap(sa, s));
        if (sb) {
          throw new CodedError("overlapping_stream_templates", `stream templates ${a.file} and ${b.file} overlap: "${sa}" and "${sb}" can match the same subject`, { details: { files: [a.file, b.file] } });
        }
      }
    }
  }
}

/** Every `*.json` in `dir`, parsed and checked, sorted by name. */
export async function loadStreamTemplates(dir: string): Promise<StreamTemplate[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CodedError("stream_templates_unreadable", `cannot read the stream templates directory ${dir}: ${code ?? String(err)}`, { cause: err });
  }
  const files = names.filter((n) => n.endsWith(".json")).sort();
  if (files.length === 0) throw new CodedError("no_stream_templates", `no stream templates (*.json) in ${dir}`);
  const templates: StreamTemplate[] = [];
  for (const name of files) {
    const file = path.join(dir, name);
    templates.push(parseStreamTemplate(await readTextFile(file, "stream template"), file));
  }
  assertTemplatesDisjoint(templates);
  return templates;
}

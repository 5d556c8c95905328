/** Stream templates, their units and subject patterns, plan fitting and drift: the pure parts of streams/. */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import fc from "fast-check";
import type { Plan } from "../accounts/plans.ts";
import { builtinPlans, getPlan } from "../accounts/plans.ts";
import { tenantSubjectMapper } from "../common/namespaces.ts";
import { fitTemplatesToPlan, streamConfigDrift, tenantStreamSpecs } from "../streams/stream-specs.ts";
import { edgeSubjectPatternProblem, subjectPatternsOverlap } from "../streams/subject-patterns.ts";
import { BUILTIN_TEMPLATES_DIR, dataDirTemplatesDir, loadStreamTemplates, parseStreamTemplate, resolveTemplatesDir, TEMPLATES_DIR_ENV, type StreamTemplate } from "../streams/templates.ts";
import { formatDuration, parseByteSize, parseDurationSeconds } from "../streams/units.ts";
import { tempDir } from "./helpers/tmp.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const free = getPlan(builtinPlans(), "free");
const acme = tenantSubjectMapper("acme-corp");

function plan(jetstream: Partial<Plan["jetstream"]>): Plan {
  return { ...free, jetstream: { ...free.jetstream, ...jetstream } };
}

function template(json: Record<string, unknown>): StreamTemplate {
  const name = String(json.name);
  return parseStreamTemplate(JSON.stringify({ subjects: [`${name}.>`], ...json }), `/templates/${name}.json`);
}

// --- units ---------------------------------------------------------------------------------

test("durations: units, combinations and plain seconds", (t) => {
  t.is(parseDurationSeconds("7d"), 604_800);
  t.is(parseDurationSeconds("24h"), 86_400);
  t.is(parseDurationSeconds("1h30m"), 5400);
  t.is(parseDurationSeconds("2w"), 1_209_600);
  t.is(parseDurationSeconds(90), 90);
  t.is(parseDurationSeconds("90"), 90);
  for (const bad of ["7days", "1.5h", "-1s", "", "h", "7d ", 1.5, -1]) t.is(parseDurationSeconds(bad), undefined, String(bad));
  t.is(formatDuration(604_800), "7d");
  t.is(formatDuration(5400), "1h30m");
  t.is(formatDuration(0), "0s");
});

test("a formatted duration reads back as the same number of seconds", (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400 }), (s) => parseDurationSeconds(formatDuration(s)) === s));
  t.pass();
});

test("sizes: bytes, decimal and binary units, -1 for unlimited", (t) => {
  t.is(parseByteSize("512MiB"), 512 * MiB);
  t.is(parseByteSize("1GB"), 1e9);
  t.is(parseByteSize(1048576), MiB);
  t.is(parseByteSize(-1), -1);
  for (const bad of ["1 gigabyte", "1.5GiB", "-2", -2, 0.5]) t.is(parseByteSize(bad), undefined, String(bad));
});

// --- subject patterns ----------------------------------------------------------------------

test("edge subject patterns: wildcards as whole tokens, > last, no reserved namespaces", (t) => {
  for (const ok of ["events.>", "otel.traces", "snmp.*.traps", ">"]) t.is(edgeSubjectPatternProblem(ok), undefined, ok);
  t.regex(edgeSubjectPatternProblem("$JS.API.>")!, /reserved/);
  t.regex(edgeSubjectPatternProblem("$SYS.>")!, /reserved/);
  t.regex(edgeSubjectPatternProblem("events..x")!, /empty token/);
  t.regex(edgeSubjectPatternProblem("events.>.x")!, /before the last/);
  t.regex(edgeSubjectPatternProblem("ev*nts.>")!, /inside the token/);
  t.regex(edgeSubjectPatternProblem("events x")!, /whitespace/);
});

/** Does the concrete subject match the pattern? The slow, obvious way. */
function matches(pattern: string[], subject: string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === ">") return subject.length > i;
    if (i >= subject.length || (pattern[i] !== "*" && pattern[i] !== subject[i])) return false;
  }
  return pattern.length === subject.length;
}

function concreteSubjects(maxLen: number): string[][] {
  let level: string[][] = [[]];
  const all: string[][] = [];
  for (let n = 1; n <= maxLen; n++) {
    level = level.flatMap((s) => ["a", "b", "c"].map((tok) => [...s, tok]));
    all.push(...level);
  }
  return all;
}

test("two patterns overlap exactly when some subject matches both", (t) => {
  const token = fc.constantFrom("a", "b", "*");
  const pattern = fc.tuple(fc.array(token, { minLength: 0, maxLength: 3 }), fc.boolean()).map(([tokens, tail]) => (tail || tokens.length === 0 ? [...tokens, ">"] : tokens));
  fc.assert(
    fc.property(pattern, pattern, (a, b) => {
      const witness = concreteSubjects(Math.max(a.length, b.length)).some((s) => matches(a, s) && matches(b, s));
      return subjectPatternsOverlap(a.join("."), b.join(".")) === witness && subjectPatternsOverlap(b.join("."), a.join(".")) === witness;
    }),
  );
  t.true(subjectPatternsOverlap("events.>", "events.poller.health"));
  t.false(subjectPatternsOverlap("events.>", "logs.>"));
  t.false(subjectPatternsOverlap("events.>", "events"));
});

// --- templates -----------------------------------------------------------------------------

test("the built-in templates: events, logs, telemetry; file storage, limits retention, 7 days", async (t) => {
  const templates = await loadStreamTemplates(BUILTIN_TEMPLATES_DIR);
  t.deepEqual(
    templates.map((x) => [x.name, x.subjects]),
    [
      ["events", ["events.>"]],
      ["logs", ["logs.>"]],
      ["telemetry", ["otel.>", "telemetry.>", "netflow.>", "snmp.>"]],
    ],
  );
  for (const x of templates) t.like(x, { storage: "file", retention: "limits", maxAgeSeconds: 7 * 86_400, maxBytes: undefined, discard: "old", duplicateWindowSeconds: 120, replicas: 1 });
});

test("a template's defaults, and a duplicate window no longer than a short max age", (t) => {
  t.like(template({ name: "x" }), { storage: "file", retention: "limits", maxAgeSeconds: 604_800, maxMsgs: -1, maxMsgSize: -1, discard: "old", duplicateWindowSeconds: 120, replicas: 1 });
  t.is(template({ name: "x", max_age: "30s" }).duplicateWindowSeconds, 30);
  t.is(template({ name: "x", max_age: 0 }).duplicateWindowSeconds, 120);
  t.like(template({ name: "x", max_bytes: "256MiB", max_msg_size: "1MiB", duplicate_window: "5m" }), { maxBytes: 256 * MiB, maxMsgSize: MiB, duplicateWindowSeconds: 300 });
});

test("broken templates are refused with the file and the problem", (t) => {
  const refused = (json: Record<string, unknown> | string, pattern: RegExp): void => {
    const text = typeof json === "string" ? json : JSON.stringify({ subjects: ["x.>"], ...json });
    const err = t.throws(() => parseStreamTemplate(text, "/tpl/x.json"));
    t.is((err as { code?: string }).code, "invalid_stream_template");
    t.true(err.message.startsWith("stream template /tpl/x.json is invalid: "), err.message);
    t.regex(err.message, pattern);
  };
  refused('{"name": "x",', /not valid JSON/);
  refused({ name: "y" }, /name "y" must match the file name \(x\.json\)/);
  refused({ name: "x", retention: "forever" }, /\/retention: must be one of "limits", "interest", "workqueue"/);
  refused({ name: "x", max_age: "a week" }, /max_age "a week" is not a duration/);
  refused({ name: "x", max_bytes: 0 }, /max_bytes 0 is ambiguous/);
  refused({ name: "x", max_bytes: "lots" }, /max_bytes "lots" is not a size/);
  refused({ name: "x", colour: "blue" }, /unknown property "colour"/);
  refused({ name: "x", subjects: ["$JS.API.>"] }, /subject "\$JS\.API\.>" is in a reserved namespace/);
  refused({ name: "x", subjects: ["x.>", "x.a"] }, /subjects "x\.>" and "x\.a" overlap/);
  refused({ name: "x", subjects: [] }, /\/subjects: must NOT have fewer than 1 items/);
  refused({ name: "x", max_age: "1m", duplicate_window: "2m" }, /duplicate_window cannot be longer than max_age/);
  refused({ name: "x", replicas: 9 }, /\/replicas: must be <= 5/);
});

test("templates whose subjects overlap are refused, naming both files", async (t) => {
  const dir = tempDir();
  await fs.writeFile(path.join(dir, "events.json"), JSON.stringify({ name: "events", subjects: ["events.>"] }));
  await fs.writeFile(path.join(dir, "health.json"), JSON.stringify({ name: "health", subjects: ["events.*.health"] }));
  const err = await t.throwsAsync(loadStreamTemplates(dir));
  t.regex(err.message, new RegExp(`${path.join(dir, "events.json")} and ${path.join(dir, "health.json")} overlap`));
});

test("an empty or missing templates directory is refused", async (t) => {
  const dir = tempDir();
  await t.throwsAsync(loadStreamTemplates(dir), { message: new RegExp(`no stream templates \\(\\*\\.json\\) in ${dir}`) });
  await t.throwsAsync(loadStreamTemplates(path.join(dir, "nope")), { message: /cannot read the stream templates directory .*nope: ENOENT/ });
});

test.serial("the templates directory: option, then env, then <data-dir>/streams, then built-in", async (t) => {
  const dataDir = tempDir();
  const saved = process.env[TEMPLATES_DIR_ENV];
  try {
    delete process.env[TEMPLATES_DIR_ENV];
    t.deepEqual(await resolveTemplatesDir(dataDir), { dir: BUILTIN_TEMPLATES_DIR, source: "built-in" });
    await fs.mkdir(dataDirTemplatesDir(dataDir));
    t.deepEqual(await resolveTemplatesDir(dataDir), { dir: path.join(dataDir, "streams"), source: "data-dir" });
    process.env[TEMPLATES_DIR_ENV] = "/etc/tenant-gateway/streams";
    t.deepEqual(await resolveTemplatesDir(dataDir), { dir: "/etc/tenant-gateway/streams", source: "env" });
    t.deepEqual(await resolveTemplatesDir(dataDir, "/opt/streams"), { dir: "/opt/streams", source: "option" });
  } finally {
    if (saved === undefined) delete process.env[TEMPLATES_DIR_ENV];
    else process.env[TEMPLATES_DIR_ENV] = saved;
  }
});

// --- plans ---------------------------------------------------------------------------------

test("templates without max_bytes share the plan's disk evenly; the three defaults fit the free plan", async (t) => {
  const templates = await loadStreamTemplates(BUILTIN_TEMPLATES_DIR);
  const shares = fitTemplatesToPlan(templates, "free", free);
  t.deepEqual([...shares.values()], [357_913_941, 357_913_941, 357_913_941]);
  t.true([...shares.values()].reduce((a, b) => a + b) <= GiB);
  t.deepEqual([...fitTemplatesToPlan(templates, "enterprise", getPlan(builtinPlans(), "enterprise")).values()], [-1, -1, -1]);
});

test("explicit max_bytes are taken first, replicas count, memory is shared separately", (t) => {
  const shares = fitTemplatesToPlan(
    [template({ name: "big", max_bytes: "512MiB" }), template({ name: "a" }), template({ name: "b", replicas: 2 }), template({ name: "m", storage: "memory" })],
    "free",
    free,
  );
  const perReplica = Math.floor((GiB - 512 * MiB) / 3);
  t.deepEqual(Object.fromEntries(shares), { big: 512 * MiB, a: perReplica, b: perReplica, m: 64 * MiB });
});

test("templates beyond the plan are refused, naming the template and the limit", (t) => {
  const refused = (templates: StreamTemplate[], p: Plan, pattern: RegExp): void => {
    const err = t.throws(() => fitTemplatesToPlan(templates, "small", p));
    t.is((err as { code?: string }).code, "stream_template_exceeds_plan");
    t.regex(err.message, pattern);
  };
  refused([template({ name: "events", max_bytes: "2GiB" })], free, /stream template events \(\/templates\/events\.json\) asks for max_bytes 2 GiB \(2147483648 bytes\), more than plan "small" allows for JetStream disk: 1 GiB/);
  refused([template({ name: "a" }), template({ name: "b" }), template({ name: "c" })], plan({ streams: 2 }), /3 stream templates \(a, b, c\) but plan "small" allows 2 stream\(s\)/);
  refused([template({ name: "cache", storage: "memory" })], plan({ memory: 0 }), /stream template cache .* asks for memory storage, but plan "small" has no JetStream memory \(limit 0\)/);
  refused([template({ name: "events", max_bytes: -1 })], free, /stream template events .* asks for unlimited max_bytes, but plan "small" limits JetStream disk to 1 GiB/);
  refused([template({ name: "a", max_bytes: "600MiB" }), template({ name: "b", max_bytes: "600MiB" })], free, /stream templates a, b together ask for 1.2 GiB .* of JetStream disk, more than plan "small" allows: 1 GiB/);
  refused([template({ name: "a", max_bytes: GiB - 100 }), template({ name: "b" })], free, /stream templates b leave max_bytes to the plan, but templates a take .* leaving less than 1 MiB each/);
  refused([template({ name: "r", max_bytes: "600MiB", replicas: 2 })], free, /stream template r .* asks for max_bytes 629145600 × 2 replicas/);
});

// --- specs and drift -----------------------------------------------------------------------

test("specs carry the tenant prefix on subjects, not on stream names, and server units", async (t) => {
  const specs = tenantStreamSpecs(await loadStreamTemplates(BUILTIN_TEMPLATES_DIR), "free", free, acme);
  const telemetry = specs.find((s) => s.config.name === "telemetry")!.config;
  t.deepEqual(telemetry.subjects, ["acme-corp.otel.>", "acme-corp.telemetry.>", "acme-corp.netflow.>", "acme-corp.snmp.>"]);
  t.is(telemetry.max_age, 604_800 * 1e9);
  t.is(telemetry.duplicate_window, 120 * 1e9);
  t.is(telemetry.max_bytes, 357_913_941);
});

test("drift compares only the fields the template controls, in the template's terms", (t) => {
  const [spec] = tenantStreamSpecs([template({ name: "events", subjects: ["events.>", "alerts.>"] })], "free", free, acme);
  const desired = spec!.config;
  const server = { ...desired, subjects: [...desired.subjects].reverse(), sealed: false, deny_delete: false, max_consumers: -1, description: "set by hand" };
  t.deepEqual(streamConfigDrift(desired, server, acme), [], "subject order, server-only fields and an unmanaged description are not drift");
  t.deepEqual(streamConfigDrift(desired, { ...server, max_age: 3600e9, discard: "new", subjects: ["acme-corp.events.>", "other.>"] }, acme), [
    { field: "subjects", before: ["events.>", "(not owned) other.>"], after: ["events.>", "alerts.>"] },
    { field: "max_age", before: "1h", after: "7d" },
    { field: "discard", before: "new", after: "old" },
  ]);
  const [described] = tenantStreamSpecs([template({ name: "events", description: "edge events" })], "free", free, acme);
  t.deepEqual(streamConfigDrift(described!.config, { ...described!.config, description: "changed" }, acme), [{ field: "description", before: "changed", after: "edge events" }]);
});

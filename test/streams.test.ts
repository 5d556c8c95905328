/**
 * Per-tenant JetStream against a real nats-server in operator mode: provisioning on tenant
 * create, reconcile (idempotent, drift restored, prune only when asked), plan limits, broken
 * templates, and the operator's views — through the CLI where an operator would use it.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { jetstream, JetStreamApiError, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { DataLayout } from "../pki/layout.ts";
import { StreamProvisioner, tenantStreamProvisioner, type StreamApplyReport } from "../streams/provisioner.ts";
import type { StreamResult, TenantStreamView } from "../streams/reconcile.ts";
import { BUILTIN_TEMPLATES_DIR } from "../streams/templates.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const FREE_DISK = 1024 ** 3;
const SEVEN_DAYS_NS = 7 * 86_400 * 1e9;

let layout: DataLayout;
let server: RunningNatsServer;
let cp: ControlPlane;
let svc: TenantService;

interface ApplyJson {
  templates_dir: string;
  tenants: Array<{ slug: string; result: string; streams?: StreamResult[]; error?: { code: string; message: string } }>;
}

test.before(async () => {
  layout = new DataLayout(tempDir());
  await initDataDir(layout, { natsPort: -1 });
  server = await startNatsServer(new NatsFiles(layout).serverConfig);
  cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url] });
  svc = new TenantService(cp, tenantStreamProvisioner);
  await svc.sync();
  await svc.create("acme-corp");
  await svc.create("globex");
});

test.after.always(async () => {
  await cp?.close();
  await server?.stop();
});

const cliArgs = (): string[] => ["--data-dir", layout.dir, "--nats", server.url];

const connections = new Map<string, Promise<NatsConnection>>();

/**
 * A user of the tenant's account (full permissions inside it), one per tenant for the whole file:
 * the free plan allows 10 connections, and the CLI's control connections count too.
 */
function tenantConnection(slug: string): Promise<NatsConnection> {
  let nc = connections.get(slug);
  if (!nc) {
    nc = svc.load(slug).then((t) => cp.accountConnection(t.record.account_public_key, t.signingKey, `test-${slug}`));
    connections.set(slug, nc);
  }
  return nc;
}

async function tenantJsm(slug: string): Promise<JetStreamManager> {
  return jetstreamManager(await tenantConnection(slug));
}

async function streamNames(jsm: JetStreamManager): Promise<string[]> {
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  return names.sort();
}

async function applyCli(slug: string, ...extra: string[]): Promise<{ code: number; json: ApplyJson; stderr: string }> {
  return runCliJson<ApplyJson>(["streams", "apply", slug, ...cliArgs(), ...extra]);
}

function byStream(results: StreamResult[] | undefined): Record<string, StreamResult> {
  return Object.fromEntries((results ?? []).map((r) => [r.stream, r]));
}

/** A copy of the built-in templates with some files replaced, for one test. */
async function templatesWith(files: Record<string, string>): Promise<string> {
  const dir = path.join(tempDir(), "templates");
  await fs.cp(BUILTIN_TEMPLATES_DIR, dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) await fs.writeFile(path.join(dir, name), text);
  return dir;
}

test.serial("tenant create provisions events, logs and telemetry in the tenant's account with prefixed subjects", async (t) => {
  const jsm = await tenantJsm("acme-corp");
  t.deepEqual(await streamNames(jsm), ["events", "logs", "telemetry"]);
  t.deepEqual((await jsm.streams.info("events")).config.subjects, ["acme-corp.events.>"]);
  t.deepEqual((await jsm.streams.info("logs")).config.subjects, ["acme-corp.logs.>"]);
  t.deepEqual((await jsm.streams.info("telemetry")).config.subjects, ["acme-corp.otel.>", "acme-corp.telemetry.>", "acme-corp.netflow.>", "acme-corp.snmp.>"]);
  const events = (await jsm.streams.info("events")).config;
  t.is(events.storage, "file");
  t.is(events.retention, "limits");
  t.is(events.max_age, SEVEN_DAYS_NS);
  t.is(events.max_bytes, Math.floor(FREE_DISK / 3), "an even share of the free plan's 1 GiB disk");
});

test.serial("a message a tenant user publishes to acme-corp.events.x lands in stream events", async (t) => {
  const js = jetstream(await tenantConnection("acme-corp"));
  const ack = await js.publish("acme-corp.events.x", "poller up");
  t.is(ack.stream, "events");
  const jsm = await tenantJsm("acme-corp");
  const stored = await jsm.streams.getMessage("events", { last_by_subj: "acme-corp.events.x" });
  t.is(stored?.string(), "poller up");
  t.is((await js.publish("acme-corp.snmp.traps", "trap")).stream, "telemetry");
  t.is((await js.publish("acme-corp.logs.syslog", "line")).stream, "logs");
});

test.serial("streams apply twice changes nothing the second time", async (t) => {
  const jsm = await tenantJsm("acme-corp");
  const before = await jsm.streams.info("events");
  for (const run of [1, 2]) {
    const r = await applyCli("acme-corp");
    t.is(r.code, 0, r.stderr);
    t.is(r.json.tenants[0]!.result, "applied");
    t.deepEqual(
      r.json.tenants[0]!.streams!.map((s) => [s.stream, s.action]),
      [
        ["events", "unchanged"],
        ["logs", "unchanged"],
        ["telemetry", "unchanged"],
      ],
      `run ${run}`,
    );
  }
  const after = await jsm.streams.info("events");
  t.is(after.created, before.created, "the stream was not re-created");
  t.deepEqual(after.config, before.config);
  t.true(after.state.messages >= 1, "messages survive an apply");
});

test.serial("apply restores a max age changed by hand and reports the change", async (t) => {
  const jsm = await tenantJsm("acme-corp");
  await jsm.streams.update("logs", { max_age: 3600 * 1e9, max_msgs: 10 });
  const r = await applyCli("acme-corp");
  t.is(r.code, 0, r.stderr);
  const logs = byStream(r.json.tenants[0]!.streams).logs!;
  t.is(logs.action, "updated");
  t.deepEqual(logs.action === "updated" ? logs.changes : [], [
    { field: "max_age", before: "1h", after: "7d" },
    { field: "max_msgs", before: 10, after: -1 },
  ]);
  t.is(byStream(r.json.tenants[0]!.streams).events!.action, "unchanged");
  const config = (await jsm.streams.info("logs")).config;
  t.is(config.max_age, SEVEN_DAYS_NS);
  t.is(config.max_msgs, -1);

  await jsm.streams.update("logs", { max_age: 30 * 60 * 1e9 });
  const text = await runCli(["streams", "apply", "acme-corp", ...cliArgs()]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /logs\s+updated\s+max_age 30m → 7d/);
});

test.serial("--prune deletes a stream no template defines; without it the stream stays", async (t) => {
  const jsm = await tenantJsm("acme-corp");
  await jsm.streams.add({ name: "scratch", subjects: ["acme-corp.scratch.>"] });
  await jetstream(await tenantConnection("acme-corp")).publish("acme-corp.scratch.a", "keep me?");

  const kept = await applyCli("acme-corp");
  t.is(kept.code, 0, kept.stderr);
  t.like(byStream(kept.json.tenants[0]!.streams).scratch, { action: "unmanaged", subjects: ["scratch.>"] });
  t.is((await jsm.streams.info("scratch")).state.messages, 1, "without --prune the stream and its messages stay");

  const pruned = await applyCli("acme-corp", "--prune");
  t.is(pruned.code, 0, pruned.stderr);
  t.like(byStream(pruned.json.tenants[0]!.streams).scratch, { action: "pruned", messages: 1 });
  const gone = await t.throwsAsync(jsm.streams.info("scratch"));
  t.true(gone instanceof JetStreamApiError && gone.code === 10059, "stream not found");
  t.deepEqual(await streamNames(jsm), ["events", "logs", "telemetry"]);
});

test.serial("a template asking for more disk than the plan allows is refused, naming the template and the limit", async (t) => {
  const dir = await templatesWith({ "events.json": JSON.stringify({ name: "events", subjects: ["events.>"], max_bytes: "2GiB" }) });
  const r = await applyCli("acme-corp", "--templates", dir);
  t.is(r.code, 1);
  const tenant = r.json.tenants[0]!;
  t.is(tenant.result, "failed");
  t.is(tenant.error?.code, "stream_template_exceeds_plan");
  t.regex(tenant.error!.message, /stream template events .*events\.json.*max_bytes 2 GiB.*plan "free".*disk.*1 GiB/);
  const jsm = await tenantJsm("acme-corp");
  t.is((await jsm.streams.info("events")).config.max_bytes, Math.floor(FREE_DISK / 3), "nothing was changed");
});

test.serial("a change nats-server cannot make in place is reported as failed, and the rest still applies", async (t) => {
  const dir = await templatesWith({
    "logs.json": JSON.stringify({ name: "logs", subjects: ["logs.>"], retention: "interest" }),
    "events.json": JSON.stringify({ name: "events", subjects: ["events.>"], max_age: "3d" }),
  });
  const r = await applyCli("acme-corp", "--templates", dir);
  t.is(r.code, 1);
  const streams = byStream(r.json.tenants[0]!.streams);
  t.like(streams.logs, { action: "failed", error: { code: "stream_drift_not_updatable" } });
  t.regex(streams.logs?.action === "failed" ? streams.logs.error.message : "", /stream logs .*retention limits → interest.*cannot change/);
  t.like(streams.events, { action: "updated", changes: [{ field: "max_age", before: "7d", after: "3d" }] });
  const restored = await applyCli("acme-corp");
  t.is(restored.code, 0, restored.stderr);
  t.like(byStream(restored.json.tenants[0]!.streams).events, { action: "updated", changes: [{ field: "max_age", before: "3d", after: "7d" }] });
});

test.serial("a broken template file is refused with a message naming the file", async (t) => {
  const dir = await templatesWith({ "logs.json": '{ "name": "logs", "subjects": ["logs.>"], "max_age": "a week" }' });
  const r = await runCli(["streams", "apply", "acme-corp", ...cliArgs()], { TENANT_GATEWAY_STREAM_TEMPLATES: dir });
  t.is(r.code, 1);
  t.true(r.stderr.includes(path.join(dir, "logs.json")), r.stderr);
  t.regex(r.stderr, /max_age "a week" is not a duration.*\[invalid_stream_template\]/);

  const truncated = await templatesWith({ "bad.json": '{ "name": "bad", ' });
  const provisioner = new StreamProvisioner({ templatesDir: truncated });
  const err = await t.throwsAsync(provisioner.apply(cp, await svc.load("acme-corp"), {}));
  t.true(err.message.includes(path.join(truncated, "bad.json")) && /not valid JSON/.test(err.message), err.message);
});

test.serial("streams list and tenant show --json show streams with edge-view subjects", async (t) => {
  const list = await runCliJson<{ slug: string; streams: TenantStreamView[] }>(["streams", "list", "acme-corp", ...cliArgs()]);
  t.is(list.code, 0, list.stderr);
  const streams = Object.fromEntries(list.json.streams.map((s) => [s.name, s]));
  t.deepEqual(Object.keys(streams), ["events", "logs", "telemetry"]);
  t.deepEqual(streams.events!.subjects, ["events.>"]);
  t.deepEqual(streams.telemetry!.subjects, ["otel.>", "telemetry.>", "netflow.>", "snmp.>"]);
  t.is(streams.events!.messages, 1);
  t.true(streams.events!.bytes > 0);
  t.like(streams.events!.limits, { storage: "file", retention: "limits", max_age: "7d", max_bytes: Math.floor(FREE_DISK / 3), discard: "old" });
  t.is(streams.events!.consumers, 0);

  const text = await runCli(["streams", "list", "acme-corp", ...cliArgs()]);
  t.regex(text.stdout, /^events\s+1\s+\d+\s+0\s+file\s+7d\s+341\.3 MiB\s+events\.>$/m);

  const show = await runCliJson<{ streams: Array<{ name: string; subjects: string[]; messages: number; bytes: number }> }>(["tenant", "show", "acme-corp", ...cliArgs()]);
  t.is(show.code, 0, show.stderr);
  t.like(
    show.json.streams.find((s) => s.name === "events"),
    { subjects: ["events.>"], messages: 1 },
  );
  t.deepEqual(show.json.streams.find((s) => s.name === "logs")?.subjects, ["logs.>"]);
});

test.serial("globex gets its own events stream, separate from acme-corp's", async (t) => {
  const globex = await tenantJsm("globex");
  t.deepEqual((await globex.streams.info("events")).config.subjects, ["globex.events.>"]);
  const acme = await tenantJsm("acme-corp");
  const acmeBefore = (await acme.streams.info("events")).state.messages;

  const ack = await jetstream(await tenantConnection("globex")).publish("globex.events.poller.health", "globex up");
  t.is(ack.stream, "events");
  t.is(ack.seq, 1, "globex's stream starts empty: acme-corp's messages are not in it");
  // In acme-corp's account no stream listens on globex's subjects.
  await t.throwsAsync(jetstream(await tenantConnection("acme-corp")).publish("globex.events.poller.health", "intruder"));
  t.is((await globex.streams.info("events")).state.messages, 1);
  t.is((await acme.streams.info("events")).state.messages, acmeBefore);

  const all = await runCliJson<ApplyJson>(["streams", "apply", "--all", ...cliArgs()]);
  t.is(all.code, 0, all.stderr);
  t.deepEqual(
    all.json.tenants.map((x) => [x.slug, x.result]),
    [
      ["acme-corp", "applied"],
      ["globex", "applied"],
    ],
  );
});

test.serial("remove deletes every stream of the tenant's account, and only that tenant's", async (t) => {
  const globex = await svc.load("globex");
  const jsm = await tenantJsm("globex");
  await jsm.streams.add({ name: "extra", subjects: ["globex.extra.>"] });
  await tenantStreamProvisioner.remove(cp, globex);
  t.deepEqual(await streamNames(jsm), []);
  t.deepEqual(await streamNames(await tenantJsm("acme-corp")), ["events", "logs", "telemetry"]);

  const report: StreamApplyReport = await tenantStreamProvisioner.apply(cp, globex, {});
  t.deepEqual(
    report.streams.map((s) => [s.stream, s.action]),
    [
      ["events", "created"],
      ["logs", "created"],
      ["telemetry", "created"],
    ],
  );
});

test.serial("set-plan pro → free shrinks the streams before the account, and free → pro grows them after", async (t) => {
  await svc.create("initrode", { plan: "pro" });
  const jsm = await jetstreamManager(await tenantConnection("initrode"));
  const proBytes = (await jsm.streams.info("events")).config.max_bytes;
  await svc.setPlan("initrode", "free");
  const freeBytes = (await jsm.streams.info("events")).config.max_bytes;
  t.true(freeBytes < proBytes, `shrunk from ${proBytes} to ${freeBytes}`);
  t.true(freeBytes * 3 <= FREE_DISK, "the three streams fit the free plan's disk");
  await svc.setPlan("initrode", "pro");
  t.is((await jsm.streams.info("events")).config.max_bytes, proBytes);
});

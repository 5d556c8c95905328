/**
 * Defaults that fit together out of the box: `init` puts nats-server on 127.0.0.1:14222, clear of
 * the gateway's 4222, and a data dir records where its NATS is (`nats/url`: written by init, and
 * by dev with its random port), so every command finds it without --nats. Precedence: --nats >
 * TENANT_GATEWAY_NATS > (serve: config file >) the data dir > the built-in default.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { DEFAULT_NATS_URL, NatsFiles } from "../accounts/operator.ts";
import { parseListen, resolveConfig } from "../gateway/config.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { freePort, startCli } from "./helpers/cli-process.ts";
import { tempDir } from "./helpers/tmp.ts";

/** The test's own environment must not choose NATS for the commands it runs. */
const NO_NATS_ENV = { TENANT_GATEWAY_NATS: "", TENANT_GATEWAY_CONFIG: "" };

test("init: nats-server on 127.0.0.1:14222, clear of the gateway's 4222, and the data dir records its URL", async (t) => {
  const dir = tempDir("ntg-init-");
  const r = await runCliJson<{ nats_url: { status: string; urls: string[]; file: string }; nats_config: { file: string } }>(["init", "--data-dir", dir], NO_NATS_ENV);
  t.is(r.code, 0, r.stderr);
  const layout = new DataLayout(dir);
  const files = new NatsFiles(layout);
  t.deepEqual(r.json.nats_url, { status: "created", urls: ["nats://127.0.0.1:14222"], file: files.url });
  t.regex(await fs.readFile(files.serverConfig, "utf8"), /^listen: "127\.0\.0\.1:14222"$/m);
  t.regex(await fs.readFile(files.url, "utf8"), /^nats:\/\/127\.0\.0\.1:14222$/m);

  const serve = await resolveConfig({ env: {}, flags: { data_dir: dir } });
  t.is(serve.listen, "0.0.0.0:4222");
  t.deepEqual(serve.nats, ["nats://127.0.0.1:14222"], "serve finds the NATS init configured");
  t.not(parseListen(serve.listen).port, 14222, "gateway and NATS ports differ");

  const again = await runCliJson<{ status: string; nats_url: { status: string } }>(["init", "--data-dir", dir], NO_NATS_ENV);
  t.is(again.json.status, "exists");
  t.is(again.json.nats_url.status, "exists");
});

test("init --nats-url records a NATS elsewhere (compose, a cluster); a later init keeps it", async (t) => {
  const dir = tempDir("ntg-init-");
  const r = await runCliJson<{ nats_url: { urls: string[] } }>(["init", "--data-dir", dir, "--nats-url", "nats://nats:14222,nats://nats-2:14222"], NO_NATS_ENV);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(r.json.nats_url.urls, ["nats://nats:14222", "nats://nats-2:14222"]);
  const again = await runCliJson<{ nats_url: { status: string; urls: string[] } }>(["init", "--data-dir", dir], NO_NATS_ENV);
  t.deepEqual(again.json.nats_url, { status: "exists", urls: ["nats://nats:14222", "nats://nats-2:14222"], file: new NatsFiles(new DataLayout(dir)).url });
  const bad = await runCli(["init", "--data-dir", dir, "--nats-url", "http://nats:14222"], NO_NATS_ENV);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /\[invalid_nats_url\]/);
});

test("dev records its NATS's random port: other commands on its data dir reach that NATS without --nats", async (t) => {
  const dataDir = path.join(tempDir("ntg-dev-"), "data");
  const dev = startCli(["dev", "--data-dir", dataDir, "--listen", "127.0.0.1:0"], NO_NATS_ENV);
  t.teardown(() => dev.kill());
  await dev.line((l) => l.event === "listening", 120_000);
  const banner = await dev.stderrMatch(/NATS (nats:\/\/127\.0\.0\.1:\d+)/);
  const natsUrl = /NATS (nats:\/\/127\.0\.0\.1:\d+)/.exec(banner)![1]!;
  t.not(natsUrl, DEFAULT_NATS_URL);

  const streams = await runCliJson<{ streams: Array<{ name: string }> }>(["streams", "list", "acme-corp", "--data-dir", dataDir], NO_NATS_ENV);
  t.is(streams.code, 0, streams.stderr);
  t.deepEqual(streams.json.streams.map((s) => s.name).sort(), ["events", "logs", "telemetry"]);
  const sync = await runCliJson<{ tenants: Array<{ slug: string; result: string }> }>(["sync", "--data-dir", dataDir], NO_NATS_ENV);
  t.is(sync.code, 0, sync.stderr);
  t.deepEqual(sync.json.tenants.map((x) => x.slug), ["acme-corp", "globex"]);

  dev.child.kill("SIGTERM");
  t.is((await dev.exited).code, 0, dev.stderr());
});

test("--nats of a CLI command: flag > TENANT_GATEWAY_NATS > the data dir's record (named in the error)", async (t) => {
  const dir = tempDir("ntg-prec-");
  const init = await runCli(["init", "--data-dir", dir, "--nats-port", String(await freePort())], NO_NATS_ENV);
  t.is(init.code, 0, init.stderr);
  const [recorded, fromEnv, fromFlag] = [await freePort(), await freePort(), await freePort()].map((p) => `nats://127.0.0.1:${p}`) as [string, string, string];
  const urlFile = new NatsFiles(new DataLayout(dir)).url;
  await fs.writeFile(urlFile, `# test\n${recorded}\n`);

  const byRecord = await runCli(["sync", "--data-dir", dir], NO_NATS_ENV);
  t.is(byRecord.code, 1);
  t.true(byRecord.stderr.includes(`cannot reach NATS at ${recorded}`), byRecord.stderr);
  t.true(byRecord.stderr.includes(`URL from ${urlFile}`), "the error says where the URL came from");
  const byEnv = await runCli(["sync", "--data-dir", dir], { ...NO_NATS_ENV, TENANT_GATEWAY_NATS: fromEnv });
  t.true(byEnv.stderr.includes(`cannot reach NATS at ${fromEnv}`), byEnv.stderr);
  const byFlag = await runCli(["sync", "--data-dir", dir, "--nats", fromFlag], { ...NO_NATS_ENV, TENANT_GATEWAY_NATS: fromEnv });
  t.true(byFlag.stderr.includes(`cannot reach NATS at ${fromFlag}`), byFlag.stderr);
  t.is(byFlag.stderr.trim().split("\n").length, 1, byFlag.stderr);
});

test("serve's NATS: flag > env > config file > the data dir's record > built-in 127.0.0.1:14222", async (t) => {
  const dir = tempDir("ntg-prec-");
  const layout = new DataLayout(dir);
  t.deepEqual((await resolveConfig({ env: {}, flags: { data_dir: dir } })).nats, [DEFAULT_NATS_URL], "no record: the built-in default");
  t.is(DEFAULT_NATS_URL, "nats://127.0.0.1:14222");
  await fs.mkdir(layout.natsDir, { recursive: true });
  await fs.writeFile(new NatsFiles(layout).url, "nats://127.0.0.1:1001\n");
  const file = path.join(dir, "gateway.yaml");
  await fs.writeFile(file, "nats: nats://127.0.0.1:1002\n");
  t.deepEqual((await resolveConfig({ env: {}, flags: { data_dir: dir } })).nats, ["nats://127.0.0.1:1001"]);
  t.deepEqual((await resolveConfig({ file, env: {}, flags: { data_dir: dir } })).nats, ["nats://127.0.0.1:1002"]);
  t.deepEqual((await resolveConfig({ file, env: { TENANT_GATEWAY_NATS: "nats://127.0.0.1:1003" }, flags: { data_dir: dir } })).nats, ["nats://127.0.0.1:1003"]);
  t.deepEqual((await resolveConfig({ file, env: { TENANT_GATEWAY_NATS: "nats://127.0.0.1:1003" }, flags: { data_dir: dir, nats: "nats://127.0.0.1:1004" } })).nats, ["nats://127.0.0.1:1004"]);
  // The data dir named by the config file or the environment is the one whose record counts.
  await fs.writeFile(file, `data_dir: ${dir}\n`);
  t.deepEqual((await resolveConfig({ file, env: {} })).nats, ["nats://127.0.0.1:1001"]);
});

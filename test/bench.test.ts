/**
 * The benchmark in its tiny configuration (a few hundred messages per scenario), so that it keeps
 * working as the gateway changes: every scenario is measured on all three paths and written to
 * the JSON report. No performance figure is asserted here; `npm run bench` is for those.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { runBenchmark, writeReport } from "../bench/benchmark.ts";
import { PATH_NAMES } from "../bench/paths.ts";
import { PERCENTILES, type BenchReport } from "../bench/report.ts";
import { settingsFor } from "../bench/settings.ts";
import { tempDir } from "./helpers/tmp.ts";

test("the tiny benchmark reports every scenario with positive figures for direct, gateway and pipe", async (t) => {
  t.timeout(150_000);
  const file = path.join(tempDir("ntg-bench-test-"), "latest.json");
  await writeReport(await runBenchmark({ mode: "tiny", library: "v2", progress: (line) => t.log(line) }), file);
  const report = JSON.parse(await fs.readFile(file, "utf8")) as BenchReport;

  const sizes = settingsFor("tiny").sizes;
  const expected = [...sizes.publish.map((s) => `pub-${s}`), ...sizes.pubsub.map((s) => `pubsub-${s}`), ...sizes.queue.map((s) => `queue4-${s}`), ...sizes.jetstream.map((s) => `js-${s}`)];
  t.deepEqual(
    report.scenarios.map((s) => s.name),
    expected,
  );
  for (const s of report.scenarios) {
    t.is(s.unit, "msgs/s");
    for (const p of PATH_NAMES) t.true(s[p] > 0, `${s.name} ${p}: ${s[p]}`);
    t.true(s.ratio > 0, `${s.name} ratio`);
  }

  t.deepEqual(
    report.latency.map((l) => l.name),
    sizes.reqrep.map((s) => `reqrep-${s}`),
  );
  for (const l of report.latency) {
    for (const p of PATH_NAMES) for (const q of PERCENTILES) t.true(l[`${p}_${q}_us`] > 0, `${l.name} ${p} ${q}`);
  }

  for (const p of PATH_NAMES) t.true(report.connections[`${p}_per_s`] > 0, `connections ${p}`);
  t.true(report.memory.points.length > 0);
  for (const point of report.memory.points) {
    t.true(point.connections > 0);
    for (const v of [point.gateway_bytes, point.pipe_bytes, point.direct_nats_server_bytes]) t.true(Number.isFinite(v));
  }
  t.true(Number.isFinite(report.memory.bytes_per_idle_connection));
  t.regex(report.nats_server, /^\d+\.\d+\.\d+/);
  t.regex(report.node, /^v\d+/);
  t.true(report.machine.cpus > 0);
});

/**
 * `npm run bench` — the gateway against direct NATS and a TLS pipe, side by side in one run.
 *
 *   npm run bench                      full run (every scenario and size, 5 repetitions)
 *   npm run bench -- --quick           under two minutes: the main sizes, 3 repetitions
 *   npm run bench -- --tiny            a few hundred messages per scenario (what the test runs)
 *   npm run bench -- --client v3       the load generators' client: v2 (nats, default: the faster generator) or v3 (@nats-io/transport-node)
 *   npm run bench -- --only pubsub-128,connect   only these scenarios (name prefixes; also memory)
 *   npm run bench -- --cpu-prof        write the gateway's CPU profile to bench/results/*.cpuprofile
 *   npm run bench -- --out <file>      where the JSON goes (default bench/results/latest.json)
 *   npm run bench -- --gateway-cli <checkout>/bin/tenant-gateway.js   measure another build of the gateway
 *   npm run bench -- --gateway-workers 2   the gateway with --workers 2 (its CPU summed over its processes)
 *
 * Prints the table on stdout, progress on stderr.
 */
import path from "node:path";
import { parseArgs } from "node:util";
import { BENCH_DIR } from "./deployment.ts";
import { DEFAULT_RESULTS_FILE, runBenchmark, writeReport } from "./benchmark.ts";
import { CLIENT_LIBRARIES, type ClientLibrary } from "./nats-client.ts";
import { formatReport } from "./report.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    tiny: { type: "boolean", default: false },
    client: { type: "string", default: "v2" },
    only: { type: "string" },
    "cpu-prof": { type: "boolean", default: false },
    out: { type: "string" },
    "gateway-cli": { type: "string" },
    "gateway-workers": { type: "string" },
  },
});

if (!CLIENT_LIBRARIES.includes(values.client as ClientLibrary)) {
  process.stderr.write(`--client must be one of ${CLIENT_LIBRARIES.join(", ")}\n`);
  process.exit(2);
}

const report = await runBenchmark({
  mode: values.tiny ? "tiny" : values.quick ? "quick" : "full",
  library: values.client as ClientLibrary,
  ...(values.only ? { only: values.only.split(",").map((s) => s.trim()).filter(Boolean) } : {}),
  ...(values["gateway-cli"] ? { gatewayCli: path.resolve(values["gateway-cli"]) } : {}),
  ...(values["gateway-workers"] ? { gatewayWorkers: Number(values["gateway-workers"]) } : {}),
  ...(values["cpu-prof"] ? { cpuProfileDir: path.join(BENCH_DIR, "results") } : {}),
});
const out = values.out ?? DEFAULT_RESULTS_FILE;
await writeReport(report, out);
process.stdout.write(`${formatReport(report)}\n\nwritten to ${path.relative(process.cwd(), out)}\n`);

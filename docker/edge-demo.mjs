// A demo edge component for the compose set-up: it does what an onboarding bundle's config.yaml
// says — connects to the gateway with the bundle's certificate, publishes its health every few
// seconds on the config's health subject (edge view: the gateway puts it under the tenant), and
// logs the jobs addressed to it. A stock NATS client, as any edge component uses.
//
//   node edge-demo.mjs <bundle>/config/config.yaml    run (paths in the config are relative to <bundle>)
//   node edge-demo.mjs --check                        health check: a publish was flushed lately
//
// It runs in the gateway image and takes the `nats` and `yaml` packages from there (APP_DIR,
// default /app).
import { promises as fs } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const HEARTBEAT = process.env.EDGE_HEARTBEAT_FILE ?? "/tmp/edge-heartbeat";
const INTERVAL_MS = Number(process.env.EDGE_INTERVAL_MS ?? 5000);

if (process.argv[2] === "--check") {
  const age = await fs.stat(HEARTBEAT).then((s) => Date.now() - s.mtimeMs, () => Infinity);
  process.exit(age < 3 * INTERVAL_MS ? 0 : 1);
}

const configFile = process.argv[2];
if (!configFile) {
  console.error("usage: edge-demo.mjs <bundle>/config/config.yaml | --check");
  process.exit(2);
}
const require = createRequire(path.join(process.env.APP_DIR ?? "/app", "package.json"));
const { connect, StringCodec } = require("nats");
const YAML = require("yaml");

const bundle = path.dirname(path.dirname(path.resolve(configFile)));
const config = YAML.parse(await fs.readFile(configFile, "utf8"));
const file = (rel) => path.resolve(bundle, rel);
const publish = config.subjects?.publish ?? {};
const healthSubject = publish.health ?? Object.values(publish)[0];
const jobsSubject = config.subjects?.subscribe?.jobs;
if (!healthSubject) throw new Error(`${configFile} names no subject to publish on (subjects.publish)`);

const nc = await connect({
  servers: config.nats.url,
  tls: { certFile: file(config.nats.tls.cert_file), keyFile: file(config.nats.tls.key_file), caFile: file(config.nats.tls.ca_file) },
  name: config.component?.identity,
  maxReconnectAttempts: -1,
});
const sc = StringCodec();
const who = config.component?.identity ?? "edge component";
console.log(`${who}: connected to ${config.nats.url}; health on ${healthSubject}${jobsSubject ? `, jobs on ${jobsSubject}` : ""}`);
if (jobsSubject) {
  nc.subscribe(jobsSubject, { callback: (_err, m) => console.log(`job on ${m.subject}: ${sc.decode(m.data)}`) });
}

const beat = async () => {
  nc.publish(healthSubject, sc.encode(JSON.stringify({ component: config.component?.id, partition: config.component?.partition, ok: true, at: new Date().toISOString() })));
  await nc.flush();
  const now = new Date();
  await fs.utimes(HEARTBEAT, now, now).catch(() => fs.writeFile(HEARTBEAT, ""));
};
await beat();
const timer = setInterval(() => beat().catch((err) => console.error(`publish failed: ${err.message}`)), INTERVAL_MS);
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    clearInterval(timer);
    nc.drain().finally(() => process.exit(0));
  });
}
const closed = await nc.closed();
if (closed) {
  console.error(`connection closed: ${closed.message}`);
  process.exit(1);
}

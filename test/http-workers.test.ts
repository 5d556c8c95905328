/**
 * `serve --workers 2` as an operator runs it: the primary serves the HTTP listener for the whole
 * group — one scrape sums the workers' counters (per-worker gauges keep their `worker` label), the
 * API lists and cuts sessions whichever worker serves them, readiness answers for the group.
 */
import test from "ava";
import { startDeployment, type ClientTls, type Deployment } from "./helpers/gateway-fixture.ts";
import { freePort, startCli, type CliProcess } from "./helpers/cli-process.ts";
import { httpClient, type HttpClient } from "./helpers/http-fixture.ts";
import { parseExposition, valueOf } from "./helpers/prometheus.ts";
import { connect, type NatsConnection } from "@nats-io/transport-node";

let dep: Deployment;
let serve: CliProcess;
let http: HttpClient;
let gatewayUrl: string;
let admin: ClientTls;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "globex"] });
  admin = await dep.admin();
  const httpPort = await freePort();
  serve = startCli(["serve", "--data-dir", dep.layout.dir, "--nats", dep.nats.url, "--listen", "127.0.0.1:0", "--http-listen", `127.0.0.1:${httpPort}`, "--workers", "2"], {
    TENANT_GATEWAY_SYNC_ON_START: "false",
    TENANT_GATEWAY_CONFIG: "",
  });
  const listening = await serve.line((l) => l.event === "listening");
  gatewayUrl = `tls://127.0.0.1:${listening.port as number}`;
  await serve.line((l) => l.event === "workers_started");
  await serve.line((l) => l.event === "http_attached");
  http = httpClient(httpPort, admin.ca);
});

test.after.always(async () => {
  serve?.kill();
  await dep?.stop();
});

async function clients(n: number, slug: string): Promise<NatsConnection[]> {
  const out: NatsConnection[] = [];
  for (let i = 0; i < n; i++) out.push(await connect({ servers: gatewayUrl, tls: await dep.edge(slug, `worker-client-${i}`), reconnect: false }));
  return out;
}

test.serial("one scrape gives the whole worker group: sessions per worker, counters summed over workers", async (t) => {
  const ready = await http.get("/readyz");
  t.is(ready.status, 200, ready.text);
  const ncs = await clients(6, "acme-corp");
  t.teardown(() => Promise.all(ncs.map((nc) => nc.close())).then(() => undefined));
  for (const nc of ncs) for (let i = 0; i < 5; i++) nc.publish("workers.count", "x");
  await Promise.all(ncs.map((nc) => nc.flush()));

  const scrape = await http.get("/metrics");
  t.is(scrape.status, 200);
  const series = parseExposition(scrape.text);
  t.is(valueOf(series, "tenant_gateway_workers"), 2);
  const perWorker = series.filter((s) => s.name === "tenant_gateway_sessions");
  t.deepEqual(perWorker.map((s) => s.labels.worker).sort(), ["1", "2"], "one gauge per worker");
  t.is(perWorker.reduce((sum, s) => sum + s.value, 0), 6);
  t.true(perWorker.every((s) => s.value > 0), "node:cluster spread the clients over both workers");
  t.is(valueOf(series, "tenant_gateway_connections_open", { tenant: "acme-corp" }), 6, "summed over the workers");
  t.is(valueOf(series, "tenant_gateway_messages_in_total", { tenant: "acme-corp" }), 30);
  t.is(valueOf(series, "tenant_gateway_connections_accepted_total", { tenant: "acme-corp" }), 6);
  t.is(valueOf(series, "tenant_gateway_jetstream_stats_up"), 1, "the primary collects the JetStream figures");
  t.is(new Set(series.filter((s) => s.name === "tenant_gateway_jetstream_stream_messages").map((s) => `${s.labels.tenant}/${s.labels.stream}`)).size, series.filter((s) => s.name === "tenant_gateway_jetstream_stream_messages").length, "JetStream figures once, not once per worker");
});

test.serial("the API lists every worker's sessions and cuts one wherever it is served", async (t) => {
  const ncs = await clients(4, "globex");
  t.teardown(() => Promise.all(ncs.map((nc) => nc.close())).then(() => undefined));
  const listed = await http.request("GET", "/api/v1/sessions?tenant=globex", { tls: admin });
  t.is(listed.status, 200, listed.text);
  const sessions = listed.json<{ sessions: Array<{ id: string; pid: number; cn: string }> }>().sessions;
  t.is(sessions.length, 4);
  t.is(new Set(sessions.map((s) => s.pid)).size, 2, "served by two worker processes");
  for (const s of sessions) {
    const cut = await http.request("DELETE", `/api/v1/sessions/${s.id}`, { tls: admin });
    t.is(cut.status, 200, cut.text);
  }
  await Promise.all(ncs.map((nc) => nc.closed()));
  const after = await http.request("GET", "/api/v1/sessions?tenant=globex", { tls: admin });
  t.deepEqual(after.json<{ sessions: unknown[] }>().sessions, []);
  const r = await http.get("/readyz");
  const body = r.json<{ ready: boolean; checks: Record<string, { ok: boolean }> }>();
  t.true(body.ready);
  t.deepEqual(Object.keys(body.checks).sort(), ["worker_1", "worker_2"]);
});

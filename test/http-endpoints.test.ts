/**
 * The HTTP listener's probes and metrics against a live gateway and nats-server: health and
 * readiness without a client certificate (plain HTTP and HTTPS), metrics that follow known
 * traffic per tenant, refusals by code, load-balancer probes counted and not logged as warnings,
 * JetStream figures (consumer lag) per tenant stream, bounded labels, and readiness that turns
 * false in lame duck.
 */
import { promises as fs } from "node:fs";
import net from "node:net";
import { once } from "node:events";
import test from "ava";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { startHttp, type HttpFixture } from "./helpers/http-fixture.ts";
import { parseExposition, valueOf, type Series } from "./helpers/prometheus.ts";
import { runCli } from "./helpers/cli.ts";
import path from "node:path";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";
import { PROJECT_ROOT } from "./helpers/cli.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { DataLayout } from "../pki/layout.ts";

let dep: Deployment;
let http: HttpFixture;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "globex", "initech"] });
  http = await startHttp(dep, { jetstreamStatsIntervalMs: 1000 });
});

test.after.always(async () => {
  await http?.stop();
  await dep?.stop();
});

async function scrape(): Promise<Series[]> {
  const r = await http.get("/metrics");
  if (r.status !== 200) throw new Error(`metrics answered ${r.status}`);
  return parseExposition(r.text);
}

/** Scrapes until `check` holds (the JetStream figures are collected periodically, not per scrape). */
async function scrapeUntil(check: (s: Series[]) => boolean, ms = 10_000): Promise<Series[]> {
  const until = Date.now() + ms;
  for (;;) {
    const s = await scrape();
    if (check(s) || Date.now() > until) return s;
    await new Promise((r) => setTimeout(r, 200));
  }
}

test.serial("healthz and readyz answer in plain HTTP and in HTTPS without a client certificate", async (t) => {
  const health = await http.get("/healthz");
  t.is(health.status, 200);
  t.deepEqual(health.json(), { status: "ok" });
  const ready = await http.get("/readyz");
  t.is(ready.status, 200);
  const r = ready.json<{ ready: boolean; checks: Record<string, { ok: boolean }> }>();
  t.true(r.ready);
  t.deepEqual(Object.keys(r.checks).sort(), ["listener", "nats", "platform_account", "registry"]);
  const overTls = await http.request("GET", "/readyz");
  t.is(overTls.status, 200, "HTTPS without a client certificate reads readiness too");
  const metricsOverTls = await http.request("GET", "/metrics");
  t.is(metricsOverTls.status, 200);
  t.regex(String(metricsOverTls.headers["content-type"]), /^text\/plain/);
});

test.serial("N messages published by a tenant's client add N to that tenant's counters, and only that tenant's", async (t) => {
  const before = await scrape();
  const nc = await dep.v3(await dep.edge("acme-corp", "metrics-pub"));
  t.teardown(() => nc.close());
  const listener = await dep.v3(await dep.edge("acme-corp", "metrics-sub"));
  t.teardown(() => listener.close());
  const N = 25;
  let received = 0;
  const done = new Promise<void>((resolve) => {
    listener.subscribe("metrics.count", {
      callback: () => {
        if (++received === N) resolve();
      },
    });
  });
  await listener.flush();
  const payload = "0123456789"; // 10 bytes
  for (let i = 0; i < N; i++) nc.publish("metrics.count", payload);
  await nc.flush();
  await done;
  const after = await scrape();
  const delta = (name: string, tenant: string): number => valueOf(after, name, { tenant }) - valueOf(before, name, { tenant });
  t.is(delta("tenant_gateway_messages_in_total", "acme-corp"), N);
  t.is(delta("tenant_gateway_bytes_in_total", "acme-corp"), N * payload.length);
  t.is(delta("tenant_gateway_messages_out_total", "acme-corp"), N, "delivered once to the one subscriber");
  t.is(delta("tenant_gateway_bytes_out_total", "acme-corp"), N * payload.length);
  t.is(delta("tenant_gateway_connections_accepted_total", "acme-corp"), 2);
  t.is(valueOf(after, "tenant_gateway_connections_open", { tenant: "acme-corp" }), 2);
  t.is(delta("tenant_gateway_messages_in_total", "globex"), 0, "another tenant's counters do not move");
  t.true(valueOf(after, "tenant_gateway_sessions", { worker: "0" }) >= 2);
  t.true(valueOf(after, "tenant_gateway_handshake_seconds_count") >= 2);

  // A closed session's counts stay in the totals.
  await nc.close();
  await dep.logs.waitFor((l) => l.event === "session_closed" && l.component === "metrics-pub");
  const closed = await scrape();
  t.is(valueOf(closed, "tenant_gateway_messages_in_total", { tenant: "acme-corp" }), valueOf(after, "tenant_gateway_messages_in_total", { tenant: "acme-corp" }));
  t.is(valueOf(closed, "tenant_gateway_connections_open", { tenant: "acme-corp" }), 1);
});

test.serial("refused connections are counted by tenant and code; a refused frame by tenant", async (t) => {
  const before = await scrape();
  const intruder = await dep.platformIdentity("intruder");
  await t.throwsAsync(dep.v3(intruder, { timeout: 3000 }));
  await dep.logs.waitFor((l) => l.event === "connection_refused" && l.code === "platform_identity_not_allowed");
  const nc = await dep.v3(await dep.edge("globex", "frames"));
  t.teardown(() => nc.close());
  nc.publish("events.*", "wildcards are refused");
  await nc.flush().catch(() => undefined);
  await dep.logs.waitFor((l) => l.component === "frames" && l.code === "subject_wildcard");
  const after = await scrape();
  t.is(valueOf(after, "tenant_gateway_connections_refused_total", { tenant: "_platform", code: "platform_identity_not_allowed" }) - valueOf(before, "tenant_gateway_connections_refused_total", { tenant: "_platform", code: "platform_identity_not_allowed" }), 1);
  t.is(valueOf(after, "tenant_gateway_frames_refused_total", { tenant: "globex" }) - valueOf(before, "tenant_gateway_frames_refused_total", { tenant: "globex" }), 1);
});

test.serial("a load balancer's TCP probe is counted, not logged as a warning", async (t) => {
  const before = await scrape();
  const probe = net.connect({ host: "127.0.0.1", port: dep.gateway.port });
  probe.on("error", () => undefined);
  await once(probe, "connect");
  const port = probe.localPort;
  probe.end();
  const line = await dep.logs.waitFor((l) => l.remote === `127.0.0.1:${port}`);
  t.is(line.level, 20, "logged at debug level only");
  t.true(line.probe);
  const after = await scrape();
  t.is(valueOf(after, "tenant_gateway_probe_connections_total") - valueOf(before, "tenant_gateway_probe_connections_total"), 1);
  t.false(dep.logs.lines.some((l) => l.remote === `127.0.0.1:${port}` && (l.level as number) >= 40), "no warning about it");
  t.is(valueOf(after, "tenant_gateway_connections_refused_total", { tenant: "_unknown", code: "client_closed" }), valueOf(before, "tenant_gateway_connections_refused_total", { tenant: "_unknown", code: "client_closed" }));
});

test.serial("JetStream API requests and consumer lag per tenant stream", async (t) => {
  const before = await scrape();
  const nc = await dep.v3(await dep.edge("initech", "js-metrics"));
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await jsm.streams.info("events");
  await t.throwsAsync(jsm.streams.add({ name: "forbidden", subjects: ["forbidden.>"] }));
  const js = jetstream(nc);
  const M = 7;
  for (let i = 0; i < M; i++) await js.publish("events.lag.test", `m${i}`);
  await jsm.consumers.add("events", { durable_name: "lagger", ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, filter_subject: "events.lag.>" });
  const mid = await scrape();
  t.true(valueOf(mid, "tenant_gateway_jetstream_api_requests_total", { tenant: "initech" }) - valueOf(before, "tenant_gateway_jetstream_api_requests_total", { tenant: "initech" }) >= 2, "the API's INFO and the stream's INFO");
  t.is(valueOf(mid, "tenant_gateway_jetstream_api_refused_total", { tenant: "initech" }) - valueOf(before, "tenant_gateway_jetstream_api_refused_total", { tenant: "initech" }), 1);

  const lagging = await scrapeUntil((s) => valueOf(s, "tenant_gateway_jetstream_consumer_lag_messages", { tenant: "initech", stream: "events" }) === M);
  t.is(valueOf(lagging, "tenant_gateway_jetstream_consumer_lag_messages", { tenant: "initech", stream: "events" }), M, "the consumer has every message still to take");
  t.is(valueOf(lagging, "tenant_gateway_jetstream_stream_messages", { tenant: "initech", stream: "events" }), M);
  t.is(valueOf(lagging, "tenant_gateway_jetstream_consumers", { tenant: "initech", stream: "events" }), 1);
  t.is(valueOf(lagging, "tenant_gateway_jetstream_stats_up"), 1);

  // Consume three and ack them: the lag drops by three.
  const consumer = await js.consumers.get("events", "lagger");
  const batch = await consumer.fetch({ max_messages: 3, expires: 2000 });
  for await (const m of batch) m.ack();
  await nc.flush();
  const caughtUp = await scrapeUntil((s) => valueOf(s, "tenant_gateway_jetstream_consumer_lag_messages", { tenant: "initech", stream: "events" }) === M - 3);
  t.is(valueOf(caughtUp, "tenant_gateway_jetstream_consumer_lag_messages", { tenant: "initech", stream: "events" }), M - 3);
});

test.serial("every series is labelled by tenant, code, result, worker or stream only: never a session or a subject", async (t) => {
  const series = await scrape();
  const allowed = new Set(["tenant", "code", "result", "worker", "stream", "le"]);
  const own = series.filter((s) => s.name.startsWith("tenant_gateway_"));
  t.true(own.length > 20);
  for (const s of own) for (const label of Object.keys(s.labels)) t.true(allowed.has(label), `${s.name} has label ${label}`);
  const tenants = new Set(own.map((s) => s.labels.tenant).filter((v) => v !== undefined));
  for (const tenant of tenants) t.true(["acme-corp", "globex", "initech", "_platform", "_unknown"].includes(tenant!), `tenant label ${tenant}`);
  t.true(series.some((s) => s.name === "nodejs_eventloop_lag_seconds"), "the process's own metrics are there too");
});

test.serial("the Grafana dashboard (deploy/grafana) uses only series the gateway exports", async (t) => {
  const dashboard = JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, "deploy", "grafana", "tenant-gateway.json"), "utf8")) as { panels: Array<{ targets?: Array<{ expr: string }> }> };
  // Every metric the exposition declares (a labelled counter has no series until it first counts).
  const text = (await http.get("/metrics")).text;
  const names = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) => (type === "histogram" ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name!])));
  const used = new Set(dashboard.panels.flatMap((p) => p.targets ?? []).flatMap((target) => [...target.expr.matchAll(/\b((?:tenant_gateway|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!)));
  t.true(used.size > 15);
  for (const name of used) t.true(names.has(name), `${name} is exported`);
});

test.serial("readiness turns false in lame duck, while health stays true", async (t) => {
  const own = await startDeployment({ tenants: ["acme-corp"] });
  const ownHttp = await startHttp(own);
  t.teardown(async () => {
    await ownHttp.stop();
    await own.cp.close().catch(() => undefined);
    await own.nats.stop();
  });
  t.is((await ownHttp.get("/readyz")).status, 200);
  // A client that stays during the drain keeps the gateway in lame duck.
  const stays = await own.v3(await own.edge("acme-corp"), { reconnect: false });
  t.teardown(() => stays.close().catch(() => undefined));
  const stopping = own.gateway.shutdown(1500);
  await own.logs.waitFor((l) => l.event === "lame_duck");
  const during = await ownHttp.get("/readyz");
  t.is(during.status, 503);
  const body = during.json<{ ready: boolean; checks: { listener: { ok: boolean; detail: string } } }>();
  t.false(body.ready);
  t.regex(body.checks.listener.detail, /lame duck/);
  t.is((await ownHttp.get("/healthz")).status, 200, "the process is alive");
  await stopping;
});

test("init writes NATS's monitoring port into nats-server.conf: /varz and /healthz answer beside the gateway's", async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const free = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  // A client port whose monitoring port (4000 above) is free too.
  const natsPort = free > 61535 ? free - 4000 : free;
  const layout = new DataLayout(tempDir("ntg-init-http-"));
  const init = await runCli(["init", "--data-dir", layout.dir, "--nats-port", String(natsPort)], { TENANT_GATEWAY_NATS: "" });
  t.is(init.code, 0, init.stderr);
  const conf = await fs.readFile(new NatsFiles(layout).serverConfig, "utf8");
  t.regex(conf, new RegExp(`^http_port: ${natsPort + 4000}$`, "m"));
  // Its leaf node listener has a fixed port that another deployment on this machine may hold.
  await fs.writeFile(new NatsFiles(layout).serverConfig, conf.replace(/^(leafnodes: \{\n {2}listen: "[^"]+:)\d+"/m, '$1-1"'));
  const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
  t.teardown(() => nats.stop());
  const varz = await fetch(`http://127.0.0.1:${natsPort + 4000}/varz`).then((r) => r.json() as Promise<{ port: number; http_port: number }>);
  t.is(varz.port, natsPort);
  t.is(varz.http_port, natsPort + 4000);
  t.is((await fetch(`http://127.0.0.1:${natsPort + 4000}/healthz`)).status, 200);
});

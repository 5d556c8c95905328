/**
 * Key-value buckets, object stores and services inside a tenant, through the gateway, with the
 * stock v3 clients: buckets and stores are declared by the operator in templates (the examples in
 * streams/examples/), provisioned per tenant, bound by edge clients in their own view; what edge
 * clients may write is the template's to say; the platform writes a tenant's bucket through the
 * API prefix, audited; service discovery sees only the tenant's own services.
 */
import path from "node:path";
import test from "ava";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import { Svcm, type Service } from "@nats-io/services";
import type { NatsConnection } from "@nats-io/transport-node";
import { BUILTIN_TEMPLATES_DIR } from "../streams/templates.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

const EXAMPLES = path.join(path.dirname(BUILTIN_TEMPLATES_DIR), "examples");
let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ streamTemplates: [BUILTIN_TEMPLATES_DIR, EXAMPLES] });
});

test.after.always(async () => {
  await dep?.stop();
});

async function edge(slug: string, component: string): Promise<NatsConnection> {
  return dep.v3(await dep.edge(slug, component));
}

/** @nats-io/services (3.0.0-25, its newest release) is typed against an older nats-core; the connection is the same at run time. */
function services(nc: NatsConnection): ConstructorParameters<typeof Svcm>[0] {
  return nc as unknown as ConstructorParameters<typeof Svcm>[0];
}

/** The first async error the connection reports (a -ERR from the gateway). */
function nextError(nc: NatsConnection): Promise<string> {
  return (async () => {
    for await (const s of nc.status()) if (s.type === "error") return String(s.error?.message ?? s.error);
    return "closed without an error";
  })();
}

test("an edge client binds its tenant's buckets and stores, and sees their streams in its own view", async (t) => {
  const nc = await edge("acme-corp", "kv-view");
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  const names: string[] = [];
  for await (const name of jsm.streams.names()) names.push(name);
  t.deepEqual(names.sort(), ["KV_config", "KV_state", "OBJ_blobs", "events", "logs", "telemetry"]);
  const kvInfo = await jsm.streams.info("KV_state");
  t.deepEqual(kvInfo.config.subjects, ["$KV.state.>"], "the bucket's own subjects, no tenant prefix");
  t.is(kvInfo.config.max_msgs_per_subject, 1);
  t.true(kvInfo.config.allow_rollup_hdrs && kvInfo.config.deny_delete && kvInfo.config.allow_direct);
  const objInfo = await jsm.streams.info("OBJ_blobs");
  t.deepEqual(objInfo.config.subjects.sort(), ["$O.blobs.C.>", "$O.blobs.M.>"]);
  // Creating one is the operator's job.
  await t.throwsAsync(new Kvm(nc).create("mine"), { message: /not permitted for edge clients/ });
});

test("KV put, get, history, keys and watch in a writable bucket; another tenant's bucket of the same name is its own", async (t) => {
  const acme = await edge("acme-corp", "kv-writer");
  const globex = await edge("globex", "kv-writer");
  t.teardown(async () => {
    await acme.close();
    await globex.close();
  });
  const kv = await new Kvm(acme).open("state");
  const watch = await kv.watch({ key: "agent.>" });
  const watched: string[] = [];
  const done = (async () => {
    for await (const e of watch) {
      watched.push(`${e.key}=${e.string()}`);
      if (watched.length === 3) break;
    }
  })();
  await kv.put("agent.one", "1");
  await kv.put("agent.two", "2");
  await kv.put("agent.one", "1b");
  await done;
  t.deepEqual(watched, ["agent.one=1", "agent.two=2", "agent.one=1b"]);
  t.is((await kv.get("agent.one"))?.string(), "1b");
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  t.deepEqual(keys.sort(), ["agent.one", "agent.two"]);
  const history: string[] = [];
  for await (const e of await kv.history({ key: "agent.one" })) history.push(e.string());
  t.deepEqual(history, ["1b"], "history 1 keeps the last value only");
  await kv.delete("agent.two");
  t.is((await kv.get("agent.two"))?.operation, "DEL");

  const theirs = await new Kvm(globex).open("state");
  t.is(await theirs.get("agent.one"), null, "globex's bucket of the same name holds none of acme-corp's keys");
});

test("a bucket edge clients may only read refuses their writes with -ERR, and the session goes on", async (t) => {
  const nc = await edge("acme-corp", "kv-reader");
  t.teardown(() => nc.close());
  const kv = await new Kvm(nc).open("config");
  const error = nextError(nc);
  const put = kv.put("agent.one", "mine now").catch((e: Error) => e);
  t.regex(await error, /Permissions Violation for Publish to "\$KV\.config\.agent\.one"/);
  t.true((await put) instanceof Error, "the put is not acknowledged");
  t.is(await kv.get("agent.one"), null);
  await nc.flush();
  t.false(nc.isClosed());
});

test("the platform writes a tenant's bucket through $JS.<slug>.API (audited), and the tenant's edge client reads and watches it", async (t) => {
  const admin = await dep.v3(await dep.admin());
  const agent = await edge("acme-corp", "config-reader");
  t.teardown(async () => {
    await admin.close();
    await agent.close();
  });
  const config = await new Kvm(agent).open("config");
  const watch = await config.watch({ key: "agent-001.>" });
  const seen = (async () => {
    for await (const e of watch) return `${e.key}=${e.string()}`;
    return "";
  })();
  const platformKv = await new Kvm(jetstream(admin, { apiPrefix: "$JS.acme-corp.API" })).open("config");
  await platformKv.put("agent-001.interval", "30s");
  t.is(await seen, "agent-001.interval=30s");
  t.is((await config.get("agent-001.interval"))?.string(), "30s");
  // Not globex's bucket.
  const globexAgent = await edge("globex", "config-reader");
  t.teardown(() => globexAgent.close());
  t.is(await (await new Kvm(globexAgent).open("config")).get("agent-001.interval"), null);
  const audit = await dep.logs.waitFor((l) => l.event === "audit" && l.operation === "kv_write" && l.tenant === "acme-corp");
  t.is(audit.subject, "$JS.acme-corp.API.$KV.config.agent-001.interval");
  // A bucket whose template keeps platform sessions to reading is not written.
  const state = await new Kvm(jetstream(admin, { apiPrefix: "$JS.acme-corp.API" })).open("state");
  const error = nextError(admin);
  void state.put("agent-001.forced", "x").catch(() => undefined);
  t.regex(await error, /Permissions Violation for Publish to "\$JS\.acme-corp\.API\.\$KV\.state\.agent-001\.forced"/);
});

test("object store put, get, list, overwrite and delete by an edge client", async (t) => {
  const nc = await edge("acme-corp", "blob-writer");
  t.teardown(() => nc.close());
  const os = await new Objm(nc).open("blobs");
  const big = new Uint8Array(300_000).map((_, i) => i % 251);
  await os.putBlob({ name: "rules/pack-1.json" }, big);
  const back = await os.getBlob("rules/pack-1.json");
  t.deepEqual(back, big);
  await os.putBlob({ name: "rules/pack-1.json" }, new TextEncoder().encode("v2"));
  t.is(new TextDecoder().decode((await os.getBlob("rules/pack-1.json"))!), "v2", "an overwrite purges the old chunks through the gateway");
  await os.putBlob({ name: "mibs/if-mib.txt" }, new TextEncoder().encode("IF-MIB"));
  t.deepEqual((await os.list()).map((i) => i.name).sort(), ["mibs/if-mib.txt", "rules/pack-1.json"]);
  await os.delete("mibs/if-mib.txt");
  t.deepEqual((await os.list()).map((i) => i.name), ["rules/pack-1.json"]);
  const si = await (await jetstreamManager(nc)).streams.info("OBJ_blobs");
  t.true(si.state.messages <= 4, `old chunks are gone (${si.state.messages} messages left)`);
});

test("a purge may only name the bucket's or store's own subjects", async (t) => {
  const nc = await edge("acme-corp", "purger");
  t.teardown(() => nc.close());
  const jsm = await jetstreamManager(nc);
  await t.throwsAsync(jsm.streams.purge("OBJ_blobs"), { message: /needs a JSON request body/ });
  await t.throwsAsync(jsm.streams.purge("OBJ_blobs", { keep: 1 }), { message: /filter is required/ });
  await t.throwsAsync(jsm.streams.purge("OBJ_blobs", { filter: "events.>" }), { message: /must name subjects of this bucket or store/ });
  await t.throwsAsync(jsm.streams.purge("events", { filter: "events.>" }), { message: /not permitted for edge clients/ });
  await t.throwsAsync(jsm.streams.purge("KV_config", { filter: "$KV.config.>" }), { message: /not permitted for edge clients/ }, "a read-only bucket is not purged");
});

test("services inside a tenant: a request reaches the endpoint, and discovery sees only the tenant's own services", async (t) => {
  const acme = await edge("acme-corp", "svc-host");
  const globex = await edge("globex", "svc-host");
  const client = await edge("acme-corp", "svc-client");
  t.teardown(async () => {
    await acme.close();
    await globex.close();
    await client.close();
  });
  const mine: Service = await new Svcm(services(acme)).add({ name: "checker", version: "1.0.0" });
  mine.addEndpoint("check", (_err, m) => m.respond(`checked ${m.string()}`));
  const theirs: Service = await new Svcm(services(globex)).add({ name: "decoy", version: "1.0.0" });
  theirs.addEndpoint("decoy", (_err, m) => m.respond("decoy"));
  await Promise.all([acme.flush(), globex.flush()]);
  t.is((await client.request("check", "disk")).string(), "checked disk");
  const discovery = new Svcm(services(client)).client();
  const names = async (it: Promise<AsyncIterable<{ name: string }>>): Promise<string[]> => {
    const out: string[] = [];
    for await (const r of await it) out.push(r.name);
    return out;
  };
  t.deepEqual(await names(discovery.ping()), ["checker"]);
  t.deepEqual(await names(discovery.info()), ["checker"]);
  t.deepEqual(await names(discovery.stats()), ["checker"]);
  await t.throwsAsync(names(discovery.ping("decoy")), { message: /no responders/ }, "globex's service is not there at all");
  // Inside NATS the discovery subjects are under the tenant's prefix: the platform can discover them too.
  const admin = await dep.v3(await dep.admin());
  t.teardown(() => admin.close());
  const ping = await admin.request("acme-corp.$SRV.PING", "");
  t.is((ping.json() as { name: string }).name, "checker");
});

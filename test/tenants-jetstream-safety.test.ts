/**
 * Routine operations leave a tenant's JetStream working, on every supported nats-server: suspend
 * and resume, `sync` and a gateway's start-up sync while sessions and durable consumers are open,
 * plan changes in either direction. nats-server before 2.10.28 / 2.11.2 closes an account's
 * internal JetStream clients when an account JWT whose connection limit the account's clients
 * (connections + two per stream + one per consumer) exceed is applied — a suspension's limit of 0
 * always did. Streams then answer INFO but take no message until a server restart. Here: the
 * tenant-facing behaviour through the gateway with stock clients, and what `sync` reports.
 */
import { promises as fs } from "node:fs";
import test, { type ExecutionContext } from "ava";
import { decode, type Account } from "@nats-io/jwt";
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { lookupAccountJwt, pushAccountJwt, sameAccountClaims } from "../accounts/claims.ts";
import { encodeAccountJwt } from "../accounts/jwts.ts";
import { AccountJetStreamProbe, dropsJetStreamClientsOnAccountUpdate, judgeJetStream, type ServerJetStreamView } from "../accounts/jetstream-health.ts";
import { builtinPlans, getPlan, plansFilePath, type PlanFile } from "../accounts/plans.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { REVOKE_FOREVER, tenantAccountClaims } from "../accounts/tenant-account.ts";
import { TenantService } from "../accounts/tenants.ts";
import { mintEdgeUser } from "../accounts/user-jwt.ts";
import { nativeJwtAuthenticator } from "../accounts/nats-control.ts";
import { createLogger } from "../common/logger.ts";
import { resolveConfig } from "../gateway/config.ts";
import { Gateway } from "../gateway/gateway.ts";
import { connect } from "@nats-io/transport-node";
import { runCliJson } from "./helpers/cli.ts";
import { LogCapture, startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DROPPED_CLIENT = /maximum account active connections exceeded/;

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: [] });
  // A plan with little disk, to hold more data than it allows without writing gigabytes.
  const file = plansFilePath(dep.layout.dir);
  const plans = JSON.parse(await fs.readFile(file, "utf8")) as PlanFile;
  plans.plans.tiny = { connections: 10, subscriptions: 100, max_payload: MiB, jetstream: { memory: 8 * MiB, disk: 6 * MiB, streams: 16, consumers: 256 } };
  await fs.writeFile(file, JSON.stringify(plans, null, 2));
});

test.after.always(async () => {
  await dep?.stop();
});

const cliJson = <T>(args: string[]): ReturnType<typeof runCliJson<T>> => runCliJson<T>([...args, "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);

async function createTenant(slug: string, plan: string): Promise<void> {
  await dep.tenants.create(slug, { plan });
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === slug && l.status === "active");
}

/** An edge session through the gateway (stock @nats-io/transport-node client), closed after the test. */
async function session(t: ExecutionContext, slug: string, component = "agent-001"): Promise<NatsConnection> {
  const nc = await dep.v3(await dep.edge(slug, component));
  t.teardown(() => (nc.isClosed() ? undefined : nc.close()));
  return nc;
}

/** The tenant's JetStream as the operator sees it (a control user in the account, not through the gateway). */
async function operatorJsm(slug: string): Promise<JetStreamManager> {
  const { record, signingKey } = await dep.tenants.load(slug);
  return jetstreamManager(await dep.cp.accountConnection(record.account_public_key, signingKey, "test-operator"));
}

/** Every default stream acks a publish from the edge client, and every named durable consumer delivers the next message. */
async function assertJetStreamWorks(t: ExecutionContext, nc: NatsConnection, consumers: string[], label: string): Promise<void> {
  const js = jetstream(nc, { timeout: 5000 });
  for (const [stream, subject] of [["events", "events.poller.health"], ["logs", "logs.syslog"], ["telemetry", "otel.metrics"]] as const) {
    const ack = await js.publish(subject, `${label} ${stream}`).catch((err: unknown) => err as Error);
    t.false(ack instanceof Error, `${label}: a publish to ${stream} is acked (${ack instanceof Error ? ack.message : ""})`);
    if (!(ack instanceof Error)) t.is(ack.stream, stream);
  }
  for (const name of consumers) {
    const consumer = await js.consumers.get("events", name);
    const msg = await consumer.next({ expires: 5000 }).catch((err: unknown) => err as Error);
    t.true(msg !== null && !(msg instanceof Error), `${label}: durable consumer ${name} delivers (${msg instanceof Error ? msg.message : "nothing"})`);
    if (msg && !(msg instanceof Error)) await msg.ackAck();
  }
}

/** Lines nats-server logged while `run` ran. */
async function serverLogDuring(run: () => Promise<void>): Promise<string> {
  const before = dep.nats.log().length;
  await run();
  return dep.nats.log().slice(before);
}

async function untilNextSecond(): Promise<void> {
  const next = (Math.floor(Date.now() / 1000) + 1) * 1000;
  while (Date.now() < next) await new Promise((resolve) => setTimeout(resolve, next - Date.now()));
}

/** The claims the server holds for the tenant's account. */
async function serverClaims(slug: string): Promise<Account> {
  const { record } = await dep.tenants.load(slug);
  const jwt = await lookupAccountJwt(await dep.cp.system(), record.account_public_key);
  return decode<Account>(jwt!).nats as Account;
}

async function serverVersion(): Promise<string> {
  return (await dep.cp.system()).info!.version;
}

test.serial("suspend then resume: an edge client publishes to every stream through the gateway and gets acks, and a durable consumer still delivers", async (t) => {
  await createTenant("umbrella", "free");
  const nc = await session(t, "umbrella");
  const jsm = await jetstreamManager(nc);
  await jsm.consumers.add("events", { durable_name: "worker", ack_policy: AckPolicy.Explicit });
  await assertJetStreamWorks(t, nc, [], "before");

  let suspendedAt = "";
  const log = await serverLogDuring(async () => {
    const started = performance.now();
    suspendedAt = (await dep.tenants.suspend("umbrella")).suspended_at!;
    await nc.closed();
    t.true(performance.now() - started < 1000, "the live session is cut within a second");

    const claims = await serverClaims("umbrella");
    t.not(claims.limits?.conn, 0, "no connection limit of 0 (nats-server 2.9 closes the account's JetStream clients for it)");
    t.is(claims.revocations?.["*"], REVOKE_FOREVER, "every user is revoked, whenever issued");
    // A user minted in a later second than the suspension, with the tenant's own signing key, directly to NATS.
    await untilNextSecond();
    const { record, signingKey } = await dep.tenants.load("umbrella");
    const identity = { kind: "edge" as const, cn: "agent-001.partition-1.umbrella.serviceradar", tenant: "umbrella", component: "agent-001", partition: "partition-1", notAfter: new Date(Date.now() + 3_600_000), fingerprint: "later" };
    const later = await mintEdgeUser(identity, { account: record.account_public_key, signingKey });
    t.true(decode(later.jwt).iat > Date.parse(suspendedAt) / 1000);
    await t.throwsAsync(connect({ servers: dep.nats.url, authenticator: nativeJwtAuthenticator(later.jwt, later.user), reconnect: false }), undefined, "a user minted after the suspension is refused by NATS");

    const seen = dep.logs.lines.length;
    await dep.tenants.resume("umbrella");
    await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "umbrella" && l.status === "active" && dep.logs.lines.indexOf(l) >= seen);
  });
  t.notRegex(log, DROPPED_CLIENT, "nats-server closed none of the account's clients for its connection limit");

  const again = await session(t, "umbrella");
  await assertJetStreamWorks(t, again, ["worker"], "after resume");
  const next = await (await jetstream(again).consumers.get("events", "worker")).next({ expires: 5000 });
  t.is(next?.string(), "after resume events", "the consumer delivers what was published after the resume");
  await next?.ackAck();
});

test.serial("sync and a gateway's start-up sync with open sessions and durable consumers leave JetStream working and report the accounts unchanged", async (t) => {
  // Free plan: 10 connections. 4 sessions + 3 streams × 2 + 4 consumers = 14 clients in the account.
  await createTenant("initech", "free");
  const sessions = await Promise.all(["agent-001", "agent-002", "agent-003", "agent-004"].map((c) => session(t, "initech", c)));
  const jsm = await jetstreamManager(sessions[0]!);
  const consumers = ["w1", "w2", "w3", "w4"];
  for (const name of consumers) await jsm.consumers.add("events", { durable_name: name, ack_policy: AckPolicy.Explicit });

  const stored = await dep.tenants.get("initech");
  const log = await serverLogDuring(async () => {
    for (let round = 1; round <= 3; round++) {
      // Each round in a later second: re-signed within one second, a JWT is byte-identical and nats-server skips it.
      await untilNextSecond();
      const result = await dep.tenants.sync();
      t.like(
        result.tenants.find((r) => r.slug === "initech"),
        { result: "unchanged", status: "active", jetstream: { status: "ok", streams: 3, consumers: 4 } },
        `sync #${round}`,
      );
      t.is(result.platform_result, "unchanged");
    }

    const logs = new LogCapture();
    const config = await resolveConfig({ env: {}, flags: { listen: "127.0.0.1:0", nats: dep.nats.url, data_dir: dep.layout.dir, sync_on_start: true, drain_timeout_ms: 500, log_level: "info", registry_poll_ms: 100 } });
    const restarted = await Gateway.start({ ...config }, createLogger({ level: "info", destination: logs }));
    try {
      t.like(await logs.waitFor((l) => l.event === "sync"), { failed: 0 }, "the start-up sync fails no tenant");
    } finally {
      await restarted.shutdown(0);
    }
  });
  t.notRegex(log, DROPPED_CLIENT);
  t.true(
    sessions.every((nc) => !nc.isClosed()),
    "no session was cut",
  );
  t.deepEqual(await dep.tenants.get("initech"), stored, "the registry record was not rewritten (gateways see no change)");
  await assertJetStreamWorks(t, sessions[1]!, consumers, "after syncs and a gateway start");
});

test.serial("tenant set-plan pro → free → pro through the CLI resizes the streams; they keep taking messages and streams apply finds nothing to change", async (t) => {
  await createTenant("initrode", "pro");
  const nc = await session(t, "initrode");
  await jetstreamManager(nc).then((jsm) => jsm.consumers.add("events", { durable_name: "worker", ack_policy: AckPolicy.Explicit }));
  const plans = await dep.cp.plans();
  const share = (plan: string): number => Math.floor(getPlan(plans, plan).jetstream.disk / 3);
  const maxBytes = async (): Promise<number[]> => {
    const jsm = await operatorJsm("initrode");
    return Promise.all(["events", "logs", "telemetry"].map(async (s) => (await jsm.streams.info(s)).config.max_bytes));
  };
  t.deepEqual(await maxBytes(), [share("pro"), share("pro"), share("pro")]);

  for (const plan of ["free", "pro"]) {
    const moved = await cliJson<{ plan: string; streams: Array<{ name: string; max_bytes: number }> }>(["tenant", "set-plan", "initrode", plan]);
    t.is(moved.code, 0, moved.stderr);
    t.is(moved.json.plan, plan);
    t.deepEqual(
      moved.json.streams.map((s) => s.max_bytes),
      [share(plan), share(plan), share(plan)],
      `set-plan ${plan} reports the resized streams`,
    );
    t.deepEqual(await maxBytes(), [share(plan), share(plan), share(plan)], `the streams have plan ${plan}'s share`);
    t.is((await serverClaims("initrode")).limits?.disk_storage, getPlan(plans, plan).jetstream.disk);

    const applied = await cliJson<{ tenants: Array<{ result: string; streams?: Array<{ stream: string; action: string }> }> }>(["streams", "apply", "initrode"]);
    t.is(applied.code, 0, applied.stderr);
    t.deepEqual(
      applied.json.tenants[0]?.streams?.map((r) => `${r.stream}:${r.action}`),
      ["events:unchanged", "logs:unchanged", "telemetry:unchanged"],
      `streams apply after set-plan ${plan}`,
    );
    await assertJetStreamWorks(t, nc, ["worker"], `on plan ${plan}`);
  }
  t.is(share("free"), Math.floor(GiB / 3));
});

test.serial("tenant set-plan refuses a plan the streams' data does not fit (streams_exceed_plan) and changes nothing; after a purge it goes through", async (t) => {
  await createTenant("hooli", "pro");
  const nc = await session(t, "hooli");
  const js = jetstream(nc);
  for (let i = 0; i < 3; i++) await js.publish("events.bulk", new Uint8Array(MiB - 1024));
  const jsm = await operatorJsm("hooli");
  const before = (await jsm.streams.info("events")).config.max_bytes;
  const claimsBefore = await lookupAccountJwt(await dep.cp.system(), (await dep.tenants.load("hooli")).record.account_public_key);

  const refused = await cliJson<{ error: { code: string; message: string } }>(["tenant", "set-plan", "hooli", "tiny"]);
  t.is(refused.code, 1);
  t.is(refused.json.error.code, "streams_exceed_plan");
  t.regex(refused.json.error.message, /stream events holds 3\.0 MiB, plan "tiny" gives it 2 MiB/);
  t.is((await dep.tenants.get("hooli")).plan, "pro", "the record keeps its plan");
  t.is((await jsm.streams.info("events")).config.max_bytes, before, "the stream keeps its size");
  t.is(await lookupAccountJwt(await dep.cp.system(), (await dep.tenants.load("hooli")).record.account_public_key), claimsBefore, "the account was not pushed");

  await jsm.streams.purge("events");
  const moved = await cliJson<{ plan: string }>(["tenant", "set-plan", "hooli", "tiny"]);
  t.is(moved.code, 0, moved.stderr);
  t.is((await jsm.streams.info("events")).config.max_bytes, 2 * MiB);
  await assertJetStreamWorks(t, nc, [], "on plan tiny");
});

test.serial("sync brings streams that an earlier plan change left above the account's storage back under it; streams apply then succeeds", async (t) => {
  await createTenant("wedged", "pro");
  // What set-plan did before it resized streams: the account moved to free, the streams kept pro's share.
  await new TenantService(dep.cp).setPlan("wedged", "free");
  const stuck = await cliJson<{ tenants: Array<{ result: string; error?: { message: string } }> }>(["streams", "apply", "wedged"]);
  t.is(stuck.code, 1, "nats-server refuses every stream change while the streams reserve more than the account allows");
  t.regex(JSON.stringify(stuck.json), /10047/);

  const synced = await dep.tenants.sync();
  t.like(
    synced.tenants.find((r) => r.slug === "wedged"),
    { result: "pushed", jetstream: { status: "ok" } },
  );
  const jsm = await operatorJsm("wedged");
  t.is((await jsm.streams.info("events")).config.max_bytes, Math.floor(GiB / 3));
  t.is((await serverClaims("wedged")).limits?.disk_storage, GiB, "the account is back at the free plan's storage");
  const applied = await cliJson<{ tenants: Array<{ result: string }> }>(["streams", "apply", "wedged"]);
  t.is(applied.code, 0, applied.stderr);
  await assertJetStreamWorks(t, await session(t, "wedged"), [], "after sync");
});

test.serial("a tenant with more JetStream clients than its connection limit keeps every stream and consumer through suspend, resume and plan changes", async (t) => {
  // Free plan: 10 connections; 3 streams × 2 + 6 consumers = 12 internal clients, more than the limit without a single session.
  await createTenant("cyberdyne", "free");
  const consumers = ["c1", "c2", "c3", "c4", "c5", "c6"];
  const setup = await session(t, "cyberdyne");
  const jsm = await jetstreamManager(setup);
  for (const name of consumers) await jsm.consumers.add("events", { durable_name: name, ack_policy: AckPolicy.Explicit });
  await setup.close();

  await dep.tenants.suspend("cyberdyne");
  const seen = dep.logs.lines.length;
  await dep.tenants.resume("cyberdyne");
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "cyberdyne" && l.status === "active" && dep.logs.lines.indexOf(l) >= seen);
  await assertJetStreamWorks(t, await session(t, "cyberdyne", "agent-002"), consumers, "after resume");

  for (const plan of ["tiny", "free"]) {
    await dep.tenants.setPlan("cyberdyne", plan);
    await assertJetStreamWorks(t, await session(t, "cyberdyne", `agent-${plan}`), consumers, `after set-plan ${plan}`);
  }
});

test.serial("a tenant whose streams stopped taking messages is found by sync and, on servers that drop JetStream clients, repaired", async (t) => {
  await createTenant("stark", "free");
  const nc = await session(t, "stark");
  await jetstreamManager(nc).then((jsm) => jsm.consumers.add("events", { durable_name: "worker", ack_policy: AckPolicy.Explicit }));
  const { record } = await dep.tenants.load("stark");
  const plan = getPlan(await dep.cp.plans(), "free");
  const spec = { slug: "stark", id: record.id, plan: "free", account: record.account_public_key, signingKey: record.signing_public_key };
  // What suspension pushed before: a connection limit of 0, then the account as it was.
  const zero = tenantAccountClaims(spec, plan);
  zero.limits = { ...zero.limits, conn: 0 };
  const system = await dep.cp.system();
  const operator = dep.cp.operator.operator;
  await pushAccountJwt(system, await encodeAccountJwt("stark", record.account_public_key, operator, zero), operator.getPublicKey());
  await pushAccountJwt(system, await encodeAccountJwt("stark", record.account_public_key, operator, tenantAccountClaims(spec, plan)), operator.getPublicKey());

  const affected = dropsJetStreamClientsOnAccountUpdate(await serverVersion());
  const seen = await new AccountJetStreamProbe(system).check(record.account_public_key);
  if (affected) {
    t.is(seen.status, "unavailable", `nats-server ${await serverVersion()} dropped the account's JetStream clients`);
    t.true(seen.dead.includes("stream events") && seen.dead.includes("consumer events/worker"), seen.dead.join(", "));
  } else {
    t.is(seen.status, "ok", `nats-server ${await serverVersion()} keeps them`);
  }

  const synced = (await dep.tenants.sync()).tenants.find((r) => r.slug === "stark");
  t.like(synced, { result: "unchanged", jetstream: { status: affected ? "repaired" : "ok" } });
  if (affected) t.true(synced?.jetstream?.dead?.includes("stream logs"), "the report names what had stopped");
  await assertJetStreamWorks(t, await session(t, "stark", "agent-002"), ["worker"], "after sync");
});

test("account claims compare without their issue time and id", async (t) => {
  const operator = NativeKeyPair.create("operator");
  const account = NativeKeyPair.create("account").getPublicKey();
  const spec = { slug: "acme", id: "id-1", plan: "pro", account, signingKey: NativeKeyPair.create("account").getPublicKey() };
  const pro = getPlan(builtinPlans(), "pro");
  const sign = (s: typeof spec & { suspended?: boolean }, plan = pro): Promise<string> => encodeAccountJwt("acme", account, operator, tenantAccountClaims(s, plan));
  const a = await sign(spec);
  // A JWT's issue time is in seconds (and its id a hash of the claims): sign again in the next second.
  await untilNextSecond();
  const b = await sign(spec);
  t.not(a, b);
  t.true(sameAccountClaims(a, b));
  t.false(sameAccountClaims(a, await sign({ ...spec, suspended: true })));
  t.false(sameAccountClaims(a, await sign(spec, getPlan(builtinPlans(), "free"))));
  t.false(sameAccountClaims(a, "not a jwt"));
});

test("the JetStream verdict: a client's subscription on a stream's subject does not hide a dead stream; ephemeral consumers are not judged", (t) => {
  const view = (over: Partial<ServerJetStreamView>): ServerJetStreamView => ({
    server: "N1",
    jsz: {
      stream_detail: [
        { name: "events", config: { subjects: ["t.events.>"] }, consumer_detail: [{ name: "worker", config: { durable_name: "worker" } }, { name: "eph", config: {} }] },
        { name: "logs", config: { subjects: ["t.logs.>"] } },
        { name: "mirror", config: {} },
      ],
    },
    subscriptions: [
      { subject: "t.events.>", cid: 7 },
      { subject: "t.logs.>", cid: 9 },
      { subject: "$JS.ACK.events.worker.*.*.*.*.*", cid: 10 },
    ],
    connectionCids: new Set([42]),
    ...over,
  });
  t.deepEqual(judgeJetStream([view({})]), { status: "ok", streams: 3, consumers: 1, dead: [] });
  // The stream's and the consumer's internal clients are gone; a client (cid 42) still subscribes to t.events.>.
  t.deepEqual(judgeJetStream([view({ subscriptions: [{ subject: "t.events.>", cid: 42 }, { subject: "t.logs.>", cid: 9 }] })]), {
    status: "unavailable",
    streams: 3,
    consumers: 1,
    dead: ["stream events", "consumer events/worker"],
  });
  // A cluster: the stream lives on another server than the one that answered first.
  t.is(judgeJetStream([view({ subscriptions: [] }), view({ server: "N2", jsz: { stream_detail: [] }, subscriptions: [] })]).status, "unavailable");
  t.is(judgeJetStream([view({ subscriptions: [] }), view({ server: "N2" })]).status, "ok");
  t.like(judgeJetStream([{ server: "N1", jsz: undefined, jszError: 'account "A" not jetstream enabled', subscriptions: [], connectionCids: new Set() }]), {
    status: "unavailable",
    dead: ['JetStream: account "A" not jetstream enabled'],
  });
});

test("servers that close internal JetStream clients on account updates: before 2.10.28 and 2.11.2", (t) => {
  for (const v of ["2.9.10", "2.9.25", "2.10.0", "2.10.27", "2.11.0", "2.11.1", "v2.2.0"]) t.true(dropsJetStreamClientsOnAccountUpdate(v), v);
  for (const v of ["2.10.28", "2.10.29", "2.11.2", "2.11.2-RC.1", "2.12.0", "2.15.3", "3.0.0"]) t.false(dropsJetStreamClientsOnAccountUpdate(v), v);
});

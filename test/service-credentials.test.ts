/**
 * `tenant-gateway tenant creds`: a standard .creds file for a platform service that runs inside one
 * tenant's account (a rules engine, a database writer), used with stock clients straight against
 * nats-server. Its user stays in the tenant's namespace (its --pub / --sub in the edge view,
 * prefixed), reads the tenant's streams through JetStream, is listed by tenant show, and once
 * revoked is cut at once and refused from then on.
 */
import { promises as fs } from "node:fs";
import test from "ava";
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream } from "@nats-io/jetstream";
import { startReplicas } from "./helpers/replicas.ts";

const deployment = startReplicas({ store: "dir", replicas: 1, tenants: ["acme-corp", "globex"] });
test.after.always(async () => (await deployment).stop());

interface CredsJson {
  tenant: string;
  file: string;
  credential: { name: string; user_public_key: string; publish: string[]; subscribe: string[]; jetstream: boolean; expires_at?: string };
}

async function withCreds(file: string): Promise<NatsConnection> {
  const dep = await deployment;
  return connect({ servers: dep.nats.url, authenticator: credsAuthenticator(await fs.readFile(file)), reconnect: false });
}

/** The next async error the connection reports (a permissions violation arrives that way). */
function nextError(nc: NatsConnection): Promise<string> {
  return (async () => {
    for await (const s of nc.status()) if (s.type === "error") return s.error.message;
    return "closed";
  })();
}

test.serial("a service's .creds connect to NATS directly, scoped to the tenant's namespace: its own subjects work, another tenant's and other namespaces are denied", async (t) => {
  const dep = await deployment;
  const issued = await dep.cli<CredsJson>(["tenant", "creds", "acme-corp", "rules-engine", "--pub", "events.>", "--pub", "alerts.>", "--sub", "events.>"]);
  t.is(issued.code, 0, issued.stderr);
  t.like(issued.json.credential, { name: "rules-engine", publish: ["acme-corp.events.>", "acme-corp.alerts.>"], subscribe: ["acme-corp.events.>"], jetstream: true });
  t.is(issued.json.file, dep.layout.tenantCreds("acme-corp", "rules-engine"));
  t.is((await fs.stat(issued.json.file)).mode & 0o777, 0o600);
  const text = await fs.readFile(issued.json.file, "utf8");
  t.regex(text, /BEGIN NATS USER JWT[\s\S]+BEGIN USER NKEY SEED/);
  // The user's seed (SU + 56 base32 characters) is in the file and nowhere in the command's output.
  const seed = /\bSU[A-Z2-7]{56}\b/.exec(text)?.[0];
  t.truthy(seed, "the file holds the user's seed");
  const output = JSON.stringify(issued.json) + issued.stderr;
  t.false(output.includes(seed!), "the seed is in the file only");
  t.notRegex(output, /\bS[A-Z][A-Z2-7]{56}\b/, "no seed of any kind in the output");

  const nc = await withCreds(issued.json.file);
  t.teardown(() => nc.close());
  const sub = nc.subscribe("acme-corp.events.>", { max: 1 });
  nc.publish("acme-corp.events.rule.fired", "r1");
  for await (const m of sub) t.is(m.subject, "acme-corp.events.rule.fired");

  // An edge client of acme-corp, through the gateway, reaches the service and the other way round.
  const edge = await dep.v2(0, await dep.edge("acme-corp", "agent-001"));
  t.teardown(() => edge.close());
  const fromEdge = nc.subscribe("acme-corp.events.agent.>", { max: 1 });
  await nc.flush();
  edge.publish("events.agent.up", "hello service");
  for await (const m of fromEdge) t.is(m.string(), "hello service");

  for (const denied of ["globex.events.x", "acme-corp.jobs.agent-001"]) {
    const error = nextError(nc);
    nc.publish(denied, "nope");
    t.regex(await error, new RegExp(`Permissions Violation for Publish to "${denied.replace(/\./g, "\\.")}"`));
  }
  const error = nextError(nc);
  nc.subscribe("globex.>");
  t.regex(await error, /Permissions Violation for Subscription to "globex\.>"/);
});

test.serial("a service reads its tenant's streams through JetStream with its .creds; --no-jetstream leaves the API out", async (t) => {
  const dep = await deployment;
  const writer = await dep.cli<CredsJson>(["tenant", "creds", "acme-corp", "db-writer", "--sub", "events.>", "--pub", "events.>"]);
  t.is(writer.code, 0, writer.stderr);
  const edge = await dep.v2(0, await dep.edge("acme-corp", "agent-002"));
  t.teardown(() => edge.close());
  const ack = await edge.jetstream().publish("events.agent.disk", "90%");
  t.is(ack.stream, "events");

  const nc = await connect({ servers: dep.nats.url, authenticator: credsAuthenticator(await fs.readFile(writer.json.file)), reconnect: false });
  t.teardown(() => nc.close());
  const consumer = await jetstream(nc).consumers.get("events", { deliver_policy: DeliverPolicy.Last });
  const m = await consumer.next({ expires: 5000 });
  t.is(m?.subject, "acme-corp.events.agent.disk");
  t.is(m?.string(), "90%");

  const bare = await dep.cli<CredsJson>(["tenant", "creds", "acme-corp", "notifier", "--no-jetstream", "--days", "7"]);
  t.is(bare.code, 0, bare.stderr);
  t.false(bare.json.credential.jetstream);
  t.truthy(bare.json.credential.expires_at);
  const plain = await connect({ servers: dep.nats.url, authenticator: credsAuthenticator(await fs.readFile(bare.json.file)), reconnect: false });
  t.teardown(() => plain.close());
  await t.throwsAsync(jetstream(plain).streams.get("events"), { message: /permission|timeout|no responders/i });
});

test.serial("tenant show lists the credentials; creds-revoke cuts the service at once and refuses its .creds from then on", async (t) => {
  const dep = await deployment;
  const issued = await dep.cli<CredsJson>(["tenant", "creds", "globex", "exporter"]);
  t.is(issued.code, 0, issued.stderr);
  t.deepEqual(issued.json.credential.publish, ["globex.>"], "by default the tenant's whole namespace");
  const nc = await withCreds(issued.json.file);
  const closed = nc.closed();

  const shown = await dep.cli<{ credentials: Array<{ name: string; status: string; user_public_key: string }> }>(["tenant", "show", "globex"]);
  t.like(shown.json.credentials.find((c) => c.name === "exporter"), { status: "active", user_public_key: issued.json.credential.user_public_key });
  const duplicate = await dep.cli<{ error: { code: string } }>(["tenant", "creds", "globex", "exporter"]);
  t.is(duplicate.json.error.code, "credentials_exist");

  const revoked = await dep.cli<{ status: string }>(["tenant", "creds-revoke", "globex", "exporter"]);
  t.is(revoked.code, 0, revoked.stderr);
  t.is(revoked.json.status, "revoked");
  t.regex(String(await closed), /revoked/i);
  await t.throwsAsync(withCreds(issued.json.file), { message: /Authorization Violation|revoked/i });
  const listed = await dep.cli<{ credentials: Array<{ name: string; status: string }> }>(["tenant", "creds-list", "globex"]);
  t.like(listed.json.credentials.find((c) => c.name === "exporter"), { status: "revoked" });

  // The name can be issued again (new user, new file).
  const again = await dep.cli<CredsJson>(["tenant", "creds", "globex", "exporter", "--out", `${issued.json.file}.new`]);
  t.is(again.code, 0, again.stderr);
  t.not(again.json.credential.user_public_key, issued.json.credential.user_public_key);
  const renewed = await withCreds(again.json.file);
  await renewed.flush();
  await renewed.close();
});

test.serial("credentials outside the tenant's namespace are refused before anything is issued", async (t) => {
  const dep = await deployment;
  for (const [flag, subject] of [
    ["--pub", "$SYS.>"],
    ["--pub", "$JS.API.>"],
    ["--sub", "events..x"],
    ["--sub", "events.>.x"],
  ] as const) {
    const r = await dep.cli<{ error: { code: string; message: string } }>(["tenant", "creds", "acme-corp", "bad-one", flag, subject]);
    t.is(r.code, 1, subject);
    t.is(r.json.error.code, "invalid_subject", subject);
  }
  t.false((await dep.tenants.get("acme-corp")).credentials?.some((c) => c.name === "bad-one") ?? false);
});

/**
 * Platform sessions see tenants, never the platform's internals or another session's traffic, and
 * nothing escapes the audit (issue 13): a subscription made before a tenant existed is audited when
 * that tenant's messages arrive; `SUB >` gets none of the PLATFORM account's own traffic (JetStream
 * advisories, audit records, the registry, the operator's inboxes) — neither through the gateway
 * nor, with the platform user's own permissions, directly from NATS; `SUB _INBOX.>` gets none of
 * another session's replies; and random sequences of two admin sessions and an operator keep all
 * of that true.
 */
import { EventEmitter, once } from "node:events";
import test from "ava";
import fc from "fast-check";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { nativeJwtAuthenticator } from "../accounts/nats-control.ts";
import { mintPlatformUser } from "../accounts/user-jwt.ts";
import type { AuditRecord } from "../gateway/audit.ts";
import { runCliJson } from "./helpers/cli.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { within } from "./helpers/raw-client.ts";

let dep: Deployment;
const TENANTS = new Set(["acme-corp", "globex"]);

test.before(async () => {
  dep = await startDeployment({ tenants: [...TENANTS] });
});

test.after.always(async () => {
  await dep?.stop();
});

/** Everything a connection's subscription received, with a way to wait for more. */
class Received {
  readonly messages: Msg[] = [];
  private readonly more = new EventEmitter();

  constructor(nc: NatsConnection, subject: string) {
    nc.subscribe(subject, {
      callback: (_e, m) => {
        if (!m) return;
        this.messages.push(m);
        this.more.emit("msg");
      },
    });
  }

  async waitFor(pred: (m: Msg) => boolean, what: string): Promise<Msg> {
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      await within(once(this.more, "msg"), 10_000, what);
    }
  }
}

async function admin(): Promise<NatsConnection> {
  return dep.v3(await dep.admin());
}

/** The platform identity's session ids, from the gateway's log. */
function platformSessions(): Set<string> {
  return new Set(dep.logs.lines.filter((l) => l.event === "connection_accepted" && l.platform === "admin").map((l) => String(l.session)));
}

function auditRecords(pred: (r: AuditRecord) => boolean): AuditRecord[] {
  return dep.logs.lines.filter((l) => l.event === "audit").map((l) => l as unknown as AuditRecord).filter(pred);
}

/** The session id of the newest admin connection. */
async function newestAdminSession(before: Set<string>): Promise<string> {
  const line = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.platform === "admin" && !before.has(String(l.session)));
  return String(line.session);
}

test.serial("a subscription made before a tenant exists is audited when that tenant's messages arrive", async (t) => {
  const sessions = platformSessions();
  const nc = await admin();
  t.teardown(() => nc.close());
  const session = await newestAdminSession(sessions);
  const seen = new Received(nc, "newco.>");
  await nc.flush();
  await dep.tenants.create("newco", { plan: "pro" });
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "newco");
  const edge = await dep.v3(await dep.edge("newco", "agent-001"));
  t.teardown(() => edge.close());
  // The PLATFORM import of the new tenant is live once a message of it comes through.
  let delivered: Msg | undefined;
  for (let i = 0; !delivered; i++) {
    edge.publish("events.private", `secret ${i}`);
    await edge.flush();
    delivered = await seen.waitFor((m) => m.subject === "newco.events.private", "newco's message").catch(() => undefined);
  }
  const record = await dep.logs.waitFor((l) => l.event === "audit" && l.session === session && l.operation === "receive" && l.tenant === "newco");
  t.is(record.subject, "newco.>", "recorded under the subscription it came through");
  // And in the audit stream, which the operator reads.
  await nc.close();
  const { json } = await runCliJson<{ records: AuditRecord[] }>(["audit", "--tenant", "newco", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  t.true(json.records.some((r) => r.operation === "receive" && r.session === session && r.subject === "newco.>"));
});

test.serial("SUB > gets tenant messages and none of the PLATFORM account's own traffic", async (t) => {
  const nc = await admin();
  t.teardown(() => nc.close());
  const everything = new Received(nc, ">");
  await nc.flush();
  // The PLATFORM account at work: the operator reads the audit stream (consumer create, its JetStream
  // advisories, its replies), the gateway writes audit records.
  await runCliJson(["audit", "--limit", "5", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  const acme = await dep.v3(await dep.edge("acme-corp", "sensor"));
  t.teardown(() => acme.close());
  acme.publish("events.after-audit", "visible");
  await everything.waitFor((m) => m.subject === "acme-corp.events.after-audit", "the tenant's message");
  const foreign = everything.messages.filter((m) => !TENANTS.has(m.subject.split(".")[0]!) && m.subject.split(".")[0] !== "newco");
  t.deepEqual(
    foreign.map((m) => m.subject),
    [],
    "no advisories, audit records or inboxes",
  );
});

test.serial("the platform user's own permissions keep the PLATFORM account's internals from it, even straight from NATS", async (t) => {
  const identity = { kind: "platform" as const, cn: "admin.platform.serviceradar", name: "admin", notAfter: new Date(Date.now() + 3_600_000), fingerprint: "direct-check" };
  const minted = await mintPlatformUser(identity, { account: dep.cp.operator.platform.getPublicKey(), signingKey: dep.cp.operator.platformSigning });
  const nc = await connect({ servers: dep.nats.url, authenticator: nativeJwtAuthenticator(minted.jwt, minted.user) });
  t.teardown(() => nc.close());
  const everything = new Received(nc, ">");
  await nc.flush();
  await runCliJson(["audit", "--limit", "5", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  const acme = await dep.v3(await dep.edge("acme-corp", "sensor"));
  t.teardown(() => acme.close());
  acme.publish("events.direct-check", "visible");
  await everything.waitFor((m) => m.subject === "acme-corp.events.direct-check", "the tenant's message, straight from NATS");
  const internals = everything.messages.filter((m) => /^(\$JS|\$SYS|\$KV|_tg\.|_INBOX|_R_)/.test(m.subject));
  t.deepEqual(internals.map((m) => m.subject), []);
  // Its own JetStream API is denied underneath too.
  await t.throwsAsync(jetstreamManager(nc, { timeout: 2000 }));
});

test.serial("SUB _INBOX.> gets none of another session's replies, nor the operator's", async (t) => {
  const sniffer = await admin();
  const worker = await admin();
  const service = await dep.v3(await dep.edge("acme-corp", "echo"));
  t.teardown(async () => {
    await sniffer.close();
    await worker.close();
    await service.close();
  });
  service.subscribe("svc.echo", {
    callback: (_e, m) => {
      m.respond(`echo ${m.string()}`);
    },
  });
  await service.flush();
  const sniffed = new Received(sniffer, "_INBOX.>");
  const everything = new Received(sniffer, ">");
  await sniffer.flush();
  t.is((await worker.request("acme-corp.svc.echo", "for the worker")).string(), "echo for the worker");
  await jetstream(service).publish("events.stored", "stored");
  const jsm = await jetstreamManager(worker, { apiPrefix: "$JS.acme-corp.API" });
  const stored = await jsm.streams.getMessage("events", { last_by_subj: "acme-corp.events.stored" });
  t.is(stored?.string(), "stored");
  await runCliJson(["audit", "--limit", "5", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
  // The sniffer's own request comes back to it: its subscriptions work, they just see nothing else.
  t.is((await sniffer.request("acme-corp.svc.echo", "for the sniffer")).string(), "echo for the sniffer");
  const others = sniffed.messages.filter((m) => !m.string().includes("for the sniffer"));
  t.deepEqual(others.map((m) => `${m.subject} ${m.string().slice(0, 60)}`), []);
  // `>` sees tenant subjects (the tenant's own request and stored message are in its view), never the worker's replies.
  t.false(everything.messages.some((m) => m.string() === "echo for the worker"), "the worker's reply");
  t.deepEqual(everything.messages.filter((m) => !TENANTS.has(m.subject.split(".")[0]!) && m.subject.split(".")[0] !== "newco" && !m.string().includes("for the sniffer")).map((m) => m.subject), []);
});

// ---- A property: two admin sessions and an operator, random sequences ----------------------------

/**
 * The inbox the client's requests use (`_INBOX.<nuid>.`), from the client's internals: both sessions
 * use the default `_INBOX` prefix, so a session's `_INBOX.>` would match the other's replies in NATS.
 */
function ownInbox(nc: NatsConnection): string | undefined {
  return (nc as unknown as { protocol: { muxSubscriptions: { baseInbox?: string } } }).protocol.muxSubscriptions.baseInbox;
}

type Action =
  | { kind: "subscribe"; who: 0 | 1; subject: string }
  | { kind: "request"; who: 0 | 1; tenant: string }
  | { kind: "publish"; who: 0 | 1; tenant: string }
  | { kind: "stream-info"; who: 0 | 1; tenant: string }
  | { kind: "edge-publish"; tenant: string }
  | { kind: "operator-audit" };

const tenantArb = fc.constantFrom("acme-corp", "globex");
const whoArb = fc.constantFrom(0 as const, 1 as const);
const action: fc.Arbitrary<Action> = fc.oneof(
  fc.record({ kind: fc.constant("subscribe" as const), who: whoArb, subject: fc.constantFrom(">", "*.events.>", "_INBOX.>", "acme-corp.>", "globex.>", "later.>", "*.>") }),
  fc.record({ kind: fc.constant("request" as const), who: whoArb, tenant: tenantArb }),
  fc.record({ kind: fc.constant("publish" as const), who: whoArb, tenant: tenantArb }),
  fc.record({ kind: fc.constant("stream-info" as const), who: whoArb, tenant: tenantArb }),
  fc.record({ kind: fc.constant("edge-publish" as const), tenant: tenantArb }),
  fc.constant({ kind: "operator-audit" as const }),
);

test.serial("property: no session receives a message it does not own, and every tenant delivery is audited", async (t) => {
  const edges = new Map<string, NatsConnection>();
  for (const tenant of TENANTS) {
    const nc = await dep.v3(await dep.edge(tenant, "property"));
    nc.subscribe("svc.whoami", {
      callback: (_e, m) => {
        m.respond(`reply to ${m.string()}`);
      },
    });
    await nc.flush();
    edges.set(tenant, nc);
  }
  t.teardown(async () => {
    for (const nc of edges.values()) await nc.close();
  });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(action, { minLength: 3, maxLength: 10 }), async (actions) => {
      run++;
      const before = platformSessions();
      const sessions = [await admin(), await admin()];
      const ids: string[] = [];
      for (const _ of sessions) ids.push(await newestAdminSession(new Set([...before, ...ids])));
      const received: Received[][] = [[], []];
      try {
        for (const a of actions) {
          switch (a.kind) {
            case "subscribe":
              received[a.who]!.push(new Received(sessions[a.who]!, a.subject));
              await sessions[a.who]!.flush();
              break;
            case "request":
              await sessions[a.who]!.request(`${a.tenant}.svc.whoami`, `session ${a.who} run ${run}`, { timeout: 5000 });
              break;
            case "publish":
              sessions[a.who]!.publish(`${a.tenant}.events.from-platform`, `session ${a.who} run ${run}`);
              await sessions[a.who]!.flush();
              break;
            case "stream-info":
              await (await jetstreamManager(sessions[a.who]!, { apiPrefix: `$JS.${a.tenant}.API` })).streams.info("events");
              break;
            case "edge-publish":
              edges.get(a.tenant)!.publish("events.from-edge", `edge run ${run}`);
              await edges.get(a.tenant)!.flush();
              break;
            case "operator-audit":
              await runCliJson(["audit", "--limit", "3", "--data-dir", dep.layout.dir, "--nats", dep.nats.url]);
              break;
          }
        }
        // Settle: a round trip through each session after the last action.
        for (const nc of sessions) await nc.flush();
        for (const [who, subs] of received.entries()) {
          for (const sub of subs) {
            for (const m of sub.messages) {
              const tenant = m.subject.split(".")[0]!;
              if (TENANTS.has(tenant) || tenant === "newco") {
                // A tenant's message: its delivery to this session is in the audit.
                await dep.logs.waitFor((l) => l.event === "audit" && l.session === ids[who] && l.operation === "receive" && l.tenant === tenant, 5000);
              } else if (!m.subject.startsWith(ownInbox(sessions[who]!) ?? "\u0000")) {
                t.log(`session ${who} received ${m.subject}: ${m.string().slice(0, 80)}`);
                return false;
              }
            }
          }
        }
        return true;
      } finally {
        for (const nc of sessions) await nc.close();
      }
    }),
    { numRuns: Number(process.env.PLATFORM_PROPERTY_RUNS ?? 8), endOnFailure: true },
  );
  t.true(auditRecords((r) => r.operation === "receive").length > 0, "the runs delivered tenant messages");
});

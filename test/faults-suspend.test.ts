/**
 * Suspend, then resume: a tenant's edge sites come back by themselves. Stock clients give up for
 * good after two authorization refusals in a row (nats.js keeps the last one across reconnects),
 * so the gateway refuses an identity of a suspended tenant once, then holds its connections
 * (PONG, nothing reaches NATS, every publish refused with a permissions error) until the resume
 * releases them; they reconnect at once and get real sessions.
 */
import test from "ava";
import { startDeployment, type ClientTls, type Deployment } from "./helpers/gateway-fixture.ts";
import { ClientFleet, percentile } from "./helpers/client-fleet.ts";
import { within } from "./helpers/raw-client.ts";
import { jetstreamManager } from "@nats-io/jetstream";

const TENANT = "initech";
const SITES = 100;
/** The bar: every client back within 5 s of the fault ending. */
const BACK_WITHIN_MS = 5000;

let dep: Deployment;
const identities: ClientTls[] = [];

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"] });
  // Enterprise: no connection limit, so 100 sites plus a subscriber all fit.
  await dep.tenants.create(TENANT, { plan: "enterprise" });
  for (let i = 0; i < SITES; i++) identities.push(await dep.edge(TENANT, `site-${i}`));
});

test.after.always(async () => {
  await dep?.stop();
});

test.serial(`suspend then resume: ${SITES} stock clients (v2 and v3, default reconnect settings) are back within ${BACK_WITHIN_MS / 1000} s of the resume`, async (t) => {
  const fleet = await ClientFleet.connect(SITES, (i) => Promise.resolve(identities[i]!), { servers: dep.url });
  t.teardown(() => fleet.close());

  const suspendedAt = Date.now();
  await dep.tenants.suspend(TENANT);
  await fleet.allDisconnected(suspendedAt, 20_000);
  // Each site is either held by the gateway (its client reports a reconnect) or has given up.
  await fleet.until((c) => c.closedAt !== undefined || ClientFleet.firstSince(c, "reconnect", suspendedAt) !== undefined, 30_000, "held or given up");
  t.is(fleet.gaveUp.length, 0, `${fleet.gaveUp.length} of ${SITES} clients gave up during the suspension`);
  t.is(dep.gateway.stats.held, SITES, "every site is held by the gateway");

  // Held sites publish; nothing of a suspended tenant may reach NATS (checked in its stream below).
  for (const c of fleet.clients) c.nc.publish(`events.sites.${c.name}.suspended`, "x");
  await Promise.all(fleet.clients.map((c) => c.nc.flush().catch(() => undefined)));

  const resumedAt = Date.now();
  await dep.tenants.resume(TENANT);
  const resumeDone = Date.now();
  await fleet.allReconnected(resumeDone, 30_000).catch((err: Error) => t.fail(err.message));
  const delays = fleet.reconnectDelays(resumeDone);
  t.log(`resume took ${resumeDone - resumedAt} ms; back after it: p50 ${percentile(delays, 50)} ms, p99 ${percentile(delays, 99)} ms, max ${delays.at(-1)} ms (${delays.length}/${SITES})`);
  t.is(delays.length, SITES);
  t.true((delays.at(-1) ?? Infinity) <= BACK_WITHIN_MS, `slowest client back ${delays.at(-1)} ms after the resume`);
  t.is(fleet.gaveUp.length, 0);

  // Really back: every site's publish reaches the tenant's account, and its stream holds none of
  // what was published while the tenant was suspended.
  const watcher = await dep.direct(TENANT);
  t.teardown(() => watcher.close());
  const seen = new Set<string>();
  let allSeen: () => void = () => undefined;
  const everySite = new Promise<void>((resolve) => (allSeen = resolve));
  watcher.subscribe(`${TENANT}.events.sites.>`, {
    callback: (_e, m) => {
      seen.add(m.subject);
      if (seen.size === SITES) allSeen();
    },
  });
  await watcher.flush();
  for (const c of fleet.clients) c.nc.publish(`events.sites.${c.name}.resumed`, "x");
  await within(everySite, 10_000, "every site's publish after the resume");
  const edge = await dep.v3(identities[0]!);
  t.teardown(() => edge.close());
  const stream = await (await jetstreamManager(edge)).streams.info("events", { subjects_filter: "events.sites.>" });
  const stored = Object.keys(stream.state.subjects ?? {});
  t.is(stored.filter((s) => s.endsWith(".resumed")).length, SITES);
  t.deepEqual(stored.filter((s) => s.endsWith(".suspended")), [], "nothing published while suspended reached NATS");
});

test.serial("a site that starts while its tenant is suspended is held: its request fails at once with a permissions error; deleting the tenant ends it with Authorization Violation", async (t) => {
  await dep.tenants.create("hooli", { plan: "pro" });
  const tls = await dep.edge("hooli", "late-starter");
  const before = dep.logs.lines.length;
  await dep.tenants.suspend("hooli");
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "hooli" && l.status === "suspended" && dep.logs.lines.indexOf(l) >= before);
  const nc = await dep.v2(tls, { reconnect: false });
  const refused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.cn === "late-starter.partition-1.hooli.serviceradar" && dep.logs.lines.indexOf(l) >= before);
  t.is(refused.code, "tenant_suspended");
  t.true(refused.held);
  const startedAt = Date.now();
  const err = await nc.request("svc.echo", "hi", { timeout: 10_000 }).then(
    () => undefined,
    (e: Error) => e,
  );
  t.regex(String(err?.message), /permissions violation/i);
  t.true(Date.now() - startedAt < 2000, "the request failed at once, not at its timeout");
  const closed = nc.closed();
  await dep.tenants.delete("hooli");
  const why = await within(closed, 10_000, "the held connection's end");
  t.regex(String((why as Error | undefined)?.message), /authorization violation/i);
});

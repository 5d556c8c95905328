/**
 * Per-tenant publish rate limits from the plans (`rate_limits`: messages/s, bytes/s), enforced by
 * the gateway for all of a tenant's sessions together by not reading their clients while the tenant
 * is over its rate: every message arrives, at the plan's pace, and nothing is dropped.
 */
import { promises as fs } from "node:fs";
import test from "ava";
import type { NatsConnection } from "@nats-io/transport-node";
import { parsePlanFile, plansFilePath, type PlanFile } from "../accounts/plans.ts";
import { FAIR_BUSY_HIGH, FAIR_MIN_CAP, fairShareStep, RateBucket, READ_TURNS_LINGER_MS, readTurnsStep } from "../gateway/rate-limits.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { RawClient, within } from "./helpers/raw-client.ts";

const MESSAGES_PER_SECOND = 1000;
const BYTES_PER_SECOND = 128 * 1024;

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"] });
  const file = plansFilePath(dep.layout.dir);
  const plans = parsePlanFile(await fs.readFile(file, "utf8"), file);
  const pro = plans.plans.pro!;
  plans.plans["metered-messages"] = { ...pro, rate_limits: { messages_per_second: MESSAGES_PER_SECOND, bytes_per_second: -1 } };
  plans.plans["metered-bytes"] = { ...pro, rate_limits: { messages_per_second: -1, bytes_per_second: BYTES_PER_SECOND } };
  const before = dep.logs.lines.length;
  await fs.writeFile(file, JSON.stringify(plans, null, 2));
  // The gateway picks up the edited plans file by itself.
  await dep.logs.waitFor((l) => l.event === "rate_limits_loaded" && dep.logs.lines.indexOf(l) >= before && (l.plans as Array<{ plan: string }>).some((p) => p.plan === "metered-bytes"));
  await dep.tenants.create("counted-co", { plan: "metered-messages" });
  await dep.tenants.create("weighed-co", { plan: "metered-bytes" });
});

test.after.always(async () => {
  await dep?.stop();
});

/** Two sessions of `slug` publish `perClient` messages each as fast as they can; a direct subscriber times their arrival. */
async function publishThroughGateway(slug: string, perClient: number, payloadBytes: number): Promise<{ received: number; spanMs: number }> {
  const watcher = await dep.direct(slug);
  const total = 2 * perClient;
  let received = 0;
  let first = 0;
  let last = 0;
  let allIn: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allIn = resolve));
  watcher.subscribe(`${slug}.events.metered.>`, {
    callback: () => {
      last = Date.now();
      if (received++ === 0) first = last;
      if (received === total) allIn();
    },
  });
  await watcher.flush();
  const publishers: NatsConnection[] = [await dep.v3(await dep.edge(slug, "pub-1")), await dep.v3(await dep.edge(slug, "pub-2"))];
  const payload = new Uint8Array(payloadBytes);
  await Promise.all(
    publishers.map(async (nc, k) => {
      for (let i = 0; i < perClient; i++) nc.publish(`events.metered.${k}`, payload);
      await nc.flush();
    }),
  );
  await within(done, 30_000, `${total} messages of ${slug}`);
  await Promise.all([...publishers, watcher].map((nc) => nc.close()));
  return { received, spanMs: last - first };
}

/**
 * The pace a limit allows for `total` units: a second's worth (the bucket's burst) at once, then the
 * rate. A session reads a whole socket read before it is paused, so up to another second's worth
 * may pass early (the lower bound); pacing must not slow it much beyond the rate either.
 */
function paced(t: { true(v: boolean, m: string): void }, total: number, perSecond: number, spanMs: number): void {
  const ideal = ((total - perSecond) / perSecond) * 1000;
  t.true(spanMs >= ((total - 2 * perSecond) / perSecond) * 1000, `${total} units took only ${spanMs} ms (the rate allows them in ${ideal} ms)`);
  t.true(spanMs <= ideal * 1.5 + 1000, `${total} units took ${spanMs} ms (the rate allows them in ${ideal} ms)`);
}

test.serial(`messages/s: two sessions of a tenant limited to ${MESSAGES_PER_SECOND}/s publish 4000 messages; all arrive, at the plan's pace`, async (t) => {
  const { received, spanMs } = await publishThroughGateway("counted-co", 2000, 16);
  t.log(`${received} messages over ${spanMs} ms: ${((received / spanMs) * 1000).toFixed(0)}/s`);
  t.is(received, 4000);
  paced(t, received, MESSAGES_PER_SECOND, spanMs);
});

test.serial(`bytes/s: two sessions of a tenant limited to ${BYTES_PER_SECOND / 1024} KiB/s publish 512 KiB; all arrive, at the plan's pace`, async (t) => {
  const { received, spanMs } = await publishThroughGateway("weighed-co", 256, 1024);
  t.log(`${received} KiB over ${spanMs} ms: ${((received / spanMs) * 1000).toFixed(0)} KiB/s`);
  t.is(received, 512);
  paced(t, received * 1024, BYTES_PER_SECOND, spanMs);
});

test.serial("another tenant on an unlimited plan is not paced", async (t) => {
  const { received, spanMs } = await publishThroughGateway("acme-corp", 2000, 16);
  t.log(`${received} messages over ${spanMs} ms`);
  t.is(received, 4000);
  t.true(spanMs < 1000, `4000 messages took ${spanMs} ms`);
});

/** A session of `slug` that publishes a message every few ms until stopped (a neighbour at work). */
async function trickle(slug: string): Promise<() => Promise<void>> {
  const nc = await dep.v3(await dep.edge(slug, "trickle"));
  const timer = setInterval(() => nc.publish("events.trickle", "t"), 5);
  return async () => {
    clearInterval(timer);
    await nc.close();
  };
}

test.serial("while two tenants publish, a flooding client is read a share per event-loop turn, not its whole backlog: every message still arrives", async (t) => {
  // Read turns are on while at least two tenants publish: acme-corp and weighed-co trickle.
  const on = dep.logs.lines.length;
  const stops = await Promise.all([trickle("acme-corp"), trickle("weighed-co")]);
  t.teardown(() => Promise.all(stops.map((stop) => stop())));
  await dep.logs.waitFor((l) => l.event === "read_turns_on" && dep.logs.lines.indexOf(l) >= on);
  // 4 MiB of publishes in one write: without read turns the gateway would rewrite up to 2 MiB of
  // them (libuv's 32 reads of 64 KiB) before any other session's bytes in the same turn.
  const frames = 32 * 1024;
  const payload = "x".repeat(100);
  const frame = `PUB events.flood ${payload.length}\r\n${payload}\r\n`;
  const watcher = await dep.direct("acme-corp");
  let received = 0;
  let allIn: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (allIn = resolve));
  watcher.subscribe("acme-corp.events.flood", { callback: () => (++received === frames ? allIn() : undefined) });
  await watcher.flush();
  const flooder = await RawClient.open(dep.gateway.port, await dep.edge("acme-corp", "flooder"));
  t.teardown(() => flooder.socket.destroy());
  await flooder.handshake();
  const [session] = dep.gateway.sessionList({ tenant: "acme-corp" }).filter((s) => s.component === "flooder");
  t.truthy(session);
  const readNow = (): number => dep.gateway.sessionList({ tenant: "acme-corp" }).find((s) => s.id === session!.id)?.counters.msgsIn ?? 0;
  // Sampled once per turn of the (shared) event loop, in its check phase.
  let most = 0;
  let last = readNow();
  let sampling = true;
  const sample = (): void => {
    const now = readNow();
    most = Math.max(most, now - last);
    last = now;
    if (sampling) setImmediate(sample);
  };
  setImmediate(sample);
  await flooder.write(Buffer.from(frame.repeat(frames), "latin1"));
  await within(done, 30_000, `${frames} flood messages`);
  sampling = false;
  await watcher.close();
  t.is(received, frames);
  // A turn reads its share (16 KiB) and finishes the TLS record it was in; a turn of the sampler
  // may see two. Measured without read turns: about 280 KiB in one turn.
  const bound = Math.ceil((64 * 1024) / frame.length);
  t.log(`most messages read in one turn: ${most} (bound ${bound}; the whole flood ${frames})`);
  t.true(most <= bound, `${most} messages were read in one event-loop turn (bound ${bound})`);
});

test("read turns: on while two tenants publish and for a second after; never for a tenant alone", (t) => {
  let state = readTurnsStep(-Infinity, 0, 1);
  t.false(state.on, "one tenant alone");
  state = readTurnsStep(state.lastContendedAt, 100, 2);
  t.true(state.on, "two tenants publish");
  state = readTurnsStep(state.lastContendedAt, 200, 1);
  t.true(state.on, "lingers after the neighbour went quiet");
  state = readTurnsStep(state.lastContendedAt, 100 + READ_TURNS_LINGER_MS, 1);
  t.false(state.on, "off a second after two last published together");
  t.true(readTurnsStep(state.lastContendedAt, 2000, 3).on);
  t.false(readTurnsStep(-Infinity, 2000, 0).on, "no one publishes");
});

test("the rate bucket: a second's burst at once, then the rate; the debt of one read is paid back by waiting", (t) => {
  const limits = { messages_per_second: 100, bytes_per_second: 1000 };
  const bucket = new RateBucket(limits, 0);
  t.is(bucket.charge(100, 500, 0), 0, "a second's worth of messages passes at once");
  t.is(bucket.charge(10, 0, 0), 100, "10 messages over: 100 ms to wait");
  t.is(bucket.charge(0, 0, 100), 0, "after 100 ms the debt is paid");
  t.is(bucket.charge(0, 1500, 100), 900, "900 bytes over the 600 left (500, and 100 ms of refill): 0.9 s");
  t.is(bucket.charge(0, 0, 60_000), 0);
  t.is(bucket.charge(0, 0, 60_000), 0, "never more than a second's worth saved up");
  t.is(bucket.charge(0, 1001, 60_000), 1, "a second's worth and one byte: 1 ms");
  const unlimited = new RateBucket({ messages_per_second: -1, bytes_per_second: -1 }, 0);
  t.is(unlimited.charge(1e9, 1e12, 0), 0);
});

test("a plans file with a rate limit of 0 is refused: suspend the tenant instead", (t) => {
  const bad: PlanFile = { plans: { stopped: { connections: 1, subscriptions: 1, max_payload: 1, jetstream: { memory: 1, disk: 1, streams: 1, consumers: 1 }, rate_limits: { messages_per_second: 0, bytes_per_second: -1 } } } };
  t.throws(() => parsePlanFile(JSON.stringify(bad), "plans.json"), { message: /rate_limits/ });
});

test("fair share: while the event loop is saturated, the tenant publishing most of all messages is capped at 70% of its rate; a tenant alone is never capped", (t) => {
  const busy = 0.97;
  // acme published 90,000 messages in 100 ms (900k/s), globex 500: acme is capped at 630k/s.
  let caps = fairShareStep(new Map(), busy, new Map([["acme-corp", 90_000], ["globex", 500]]), 100);
  t.deepEqual([...caps], [["acme-corp", 630_000]]);
  // Still saturated: lowered again from what it now publishes, never raised by a busier step.
  caps = fairShareStep(caps, busy, new Map([["acme-corp", 40_000], ["globex", 500]]), 100);
  t.deepEqual([...caps], [["acme-corp", 280_000]]);
  caps = fairShareStep(caps, busy, new Map([["acme-corp", 100_000], ["globex", 500]]), 100);
  t.deepEqual([...caps], [["acme-corp", 280_000]], "a cap only falls while saturated");
  caps = fairShareStep(caps, busy, new Map([["acme-corp", 50], ["globex", 20]]), 100);
  t.deepEqual([...caps], [["acme-corp", FAIR_MIN_CAP]], "never below the floor");
  // Alone on the gateway, the load is its own: nothing is capped.
  t.deepEqual([...fairShareStep(new Map(), busy, new Map([["acme-corp", 90_000], ["globex", 0]]), 100)], []);
  // No tenant publishes half of all messages: no one to blame.
  t.deepEqual([...fairShareStep(new Map(), busy, new Map([["a", 40], ["b", 35], ["c", 25]]), 100)], []);
  // The loop has room: nothing is capped, however uneven.
  t.deepEqual([...fairShareStep(new Map(), FAIR_BUSY_HIGH - 0.01, new Map([["acme-corp", 90_000], ["globex", 1]]), 100)], []);
  // The threshold is the operator's (fair_share_busy).
  t.deepEqual([...fairShareStep(new Map(), 0.6, new Map([["acme-corp", 10_000], ["globex", 1]]), 100, 0.5)], [["acme-corp", 70_000]]);
});

test("fair share: once the loop has room, caps grow by a quarter each step and are lifted when they no longer bind or nobody else publishes", (t) => {
  let caps = new Map([["acme-corp", 100_000]]);
  caps = fairShareStep(caps, 0.5, new Map([["acme-corp", 10_000], ["globex", 100]]), 100);
  t.deepEqual([...caps], [["acme-corp", 125_000]], "binding (it publishes at the cap): raised by a quarter");
  caps = fairShareStep(caps, FAIR_BUSY_HIGH - 0.1, new Map([["acme-corp", 10_000], ["globex", 100]]), 100);
  t.deepEqual([...caps], [["acme-corp", 125_000]], "between the thresholds: held");
  t.deepEqual([...fairShareStep(caps, 0.5, new Map([["acme-corp", 1000], ["globex", 100]]), 100)], [], "far above what it publishes: lifted");
  t.deepEqual([...fairShareStep(caps, 0.5, new Map([["acme-corp", 12_500], ["globex", 0]]), 100)], [], "alone: lifted");
});

test("a fair-share cap paces a bucket with no plan limit: a tenth of a second's burst, then the cap; lifted, it is unlimited again", (t) => {
  const bucket = new RateBucket({ messages_per_second: -1, bytes_per_second: -1 }, 0);
  t.is(bucket.charge(1e6, 0, 0), 0);
  bucket.setCap(10_000, 0);
  t.is(bucket.cap, 10_000);
  t.is(bucket.charge(1000, 0, 0), 0, "a tenth of a second of the cap passes at once");
  t.is(bucket.charge(500, 0, 0), 50, "500 over at 10k/s: 50 ms");
  t.is(bucket.takeUsage(), 1e6 + 1500, "every message is counted, capped or not");
  t.is(bucket.takeUsage(), 0);
  bucket.setCap(undefined, 10);
  t.is(bucket.charge(1e6, 0, 10), 0);
  // Under a plan limit, the cap only ever lowers it.
  const planned = new RateBucket({ messages_per_second: 5000, bytes_per_second: -1 }, 0);
  planned.setCap(50_000, 0);
  t.is(planned.charge(5000, 0, 0), 0);
  t.is(planned.charge(100, 0, 0), 20, "the plan's 5k/s still rules: 100 over, 20 ms");
});

/**
 * Lame duck spreads its closes. Stock clients ignore the `ldm` INFO when they know no other server,
 * so the clients that stay are closed by the gateway: after a grace period, one at a time, evenly
 * over the rest of the drain (as nats-server does over its lame_duck_duration), so they reconnect
 * to the other replicas gradually instead of all in the same second.
 */
import test from "ava";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

const CLIENTS = 30;
const DRAIN_MS = 4000;
const GRACE_MS = 1000;

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"], gateway: { drain_timeout_ms: DRAIN_MS, lame_duck_grace_ms: GRACE_MS } });
  for (let i = 0; i < CLIENTS; i++) await dep.edge("acme-corp", `site-${i}`);
});

test.after.always(async () => {
  await dep?.stop();
});

test.serial(`SIGTERM-style shutdown with ${CLIENTS} clients that stay: none closed during the grace, then closed one by one over the rest of the drain`, async (t) => {
  const clients = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => dep.v3(await dep.edge("acme-corp", `site-${i}`))));
  const closedAt: number[] = [];
  const allClosed = Promise.all(clients.map((nc) => nc.closed().then(() => closedAt.push(Date.now()))));
  await Promise.all(clients.map((nc) => nc.flush()));

  const startedAt = Date.now();
  const stopped = dep.gateway.shutdown();
  await allClosed;
  await stopped;
  const offsets = closedAt.map((at) => at - startedAt).sort((a, b) => a - b);
  const first = offsets[0]!;
  const last = offsets.at(-1)!;
  // The most clients closed within any tenth of the spreading window.
  const window = (DRAIN_MS - GRACE_MS) / 10;
  const busiest = Math.max(...offsets.map((o) => offsets.filter((p) => p >= o && p < o + window).length));
  t.log(`closes from ${first} to ${last} ms after the shutdown began; at most ${busiest} of ${CLIENTS} within ${window} ms`);
  t.true(first >= GRACE_MS - 50, `the first client was closed ${first} ms in, before the ${GRACE_MS} ms grace was over`);
  t.true(last <= DRAIN_MS + 500, `the last client was closed ${last} ms in, after the ${DRAIN_MS} ms drain`);
  t.true(last - first >= (DRAIN_MS - GRACE_MS) * 0.6, `closes spanned only ${last - first} ms`);
  t.true(busiest <= CLIENTS / 5, `${busiest} of ${CLIENTS} clients were closed within ${window} ms`);
});

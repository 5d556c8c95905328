/**
 * One subscriber stops reading while two publishers of its tenant keep publishing to its subject:
 * the same scene through the gateway and directly against nats-server, side by side. nats-server
 * 2.9 stalls every publisher to a backed-up connection until its write deadline (10 s) cuts it,
 * and a gateway that holds NATS back for its slow client (its upstream paused) looks exactly like
 * one; so after `slow_consumer_drop_ms` the gateway reads NATS again and drops what the client
 * cannot take, and the publishers go on. nats-server 2.10+ drops for a slow consumer itself.
 */
import test from "ava";
import type { NatsConnection } from "@nats-io/transport-node";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

const WINDOW_MS = 6000;
const SLOW_CONSUMER_MS = 4000;
const DROP_MS = 500;

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"], gateway: { slow_consumer_ms: SLOW_CONSUMER_MS, slow_consumer_drop_ms: DROP_MS } });
  for (const name of ["slow", "pub-1", "pub-2"]) await dep.edge("acme-corp", name);
});

test.after.always(async () => {
  await dep?.stop();
});

/**
 * The subscriber stops reading (its socket is paused: an application that stopped taking data)
 * and two publishers publish 1 KiB messages in flushed batches of 100 for WINDOW_MS. Returns the
 * longest time either publisher waited for a batch to go through.
 */
async function publishersBesideSlowSubscriber(path: "gateway" | "direct"): Promise<{ longestWaitMs: number; sent: number }> {
  const open = async (name: string): Promise<NatsConnection> => (path === "gateway" ? dep.v3(await dep.edge("acme-corp", name)) : dep.direct("acme-corp"));
  const subject = path === "gateway" ? "events.flood" : "acme-corp.events.flood";
  const slow = await open("slow");
  slow.subscribe(subject, { callback: () => undefined });
  await slow.flush();
  // The stock client's own socket, paused: it stops reading as a stuck application would.
  (slow as unknown as { protocol: { transport: { socket: { pause(): void } } } }).protocol.transport.socket.pause();
  const publishers = [await open("pub-1"), await open("pub-2")];
  const payload = new Uint8Array(1024);
  const startedAt = Date.now();
  const results = await Promise.all(
    publishers.map(async (nc) => {
      let sent = 0;
      let longest = 0;
      let last = Date.now();
      // A batch still waiting when the window ends counts with how long it has waited so far.
      const window = new Promise<void>((resolve) => setTimeout(resolve, WINDOW_MS - (Date.now() - startedAt)));
      let over = false;
      void window.then(() => (over = true));
      while (!over) {
        for (let i = 0; i < 100; i++) nc.publish(subject, payload);
        const flushed = await Promise.race([nc.flush().then(() => true), window.then(() => false)]);
        const now = Date.now();
        longest = Math.max(longest, now - last);
        last = now;
        if (flushed) sent += 100;
      }
      return { longest, sent };
    }),
  );
  await Promise.all([...publishers, slow].map((nc) => nc.close().catch(() => undefined)));
  return { longestWaitMs: Math.max(...results.map((r) => r.longest)), sent: results.reduce((a, r) => a + r.sent, 0) };
}

test.serial("a subscriber that stops reading does not hold back its tenant's publishers through the gateway; side by side with nats-server", async (t) => {
  const direct = await publishersBesideSlowSubscriber("direct");
  const before = dep.logs.lines.length;
  const gateway = await publishersBesideSlowSubscriber("gateway");
  t.log(`longest wait of a publisher in ${WINDOW_MS} ms: direct ${direct.longestWaitMs} ms (${direct.sent} sent), gateway ${gateway.longestWaitMs} ms (${gateway.sent} sent)`);
  const dropping = await dep.logs.waitFor((l) => l.event === "slow_consumer_dropping" && dep.logs.lines.indexOf(l) >= before, 10_000);
  t.is(dropping.component, "slow");
  const cut = await dep.logs.waitFor((l) => l.event === "slow_consumer" && dep.logs.lines.indexOf(l) >= before, 10_000);
  t.true((cut.dropped_bytes as number) > 0, "what the slow client could not take was dropped, not held");
  t.true(gateway.longestWaitMs < 2000, `a publisher waited ${gateway.longestWaitMs} ms through the gateway`);
  t.true(gateway.longestWaitMs <= direct.longestWaitMs + 1000, `through the gateway a publisher waited ${gateway.longestWaitMs} ms, directly ${direct.longestWaitMs} ms`);
});

/**
 * Memory after load: a crowd of clients comes and goes, three times. Nothing leaks (after a full
 * collection the heap is the same size after every crowd), and once a crowd has left the gateway
 * runs that collection itself (`memory_relief`): V8 would otherwise keep the heap the crowd grew.
 * The RSS figures of 10 cycles of 1,000 clients against the compiled build are bench:faults'.
 */
import test from "ava";
import type { NatsConnection } from "@nats-io/transport-node";
import { startDeployment, type ClientTls, type Deployment } from "./helpers/gateway-fixture.ts";

const CROWD = 150;
const CYCLES = 3;

let dep: Deployment;
const identities: ClientTls[] = [];

test.before(async () => {
  dep = await startDeployment({ tenants: [], gateway: { memory_relief_ms: 1000 } });
  // Enterprise: no connection limit for the crowd.
  await dep.tenants.create("initech", { plan: "enterprise" });
  for (let i = 0; i < 10; i++) identities.push(await dep.edge("initech", `site-${i}`));
});

test.after.always(async () => {
  await dep?.stop();
});

async function crowdComesAndGoes(): Promise<void> {
  const crowd: NatsConnection[] = [];
  for (let i = 0; i < CROWD; i += 25) crowd.push(...(await Promise.all(Array.from({ length: 25 }, (_, k) => dep.v3(identities[(i + k) % identities.length]!)))));
  await Promise.all(crowd.map((nc) => nc.flush()));
  await Promise.all(crowd.map((nc) => nc.close()));
}

test.serial(`${CYCLES} crowds of ${CROWD} clients: after each leaves the gateway runs a full collection by itself, and the heap does not grow from crowd to crowd`, async (t) => {
  const heaps: number[] = [];
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const before = dep.logs.lines.length;
    // In a function of its own, so that nothing here keeps the crowd's connections once they closed.
    await crowdComesAndGoes();
    const relief = await dep.logs.waitFor((l) => l.event === "memory_relief" && dep.logs.lines.indexOf(l) >= before, 30_000);
    const [totalBefore, totalAfter] = relief.heap_total_mb as [number, number];
    t.log(`crowd ${cycle + 1}: heap used ${relief.heap_used_mb as number} MB after the collection; heap total ${totalBefore} → ${totalAfter} MB; rss ${JSON.stringify(relief.rss_mb)} MB`);
    heaps.push(relief.heap_used_mb as number);
  }
  t.true(heaps.at(-1)! <= heaps[0]! + 3, `heap after each crowd: ${heaps.join(", ")} MB`);
});

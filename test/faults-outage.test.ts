/**
 * NATS goes away and comes back. While no NATS server answers, the gateway closes new connections
 * before INFO and TLS: a stock client takes that as a failed attempt and retries at its own
 * reconnect pace (2 s by default), instead of completing TLS, getting an -ERR and waiting out its
 * 20 s connection timeout. A client that got through TLS before the gateway knew waits for its
 * PONG until NATS is back.
 */
import net from "node:net";
import test from "ava";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { ClientFleet, percentile } from "./helpers/client-fleet.ts";
import { within } from "./helpers/raw-client.ts";

/** The bar: every client back within 5 s of the fault ending. */
const BACK_WITHIN_MS = 5000;
const CLIENTS = 40;

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"] });
  for (let i = 0; i < CLIENTS; i++) await dep.edge("acme-corp", `site-${i}`);
});

test.after.always(async () => {
  await dep?.stop();
});

async function killNats(): Promise<void> {
  const child = dep.nats.process;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/** What a new TCP connection to the gateway gets before it closes: INFO, or nothing. */
function firstBytes(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    let text = "";
    socket.on("data", (b: Buffer) => {
      text += b.toString("latin1");
      if (text.includes("\r\n")) socket.destroy();
    });
    socket.once("close", () => resolve(text));
    socket.once("error", reject);
  });
}

test.serial(`NATS killed and back: ${CLIENTS} stock clients (v2 and v3, default settings) are back within ${BACK_WITHIN_MS / 1000} s of nats-server's return`, async (t) => {
  const fleet = await ClientFleet.connect(CLIENTS, (i) => dep.edge("acme-corp", `site-${i}`), { servers: dep.url });
  t.teardown(() => fleet.close());
  const logsBefore = dep.logs.lines.length;
  const killedAt = Date.now();
  await killNats();
  await fleet.allDisconnected(killedAt, 10_000);
  // Every client has tried to come back while NATS was away, and been turned away.
  await fleet.until((c) => c.events.filter((e) => e.type === "reconnecting" && e.at >= killedAt).length >= 2, 15_000, "two attempts during the outage");
  const refused = await dep.logs.waitFor((l) => l.event === "nats_unreachable" && dep.logs.lines.indexOf(l) >= logsBefore);
  t.truthy(refused);
  t.is(await firstBytes(dep.gateway.port), "", "a connection during the outage is closed before INFO");

  await dep.nats.restart();
  const backAt = Date.now();
  await fleet.allReconnected(backAt, 30_000).catch((err: Error) => t.fail(err.message));
  const delays = fleet.reconnectDelays(backAt);
  t.log(`back after nats-server's return: p50 ${percentile(delays, 50)} ms, p99 ${percentile(delays, 99)} ms, max ${delays.at(-1)} ms (${delays.length}/${CLIENTS})`);
  t.is(delays.length, CLIENTS);
  t.true((delays.at(-1) ?? Infinity) <= BACK_WITHIN_MS, `slowest client back ${delays.at(-1)} ms after nats-server's return`);
  t.is(fleet.gaveUp.length, 0);
  const reachable = await dep.logs.waitFor((l) => l.event === "nats_reachable" && dep.logs.lines.indexOf(l) >= logsBefore);
  t.true((reachable.refused_while_unreachable as number) >= CLIENTS, `refused while unreachable: ${reachable.refused_while_unreachable as number}`);
});

test.serial("a client already through TLS when NATS turns out to be down gets its session as soon as NATS is back, not after its connection timeout", async (t) => {
  const tls = await dep.edge("acme-corp", "site-0");
  // No session open (each close is logged): nothing tells the gateway that NATS is gone until this client needs it.
  await dep.logs.waitFor(() => dep.gateway.stats.sessions === 0);
  const logsBefore = dep.logs.lines.length;
  await killNats();
  const connecting = dep.v3(tls, { timeout: 20_000 });
  await dep.logs.waitFor((l) => l.event === "nats_unreachable" && dep.logs.lines.indexOf(l) >= logsBefore);
  await dep.nats.restart();
  const backAt = Date.now();
  const nc = await within(connecting, 15_000, "the client's connect");
  t.teardown(() => nc.close());
  const tookMs = Date.now() - backAt;
  t.log(`connected ${tookMs} ms after nats-server's return`);
  t.true(tookMs <= 2000, `connected ${tookMs} ms after nats-server's return`);
  await nc.flush();
});

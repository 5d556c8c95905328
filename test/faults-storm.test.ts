/**
 * Reconnect storms: at most `handshake_concurrency` TLS handshakes run at once; the connections
 * beyond wait their turn unread (no INFO yet), and their handshake timeout starts when it comes.
 * Sharing the CPU among every handshake of a storm made them all finish late together, and many
 * timed out and started over.
 */
import net from "node:net";
import test from "ava";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { ClientFleet } from "./helpers/client-fleet.ts";
import { within } from "./helpers/raw-client.ts";

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"], gateway: { handshake_concurrency: 1, handshake_timeout_ms: 4000, tls_first: "never" } });
  for (let i = 0; i < 8; i++) await dep.edge("acme-corp", `site-${i}`);
});

test.after.always(async () => {
  await dep?.stop();
});

/** A TCP connection that collects what the gateway sends it. */
function rawTcp(port: number): { socket: net.Socket; received: () => string; firstData: Promise<string> } {
  const socket = net.connect({ host: "127.0.0.1", port });
  let text = "";
  const firstData = new Promise<string>((resolve) => socket.once("data", (b: Buffer) => resolve(b.toString("latin1"))));
  socket.on("data", (b: Buffer) => (text += b.toString("latin1")));
  socket.on("error", () => undefined);
  return { socket, received: () => text, firstData };
}

test.serial("a connection beyond handshake_concurrency waits unread, with no INFO, until a handshake slot frees", async (t) => {
  const first = rawTcp(dep.gateway.port);
  t.regex(await within(first.firstData, 5000, "INFO to the first connection"), /^INFO /);
  // The first holds the only slot (it never starts TLS); the second waits.
  const second = rawTcp(dep.gateway.port);
  const early = await Promise.race([second.firstData, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]);
  t.is(early, undefined, "no INFO while the slot is taken");
  const freedAt = Date.now();
  first.socket.destroy();
  t.regex(await within(second.firstData, 5000, "INFO to the second connection"), /^INFO /);
  t.true(Date.now() - freedAt < 1000, "its turn came when the slot freed");
  second.socket.destroy();
});

test.serial("a burst of 40 stock clients through one handshake slot: every one connects, none times out", async (t) => {
  const before = dep.logs.lines.length;
  const fleet = await ClientFleet.connect(40, (i) => dep.edge("acme-corp", `site-${i % 8}`), { servers: dep.url, concurrency: 40, v2: { reconnect: false }, v3: { reconnect: false } });
  t.teardown(() => fleet.close());
  t.is(fleet.clients.length, 40);
  const timeouts = dep.logs.lines.slice(before).filter((l) => l.event === "connection_refused" && l.code === "handshake_timeout");
  t.is(timeouts.length, 0);
});

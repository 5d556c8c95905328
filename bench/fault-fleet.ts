/**
 * A fleet of stock clients in its own process, for the fault benchmark (bench/faults.ts): it opens
 * many connections that reconnect as edge sites do (the stock client's own reconnect settings,
 * attempts unlimited) and records when each one lost and regained its connection. The
 * orchestrator asks over IPC; one request at a time.
 */
import { connect, jwtAuthenticator, type NatsConnection } from "nats";

export interface FleetEndpoint {
  servers: string[];
  tls: { ca: string; cert?: string; key?: string };
  /** A user JWT of the tenant's account and its seed (direct clients). */
  auth?: { jwt: string; seed: string };
}

export type FleetRequest =
  | { op: "connect"; endpoint: FleetEndpoint; count: number; concurrency: number }
  /** Every client reconnected at or after `since` (epoch ms), or `timeoutMs` passed. */
  | { op: "reconnected"; since: number; timeoutMs: number }
  | { op: "close" };

export interface FleetReply {
  connect: { connected: number; ms: number };
  /** Per client: ms from `since` to its first reconnect after it (missing: never). */
  reconnected: { delays: number[]; missing: number; gaveUp: number };
  close: { closed: number };
}

interface Tracked {
  nc: NatsConnection;
  reconnects: number[];
  closed: boolean;
}

const clients: Tracked[] = [];
let changed: () => void = () => undefined;

async function open(endpoint: FleetEndpoint, count: number, concurrency: number): Promise<FleetReply["connect"]> {
  const started = Date.now();
  const encoder = new TextEncoder();
  for (let i = 0; i < count; i += concurrency) {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, count - i) }, async () => {
        const nc = await connect({
          servers: endpoint.servers,
          tls: endpoint.tls,
          maxReconnectAttempts: -1,
          ...(endpoint.auth ? { authenticator: jwtAuthenticator(endpoint.auth.jwt, encoder.encode(endpoint.auth.seed)) } : {}),
        });
        const tracked: Tracked = { nc, reconnects: [], closed: false };
        clients.push(tracked);
        void (async () => {
          for await (const s of nc.status()) {
            if (s.type === "reconnect") {
              tracked.reconnects.push(Date.now());
              changed();
            }
          }
        })().catch(() => undefined);
        void nc.closed().then(() => {
          tracked.closed = true;
          changed();
        });
      }),
    );
  }
  return { connected: clients.length, ms: Date.now() - started };
}

function reconnected(since: number, timeoutMs: number): Promise<FleetReply["reconnected"]> {
  return new Promise((resolve) => {
    const summary = (): FleetReply["reconnected"] => {
      const delays: number[] = [];
      for (const c of clients) {
        const at = c.reconnects.find((r) => r >= since);
        if (at !== undefined) delays.push(at - since);
      }
      return { delays: delays.sort((a, b) => a - b), missing: clients.length - delays.length, gaveUp: clients.filter((c) => c.closed).length };
    };
    const timer = setTimeout(() => {
      changed = () => undefined;
      resolve(summary());
    }, timeoutMs);
    changed = () => {
      const s = summary();
      if (s.missing - s.gaveUp > 0) return;
      clearTimeout(timer);
      changed = () => undefined;
      resolve(s);
    };
    changed();
  });
}

async function handle(req: FleetRequest): Promise<unknown> {
  switch (req.op) {
    case "connect":
      return open(req.endpoint, req.count, req.concurrency);
    case "reconnected":
      return reconnected(req.since, req.timeoutMs);
    case "close": {
      const n = clients.length;
      await Promise.all(clients.splice(0).map((c) => c.nc.close().catch(() => undefined)));
      return { closed: n };
    }
  }
}

process.on("message", (msg: { id: number; req: FleetRequest }) => {
  handle(msg.req).then(
    (value) => process.send!({ id: msg.id, ok: true, value }),
    (err: unknown) => process.send!({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
process.on("disconnect", () => process.exit(0));

/**
 * Many stock clients at once, as edge sites are: each with its own connection (nats v2 or
 * @nats-io/transport-node v3), its status events recorded with the time they came. Fault tests
 * await "every client reconnected" and read how long each took, never sleep.
 */
import { EventEmitter } from "node:events";
import { connect as connectV2, type ConnectionOptions as ConnectionOptionsV2 } from "nats";
import { connect as connectV3, type NodeConnectionOptions } from "@nats-io/transport-node";
import type { ClientTls } from "./gateway-fixture.ts";

export type ClientKind = "v2" | "v3";

/** What both stock clients have in common, as the fleet uses them. */
export interface FleetConnection {
  publish(subject: string, data?: string): void;
  flush(): Promise<void>;
  close(): Promise<void>;
  closed(): Promise<void | Error>;
  isClosed(): boolean;
}

export interface FleetClient {
  readonly name: string;
  readonly kind: ClientKind;
  readonly nc: FleetConnection;
  /** Every status event: type and when (Date.now()). */
  readonly events: Array<{ type: string; at: number }>;
  /** When the connection closed for good (the client gave up), if it did. */
  closedAt: number | undefined;
}

export interface FleetOptions {
  servers: string | string[];
  /** v2 and v3 alternate unless one kind is given. */
  kinds?: ClientKind[];
  /** Stock defaults unless given (reconnect on, the client's own wait and attempts). */
  v2?: Partial<ConnectionOptionsV2>;
  v3?: Partial<NodeConnectionOptions>;
  /** Connections opened at once (a TLS handshake costs a few ms of the gateway's CPU each). */
  concurrency?: number;
}

export class ClientFleet {
  readonly clients: FleetClient[] = [];
  private readonly changes = new EventEmitter();

  private constructor() {
    this.changes.setMaxListeners(0);
  }

  /** Connects `count` clients, the i-th with `identity(i)`. */
  static async connect(count: number, identity: (i: number) => Promise<ClientTls>, opts: FleetOptions): Promise<ClientFleet> {
    const fleet = new ClientFleet();
    const kinds = opts.kinds ?? ["v2", "v3"];
    const concurrency = opts.concurrency ?? 20;
    for (let start = 0; start < count; start += concurrency) {
      const batch: Array<Promise<void>> = [];
      for (let i = start; i < Math.min(count, start + concurrency); i++) batch.push(fleet.add(`client-${i}`, kinds[i % kinds.length]!, await identity(i), opts));
      await Promise.all(batch);
    }
    return fleet;
  }

  private async add(name: string, kind: ClientKind, tls: ClientTls, opts: FleetOptions): Promise<void> {
    const nc: FleetConnection & { status(): AsyncIterable<{ type: string }> } =
      kind === "v2" ? await connectV2({ servers: opts.servers, tls, name, ...opts.v2 }) : await connectV3({ servers: opts.servers, tls, name, ...opts.v3 });
    const client: FleetClient = { name, kind, nc, events: [], closedAt: undefined };
    this.clients.push(client);
    void (async () => {
      for await (const s of nc.status()) {
        client.events.push({ type: s.type, at: Date.now() });
        this.changes.emit("change");
      }
    })().catch(() => undefined);
    void nc.closed().then(() => {
      client.closedAt = Date.now();
      this.changes.emit("change");
    });
  }

  /** Resolves once `done` holds for every client (checked at each status event), or rejects after `timeoutMs`. */
  until(done: (c: FleetClient) => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (!this.clients.every(done)) return false;
        cleanup();
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        const missing = this.clients.filter((c) => !done(c));
        reject(new Error(`${what}: ${missing.length} of ${this.clients.length} clients not there within ${timeoutMs} ms (e.g. ${missing.slice(0, 3).map((c) => `${c.name} ${c.kind} ${JSON.stringify(c.events.slice(-4))}${c.closedAt ? " closed" : ""}`).join("; ")})`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.changes.off("change", check);
      };
      this.changes.on("change", check);
      check();
    });
  }

  /** The first event of this type at or after `since`, per client. */
  static firstSince(c: FleetClient, type: string, since: number): number | undefined {
    return c.events.find((e) => e.type === type && e.at >= since)?.at;
  }

  /** Every client reconnected at or after `since`. */
  allReconnected(since: number, timeoutMs: number): Promise<void> {
    return this.until((c) => ClientFleet.firstSince(c, "reconnect", since) !== undefined, timeoutMs, "reconnect");
  }

  /** Every client reported a disconnect at or after `since`. */
  allDisconnected(since: number, timeoutMs: number): Promise<void> {
    return this.until((c) => ClientFleet.firstSince(c, "disconnect", since) !== undefined, timeoutMs, "disconnect");
  }

  /** Milliseconds from `since` to each client's first reconnect after it, sorted (clients that did not reconnect are left out). */
  reconnectDelays(since: number): number[] {
    return this.clients
      .map((c) => ClientFleet.firstSince(c, "reconnect", since))
      .filter((at): at is number => at !== undefined)
      .map((at) => at - since)
      .sort((a, b) => a - b);
  }

  get gaveUp(): FleetClient[] {
    return this.clients.filter((c) => c.closedAt !== undefined);
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.nc.close().catch(() => undefined)));
  }
}

/** p-th percentile (0–100) of sorted numbers. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

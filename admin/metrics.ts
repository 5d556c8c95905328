/**
 * The gateway's Prometheus metrics (prom-client). Cardinality is bounded by design: the only
 * labels are `tenant` (a registered tenant's slug, `_platform` for platform identities, `_unknown`
 * for connections that never named a registered tenant), `code` (the stable refusal codes),
 * `result`, `worker` and, for JetStream, `stream` (the tenant's template streams) — never a
 * session, a subject or a client address. At 1,000 tenants that is a few series per tenant.
 *
 * Nothing is counted per message: message and byte counters are the sessions' own counters, summed
 * when Prometheus scrapes (live sessions) plus what closed sessions had (kept per tenant).
 */
import cluster from "node:cluster";
import { monitorEventLoopDelay, type IntervalHistogram } from "node:perf_hooks";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { parseCommonName } from "../pki/names.ts";
import type { SessionCounters } from "../gateway/session-rewriter.ts";
import type { GatewayReadiness, GatewayTelemetry, SessionSummary } from "../gateway/telemetry.ts";
import type { StreamStats } from "./jetstream-stats.ts";

export const PLATFORM_LABEL = "_platform";
export const UNKNOWN_LABEL = "_unknown";

/** What the metrics read from a running gateway when scraped. */
export interface GatewaySource {
  sessionList(): SessionSummary[];
  readonly stats: { held: number };
  readiness(): Promise<GatewayReadiness>;
  /** Is this a registered tenant (so its slug may become a label)? */
  isTenant(slug: string): boolean;
}

type Totals = Omit<SessionCounters, never>;

const ZERO: Totals = { msgsIn: 0, bytesIn: 0, msgsOut: 0, bytesOut: 0, dropped: 0, refused: 0, jsApi: 0, jsRefused: 0 };

function add(into: Totals, c: SessionCounters): void {
  into.msgsIn += c.msgsIn;
  into.bytesIn += c.bytesIn;
  into.msgsOut += c.msgsOut;
  into.bytesOut += c.bytesOut;
  into.dropped += c.dropped;
  into.refused += c.refused;
  into.jsApi += c.jsApi;
  into.jsRefused += c.jsRefused;
}

/** Which worker this process is (`0`: a single process, or the primary). */
export function workerLabel(): string {
  return String(cluster.worker?.id ?? 0);
}

/** Handshake latency buckets, seconds: TLS, CONNECT, identity and the upstream login together. */
const HANDSHAKE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The metrics of one gateway process: what its sessions did and how its connections went. With
 * `--workers N` every worker has its own and the primary sums them (see cluster-runtime.ts).
 */
export class GatewayMetrics implements GatewayTelemetry {
  private readonly source: GatewaySource;
  /** What closed sessions did, per tenant label. */
  private readonly closed = new Map<string, Totals>();
  private snapshotCache: { totals: Map<string, Totals>; open: Map<string, number> } | undefined;
  private readonly accepted: Counter<"tenant">;
  private readonly refused: Counter<"tenant" | "code">;
  private readonly slowConsumers: Counter<"tenant">;
  private readonly probes: Counter;
  private readonly upstream: Counter<"result">;
  private readonly handshake: Histogram;
  private readonly loopDelay: IntervalHistogram;

  constructor(registry: Registry, source: GatewaySource) {
    this.source = source;
    const registers = [registry];
    const worker = workerLabel();
    this.accepted = new Counter({ name: "tenant_gateway_connections_accepted_total", help: "Client connections accepted into a session, per tenant (_platform: platform identities).", labelNames: ["tenant"], registers });
    this.refused = new Counter({ name: "tenant_gateway_connections_refused_total", help: "Client connections refused, per tenant (_unknown when no registered tenant was named) and refusal code.", labelNames: ["tenant", "code"], registers });
    this.slowConsumers = new Counter({ name: "tenant_gateway_slow_consumers_total", help: "Sessions cut because the client could not take its messages (slow consumer), per tenant.", labelNames: ["tenant"], registers });
    this.probes = new Counter({ name: "tenant_gateway_probe_connections_total", help: "TCP connections closed without sending a byte (load balancer health checks): counted, not logged.", registers });
    this.upstream = new Counter({ name: "tenant_gateway_upstream_connects_total", help: "Upstream NATS logins for new sessions: ok, refused (NATS said no), failed (unreachable, timeout, TLS).", labelNames: ["result"], registers });
    this.handshake = new Histogram({ name: "tenant_gateway_handshake_seconds", help: "From TCP accept to an established session (TLS, CONNECT, identity, upstream login).", buckets: HANDSHAKE_BUCKETS, registers });

    const snapshot = (): ReturnType<GatewayMetrics["snapshot"]> => this.snapshot();
    const perTenant = (name: string, help: string, pick: (t: Totals) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ["tenant"],
        registers,
        collect() {
          this.reset();
          for (const [tenant, totals] of snapshot().totals) this.inc({ tenant }, pick(totals));
        },
      });
    };
    perTenant("tenant_gateway_messages_in_total", "Messages from clients to NATS, per tenant.", (t) => t.msgsIn);
    perTenant("tenant_gateway_messages_out_total", "Messages from NATS delivered to clients, per tenant.", (t) => t.msgsOut);
    perTenant("tenant_gateway_bytes_in_total", "Payload bytes from clients to NATS, per tenant.", (t) => t.bytesIn);
    perTenant("tenant_gateway_bytes_out_total", "Payload bytes from NATS delivered to clients, per tenant.", (t) => t.bytesOut);
    perTenant("tenant_gateway_foreign_subjects_dropped_total", "Messages from NATS on subjects the session does not own, dropped (never delivered), per tenant.", (t) => t.dropped);
    perTenant("tenant_gateway_frames_refused_total", "Client frames refused with -ERR (the session goes on), per tenant.", (t) => t.refused);
    perTenant("tenant_gateway_jetstream_api_requests_total", "JetStream API requests translated into the tenant's account, per tenant.", (t) => t.jsApi);
    perTenant("tenant_gateway_jetstream_api_refused_total", "JetStream API requests refused with a JetStream error, per tenant.", (t) => t.jsRefused);

    new Gauge({
      name: "tenant_gateway_connections_open",
      help: "Open client sessions, per tenant (_platform: platform identities).",
      labelNames: ["tenant"],
      registers,
      collect() {
        this.reset();
        for (const [tenant, n] of snapshot().open) this.set({ tenant }, n);
      },
    });
    new Gauge({
      name: "tenant_gateway_sessions",
      help: "Open client sessions per gateway process (worker 0: a single process).",
      labelNames: ["worker"],
      registers,
      collect() {
        this.set({ worker }, source.sessionList().length);
      },
    });
    new Gauge({
      name: "tenant_gateway_held_connections",
      help: "Connections of suspended tenants held until the tenant is resumed, per gateway process.",
      labelNames: ["worker"],
      registers,
      collect() {
        this.set({ worker }, source.stats.held);
      },
    });
    new Gauge({
      name: "tenant_gateway_ready",
      help: "1 when the gateway process is ready (listening, not in lame duck, NATS answering, registry loaded, PLATFORM account in NATS).",
      labelNames: ["worker"],
      aggregator: "min",
      registers,
      async collect() {
        this.set({ worker }, (await source.readiness()).ready ? 1 : 0);
      },
    });

    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
    const loop = this.loopDelay;
    for (const [name, help, pick] of [
      ["tenant_gateway_event_loop_delay_p99_seconds", "Event-loop delay, 99th percentile since the previous scrape, per gateway process.", () => loop.percentile(99)],
      ["tenant_gateway_event_loop_delay_max_seconds", "Event-loop delay, maximum since the previous scrape, per gateway process.", () => loop.max],
    ] as const) {
      new Gauge({
        name,
        help,
        labelNames: ["worker"],
        registers,
        collect() {
          const ns = pick();
          this.set({ worker }, Number.isFinite(ns) ? ns / 1e9 : 0);
          // The max gauge reads last: the window restarts after both are taken.
          if (name.endsWith("max_seconds")) loop.reset();
        },
      });
    }
  }

  stop(): void {
    this.loopDelay.disable();
  }

  /** The tenant label of a connection's log fields: a registered tenant, `_platform`, or `_unknown`. */
  private tenantLabel(fields: Readonly<Record<string, unknown>>): string {
    if (typeof fields.platform === "string") return PLATFORM_LABEL;
    if (typeof fields.tenant === "string") return this.source.isTenant(fields.tenant) ? fields.tenant : UNKNOWN_LABEL;
    if (typeof fields.cn === "string") {
      try {
        const parsed = parseCommonName(fields.cn);
        if (parsed.kind === "platform") return PLATFORM_LABEL;
        return this.source.isTenant(parsed.tenant) ? parsed.tenant : UNKNOWN_LABEL;
      } catch {
        return UNKNOWN_LABEL;
      }
    }
    return UNKNOWN_LABEL;
  }

  connection(accepted: boolean, fields: Readonly<Record<string, unknown>>): void {
    const tenant = this.tenantLabel(fields);
    const code = typeof fields.code === "string" ? fields.code : "unknown";
    if (accepted) {
      this.accepted.inc({ tenant });
      this.upstream.inc({ result: "ok" });
      if (typeof fields.handshake_ms === "number") this.handshake.observe(fields.handshake_ms / 1000);
      return;
    }
    this.refused.inc({ tenant, code });
    if (code === "upstream_refused") this.upstream.inc({ result: "refused" });
    else if (code.startsWith("upstream_")) this.upstream.inc({ result: "failed" });
  }

  probe(): void {
    this.probes.inc();
  }

  sessionClosed(session: SessionSummary, reason: string): void {
    const tenant = session.kind === "platform" ? PLATFORM_LABEL : (session.tenant ?? UNKNOWN_LABEL);
    let totals = this.closed.get(tenant);
    if (!totals) this.closed.set(tenant, (totals = { ...ZERO }));
    add(totals, session.counters);
    if (reason === "slow consumer") this.slowConsumers.inc({ tenant });
  }

  /**
   * Per tenant: closed sessions' totals plus the live ones', and the open session count. Taken
   * once per scrape: prom-client runs every metric's collect in one synchronous pass, so the
   * snapshot lives until the event loop turns.
   */
  private snapshot(): { totals: Map<string, Totals>; open: Map<string, number> } {
    if (this.snapshotCache) return this.snapshotCache;
    const totals = new Map<string, Totals>();
    for (const [tenant, t] of this.closed) {
      // A deleted tenant's counters go with it (the label set stays that of the registered tenants).
      if (tenant !== PLATFORM_LABEL && !this.source.isTenant(tenant)) this.closed.delete(tenant);
      else totals.set(tenant, { ...t });
    }
    const open = new Map<string, number>();
    for (const s of this.source.sessionList()) {
      const tenant = s.kind === "platform" ? PLATFORM_LABEL : (s.tenant ?? UNKNOWN_LABEL);
      let t = totals.get(tenant);
      if (!t) totals.set(tenant, (t = { ...ZERO }));
      add(t, s.counters);
      open.set(tenant, (open.get(tenant) ?? 0) + 1);
    }
    const snapshot = { totals, open };
    this.snapshotCache = snapshot;
    setImmediate(() => {
      if (this.snapshotCache === snapshot) this.snapshotCache = undefined;
    });
    return snapshot;
  }
}

/**
 * The tenants' JetStream, from the periodic collection (jetstream-stats.ts): one process collects
 * (the single gateway, or the primary of a worker group), so the figures are never summed twice.
 */
export function registerJetStreamMetrics(registry: Registry, latest: () => { streams: StreamStats[]; collectedAt?: Date; durationMs?: number; error?: string; available: boolean }): void {
  const registers = [registry];
  const perStream = (name: string, help: string, pick: (s: StreamStats) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ["tenant", "stream"],
      registers,
      collect() {
        this.reset();
        for (const s of latest().streams) this.set({ tenant: s.tenant, stream: s.stream }, pick(s));
      },
    });
  };
  perStream("tenant_gateway_jetstream_stream_messages", "Messages stored in the tenant's stream.", (s) => s.messages);
  perStream("tenant_gateway_jetstream_stream_bytes", "Bytes stored in the tenant's stream.", (s) => s.bytes);
  perStream("tenant_gateway_jetstream_consumers", "Consumers of the tenant's stream.", (s) => s.consumers);
  perStream("tenant_gateway_jetstream_consumer_lag_messages", "Consumer lag: messages of the stream not yet delivered to its slowest consumer (the largest num_pending).", (s) => s.consumer_lag);
  perStream("tenant_gateway_jetstream_consumer_ack_pending_messages", "Messages delivered to the stream's consumers and not yet acknowledged (summed over consumers).", (s) => s.ack_pending);
  new Gauge({
    name: "tenant_gateway_jetstream_stats_age_seconds",
    help: "Age of the JetStream figures (they are collected periodically, not per scrape); -1 before the first collection.",
    registers,
    collect() {
      const at = latest().collectedAt;
      this.set(at ? (Date.now() - at.getTime()) / 1000 : -1);
    },
  });
  new Gauge({
    name: "tenant_gateway_jetstream_stats_up",
    help: "1 when the last JetStream collection succeeded (it needs the system account: a control-plane data dir).",
    registers,
    collect() {
      const l = latest();
      this.set(l.available && !l.error && l.collectedAt ? 1 : 0);
    },
  });
  new Gauge({
    name: "tenant_gateway_jetstream_stats_duration_seconds",
    help: "How long the last JetStream collection took.",
    registers,
    collect() {
      this.set((latest().durationMs ?? 0) / 1000);
    },
  });
}

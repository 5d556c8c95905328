/**
 * What the gateway tells an observer about its clients, and what it lets an operator read of
 * them: the connection outcomes (for metrics), the live sessions (for the admin API and the
 * console), and whether it is ready to serve (for a load balancer). The observer is plugged in
 * by whoever runs the gateway (the HTTP side, admin/); the gateway itself knows nothing of
 * Prometheus or HTTP. Nothing here is called per message: counters are read from the sessions
 * when someone asks.
 */
import type { SessionCounters } from "./session-rewriter.ts";

/** Who a live session is, where it comes from, and where it goes. */
export interface SessionFacts {
  kind: "edge" | "platform";
  /** Edge sessions: the tenant's slug. */
  tenant?: string;
  component?: string;
  partition?: string;
  /** Platform sessions: the identity's name (`admin`). */
  platform?: string;
  cn: string;
  remote: string;
  /** The NATS server the session's upstream connection went to. */
  nats: string;
  tls_first: boolean;
  started_at: string;
}

export interface SessionSummary extends SessionFacts {
  id: string;
  /** Messages and payload bytes client→NATS (`in`) and NATS→client (`out`), foreign subjects dropped, frames refused. */
  counters: SessionCounters;
  /** The process serving it (with `--workers N`, one of the workers). */
  pid: number;
}

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

/** Ready when every check is ok: the listener up, NATS answering, the registry loaded, the PLATFORM account in NATS, not in lame duck. */
export interface GatewayReadiness {
  ready: boolean;
  checks: Record<string, ReadinessCheck>;
}

export interface GatewayTelemetry {
  /**
   * A connection accepted into a session or refused: `fields` are the log line's (`code`,
   * `tenant`, `platform`, `cn`, `handshake_ms` for an accepted one).
   */
  connection(accepted: boolean, fields: Readonly<Record<string, unknown>>): void;
  /** A TCP connection that closed without sending a byte: a load balancer's health check. */
  probe(): void;
  /** A session ended; its final counters. */
  sessionClosed(session: SessionSummary, reason: string): void;
}

export const NO_TELEMETRY: GatewayTelemetry = {
  connection: () => undefined,
  probe: () => undefined,
  sessionClosed: () => undefined,
};

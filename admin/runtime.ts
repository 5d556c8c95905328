/**
 * What the HTTP side needs of a running gateway: its control plane and live registry, its
 * sessions, its readiness. One gateway process answers for itself (`localRuntime`); the primary of
 * a worker group answers for all its workers (cluster.ts).
 */
import type { ControlPlane } from "../accounts/control-plane.ts";
import type { Gateway } from "../gateway/gateway.ts";
import type { GatewayReadiness, SessionSummary } from "../gateway/telemetry.ts";
import type { TenantDirectory } from "../gateway/tenant-directory.ts";

export interface GatewayRuntime {
  readonly cp: ControlPlane;
  /** The live registry: admission of API clients, tenant labels, the JetStream figures' tenants. */
  readonly registry: TenantDirectory;
  readonly allowedIdentities: readonly string[];
  sessions(filter?: { tenant?: string }): Promise<SessionSummary[]>;
  /** Ends one session wherever it is served; its summary, or undefined when there is none by that id. */
  disconnect(id: string, reason: string): Promise<SessionSummary | undefined>;
  readiness(): Promise<GatewayReadiness>;
}

export function localRuntime(gateway: Gateway): GatewayRuntime {
  return {
    cp: gateway.controlPlane,
    registry: gateway.registry,
    allowedIdentities: gateway.config.platform.allowed_identities,
    sessions: (filter) => Promise.resolve(gateway.sessionList(filter)),
    disconnect: (id, reason) => Promise.resolve(gateway.disconnect(id, reason)),
    readiness: () => gateway.readiness(),
  };
}

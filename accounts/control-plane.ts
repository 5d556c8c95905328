/**
 * What every control-plane operation needs, opened once: the data dir (platform PKI and the NATS
 * operator), the tenant store (directory or KV), the plans, and connections to NATS opened lazily
 * only by the operations that need them.
 */
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodedError } from "../common/coded-error.ts";
import { DataLayout } from "../pki/layout.ts";
import { pushAccountJwt } from "./claims.ts";
import { DirectoryTenantStore } from "./directory-store.ts";
import { KvTenantStore } from "./kv-store.ts";
import { connectAsAccountUser, connectAsSystem } from "./nats-control.ts";
import { loadOperator, type OperatorMaterial } from "./operator.ts";
import { loadPlans, type PlanFile } from "./plans.ts";
import { loadMasterKey } from "./secret-box.ts";
import type { TenantStore } from "./tenant-store.ts";

export type StoreKind = "dir" | "kv";

export interface ControlPlaneOptions {
  dataDir: string;
  servers: string[];
  store?: StoreKind;
  masterKeyFile?: string;
  bucket?: string;
  pollMs?: number;
  /** Keep the system connection across NATS restarts (a running gateway), not fail fast (a CLI command). */
  reconnect?: boolean;
}

export function defaultMasterKeyFile(dataDir: string): string {
  return path.join(dataDir, "master.key");
}

export class ControlPlane {
  readonly layout: DataLayout;
  readonly operator: OperatorMaterial;
  readonly servers: string[];
  readonly store: TenantStore;
  private systemConnection: Promise<NatsConnection> | undefined;
  private readonly extraConnections = new Set<NatsConnection>();
  private readonly reconnect: boolean;

  private constructor(layout: DataLayout, operator: OperatorMaterial, servers: string[], store: TenantStore, reconnect: boolean, system?: Promise<NatsConnection>) {
    this.layout = layout;
    this.operator = operator;
    this.servers = servers;
    this.store = store;
    this.reconnect = reconnect;
    this.systemConnection = system;
  }

  static async open(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const layout = new DataLayout(opts.dataDir);
    const operator = await loadOperator(layout);
    if ((opts.store ?? "dir") === "dir") {
      return new ControlPlane(layout, operator, opts.servers, new DirectoryTenantStore(layout, opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }), opts.reconnect ?? false);
    }
    // The KV registry lives in the PLATFORM account, which must be known to NATS first.
    const masterKey = await loadMasterKey({ file: opts.masterKeyFile ?? defaultMasterKeyFile(layout.dir) });
    const system = connectAsSystem(opts.servers, operator.systemUserCreds, { reconnect: opts.reconnect ?? false });
    let registry: NatsConnection | undefined;
    try {
      // Only when NATS does not know it yet: the pushed PLATFORM account carries the tenant imports.
      if (!(await accountKnown(await system, operator.platform.getPublicKey()))) await pushAccountJwt(await system, operator.platformJwt, operator.operator.getPublicKey());
      registry = await connectAsAccountUser(opts.servers, { account: operator.platform.getPublicKey(), signer: operator.platformSigning, name: "tenant-gateway-registry" }, { reconnect: true });
      const store = await KvTenantStore.open(registry, masterKey, { ...(opts.bucket ? { bucket: opts.bucket } : {}), ownsConnection: true });
      return new ControlPlane(layout, operator, opts.servers, store, opts.reconnect ?? false, system);
    } catch (err) {
      // Connections left open by a failed open would keep the process alive: a CLI command would hang.
      await Promise.allSettled([system.then((nc) => nc.close()), registry?.close()]);
      throw err;
    }
  }

  /** The system user's connection, opened on first use. */
  system(): Promise<NatsConnection> {
    this.systemConnection ??= connectAsSystem(this.servers, this.operator.systemUserCreds, { reconnect: this.reconnect });
    return this.systemConnection;
  }

  plans(): Promise<PlanFile> {
    return loadPlans(this.layout.dir);
  }

  /** A control user inside an account (full permissions there), closed with the control plane. */
  async accountConnection(account: string, signer: Parameters<typeof connectAsAccountUser>[1]["signer"], name: string): Promise<NatsConnection> {
    const nc = await connectAsAccountUser(this.servers, { account, signer, name, ttlSeconds: 3600 });
    this.extraConnections.add(nc);
    void nc.closed().then(() => this.extraConnections.delete(nc));
    return nc;
  }

  async close(): Promise<void> {
    const system = this.systemConnection;
    this.systemConnection = undefined;
    await Promise.allSettled([...[...this.extraConnections].map((c) => c.close()), system?.then((c) => c.close()), this.store.close()]);
  }
}

/** Does NATS know this account? (`$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP` answers only for known ones.) */
async function accountKnown(system: NatsConnection, account: string): Promise<boolean> {
  try {
    const reply = await system.request(`$SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`, "", { timeout: 1000 });
    return reply.data.length > 0;
  } catch {
    return false;
  }
}

export function requireStoreKind(value: string | undefined): StoreKind {
  const v = value ?? process.env.TENANT_GATEWAY_STORE ?? "dir";
  if (v !== "dir" && v !== "kv") throw new CodedError("invalid_argument", `--store must be "dir" or "kv", got "${v}"`);
  return v;
}

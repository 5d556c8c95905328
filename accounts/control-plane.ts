/**
 * What every control-plane operation needs, opened once: the data dir (platform PKI and the NATS
 * operator), the tenant store (directory or KV), the plans, and connections to NATS opened lazily
 * only by the operations that need them.
 *
 * A data-plane data dir (`tenant-gateway export dataplane`) opens too: it has the PLATFORM
 * account's signing key but no operator seed, so it can serve and read the registry, and
 * everything that signs or pushes accounts refuses with `control_plane_only`.
 */
import path from "node:path";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodedError } from "../common/coded-error.ts";
import { DataLayout } from "../pki/layout.ts";
import { pushAccountJwt } from "./claims.ts";
import { DirectoryTenantStore } from "./directory-store.ts";
import { KvTenantStore } from "./kv-store.ts";
import { connectAsAccountUser, connectAsSystem } from "./nats-control.ts";
import { hasOperatorSeed, loadOperator, loadPlatformSigner, type OperatorMaterial } from "./operator.ts";
import { loadPlans, type PlanFile } from "./plans.ts";
import { loadMasterKey } from "./secret-box.ts";
import type { TenantStore } from "./tenant-store.ts";
import type { AccountSigner } from "./user-jwt.ts";

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
  readonly servers: string[];
  readonly store: TenantStore;
  /** The PLATFORM account and its signing key: all the data path needs of the NATS trust root. */
  readonly platform: AccountSigner;
  private readonly operatorMaterial: OperatorMaterial | undefined;
  private systemConnection: Promise<NatsConnection> | undefined;
  private platformUser: Promise<NatsConnection> | undefined;
  private readonly extraConnections = new Set<NatsConnection>();
  private readonly reconnect: boolean;

  private constructor(parts: { layout: DataLayout; operator: OperatorMaterial | undefined; platform: AccountSigner; servers: string[]; store: TenantStore; reconnect: boolean; system?: Promise<NatsConnection> }) {
    this.layout = parts.layout;
    this.operatorMaterial = parts.operator;
    this.platform = parts.platform;
    this.servers = parts.servers;
    this.store = parts.store;
    this.reconnect = parts.reconnect;
    this.systemConnection = parts.system;
  }

  static async open(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const layout = new DataLayout(opts.dataDir);
    const operator = (await hasOperatorSeed(layout)) ? await loadOperator(layout) : undefined;
    const platform = operator ? { account: operator.platform.getPublicKey(), signingKey: operator.platformSigning } : await loadPlatformSigner(layout);
    const reconnect = opts.reconnect ?? false;
    if ((opts.store ?? "dir") === "dir") {
      const store = new DirectoryTenantStore(layout, opts.pollMs === undefined ? {} : { pollMs: opts.pollMs });
      return new ControlPlane({ layout, operator, platform, servers: opts.servers, store, reconnect });
    }
    // The KV registry lives in the PLATFORM account, which must be known to NATS first.
    const masterKey = await loadMasterKey({ file: opts.masterKeyFile ?? defaultMasterKeyFile(layout.dir) });
    const system = operator ? connectAsSystem(opts.servers, operator.systemUserCreds, { reconnect }) : undefined;
    let registry: NatsConnection | undefined;
    try {
      // Only when NATS does not know it yet: the pushed PLATFORM account carries the tenant imports.
      // A data-plane data dir cannot push it: the control plane (init, sync) has done so.
      if (operator && system && !(await accountKnown(await system, platform.account))) await pushAccountJwt(await system, operator.platformJwt, operator.operator.getPublicKey());
      registry = await connectAsAccountUser(opts.servers, { account: platform.account, signer: platform.signingKey, name: "tenant-gateway-registry" }, { reconnect: true });
      const store = await KvTenantStore.open(registry, masterKey, { ...(opts.bucket ? { bucket: opts.bucket } : {}), ownsConnection: true });
      return new ControlPlane({ layout, operator, platform, servers: opts.servers, store, reconnect, ...(system ? { system } : {}) });
    } catch (err) {
      // Connections left open by a failed open would keep the process alive: a CLI command would hang.
      await Promise.allSettled([system?.then((nc) => nc.close()), registry?.close()]);
      throw err;
    }
  }

  /**
   * `open`, then the PLATFORM account's own long-lived connection (`platformConnection`), retried
   * with backoff while NATS is unreachable (see untilNatsReachable): how a gateway starts.
   */
  static async openReachable(opts: ControlPlaneOptions, retry: { waitMs: number; onRetry: (retry: NatsRetry) => void }, connectionName: string): Promise<ControlPlane> {
    return untilNatsReachable(async () => {
      const cp = await ControlPlane.open(opts);
      try {
        await cp.platformConnection(connectionName);
        return cp;
      } catch (err) {
        await cp.close();
        throw err;
      }
    }, retry);
  }

  /** False for a data-plane data dir: no operator seed, so nothing here signs or pushes accounts. */
  get canSignAccounts(): boolean {
    return this.operatorMaterial !== undefined;
  }

  /** The operator, system and PLATFORM account material; only a control-plane data dir has it. */
  get operator(): OperatorMaterial {
    if (!this.operatorMaterial) {
      throw new CodedError(
        "control_plane_only",
        `${this.layout.dir} holds only the data-plane part (no operator seed): accounts cannot be signed or pushed from it; run this against the control plane's data dir`,
      );
    }
    return this.operatorMaterial;
  }

  /** The system user's connection, opened on first use. */
  system(): Promise<NatsConnection> {
    if (!this.systemConnection) {
      try {
        this.systemConnection = connectAsSystem(this.servers, this.operator.systemUserCreds, { reconnect: this.reconnect });
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return this.systemConnection;
  }

  /**
   * A user of the PLATFORM account that never expires and reconnects (a serving gateway's own
   * connection: audit stream, NATS's INFO); opened on first use, closed with the control plane.
   */
  platformConnection(name: string): Promise<NatsConnection> {
    if (!this.platformUser) {
      const opened = connectAsAccountUser(this.servers, { account: this.platform.account, signer: this.platform.signingKey, name }, { reconnect: true });
      this.platformUser = opened;
      opened.catch(() => {
        if (this.platformUser === opened) this.platformUser = undefined;
      });
    }
    return this.platformUser;
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
    const [system, platformUser] = [this.systemConnection, this.platformUser];
    this.systemConnection = undefined;
    this.platformUser = undefined;
    await Promise.allSettled([...[...this.extraConnections].map((c) => c.close()), system?.then((c) => c.close()), platformUser?.then((c) => c.close()), this.store.close()]);
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

/** Start-up against a NATS that is not there yet: the first retry after 0.5 s, doubling up to 15 s. */
const NATS_RETRY_FIRST_MS = 500;
const NATS_RETRY_MAX_MS = 15_000;

export interface NatsRetry {
  attempt: number;
  /** How long until the next attempt. */
  delayMs: number;
  error: CodedError;
}

/**
 * Runs `attempt` until NATS answers: while it fails with `nats_unreachable`, waits (backoff) and
 * tries again, telling `onRetry` each time. Any other failure is final at once. With `waitMs` > 0
 * it gives up (the last `nats_unreachable`) when an attempt made after that long fails too.
 */
export async function untilNatsReachable<T>(attempt: () => Promise<T>, opts: { waitMs: number; onRetry: (retry: NatsRetry) => void }): Promise<T> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof CodedError) || err.code !== "nats_unreachable") throw err;
      const elapsed = Date.now() - started;
      const remaining = opts.waitMs > 0 ? opts.waitMs - elapsed : Infinity;
      if (remaining <= 0) throw new CodedError("nats_unreachable", `${err.message} (gave up after ${n} attempt${n === 1 ? "" : "s"} in ${(elapsed / 1000).toFixed(1)} s)`, { cause: err });
      // The last wait is cut short so that the final attempt happens at the deadline.
      const delayMs = Math.min(NATS_RETRY_MAX_MS, NATS_RETRY_FIRST_MS * 2 ** (n - 1), remaining);
      opts.onRetry({ attempt: n, delayMs, error: err });
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

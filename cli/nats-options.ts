/** Options of every command that talks to NATS or the tenant store. */
import type { Command } from "commander";
import { ControlPlane, defaultMasterKeyFile, requireStoreKind, type StoreKind } from "../accounts/control-plane.ts";
import { DEFAULT_NATS_URL, splitServers } from "../accounts/nats-control.ts";

export interface NatsOptions {
  nats?: string;
  store?: string;
  masterKeyFile?: string;
  bucket?: string;
}

export function withNatsOptions(cmd: Command): Command {
  return cmd
    .option("--nats <urls>", `NATS server URL(s), comma-separated (env TENANT_GATEWAY_NATS, default ${DEFAULT_NATS_URL})`)
    .option("--store <kind>", "tenant store: dir (files in the data dir) or kv (NATS KV bucket, for several gateways); env TENANT_GATEWAY_STORE")
    .option("--master-key-file <file>", "master key for the kv store (default <data-dir>/master.key; env TENANT_GATEWAY_MASTER_KEY wins)")
    .option("--bucket <name>", "KV bucket of the kv store");
}

export function natsServers(opts: NatsOptions): string[] {
  return splitServers(opts.nats ?? process.env.TENANT_GATEWAY_NATS ?? DEFAULT_NATS_URL);
}

export function storeKind(opts: NatsOptions): StoreKind {
  return requireStoreKind(opts.store);
}

export async function openControlPlane(opts: NatsOptions & { dataDir: string }): Promise<ControlPlane> {
  return ControlPlane.open({
    dataDir: opts.dataDir,
    servers: natsServers(opts),
    store: storeKind(opts),
    masterKeyFile: opts.masterKeyFile ?? defaultMasterKeyFile(opts.dataDir),
    ...(opts.bucket ? { bucket: opts.bucket } : {}),
  });
}

/** Runs `fn` with an open control plane and always closes it. */
export async function withControlPlane<T>(opts: NatsOptions & { dataDir: string }, fn: (cp: ControlPlane) => Promise<T>): Promise<T> {
  const cp = await openControlPlane(opts);
  try {
    return await fn(cp);
  } finally {
    await cp.close();
  }
}

/** Options of every command that talks to NATS or the tenant store. */
import type { Command } from "commander";
import { CodedError } from "../common/coded-error.ts";
import { ControlPlane, defaultMasterKeyFile, requireStoreKind, type StoreKind } from "../accounts/control-plane.ts";
import { splitServers } from "../accounts/nats-control.ts";
import { DEFAULT_NATS_URL, NatsFiles, readNatsUrl } from "../accounts/operator.ts";
import { DataLayout } from "../pki/layout.ts";

export interface NatsOptions {
  nats?: string;
  store?: string;
  masterKeyFile?: string;
  bucket?: string;
}

export function withNatsOptions(cmd: Command): Command {
  return cmd
    .option("--nats <urls>", `NATS server URL(s), comma-separated (env TENANT_GATEWAY_NATS; default: the URL recorded in <data-dir>/nats/url by init or dev, else ${DEFAULT_NATS_URL})`)
    .option("--store <kind>", "tenant store: dir (files in the data dir) or kv (NATS KV bucket, for several gateways); env TENANT_GATEWAY_STORE")
    .option("--master-key-file <file>", "master key for the kv store (default <data-dir>/master.key; env TENANT_GATEWAY_MASTER_KEY wins)")
    .option("--bucket <name>", "KV bucket of the kv store");
}

/** Where NATS is: --nats, else TENANT_GATEWAY_NATS, else the data dir's record, else the built-in default. */
export async function natsServers(opts: NatsOptions & { dataDir: string }): Promise<{ servers: string[]; from: string }> {
  if (opts.nats !== undefined) return { servers: splitServers(opts.nats), from: "--nats" };
  const env = process.env.TENANT_GATEWAY_NATS;
  if (env) return { servers: splitServers(env), from: "TENANT_GATEWAY_NATS" };
  const layout = new DataLayout(opts.dataDir);
  const recorded = await readNatsUrl(layout);
  if (recorded) return { servers: recorded, from: new NatsFiles(layout).url };
  return { servers: [DEFAULT_NATS_URL], from: "the built-in default" };
}

export function storeKind(opts: NatsOptions): StoreKind {
  return requireStoreKind(opts.store);
}

/** Runs `fn` with an open control plane and always closes it. */
export async function withControlPlane<T>(opts: NatsOptions & { dataDir: string }, fn: (cp: ControlPlane) => Promise<T>): Promise<T> {
  const { servers, from } = await natsServers(opts);
  let cp: ControlPlane | undefined;
  try {
    cp = await ControlPlane.open({
      dataDir: opts.dataDir,
      servers,
      store: storeKind(opts),
      masterKeyFile: opts.masterKeyFile ?? defaultMasterKeyFile(opts.dataDir),
      ...(opts.bucket ? { bucket: opts.bucket } : {}),
    });
    return await fn(cp);
  } catch (err) {
    // Say where the URL came from: a stale record (a `dev` that has stopped) is fixed by --nats.
    if (err instanceof CodedError && err.code === "nats_unreachable" && opts.nats === undefined) {
      throw new CodedError(err.code, `${err.message} (URL from ${from}; give --nats or TENANT_GATEWAY_NATS to use another)`, { cause: err });
    }
    throw err;
  } finally {
    await cp?.close();
  }
}

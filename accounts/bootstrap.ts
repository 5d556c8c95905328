/**
 * `tenant-gateway init`: everything a fresh data dir needs before nats-server can start — the
 * platform PKI, the operator with its system and PLATFORM accounts, the system user's creds, the
 * editable plans file, the nats-server configuration with the URL it is reached at (`nats/url`,
 * every command's default `--nats`), and (for the KV store) a master key.
 * Idempotent: a second run reports `exists` for each part and changes nothing.
 */
import { promises as fs } from "node:fs";
import { fileExists, writeFileAtomic } from "../common/files.ts";
import { initPki, type PkiInitResult } from "../pki/authority.ts";
import type { DataLayout } from "../pki/layout.ts";
import { defaultMasterKeyFile, type StoreKind } from "./control-plane.ts";
import { DEFAULT_NATS_PORT, ensureOperator, NatsFiles, readNatsUrl, writeNatsUrl, writeServerConfig } from "./operator.ts";
import { BUILTIN_PLANS_FILE, plansFilePath } from "./plans.ts";
import { MasterKey, writeMasterKeyFile } from "./secret-box.ts";

export interface InitOptions {
  hostnames?: string[];
  natsHost?: string;
  /** nats-server's port (127.0.0.1 only); -1: a random one (`dev` records the actual port itself). */
  natsPort?: number;
  /** Where NATS is, when not the local server this config describes (e.g. `nats://nats:14222` in compose). */
  natsUrl?: string[];
  store?: StoreKind;
  forceConfig?: boolean;
  /** Server-wide payload ceiling in bytes (the largest plan payload must fit). */
  maxPayload?: number;
}

export interface InitResult {
  status: "created" | "exists";
  data_dir: string;
  pki: PkiInitResult["status"];
  operator: { status: "created" | "exists"; public_key: string; system_account: string; platform_account: string };
  plans: { status: "created" | "exists"; file: string };
  nats_config: { status: "created" | "exists"; file: string };
  /** Absent while unknown (a random port: `dev` records it when its server runs). */
  nats_url?: { status: "created" | "exists"; file: string; urls: string[] };
  master_key?: { status: "created" | "exists"; file: string };
  files: Record<string, string>;
}

export const DEFAULT_SERVER_MAX_PAYLOAD = 8 * 1024 * 1024;

export async function initDataDir(layout: DataLayout, opts: InitOptions = {}): Promise<InitResult> {
  const pki = await initPki(layout, { hostnames: opts.hostnames ?? [] });
  const { status: opStatus, material } = await ensureOperator(layout);
  const files = new NatsFiles(layout);
  await fs.mkdir(files.resolverDir, { recursive: true });
  await fs.mkdir(files.jetstreamDir, { recursive: true });

  const plansFile = plansFilePath(layout.dir);
  let plansStatus: "created" | "exists" = "exists";
  if (!(await fileExists(plansFile))) {
    await writeFileAtomic(plansFile, await fs.readFile(BUILTIN_PLANS_FILE));
    plansStatus = "created";
  }

  const config = await writeServerConfig(
    layout,
    material,
    { host: opts.natsHost ?? "127.0.0.1", port: opts.natsPort ?? DEFAULT_NATS_PORT, maxPayload: opts.maxPayload ?? DEFAULT_SERVER_MAX_PAYLOAD, serverName: "tenant-gateway-nats" },
    opts.forceConfig ?? false,
  );
  const natsUrl = await recordNatsUrl(layout, opts.natsUrl ?? (await listenUrlOf(files.serverConfig)), config.status === "created" || opts.natsUrl !== undefined);

  let masterKey: InitResult["master_key"];
  if (opts.store === "kv") {
    const file = defaultMasterKeyFile(layout.dir);
    if (await fileExists(file)) masterKey = { status: "exists", file };
    else {
      await writeMasterKeyFile(file, MasterKey.generate());
      masterKey = { status: "created", file };
    }
  }

  const parts = [pki.status, opStatus, plansStatus, config.status, natsUrl?.status ?? "exists", masterKey?.status ?? "exists"];
  return {
    status: parts.includes("created") ? "created" : "exists",
    data_dir: layout.dir,
    pki: pki.status,
    operator: { status: opStatus, public_key: material.operator.getPublicKey(), system_account: material.system.getPublicKey(), platform_account: material.platform.getPublicKey() },
    plans: { status: plansStatus, file: plansFile },
    nats_config: config,
    ...(natsUrl ? { nats_url: natsUrl } : {}),
    ...(masterKey ? { master_key: masterKey } : {}),
    files: { ...pki.files, operator_jwt: files.operatorJwt, system_user_creds: files.systemUserCreds, nats_server_conf: files.serverConfig, ...(natsUrl ? { nats_url: natsUrl.file } : {}), resolver_dir: files.resolverDir, jetstream_dir: files.jetstreamDir },
  };
}

/** The URL a client reaches the nats-server of this config at (loopback for a wildcard host); undefined for a random port. */
async function listenUrlOf(configFile: string): Promise<string[] | undefined> {
  const m = /^listen:\s*"([^"]*):(-?\d+)"\s*$/m.exec(await fs.readFile(configFile, "utf8"));
  if (!m || Number(m[2]) <= 0) return undefined;
  const host = m[1] === "0.0.0.0" || m[1] === "" ? "127.0.0.1" : m[1]!;
  return [`nats://${host.includes(":") ? `[${host}]` : host}:${m[2]}`];
}

/** Writes `nats/url` when it is missing, or when `replace` (a new config, an explicit --nats-url) and it differs. */
async function recordNatsUrl(layout: DataLayout, urls: string[] | undefined, replace: boolean): Promise<InitResult["nats_url"]> {
  const file = new NatsFiles(layout).url;
  const recorded = await readNatsUrl(layout);
  if (recorded && (!replace || !urls || recorded.join(",") === urls.join(","))) return { status: "exists", file, urls: recorded };
  if (!urls) return undefined;
  await writeNatsUrl(layout, urls, "tenant-gateway init");
  return { status: "created", file, urls };
}

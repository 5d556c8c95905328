/**
 * `tenant-gateway init`: everything a fresh data dir needs before nats-server can start — the
 * platform PKI, the operator with its system and PLATFORM accounts, the system user's creds, the
 * editable plans file, the nats-server configuration, and (for the KV store) a master key.
 * Idempotent: a second run reports `exists` for each part and changes nothing.
 */
import { promises as fs } from "node:fs";
import { fileExists, writeFileAtomic } from "../common/files.ts";
import { initPki, type PkiInitResult } from "../pki/authority.ts";
import type { DataLayout } from "../pki/layout.ts";
import { defaultMasterKeyFile, type StoreKind } from "./control-plane.ts";
import { ensureOperator, NatsFiles, writeServerConfig } from "./operator.ts";
import { BUILTIN_PLANS_FILE, plansFilePath } from "./plans.ts";
import { MasterKey, writeMasterKeyFile } from "./secret-box.ts";

export interface InitOptions {
  hostnames?: string[];
  natsHost?: string;
  natsPort?: number;
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
    { host: opts.natsHost ?? "127.0.0.1", port: opts.natsPort ?? 4222, maxPayload: opts.maxPayload ?? DEFAULT_SERVER_MAX_PAYLOAD, serverName: "tenant-gateway-nats" },
    opts.forceConfig ?? false,
  );

  let masterKey: InitResult["master_key"];
  if (opts.store === "kv") {
    const file = defaultMasterKeyFile(layout.dir);
    if (await fileExists(file)) masterKey = { status: "exists", file };
    else {
      await writeMasterKeyFile(file, MasterKey.generate());
      masterKey = { status: "created", file };
    }
  }

  const parts = [pki.status, opStatus, plansStatus, config.status, masterKey?.status ?? "exists"];
  return {
    status: parts.includes("created") ? "created" : "exists",
    data_dir: layout.dir,
    pki: pki.status,
    operator: { status: opStatus, public_key: material.operator.getPublicKey(), system_account: material.system.getPublicKey(), platform_account: material.platform.getPublicKey() },
    plans: { status: plansStatus, file: plansFile },
    nats_config: config,
    ...(masterKey ? { master_key: masterKey } : {}),
    files: { ...pki.files, operator_jwt: files.operatorJwt, system_user_creds: files.systemUserCreds, nats_server_conf: files.serverConfig, resolver_dir: files.resolverDir, jetstream_dir: files.jetstreamDir },
  };
}

/**
 * The split of a data dir. The serving gateway (the data plane) needs the CA certificates, its
 * own server key and certificate, the account signing keys it mints user JWTs with (each
 * tenant's, and PLATFORM's, which also reaches NATS for the audit stream and the KV registry) and
 * where NATS is. Everything that creates identities stays on the control plane: the root and CA
 * private keys, the operator seed, the accounts' identity seeds, the system user, the edge and
 * platform identities' private keys. `tenant-gateway export dataplane <dir>` writes the first
 * part into a directory of its own; `serve --data-dir <dir>` runs from it.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import { CodedError } from "../common/coded-error.ts";
import { fileExists, writeFileAtomic, PUBLIC_MODE, SECRET_MODE } from "../common/files.ts";
import type { DataLayout } from "../pki/layout.ts";
import { defaultMasterKeyFile, type StoreKind } from "./control-plane.ts";
import { DirectoryTenantStore } from "./directory-store.ts";
import { NatsFiles } from "./operator.ts";
import { PLATFORM_TRUST_KEY } from "./platform-trust.ts";

interface PlatformFile {
  /** Path relative to the data dir: the same in source and target. */
  file: string;
  secret: boolean;
  /** Missing in the source is fine (the NATS URL of a dir whose server port is still unknown). */
  optional?: boolean;
}

/** The platform part of the data plane, as paths relative to the data dir. */
function platformFiles(layout: DataLayout): PlatformFile[] {
  const nats = new NatsFiles(layout);
  const rel = (file: string): string => path.relative(layout.dir, file);
  return [
    { file: rel(layout.rootCert), secret: false },
    { file: rel(layout.platformCaCert), secret: false },
    { file: rel(layout.gatewayCert), secret: false },
    { file: rel(layout.gatewayChain), secret: false },
    { file: rel(layout.gatewayKey), secret: true },
    { file: rel(nats.platformAccountJwt), secret: false },
    { file: rel(nats.platformSigningSeed), secret: true },
    { file: rel(nats.url), secret: false, optional: true },
    // Directory store: the platform CA's rotation and the platform certificates revoked (registry entry).
    { file: rel(layout.registryEntry("platform", PLATFORM_TRUST_KEY)), secret: false, optional: true },
  ];
}

/** Control-plane secrets whose presence marks a full data dir (never an export target). */
function controlPlaneMarkers(layout: DataLayout): string[] {
  return [new NatsFiles(layout).operatorSeed, layout.rootKey, layout.platformCaKey];
}

export interface DataPlaneExport {
  data_dir: string;
  from: string;
  store: StoreKind;
  /** Platform files, relative to the data dir: written, or unchanged since the last export. */
  files: Array<{ file: string; result: "written" | "unchanged" }>;
  /** Directory store only: each tenant's record, CA certificate, account JWT and signing seed. */
  tenants: Array<{ slug: string; result: "written" | "unchanged" | "removed" | "skipped"; reason?: string }>;
  warnings: string[];
}

/**
 * Writes (or brings up to date) the data-plane part of `source` in `target`: re-run it after
 * tenant changes and a gateway serving from `target` picks them up as from any data dir. Tenants
 * gone from the source are removed from the target. Refuses a target that holds control-plane
 * secrets (it would be a full data dir, or the source itself).
 */
export async function exportDataPlane(source: DataLayout, target: DataLayout, opts: { store: StoreKind; masterKeyFile?: string }): Promise<DataPlaneExport> {
  if (path.resolve(source.dir) === path.resolve(target.dir)) throw new CodedError("invalid_argument", `the data-plane export must go to another directory than the data dir ${source.dir}`);
  for (const marker of controlPlaneMarkers(target)) {
    if (await fileExists(marker)) {
      throw new CodedError("target_holds_secrets", `refusing to export into ${target.dir}: it holds control-plane secrets (${path.relative(target.dir, marker)}); export into an empty directory or a previous export`);
    }
  }
  const result: DataPlaneExport = { data_dir: target.dir, from: source.dir, store: opts.store, files: [], tenants: [], warnings: [] };
  const copy = async (from: string, to: string, rel: string, secret: boolean): Promise<void> => {
    const data = await fs.readFile(from).catch((err: NodeJS.ErrnoException) => {
      throw new CodedError(err.code === "ENOENT" ? "file_not_found" : "file_unreadable", `cannot read ${from} (${err.code ?? err.message}); is ${source.dir} an initialised data dir?`);
    });
    const current = await fs.readFile(to).catch(() => undefined);
    if (current?.equals(data)) {
      await fs.chmod(to, secret ? SECRET_MODE : PUBLIC_MODE);
      result.files.push({ file: rel, result: "unchanged" });
      return;
    }
    await writeFileAtomic(to, data, secret ? SECRET_MODE : PUBLIC_MODE);
    result.files.push({ file: rel, result: "written" });
  };
  for (const f of platformFiles(source)) {
    const from = path.join(source.dir, f.file);
    if (f.optional && !(await fileExists(from))) continue;
    await copy(from, path.join(target.dir, f.file), f.file, f.secret);
  }

  if (opts.store === "kv") {
    // The tenants are in the KV bucket, which the gateway reads with the master key.
    const masterKey = opts.masterKeyFile ?? defaultMasterKeyFile(source.dir);
    await copy(masterKey, defaultMasterKeyFile(target.dir), path.basename(defaultMasterKeyFile(target.dir)), true);
    result.warnings.push("kv store: the master key opens each tenant's sealed secrets in the bucket, tenant CA keys included; with the kv store the tenant CA keys are not split off the serving gateway");
    return result;
  }

  const from = new DirectoryTenantStore(source);
  const to = new DirectoryTenantStore(target);
  const records = await from.list();
  for (const record of records) {
    const signing = await from.getSigningSecrets(record.slug);
    if (!signing) {
      result.tenants.push({ slug: record.slug, result: "skipped", reason: "no signing seed in the source (its gateway refuses it too)" });
      continue;
    }
    const [current, currentSigning] = await Promise.all([to.get(record.slug).catch(() => undefined), to.getSigningSecrets(record.slug).catch(() => undefined)]);
    if (current && JSON.stringify(current) === JSON.stringify(record) && currentSigning?.signing_seed === signing.signing_seed) {
      result.tenants.push({ slug: record.slug, result: "unchanged" });
      continue;
    }
    // The signing seed is written before the record: a gateway polling the target never sees a tenant without it.
    await to.put(record, signing);
    result.tenants.push({ slug: record.slug, result: "written" });
  }
  const kept = new Set(records.map((r) => r.slug));
  for (const stale of await to.list()) {
    if (kept.has(stale.slug)) continue;
    await to.delete(stale.slug);
    result.tenants.push({ slug: stale.slug, result: "removed" });
  }
  return result;
}

/**
 * The default tenant store: plain files in the PKI layout (`tenants/<slug>/…`), which is also
 * the layout of a Kubernetes secret mount. Private keys and seeds are PEM / nkey files readable by
 * the owner only (0600), as OpenSSL tooling expects. A new tenant's `tenant.json` is written last:
 * its presence makes the tenant visible. Changes by other processes are noticed by polling.
 *
 * Registry entries are JSON files `registry/<collection>/<key>.json` holding the value and a
 * revision; a conditional write holds a lock file beside the entry while it compares and writes.
 */
import { constants, promises as fs } from "node:fs";
import path from "node:path";
import { CodedError } from "../common/coded-error.ts";
import { fileExists, readTextFile, writeFileAtomic, writeSecretFile, PUBLIC_MODE, SECRET_MODE } from "../common/files.ts";
import { REGISTRY_KEY, type DataLayout, type RegistryCollection } from "../pki/layout.ts";
import {
  checkRecord,
  checkRegistryKey,
  checkSecrets,
  checkSigningSecrets,
  entryConflict,
  parseJson,
  type EntryWriteOptions,
  type RegistryEntry,
  type TenantChange,
  type TenantRecord,
  type TenantSecrets,
  type TenantSigningSecrets,
  type TenantStore,
} from "./tenant-store.ts";

/** A lock older than this was left by a process that died while writing: it is broken. */
const STALE_LOCK_MS = 30_000;
const LOCK_WAIT_MS = 10_000;


type StoredRecordFile = Omit<TenantRecord, "ca_cert_pem" | "account_jwt">;

export class DirectoryTenantStore implements TenantStore {
  readonly kind = "directory" as const;
  readonly location: string;
  private readonly layout: DataLayout;
  private readonly pollMs: number;

  constructor(layout: DataLayout, opts: { pollMs?: number } = {}) {
    this.layout = layout;
    this.location = layout.tenantsDir;
    this.pollMs = opts.pollMs ?? 1000;
  }

  private files(slug: string): ReturnType<DataLayout["tenantRecord"]> & { caCert: string; caKey: string } {
    const ca = this.layout.tenantCa(slug);
    return { ...this.layout.tenantRecord(slug), caCert: ca.cert, caKey: ca.key };
  }

  async list(): Promise<TenantRecord[]> {
    let entries: string[];
    try {
      entries = await fs.readdir(this.layout.tenantsDir);
    } catch {
      return [];
    }
    const records: TenantRecord[] = [];
    for (const slug of entries.sort()) {
      const record = await this.get(slug);
      if (record) records.push(record);
    }
    return records;
  }

  async get(slug: string): Promise<TenantRecord | undefined> {
    const f = this.files(slug);
    if (!(await fileExists(f.record))) return undefined;
    return this.unlessDeleted(slug, async () => {
      const stored = parseJson(await readTextFile(f.record, "tenant record"), f.record) as StoredRecordFile;
      const record = { ...stored, ca_cert_pem: await readTextFile(f.caCert, `tenant "${slug}" CA certificate`), account_jwt: (await readTextFile(f.accountJwt, `tenant "${slug}" account JWT`)).trim() };
      return checkRecord(record, f.record, slug);
    });
  }

  async getSecrets(slug: string): Promise<TenantSecrets | undefined> {
    const f = this.files(slug);
    if (!(await fileExists(f.caKey)) || !(await fileExists(f.accountSeed))) return undefined;
    return this.unlessDeleted(slug, async () =>
      checkSecrets(
        {
          ca_key_pem: await readTextFile(f.caKey, `tenant "${slug}" CA key`),
          account_seed: (await readTextFile(f.accountSeed, `tenant "${slug}" account seed`)).trim(),
          signing_seed: (await readTextFile(f.signingSeed, `tenant "${slug}" signing seed`)).trim(),
        },
        `of tenant "${slug}" in ${this.layout.tenantDir(slug)}`,
      ),
    );
  }

  /** Only the signing seed: a data-plane data dir (`tenant-gateway export dataplane`) has no CA key or account seed. */
  async getSigningSecrets(slug: string): Promise<TenantSigningSecrets | undefined> {
    const f = this.files(slug);
    if (!(await fileExists(f.signingSeed))) return undefined;
    return this.unlessDeleted(slug, async () => checkSigningSecrets({ signing_seed: (await readTextFile(f.signingSeed, `tenant "${slug}" signing seed`)).trim() }, `of tenant "${slug}" in ${this.layout.tenantDir(slug)}`));
  }

  /**
   * A tenant is several files; one deleted by another process while they are read means the
   * tenant is gone (undefined), not that the store is broken — unless its record is still there.
   */
  private async unlessDeleted<T>(slug: string, read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      if ((err as { code?: string }).code === "file_not_found" && !(await fileExists(this.files(slug).record))) return undefined;
      throw err;
    }
  }

  /** With only the signing seed, the tenant's data-plane part is written (what `export dataplane` does). */
  async put(record: TenantRecord, secrets?: TenantSecrets | TenantSigningSecrets): Promise<void> {
    checkRecord(record, `for "${record.slug}"`);
    const f = this.files(record.slug);
    if (secrets && "ca_key_pem" in secrets) {
      checkSecrets(secrets, `for "${record.slug}"`);
      await writeSecretFile(f.caKey, secrets.ca_key_pem);
      await writeSecretFile(f.accountSeed, secrets.account_seed + "\n");
    }
    if (secrets) await writeSecretFile(f.signingSeed, checkSigningSecrets({ signing_seed: secrets.signing_seed }, `for "${record.slug}"`).signing_seed + "\n");
    const { ca_cert_pem: _ca, account_jwt: _jwt, ...stored } = record;
    const writeRecord = (): Promise<void> => writeFileAtomic(f.record, JSON.stringify(stored, null, 2) + "\n");
    // An existing tenant's record goes first: during a CA rotation a reader then sees the old CA
    // listed as previous before ca.pem names the new one, never the new CA without the old.
    const existing = await fileExists(f.record);
    if (existing) await writeRecord();
    if ((await readTextFile(f.caCert, "CA certificate").catch(() => "")) !== record.ca_cert_pem) await writeFileAtomic(f.caCert, record.ca_cert_pem);
    await writeFileAtomic(f.accountJwt, record.account_jwt + "\n");
    if (!existing) await writeRecord();
  }

  async delete(slug: string): Promise<void> {
    // The record goes first, so that readers never see a tenant whose other files are half removed.
    await fs.rm(this.files(slug).record, { force: true });
    await fs.rm(this.layout.tenantDir(slug), { recursive: true, force: true });
  }

  /** Polls tenant.json, account.jwt and ca.pem modification times. */
  async watch(listener: (change: TenantChange) => void): Promise<() => void> {
    let known = await this.snapshot();
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async (): Promise<void> => {
      const now = await this.snapshot().catch(() => known);
      if (stopped) return;
      for (const [slug, stamp] of now) if (known.get(slug) !== stamp) listener({ slug, kind: "put" });
      for (const slug of known.keys()) if (!now.has(slug)) listener({ slug, kind: "delete" });
      known = now;
      timer = setTimeout(() => void tick(), this.pollMs);
      timer.unref();
    };
    timer = setTimeout(() => void tick(), this.pollMs);
    timer.unref();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  private async snapshot(): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    let entries: string[];
    try {
      entries = await fs.readdir(this.layout.tenantsDir);
    } catch {
      return result;
    }
    for (const slug of entries) {
      const f = this.files(slug);
      const stamps = await Promise.all([f.record, f.accountJwt, f.caCert].map((file) => fs.stat(file).then((s) => `${s.mtimeMs}:${s.size}`, () => "-")));
      if (stamps[0] !== "-") result.set(slug, stamps.join("|"));
    }
    return result;
  }

  async getEntry(collection: RegistryCollection, key: string): Promise<RegistryEntry | undefined> {
    const file = this.layout.registryEntry(collection, checkRegistryKey(key));
    let text: string;
    try {
      text = await fs.readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new CodedError("file_unreadable", `cannot read registry entry ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    const stored = parseJson(text, file) as { revision?: unknown; value?: unknown } | null;
    if (typeof stored !== "object" || stored === null || !Number.isSafeInteger(stored.revision) || !("value" in stored)) {
      throw new CodedError("corrupt_store", `registry entry ${file} is not {"revision", "value"}; restore it from a backup or delete it`);
    }
    return { key, value: stored.value, revision: stored.revision as number };
  }

  async listEntries(collection: RegistryCollection, prefix = ""): Promise<RegistryEntry[]> {
    let names: string[];
    try {
      names = await fs.readdir(path.join(this.layout.registryDir, collection));
    } catch {
      return [];
    }
    const keys = names.filter((n) => n.endsWith(".json") && REGISTRY_KEY.test(n.slice(0, -5))).map((n) => n.slice(0, -5));
    const entries: RegistryEntry[] = [];
    for (const key of keys.filter((k) => k.startsWith(prefix)).sort()) {
      const entry = await this.getEntry(collection, key);
      if (entry) entries.push(entry);
    }
    return entries;
  }

  async putEntry(collection: RegistryCollection, key: string, value: unknown, opts: EntryWriteOptions = {}): Promise<number> {
    const file = this.layout.registryEntry(collection, checkRegistryKey(key));
    return this.locked(file, async () => {
      const current = await this.getEntry(collection, key);
      if (opts.expectRevision !== undefined && (current?.revision ?? 0) !== opts.expectRevision) throw entryConflict(collection, key, this.layout.registryDir);
      const revision = (current?.revision ?? 0) + 1;
      await writeFileAtomic(file, JSON.stringify({ revision, value }, null, 2) + "\n", opts.secret ? SECRET_MODE : PUBLIC_MODE);
      return revision;
    });
  }

  async deleteEntry(collection: RegistryCollection, key: string): Promise<void> {
    const file = this.layout.registryEntry(collection, checkRegistryKey(key));
    await this.locked(file, () => fs.rm(file, { force: true }));
  }

  /** Polls the entry's modification time. */
  async watchEntry(collection: RegistryCollection, key: string, listener: () => void): Promise<() => void> {
    const file = this.layout.registryEntry(collection, checkRegistryKey(key));
    const stamp = (): Promise<string> => fs.stat(file).then((s) => `${s.mtimeMs}:${s.size}`, () => "-");
    let known = await stamp();
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async (): Promise<void> => {
      const now = await stamp();
      if (stopped) return;
      if (now !== known) {
        known = now;
        listener();
      }
      timer = setTimeout(() => void tick(), this.pollMs);
      timer.unref();
    };
    timer = setTimeout(() => void tick(), this.pollMs);
    timer.unref();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  /** Runs `fn` holding `<file>.lock` (exclusive create); a lock left by a dead process is broken after STALE_LOCK_MS. */
  private async locked<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const lock = `${file}.lock`;
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let wait = 5; ; wait = Math.min(wait * 2, 200)) {
      try {
        await (await fs.open(lock, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, SECRET_MODE)).close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
        const age = await fs.stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
        if (age > STALE_LOCK_MS) await fs.rm(lock, { force: true });
        else if (Date.now() > deadline) throw new CodedError("entry_locked", `registry entry ${file} is locked by another process (${lock}); if none is running, remove the lock file`);
        else await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    try {
      return await fn();
    } finally {
      await fs.rm(lock, { force: true });
    }
  }

  async close(): Promise<void> {}
}

/**
 * The default tenant store: plain files in the PKI layout (`tenants/<slug>/…`), which is also
 * the layout of a Kubernetes secret mount. Private keys and seeds are PEM / nkey files readable by
 * the owner only (0600), as OpenSSL tooling expects. `tenant.json` is written last: its presence
 * makes the tenant visible. Changes by other processes are noticed by polling.
 */
import { promises as fs } from "node:fs";
import { fileExists, readTextFile, writeFileAtomic, writeSecretFile } from "../common/files.ts";
import type { DataLayout } from "../pki/layout.ts";
import { checkRecord, checkSecrets, checkSigningSecrets, parseJson, type TenantChange, type TenantRecord, type TenantSecrets, type TenantSigningSecrets, type TenantStore } from "./tenant-store.ts";

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
    if ((await readTextFile(f.caCert, "CA certificate").catch(() => "")) !== record.ca_cert_pem) await writeFileAtomic(f.caCert, record.ca_cert_pem);
    await writeFileAtomic(f.accountJwt, record.account_jwt + "\n");
    const { ca_cert_pem: _ca, account_jwt: _jwt, ...stored } = record;
    await writeFileAtomic(f.record, JSON.stringify(stored, null, 2) + "\n");
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

  async close(): Promise<void> {}
}

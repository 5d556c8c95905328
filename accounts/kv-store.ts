/**
 * The tenant store for several gateway replicas: a NATS KV bucket in the PLATFORM account. Each
 * tenant is one key, `tenants.<slug>`, holding the public record and its secrets sealed with
 * AES-256-GCM under the master key. Every replica watches the bucket and sees changes at once.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { Kvm, KvWatchInclude, type KV } from "@nats-io/kv";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { MasterKey, SealedBox } from "./secret-box.ts";
import { checkRecord, checkSecrets, parseJson, type TenantChange, type TenantRecord, type TenantSecrets, type TenantStore } from "./tenant-store.ts";

export const DEFAULT_REGISTRY_BUCKET = "tenant_gateway_registry";
const KEY_PREFIX = "tenants.";

interface KvValue {
  record: TenantRecord;
  secrets?: SealedBox;
}

export class KvTenantStore implements TenantStore {
  readonly kind = "kv" as const;
  readonly location: string;
  private readonly kv: KV;
  private readonly masterKey: MasterKey;
  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;

  private constructor(nc: NatsConnection, kv: KV, masterKey: MasterKey, bucket: string, ownsConnection: boolean) {
    this.nc = nc;
    this.kv = kv;
    this.masterKey = masterKey;
    this.location = `kv:${bucket}`;
    this.ownsConnection = ownsConnection;
  }

  /** Opens (creating when missing) the bucket over a connection of a PLATFORM-account user. */
  static async open(nc: NatsConnection, masterKey: MasterKey, opts: { bucket?: string; replicas?: number; ownsConnection?: boolean } = {}): Promise<KvTenantStore> {
    const bucket = opts.bucket ?? DEFAULT_REGISTRY_BUCKET;
    let kv: KV;
    try {
      kv = await new Kvm(nc).create(bucket, { history: 5, replicas: opts.replicas ?? 1 });
    } catch (err) {
      throw new CodedError("kv_unavailable", `cannot open the KV registry bucket "${bucket}": ${errorMessage(err)}`, { cause: err });
    }
    return new KvTenantStore(nc, kv, masterKey, bucket, opts.ownsConnection ?? false);
  }

  private async read(slug: string): Promise<KvValue | undefined> {
    const entry = await this.kv.get(KEY_PREFIX + slug);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    const value = parseJson(entry.string(), `${this.location}/${KEY_PREFIX}${slug}`) as KvValue;
    checkRecord(value.record, `${this.location}/${KEY_PREFIX}${slug}`);
    return value;
  }

  async list(): Promise<TenantRecord[]> {
    const slugs: string[] = [];
    for await (const key of await this.kv.keys(`${KEY_PREFIX}*`)) slugs.push(key.slice(KEY_PREFIX.length));
    const records: TenantRecord[] = [];
    for (const slug of slugs.sort()) {
      const v = await this.read(slug);
      if (v) records.push(v.record);
    }
    return records;
  }

  async get(slug: string): Promise<TenantRecord | undefined> {
    return (await this.read(slug))?.record;
  }

  async getSecrets(slug: string): Promise<TenantSecrets | undefined> {
    const v = await this.read(slug);
    if (!v?.secrets) return undefined;
    const where = `secrets of tenant "${slug}" in ${this.location}`;
    return checkSecrets(parseJson(this.masterKey.open(v.secrets, where), where), where);
  }

  async put(record: TenantRecord, secrets?: TenantSecrets): Promise<void> {
    checkRecord(record, `for "${record.slug}"`);
    let sealed: SealedBox | undefined;
    if (secrets) sealed = this.masterKey.seal(JSON.stringify(checkSecrets(secrets, `for "${record.slug}"`)));
    else sealed = (await this.read(record.slug))?.secrets;
    const value: KvValue = sealed ? { record, secrets: sealed } : { record };
    await this.kv.put(KEY_PREFIX + record.slug, JSON.stringify(value));
  }

  async delete(slug: string): Promise<void> {
    await this.kv.purge(KEY_PREFIX + slug);
  }

  async watch(listener: (change: TenantChange) => void): Promise<() => void> {
    const iter = await this.kv.watch({ key: `${KEY_PREFIX}>`, include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const entry of iter) {
        const slug = entry.key.slice(KEY_PREFIX.length);
        listener({ slug, kind: entry.operation === "PUT" ? "put" : "delete" });
      }
    })();
    return () => iter.stop();
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.nc.close();
  }
}

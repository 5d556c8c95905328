/**
 * The tenant store for several gateway replicas: a NATS KV bucket in the PLATFORM account. Each
 * tenant is one key, `tenants.<slug>`, holding the public record and its secrets sealed with
 * AES-256-GCM under the master key. Every replica watches the bucket and sees changes at once.
 * Registry entries are keys `<collection>.<key>` (JSON values; a conditional write is a KV update
 * at the expected revision).
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Kvm, KvWatchInclude, type KV } from "@nats-io/kv";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { RegistryCollection } from "../pki/layout.ts";
import type { MasterKey, SealedBox } from "./secret-box.ts";
import {
  checkRecord,
  checkRegistryKey,
  checkSecrets,
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

export const DEFAULT_REGISTRY_BUCKET = "tenant_gateway_registry";
const KEY_PREFIX = "tenants.";
/** A watch that ended by itself is opened again after this. */
const WATCH_REOPEN_MS = 1000;
/** The longest jump in a watch's revisions that is checked message by message (see fillGap). */
const MAX_GAP_CHECK = 1000;
const KV_OPERATION_HEADER = "KV-Operation";

interface KvValue {
  record: TenantRecord;
  secrets?: SealedBox;
}

export class KvTenantStore implements TenantStore {
  readonly kind = "kv" as const;
  readonly location: string;
  private readonly kv: KV;
  private readonly jsm: JetStreamManager;
  private readonly bucket: string;
  private readonly masterKey: MasterKey;
  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;

  /** The bucket's stream, and the subject prefix of its keys. */
  private get stream(): string {
    return `KV_${this.bucket}`;
  }

  private get subjectPrefix(): string {
    return `$KV.${this.bucket}.`;
  }

  private constructor(nc: NatsConnection, kv: KV, jsm: JetStreamManager, masterKey: MasterKey, bucket: string, ownsConnection: boolean) {
    this.nc = nc;
    this.kv = kv;
    this.jsm = jsm;
    this.bucket = bucket;
    this.masterKey = masterKey;
    this.location = `kv:${bucket}`;
    this.ownsConnection = ownsConnection;
  }

  /** Opens (creating when missing) the bucket over a connection of a PLATFORM-account user. */
  static async open(nc: NatsConnection, masterKey: MasterKey, opts: { bucket?: string; replicas?: number; ownsConnection?: boolean } = {}): Promise<KvTenantStore> {
    const bucket = opts.bucket ?? DEFAULT_REGISTRY_BUCKET;
    let kv: KV;
    let jsm: JetStreamManager;
    try {
      kv = await new Kvm(nc).create(bucket, { history: 5, replicas: opts.replicas ?? 1 });
      jsm = await jetstreamManager(nc);
    } catch (err) {
      throw new CodedError("kv_unavailable", `cannot open the KV registry bucket "${bucket}": ${errorMessage(err)}`, { cause: err });
    }
    return new KvTenantStore(nc, kv, jsm, masterKey, bucket, opts.ownsConnection ?? false);
  }

  private async read(slug: string): Promise<KvValue | undefined> {
    const entry = await this.kv.get(KEY_PREFIX + slug);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    const where = `${this.location}/${KEY_PREFIX}${slug}`;
    const value = parseJson(entry.string(), where) as Partial<KvValue> | null;
    if (typeof value !== "object" || value === null) throw new CodedError("corrupt_store", `tenant record ${where} is not a JSON object; restore it from the bucket history or delete the tenant`);
    checkRecord(value.record, where, slug);
    return value as KvValue;
  }

  /**
   * Keys under `prefix` (which ends with "."), from the stream's subject index. Not kv.keys(): its
   * consumer stalls ~30 s when another replica purges a key meanwhile; the index answers in one
   * request. Deleted keys (markers) are skipped by the readers.
   */
  private async keysUnder(prefix: string, oneToken: boolean): Promise<string[]> {
    const subjectPrefix = `${this.subjectPrefix}${prefix}`;
    const info = await this.jsm.streams.info(this.stream, { subjects_filter: `${subjectPrefix}${oneToken ? "*" : ">"}` });
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(subjectPrefix.length));
  }

  async list(): Promise<TenantRecord[]> {
    const slugs = await this.keysUnder(KEY_PREFIX, true);
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
    return checkSecrets(parseJson(this.masterKey.open(v.secrets, where, KEY_PREFIX + slug), where), where);
  }

  /** The master key opens all of a tenant's secrets; the data path takes only the signing seed. */
  async getSigningSecrets(slug: string): Promise<TenantSigningSecrets | undefined> {
    const secrets = await this.getSecrets(slug);
    return secrets && { signing_seed: secrets.signing_seed };
  }

  async put(record: TenantRecord, secrets?: TenantSecrets): Promise<void> {
    checkRecord(record, `for "${record.slug}"`);
    let sealed: SealedBox | undefined;
    if (secrets) sealed = this.masterKey.seal(JSON.stringify(checkSecrets(secrets, `for "${record.slug}"`)), KEY_PREFIX + record.slug);
    else sealed = (await this.read(record.slug))?.secrets;
    const value: KvValue = sealed ? { record, secrets: sealed } : { record };
    await this.kv.put(KEY_PREFIX + record.slug, JSON.stringify(value));
  }

  async delete(slug: string): Promise<void> {
    await this.kv.purge(KEY_PREFIX + slug);
  }

  /**
   * Reports every change after the call: the watch delivers the bucket's messages in order from
   * the revision after the bucket's last one when the call began. (A last-value watch is not used:
   * nats-server 2.9 can skip a message stored while such a consumer is being created — seen as a
   * lost put under concurrent writes.)
   */
  async watch(listener: (change: TenantChange) => void): Promise<() => void> {
    return this.followWatch(`${KEY_PREFIX}>`, await this.lastRevision(), (entry) => listener({ slug: entry.key.slice(KEY_PREFIX.length), kind: entry.operation === "PUT" ? "put" : "delete" }));
  }

  private async lastRevision(): Promise<number> {
    return (await this.jsm.streams.info(this.stream)).state.last_seq;
  }

  /**
   * A watch that outlives its consumer: should the watch end by itself (its consumer lost for
   * good in a NATS fault), it is opened again from the revision after the last one it reported,
   * so a change made while it was down is not missed and none is reported twice. A bucket whose
   * revisions went backwards (recreated after its data was lost) is followed from its start.
   */
  private async followWatch(key: string, after: number, onEntry: (entry: { key: string; operation: string; revision: number }) => void): Promise<() => void> {
    let stopped = false;
    let next = after + 1;
    const open = (): ReturnType<KV["watch"]> => this.kv.watch({ key, include: KvWatchInclude.AllHistory, resumeFromRevision: next });
    let iter = await open();
    const follow = async (): Promise<void> => {
      for (;;) {
        try {
          for await (const entry of iter) {
            if (entry.revision > next) await this.fillGap(key, next, entry.revision, onEntry);
            next = entry.revision + 1;
            onEntry(entry);
          }
        } catch {
          // ended by an error: opened again below
        }
        if (stopped || this.nc.isClosed()) return;
        for (;;) {
          await new Promise((r) => setTimeout(r, WATCH_REOPEN_MS).unref());
          if (stopped || this.nc.isClosed()) return;
          try {
            if ((await this.lastRevision()) < next - 1) next = 1;
            iter = await open();
            break;
          } catch {
            // NATS still away: try again
          }
        }
      }
    };
    void follow();
    return () => {
      stopped = true;
      iter.stop();
    };
  }

  /**
   * nats-server 2.9 can leave out of a filtered consumer's delivery a message stored while other
   * keys are purged (seen as a lost put under concurrent writes). A jump in revisions is therefore
   * checked: each revision in between is read from the stream and reported if it is one of the
   * watched keys (most are other keys, or values purged since). A jump too long to check, or a
   * failed read, is left to the directory's periodic reconciliation.
   */
  private async fillGap(key: string, from: number, to: number, onEntry: (entry: { key: string; operation: string; revision: number }) => void): Promise<void> {
    if (to - from > MAX_GAP_CHECK) return;
    const matches = key.endsWith(">") ? (k: string) => k.startsWith(key.slice(0, -1)) : (k: string) => k === key;
    for (let seq = from; seq < to; seq++) {
      let msg;
      try {
        msg = await this.jsm.streams.getMessage(this.stream, { seq });
      } catch {
        return;
      }
      if (!msg || !msg.subject.startsWith(this.subjectPrefix)) continue;
      const entryKey = msg.subject.slice(this.subjectPrefix.length);
      if (matches(entryKey)) onEntry({ key: entryKey, operation: msg.header?.get(KV_OPERATION_HEADER) || "PUT", revision: seq });
    }
  }

  async getEntry(collection: RegistryCollection, key: string): Promise<RegistryEntry | undefined> {
    const entry = await this.kv.get(`${collection}.${checkRegistryKey(key)}`);
    if (!entry || entry.operation !== "PUT" || entry.length === 0) return undefined;
    return { key, value: parseJson(entry.string(), `${this.location}/${collection}.${key}`), revision: entry.revision };
  }

  async listEntries(collection: RegistryCollection, prefix = ""): Promise<RegistryEntry[]> {
    // The index is asked for whole tokens; a prefix ending inside a token is filtered here.
    const whole = prefix.lastIndexOf(".") + 1;
    const keys = (await this.keysUnder(`${collection}.${prefix.slice(0, whole)}`, false)).map((k) => prefix.slice(0, whole) + k).filter((k) => k.startsWith(prefix));
    const entries: RegistryEntry[] = [];
    for (const key of keys.sort()) {
      const entry = await this.getEntry(collection, key);
      if (entry) entries.push(entry);
    }
    return entries;
  }

  async putEntry(collection: RegistryCollection, key: string, value: unknown, opts: EntryWriteOptions = {}): Promise<number> {
    const k = `${collection}.${checkRegistryKey(key)}`;
    const data = JSON.stringify(value);
    try {
      if (opts.expectRevision === 0) return await this.kv.create(k, data);
      if (opts.expectRevision !== undefined) return await this.kv.update(k, data, opts.expectRevision);
      return await this.kv.put(k, data);
    } catch (err) {
      if (opts.expectRevision !== undefined && /wrong last sequence|key exists|10071/i.test(errorMessage(err))) throw entryConflict(collection, key, this.location);
      throw err;
    }
  }

  async deleteEntry(collection: RegistryCollection, key: string): Promise<void> {
    await this.kv.purge(`${collection}.${checkRegistryKey(key)}`);
  }

  /** As watch(): every change of the key after the call. */
  async watchEntry(collection: RegistryCollection, key: string, listener: () => void): Promise<() => void> {
    return this.followWatch(`${collection}.${checkRegistryKey(key)}`, await this.lastRevision(), () => listener());
  }

  async close(): Promise<void> {
    if (this.ownsConnection) await this.nc.close();
  }
}

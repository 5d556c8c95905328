/**
 * The subject namespaces of a tenant's NATS account, as its edge clients name them: the one
 * vocabulary the rewriters, the user-JWT permissions and the stream templates share, so a new
 * namespace is added here once.
 *
 * - Tenant subjects (`events.x`, `$SRV.PING`, `_INBOX.x`) live under the tenant prefix:
 *   `acme-corp.events.x`. Two layers keep them apart: the prefix, and the account underneath.
 * - Account-scoped namespaces pass into the tenant's own account unprefixed: the JetStream API
 *   (`$JS.API.`, translated by the gateway), acks and flow control (`$JS.ACK.`, `$JS.FC.`), and
 *   the subjects of key-value buckets and object stores (`$KV.<bucket>.`, `$O.<store>.`), which the
 *   stock KV and object-store clients compute themselves and nats-server resolves inside the
 *   account (direct get, consumer filters). The account alone isolates them.
 * - Every other `$` subject is refused.
 */

export const JETSTREAM_API = "$JS.API.";
export const JETSTREAM_ACK = "$JS.ACK.";
export const JETSTREAM_FLOW_CONTROL = "$JS.FC.";
export const KV_PREFIX = "$KV.";
export const OBJECT_PREFIX = "$O.";
/** The service framework's discovery subjects: ordinary tenant subjects, prefixed like any other. */
export const SERVICE_PREFIX = "$SRV.";

/** Streams behind key-value buckets and object stores, as the stock clients name them. */
export const KV_STREAM_PREFIX = "KV_";
export const OBJECT_STREAM_PREFIX = "OBJ_";

/** The JetStream subjects that pass unprefixed into the tenant's account. */
export function isJetStreamSubject(subject: string): boolean {
  return subject.startsWith(JETSTREAM_API) || subject.startsWith(JETSTREAM_ACK) || subject.startsWith(JETSTREAM_FLOW_CONTROL);
}

/** Subjects of key-value buckets and object stores (`$KV.<bucket>.…`, `$O.<store>.…`). */
export function isStoreSubject(subject: string): boolean {
  return subject.startsWith(KV_PREFIX) || subject.startsWith(OBJECT_PREFIX);
}

/** What an edge client names that goes under its prefix: anything but a `$` subject, except the service framework's. */
export function isPrefixedTenantSubject(subject: string): boolean {
  return !subject.startsWith("$") || subject.startsWith(SERVICE_PREFIX);
}

/** Everything that passes into the tenant's account unprefixed. */
export function isAccountScoped(subject: string): boolean {
  return isJetStreamSubject(subject) || isStoreSubject(subject);
}

export interface SubjectMapper {
  /** `acme-corp.` */
  readonly prefix: string;
  /** Edge view → NATS: `events.x` → `acme-corp.events.x`; account-scoped subjects pass unchanged. */
  toTenant(edgeSubject: string): string;
  /** NATS → edge view, or undefined when the subject is not this tenant's. */
  toEdge(tenantSubject: string): string | undefined;
}

/**
 * The tenant mapping behind one tiny interface (architecture brief, section 4): map an edge-view
 * subject into the tenant's namespace, and map back only what the tenant owns. The return path
 * checks ownership; it never blindly cuts a prefix.
 */
export function tenantSubjectMapper(slug: string): SubjectMapper {
  const prefix = `${slug}.`;
  return {
    prefix,
    toTenant: (s) => (isAccountScoped(s) ? s : prefix + s),
    toEdge: (s) => {
      if (s.startsWith(prefix) && s.length > prefix.length) {
        // `acme-corp.$KV.x` is nothing an edge client can name (its `$KV.x` is the account's own).
        const rest = s.slice(prefix.length);
        return isPrefixedTenantSubject(rest) ? rest : undefined;
      }
      if (isAccountScoped(s)) return s;
      return undefined;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Key-value buckets and object stores: who may write them

/** What a class of client may do with a bucket or store: read it (bind, get, watch, list) or also write it. */
export type StoreAccess = "read" | "read-write";

export interface StorePolicy {
  kind: "kv" | "object";
  /** Bucket or store name (`config`), not the stream name (`KV_config`). */
  name: string;
  edge: StoreAccess;
  /** Platform sessions (configuration distribution): key-value buckets only. */
  platform: StoreAccess;
}

/** The buckets and stores every tenant has (from the templates), by kind and name. */
export class TenantStores {
  private readonly kv = new Map<string, StorePolicy>();
  private readonly object = new Map<string, StorePolicy>();

  constructor(policies: Iterable<StorePolicy>) {
    for (const p of policies) (p.kind === "kv" ? this.kv : this.object).set(p.name, p);
  }

  static readonly NONE = new TenantStores([]);

  policies(): StorePolicy[] {
    return [...this.kv.values(), ...this.object.values()];
  }

  /** May an edge client publish into `$KV.<name>.…` / `$O.<name>.…`? */
  edgeWritable(kind: "kv" | "object", name: string): boolean {
    return (kind === "kv" ? this.kv : this.object).get(name)?.edge === "read-write";
  }

  platformWritable(name: string): boolean {
    return this.kv.get(name)?.platform === "read-write";
  }

  /** The bucket or store behind a stream name (`KV_config`), if a template defines it. */
  byStream(stream: string): StorePolicy | undefined {
    if (stream.startsWith(KV_STREAM_PREFIX)) return this.kv.get(stream.slice(KV_STREAM_PREFIX.length));
    if (stream.startsWith(OBJECT_STREAM_PREFIX)) return this.object.get(stream.slice(OBJECT_STREAM_PREFIX.length));
    return undefined;
  }
}

export function storeStreamName(kind: "kv" | "object", name: string): string {
  return (kind === "kv" ? KV_STREAM_PREFIX : OBJECT_STREAM_PREFIX) + name;
}

/** `$KV.config.` / `$O.blobs.`: the subjects of one bucket or store. */
export function storeSubjectPrefix(kind: "kv" | "object", name: string): string {
  return `${kind === "kv" ? KV_PREFIX : OBJECT_PREFIX}${name}.`;
}

// ---------------------------------------------------------------------------------------------
// User-JWT permissions of an edge client (belt and braces under the gateway; deny wins in NATS)

/**
 * The JetStream API an edge client may use, next to `<slug>.>`. Acks and flow-control replies are
 * included: the gateway passes them through.
 */
const EDGE_JETSTREAM_PUBLISH_ALLOW: readonly string[] = [
  "$JS.API.INFO",
  "$JS.API.STREAM.INFO.*",
  "$JS.API.STREAM.NAMES",
  "$JS.API.STREAM.LIST",
  "$JS.API.STREAM.MSG.GET.*",
  "$JS.API.DIRECT.GET.>",
  "$JS.API.CONSUMER.CREATE.>",
  "$JS.API.CONSUMER.DURABLE.CREATE.*.*",
  "$JS.API.CONSUMER.INFO.*.*",
  "$JS.API.CONSUMER.NAMES.*",
  "$JS.API.CONSUMER.LIST.*",
  "$JS.API.CONSUMER.DELETE.*.*",
  "$JS.API.CONSUMER.MSG.NEXT.*.*",
  JETSTREAM_ACK + ">",
  JETSTREAM_FLOW_CONTROL + ">",
];

/** The operator's and the system's part of the API, denied outright. */
const EDGE_JETSTREAM_PUBLISH_DENY: readonly string[] = [
  "$JS.API.STREAM.CREATE.>",
  "$JS.API.STREAM.UPDATE.>",
  "$JS.API.STREAM.DELETE.>",
  "$JS.API.STREAM.MSG.DELETE.>",
  "$JS.API.STREAM.SNAPSHOT.>",
  "$JS.API.STREAM.RESTORE.>",
  "$JS.API.STREAM.LEADER.STEPDOWN.>",
  "$JS.API.STREAM.PEER.REMOVE.>",
  "$JS.API.STREAM.TEMPLATE.>",
  "$JS.API.CONSUMER.LEADER.STEPDOWN.>",
  "$JS.API.META.>",
  "$JS.API.SERVER.>",
  "$JS.API.ACCOUNT.>",
];

/**
 * What an edge client's user may publish: its namespace, the JetStream API above, and for each
 * bucket or store it may write, its subjects and the purge of its stream (the stock clients purge
 * an object's old chunks, and a key's deleted revisions, that way; the gateway checks the filter).
 */
export function edgePublishPermissions(slug: string, stores: TenantStores): { allow: string[]; deny: string[] } {
  const writable = stores.policies().filter((p) => p.edge === "read-write");
  return {
    allow: [
      `${slug}.>`,
      ...EDGE_JETSTREAM_PUBLISH_ALLOW,
      ...writable.flatMap((p) => [`${storeSubjectPrefix(p.kind, p.name)}>`, `$JS.API.STREAM.PURGE.${storeStreamName(p.kind, p.name)}`]),
    ],
    deny: [...EDGE_JETSTREAM_PUBLISH_DENY],
  };
}

/** What an edge client's user may subscribe to: its namespace only (JetStream delivers into it). */
export function edgeSubscribePermissions(slug: string): { allow: string[] } {
  return { allow: [`${slug}.>`] };
}

/**
 * User JWTs the gateway mints for client identities: name = CN, tags for tenant, component and
 * partition, permissions limited to the tenant's namespace plus the JetStream API edge clients
 * may use, expiry no later than the certificate's. Minted once per identity and cached; every
 * signature is native ed25519.
 */
import type { Permissions } from "@nats-io/jwt";
import { edgePublishPermissions, edgeSubscribePermissions, TenantStores } from "../common/namespaces.ts";
import { PLATFORM_KV_PREFIX, PLATFORM_PUBLISH_PREFIX, PLATFORM_SESSION_PREFIX } from "./platform-account.ts";
import type { EdgeIdentity, PlatformIdentity } from "../pki/identity.ts";
import { encodeUserJwt } from "./jwts.ts";
import type { NativeKeyPair } from "./native-keys.ts";
import { certificateUserKey } from "./user-keys.ts";

export interface MintedUser {
  jwt: string;
  user: NativeKeyPair;
  /** Seconds since the epoch. */
  exp: number;
}

/** How long a client may answer a request that came from outside its namespace (nanoseconds). */
const RESPONSE_TTL_NS = 120 * 1_000_000_000;

export function edgeUserPermissions(slug: string, stores: TenantStores = TenantStores.NONE): Permissions {
  return {
    pub: edgePublishPermissions(slug, stores),
    sub: edgeSubscribePermissions(slug),
    // A platform request reaches the tenant with a reply subject NATS made up (`_R_.…`);
    // the response permission lets the client answer exactly that once.
    resp: { max: 1, ttl: RESPONSE_TTL_NS },
  };
}

/**
 * A platform identity in the PLATFORM account: what the account's imports reach — every tenant
 * (publishes through `_tg_to.<slug>.`, bucket writes through `_tg_kv.<slug>.`, `$JS.<slug>.API`
 * and `$JS.<slug>.ACK`), its sessions' private namespaces (`_tg_s.`) — and never the account's own
 * internals: its JetStream API and advisories (audit stream, KV registry), `$SYS`, `$KV`, `$O`, the
 * audit subjects, other users' inboxes. A subscription's deny list is checked on every delivery, so
 * a `>` subscription gets none of them either.
 */
export function platformUserPermissions(readableStreams: readonly string[] = []): Permissions {
  return {
    pub: {
      allow: [`${PLATFORM_PUBLISH_PREFIX}>`, `${PLATFORM_KV_PREFIX}>`, "$JS.*.API.>", "$JS.*.ACK.>", `${PLATFORM_SESSION_PREFIX}>`, ...platformStreamPublish(readableStreams)],
      deny: ["$JS.FC.>", "$JS.EVENT.>", "$SYS.>"],
    },
    sub: {
      allow: [">"],
      deny: ["$JS.>", "$SYS.>", "$KV.>", "$O.>", "$SRV.>", "_tg.>", `${PLATFORM_PUBLISH_PREFIX}>`, `${PLATFORM_KV_PREFIX}>`, "_INBOX.>", "_R_.>"],
    },
  };
}

/**
 * The PLATFORM account's own JetStream API, for the platform streams an identity may read: what a
 * stock client binding, consuming and acking them publishes. Stream names and lists (which would
 * name the audit stream and the registry) are filtered by the gateway; the rest is per stream.
 */
function platformStreamPublish(streams: readonly string[]): string[] {
  if (streams.length === 0) return [];
  return [
    "$JS.API.INFO",
    "$JS.API.STREAM.NAMES",
    "$JS.API.STREAM.LIST",
    ...streams.flatMap((s) => [
      `$JS.API.STREAM.INFO.${s}`,
      `$JS.API.STREAM.MSG.GET.${s}`,
      `$JS.API.DIRECT.GET.${s}`,
      `$JS.API.DIRECT.GET.${s}.>`,
      `$JS.API.CONSUMER.CREATE.${s}`,
      `$JS.API.CONSUMER.CREATE.${s}.>`,
      `$JS.API.CONSUMER.DURABLE.CREATE.${s}.*`,
      `$JS.API.CONSUMER.INFO.${s}.*`,
      `$JS.API.CONSUMER.NAMES.${s}`,
      `$JS.API.CONSUMER.LIST.${s}`,
      `$JS.API.CONSUMER.DELETE.${s}.*`,
      `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
      `$JS.ACK.${s}.>`,
    ]),
  ];
}

export async function mintPlatformUser(identity: PlatformIdentity, signer: AccountSigner, readableStreams: readonly string[] = []): Promise<MintedUser> {
  const user = certificateUserKey(signer.signingKey, identity.fingerprint);
  const exp = Math.floor(identity.notAfter.getTime() / 1000);
  const jwt = await encodeUserJwt(identity.cn, user, { signer: signer.signingKey, account: signer.account, permissions: platformUserPermissions(readableStreams), tags: [`platform:${identity.name}`], exp });
  return { jwt, user, exp };
}

export interface AccountSigner {
  /** Account public key. */
  account: string;
  signingKey: NativeKeyPair;
}

export async function mintEdgeUser(identity: EdgeIdentity, signer: AccountSigner, stores: TenantStores = TenantStores.NONE): Promise<MintedUser> {
  const user = certificateUserKey(signer.signingKey, identity.fingerprint);
  const exp = Math.floor(identity.notAfter.getTime() / 1000);
  const jwt = await encodeUserJwt(identity.cn, user, {
    signer: signer.signingKey,
    account: signer.account,
    permissions: edgeUserPermissions(identity.tenant, stores),
    tags: [`tenant:${identity.tenant}`, `component:${identity.component}`, `partition:${identity.partition}`],
    exp,
  });
  return { jwt, user, exp };
}

/**
 * Caches minted users per identity (certificate fingerprint) and signing key. A tenant change
 * (suspension, key rotation) calls `forgetTenant`; an entry is re-minted shortly before expiry.
 */
export class UserJwtCache {
  private readonly entries = new Map<string, { tenant: string; minted: Promise<MintedUser> }>();
  private readonly maxEntries: number;

  constructor(opts: { maxEntries?: number } = {}) {
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  async get(key: string, tenant: string, mint: () => Promise<MintedUser>): Promise<MintedUser> {
    const now = Math.floor(Date.now() / 1000);
    const hit = this.entries.get(key);
    if (hit) {
      const minted = await hit.minted.catch(() => undefined);
      if (minted && minted.exp > now + 60) return minted;
      this.entries.delete(key);
    }
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    const minted = mint();
    this.entries.set(key, { tenant, minted });
    minted.catch(() => this.entries.delete(key));
    return minted;
  }

  forgetTenant(tenant: string): void {
    for (const [key, entry] of this.entries) if (entry.tenant === tenant) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}

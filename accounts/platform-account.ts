/**
 * The NATS-native half of platform sessions: every tenant account exports its namespace and its
 * JetStream API to the PLATFORM account, and the PLATFORM account imports them all, so one
 * platform connection sees tenants in the prefixed view (`*.events.>` spans every tenant, also
 * tenants created later) and reaches a tenant's JetStream as `$JS.<slug>.API`.
 *
 * The PLATFORM account JWT grows with the tenant count (five imports per tenant, about 1.3 KB of
 * JWT per tenant); it is re-signed and pushed whenever a tenant is created or deleted.
 */
import type { Account, Export, Import } from "@nats-io/jwt";
import { encodeAccountJwt } from "./jwts.ts";
import type { NativeKeyPair } from "./native-keys.ts";
import { PLATFORM_ACCOUNT_NAME, platformAccountClaims } from "./operator.ts";
import { revokedForGood } from "./user-keys.ts";

/** What each tenant account offers the PLATFORM account (public exports: only the operator signs imports, and only PLATFORM gets any). */
export function tenantPlatformExports(slug: string): Export[] {
  return [
    { name: "platform-view", subject: `${slug}.>`, type: "stream" },
    { name: "platform-publish", subject: `${slug}.>`, type: "service", response_type: "Stream" },
    { name: "platform-jetstream", subject: "$JS.API.>", type: "service", response_type: "Stream" },
    { name: "platform-jetstream-ack", subject: "$JS.ACK.>", type: "service" },
    { name: "platform-kv", subject: "$KV.>", type: "service" },
  ];
}

export interface PlatformTenant {
  slug: string;
  account: string;
}

/** The API prefix a platform client uses for a tenant's JetStream. */
/**
 * Where the PLATFORM account publishes into a tenant: `_tg_to.<slug>.<subject>` is imported as the
 * tenant's `<slug>.<subject>`. Not `<slug>.>` itself: tenant messages arrive in the PLATFORM
 * account on `<slug>.>` (the stream import), and a service import on the same subjects would send
 * each of them straight back into the tenant. The gateway writes this prefix for platform
 * sessions; their clients publish `acme-corp.jobs.x` as usual.
 */
export const PLATFORM_PUBLISH_PREFIX = "_tg_to.";

/**
 * Where the PLATFORM account writes a tenant's key-value buckets: `_tg_kv.<slug>.<bucket>.<key>`
 * is imported as the tenant's `$KV.<bucket>.<key>`. Stock clients bound to a bucket through the
 * API prefix `$JS.<slug>.API` publish `$JS.<slug>.API.$KV.<bucket>.<key>`; the gateway rewrites it.
 */
export const PLATFORM_KV_PREFIX = "_tg_kv.";

/**
 * A platform session's private namespace inside the PLATFORM account: the client's own inboxes
 * (`_INBOX.x` → `_tg_s.<session>._INBOX.x`), so no other session receives its replies.
 */
export const PLATFORM_SESSION_PREFIX = "_tg_s.";

export function platformSessionPrefix(session: string): string {
  return `${PLATFORM_SESSION_PREFIX}${session}.`;
}

export function tenantJetStreamApiPrefix(slug: string): string {
  return `$JS.${slug}.API`;
}

export function tenantJetStreamAckPrefix(slug: string): string {
  return `$JS.${slug}.ACK`;
}

export function platformImports(tenants: readonly PlatformTenant[]): Import[] {
  return tenants.flatMap(({ slug, account }) => [
    { name: `${slug}-view`, subject: `${slug}.>`, account, type: "stream" as const },
    { name: `${slug}-publish`, subject: `${slug}.>`, local_subject: `${PLATFORM_PUBLISH_PREFIX}${slug}.>`, account, type: "service" as const },
    { name: `${slug}-jetstream`, subject: "$JS.API.>", local_subject: `${tenantJetStreamApiPrefix(slug)}.>`, account, type: "service" as const },
    { name: `${slug}-jetstream-ack`, subject: "$JS.ACK.>", local_subject: `${tenantJetStreamAckPrefix(slug)}.>`, account, type: "service" as const },
    { name: `${slug}-kv`, subject: "$KV.>", local_subject: `${PLATFORM_KV_PREFIX}${slug}.>`, account, type: "service" as const },
  ]);
}

/** `revokedUsers`: platform identities' users revoked for good (revoked platform certificates). */
export function encodePlatformAccountJwt(operator: NativeKeyPair, platform: NativeKeyPair, signingKey: string, tenants: readonly PlatformTenant[], revokedUsers: readonly string[] = []): Promise<string> {
  const claims: Partial<Account> = { ...platformAccountClaims(signingKey), imports: platformImports([...tenants].sort((a, b) => a.slug.localeCompare(b.slug))) };
  if (revokedUsers.length > 0) claims.revocations = revokedForGood(revokedUsers);
  return encodeAccountJwt(PLATFORM_ACCOUNT_NAME, platform, operator, claims);
}

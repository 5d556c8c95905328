/**
 * A tenant's NATS account JWT: named by slug, signed by our operator, its own signing key, core
 * limits always explicit, JetStream limits from the plan.
 *
 * A suspended tenant's account revokes every user, whenever issued (the revocation's time lies
 * beyond any JWT's issue time), so the server cuts live connections at once and admits no user
 * minted later, by anyone. Its connection limit is lifted instead of set to 0: with no valid user
 * there is nothing to count, and nats-server before 2.10.28 / 2.11.2 treats the account's internal
 * JetStream clients (two per stream, one per consumer) as connections over the limit on every
 * account update, closing them — the streams then stop taking messages until a server restart.
 *
 * Single users are revoked by key for good (a revoked certificate's user, a revoked `.creds`
 * user): NATS cuts their connections when the JWT is pushed and refuses every JWT of theirs, also
 * one minted later by a gateway replica that has not yet heard of the revocation.
 */
import type { Account } from "@nats-io/jwt";
import { decodeJwt, encodeAccountJwt } from "./jwts.ts";
import { tenantPlatformExports } from "./platform-account.ts";
import type { NativeKeyPair } from "./native-keys.ts";
import { accountLimits, type Plan } from "./plans.ts";
import type { RevokedCertificate, ServiceCredential } from "./tenant-store.ts";
import { REVOKE_FOREVER, revokedForGood } from "./user-keys.ts";

/** In JWT `revocations`, this key revokes every user whose JWT was issued at or before the time. */
export const REVOKE_ALL_USERS = "*";

export { REVOKE_FOREVER };

export interface TenantAccountSpec {
  slug: string;
  id: string;
  plan: string;
  account: string;
  signingKey: string;
  /** Seconds since the epoch; all users issued up to then are revoked. */
  revokeUsersIssuedBefore?: number;
  /** Every user revoked, whenever issued; no connection limit to enforce. */
  suspended?: boolean;
  /**
   * Storage the account must allow at least, per kind (bytes): while streams reserved under a
   * larger plan shrink, nats-server checks each change against what they reserve now.
   */
  storageFloor?: { disk: number; memory: number };
  /** JetStream off for the account (its streams stay on disk): the first half of a JetStream restart. */
  jetstreamOff?: boolean;
  /** User public keys revoked for good (every JWT of theirs, whenever issued). */
  revokedUsers?: readonly string[];
}

/** The larger of two storage limits, -1 (unlimited) winning. */
function atLeast(limit: number, floor: number): number {
  return limit < 0 ? limit : Math.max(limit, floor);
}

export function tenantAccountClaims(spec: TenantAccountSpec, plan: Plan): Partial<Account> {
  const limits = accountLimits(plan);
  if (spec.suspended) limits.conn = -1;
  if (spec.storageFloor) {
    limits.disk_storage = atLeast(limits.disk_storage ?? -1, spec.storageFloor.disk);
    limits.mem_storage = atLeast(limits.mem_storage ?? -1, spec.storageFloor.memory);
  }
  if (spec.jetstreamOff) Object.assign(limits, { disk_storage: 0, mem_storage: 0, streams: 0, consumer: 0 });
  const claims: Partial<Account> = {
    limits,
    signing_keys: [spec.signingKey],
    // Offered to the PLATFORM account only: no other account's JWT ever imports them.
    exports: tenantPlatformExports(spec.slug),
    tags: [`tenant:${spec.slug}`, `tenant-id:${spec.id}`, `plan:${spec.plan}`],
    description: `tenant ${spec.slug}`,
  };
  const revoke = spec.suspended ? REVOKE_FOREVER : spec.revokeUsersIssuedBefore;
  const revocations = revokedForGood(spec.revokedUsers ?? []);
  if (revoke !== undefined) revocations[REVOKE_ALL_USERS] = revoke;
  if (Object.keys(revocations).length > 0) claims.revocations = revocations;
  return claims;
}

export function encodeTenantAccountJwt(spec: TenantAccountSpec, plan: Plan, operator: NativeKeyPair): Promise<string> {
  return encodeAccountJwt(spec.slug, spec.account, operator, tenantAccountClaims(spec, plan));
}

/** Does this account JWT admit a user issued now? Not when it revokes every user up to a later time (a suspension). */
export function admitsNewUsers(accountJwt: string, nowSeconds = Math.floor(Date.now() / 1000)): boolean {
  const revoked = decodeJwt<Account>(accountJwt, "account JWT").nats.revocations?.[REVOKE_ALL_USERS];
  return revoked === undefined || revoked < nowSeconds;
}

/**
 * The users an account JWT revokes by key: revoked certificates' users and revoked service
 * credentials, left out once expired (NATS refuses an expired user JWT anyway), so the JWT does
 * not grow for ever.
 */
export function revokedUsersOf(record: { revoked_certificates?: readonly RevokedCertificate[]; credentials?: readonly ServiceCredential[] }, now = Date.now()): string[] {
  const live = (until: string | undefined): boolean => until === undefined || Date.parse(until) > now;
  return [
    ...(record.revoked_certificates ?? []).filter((r) => live(r.not_after)).map((r) => r.user_public_key),
    ...(record.credentials ?? []).filter((c) => c.revoked_at !== undefined && live(c.expires_at)).map((c) => c.user_public_key),
  ];
}

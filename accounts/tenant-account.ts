/**
 * A tenant's NATS account JWT: named by slug, signed by our operator, its own signing key, core
 * limits always explicit, JetStream limits from the plan. A suspended tenant's account admits no
 * connection (a revocation alone would let in users minted after it) and revokes every user
 * issued up to the suspension, so that the server cuts live connections at once and says why.
 */
import type { Account } from "@nats-io/jwt";
import { encodeAccountJwt } from "./jwts.ts";
import { tenantPlatformExports } from "./platform-account.ts";
import type { NativeKeyPair } from "./native-keys.ts";
import { accountLimits, type Plan } from "./plans.ts";

/** In JWT `revocations`, this key revokes every user whose JWT was issued at or before the time. */
export const REVOKE_ALL_USERS = "*";

export interface TenantAccountSpec {
  slug: string;
  id: string;
  plan: string;
  account: string;
  signingKey: string;
  /** Seconds since the epoch; all users issued up to then are revoked. */
  revokeUsersIssuedBefore?: number;
  /** No connections at all, whoever issued the user. */
  suspended?: boolean;
}

export function tenantAccountClaims(spec: TenantAccountSpec, plan: Plan): Partial<Account> {
  const limits = accountLimits(plan);
  if (spec.suspended) limits.conn = 0;
  const claims: Partial<Account> = {
    limits,
    signing_keys: [spec.signingKey],
    // Offered to the PLATFORM account only: no other account's JWT ever imports them.
    exports: tenantPlatformExports(spec.slug),
    tags: [`tenant:${spec.slug}`, `tenant-id:${spec.id}`, `plan:${spec.plan}`],
    description: `tenant ${spec.slug}`,
  };
  if (spec.revokeUsersIssuedBefore !== undefined) claims.revocations = { [REVOKE_ALL_USERS]: spec.revokeUsersIssuedBefore };
  return claims;
}

export function encodeTenantAccountJwt(spec: TenantAccountSpec, plan: Plan, operator: NativeKeyPair): Promise<string> {
  return encodeAccountJwt(spec.slug, spec.account, operator, tenantAccountClaims(spec, plan));
}

/**
 * A tenant's NATS account JWT: named by slug, signed by our operator, its own signing key, core
 * limits always explicit, JetStream limits from the plan; suspended tenants carry a revocation of
 * every user issued before the suspension (the server cuts their connections at once).
 */
import type { Account } from "@nats-io/jwt";
import { encodeAccountJwt } from "./jwts.ts";
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
}

export function tenantAccountClaims(spec: TenantAccountSpec, plan: Plan): Partial<Account> {
  const claims: Partial<Account> = {
    limits: accountLimits(plan),
    signing_keys: [spec.signingKey],
    tags: [`tenant:${spec.slug}`, `tenant-id:${spec.id}`, `plan:${spec.plan}`],
    description: `tenant ${spec.slug}`,
  };
  if (spec.revokeUsersIssuedBefore !== undefined) claims.revocations = { [REVOKE_ALL_USERS]: spec.revokeUsersIssuedBefore };
  return claims;
}

export function encodeTenantAccountJwt(spec: TenantAccountSpec, plan: Plan, operator: NativeKeyPair): Promise<string> {
  return encodeAccountJwt(spec.slug, spec.account, operator, tenantAccountClaims(spec, plan));
}

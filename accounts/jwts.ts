/**
 * Every JWT the gateway signs: the operator, the system and PLATFORM accounts, tenant accounts,
 * and users (edge identities, platform identities, control-plane users). One module so the claims
 * the NATS server relies on (explicit limits, issuer, expiry) are decided in one place.
 */
import { Algorithms, decode, encodeAccount, encodeGeneric, encodeOperator, encodeUser, fmtCreds, type Account, type ClaimsData, type Permissions, type User } from "@nats-io/jwt";
import { CodedError } from "../common/coded-error.ts";
import type { NativeKeyPair } from "./native-keys.ts";
import type { OperatorLimits } from "@nats-io/jwt";

const ALGORITHM = { algorithm: Algorithms.v2 } as const;

export const UNLIMITED_LIMITS: OperatorLimits = {
  subs: -1,
  conn: -1,
  leaf: -1,
  data: -1,
  payload: -1,
  imports: -1,
  exports: -1,
  wildcards: true,
  mem_storage: -1,
  disk_storage: -1,
  streams: -1,
  consumer: -1,
  max_ack_pending: -1,
  mem_max_stream_bytes: -1,
  disk_max_stream_bytes: -1,
  max_bytes_required: false,
};

/** Core limits on, JetStream off: the system account may not have JetStream. */
export const SYSTEM_ACCOUNT_LIMITS: OperatorLimits = { subs: -1, conn: -1, leaf: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true };

export function encodeOperatorJwt(name: string, operator: NativeKeyPair, systemAccount: string): Promise<string> {
  return encodeOperator(name, operator, { system_account: systemAccount }, ALGORITHM);
}

export function encodeAccountJwt(name: string, account: NativeKeyPair | string, operator: NativeKeyPair, claims: Partial<Account>): Promise<string> {
  return encodeAccount(name, account, claims, { ...ALGORITHM, signer: operator });
}

export interface UserJwtOptions {
  /** The account's signing key (a scoped signer is not used: permissions are in the JWT). */
  signer: NativeKeyPair;
  /** The account the user belongs to. */
  account: string;
  permissions?: Permissions;
  tags?: string[];
  /** Expiry, seconds since the epoch. */
  exp?: number;
  limits?: Partial<User>;
}

export function encodeUserJwt(name: string, user: NativeKeyPair | string, opts: UserJwtOptions): Promise<string> {
  const claims: Partial<User> = { ...(opts.permissions ?? {}), ...(opts.limits ?? {}), bearer_token: false };
  if (opts.tags) claims.tags = opts.tags;
  const encodingOpts = { ...ALGORITHM, signer: opts.signer, ...(opts.exp === undefined ? {} : { exp: opts.exp }) };
  // With a signer, encodeUser records the account as issuer_account; the account is passed as a
  // public key so nothing but the signing key's seed is needed.
  return encodeUser(name, user, opts.account, claims, encodingOpts);
}

/** The operator-signed request `$SYS.REQ.CLAIMS.DELETE` takes. */
export function encodeAccountDeletion(operator: NativeKeyPair, accounts: string[]): Promise<string> {
  return encodeGeneric("delete accounts", operator, "generic", { accounts }, { ...ALGORITHM, signer: operator });
}

export function credsFile(jwt: string, user: NativeKeyPair): string {
  return new TextDecoder().decode(fmtCreds(jwt, user));
}

export function decodeJwt<T>(jwt: string, what: string): ClaimsData<T> {
  try {
    return decode<T>(jwt);
  } catch (err) {
    throw new CodedError("invalid_jwt", `${what} is not a valid JWT`, { cause: err });
  }
}

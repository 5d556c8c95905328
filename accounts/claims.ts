/**
 * Account JWT pushes to a running nats-server (full resolver) through `$SYS.REQ.CLAIMS.UPDATE`
 * and deletions through `$SYS.REQ.CLAIMS.DELETE`. The server stores a JWT of a foreign operator
 * and still answers "jwt updated", so the issuer is checked here before anything is sent.
 *
 * A push is not free: nats-server re-applies the whole account on every JWT that differs from
 * the one it holds (a re-signed JWT always differs: new `iat` and `jti`), and before 2.10.28 /
 * 2.11.2 that closes the account's internal JetStream clients when the account has more clients
 * (connections, streams, consumers) than its connection limit. `pushAccountJwtIfChanged`
 * compares the claims with what the server holds (`$SYS.REQ.ACCOUNT.<key>.CLAIMS.LOOKUP`) and
 * pushes only when they differ.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Account } from "@nats-io/jwt";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { decodeJwt, encodeAccountDeletion } from "./jwts.ts";
import type { NativeKeyPair } from "./native-keys.ts";

export const CLAIMS_UPDATE_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE";
export const CLAIMS_DELETE_SUBJECT = "$SYS.REQ.CLAIMS.DELETE";
export const CLAIMS_LIST_SUBJECT = "$SYS.REQ.CLAIMS.LIST";

export function claimsLookupSubject(account: string): string {
  return `$SYS.REQ.ACCOUNT.${account}.CLAIMS.LOOKUP`;
}

interface ServerReply {
  data?: { account?: string; code?: number; message?: string };
  error?: { account?: string; code?: number; description?: string };
}

export interface PushOptions {
  attempts?: number;
  timeoutMs?: number;
  /** Backoff before retry n (1-based), ms. */
  backoffMs?: (attempt: number) => number;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Refuses a JWT that is not an account JWT issued by our operator. */
export function assertIssuedByOperator(jwt: string, operatorPublicKey: string): string {
  const claims = decodeJwt<Account>(jwt, "account JWT");
  const type = (claims.nats as { type?: string }).type;
  if (type !== "account" || !claims.sub.startsWith("A")) throw new CodedError("not_an_account_jwt", `refusing to push a ${type ?? "typeless"} JWT as an account (subject ${claims.sub})`);
  if (claims.iss !== operatorPublicKey) {
    throw new CodedError("foreign_issuer", `refusing to push account ${claims.sub}: issued by ${claims.iss}, not by our operator ${operatorPublicKey}`);
  }
  return claims.sub;
}

async function requestWithRetry(nc: NatsConnection, subject: string, body: string, what: string, opts: PushOptions): Promise<ServerReply> {
  const attempts = opts.attempts ?? 4;
  const backoff = opts.backoffMs ?? ((n: number) => 200 * 2 ** (n - 1));
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const msg = await nc.request(subject, body, { timeout: opts.timeoutMs ?? 3000 });
      return msg.json<ServerReply>();
    } catch (err) {
      lastError = err;
      if (attempt < attempts) await delay(backoff(attempt));
    }
  }
  throw new CodedError("claims_push_failed", `${what}: no answer from NATS after ${attempts} attempts (${errorMessage(lastError)})`, { cause: lastError });
}

/** Pushes an account JWT; resolves when a server stored it. */
export async function pushAccountJwt(nc: NatsConnection, jwt: string, operatorPublicKey: string, opts: PushOptions = {}): Promise<{ account: string; message: string }> {
  const account = assertIssuedByOperator(jwt, operatorPublicKey);
  const reply = await requestWithRetry(nc, CLAIMS_UPDATE_SUBJECT, jwt, `pushing account ${account}`, opts);
  if (reply.error) {
    throw new CodedError("claims_push_refused", `NATS refused account ${account}: ${reply.error.description ?? JSON.stringify(reply.error)}`);
  }
  return { account, message: reply.data?.message ?? "" };
}

/** Claims with the fields that change at every signing (issue time, JWT id) left out, keys sorted. */
function comparableClaims(jwt: string): string {
  const { iat: _iat, jti: _jti, ...rest } = decodeJwt<Account>(jwt, "account JWT") as unknown as Record<string, unknown>;
  const sorted = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(sorted);
    if (value && typeof value === "object") return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted((value as Record<string, unknown>)[k])]));
    return value;
  };
  return JSON.stringify(sorted(rest));
}

/** Do two account JWTs say the same thing (whenever they were signed)? */
export function sameAccountClaims(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return comparableClaims(a) === comparableClaims(b);
  } catch {
    return false;
  }
}

/** The accounts the server's full resolver holds. */
export async function resolverAccounts(nc: NatsConnection, opts: { timeoutMs?: number } = {}): Promise<Set<string>> {
  const reply = await nc.request(CLAIMS_LIST_SUBJECT, "", { timeout: opts.timeoutMs ?? 5000 });
  return new Set(reply.json<{ data?: string[] }>().data ?? []);
}

/**
 * The account JWT the server holds, or undefined when it holds none (the server does not answer
 * a lookup of an account it does not know: ask only for accounts `resolverAccounts` lists).
 */
export async function lookupAccountJwt(nc: NatsConnection, account: string, opts: { timeoutMs?: number } = {}): Promise<string | undefined> {
  try {
    const reply = await nc.request(claimsLookupSubject(account), "", { timeout: opts.timeoutMs ?? 2000 });
    const jwt = reply.string().trim();
    return jwt.length > 0 ? jwt : undefined;
  } catch {
    return undefined;
  }
}

/** The account JWT the server holds, asking only when the resolver lists the account (`known`: listed already). */
export async function heldAccountJwt(nc: NatsConnection, account: string, known?: ReadonlySet<string>): Promise<string | undefined> {
  const listed = known ?? (await resolverAccounts(nc).catch(() => undefined));
  return listed === undefined || listed.has(account) ? lookupAccountJwt(nc, account) : undefined;
}

export type PushResult = "pushed" | "unchanged";

/**
 * Pushes an account JWT unless the server already holds the same claims. `known`: the accounts
 * the resolver holds, when the caller has just listed them (`sync` lists once for every tenant).
 */
export async function pushAccountJwtIfChanged(
  nc: NatsConnection,
  jwt: string,
  operatorPublicKey: string,
  opts: PushOptions & { known?: ReadonlySet<string> } = {},
): Promise<{ account: string; result: PushResult }> {
  const account = assertIssuedByOperator(jwt, operatorPublicKey);
  const held = await heldAccountJwt(nc, account, opts.known);
  if (held !== undefined && sameAccountClaims(held, jwt)) return { account, result: "unchanged" };
  await pushAccountJwt(nc, jwt, operatorPublicKey, opts);
  return { account, result: "pushed" };
}

/** Removes accounts from the full resolver (needs `allow_delete: true`). */
export async function deleteAccounts(nc: NatsConnection, operator: NativeKeyPair, accounts: string[], opts: PushOptions = {}): Promise<string> {
  const request = await encodeAccountDeletion(operator, accounts);
  const reply = await requestWithRetry(nc, CLAIMS_DELETE_SUBJECT, request, `deleting accounts ${accounts.join(",")}`, opts);
  if (reply.error) throw new CodedError("claims_delete_refused", `NATS refused to delete ${accounts.join(",")}: ${reply.error.description ?? JSON.stringify(reply.error)}`);
  return reply.data?.message ?? "";
}

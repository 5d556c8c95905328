/**
 * Account JWT pushes to a running nats-server (full resolver) through `$SYS.REQ.CLAIMS.UPDATE`
 * and deletions through `$SYS.REQ.CLAIMS.DELETE`. The server stores a JWT of a foreign operator
 * and still answers "jwt updated", so the issuer is checked here before anything is sent.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Account } from "@nats-io/jwt";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { decodeJwt, encodeAccountDeletion } from "./jwts.ts";
import type { NativeKeyPair } from "./native-keys.ts";

export const CLAIMS_UPDATE_SUBJECT = "$SYS.REQ.CLAIMS.UPDATE";
export const CLAIMS_DELETE_SUBJECT = "$SYS.REQ.CLAIMS.DELETE";

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

/** Removes accounts from the full resolver (needs `allow_delete: true`). */
export async function deleteAccounts(nc: NatsConnection, operator: NativeKeyPair, accounts: string[], opts: PushOptions = {}): Promise<string> {
  const request = await encodeAccountDeletion(operator, accounts);
  const reply = await requestWithRetry(nc, CLAIMS_DELETE_SUBJECT, request, `deleting accounts ${accounts.join(",")}`, opts);
  if (reply.error) throw new CodedError("claims_delete_refused", `NATS refused to delete ${accounts.join(",")}: ${reply.error.description ?? JSON.stringify(reply.error)}`);
  return reply.data?.message ?? "";
}

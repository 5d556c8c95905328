/**
 * Control-plane connections to NATS (the gateway's own, not the data path): as the system user
 * to push account JWTs, and as short-lived control users of an account (a tenant's, or PLATFORM)
 * to provision streams and read the KV registry. All @nats-io/transport-node (v3), which
 * @nats-io/jetstream needs.
 */
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Authenticator } from "@nats-io/nats-core";
import { parseCreds } from "@nats-io/jwt";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { encodeUserJwt } from "./jwts.ts";
import { NativeKeyPair } from "./native-keys.ts";

/** Signs the server nonce with a native key pair. */
export function nativeJwtAuthenticator(jwt: string, user: NativeKeyPair): Authenticator {
  return (nonce?: string) => ({
    jwt,
    nkey: user.getPublicKey(),
    sig: nonce ? Buffer.from(user.sign(new TextEncoder().encode(nonce))).toString("base64url") : "",
  });
}

export function splitServers(urls: string | string[]): string[] {
  const list = (Array.isArray(urls) ? urls : [urls]).flatMap((u) => u.split(",")).map((u) => u.trim()).filter(Boolean);
  if (list.length === 0) throw new CodedError("invalid_argument", "no NATS server URL given");
  return list;
}

async function connectWith(servers: string[], name: string, authenticator: Authenticator, opts: { reconnect?: boolean; timeoutMs?: number } = {}): Promise<NatsConnection> {
  try {
    return await connect({
      servers,
      name,
      authenticator,
      timeout: opts.timeoutMs ?? 5000,
      reconnect: opts.reconnect ?? false,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
    });
  } catch (err) {
    const msg = errorMessage(err);
    if (/authorization|authentication|permissions/i.test(msg)) {
      throw new CodedError("nats_auth_failed", `NATS at ${servers.join(",")} refused ${name}: ${msg}`, { cause: err });
    }
    throw new CodedError("nats_unreachable", `cannot reach NATS at ${servers.join(",")}: ${msg}`, { cause: err });
  }
}

/** The system user (from `nats/system-user.creds`), for `$SYS.REQ.CLAIMS.*`. */
export async function connectAsSystem(servers: string[], creds: string, opts: { reconnect?: boolean } = {}): Promise<NatsConnection> {
  const parsed = await parseCreds(new TextEncoder().encode(creds));
  return connectWith(servers, "tenant-gateway-system", nativeJwtAuthenticator(parsed.jwt, NativeKeyPair.fromSeed(parsed.key)), opts);
}

export interface AccountUserSpec {
  /** Account public key. */
  account: string;
  signer: NativeKeyPair;
  name: string;
  /** Lifetime of the minted user JWT. */
  ttlSeconds?: number;
}

/** A control user of an account with full permissions inside it, minted for this connection. */
export async function connectAsAccountUser(servers: string[], spec: AccountUserSpec, opts: { reconnect?: boolean } = {}): Promise<NatsConnection> {
  const user = NativeKeyPair.create("user");
  const exp = spec.ttlSeconds === undefined ? undefined : Math.floor(Date.now() / 1000) + spec.ttlSeconds;
  const jwt = await encodeUserJwt(spec.name, user, { signer: spec.signer, account: spec.account, tags: ["tenant-gateway:control"], ...(exp === undefined ? {} : { exp }) });
  return connectWith(servers, spec.name, nativeJwtAuthenticator(jwt, user), opts);
}

/**
 * The three ways a client reaches the tenant's account, as plain data a load generator process
 * receives: where to connect, with which TLS material and credentials, and how subjects are
 * written on that path (a direct user names `acme-corp.events.x`; a gateway client names
 * `events.x` and the gateway writes the prefix).
 */

export const PATH_NAMES = ["direct", "gateway", "pipe"] as const;
export type PathName = (typeof PATH_NAMES)[number];

export interface PathEndpoint {
  name: PathName;
  host: string;
  port: number;
  /** PEM. `cert`/`key`: the tenant's edge certificate (gateway, pipe); `handshakeFirst`: TLS before INFO. */
  tls: { ca: string; cert?: string; key?: string; handshakeFirst?: boolean };
  /** A user JWT of the tenant's account and its seed (direct and pipe: nats-server checks them). */
  auth?: { jwt: string; seed: string };
  /** Written in front of every subject the client names: the tenant prefix when NATS sees the client as is. */
  subjectPrefix: string;
}

/** The inbox prefix a client on this path must use: its user may only subscribe inside the tenant's namespace. */
export function inboxPrefix(path: PathEndpoint): string {
  return `${path.subjectPrefix}_INBOX`;
}

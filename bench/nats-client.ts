/**
 * The stock client a load generator drives, behind the few calls the scenarios make: `nats` (v2)
 * or `@nats-io/transport-node` (v3) with `@nats-io/jetstream`. One library is used for all three
 * paths of a run, so the client's own cost is the same on each.
 */
import tls from "node:tls";
import { connect as connectV2, type Authenticator as AuthenticatorV2, type NatsConnection as NatsConnectionV2 } from "nats";
import { connect as connectV3, type NatsConnection as NatsConnectionV3 } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { nativeJwtAuthenticator } from "../accounts/nats-control.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { inboxPrefix, type PathEndpoint } from "./paths.ts";

export const CLIENT_LIBRARIES = ["v2", "v3"] as const;
export type ClientLibrary = (typeof CLIENT_LIBRARIES)[number];

export type MessageHandler = (data: Uint8Array, reply: string) => void;

export interface BenchConnection {
  publish(subject: string, data: Uint8Array, reply?: string): void;
  subscribe(subject: string, onMessage: MessageHandler, queue?: string): void;
  /** A PING/PONG round trip: everything published before it has reached the far end of the path. */
  flush(): Promise<void>;
  /** A JetStream publish, resolved with the stream's ack. */
  jsPublish(subject: string, data: Uint8Array): Promise<unknown>;
  close(): Promise<void>;
}

/**
 * Per path, made once: the TLS context (certificates parsed once, not per connection; no session
 * is resumed, every connection is a full handshake) and the authenticator (its key imported
 * once). Both keep the generators' own share of a connection's cost down: they run on the same
 * cores as the servers they measure.
 */
const prepared = new Map<string, { secureContext: tls.SecureContext; authenticator?: ReturnType<typeof nativeJwtAuthenticator> }>();

function options(path: PathEndpoint, name: string): Record<string, unknown> {
  const key = JSON.stringify(path);
  let p = prepared.get(key);
  if (!p) {
    const { handshakeFirst: _, ...material } = path.tls;
    p = { secureContext: tls.createSecureContext(material), ...(path.auth ? { authenticator: nativeJwtAuthenticator(path.auth.jwt, NativeKeyPair.fromSeed(path.auth.seed)) } : {}) };
    prepared.set(key, p);
  }
  return {
    servers: `${path.host}:${path.port}`,
    name,
    tls: { secureContext: p.secureContext, ...(path.tls.handshakeFirst ? { handshakeFirst: true } : {}) },
    reconnect: false,
    inboxPrefix: inboxPrefix(path),
    timeout: 60_000,
    ...(p.authenticator ? { authenticator: p.authenticator } : {}),
  };
}

class V2Connection implements BenchConnection {
  private readonly nc: NatsConnectionV2;
  private js: ReturnType<NatsConnectionV2["jetstream"]> | undefined;
  constructor(nc: NatsConnectionV2) {
    this.nc = nc;
  }
  publish(subject: string, data: Uint8Array, reply?: string): void {
    this.nc.publish(subject, data, reply === undefined ? undefined : { reply });
  }
  subscribe(subject: string, onMessage: MessageHandler, queue?: string): void {
    this.nc.subscribe(subject, { ...(queue ? { queue } : {}), callback: (err, msg) => {
        if (!err) onMessage(msg.data, msg.reply ?? "");
      },
    });
  }
  flush(): Promise<void> {
    return this.nc.flush();
  }
  jsPublish(subject: string, data: Uint8Array): Promise<unknown> {
    this.js ??= this.nc.jetstream();
    return this.js.publish(subject, data);
  }
  close(): Promise<void> {
    return this.nc.close();
  }
}

class V3Connection implements BenchConnection {
  private readonly nc: NatsConnectionV3;
  private js: ReturnType<typeof jetstream> | undefined;
  constructor(nc: NatsConnectionV3) {
    this.nc = nc;
  }
  publish(subject: string, data: Uint8Array, reply?: string): void {
    this.nc.publish(subject, data, reply === undefined ? undefined : { reply });
  }
  subscribe(subject: string, onMessage: MessageHandler, queue?: string): void {
    this.nc.subscribe(subject, { ...(queue ? { queue } : {}), callback: (err, msg) => {
        if (!err) onMessage(msg.data, msg.reply ?? "");
      },
    });
  }
  flush(): Promise<void> {
    return this.nc.flush();
  }
  jsPublish(subject: string, data: Uint8Array): Promise<unknown> {
    this.js ??= jetstream(this.nc);
    return this.js.publish(subject, data);
  }
  close(): Promise<void> {
    return this.nc.close();
  }
}

export async function connectPath(library: ClientLibrary, path: PathEndpoint, name: string): Promise<BenchConnection> {
  const opts = options(path, name);
  if (library === "v2") return new V2Connection(await connectV2({ ...opts, authenticator: opts.authenticator as AuthenticatorV2 | undefined }));
  return new V3Connection(await connectV3(opts));
}

/**
 * Customer sites that run their own nats-server: the gateway's leafnode listener. A site's stock
 * nats-server connects with a leafnode remote (`tls://gateway:7422`, its tenant certificate) and
 * is admitted exactly as a client is — the same admission (admission.ts), the same refusal codes
 * and log lines — then gets a leaf session (leaf-session.ts) into its tenant's account, in the
 * tenant's view.
 *
 * The handshake is nats-server's accepting side (server/leafnode.go createLeafNode and
 * processLeafNodeConnect, v2.9.10 and v2.14): INFO first (with a nonce, a non-zero `client_id`,
 * `leafnode_urls` and `info_on_connect: true`), TLS, the site's CONNECT, then an INFO with
 * `connect_info: true` that completes the site's side, followed by interest. The INFO names no
 * other URL (`leafnode_urls: []`): a site told of nats-server's own leafnode address would try it
 * directly on its next reconnect, around the gateway. It offers no compression (2.10+ sites then
 * stay uncompressed, as with an older server). A site must finish within its connect-process
 * timeout (2 s): admission and both upstream handshakes happen inside it.
 */
import { randomBytes } from "node:crypto";
import type net from "node:net";
import type tls from "node:tls";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import type { TenantStores } from "../common/namespaces.ts";
import { mintEdgeUser } from "../accounts/user-jwt.ts";
import { IdentityError } from "../pki/identity.ts";
import { admit, type Admitted } from "./admission.ts";
import { parseListen, type GatewayConfig } from "./config.ts";
import { RecentRefusals } from "./held-session.ts";
import { HubLeafEndpoints, openHubLeaf, siteConnectFields, type OpenedHubLeaf } from "./leaf-upstream.ts";
import { LeafSession } from "./leaf-session.ts";
import { GatewayListener, readConnect, type ClientMeta } from "./listener.ts";
import { errFrame } from "./session-rewriter.ts";
import type { TenantDirectory, TenantEntry } from "./tenant-directory.ts";
import { peerCertificates } from "./tls.ts";
import { openUpstream, UpstreamRefused, type OpenedUpstream, type UpstreamServer } from "./upstream.ts";

const AUTHORIZATION_VIOLATION = "Authorization Violation";
/** nats-server's words for a client that dialled a leafnode port (server/errors.go ErrClientConnectedToLeafNodePort). */
const CLIENT_ON_LEAF_PORT = "attempted to connect to leaf node port";
/** What nats-server tells a user it revokes. */
const USER_REVOKED = "User Authentication Revoked";
/** A site retries every second: its refusals are logged once in this long, and counted in between. */
const REFUSAL_LOG_MS = 15 * 60_000;

/** What the hub's client connection says of NATS, for the INFO a site gets. */
export interface HubFacts {
  version: string;
  max_payload: number;
  headers: boolean;
  jetstream: boolean;
}

export interface LeafGatewayDeps {
  config: GatewayConfig;
  log: Logger;
  serverId: string;
  directory: TenantDirectory;
  stores: TenantStores;
  tlsContext: tls.SecureContext;
  upstreamCa: string | undefined;
  /** NATS's client URLs, for each session's JetStream connection. */
  clientServers: UpstreamServer[];
  facts: () => HubFacts;
  /** The payload limit for a tenant whose account allows `tenantLimit` (-1: unlimited). */
  maxPayload: (tenantLimit: number) => number;
  /** The system user's connection, to ask NATS where its leafnode listener is (when leaf_nats is unset). */
  system?: () => Promise<NatsConnection>;
}

export interface LeafGatewayStats {
  sessions: number;
  accepted: number;
  refused: number;
  /** Sessions admitted with a pre-tenant certificate (legacy mode). */
  legacy: number;
}

export class LeafGateway {
  readonly stats: LeafGatewayStats = { sessions: 0, accepted: 0, refused: 0, legacy: 0 };
  private readonly deps: LeafGatewayDeps;
  private readonly log: Logger;
  private readonly listener: GatewayListener;
  private readonly endpoints: HubLeafEndpoints;
  private readonly sessions = new Set<LeafSession>();
  private readonly refusals = new RecentRefusals({ ttlMs: REFUSAL_LOG_MS, max: 100_000 });
  private readonly unsubscribe: () => void;
  private address: { host: string; port: number } | undefined;
  private nextUpstream = 0;
  private stopping = false;

  private constructor(deps: LeafGatewayDeps) {
    this.deps = deps;
    this.log = deps.log.child({ listener: "leaf" });
    this.endpoints = new HubLeafEndpoints({ configured: deps.config.leaf_nats, clientServers: deps.clientServers, ...(deps.system ? { system: deps.system } : {}), log: this.log });
    const { host, port } = parseListen(deps.config.leaf_listen!);
    const context = deps.tlsContext;
    this.listener = new GatewayListener({
      host,
      port,
      tlsFirst: deps.config.tls_first,
      tlsFirstDelayMs: deps.config.tls_first_delay_ms,
      handshakeTimeoutMs: deps.config.handshake_timeout_ms,
      secureContext: () => context,
      info: (client) => `INFO ${JSON.stringify(this.info(client.id))}\r\n`,
      onSecureClient: (socket, meta) =>
        void this.admitSite(socket, meta).catch((err: unknown) => {
          // Admission failing unexpectedly costs this site its connection, nothing more.
          this.log.error({ event: "admission_failed", code: "internal_error", error: errorMessage(err), remote: `${meta.remoteAddress}:${meta.remotePort}` }, "admitting a leaf node failed");
          socket.destroy();
        }),
      onRefused: (meta, code, reason) => this.refused({ code, reason, remote: `${meta.remoteAddress}:${meta.remotePort}` }),
    });
    this.unsubscribe = deps.directory.onChange((event) => {
      if (event.kind === "removed" || event.status === "suspended") this.closeTenant(event.slug, event.kind === "removed" ? AUTHORIZATION_VIOLATION : USER_REVOKED, event.kind === "removed" ? "tenant deleted" : "tenant suspended");
    });
  }

  static async start(deps: LeafGatewayDeps): Promise<LeafGateway> {
    const leaf = new LeafGateway(deps);
    try {
      leaf.address = await leaf.listener.listen();
    } catch (err) {
      leaf.unsubscribe();
      throw err;
    }
    leaf.log.info(
      { event: "leaf_listening", host: leaf.address.host, port: leaf.address.port, leaf_nats: deps.config.leaf_nats ?? "discovered", jetstream_domain: deps.config.leaf_jetstream_domain },
      "leaf node listener ready",
    );
    return leaf;
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The leafnode INFO a site gets before TLS (and after it, when it started TLS first). */
  private info(clientId: number, maxPayload = this.deps.maxPayload(-1)): Record<string, unknown> {
    const facts = this.deps.facts();
    return {
      server_id: this.deps.serverId,
      server_name: "tenant-gateway",
      version: facts.version,
      // Protocol 1: a site sends nothing newer than a 2.9 server reads (message tracing is 2.11+).
      proto: 1,
      host: this.address?.host ?? "0.0.0.0",
      port: this.address?.port ?? 0,
      headers: facts.headers,
      auth_required: true,
      tls_required: true,
      tls_verify: true,
      max_payload: maxPayload,
      ...(facts.jetstream ? { jetstream: true, domain: this.deps.config.leaf_jetstream_domain } : {}),
      client_id: clientId,
      nonce: randomBytes(11).toString("base64url"),
      info_on_connect: true,
      leafnode_urls: [],
    };
  }

  private refused(fields: { code: string; reason: string; remote: string; cn?: string; fingerprint?: string; tenant?: string }): void {
    this.stats.refused++;
    const { fingerprint, ...logged } = fields;
    // A refused site comes back every second: the first refusal in a while is a warning, the rest debug.
    const repeat = fingerprint !== undefined && this.refusals.recent(fingerprint);
    if (fingerprint !== undefined && !repeat) this.refusals.remember(fingerprint);
    if (repeat) this.log.debug({ event: "connection_refused", kind: "leaf", ...logged }, "leaf node refused (again)");
    else this.log.warn({ event: "connection_refused", kind: "leaf", ...logged }, "leaf node refused");
  }

  private async admitSite(socket: tls.TLSSocket, meta: ClientMeta): Promise<void> {
    const remote = `${meta.remoteAddress}:${meta.remotePort}`;
    const { leaf, chain } = peerCertificates(socket);
    const fingerprint = leaf?.fingerprint256;
    let resolved: Admitted<TenantEntry> | undefined;
    let refusal: { code: string; reason: string; cn?: string } | undefined;
    try {
      resolved = admit(leaf, chain, this.deps.directory, this.deps.config.platform.allowed_identities, undefined, { legacyTenant: this.deps.config.legacy_tenant });
      if (resolved.kind === "platform") refusal = { code: "leaf_platform_identity", reason: `platform identity "${resolved.identity.name}" cannot connect a leaf node: a leaf node belongs to one tenant`, cn: resolved.identity.cn };
    } catch (err) {
      const cn = leaf?.subject.split("\n").find((l) => l.startsWith("CN="))?.slice(3);
      refusal = err instanceof IdentityError ? { code: err.code, reason: err.message, ...(cn ? { cn } : {}) } : { code: "internal_error", reason: errorMessage(err) };
    }
    const tenant = resolved?.kind === "edge" ? resolved.tenant : undefined;
    const maxPayload = this.deps.maxPayload(tenant ? tenant.maxPayload : -1);
    // A site that started TLS first gets its INFO now, with its tenant's payload limit.
    if (meta.tlsFirst) socket.write(`INFO ${JSON.stringify(this.info(meta.id, maxPayload))}\r\n`);
    let connect: Awaited<ReturnType<typeof readConnect>>;
    try {
      connect = await readConnect(socket, this.deps.config.handshake_timeout_ms);
    } catch (err) {
      this.refused({ code: err instanceof CodedError ? err.code : "connect_failed", reason: errorMessage(err), remote, ...(refusal?.cn ? { cn: refusal.cn } : {}) });
      return reject(socket, err instanceof CodedError && err.code === "malformed_connect" ? "Unknown Protocol Operation" : AUTHORIZATION_VIOLATION);
    }
    // Clients name their language in CONNECT; leaf nodes never do (nats-server tells them apart so).
    if (typeof connect.connect.lang === "string" && connect.connect.lang !== "") {
      this.refused({ code: "not_a_leaf_node", reason: `a ${connect.connect.lang} client connected to the leaf node port (clients use the client port)`, remote, ...(refusal?.cn ? { cn: refusal.cn } : {}) });
      return reject(socket, CLIENT_ON_LEAF_PORT);
    }
    if (refusal || resolved?.kind !== "edge") {
      this.refused({ ...(refusal ?? { code: "internal_error", reason: "no identity" }), remote, ...(fingerprint ? { fingerprint } : {}) });
      return reject(socket, AUTHORIZATION_VIOLATION);
    }
    const { identity } = resolved;
    const entry = resolved.tenant;
    const site = siteConnectFields(connect.connect);
    const sessionId = randomBytes(6).toString("hex");
    const fields = { kind: "leaf", tenant: identity.tenant, component: identity.component, partition: identity.partition, cn: identity.cn, ...(resolved.legacy ? { legacy: true } : {}) };
    const log = this.deps.log.child({ session: sessionId, ...fields });
    const facts = this.deps.facts();
    let hubLeaf: OpenedHubLeaf | undefined;
    let jetStream: OpenedUpstream | undefined;
    try {
      const user = await this.deps.directory.users.get(`${identity.fingerprint}:${entry.signer.signingKey.getPublicKey()}`, identity.tenant, () => mintEdgeUser(identity, entry.signer, this.deps.stores));
      const timeoutMs = this.deps.config.handshake_timeout_ms;
      const ca = this.deps.upstreamCa;
      const start = this.nextUpstream++;
      // Each connection may be open a while before the other is: a reset in between must not be an
      // unhandled error (the session checks that both are still there before it starts).
      const [leafOpened, jetStreamOpened] = await Promise.allSettled([
        this.openLeaf(start, user, site, timeoutMs).then((opened) => keep(opened.socket) && opened),
        facts.jetstream ? openUpstream(this.deps.clientServers, start, user, { headers: true, name: `leaf ${site.name ?? identity.cn}`.slice(0, 256) }, { timeoutMs, ...(ca ? { ca } : {}) }).then((opened) => keep(opened.socket) && opened) : Promise.resolve(undefined),
      ]);
      hubLeaf = leafOpened.status === "fulfilled" ? leafOpened.value : undefined;
      jetStream = jetStreamOpened.status === "fulfilled" ? jetStreamOpened.value : undefined;
      if (leafOpened.status === "rejected") throw leafOpened.reason;
      if (jetStreamOpened.status === "rejected") throw jetStreamOpened.reason;
    } catch (err) {
      hubLeaf?.socket.destroy();
      jetStream?.socket.destroy();
      const code = err instanceof UpstreamRefused ? "upstream_refused" : err instanceof CodedError ? err.code : "internal_error";
      this.refused({ code, reason: errorMessage(err), remote, ...fields, fingerprint: identity.fingerprint });
      // NATS's own refusal (a leaf limit, a revoked user) is the site's to log; anything else closes
      // without a word and the site tries again in a second.
      if (err instanceof UpstreamRefused) return reject(socket, err.serverError);
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    if (this.stopping || socket.destroyed || !hubLeaf || hubLeaf.socket.destroyed || jetStream?.socket.destroyed) {
      hubLeaf?.socket.destroy();
      jetStream?.socket.destroy();
      socket.destroy();
      return;
    }
    const hubMaxPayload = hubLeaf.info.max_payload > 0 ? hubLeaf.info.max_payload : facts.max_payload;
    const session = new LeafSession({
      id: sessionId,
      slug: identity.tenant,
      site: socket,
      hub: hubLeaf.socket,
      jetStream: jetStream?.socket,
      log,
      rewriter: {
        slug: identity.tenant,
        maxPayload: Math.min(maxPayload, hubMaxPayload),
        hubMaxPayload,
        jetStreamDomain: jetStream ? this.deps.config.leaf_jetstream_domain : undefined,
        stores: this.deps.stores,
      },
      connectInfo: { ...this.info(meta.id, Math.min(maxPayload, hubMaxPayload)), connect_info: true, remote_account: identity.tenant },
      slowConsumerMs: this.deps.config.slow_consumer_ms,
      siteLeftover: connect.rest,
      hubLeftover: hubLeaf.leftover,
      jetStreamLeftover: jetStream?.leftover ?? Buffer.alloc(0),
      onClose: (s, reason) => {
        this.sessions.delete(s);
        this.stats.sessions = this.sessions.size;
        log.info({ event: "session_closed", reason, ...s.counters }, "leaf session closed");
      },
    });
    this.sessions.add(session);
    this.stats.sessions = this.sessions.size;
    this.stats.accepted++;
    if (resolved.legacy) {
      this.stats.legacy++;
      log.warn({ event: "legacy_certificate", code: "legacy_certificate" }, `pre-tenant certificate admitted into tenant "${identity.tenant}"; re-issue it from the tenant's CA`);
    }
    log.info({ event: "connection_accepted", remote, nats: hubLeaf.server.url, tls_first: meta.tlsFirst, site: site.name, cluster: site.cluster, domain: site.domain, jetstream: jetStream !== undefined }, "leaf node accepted");
    session.start();
  }

  /** The leafnode connection into the tenant's account; a listener that moved is asked for again once. */
  private async openLeaf(start: number, user: Parameters<typeof openHubLeaf>[2], site: ReturnType<typeof siteConnectFields>, timeoutMs: number): Promise<OpenedHubLeaf> {
    const opts = { timeoutMs, ...(this.deps.upstreamCa ? { ca: this.deps.upstreamCa } : {}) };
    try {
      return await openHubLeaf(await this.endpoints.servers(), start, user, site, opts);
    } catch (err) {
      if (!(err instanceof CodedError && err.code === "upstream_unavailable" && this.endpoints.discovers)) throw err;
      this.endpoints.stale();
      return openHubLeaf(await this.endpoints.servers(), start, user, site, opts);
    }
  }

  private closeTenant(slug: string, errText: string, reason: string): void {
    for (const s of this.sessions) if (s.slug === slug) s.close(reason, errText);
  }

  /** Stops accepting and closes every leaf session (sites reconnect, to this gateway's peers). */
  async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.unsubscribe();
    await this.listener.close();
    for (const s of [...this.sessions]) s.close("gateway shutdown");
  }
}

/** A socket nobody listens to yet keeps a listener for its errors (its close is checked before use). */
function keep(socket: net.Socket): true {
  socket.on("error", () => undefined);
  return true;
}

function reject(socket: tls.TLSSocket, text: string): void {
  socket.end(errFrame(text));
  setTimeout(() => socket.destroy(), 1000).unref();
}

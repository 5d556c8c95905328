/**
 * The gateway process: the listener, the live tenant directory, admission of each client
 * (identity from its certificate, tenant status, a user JWT minted for it, its own upstream
 * connection), the sessions, and the lame-duck shutdown.
 */
import { randomBytes } from "node:crypto";
import type tls from "node:tls";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { parseDurationSeconds } from "../streams/units.ts";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { readTextFile } from "../common/files.ts";
import type { Logger } from "../common/logger.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { TenantService } from "../accounts/tenants.ts";
import { mintEdgeUser, mintPlatformUser, type AccountSigner, type MintedUser } from "../accounts/user-jwt.ts";
import { IdentityError } from "../pki/identity.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { loadStreamTemplates, resolveTemplatesDir, storesOf } from "../streams/templates.ts";
import type { TenantStores } from "../common/namespaces.ts";
import { parseListen, type GatewayConfig } from "./config.ts";
import { admit, type Admitted } from "./admission.ts";
import { AuditTrail, SessionAudit } from "./audit.ts";
import { ensureAuditStream } from "./audit-stream.ts";
import { ClientSession } from "./client-session.ts";
import { EdgeRewriter } from "./edge-rewriter.ts";
import { PlatformRewriter } from "./platform-rewriter.ts";
import { errFrame, type RewriterEvents, type SessionRewriter } from "./session-rewriter.ts";
import { GatewayListener, readConnect, type ClientMeta } from "./listener.ts";
import { TenantDirectory, type TenantEntry } from "./tenant-directory.ts";
import { loadGatewayTls, peerCertificates } from "./tls.ts";
import { LeafGateway } from "./leaf-gateway.ts";
import { openUpstream, parseServerUrl, pickConnectOptions, UpstreamRefused, type UpstreamServer } from "./upstream.ts";

/** `compiled` when running dist/ (`npm run build`), `sources` when running the TypeScript through tsx. */
const RUNTIME = import.meta.url.endsWith(".ts") ? "sources" : "compiled";

export const GATEWAY_VERSION = "0.1.0";
const AUTHORIZATION_VIOLATION = "Authorization Violation";

/** What the gateway tells clients in INFO, mirroring the upstream server where clients care. */
interface UpstreamFacts {
  version: string;
  max_payload: number;
  headers: boolean;
  jetstream: boolean;
  proto: number;
}

/** Platform users are cached under this pseudo-tenant (no tenant change invalidates them). */
const PLATFORM_CACHE_KEY = "\u0000platform";

interface SessionPlan {
  slug: string | undefined;
  fields: Record<string, unknown>;
  maxPayload: number;
  user: () => Promise<MintedUser>;
  rewriter: (events: RewriterEvents) => SessionRewriter;
}

export interface GatewayStats {
  sessions: number;
  accepted: number;
  refused: number;
  /** Edge sessions admitted with a pre-tenant certificate (legacy mode, `legacy_tenant`). */
  legacy: number;
}

export class Gateway {
  readonly config: GatewayConfig;
  readonly log: Logger;
  readonly serverId: string;
  private readonly cp: ControlPlane;
  private readonly directory: TenantDirectory;
  private readonly listener: GatewayListener;
  private readonly servers: UpstreamServer[];
  private readonly sessions = new Set<ClientSession>();
  private readonly upstreamCa: string | undefined;
  private readonly platformSigner: AccountSigner;
  private readonly auditTrail: AuditTrail;
  private readonly auditConnection: NatsConnection;
  /** The key-value buckets and object stores of the templates, and who may write them. */
  private readonly stores: TenantStores;
  private facts: UpstreamFacts;
  private control: NatsConnection;
  private nextUpstream = 0;
  private lameDuck = false;
  private address: { host: string; port: number } | undefined;
  readonly stats: GatewayStats = { sessions: 0, accepted: 0, refused: 0, legacy: 0 };
  /** Customer sites' leaf nodes (leaf-gateway.ts), when `leaf_listen` is set. */
  private leaf: LeafGateway | undefined;

  private constructor(parts: { config: GatewayConfig; log: Logger; cp: ControlPlane; directory: TenantDirectory; tlsContext: tls.SecureContext; control: NatsConnection; upstreamCa: string | undefined; auditConnection: NatsConnection; stores: TenantStores }) {
    this.config = parts.config;
    this.stores = parts.stores;
    this.platformSigner = parts.cp.platform;
    this.auditConnection = parts.auditConnection;
    const js = jetstream(parts.auditConnection);
    this.auditTrail = new AuditTrail(parts.log, (subject, record) => {
      js.publish(subject, JSON.stringify(record)).catch((err: unknown) => parts.log.error({ event: "audit_write_failed", error: errorMessage(err), subject }, "audit record not stored in the audit stream (it is in this log)"));
    });
    this.log = parts.log;
    this.cp = parts.cp;
    this.directory = parts.directory;
    this.control = parts.control;
    this.upstreamCa = parts.upstreamCa;
    this.serverId = `GW${randomBytes(10).toString("hex").toUpperCase()}`;
    this.servers = parts.config.nats.map(parseServerUrl);
    this.facts = factsOf(parts.control);
    const { host, port } = parseListen(parts.config.listen);
    const context = parts.tlsContext;
    this.listener = new GatewayListener({
      host,
      port,
      tlsFirst: parts.config.tls_first,
      tlsFirstDelayMs: parts.config.tls_first_delay_ms,
      handshakeTimeoutMs: parts.config.handshake_timeout_ms,
      secureContext: () => context,
      info: (client) => `INFO ${JSON.stringify(this.info(client))}\r\n`,
      onSecureClient: (socket, meta) =>
        void this.admit(socket, meta).catch((err: unknown) => {
          // Admission failing unexpectedly costs this client its connection, nothing more.
          this.log.error({ event: "admission_failed", code: "internal_error", error: errorMessage(err), remote: `${meta.remoteAddress}:${meta.remotePort}` }, "admitting a client failed");
          socket.destroy();
        }),
      onRefused: (meta, code, reason) => this.audit(false, { code, reason, remote: `${meta.remoteAddress}:${meta.remotePort}` }),
    });
    this.directory.onChange((event) => {
      this.log.info({ event: "tenant_changed", tenant: event.slug, change: event.kind, status: event.status }, "tenant registry change applied");
      if (event.kind === "removed" || event.status === "suspended") this.closeTenantSessions(event.slug, event.kind === "removed" ? "tenant deleted" : "tenant suspended");
    });
  }

  static async start(config: GatewayConfig, log: Logger): Promise<Gateway> {
    const layout = new DataLayout(config.data_dir);
    parseListen(config.listen);
    // Local material first: a missing file fails at once, not after waiting for NATS.
    const tlsMaterial = await loadGatewayTls(layout);
    const upstreamCa = config.nats_ca_file ? await readTextFile(config.nats_ca_file, "NATS CA file") : await readTextFile(layout.rootCert, "root CA certificate");
    // NATS down at start-up: retried with backoff, each attempt logged; nothing listens meanwhile (not ready).
    const cp = await ControlPlane.openReachable(
      {
        dataDir: config.data_dir,
        servers: config.nats,
        store: config.store,
        ...(config.master_key_file ? { masterKeyFile: config.master_key_file } : {}),
        ...(config.bucket ? { bucket: config.bucket } : {}),
        reconnect: true,
        pollMs: config.registry_poll_ms,
      },
      {
        waitMs: config.nats_wait_ms,
        onRetry: (r) => log.warn({ event: "nats_unavailable", attempt: r.attempt, retry_in_ms: r.delayMs, nats: config.nats, error: r.error.message }, "NATS is not reachable; retrying"),
      },
      "tenant-gateway-audit",
    );
    let directory: TenantDirectory | undefined;
    try {
      // The gateway's own user in the PLATFORM account (it never expires): NATS's INFO, the audit stream.
      const control = await cp.platformConnection("tenant-gateway-audit");
      if (config.sync_on_start && !cp.canSignAccounts) {
        log.info({ event: "sync_skipped", data_dir: config.data_dir }, "no operator seed in the data dir (its data-plane part): accounts and streams are not synchronised here; run `tenant-gateway sync` on the control plane");
      } else if (config.sync_on_start) {
        const result = await new TenantService(cp, tenantStreamProvisioner).sync();
        const failed = result.tenants.filter((t) => t.result === "failed");
        const pushed = result.tenants.filter((t) => t.result === "pushed").length;
        log.info({ event: "sync", tenants: result.tenants.length, pushed, failed: failed.length, platform: result.platform_result }, "accounts and streams synchronised with NATS");
        for (const f of failed) log.error({ event: "sync_failed", tenant: f.slug, code: f.code, error: f.error }, "tenant could not be synchronised");
        for (const r of result.tenants.filter((t) => t.jetstream?.status === "repaired")) {
          log.warn({ event: "jetstream_repaired", tenant: r.slug, dead: r.jetstream?.dead }, "the tenant's JetStream had stopped taking messages and was restarted");
        }
      }
      directory = await TenantDirectory.open(cp.store, tlsMaterial.root, [tlsMaterial.platformCa], log);
      const stores = await templateStores(config.data_dir);
      const auditStream = await ensureAuditStream(control, { maxAgeSeconds: parseDurationSeconds(config.audit_max_age) ?? 30 * 86_400 });
      log.info({ event: "audit_stream", status: auditStream, max_age: config.audit_max_age }, "audit stream ready");
      const gw = new Gateway({ config, log, cp, directory, tlsContext: tlsMaterial.context, control, upstreamCa, auditConnection: control, stores });
      gw.watchControl();
      gw.address = await gw.listener.listen();
      if (config.leaf_listen) gw.leaf = await gw.startLeaf(tlsMaterial.context);
      log.info(
        { event: "listening", host: gw.address.host, port: gw.address.port, nats: config.nats, store: cp.store.location, tenants: directory.size, data_dir_part: cp.canSignAccounts ? "full" : "data-plane", runtime: RUNTIME },
        "gateway listening",
      );
      return gw;
    } catch (err) {
      // Nothing may keep a failed start-up's process alive: the CLI exits with its one error line.
      directory?.close();
      await cp.close();
      throw err;
    }
  }

  get port(): number {
    return this.address?.port ?? 0;
  }

  /** The leafnode listener's port (0 when there is none) and its sessions. */
  get leafPort(): number {
    return this.leaf?.port ?? 0;
  }

  get leafStats(): LeafGateway["stats"] | undefined {
    return this.leaf?.stats;
  }

  /** The leafnode listener; when it cannot start, the client listener closes again and start-up fails. */
  private async startLeaf(tlsContext: tls.SecureContext): Promise<LeafGateway> {
    try {
      return await LeafGateway.start({
        config: this.config,
        log: this.log,
        serverId: this.serverId,
        directory: this.directory,
        stores: this.stores,
        tlsContext,
        upstreamCa: this.upstreamCa,
        clientServers: this.servers,
        facts: () => this.facts,
        maxPayload: (tenantLimit) => this.effectiveMaxPayload(tenantLimit),
        ...(this.cp.canSignAccounts ? { system: () => this.cp.system() } : {}),
      });
    } catch (err) {
      await this.listener.close();
      throw err;
    }
  }

  private watchControl(): void {
    void (async () => {
      for await (const s of this.control.status()) {
        if (s.type === "disconnect") this.log.warn({ event: "nats_disconnected", server: s.server }, "control connection to NATS lost");
        if (s.type === "reconnect") {
          this.facts = factsOf(this.control);
          this.log.info({ event: "nats_reconnected", server: s.server }, "control connection to NATS restored");
        }
      }
    })().catch(() => undefined);
  }

  private info(client: { id: number; remoteAddress: string }): object {
    return {
      server_id: this.serverId,
      server_name: "tenant-gateway",
      version: this.facts.version,
      proto: this.facts.proto,
      go: `tenant-gateway/${GATEWAY_VERSION}`,
      host: this.address?.host ?? "0.0.0.0",
      port: this.address?.port ?? 0,
      headers: this.facts.headers,
      max_payload: this.effectiveMaxPayload(),
      jetstream: this.facts.jetstream,
      tls_required: true,
      tls_verify: true,
      client_id: client.id,
      client_ip: client.remoteAddress,
      ...(this.lameDuck ? { ldm: true } : {}),
    };
  }

  /** NATS's max_payload, capped by the gateway's config and by the tenant's account limit. */
  private effectiveMaxPayload(tenantLimit = -1): number {
    let max = this.facts.max_payload;
    if (this.config.max_payload > 0) max = Math.min(max, this.config.max_payload);
    if (tenantLimit >= 0) max = Math.min(max, tenantLimit);
    return max;
  }

  private audit(accepted: boolean, fields: Record<string, unknown>): void {
    if (accepted) {
      this.stats.accepted++;
      this.log.info({ event: "connection_accepted", ...fields }, "client accepted");
    } else {
      this.stats.refused++;
      this.log.warn({ event: "connection_refused", ...fields }, "client refused");
    }
  }

  /** Decides who the client is and whether it may have a session (throws IdentityError). */
  private resolveIdentity(socket: tls.TLSSocket): Admitted<TenantEntry> {
    const { leaf, chain } = peerCertificates(socket);
    return admit(leaf, chain, this.directory, this.config.platform.allowed_identities, undefined, { legacyTenant: this.config.legacy_tenant });
  }

  /** The payload limit a session gets: NATS's, capped by the config and, for an edge client, its tenant's plan. */
  private sessionMaxPayload(resolved: Admitted<TenantEntry> | undefined): number {
    return resolved?.kind === "edge" ? this.effectiveMaxPayload(resolved.tenant.maxPayload) : this.effectiveMaxPayload();
  }

  /** How a resolved identity becomes a session: its user, its limits, its rewriter, its log fields. */
  private sessionPlan(resolved: Admitted<TenantEntry>, sessionId: string, remote: string): SessionPlan {
    if (resolved.kind === "platform") {
      const identity = resolved.identity;
      const signer = this.platformSigner;
      const maxPayload = this.sessionMaxPayload(resolved);
      const audit = new SessionAudit(this.auditTrail, { identity: identity.name, cn: identity.cn, session: sessionId, remote }, this.config.audit_window_ms);
      return {
        slug: undefined,
        fields: { platform: identity.name, cn: identity.cn },
        maxPayload,
        user: () => this.directory.users.get(`${identity.fingerprint}:${signer.signingKey.getPublicKey()}`, PLATFORM_CACHE_KEY, () => mintPlatformUser(identity, signer)),
        rewriter: (events) => new PlatformRewriter({ session: sessionId, maxPayload, isTenant: (slug) => this.directory.get(slug) !== undefined, audit, events, stores: this.stores }),
      };
    }
    const { identity, tenant } = resolved;
    const maxPayload = this.sessionMaxPayload(resolved);
    return {
      slug: identity.tenant,
      fields: { tenant: identity.tenant, component: identity.component, partition: identity.partition, cn: identity.cn },
      maxPayload,
      user: () => this.directory.users.get(`${identity.fingerprint}:${tenant.signer.signingKey.getPublicKey()}`, identity.tenant, () => mintEdgeUser(identity, tenant.signer, this.stores)),
      rewriter: (events) => new EdgeRewriter(identity.tenant, { maxPayload, events, stores: this.stores }),
    };
  }

  private async admit(socket: tls.TLSSocket, meta: ClientMeta): Promise<void> {
    const remote = `${meta.remoteAddress}:${meta.remotePort}`;
    let resolved: Admitted<TenantEntry> | undefined;
    let refusal: { code: string; reason: string; cn?: string } | undefined;
    try {
      resolved = this.resolveIdentity(socket);
    } catch (err) {
      const cn = socket.getPeerX509Certificate()?.subject.split("\n").find((l) => l.startsWith("CN="))?.slice(3);
      refusal = err instanceof IdentityError ? { code: err.code, reason: err.message, ...(cn ? { cn } : {}) } : { code: "internal_error", reason: errorMessage(err) };
    }
    // A TLS-first client's first INFO already carries its tenant's payload limit.
    if (meta.tlsFirst) socket.write(`INFO ${JSON.stringify({ ...this.info(meta), max_payload: this.sessionMaxPayload(resolved) })}\r\n`);
    let connect: Awaited<ReturnType<typeof readConnect>>;
    try {
      connect = await readConnect(socket, this.config.handshake_timeout_ms);
    } catch (err) {
      this.audit(false, { code: err instanceof CodedError ? err.code : "connect_failed", reason: errorMessage(err), remote, ...(refusal?.cn ? { cn: refusal.cn } : {}) });
      socket.end(errFrame(err instanceof CodedError && err.code === "malformed_connect" ? "Unknown Protocol Operation" : AUTHORIZATION_VIOLATION));
      socket.destroy();
      return;
    }
    if (refusal || !resolved) {
      this.audit(false, { ...refusal, remote });
      return this.reject(socket, AUTHORIZATION_VIOLATION);
    }
    const sessionId = randomBytes(6).toString("hex");
    const plan = this.sessionPlan(resolved, sessionId, remote);
    const log = this.log.child({ session: sessionId, ...plan.fields });
    try {
      const minted = await plan.user();
      const clientOptions = pickConnectOptions(connect.connect);
      const upstream = await openUpstream(this.servers, this.nextUpstream++, minted, clientOptions, { timeoutMs: this.config.handshake_timeout_ms, ...(this.upstreamCa ? { ca: this.upstreamCa } : {}) });
      if (this.lameDuck || socket.destroyed) {
        upstream.socket.destroy();
        return this.reject(socket, "Server Shutdown");
      }
      if (clientOptions.verbose) socket.write("+OK\r\n");
      const session = new ClientSession({
        id: sessionId,
        slug: plan.slug,
        client: socket,
        upstream: upstream.socket,
        log,
        rewriter: plan.rewriter,
        // An INFO-first client learns its own payload limit (its tenant's plan) from an INFO update
        // after its first PONG; a TLS-first client had it in its first INFO.
        ...(!meta.tlsFirst && plan.maxPayload !== this.effectiveMaxPayload() ? { infoUpdate: { ...this.info(meta), max_payload: plan.maxPayload } } : {}),
        slowConsumerMs: this.config.slow_consumer_ms,
        clientLeftover: connect.rest,
        upstreamLeftover: upstream.leftover,
        lameDuckInfo: () => ({ ...this.info({ id: meta.id, remoteAddress: meta.remoteAddress }), ldm: true }),
        onClose: (s, reason) => {
          this.sessions.delete(s);
          this.stats.sessions = this.sessions.size;
          log.info({ event: "session_closed", reason, ...s.counters }, "session closed");
        },
      });
      this.sessions.add(session);
      this.stats.sessions = this.sessions.size;
      const legacy = resolved.kind === "edge" && resolved.legacy === true;
      this.audit(true, { session: sessionId, ...plan.fields, remote, nats: upstream.server.url, tls_first: meta.tlsFirst, ...(legacy ? { legacy } : {}) });
      if (legacy) {
        this.stats.legacy++;
        log.warn({ event: "legacy_certificate", code: "legacy_certificate" }, `pre-tenant certificate admitted into tenant "${plan.slug}"; re-issue it from the tenant's CA`);
      }
      session.start();
    } catch (err) {
      if (err instanceof UpstreamRefused) {
        this.audit(false, { code: "upstream_refused", reason: err.message, ...plan.fields, remote });
        return this.reject(socket, err.serverError);
      }
      this.audit(false, { code: err instanceof CodedError ? err.code : "internal_error", reason: errorMessage(err), ...plan.fields, remote });
      return this.reject(socket, "Server Unavailable");
    }
  }

  private reject(socket: tls.TLSSocket, text: string): void {
    socket.end(errFrame(text));
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  private closeTenantSessions(slug: string, reason: string): void {
    for (const s of this.sessions) if (s.slug === slug) s.close(reason, AUTHORIZATION_VIOLATION);
  }

  /**
   * Lame duck: stop accepting, tell every client (INFO `ldm: true`) so it reconnects elsewhere,
   * wait up to `drainMs` for them to leave, then close the rest.
   */
  async shutdown(drainMs = this.config.drain_timeout_ms): Promise<void> {
    if (this.lameDuck) return;
    this.lameDuck = true;
    this.log.info({ event: "lame_duck", sessions: this.sessions.size, drain_ms: drainMs }, "stopping: lame duck mode");
    await this.listener.close();
    await this.leaf?.shutdown();
    for (const s of this.sessions) s.lameDuck({ ...this.info({ id: 0, remoteAddress: "" }), ldm: true });
    const deadline = Date.now() + drainMs;
    while (this.sessions.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of [...this.sessions]) s.close("gateway shutdown", "Server Shutdown");
    this.directory.close();
    await this.auditConnection.drain().catch(() => undefined);
    await this.cp.close();
    this.log.info({ event: "stopped" }, "gateway stopped");
  }
}

/** The buckets and stores every tenant has, from the stream templates `sync` provisions them with. */
async function templateStores(dataDir: string): Promise<TenantStores> {
  const { dir } = await resolveTemplatesDir(dataDir);
  return storesOf(await loadStreamTemplates(dir));
}

function factsOf(nc: NatsConnection): UpstreamFacts {
  const info = nc.info;
  if (!info) throw new CodedError("upstream_unavailable", "no INFO from NATS on the control connection");
  return { version: info.version, max_payload: info.max_payload, headers: info.headers ?? true, jetstream: info.jetstream ?? false, proto: info.proto ?? 1 };
}

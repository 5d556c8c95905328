/**
 * The gateway process: the listener, the live tenant directory, admission of each client
 * (identity from its certificate, tenant status, a user JWT minted for it, its own upstream
 * connection), the sessions, and the lame-duck shutdown.
 */
import { randomBytes } from "node:crypto";
import { unwatchFile, watchFile } from "node:fs";
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
import { parseCommonName } from "../pki/names.ts";
import { DataLayout } from "../pki/layout.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { loadStreamTemplates, resolveTemplatesDir, storesOf } from "../streams/templates.ts";
import { loadPlatformStreams, type PlatformStreams } from "../streams/platform-streams.ts";
import type { TenantStores } from "../common/namespaces.ts";
import { parseListen, type GatewayConfig } from "./config.ts";
import { admit, type Admitted } from "./admission.ts";
import { AuditTrail, SessionAudit } from "./audit.ts";
import { ensureAuditStream } from "./audit-stream.ts";
import { ClientSession, UPSTREAM_CLOSED } from "./client-session.ts";
import { EdgeRewriter } from "./edge-rewriter.ts";
import { PlatformRewriter } from "./platform-rewriter.ts";
import { errFrame, type RewriterEvents, type SessionRewriter } from "./session-rewriter.ts";
import { GatewayListener, readConnect, type AcceptVerdict, type ClientMeta } from "./listener.ts";
import { TenantDirectory, type TenantEntry } from "./tenant-directory.ts";
import { loadGatewayTls, peerCertificates } from "./tls.ts";
import { isAuthorizationRefusal, openUpstream, parseServerUrl, pickConnectOptions, UpstreamReachability, UpstreamRefused, type ClientConnectOptions, type OpenedUpstream, type UpstreamServer } from "./upstream.ts";
import { HeldSession, RecentRefusals } from "./held-session.ts";
import { TenantRates } from "./rate-limits.ts";
import { MemoryRelief, memoryAllocator } from "./memory-relief.ts";
import { LeafGateway } from "./leaf-gateway.ts";
import { NO_TELEMETRY, type GatewayReadiness, type GatewayTelemetry, type SessionFacts, type SessionSummary } from "./telemetry.ts";

/** `compiled` when running dist/ (`npm run build`), `sources` when running the TypeScript through tsx. */
const RUNTIME = import.meta.url.endsWith(".ts") ? "sources" : "compiled";

export const GATEWAY_VERSION = "0.1.0";
const AUTHORIZATION_VIOLATION = "Authorization Violation";
/** What nats-server tells a user it revokes: not an authorization refusal to nats.js (see HeldSession). */
const USER_REVOKED = "User Authentication Revoked";
/** How long a client through TLS may wait for its PONG while no NATS server answers (stock clients give up after 20 s). */
const NATS_OUTAGE_HOLD_MS = 30_000;
/** NATS refused a certificate refused a moment ago: asked again after 250, 500, 1000, 2000 ms. */
const AUTH_RETRIES = 4;
const AUTH_RETRY_MS = 250;
/**
 * How often held connections' tenants are checked, besides the registry's change events: a resume
 * the watch missed or delivered late keeps a tenant's sites away this long at most (one registry
 * read per suspended tenant with held connections).
 */
const HELD_CHECK_MS = 1000;
/** How long after a tenant's resume NATS refusing its users is taken as the account still on its way. */
const RESUME_WINDOW_MS = 10_000;

/** How often the server certificate's files are looked at for a change. */
const TLS_RELOAD_POLL_MS = 2000;
/** Shutdown: the most each closing step (flushing audit records, closing the control connection) may take. */
export const SHUTDOWN_STEP_MS = 2000;

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
  /** Connections of suspended tenants held until they are resumed. */
  held: number;
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
  /** The PLATFORM account's platform streams, and which identities may read them. */
  private readonly platformStreams: PlatformStreams;
  private facts: UpstreamFacts;
  private control: NatsConnection;
  private nextUpstream = 0;
  /** Whether any NATS server answers; while none does, new connections are closed before TLS. */
  private readonly reachability: UpstreamReachability;
  private refusedWhileUnreachable = 0;
  /** Connections of suspended tenants, held until the tenant is resumed (see HeldSession). */
  private readonly held = new Set<HeldSession>();
  private readonly refusedCertificates = new RecentRefusals({ ttlMs: 15 * 60_000, max: 100_000 });
  private heldCheck: NodeJS.Timeout | undefined;
  /** When each tenant last became active again (NATS may refuse its users for a moment after). */
  private readonly resumedAt = new Map<string, number>();
  /** The plans' publish rate limits, one bucket per tenant for all its sessions here. */
  private readonly rates: TenantRates;
  /** A full collection once a crowd of clients has left (see MemoryRelief). */
  private readonly relief: MemoryRelief | undefined;
  private lameDuck = false;
  private address: { host: string; port: number } | undefined;
  readonly stats: GatewayStats = { sessions: 0, accepted: 0, refused: 0, held: 0, legacy: 0 };
  /** Customer sites' leaf nodes (leaf-gateway.ts), when `leaf_listen` is set. */
  private leaf: LeafGateway | undefined;
  private telemetry: GatewayTelemetry = NO_TELEMETRY;
  private readonly sessionFacts = new WeakMap<ClientSession, SessionFacts>();
  /** Each session's client socket, to admit its certificate again when the trust behind it changes. */
  private readonly sessionSockets = new WeakMap<ClientSession, tls.TLSSocket>();
  /** The server certificate served to new connections; reloaded when its files change. */
  private tlsContext: tls.SecureContext;
  private readonly tlsFiles: string[];
  private tlsGeneration = 0;
  /** This gateway's own watcher: unwatching a file without it would stop every gateway's in the process. */
  private readonly onTlsFileChange = (): void => void this.reloadTls();

  private constructor(parts: { config: GatewayConfig; log: Logger; cp: ControlPlane; directory: TenantDirectory; tlsContext: tls.SecureContext; control: NatsConnection; upstreamCa: string | undefined; auditConnection: NatsConnection; stores: TenantStores; platformStreams: PlatformStreams }) {
    this.config = parts.config;
    this.stores = parts.stores;
    this.platformStreams = parts.platformStreams;
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
    this.reachability = new UpstreamReachability(this.servers, { probeIntervalMs: 250, probeTimeoutMs: 1000, onChange: (up) => this.reachabilityChanged(up) });
    this.relief = parts.config.memory_relief_ms > 0 ? new MemoryRelief({ minPeak: 100, leftFraction: 0.25, quietMs: parts.config.memory_relief_ms, log: parts.log }) : undefined;
    this.rates = new TenantRates({ dataDir: parts.config.data_dir, planOf: (slug) => this.directory.get(slug)?.record.plan, log: parts.log, pollMs: Math.max(1000, parts.config.registry_poll_ms), fairShareBusy: parts.config.fair_share_busy });
    this.facts = factsOf(parts.control);
    const { host, port } = parseListen(parts.config.listen);
    this.tlsContext = parts.tlsContext;
    const layout = new DataLayout(parts.config.data_dir);
    this.tlsFiles = [layout.gatewayChain, layout.gatewayKey];
    this.listener = new GatewayListener({
      host,
      port,
      tlsFirst: parts.config.tls_first,
      tlsFirstDelayMs: parts.config.tls_first_delay_ms,
      handshakeTimeoutMs: parts.config.handshake_timeout_ms,
      maxConcurrentHandshakes: parts.config.handshake_concurrency,
      secureContext: () => this.tlsContext,
      info: (client) => `INFO ${JSON.stringify(this.info(client))}\r\n`,
      onSecureClient: (socket, meta) =>
        void this.admit(socket, meta).catch((err: unknown) => {
          // Admission failing unexpectedly costs this client its connection, nothing more.
          this.log.error({ event: "admission_failed", code: "internal_error", error: errorMessage(err), remote: `${meta.remoteAddress}:${meta.remotePort}` }, "admitting a client failed");
          socket.destroy();
        }),
      onRefused: (meta, code, reason) => {
        // One line per refused connection would be hundreds a second while NATS is away: counted, and summed up when it is back.
        if (code === "nats_unavailable") {
          this.stats.refused++;
          this.refusedWhileUnreachable++;
          this.telemetry.connection(false, { code });
          this.log.debug({ event: "connection_refused", code, reason, remote: `${meta.remoteAddress}:${meta.remotePort}` }, "client refused");
        } else if (meta.probe) {
          // A load balancer's TCP health check (connect, close, nothing said): counted, not a warning.
          this.telemetry.probe();
          this.log.debug({ event: "connection_refused", code, probe: true, reason, remote: `${meta.remoteAddress}:${meta.remotePort}` }, "connection closed without a word (a health check)");
        } else this.audit(false, { code, reason, remote: `${meta.remoteAddress}:${meta.remotePort}` });
      },
      mayAccept: () => {
        const up = this.reachability.current();
        return typeof up === "boolean" ? acceptWhen(up) : up.then(acceptWhen);
      },
    });
    this.directory.onChange((event) => {
      this.log.info({ event: "tenant_changed", tenant: event.slug, change: event.kind, status: event.status }, "tenant registry change applied");
      if (event.kind === "removed") this.rates.tenantRemoved(event.slug);
      else this.rates.tenantChanged(event.slug);
      if (event.kind === "removed" || event.status === "suspended") this.closeTenantSessions(event.slug, event.kind === "removed" ? "deleted" : "suspended");
      else if (event.status === "active") this.releaseHeld(event.slug);
      if (event.revoked || event.overlapEnded) this.readmit(event.slug);
    });
    // Platform identities: a platform certificate revoked, or the platform CA's overlap over.
    this.directory.onPlatformChange(() => this.readmit(undefined));
    for (const file of this.tlsFiles) watchFile(file, { interval: TLS_RELOAD_POLL_MS }, this.onTlsFileChange);
  }

  /**
   * A certificate revoked or a CA's overlap ended: the sessions of that tenant (undefined: the
   * platform's) whose certificate is no longer admitted end now, with the code that refuses it.
   * NATS cuts a revoked certificate's sessions too (its user is revoked in the account); this is
   * every replica's own check, and the only one for sessions opened before a CA rotation.
   */
  private readmit(slug: string | undefined): void {
    for (const s of this.sessions) {
      const socket = this.sessionSockets.get(s);
      if (s.slug !== slug || !socket) continue;
      try {
        this.resolveIdentity(socket);
      } catch (err) {
        if (!(err instanceof IdentityError)) continue;
        this.log.info({ event: "session_readmitted", session: s.id, tenant: slug, code: err.code, reason: err.message }, "the session's certificate is no longer admitted; ending it");
        s.close(err.code, AUTHORIZATION_VIOLATION);
      }
    }
  }

  /**
   * The gateway's server certificate re-issued (`pki gateway-cert`, a platform CA rotation, a
   * renewed Kubernetes secret): new connections get it at once; a broken pair keeps the old one.
   */
  private async reloadTls(): Promise<void> {
    // The key and the chain change one after the other; reloads run concurrently and only the
    // latest one started is applied, so an earlier, slower read never brings back an older pair.
    const generation = ++this.tlsGeneration;
    try {
      const { context } = await loadGatewayTls(new DataLayout(this.config.data_dir));
      if (generation !== this.tlsGeneration) return;
      this.tlsContext = context;
      this.log.info({ event: "tls_reloaded" }, "the gateway's server certificate was reloaded");
    } catch (err) {
      if (generation !== this.tlsGeneration) return;
      this.log.error({ event: "tls_reload_failed", error: errorMessage(err) }, "the gateway's server certificate could not be reloaded; the previous one is still served");
    }
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
      directory = await TenantDirectory.open(cp.store, tlsMaterial.root, [tlsMaterial.platformCa], log, { reconcileMs: config.registry_reconcile_ms });
      const stores = await templateStores(config.data_dir);
      const platformStreams = await loadPlatformStreams(config.data_dir);
      const auditStream = await ensureAuditStream(control, { maxAgeSeconds: parseDurationSeconds(config.audit_max_age) ?? 30 * 86_400 });
      log.info({ event: "audit_stream", status: auditStream, max_age: config.audit_max_age }, "audit stream ready");
      const gw = new Gateway({ config, log, cp, directory, tlsContext: tlsMaterial.context, control, upstreamCa, auditConnection: control, stores, platformStreams });
      gw.watchControl();
      gw.address = await gw.listener.listen();
      const allocator = memoryAllocator();
      // Before "listening": whoever waits for that line has seen this one.
      if (allocator === "system") {
        log.info({ event: "allocator_hint", allocator }, "glibc's malloc keeps the TLS buffers of a crowd of clients after it leaves (RSS stays 60-80 MB above idle); preload jemalloc to give them back: LD_PRELOAD=<path of libjemalloc.so.2> (the image does)");
      }
      if (config.leaf_listen) gw.leaf = await gw.startLeaf(tlsMaterial.context);
      log.info(
        { event: "listening", host: gw.address.host, port: gw.address.port, nats: config.nats, store: cp.store.location, tenants: directory.size, data_dir_part: cp.canSignAccounts ? "full" : "data-plane", runtime: RUNTIME, allocator },
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

  // What operating the gateway reads (admin/: metrics, the admin API, the console), and the one thing it changes: a session cut.

  /** Plugs in the observer of connection outcomes (metrics); one at a time. */
  observe(telemetry: GatewayTelemetry): void {
    this.telemetry = telemetry;
  }

  /** The control plane the gateway runs on: the tenant store and its NATS connections. */
  get controlPlane(): ControlPlane {
    return this.cp;
  }

  /** The live registry admission reads: tenants, their CAs, revocations. */
  get registry(): TenantDirectory {
    return this.directory;
  }

  /** The live sessions (edge and platform), optionally of one tenant only. */
  sessionList(filter: { tenant?: string } = {}): SessionSummary[] {
    const out: SessionSummary[] = [];
    for (const s of this.sessions) {
      const facts = this.sessionFacts.get(s);
      if (!facts || (filter.tenant !== undefined && facts.tenant !== filter.tenant)) continue;
      out.push({ id: s.id, ...facts, counters: { ...s.counters }, pid: process.pid });
    }
    return out;
  }

  /** Ends one session (no -ERR: a stock client reconnects at its own pace); its summary, or undefined when no such session is here. */
  disconnect(id: string, reason: string): SessionSummary | undefined {
    for (const s of this.sessions) {
      if (s.id !== id) continue;
      const facts = this.sessionFacts.get(s);
      const summary = facts ? { id, ...facts, counters: { ...s.counters }, pid: process.pid } : undefined;
      s.close(reason);
      return summary;
    }
    return undefined;
  }

  /**
   * Ready to take clients: listening and not in lame duck, some NATS server answering, the
   * registry loaded, and the PLATFORM account in NATS (the gateway's own user of it answers a
   * round trip).
   */
  async readiness(timeoutMs = 1000): Promise<GatewayReadiness> {
    const within = <T>(p: Promise<T>): Promise<T | "timeout"> => Promise.race([p, new Promise<"timeout">((r) => setTimeout(() => r("timeout"), timeoutMs).unref())]);
    const reachable = await within(Promise.resolve(this.reachability.current()));
    const roundTrip = await within(this.control.flush().then(() => "ok" as const, (err: unknown) => errorMessage(err)));
    const checks: GatewayReadiness["checks"] = {
      listener: this.lameDuck ? { ok: false, detail: "lame duck: draining" } : this.address ? { ok: true, detail: `${this.address.host}:${this.address.port}` } : { ok: false, detail: "not listening" },
      nats: reachable === true ? { ok: true } : { ok: false, detail: "no NATS server answers" },
      registry: { ok: true, detail: `${this.directory.size} tenants` },
      platform_account: roundTrip === "ok" ? { ok: true } : { ok: false, detail: roundTrip === "timeout" ? `no answer from NATS within ${timeoutMs} ms on the PLATFORM account's connection` : roundTrip },
    };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
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
    this.telemetry.connection(accepted, fields);
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
      const readableStreams = this.platformStreams.readableBy(identity.name);
      return {
        slug: undefined,
        fields: { platform: identity.name, cn: identity.cn },
        maxPayload,
        user: () => this.directory.users.get(`${identity.fingerprint}:${signer.signingKey.getPublicKey()}`, PLATFORM_CACHE_KEY, () => mintPlatformUser(identity, signer, readableStreams)),
        rewriter: (events) => new PlatformRewriter({ session: sessionId, maxPayload, isTenant: (slug) => this.directory.get(slug) !== undefined, audit, events, stores: this.stores, readableStreams }),
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
    if (refusal?.code === "tenant_suspended") return this.suspendedClient(socket, connect, refusal, remote);
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
      const upstream = await this.upstreamFor(socket, plan.slug, resolved.identity.fingerprint, minted, clientOptions);
      if (this.lameDuck || socket.destroyed) {
        upstream.socket.destroy();
        socket.destroy();
        return;
      }
      if (clientOptions.verbose) socket.write("+OK\r\n");
      const session = new ClientSession({
        id: sessionId,
        slug: plan.slug,
        client: socket,
        upstream: upstream.socket,
        log,
        rewriter: plan.rewriter,
        // An INFO update right after the first PONG, as nats-server 2.12+ sends one (nats.go waits
        // for it from a server of that version): it carries the session's own payload limit (its
        // tenant's plan), which an INFO-first client could not be told before TLS.
        infoUpdate: { ...this.info(meta), max_payload: plan.maxPayload },
        slowConsumerMs: this.config.slow_consumer_ms,
        slowConsumerDropMs: this.config.slow_consumer_drop_ms,
        ...(resolved.kind === "edge" ? { rate: this.rates.bucket(resolved.identity.tenant) } : {}),
        turns: this.rates,
        clientLeftover: connect.rest,
        upstreamLeftover: upstream.leftover,
        lameDuckInfo: () => ({ ...this.info({ id: meta.id, remoteAddress: meta.remoteAddress }), ldm: true }),
        onClose: (s, reason) => {
          this.sessions.delete(s);
          this.stats.sessions = this.sessions.size;
          log.info({ event: "session_closed", reason, ...s.counters }, "session closed");
          const facts = this.sessionFacts.get(s);
          if (facts) this.telemetry.sessionClosed({ id: s.id, ...facts, counters: s.counters, pid: process.pid }, reason);
          // NATS gone under this session: is any server still there? (One probe for many sessions.)
          if (reason === UPSTREAM_CLOSED) void this.reachability.check();
          this.relief?.closed(this.sessions.size);
        },
      });
      this.sessions.add(session);
      this.sessionSockets.set(session, socket);
      this.stats.sessions = this.sessions.size;
      this.relief?.opened(this.sessions.size);
      this.sessionFacts.set(session, sessionFactsOf(resolved, remote, upstream.server.url, meta.tlsFirst));
      const legacy = resolved.kind === "edge" && resolved.legacy === true;
      this.audit(true, { session: sessionId, ...plan.fields, remote, nats: upstream.server.url, tls_first: meta.tlsFirst, handshake_ms: Date.now() - meta.acceptedAt, ...(legacy ? { legacy } : {}) });
      if (legacy) {
        this.stats.legacy++;
        log.warn({ event: "legacy_certificate", code: "legacy_certificate" }, `pre-tenant certificate admitted into tenant "${plan.slug}"; re-issue it from the tenant's CA`);
      }
      session.start();
    } catch (err) {
      if (err instanceof UpstreamRefused) {
        this.audit(false, { code: "upstream_refused", reason: err.message, ...plan.fields, remote });
        if (!isAuthorizationRefusal(err.serverError)) return this.reject(socket, err.serverError);
        // Refused as a user twice in a row, a stock client gives up for good: the second time it is
        // closed without a word and comes back at its reconnect pace.
        if (this.refusedCertificates.recent(resolved.identity.fingerprint)) return dismiss(socket);
        this.refusedCertificates.remember(resolved.identity.fingerprint);
        return this.reject(socket, err.serverError);
      }
      this.audit(false, { code: err instanceof CodedError ? err.code : "internal_error", reason: errorMessage(err), ...plan.fields, remote });
      // No -ERR: nats.go (and the C and Python clients) take one they do not know as final.
      return dismiss(socket);
    }
  }

  /**
   * The session's upstream connection. When no NATS server answers, the client — through TLS, its
   * CONNECT read — waits for its PONG while the gateway waits for NATS (up to NATS_OUTAGE_HOLD_MS
   * or until the client leaves): it gets its session the moment NATS is back. When NATS refuses a
   * user of a tenant resumed a moment ago (the registry says active before the account reaches
   * NATS) or a certificate refused a moment ago, it is asked again shortly rather than refused.
   */
  private async upstreamFor(socket: tls.TLSSocket, slug: string | undefined, fingerprint: string, user: { jwt: string; user: MintedUser["user"] }, client: ClientConnectOptions): Promise<OpenedUpstream> {
    const until = Date.now() + NATS_OUTAGE_HOLD_MS;
    let authRetries = 0;
    for (;;) {
      try {
        return await openUpstream(this.servers, this.nextUpstream++, user, client, { timeoutMs: this.config.handshake_timeout_ms, ...(this.upstreamCa ? { ca: this.upstreamCa } : {}) });
      } catch (err) {
        if (socket.destroyed || this.lameDuck || Date.now() >= until) throw err;
        if (err instanceof CodedError && err.code === "upstream_unavailable") {
          this.reachability.unreachable();
          await whileOpen(socket, this.reachability.whenReachable(), until - Date.now());
        } else if (err instanceof UpstreamRefused && isAuthorizationRefusal(err.serverError) && authRetries < AUTH_RETRIES && (this.refusedCertificates.recent(fingerprint) || this.resumedLately(slug))) {
          await whileOpen(socket, new Promise((r) => setTimeout(r, AUTH_RETRY_MS * 2 ** authRetries++)), until - Date.now());
        } else throw err;
      }
    }
  }

  /**
   * A client of a suspended tenant: held, not refused (see HeldSession — stock clients refused as a
   * user twice in a row give up for good, and every gateway replica would have to agree on which
   * refusal was a client's first). Resuming the tenant releases it into a real session.
   */
  private suspendedClient(socket: tls.TLSSocket, connect: Awaited<ReturnType<typeof readConnect>>, refusal: { code: string; reason: string; cn?: string }, remote: string): void {
    let slug: string | undefined;
    try {
      const name = refusal.cn ? parseCommonName(refusal.cn) : undefined;
      slug = name?.kind === "edge" ? name.tenant : undefined;
    } catch {
      slug = undefined;
    }
    // Resumed (or deleted) while its CONNECT was awaited: closed without a word, it reconnects and is admitted anew.
    if (!slug || this.lameDuck || this.directory.get(slug)?.record.status !== "suspended") {
      this.audit(false, { ...refusal, remote });
      return slug ? dismiss(socket) : this.reject(socket, AUTHORIZATION_VIOLATION);
    }
    const log = this.log.child({ tenant: slug, cn: refusal.cn, remote });
    const held = new HeldSession({
      slug,
      client: socket,
      clientLeftover: connect.rest,
      verbose: connect.connect.verbose === true,
      maxPayload: this.effectiveMaxPayload(),
      log,
      onClose: (h, reason) => {
        this.held.delete(h);
        this.stats.held = this.held.size;
        log.info({ event: "held_closed", reason, held_ms: Date.now() - h.heldAt, refused_publishes: h.refusedPublishes }, "held connection closed");
      },
    });
    this.held.add(held);
    this.stats.held = this.held.size;
    this.watchHeld();
    // Refused a session all the same (the log and the counters say so), and held.
    this.audit(false, { ...refusal, remote, held: true });
    if (connect.connect.verbose === true) socket.write("+OK\r\n");
    held.start();
  }

  private reject(socket: tls.TLSSocket, text: string): void {
    socket.end(errFrame(text));
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  /**
   * A tenant suspended or deleted: its sessions end. Suspended, in nats-server's own words for a
   * revoked user (which nats.js does not count as an authorization refusal, and nats.go not as the
   * same one): the client reconnects and is held. Deleted, with `Authorization Violation`, held
   * connections included: that is final.
   */
  private closeTenantSessions(slug: string, why: "suspended" | "deleted"): void {
    const errText = why === "deleted" ? AUTHORIZATION_VIOLATION : USER_REVOKED;
    for (const s of this.sessions) if (s.slug === slug) s.close(`tenant ${why}`, errText);
    if (why === "deleted") for (const h of this.held) if (h.slug === slug) h.close("tenant deleted", AUTHORIZATION_VIOLATION);
  }

  /**
   * While connections are held, their tenants' status is also checked every HELD_CHECK_MS: a
   * registry change this gateway missed must not keep a resumed tenant's sites away.
   */
  private watchHeld(): void {
    if (this.heldCheck) return;
    this.heldCheck = setInterval(() => {
      for (const slug of new Set([...this.held].map((h) => h.slug))) {
        // Not the watch's word alone: a resume it missed (a NATS fault under the KV store) must not
        // keep a tenant's sites away; the refresh this may start reports back through onChange.
        void this.directory.recheck(slug);
        const status = this.directory.get(slug)?.record.status;
        if (status === undefined) this.closeTenantSessions(slug, "deleted");
        else if (status !== "suspended") this.releaseHeld(slug);
      }
      if (this.held.size === 0) {
        clearInterval(this.heldCheck);
        this.heldCheck = undefined;
      }
    }, HELD_CHECK_MS);
    this.heldCheck.unref();
  }

  /** A tenant active again: its held connections are released, to reconnect into real sessions. */
  private releaseHeld(slug: string): void {
    this.resumedAt.set(slug, Date.now());
    const released = [...this.held].filter((h) => h.slug === slug);
    if (released.length === 0) return;
    this.log.info({ event: "held_released", tenant: slug, connections: released.length }, "tenant active again: releasing its held connections");
    for (const h of released) h.release();
  }

  private resumedLately(slug: string | undefined): boolean {
    const at = slug === undefined ? undefined : this.resumedAt.get(slug);
    if (at === undefined) return false;
    if (Date.now() - at < RESUME_WINDOW_MS) return true;
    this.resumedAt.delete(slug!);
    return false;
  }

  /**
   * Closes every session and held connection still open at `from`, one at a time, evenly spaced so
   * that the last goes at `until` (all at once when there is no time between them). No -ERR, as
   * nats-server closes at shutdown: Go, C and Python clients take an -ERR they do not know as final
   * and would not reconnect.
   */
  private async closeSpread(from: number, until: number): Promise<void> {
    await this.whenEmptyOr(from);
    const left: Array<ClientSession | HeldSession> = [...this.sessions, ...this.held];
    // Random order, as nats-server's: no tenant or client is always the first to go.
    for (let i = left.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [left[i], left[j]] = [left[j]!, left[i]!];
    }
    const start = Date.now();
    const span = Math.max(0, until - start);
    let next = 0;
    while (next < left.length) {
      // Everything due by now (Node's timers are coarser than 1 ms: several may be due at once).
      const due = span === 0 ? left.length : Math.min(left.length, Math.floor(((Date.now() - start) * left.length) / span));
      for (; next < due; next++) left[next]!.close("gateway shutdown");
      if (next >= left.length || (this.sessions.size === 0 && this.held.size === 0)) break;
      const nextAt = start + Math.ceil(((next + 1) * span) / left.length);
      await this.whenEmptyOr(nextAt);
    }
  }

  /** Resolves at `at`, or earlier once no session or held connection is left. */
  private whenEmptyOr(at: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if ((this.sessions.size === 0 && this.held.size === 0) || Date.now() >= at) {
          clearInterval(poll);
          resolve();
        }
      };
      // Sessions leaving by themselves are noticed within 50 ms; the closes themselves are timed precisely.
      const poll = setInterval(check, Math.max(1, Math.min(50, at - Date.now())));
      check();
    });
  }

  private reachabilityChanged(up: boolean): void {
    if (up) {
      this.log.info({ event: "nats_reachable", refused_while_unreachable: this.refusedWhileUnreachable }, "a NATS server answers again: accepting clients");
      this.refusedWhileUnreachable = 0;
    } else this.log.warn({ event: "nats_unreachable", nats: this.config.nats }, "no NATS server answers: new clients are refused before TLS until one does");
  }

  /** One closing step of `shutdown`, given SHUTDOWN_STEP_MS at most; a failure or timeout is logged and the shutdown goes on. */
  private async boundedStep(step: string, run: () => Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), SHUTDOWN_STEP_MS)));
    try {
      const result = await Promise.race([run().then(() => "done" as const), timedOut]);
      if (result === "timeout") this.log.warn({ event: "shutdown_step_timeout", step, after_ms: SHUTDOWN_STEP_MS }, "a closing step did not finish in time; going on");
    } catch (err) {
      this.log.warn({ event: "shutdown_step_failed", step, error: errorMessage(err) }, "a closing step failed; going on");
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Lame duck: stop accepting, tell every client (INFO `ldm: true`) so it reconnects elsewhere, and
   * after a grace period close the clients that stayed one by one, spread evenly over the rest of
   * `drainMs` (as nats-server does over its lame_duck_duration), the last at its end: stock clients
   * ignore `ldm` when they know no other server, and closed all at once they would all land on the
   * other replicas in the same second.
   */
  async shutdown(drainMs = this.config.drain_timeout_ms): Promise<void> {
    if (this.lameDuck) return;
    this.lameDuck = true;
    const graceMs = Math.min(this.config.lame_duck_grace_ms, Math.floor(drainMs / 4));
    this.log.info({ event: "lame_duck", sessions: this.sessions.size, held: this.held.size, drain_ms: drainMs, grace_ms: graceMs }, "stopping: lame duck mode");
    await this.listener.close();
    await this.leaf?.shutdown();
    for (const s of this.sessions) s.lameDuck({ ...this.info({ id: 0, remoteAddress: "" }), ldm: true });
    await this.closeSpread(Date.now() + graceMs, Date.now() + drainMs);
    this.reachability.close();
    this.rates.close();
    this.relief?.close();
    if (this.heldCheck) clearInterval(this.heldCheck);
    for (const file of this.tlsFiles) unwatchFile(file, this.onTlsFileChange);
    this.directory.close();
    // The control connections are closed last and never waited on for long: a NATS that does not
    // answer must not keep a stopping gateway alive (audit records still buffered are then lost; logged).
    await this.boundedStep("audit_flush", () => this.auditConnection.drain());
    await this.boundedStep("control_close", () => this.cp.close());
    this.log.info({ event: "stopped" }, "gateway stopped");
  }
}

/** The buckets and stores every tenant has, from the stream templates `sync` provisions them with. */
async function templateStores(dataDir: string): Promise<TenantStores> {
  const { dir } = await resolveTemplatesDir(dataDir);
  return storesOf(await loadStreamTemplates(dir));
}

/** Who a session is, for the operator's view of it. */
/** Built as one literal: kept for the session's life, its fields then sit inside the object (no separate property store). */
function sessionFactsOf(resolved: Admitted<TenantEntry>, remote: string, nats: string, tlsFirst: boolean): SessionFacts {
  const started_at = new Date().toISOString();
  if (resolved.kind === "platform") return { kind: "platform", platform: resolved.identity.name, cn: resolved.identity.cn, remote, nats, tls_first: tlsFirst, started_at };
  const { identity } = resolved;
  return { kind: "edge", tenant: identity.tenant, component: identity.component, partition: identity.partition, cn: identity.cn, remote, nats, tls_first: tlsFirst, started_at };
}

/** Closes a client's connection without an -ERR: to a stock client, a failed attempt to retry at its own pace. */
function dismiss(socket: tls.TLSSocket): void {
  socket.end();
  setTimeout(() => socket.destroy(), 1000).unref();
}

function acceptWhen(natsReachable: boolean): AcceptVerdict {
  return natsReachable ? { accept: true } : { accept: false, code: "nats_unavailable", reason: "no NATS server answers" };
}

/** Resolves when `wait` does, when the client's socket closes, or after `ms`, whichever comes first. */
function whileOpen(socket: tls.TLSSocket, wait: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      socket.off("close", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    socket.once("close", done);
    void wait.then(done, done);
  });
}

function factsOf(nc: NatsConnection): UpstreamFacts {
  const info = nc.info;
  if (!info) throw new CodedError("upstream_unavailable", "no INFO from NATS on the control connection");
  return { version: info.version, max_payload: info.max_payload, headers: info.headers ?? true, jetstream: info.jetstream ?? false, proto: info.proto ?? 1 };
}

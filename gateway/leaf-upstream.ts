/**
 * The gateway's leafnode connection into a tenant's account: the soliciting side of nats-server's
 * leafnode handshake (server/leafnode.go: createLeafNode, processLeafnodeInfo, sendLeafConnect on
 * v2.9.10 and v2.14), authenticated like a user — the user JWT minted for the site's certificate
 * and the server's nonce signed with its key. nats-server answers the CONNECT with an INFO that
 * has `connect_info: true` (sendPermsAndAccountInfo) and then its interest (`LS+`), or with -ERR.
 *
 * No compression: the CONNECT is sent without first answering the server's INFO, which is how a
 * server that does not negotiate compression (before 2.10) connects, so the link stays plain text.
 *
 * Where nats-server takes leafnode connections: `leaf_nats` in the configuration, or asked of the
 * servers themselves (their VARZ, through the system account) and asked again when they move.
 */
import net from "node:net";
import tls from "node:tls";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import { parseServerUrl, serverOrder, UpstreamRefused, type UpstreamCredentials, type UpstreamServer } from "./upstream.ts";

/** The hub's leafnode INFO (the parts the gateway uses). */
export interface HubLeafInfo {
  server_id: string;
  server_name?: string;
  version: string;
  max_payload: number;
  headers?: boolean;
  jetstream?: boolean;
  nonce?: string;
  tls_required?: boolean;
  domain?: string;
}

/** What the gateway tells the hub about the site, taken from the site's own CONNECT. */
export interface SiteConnectFields {
  version?: string;
  name?: string;
  cluster?: string;
  headers: boolean;
  jetstream?: boolean;
  domain?: string;
  remote_account?: string;
  isolate?: boolean;
}

/** The parts of a site's leafnode CONNECT the gateway carries upstream; credentials and permissions never. */
export function siteConnectFields(raw: Record<string, unknown>): SiteConnectFields {
  // One token of printable ASCII: it goes into a JSON CONNECT and into nats-server's logs.
  const text = (v: unknown): string | undefined => (typeof v === "string" && /^[\x21-\x7e]{1,256}$/.test(v) ? v : undefined);
  const fields: SiteConnectFields = { headers: raw.headers === true };
  const version = text(raw.version);
  const name = text(raw.name);
  const cluster = text(raw.cluster);
  const domain = text(raw.domain);
  const remoteAccount = text(raw.remote_account);
  if (version) fields.version = version;
  if (name) fields.name = name;
  if (cluster) fields.cluster = cluster;
  if (domain) fields.domain = domain;
  if (remoteAccount) fields.remote_account = remoteAccount;
  if (typeof raw.jetstream === "boolean") fields.jetstream = raw.jetstream;
  if (typeof raw.isolate === "boolean") fields.isolate = raw.isolate;
  return fields;
}

export interface OpenedHubLeaf {
  socket: net.Socket;
  server: UpstreamServer;
  info: HubLeafInfo;
  /** Bytes read past the INFO that answered the CONNECT: the hub's interest, to relay. */
  leftover: Buffer;
}

export interface HubLeafOptions {
  timeoutMs: number;
  /** Trust for TLS to the hub (PEM). */
  ca?: string | Buffer;
}

const MAX_HANDSHAKE_LINE = 64 * 1024;

/** Reads whole lines; `onLine` returns "more", or "done" to stop with the bytes from that line's end (or from its start: "done-before"). */
function readHandshake(socket: net.Socket, timeoutMs: number, what: string, onLine: (line: string) => "more" | "done" | "done-before"): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (err?: Error, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(rest ?? Buffer.alloc(0));
    };
    const timer = setTimeout(() => finish(new CodedError("upstream_timeout", `${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const onError = (err: Error): void => finish(new CodedError("upstream_unreachable", `${what}: ${err.message}`, { cause: err }));
    const onClose = (): void => finish(new CodedError("upstream_closed", `${what}: the server closed the connection`));
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      for (;;) {
        const nl = buffered.indexOf(0x0a);
        if (nl < 0) {
          if (buffered.length > MAX_HANDSHAKE_LINE) finish(new CodedError("upstream_protocol", `${what}: handshake line too long`));
          return;
        }
        let verdict: "more" | "done" | "done-before";
        try {
          verdict = onLine(buffered.toString("latin1", 0, nl).replace(/\r$/, ""));
        } catch (err) {
          return finish(err as Error);
        }
        if (verdict === "done-before") return finish(undefined, buffered);
        buffered = buffered.subarray(nl + 1);
        if (verdict === "done") return finish(undefined, buffered);
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.resume();
  });
}

function connectSocket(server: UpstreamServer, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port, noDelay: true });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new CodedError("upstream_unreachable", `NATS leafnode ${server.url}: connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(new CodedError("upstream_unreachable", `NATS leafnode ${server.url}: ${err.message}`, { cause: err }));
    });
  });
}

function upgradeTls(socket: net.Socket, server: UpstreamServer, ca: string | Buffer | undefined, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, servername: net.isIP(server.host) ? undefined : server.host, ...(ca ? { ca } : {}) });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new CodedError("upstream_tls", `NATS leafnode ${server.url}: TLS handshake timed out`));
    }, timeoutMs);
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      secure.removeAllListeners("error");
      resolve(secure);
    });
    secure.once("error", (err) => {
      clearTimeout(timer);
      reject(new CodedError("upstream_tls", `NATS leafnode ${server.url}: TLS failed: ${err.message}`, { cause: err }));
    });
  });
}

async function handshake(server: UpstreamServer, creds: UpstreamCredentials, site: SiteConnectFields, opts: HubLeafOptions): Promise<OpenedHubLeaf> {
  const what = `NATS leafnode ${server.url}`;
  let socket: net.Socket = await connectSocket(server, opts.timeoutMs);
  try {
    let info: HubLeafInfo | undefined;
    await readHandshake(socket, opts.timeoutMs, what, (line) => {
      if (!/^INFO\s/i.test(line)) throw new CodedError("upstream_protocol", `${what} did not start with INFO (is it the leafnode port?)`);
      info = JSON.parse(line.slice(5)) as HubLeafInfo;
      return "done";
    });
    const secure = server.tls || info!.tls_required === true;
    if (secure) socket = await upgradeTls(socket, server, opts.ca, opts.timeoutMs);
    const connect = {
      ...site,
      version: site.version ?? info!.version,
      tls: secure,
      hub: false,
      jwt: creds.jwt,
      sig: info!.nonce ? Buffer.from(creds.user.sign(Buffer.from(info!.nonce, "latin1"))).toString("base64url") : undefined,
    };
    socket.write(`CONNECT ${JSON.stringify(connect)}\r\n`);
    const leftover = await readHandshake(socket, opts.timeoutMs, `${what} handshake`, (line) => {
      if (/^INFO\s/i.test(line)) {
        let answer: { connect_info?: boolean };
        try {
          answer = JSON.parse(line.slice(5)) as { connect_info?: boolean };
        } catch {
          throw new CodedError("upstream_protocol", `${what} answered the CONNECT with an INFO that is not JSON`);
        }
        return answer.connect_info === true ? "done" : "more";
      }
      if (/^PING\s*$/i.test(line)) {
        socket.write("PONG\r\n");
        return "more";
      }
      if (/^\+OK\s*$/i.test(line)) return "more";
      const err = /^-ERR\s+'?(.*?)'?\s*$/i.exec(line);
      if (err) throw new UpstreamRefused(server.url, err[1]!);
      // A server that does not answer CONNECT with an INFO goes straight to its interest.
      if (/^(LS[+-]|LMSG|HMSG)\s/i.test(line)) return "done-before";
      throw new CodedError("upstream_protocol", `${what} answered the handshake with ${JSON.stringify(line.slice(0, 80))}`);
    });
    socket.setNoDelay(true);
    return { socket, server, info: info!, leftover };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** Tries each leafnode URL once, from `start`; a refusal is final (another server would say the same). */
export async function openHubLeaf(servers: readonly UpstreamServer[], start: number, creds: UpstreamCredentials, site: SiteConnectFields, opts: HubLeafOptions): Promise<OpenedHubLeaf> {
  const errors: string[] = [];
  for (const server of serverOrder(servers, start)) {
    try {
      const opened = await handshake(server, creds, site, opts);
      delete server.failedAt;
      return opened;
    } catch (err) {
      if (err instanceof UpstreamRefused) throw err;
      server.failedAt = Date.now();
      errors.push(errorMessage(err));
    }
  }
  throw new CodedError("upstream_unavailable", `no NATS leafnode listener reachable: ${errors.join("; ")}`);
}

/** What nats-server's VARZ says about its leafnode listener. */
interface VarzLeaf {
  host?: string;
  port?: number;
  tls_required?: boolean;
}

/**
 * Where the hub takes leafnode connections: the configured URLs, or the answer of every server to
 * `$SYS.REQ.SERVER.PING.VARZ` (a listener on 0.0.0.0 is reached at the host the gateway knows the
 * server by). Asked again after `stale()`, when a connection to the last answer failed.
 */
export class HubLeafEndpoints {
  private readonly configured: UpstreamServer[] | undefined;
  private readonly clientServers: readonly UpstreamServer[];
  private readonly system: (() => Promise<NatsConnection>) | undefined;
  private readonly log: Logger;
  private discovered: Promise<UpstreamServer[]> | undefined;

  constructor(opts: { configured?: readonly string[] | undefined; clientServers: readonly UpstreamServer[]; system?: () => Promise<NatsConnection>; log: Logger }) {
    this.configured = opts.configured && opts.configured.length > 0 ? opts.configured.map(parseServerUrl) : undefined;
    this.clientServers = opts.clientServers;
    this.system = opts.system;
    this.log = opts.log;
  }

  get discovers(): boolean {
    return this.configured === undefined;
  }

  servers(): Promise<UpstreamServer[]> {
    if (this.configured) return Promise.resolve(this.configured);
    if (!this.discovered) {
      const asked = this.discover();
      this.discovered = asked;
      asked.catch(() => {
        if (this.discovered === asked) this.discovered = undefined;
      });
    }
    return this.discovered;
  }

  /** The servers answered last may have moved (a restart on another port): ask again next time. */
  stale(): void {
    if (!this.configured) this.discovered = undefined;
  }

  private async discover(): Promise<UpstreamServer[]> {
    if (!this.system) throw new CodedError("leaf_nats_unknown", "leaf_nats is not configured and this data dir holds no system user to ask NATS where its leafnode listener is; set leaf_nats");
    const nc = await this.system();
    const found = new Map<string, UpstreamServer>();
    const defaultHost = this.clientServers[0]?.host ?? "127.0.0.1";
    // Every server answers; a pause after the last answer ends the wait (a cluster answers at once).
    const iterator = await nc.requestMany("$SYS.REQ.SERVER.PING.VARZ", "", { strategy: "stall", stall: 250, maxWait: 2000 });
    for await (const msg of iterator) {
      let leaf: VarzLeaf | undefined;
      try {
        leaf = (msg.json<{ data?: { leaf?: VarzLeaf } }>().data ?? {}).leaf;
      } catch {
        continue;
      }
      if (!leaf?.port) continue;
      const host = !leaf.host || leaf.host === "0.0.0.0" || leaf.host === "::" ? defaultHost : leaf.host;
      const url = `${leaf.tls_required ? "tls" : "nats"}://${host.includes(":") ? `[${host}]` : host}:${leaf.port}`;
      found.set(url, parseServerUrl(url));
    }
    if (found.size === 0) {
      throw new CodedError("hub_leafnodes_disabled", "NATS has no leafnode listener: add `leafnodes { listen: \"127.0.0.1:17422\" }` to nats-server.conf (`tenant-gateway init --force-config` writes it) or set leaf_nats");
    }
    const servers = [...found.values()];
    this.log.info({ event: "leaf_hub_discovered", leaf_nats: servers.map((s) => s.url) }, "NATS leafnode listener found");
    return servers;
  }
}

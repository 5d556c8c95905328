/**
 * One upstream connection per client session: the gateway speaks the NATS client handshake to
 * nats-server itself — read INFO, answer with CONNECT carrying the user JWT minted for the
 * identity and the signed server nonce plus the client's own options, then PING and wait for
 * PONG (or the server's -ERR). Servers are tried in turn, starting at a rotating index, so
 * sessions spread over a cluster and survive one server being down; a server that failed a
 * moment ago is tried last (a host that is down may take the whole connect timeout to say so).
 *
 * `UpstreamReachability` knows whether any server answers at all, so that the gateway can refuse
 * new clients before TLS while none does: a stock client then fails its attempt at once and
 * retries at its own reconnect pace, instead of waiting out its connection timeout.
 */
import net from "node:net";
import tls from "node:tls";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { NativeKeyPair } from "../accounts/native-keys.ts";

export interface UpstreamServer {
  host: string;
  port: number;
  tls: boolean;
  url: string;
  /** When a connection to it last failed (not refused); such a server is tried after the others for a while. */
  failedAt?: number;
}

/** How long a server that failed is tried after the others. */
const RECENT_FAILURE_MS = 5000;

export function parseServerUrl(url: string): UpstreamServer {
  const withScheme = /^[a-z]+:\/\//i.test(url) ? url : `nats://${url}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new CodedError("invalid_argument", `not a NATS server URL: ${url}`);
  }
  if (!["nats:", "tls:"].includes(u.protocol)) throw new CodedError("invalid_argument", `NATS URL ${url} must use nats:// or tls://`);
  return { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port ? Number(u.port) : 4222, tls: u.protocol === "tls:", url: `${u.protocol}//${u.host}` };
}

/** What nats-server said in its INFO (the parts the gateway uses). */
export interface UpstreamInfo {
  server_id: string;
  version: string;
  max_payload: number;
  headers?: boolean;
  jetstream?: boolean;
  nonce?: string;
  tls_required?: boolean;
  proto?: number;
  ldm?: boolean;
}

/** The client's CONNECT options the gateway carries upstream (identity fields are never taken from the client). */
export interface ClientConnectOptions {
  verbose?: boolean;
  pedantic?: boolean;
  echo?: boolean;
  headers?: boolean;
  no_responders?: boolean;
  name?: string;
  lang?: string;
  version?: string;
  protocol?: number;
}

export function pickConnectOptions(raw: Record<string, unknown>): ClientConnectOptions {
  const opts: ClientConnectOptions = {};
  for (const key of ["verbose", "pedantic", "echo", "headers", "no_responders"] as const) if (typeof raw[key] === "boolean") opts[key] = raw[key];
  for (const key of ["name", "lang", "version"] as const) if (typeof raw[key] === "string") opts[key] = (raw[key] as string).slice(0, 256);
  if (typeof raw.protocol === "number") opts.protocol = raw.protocol;
  return opts;
}

export interface UpstreamCredentials {
  jwt: string;
  user: NativeKeyPair;
}

export interface OpenedUpstream {
  socket: net.Socket;
  server: UpstreamServer;
  info: UpstreamInfo;
  /** Bytes read past the handshake's PONG: the start of the relayed stream. */
  leftover: Buffer;
}

export interface UpstreamOptions {
  timeoutMs?: number;
  /** Trust for tls:// upstreams (PEM). */
  ca?: string | Buffer;
}

export class UpstreamRefused extends CodedError<"upstream_refused"> {
  /** The server's -ERR text, to hand to the client as is. */
  readonly serverError: string;
  constructor(server: string, text: string) {
    super("upstream_refused", `NATS ${server} refused the session: ${text}`);
    this.serverError = text;
  }
}

const MAX_HANDSHAKE_LINE = 64 * 1024;

function readLines(socket: net.Socket, timeoutMs: number, onLine: (line: string) => "more" | "done", what: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => finish(new CodedError("upstream_timeout", `${what}: no answer within ${timeoutMs} ms`)), timeoutMs);
    const finish = (err?: Error, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(rest ?? Buffer.alloc(0));
    };
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
        const line = buffered.toString("latin1", 0, nl).replace(/\r$/, "");
        buffered = buffered.subarray(nl + 1);
        let verdict: "more" | "done";
        try {
          verdict = onLine(line);
        } catch (err) {
          finish(err as Error);
          return;
        }
        if (verdict === "done") {
          finish(undefined, buffered);
          return;
        }
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
      reject(new CodedError("upstream_unreachable", `NATS ${server.url}: connect timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(new CodedError("upstream_unreachable", `NATS ${server.url}: ${err.message}`, { cause: err }));
    });
  });
}

function upgradeTls(socket: net.Socket, server: UpstreamServer, opts: UpstreamOptions, timeoutMs: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ socket, servername: net.isIP(server.host) ? undefined : server.host, ...(opts.ca ? { ca: opts.ca } : {}) });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(new CodedError("upstream_tls", `NATS ${server.url}: TLS handshake timed out`));
    }, timeoutMs);
    secure.once("secureConnect", () => {
      clearTimeout(timer);
      secure.removeAllListeners("error");
      resolve(secure);
    });
    secure.once("error", (err) => {
      clearTimeout(timer);
      reject(new CodedError("upstream_tls", `NATS ${server.url}: TLS failed: ${err.message}`, { cause: err }));
    });
  });
}

async function handshake(server: UpstreamServer, creds: UpstreamCredentials, client: ClientConnectOptions, opts: UpstreamOptions): Promise<OpenedUpstream> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  let socket: net.Socket = await connectSocket(server, timeoutMs);
  try {
    let info: UpstreamInfo | undefined;
    await readLines(
      socket,
      timeoutMs,
      (line) => {
        if (!/^INFO\s/i.test(line)) throw new CodedError("upstream_protocol", `NATS ${server.url} did not start with INFO`);
        info = JSON.parse(line.slice(5)) as UpstreamInfo;
        return "done";
      },
      `NATS ${server.url}`,
    );
    if (server.tls || info!.tls_required) socket = await upgradeTls(socket, server, opts, timeoutMs);
    const connect = {
      ...client,
      verbose: client.verbose ?? false,
      pedantic: client.pedantic ?? false,
      protocol: 1,
      headers: client.headers ?? false,
      no_responders: (client.no_responders ?? false) && (client.headers ?? false),
      jwt: creds.jwt,
      sig: info!.nonce ? Buffer.from(creds.user.sign(Buffer.from(info!.nonce, "latin1"))).toString("base64url") : undefined,
      tls_required: server.tls || Boolean(info!.tls_required),
    };
    socket.write(`CONNECT ${JSON.stringify(connect)}\r\nPING\r\n`);
    const leftover = await readLines(
      socket,
      timeoutMs,
      (line) => {
        if (/^PONG$/i.test(line)) return "done";
        if (/^\+OK$/i.test(line) || /^PING$/i.test(line) || /^INFO\s/i.test(line)) return "more";
        const err = /^-ERR\s+'?(.*?)'?\s*$/i.exec(line);
        if (err) throw new UpstreamRefused(server.url, err[1]!);
        throw new CodedError("upstream_protocol", `NATS ${server.url} answered the handshake with ${JSON.stringify(line.slice(0, 80))}`);
      },
      `NATS ${server.url} handshake`,
    );
    socket.setNoDelay(true);
    return { socket, server, info: info!, leftover };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** The servers in the order to try them: round-robin from `start`, those that failed recently last. */
export function serverOrder(servers: readonly UpstreamServer[], start: number, now = Date.now()): UpstreamServer[] {
  const rotated = servers.map((_, i) => servers[(start + i) % servers.length]!);
  const recentlyFailed = (s: UpstreamServer): boolean => s.failedAt !== undefined && now - s.failedAt < RECENT_FAILURE_MS;
  return [...rotated.filter((s) => !recentlyFailed(s)), ...rotated.filter(recentlyFailed)];
}

/** Tries each server once, starting at `start`; an authorization refusal is final (no other server will say otherwise). */
export async function openUpstream(servers: readonly UpstreamServer[], start: number, creds: UpstreamCredentials, client: ClientConnectOptions, opts: UpstreamOptions = {}): Promise<OpenedUpstream> {
  const errors: string[] = [];
  for (const server of serverOrder(servers, start)) {
    try {
      const opened = await handshake(server, creds, client, opts);
      delete server.failedAt;
      return opened;
    } catch (err) {
      if (err instanceof UpstreamRefused) throw err;
      server.failedAt = Date.now();
      errors.push(errorMessage(err));
    }
  }
  throw new CodedError("upstream_unavailable", `no NATS server reachable: ${errors.join("; ")}`);
}

/** Texts of nats-server's -ERR that refuse a user (the ones stock clients count towards giving up). */
export function isAuthorizationRefusal(text: string): boolean {
  return /^(authorization violation|user authentication (revoked|expired)|account authentication expired)/i.test(text.trim());
}

/** Does this server answer a new connection with its INFO within `timeoutMs`? */
async function answers(server: UpstreamServer, timeoutMs: number): Promise<boolean> {
  let socket: net.Socket | undefined;
  try {
    socket = await connectSocket(server, timeoutMs);
    let sawInfo = false;
    await readLines(
      socket,
      timeoutMs,
      (line) => {
        sawInfo = /^INFO\s/i.test(line);
        return "done";
      },
      `NATS ${server.url} probe`,
    );
    return sawInfo;
  } catch {
    return false;
  } finally {
    socket?.destroy();
  }
}

export interface ReachabilityOptions {
  /** While no server answers, how often to ask again. */
  probeIntervalMs: number;
  /** How long one server gets to answer a probe with its INFO. */
  probeTimeoutMs: number;
  /** Called when the answer changes (not for every probe). */
  onChange: (reachable: boolean) => void;
}

/**
 * Whether any of the NATS servers answers. Assumed reachable until a session's upstream cannot be
 * opened on any server (`unreachable()`); from then on every server is probed (TCP connect, then
 * its INFO line) every `probeIntervalMs` until one answers. `check()` probes at once, for when
 * upstream connections closed under their sessions; callers that decide on the answer await a
 * probe already under way (a refused connect on a LAN takes a millisecond).
 */
export class UpstreamReachability {
  private readonly servers: readonly UpstreamServer[];
  private readonly opts: ReachabilityOptions;
  private up = true;
  private probe: Promise<boolean> | undefined;
  private probedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private waiters: Array<() => void> = [];
  private closed = false;

  constructor(servers: readonly UpstreamServer[], opts: ReachabilityOptions) {
    this.servers = servers;
    this.opts = opts;
  }

  get reachable(): boolean {
    return this.up;
  }

  /** The current answer, after the probe under way if there is one. */
  current(): boolean | Promise<boolean> {
    return this.probe ?? this.up;
  }

  /** Resolves when some server answers (at once if one does now). */
  whenReachable(): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** No server could be reached: probe until one answers. */
  unreachable(): void {
    this.set(false);
    this.schedule();
  }

  /** Probes now (one probe at a time; a probe finished within the last 100 ms is answer enough). */
  check(): Promise<boolean> {
    if (this.probe) return this.probe;
    if (Date.now() - this.probedAt < 100) return Promise.resolve(this.up);
    const probe = Promise.all(this.servers.map((s) => answers(s, this.opts.probeTimeoutMs))).then((results) => {
      this.probe = undefined;
      this.probedAt = Date.now();
      const up = results.some(Boolean);
      this.set(up);
      if (!up) this.schedule();
      return up;
    });
    this.probe = probe;
    return probe;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.set(true);
  }

  private schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.up && !this.closed) void this.check();
    }, this.opts.probeIntervalMs);
    this.timer.unref();
  }

  private set(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    this.opts.onChange(up);
    if (up) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    }
  }
}

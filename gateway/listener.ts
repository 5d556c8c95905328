/**
 * Accepting clients the way nats-server does: plain TCP, INFO with `tls_required`, then the TLS
 * upgrade on the same socket (what nats.js, nats.go and most clients do by default). Clients that
 * start TLS at once (`tls.handshakeFirst`) are recognised by their first byte (0x16, a TLS
 * handshake record) within a short delay, as nats-server's `handshake_first: auto` does.
 */
import net from "node:net";
import tls from "node:tls";
import { CodedError } from "../common/coded-error.ts";

export type TlsFirstMode = "auto" | "always" | "never";

export interface ListenerOptions {
  host: string;
  port: number;
  tlsFirst: TlsFirstMode;
  /** In auto mode, how long to wait for a TLS ClientHello before sending INFO. */
  tlsFirstDelayMs: number;
  handshakeTimeoutMs: number;
  /**
   * TLS handshakes in progress at once; further connections wait, unread, and their
   * `handshakeTimeoutMs` starts when their turn comes. In a reconnect storm every handshake would
   * otherwise share the CPU with all the others, all would finish late together, and many would
   * time out and be tried again from scratch.
   */
  maxConcurrentHandshakes?: number;
  secureContext: () => tls.SecureContext;
  /** The INFO line for a new client that starts with INFO (plain text, before TLS). */
  info: (client: { id: number; remoteAddress: string }) => string;
  /** A client whose TLS handshake completed (a TLS-first client has had no INFO yet: `meta.tlsFirst`). */
  onSecureClient: (socket: tls.TLSSocket, meta: ClientMeta) => void;
  /** A connection that never became a client (no TLS, handshake failure, timeout). */
  onRefused: (meta: ClientMeta, code: string, reason: string) => void;
  /**
   * Asked before a new connection gets anything (no INFO, no TLS): a refusal there closes the
   * connection at once, which a stock client takes as a failed attempt and retries at its own
   * reconnect pace. The answer may wait for a probe under way.
   */
  mayAccept?: () => AcceptVerdict | Promise<AcceptVerdict>;
}

/** Whether a new connection may start its handshake, and if not the code and reason it is refused with. */
export type AcceptVerdict = { accept: true } | { accept: false; code: string; reason: string };

export interface ClientMeta {
  id: number;
  remoteAddress: string;
  remotePort: number;
  tlsFirst: boolean;
  acceptedAt: number;
  /** Closed before sending a byte: a load balancer's TCP health check, counted rather than logged as a refusal. */
  probe?: boolean;
}

const TLS_HANDSHAKE_RECORD = 0x16;

/** How a connection's handshake ended: refused (reported once) or a secure client. */
interface HandshakeOutcome {
  refuse(code: string, reason: string): void;
  admitted(): void;
}

export class GatewayListener {
  private readonly server: net.Server;
  private readonly opts: ListenerOptions;
  private nextId = 1;
  private readonly pending = new Set<net.Socket>();
  private closing = false;
  private handshaking = 0;
  /** Connections waiting for a handshake slot, first come first served. */
  private readonly waiting: Array<{ socket: net.Socket; meta: ClientMeta }> = [];

  constructor(opts: ListenerOptions) {
    this.opts = opts;
    this.server = net.createServer({ pauseOnConnect: true, noDelay: true }, (socket) => this.accept(socket));
  }

  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(new CodedError("listen_failed", `cannot listen on ${this.opts.host}:${this.opts.port}: ${err.code ?? err.message}`, { cause: err }));
      this.server.once("error", onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off("error", onError);
        const addr = this.server.address() as net.AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  /**
   * Stops accepting: the port is closed when this resolves. Connections already accepted are left
   * to their sessions (net.Server's own close callback would wait for every one of them to end,
   * so a lame-duck shutdown would never get to tell them).
   */
  close(): Promise<void> {
    this.closing = true;
    for (const { socket } of this.waiting.splice(0)) socket.destroy();
    for (const socket of this.pending) socket.destroy();
    if (this.server.listening) this.server.close();
    return Promise.resolve();
  }

  private accept(socket: net.Socket): void {
    const meta: ClientMeta = { id: this.nextId++, remoteAddress: socket.remoteAddress ?? "?", remotePort: socket.remotePort ?? 0, tlsFirst: false, acceptedAt: Date.now() };
    socket.on("error", () => socket.destroy());
    const verdict = this.opts.mayAccept?.() ?? { accept: true as const };
    if (!(verdict instanceof Promise)) return this.decided(socket, meta, verdict);
    this.pending.add(socket);
    verdict.then(
      (v) => {
        this.pending.delete(socket);
        if (socket.destroyed || this.closing) return void socket.destroy();
        this.decided(socket, meta, v);
      },
      () => socket.destroy(),
    );
  }

  private decided(socket: net.Socket, meta: ClientMeta, verdict: AcceptVerdict): void {
    if (!verdict.accept) {
      // Closed before INFO: to the client, as if no server listened.
      socket.destroy();
      if (!this.closing) this.opts.onRefused(meta, verdict.code, verdict.reason);
      return;
    }
    const max = this.opts.maxConcurrentHandshakes ?? Infinity;
    if (this.handshaking < max) return this.startHandshake(socket, meta);
    const entry = { socket, meta };
    this.waiting.push(entry);
    socket.once("close", () => {
      const i = this.waiting.indexOf(entry);
      if (i < 0) return;
      this.waiting.splice(i, 1);
      meta.probe = socket.bytesRead === 0;
      if (!this.closing) this.opts.onRefused(meta, "client_closed", "the client closed the connection while waiting for its TLS handshake");
    });
  }

  /** A handshake slot came free: the connection that waited longest gets it. */
  private nextHandshake(): void {
    this.handshaking--;
    const max = this.opts.maxConcurrentHandshakes ?? Infinity;
    while (this.handshaking < max && this.waiting.length > 0) {
      const { socket, meta } = this.waiting.shift()!;
      if (!socket.destroyed) this.startHandshake(socket, meta);
    }
  }

  private startHandshake(socket: net.Socket, meta: ClientMeta): void {
    this.pending.add(socket);
    this.handshaking++;
    let decided = false;
    const deadline = setTimeout(() => {
      outcome.refuse("handshake_timeout", `no TLS handshake within ${this.opts.handshakeTimeoutMs} ms`);
      socket.destroy();
    }, this.opts.handshakeTimeoutMs);
    deadline.unref();
    // Whatever ends the handshake first decides how the connection is reported, once.
    const outcome: HandshakeOutcome = {
      refuse: (code, reason) => {
        if (decided) return;
        decided = true;
        clearTimeout(deadline);
        this.nextHandshake();
        if (!this.closing) this.opts.onRefused(meta, code, reason);
      },
      admitted: () => {
        if (decided) return;
        decided = true;
        clearTimeout(deadline);
        this.pending.delete(socket);
        this.nextHandshake();
      },
    };
    // A connection closed before TLS (a load balancer's health check, a port scan) is reported
    // as such, at once, not as a handshake timeout later.
    socket.once("close", () => {
      this.pending.delete(socket);
      meta.probe = socket.bytesRead === 0;
      outcome.refuse("client_closed", "the client closed the connection before the TLS handshake");
    });
    const secureStart = (tlsFirst: boolean): void => this.startTls(socket, meta, tlsFirst, outcome);

    if (this.opts.tlsFirst === "always") return secureStart(true);
    if (this.opts.tlsFirst === "never") return secureStart(false);

    let spoke = false;
    const sendInfoInstead = setTimeout(() => {
      // A timer that fires late, because the event loop was busy, must not overrule a ClientHello
      // that arrived in time: reads already waiting run first (I/O before setImmediate).
      setImmediate(() => {
        if (spoke || socket.destroyed) return;
        socket.off("data", onFirstData);
        socket.pause();
        secureStart(false);
      });
    }, this.opts.tlsFirstDelayMs);
    socket.once("close", () => clearTimeout(sendInfoInstead));
    const onFirstData = (chunk: Buffer): void => {
      spoke = true;
      clearTimeout(sendInfoInstead);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE_RECORD) return secureStart(true);
      outcome.refuse("tls_required", "the client spoke before INFO without starting TLS");
      socket.end("-ERR 'Secure Connection - TLS Required'\r\n");
    };
    socket.once("data", onFirstData);
    socket.resume();
  }

  private startTls(socket: net.Socket, meta: ClientMeta, tlsFirst: boolean, outcome: HandshakeOutcome): void {
    meta.tlsFirst = tlsFirst;
    if (!tlsFirst) socket.write(this.opts.info({ id: meta.id, remoteAddress: meta.remoteAddress }));
    // Wrapping the net.Socket (not a generic stream) keeps TLS in native code; bytes already
    // read and unshifted are handed to OpenSSL by TLSSocket itself.
    const secure = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext: this.opts.secureContext(),
      requestCert: true,
      rejectUnauthorized: false,
    });
    let failed = false;
    const onHandshakeError = (err: NodeJS.ErrnoException): void => {
      failed = true;
      outcome.refuse("tls_handshake_failed", err.code === "ERR_SSL_WRONG_VERSION_NUMBER" || /wrong version|http request/i.test(err.message) ? "the client did not start TLS after INFO" : `TLS handshake failed: ${err.message}`);
      secure.destroy();
    };
    secure.on("error", onHandshakeError);
    secure.once("secure", () => {
      if (failed || secure.destroyed) return;
      outcome.admitted();
      secure.off("error", onHandshakeError);
      // Until a session takes the socket (after CONNECT and the upstream handshake), a reset
      // from the client must not go unhandled: that would take the whole gateway down.
      secure.on("error", () => secure.destroy());
      // A TLS-first client gets its INFO from onSecureClient: the identity is known by then, so
      // that INFO can carry the tenant's own limits.
      this.opts.onSecureClient(secure, meta);
    });
  }
}

/** Reads the client's first frame, which must be CONNECT; returns its options and any bytes after it. */
export function readConnect(socket: tls.TLSSocket, timeoutMs: number, maxLine = 64 * 1024): Promise<{ connect: Record<string, unknown>; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (err: Error | undefined, value?: { connect: Record<string, unknown>; rest: Buffer }): void => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const timer = setTimeout(() => finish(new CodedError("connect_timeout", `no CONNECT within ${timeoutMs} ms`)), timeoutMs);
    const onClose = (): void => finish(new CodedError("client_closed", "the client closed the connection before CONNECT"));
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > maxLine) finish(new CodedError("malformed_connect", "CONNECT line too long"));
        return;
      }
      const line = buffered.toString("utf8", 0, nl).replace(/\r$/, "");
      const m = /^connect[ \t]+(.*)$/i.exec(line);
      if (!m) return finish(new CodedError("malformed_connect", `expected CONNECT, got ${JSON.stringify(line.slice(0, 16))}`));
      let connect: unknown;
      try {
        connect = JSON.parse(m[1]!);
      } catch {
        return finish(new CodedError("malformed_connect", "CONNECT options are not valid JSON"));
      }
      if (typeof connect !== "object" || connect === null || Array.isArray(connect)) return finish(new CodedError("malformed_connect", "CONNECT options are not a JSON object"));
      finish(undefined, { connect: connect as Record<string, unknown>, rest: buffered.subarray(nl + 1) });
    };
    socket.on("data", onData);
    socket.once("close", onClose);
    socket.resume();
  });
}

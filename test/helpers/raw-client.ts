/**
 * A NATS client written by hand over TLS, for tests that choose every byte a client sends (where a
 * stock client would refuse to send it) and read every byte the gateway answers.
 */
import { EventEmitter, once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import type { ClientTls } from "./gateway-fixture.ts";

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export type HandshakeMode = "TLS-first" | "INFO then TLS";

/** A NATS client written by hand over TLS: the test chooses every byte it sends, and reads every byte it gets. */
export class RawClient {
  /** Everything the gateway sent, as latin1 text (the INFO before TLS included). */
  private text = "";
  private readonly events = new EventEmitter();
  readonly closed: Promise<void>;
  /** The client's own port: the gateway logs it as `remote`. */
  readonly localPort: number;

  private constructor(
    readonly socket: tls.TLSSocket,
    readonly tcp: net.Socket,
    before: string,
  ) {
    this.text = before;
    this.localPort = tcp.localPort ?? 0;
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      this.text += chunk.toString("latin1");
      this.events.emit("change");
    });
    socket.on("error", () => undefined);
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.events.emit("change");
        resolve();
      }),
    );
  }

  static async open(port: number, creds: ClientTls, mode: HandshakeMode = "TLS-first"): Promise<RawClient> {
    const tcp = net.connect({ host: "127.0.0.1", port });
    tcp.on("error", () => undefined);
    await once(tcp, "connect");
    let info = "";
    if (mode === "INFO then TLS") {
      // nats-server's way: plain INFO first, then the TLS upgrade on the same socket.
      while (!info.includes("\r\n")) info += ((await once(tcp, "data")) as [Buffer])[0].toString("latin1");
      tcp.pause();
    }
    const socket = tls.connect({ socket: tcp, host: "127.0.0.1", ...creds });
    await once(socket, "secureConnect");
    return new RawClient(socket, tcp, info);
  }

  /** What the gateway sent from offset `from` on (up to `to`). */
  received(from = 0, to?: number): string {
    return this.text.slice(from, to);
  }

  /** The next `length` bytes from offset `from`, once they have arrived. */
  async next(length: number, from: number): Promise<string> {
    await this.waitFor(new RegExp(`^[\\s\\S]{${length}}`), from);
    return this.received(from, from + length);
  }

  /** The first match of `re` in what arrived from `from` on, waiting for it; `end` is the offset after the match. */
  async waitFor(re: RegExp, from = 0, timeoutMs = 10_000): Promise<{ match: RegExpExecArray; end: number }> {
    const search = (): { match: RegExpExecArray; end: number } | undefined => {
      const match = re.exec(this.text.slice(from));
      return match ? { match, end: from + match.index + match[0].length } : undefined;
    };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = search();
      if (found) return found;
      if (this.socket.destroyed) throw new Error(`connection closed before ${re}; received: ${JSON.stringify(this.received(from))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${re} within ${timeoutMs} ms; received: ${JSON.stringify(this.received(from).slice(-500))}`);
      await within(once(this.events, "change"), left, `waiting for ${re}`).catch(() => undefined);
    }
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data, (err) => (err ? reject(err) : resolve())));
  }

  /** One write (one TLS record, one TCP segment) per byte, each flushed before the next. */
  async writeBytewise(data: string): Promise<void> {
    for (const byte of Buffer.from(data, "latin1")) await this.write(Buffer.from([byte]));
  }

  /**
   * CONNECT and PING, answered by PONG once the gateway has opened the session upstream — as the
   * first line after the INFO, what Go, C, Java and Python clients require — then an INFO update
   * with the session's max_payload (its tenant's plan). Returns that max_payload and the offset
   * after the handshake.
   */
  async handshake(options: { bytewise?: boolean; extra?: string } = {}): Promise<{ maxPayload: number; end: number }> {
    const first = await this.waitFor(/^INFO (\{.*?\})\r\n/);
    const connect = `CONNECT ${JSON.stringify({ verbose: false, pedantic: false, headers: true, protocol: 1, lang: "raw", version: "0" })}\r\n${options.extra ?? ""}PING\r\n`;
    if (options.bytewise) await this.writeBytewise(connect);
    else await this.write(connect);
    const pong = await this.waitFor(/PONG\r\n/, first.end);
    if (this.received(first.end, pong.end).includes("INFO ")) throw new Error(`an INFO came before the first PONG: ${JSON.stringify(this.received(first.end, pong.end))}`);
    // Right after the first PONG an INFO update, as nats-server 2.12+ sends one (and nats.go waits for it).
    const update = await this.waitFor(/^INFO (\{.*?\})\r\n/, pong.end);
    return { maxPayload: (JSON.parse(update.match[1]!) as { max_payload: number }).max_payload, end: update.end };
  }
}


/**
 * The gateway's HTTP listener (`http_listen`, default 0.0.0.0:8080): one port that speaks plain
 * HTTP and HTTPS, told apart by the first byte (a TLS handshake record is 0x16), so that
 *
 * - a Kubernetes probe and a Prometheus scrape read `/healthz`, `/readyz` and `/metrics` in plain
 *   HTTP (or HTTPS), without a client certificate;
 * - the admin API (`/api/v1/…`) and the console (`/ui/`) answer only over HTTPS, to an allowed
 *   platform identity's client certificate (admin/auth.ts); the onboarding download
 *   (`/api/v1/packages/<id>/download?token=…`) over HTTPS to whoever holds the one-time token.
 *
 * HTTPS serves the gateway's own certificate (the one NATS clients see). Routes are fastify's,
 * with ajv schemas; the listener starts before the gateway (so the process is alive — `/healthz`
 * — while it waits for NATS) and the operations are attached once the gateway runs.
 */
import { randomBytes } from "node:crypto";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { CodedError } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import type { GatewayReadiness } from "../gateway/telemetry.ts";
import { apiRoutes } from "./api/routes.ts";
import { consoleRoutes } from "./console/routes.ts";
import { httpError, sendError } from "./errors.ts";
import type { AdminOperations, OperationsSlot } from "./operations.ts";

const TLS_HANDSHAKE_RECORD = 0x16;
/** A connection that says nothing for this long is closed (it holds a socket and nothing else). */
const FIRST_BYTE_TIMEOUT_MS = 10_000;
const BODY_LIMIT = 1024 * 1024;

export interface HttpServerOptions {
  host: string;
  port: number;
  /** The gateway's certificate chain and key (PEM). */
  tls: { cert: string; key: string };
  log: Logger;
  /** The Prometheus exposition: this process's metrics, or the whole worker group's. */
  metrics: () => Promise<{ contentType: string; body: string }>;
}

export class AdminHttpServer {
  readonly app: FastifyInstance;
  private readonly listener: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private ops: AdminOperations | undefined;
  private stopping = false;
  private bound: { host: string; port: number } | undefined;

  private constructor(opts: HttpServerOptions) {
    let plain!: http.Server;
    let secure!: https.Server;
    this.app = Fastify({
      logger: false,
      bodyLimit: BODY_LIMIT,
      genReqId: () => randomBytes(6).toString("hex"),
      // Unknown properties are refused (additionalProperties: false), not silently dropped.
      ajv: { customOptions: { removeAdditional: false, allErrors: false } },
      serverFactory: (handler) => {
        plain = http.createServer(handler);
        secure = https.createServer({ cert: opts.tls.cert, key: opts.tls.key, requestCert: true, rejectUnauthorized: false, minVersion: "TLSv1.2" }, handler);
        // A client certificate that does not verify is not a TLS failure here: admission says why (401/403 with a code).
        return plain;
      },
    });
    this.listener = net.createServer({ pauseOnConnect: true }, (socket) => this.dispatch(socket, plain, secure));
    this.routes(opts);
  }

  static async start(opts: HttpServerOptions): Promise<AdminHttpServer> {
    const server = new AdminHttpServer(opts);
    await server.app.ready();
    const bound = await new Promise<{ host: string; port: number }>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => reject(new CodedError("listen_failed", `cannot listen for HTTP on ${opts.host}:${opts.port}: ${err.code === "EADDRINUSE" ? "the address is in use" : (err.code ?? err.message)}`, { cause: err }));
      server.listener.once("error", onError);
      server.listener.listen(opts.port, opts.host, () => {
        server.listener.off("error", onError);
        const a = server.listener.address() as net.AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
    server.bound = bound;
    opts.log.info({ event: "http_listening", host: bound.host, port: bound.port }, "HTTP listener: /healthz /readyz /metrics (HTTP or HTTPS), /api/v1 and /ui/ (HTTPS with a platform certificate)");
    return server;
  }

  get address(): { host: string; port: number } {
    return this.bound ?? { host: "", port: 0 };
  }

  /** The gateway runs: the API, the console and readiness answer from now on. */
  attach(ops: AdminOperations): void {
    this.ops = ops;
  }

  /** Lame duck or stopping: readiness says no from now on, whatever the gateway still reports. */
  draining(): void {
    this.stopping = true;
  }

  async readiness(): Promise<GatewayReadiness> {
    if (this.stopping) return { ready: false, checks: { gateway: { ok: false, detail: "stopping" } } };
    if (!this.ops) return { ready: false, checks: { gateway: { ok: false, detail: "starting: waiting for NATS and the registry" } } };
    return this.ops.runtime.readiness();
  }

  async close(): Promise<void> {
    this.stopping = true;
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await this.app.close();
  }

  private dispatch(socket: net.Socket, plain: http.Server, secure: https.Server): void {
    this.sockets.add(socket);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    const silent = setTimeout(() => socket.destroy(), FIRST_BYTE_TIMEOUT_MS);
    silent.unref();
    socket.once("data", (chunk: Buffer) => {
      clearTimeout(silent);
      socket.pause();
      socket.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE_RECORD) {
        // TLSSocket hands the bytes already read to OpenSSL itself.
        secure.emit("connection", socket);
      } else {
        plain.emit("connection", socket);
        socket.resume();
      }
    });
    socket.resume();
  }

  private operations: OperationsSlot = () => {
    if (!this.ops) throw httpError(503, "starting", "the gateway is starting (waiting for NATS and the registry); try again shortly");
    return this.ops;
  };

  private routes(opts: HttpServerOptions): void {
    const app = this.app;
    app.setErrorHandler((err: unknown, req: FastifyRequest, reply: FastifyReply) => sendError(opts.log, req, reply, err));
    app.setNotFoundHandler((req, reply) => sendError(opts.log, req, reply, httpError(404, "not_found", `no ${req.method} ${req.url.split("?")[0]} here`)));

    app.get("/healthz", async () => ({ status: "ok" }));
    app.get("/readyz", async (_req, reply) => {
      const r = await this.readiness();
      return reply.code(r.ready ? 200 : 503).send(r);
    });
    app.get("/metrics", async (_req, reply) => {
      const m = await opts.metrics();
      return reply.type(m.contentType).send(m.body);
    });
    app.get("/", async (_req, reply) => reply.redirect("/ui/"));
    app.register(apiRoutes, { prefix: "/api/v1", operations: this.operations, log: opts.log });
    app.register(consoleRoutes, { prefix: "/ui", operations: this.operations, log: opts.log });
  }
}

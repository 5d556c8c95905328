/**
 * The gateway's HTTP side on a test deployment (see gateway-fixture.ts): the listener on a random
 * loopback port, attached to the deployment's gateway, and small clients for it — plain HTTP, and
 * HTTPS with or without a client certificate — that return status, headers and body.
 */
import http from "node:http";
import https from "node:https";
import { createLogger } from "../../common/logger.ts";
import { startHttpSide } from "../../admin/serving.ts";
import type { ClientTls, Deployment } from "./gateway-fixture.ts";
import { LogCapture } from "./gateway-fixture.ts";

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface HttpFixture extends HttpClient {
  port: number;
  logs: LogCapture;
  stop(): Promise<void>;
}

function answer(res: http.IncomingMessage, body: Buffer): HttpAnswer {
  const text = body.toString("utf8");
  return { status: res.statusCode ?? 0, headers: res.headers, body, text, json: <T>() => JSON.parse(text) as T };
}

export interface HttpClient {
  /** Plain HTTP. */
  get(path: string): Promise<HttpAnswer>;
  /** HTTPS; `tls` undefined = no client certificate (the server's certificate is checked against the root). */
  request(method: string, path: string, opts?: { tls?: ClientTls | undefined; body?: unknown; headers?: Record<string, string>; rawBody?: string }): Promise<HttpAnswer>;
}

/** A client of an HTTP listener on a loopback port, trusting `ca` (the deployment's root). */
export function httpClient(port: number, ca: string): HttpClient {
  return {
    get: (path) =>
      new Promise((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path }, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve(answer(res, Buffer.concat(chunks))));
          })
          .on("error", reject);
      }),
    request: (method, path, o = {}) =>
      new Promise((resolve, reject) => {
        const payload = o.rawBody ?? (o.body === undefined ? undefined : JSON.stringify(o.body));
        const req = https.request(
          {
            host: "127.0.0.1",
            servername: "localhost",
            port,
            path,
            method,
            ca,
            ...(o.tls ? { cert: o.tls.cert, key: o.tls.key } : {}),
            agent: false,
            headers: { ...(o.body !== undefined ? { "content-type": "application/json" } : {}), ...(o.headers ?? {}) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve(answer(res, Buffer.concat(chunks))));
          },
        );
        req.on("error", reject);
        req.end(payload);
      }),
  };
}

export async function startHttp(dep: Deployment, opts: { jetstreamStatsIntervalMs?: number } = {}): Promise<HttpFixture> {
  const logs = new LogCapture();
  const config = { ...dep.gateway.config, http_listen: "127.0.0.1:0", jetstream_stats_interval_ms: opts.jetstreamStatsIntervalMs ?? 1000 };
  const side = await startHttpSide(config, createLogger({ level: "debug", destination: logs }));
  if (!side) throw new Error("the HTTP side did not start");
  side.attach(dep.gateway);
  const port = side.server.address.port;
  return { port, logs, ...httpClient(port, (await dep.admin()).ca), stop: () => side.close() };
}

/**
 * A client of the admin API for the CLI (`tenant-gateway sessions …`): HTTPS with a platform
 * identity's certificate from the data dir, the data dir's root as the only trust. Errors come
 * back as the API's coded errors.
 */
import { promises as fs } from "node:fs";
import https from "node:https";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { DataLayout } from "../pki/layout.ts";
import { assertPlatformName } from "../pki/names.ts";

/** Where the CLI finds the admin API when not told (`--url`): env, else the serve default on this host. */
export const ADMIN_URL_ENV = "TENANT_GATEWAY_ADMIN_URL";
export const DEFAULT_ADMIN_URL = "https://localhost:8080";

export interface AdminClient {
  url: string;
  request<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: unknown): Promise<T>;
}

export async function adminClient(layout: DataLayout, opts: { url?: string; identity?: string }): Promise<AdminClient> {
  const url = (opts.url ?? process.env[ADMIN_URL_ENV] ?? DEFAULT_ADMIN_URL).replace(/\/+$/, "");
  if (!/^https:\/\/[^/]+$/.test(url)) throw new CodedError("invalid_argument", `--url must be the gateway's HTTP listener as https://host:port, got "${url}"`);
  const files = layout.platformIdentity(assertPlatformName(opts.identity ?? "admin"));
  const read = (file: string, what: string): Promise<string> =>
    fs.readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new CodedError("missing_file", `${what} ${file}: ${err.code ?? err.message}; issue it with "tenant-gateway pki issue-platform ${opts.identity ?? "admin"}"`);
    });
  const [ca, cert, key] = await Promise.all([read(layout.rootCert, "root CA certificate"), read(files.cert, "platform certificate"), read(files.key, "platform key")]);
  return {
    url,
    request: <T>(method: string, path: string, body?: unknown) =>
      new Promise<T>((resolve, reject) => {
        const payload = body === undefined ? undefined : JSON.stringify(body);
        const req = https.request(
          `${url}${path}`,
          { method, ca, cert, key, headers: { accept: "application/json", ...(payload ? { "content-type": "application/json" } : {}) }, timeout: 30_000 },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              let parsed: unknown;
              try {
                parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
              } catch {
                return reject(new CodedError("bad_response", `${method} ${url}${path}: answer ${res.statusCode} is not JSON`));
              }
              const error = (parsed as { error?: { code?: string; message?: string } }).error;
              if ((res.statusCode ?? 500) >= 400 || error) return reject(new CodedError(error?.code ?? "http_error", error?.message ?? `HTTP ${res.statusCode}`, { details: { http_status: res.statusCode } }));
              resolve(parsed as T);
            });
          },
        );
        req.on("timeout", () => req.destroy(new Error("no answer within 30 s")));
        req.on("error", (err: NodeJS.ErrnoException) => reject(new CodedError("gateway_unreachable", `no admin API at ${url}: ${err.code ?? errorMessage(err)}; is the gateway running with its HTTP listener there? (--url or ${ADMIN_URL_ENV})`, { cause: err })));
        req.end(payload);
      }),
  };
}

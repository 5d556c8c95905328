/**
 * The admin API, `/api/v1/…`: JSON over HTTPS, a platform identity's client certificate on every
 * call (the onboarding download excepted: its one-time token is the credential). Each route
 * declares its schemas; the OpenAPI document is built from them.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from "fastify";
import { CodedError } from "../../common/coded-error.ts";
import type { Logger } from "../../common/logger.ts";
import type { PlatformIdentity } from "../../pki/identity.ts";
import { parseDurationSeconds } from "../../streams/units.ts";
import { ALL_TENANTS } from "../../gateway/audit.ts";
import { platformIdentityOf } from "../auth.ts";
import { httpError, sendError } from "../errors.ts";
import type { Actor, OperationsSlot } from "../operations.ts";
import { openApiDocument } from "./openapi.ts";
import { AUDIT_RECORD, CA_STATUS, errors, ISSUED_CERTIFICATE, PACKAGE, REVOCATION, SESSION, SESSION_ID, SLUG, STREAM_STATS, TENANT_SUMMARY, TENANT_VIEW } from "./schemas.ts";

/** Who may call a route: anyone (the OpenAPI document), a token holder over HTTPS (downloads), or an allowed platform identity (default). */
export type Access = "public" | "token" | "platform";

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    platform?: PlatformIdentity;
  }
  /** What the OpenAPI document says of a route. */
  interface FastifySchema {
    summary?: string;
    description?: string;
    tags?: string[];
    /** The content type of a successful answer, when not JSON. */
    produces?: string;
  }
}

export function actorOf(req: FastifyRequest): Actor {
  const p = req.platform;
  if (!p) throw httpError(401, "client_certificate_required", "present a platform client certificate");
  return { identity: p.name, cn: p.cn, remote: `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`, requestId: req.id, request: `${req.method} ${req.url.split("?")[0]}` };
}

/**
 * A browser that holds a platform certificate must not be made to change anything by another
 * site's page: requests a browser marks as cross-site, or from another origin, are refused.
 */
export function refuseCrossSite(req: FastifyRequest): void {
  const site = req.headers["sec-fetch-site"];
  const origin = req.headers.origin;
  if (site === "cross-site" || site === "same-site" || (origin !== undefined && origin !== `https://${req.headers.host ?? ""}`)) {
    throw httpError(403, "csrf_failed", "changes are accepted only from this gateway's own pages or from non-browser clients");
  }
}

/** The one-time link a site downloads its package from, on the host the operator reached this API by. */
export function downloadUrl(req: FastifyRequest, path: string, token: string): string {
  return `https://${req.headers.host ?? "localhost"}${path}?token=${encodeURIComponent(token)}`;
}

const TENANT_PARAMS = { type: "object", required: ["slug"], properties: { slug: SLUG } } as const;

export async function apiRoutes(app: FastifyInstance, opts: { operations: OperationsSlot; log: Logger }): Promise<void> {
  const ops = opts.operations;
  const routes: RouteOptions[] = [];
  app.addHook("onRoute", (route) => {
    routes.push(route);
  });
  // Schemas document what comes out; bodies are written as they are (no field is silently dropped).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // JSON only: a browser form (urlencoded, multipart, text/plain) cannot reach the API.
  app.removeContentTypeParser(["text/plain"]);
  app.setErrorHandler((err, req, reply) => sendError(opts.log, req, reply, err));
  app.addHook("onRequest", async (req) => {
    const access = req.routeOptions.config.access ?? "platform";
    if (access === "public") return;
    if (access === "token") {
      if (!("encrypted" in req.socket)) throw httpError(403, "tls_required", "downloads are served over HTTPS only (the token must not travel in the clear)");
      return;
    }
    const operations = ops();
    req.platform = platformIdentityOf(req.raw, operations.runtime.registry, operations.runtime.allowedIdentities);
    if (req.method !== "GET" && req.method !== "HEAD") refuseCrossSite(req);
  });
  app.addHook("onSend", async (_req, reply) => {
    reply.header("cache-control", "no-store");
  });
  app.addHook("onResponse", async (req, reply) => {
    if (req.method === "GET") return;
    opts.log.info({ event: "admin_request", method: req.method, url: req.url.split("?")[0], status: reply.statusCode, identity: req.platform?.name, request: req.id }, "admin API request");
  });

  app.get("/openapi.json", { config: { access: "public" }, schema: { summary: "this document", tags: ["meta"] } }, async () => openApiDocument(routes.filter((r) => r.url !== "/api/v1/openapi.json")));

  app.get("/plans", { schema: { summary: "the plans a tenant can be on, with their limits", tags: ["tenants"], response: { 200: { type: "object", properties: { plans: { type: "array", items: { type: "object", properties: { name: { type: "string" }, limits: { type: "object" } } } } } }, ...errors(401, 403) } } }, async () => ({ plans: await ops().plans() }));

  app.get(
    "/tenants",
    { schema: { summary: "list tenants with status, plan, CA and live session count", tags: ["tenants"], response: { 200: { type: "object", properties: { tenants: { type: "array", items: TENANT_SUMMARY } } }, ...errors(401, 403) } } },
    async () => ({ tenants: await ops().listTenants() }),
  );

  app.post<{ Body: { slug: string; name?: string; plan?: string } }>(
    "/tenants",
    {
      schema: {
        summary: "create a tenant: CA, NATS account (pushed live), streams, PLATFORM imports",
        tags: ["tenants"],
        body: { type: "object", required: ["slug"], additionalProperties: false, properties: { slug: SLUG, name: { type: "string", minLength: 1, maxLength: 200 }, plan: { type: "string", minLength: 1, maxLength: 64 } } },
        response: { 201: { type: "object", properties: { status: { enum: ["created", "completed"] }, tenant: TENANT_VIEW } }, ...errors(400, 401, 403, 409, 503) },
      },
    },
    async (req, reply) => reply.code(201).send(await ops().createTenant(actorOf(req), req.body)),
  );

  app.get<{ Params: { slug: string } }>(
    "/tenants/:slug",
    { schema: { summary: "one tenant: status, plan, CA (active and previous), account, limits", tags: ["tenants"], params: TENANT_PARAMS, response: { 200: TENANT_VIEW, ...errors(401, 403, 404) } } },
    async (req) => ops().showTenant(req.params.slug),
  );

  app.delete<{ Params: { slug: string } }>(
    "/tenants/:slug",
    {
      schema: {
        summary: "delete a tenant: every user revoked, its streams and account removed, the tenant forgotten",
        tags: ["tenants"],
        params: TENANT_PARAMS,
        response: { 200: { type: "object", properties: { status: { const: "deleted" }, slug: SLUG, account: { type: "string" }, resolver: { type: "string" } } }, ...errors(401, 403, 404) },
      },
    },
    async (req) => ops().deleteTenant(actorOf(req), req.params.slug),
  );

  for (const [verb, summary] of [
    ["suspend", "suspend a tenant: its users revoked in NATS (live connections cut), new sessions refused"],
    ["resume", "resume a suspended tenant"],
  ] as const) {
    app.post<{ Params: { slug: string } }>(`/tenants/:slug/${verb}`, { schema: { summary, tags: ["tenants"], params: TENANT_PARAMS, response: { 200: TENANT_VIEW, ...errors(401, 403, 404, 409) } } }, async (req) =>
      verb === "suspend" ? ops().suspendTenant(actorOf(req), req.params.slug) : ops().resumeTenant(actorOf(req), req.params.slug),
    );
  }

  app.put<{ Params: { slug: string }; Body: { plan: string } }>(
    "/tenants/:slug/plan",
    {
      schema: {
        summary: "move a tenant to another plan (streams resized in the safe order; refused when its data does not fit)",
        tags: ["tenants"],
        params: TENANT_PARAMS,
        body: { type: "object", required: ["plan"], additionalProperties: false, properties: { plan: { type: "string", minLength: 1, maxLength: 64 } } },
        response: { 200: TENANT_VIEW, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (req) => ops().setPlan(actorOf(req), req.params.slug, req.body.plan),
  );

  app.get<{ Params: { slug: string } }>(
    "/tenants/:slug/streams",
    { schema: { summary: "the tenant's streams now: messages, bytes, consumers and their lag", tags: ["tenants"], params: TENANT_PARAMS, response: { 200: { type: "object", properties: { streams: { type: "array", items: STREAM_STATS } } }, ...errors(401, 403, 404, 409, 503) } } },
    async (req) => ({ streams: await ops().tenantStreams(req.params.slug) }),
  );

  app.get<{ Params: { slug: string } }>(
    "/tenants/:slug/ca",
    { schema: { summary: "the tenant's CA: the active one, previous ones and the overlap deadline", tags: ["certificates"], params: TENANT_PARAMS, response: { 200: CA_STATUS, ...errors(401, 403, 404) } } },
    async (req) => ops().caStatus(req.params.slug),
  );

  app.post<{ Params: { slug: string }; Body: { overlap?: string; validity_years?: number } | undefined }>(
    "/tenants/:slug/ca/rotate",
    {
      schema: {
        summary: "rotate (regenerate) the tenant's CA: the new one issues from now on; the current one's certificates are admitted until the overlap ends, then refused (retired_ca)",
        tags: ["certificates"],
        params: TENANT_PARAMS,
        body: { type: "object", additionalProperties: false, properties: { overlap: { type: "string", default: "30d", description: "30d, 12h, 0 (cut now)" }, validity_years: { type: "integer", minimum: 1, maximum: 30 } } },
        response: { 200: CA_STATUS, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (req) => ops().rotateCa(actorOf(req), req.params.slug, { overlap: req.body?.overlap ?? "30d", ...(req.body?.validity_years === undefined ? {} : { validityYears: req.body.validity_years }) }),
  );

  app.get<{ Params: { slug: string } }>(
    "/tenants/:slug/certificates",
    { schema: { summary: "the certificates issued for the tenant, with their state (valid, revoked, expired)", tags: ["certificates"], params: TENANT_PARAMS, response: { 200: { type: "object", properties: { certificates: { type: "array", items: ISSUED_CERTIFICATE } } }, ...errors(401, 403, 404) } } },
    async (req) => ({ certificates: await ops().certificates(req.params.slug) }),
  );

  app.post<{ Params: { slug: string }; Body: { component: string; partition: string; days?: number } }>(
    "/tenants/:slug/certificates",
    {
      schema: {
        summary: "issue an edge certificate from the tenant's CA; its private key is in this answer only (onboarding packages are the way to hand one to a site)",
        tags: ["certificates"],
        params: TENANT_PARAMS,
        body: {
          type: "object",
          required: ["component", "partition"],
          additionalProperties: false,
          properties: { component: { type: "string", pattern: "^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$" }, partition: { type: "string", pattern: "^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$" }, days: { type: "integer", minimum: 1, maximum: 3650 } },
        },
        response: { 201: { type: "object", properties: { certificate: ISSUED_CERTIFICATE, pem: { type: "object", properties: { certificate: { type: "string" }, key: { type: "string" }, chain: { type: "string" } } } } }, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => reply.code(201).send(await ops().issueCertificate(actorOf(req), req.params.slug, req.body)),
  );

  app.post<{ Params: { slug: string; serial: string }; Body: { reason?: string } | undefined }>(
    "/tenants/:slug/certificates/:serial/revoke",
    {
      schema: {
        summary: "revoke one of the tenant's certificates, live: its sessions are cut on every gateway and NATS server, new connections refused (certificate_revoked)",
        tags: ["certificates"],
        params: { type: "object", required: ["slug", "serial"], properties: { slug: SLUG, serial: { type: "string", pattern: "^[0-9A-Fa-f:]{1,100}$" } } },
        body: { type: "object", additionalProperties: false, properties: { reason: { type: "string", maxLength: 500 } } },
        response: { 200: REVOCATION, ...errors(400, 401, 403, 404) },
      },
    },
    async (req) => ops().revokeCertificate(actorOf(req), req.params.slug, req.params.serial, req.body?.reason),
  );

  app.get<{ Querystring: { tenant?: string } }>(
    "/packages",
    {
      schema: {
        summary: "onboarding packages with their state (pending, delivered, expired, revoked)",
        tags: ["packages"],
        querystring: { type: "object", additionalProperties: false, properties: { tenant: SLUG } },
        response: { 200: { type: "object", properties: { packages: { type: "array", items: PACKAGE } } }, ...errors(400, 401, 403) },
      },
    },
    async (req) => ({ packages: await ops().packages.list(req.query.tenant === undefined ? {} : { tenant: req.query.tenant }) }),
  );

  app.post<{ Body: { tenant: string; component: string; partition: string; type: string; collector?: string; ttl?: string; days?: number; gateway_url?: string } }>(
    "/packages",
    {
      schema: {
        summary: "create an onboarding package: the component's certificate and its bundle, downloadable once with the token in this answer (shown only now)",
        tags: ["packages"],
        body: {
          type: "object",
          required: ["tenant", "component", "partition", "type"],
          additionalProperties: false,
          properties: {
            tenant: SLUG,
            component: { type: "string", minLength: 1, maxLength: 63 },
            partition: { type: "string", minLength: 1, maxLength: 63 },
            type: { enum: ["agent", "poller", "checker", "collector", "leaf"] },
            collector: { enum: ["otel", "syslog-flow"] },
            ttl: { type: "string", description: "how long the token works, e.g. 24h (default)" },
            days: { type: "integer", minimum: 1, maximum: 3650, description: "certificate validity (default 365)" },
            gateway_url: { type: "string", description: "tls://host:port the site connects to" },
          },
        },
        response: { 201: { type: "object", properties: { package: PACKAGE, token: { type: "string" }, download_url: { type: "string" } } }, ...errors(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const created = await ops().packages.create(actorOf(req), {
        tenant: b.tenant,
        component: b.component,
        partition: b.partition,
        type: b.type,
        ...(b.collector ? { collector: b.collector } : {}),
        ...(b.ttl ? { ttl: b.ttl } : {}),
        ...(b.days === undefined ? {} : { days: b.days }),
        ...(b.gateway_url ? { gatewayUrl: b.gateway_url } : {}),
      });
      return reply.code(201).send({ ...created, download_url: downloadUrl(req, created.package.download_path, created.token) });
    },
  );

  app.get<{ Params: { id: string } }>(
    "/packages/:id",
    { schema: { summary: "one onboarding package (never its token)", tags: ["packages"], params: { type: "object", required: ["id"], properties: { id: { type: "string" } } }, response: { 200: PACKAGE, ...errors(400, 401, 403, 404) } } },
    async (req) => ops().packages.show(req.params.id),
  );

  app.post<{ Params: { id: string }; Body: { reason?: string } | undefined }>(
    "/packages/:id/revoke",
    {
      schema: {
        summary: "revoke a package: no download from now on, and its certificate revoked (live), whether or not it was downloaded",
        tags: ["packages"],
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        body: { type: "object", additionalProperties: false, properties: { reason: { type: "string", maxLength: 500 } } },
        response: { 200: PACKAGE, ...errors(400, 401, 403, 404) },
      },
    },
    async (req) => ops().packages.revoke(actorOf(req), req.params.id, req.body?.reason),
  );

  app.get<{ Params: { id: string }; Querystring: { token?: string } }>(
    "/packages/:id/download",
    {
      config: { access: "token" },
      schema: {
        summary: "the package's bundle (.tar.gz), once, for whoever holds its token: 400 malformed request, 401 missing or wrong token, 404 unknown package, 409 already downloaded or revoked, 410 expired",
        tags: ["packages"],
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        querystring: { type: "object", properties: { token: { type: "string" } } },
        produces: "application/gzip",
        response: { 200: { type: "string", format: "binary" }, ...errors(400, 401, 404, 409, 410) },
      },
    },
    async (req, reply) => {
      const got = await ops().packages.download(req.params.id, req.query.token, `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`);
      return reply
        .type("application/gzip")
        .header("content-disposition", `attachment; filename="${got.filename.replace(/[^A-Za-z0-9._-]/g, "_")}"`)
        .send(got.bundle);
    },
  );

  app.get<{ Querystring: { tenant?: string } }>(
    "/sessions",
    {
      schema: {
        summary: "live sessions on this gateway (every worker), optionally of one tenant",
        tags: ["sessions"],
        querystring: { type: "object", additionalProperties: false, properties: { tenant: SLUG } },
        response: { 200: { type: "object", properties: { sessions: { type: "array", items: SESSION } } }, ...errors(400, 401, 403) },
      },
    },
    async (req) => ({ sessions: await ops().sessions(req.query.tenant === undefined ? {} : { tenant: req.query.tenant }) }),
  );

  app.delete<{ Params: { id: string } }>(
    "/sessions/:id",
    {
      schema: {
        summary: "disconnect one session (no -ERR: a stock client reconnects at its own pace)",
        tags: ["sessions"],
        params: { type: "object", required: ["id"], properties: { id: SESSION_ID } },
        response: { 200: { type: "object", properties: { status: { const: "disconnected" }, session: SESSION } }, ...errors(400, 401, 403, 404) },
      },
    },
    async (req) => ({ status: "disconnected", session: await ops().disconnect(actorOf(req), req.params.id) }),
  );

  app.get<{ Querystring: { tenant?: string; identity?: string; since?: string; limit?: number } }>(
    "/audit",
    {
      schema: {
        summary: "the audit trail: cross-tenant operations of platform identities and changes made through this API (operation admin_api)",
        tags: ["audit"],
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            tenant: { anyOf: [SLUG, { const: ALL_TENANTS }, { const: "_platform" }] },
            identity: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" },
            since: { type: "string", description: "a duration back from now: 15m, 24h, 7d" },
            limit: { type: "integer", minimum: 1, maximum: 100000, default: 1000 },
          },
        },
        response: { 200: { type: "object", properties: { records: { type: "array", items: AUDIT_RECORD } } }, ...errors(400, 401, 403) },
      },
    },
    async (req) => {
      let since: Date | undefined;
      if (req.query.since !== undefined) {
        const seconds = parseDurationSeconds(req.query.since);
        if (seconds === undefined || seconds <= 0) throw new CodedError("invalid_argument", `since must be a duration like 15m, 24h or 7d, got ${JSON.stringify(req.query.since)}`);
        since = new Date(Date.now() - seconds * 1000);
      }
      const records = await ops().auditRecords({
        ...(req.query.tenant ? { tenant: req.query.tenant } : {}),
        ...(req.query.identity ? { identity: req.query.identity } : {}),
        ...(since ? { since } : {}),
        limit: req.query.limit ?? 1000,
      });
      return { records };
    },
  );
}

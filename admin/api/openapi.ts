/**
 * The OpenAPI 3.1 document of the admin API, built from the routes' own schemas (what ajv checks
 * is what the document says), served at `/api/v1/openapi.json`.
 */
import type { RouteOptions } from "fastify";
import { GATEWAY_VERSION } from "../../gateway/gateway.ts";

interface RouteSchema {
  summary?: string;
  description?: string;
  tags?: string[];
  params?: { properties?: Record<string, object>; required?: string[] };
  querystring?: { properties?: Record<string, object>; required?: string[] };
  body?: object;
  response?: Record<string, object>;
  produces?: string;
}

/** `/api/v1/tenants/:slug` → `/api/v1/tenants/{slug}` */
function openApiPath(url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

function parameters(where: "path" | "query", schema: RouteSchema["params"]): object[] {
  return Object.entries(schema?.properties ?? {}).map(([name, s]) => ({ name, in: where, required: where === "path" || (schema?.required ?? []).includes(name), schema: s }));
}

export function openApiDocument(routes: readonly RouteOptions[]): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const route of routes) {
    const schema = (route.schema ?? {}) as RouteSchema;
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => m.toLowerCase()).filter((m) => m !== "head");
    for (const method of methods) {
      const responses: Record<string, object> = {};
      for (const [status, body] of Object.entries(schema.response ?? {})) {
        const contentType = status.startsWith("2") && schema.produces ? schema.produces : "application/json";
        responses[status] = { description: status.startsWith("2") ? "done" : "refused or failed: see error.code", content: { [contentType]: { schema: body } } };
      }
      (paths[openApiPath(route.url)] ??= {})[method] = {
        operationId: `${method}${route.url.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
        ...(schema.summary ? { summary: schema.summary } : {}),
        ...(schema.description ? { description: schema.description } : {}),
        ...(schema.tags ? { tags: schema.tags } : {}),
        parameters: [...parameters("path", schema.params), ...parameters("query", schema.querystring)],
        ...(schema.body ? { requestBody: { required: true, content: { "application/json": { schema: schema.body } } } } : {}),
        responses,
        ...(route.config && (route.config as { access?: string }).access !== "platform" ? { security: [] } : {}),
      };
    }
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "tenant-gateway admin API",
      version: GATEWAY_VERSION,
      description:
        "Operate the multi-tenant NATS gateway: tenants, their CAs, certificates and onboarding packages, live sessions, the audit trail. Served over HTTPS on the gateway's HTTP port; every call needs a client certificate of an allowed platform identity (platform.allowed_identities) except the onboarding download, which takes the package's one-time token. Errors are {\"error\": {\"code\", \"message\"}} with the HTTP status of the code. Every change is recorded in the audit stream (operation admin_api).",
    },
    components: { securitySchemes: { platformCertificate: { type: "mutualTLS", description: "a client certificate <name>.platform.serviceradar from the platform CA, <name> in platform.allowed_identities" } } },
    security: [{ platformCertificate: [] }],
    paths,
  };
}

/**
 * Errors over HTTP: every failure is `{"error": {"code", "message"}}` with the status its code
 * means. The codes are the ones the CLI prints; only the status is added here, in one table.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import { IdentityError } from "../pki/identity.ts";

export interface ErrorBody {
  error: { code: string; message: string } & Record<string, unknown>;
}

const STATUS_BY_CODE: Record<string, number> = {
  invalid_argument: 400,
  invalid_request: 400,
  malformed_request: 400,
  invalid_slug: 400,
  reserved_slug: 400,
  invalid_component_id: 400,
  invalid_partition_id: 400,
  invalid_platform_name: 400,
  invalid_cn_format: 400,
  unknown_plan: 400,
  confirmation_required: 400,
  client_certificate_required: 401,
  token_required: 401,
  token_invalid: 401,
  tls_required: 403,
  platform_identity_required: 403,
  csrf_failed: 403,
  not_found: 404,
  unknown_tenant: 404,
  session_not_found: 404,
  package_not_found: 404,
  certificate_not_found: 404,
  tenant_exists: 409,
  tenant_provisioning: 409,
  tenant_suspended: 409,
  streams_exceed_plan: 409,
  control_plane_only: 409,
  package_delivered: 409,
  package_revoked: 409,
  entry_conflict: 409,
  package_expired: 410,
  starting: 503,
  nats_unreachable: 503,
  nats_unavailable: 503,
  jetstream_unavailable: 503,
  upstream_unavailable: 503,
};

/** The HTTP status of an error code: the error's own `details.http_status` first, then the table, then 500. */
export function httpStatusOf(err: unknown): number {
  if (err instanceof CodedError) {
    const own = err.details?.http_status;
    if (typeof own === "number") return own;
    const mapped = STATUS_BY_CODE[err.code];
    if (mapped) return mapped;
    // Identity refusals (expired, unknown_issuer, certificate_revoked, …): the certificate is not allowed in.
    if (err instanceof IdentityError) return 403;
    if (err.code.startsWith("invalid_")) return 400;
    return 500;
  }
  return 500;
}

export function errorBody(err: unknown): ErrorBody {
  if (err instanceof CodedError) {
    // Details beyond code and message are for the CLI's JSON; over HTTP the status says the rest.
    return { error: { code: err.code, message: err.message } };
  }
  return { error: { code: "internal_error", message: errorMessage(err) } };
}

export function httpError(status: number, code: string, message: string): CodedError {
  return new CodedError(code, message, { details: { http_status: status } });
}

/** `{"error": {code, message}}` with the code's status; server faults logged, refusals not (they are the client's). */
export function sendError(log: Logger, req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const validation = (err as { validation?: unknown; validationContext?: string }).validation;
  const fastifyCode = (err as { code?: unknown }).code;
  let status: number;
  let body: ReturnType<typeof errorBody>;
  if (validation) {
    status = 400;
    body = { error: { code: "invalid_request", message: errorMessage(err) } };
  } else if (!(err instanceof CodedError) && typeof fastifyCode === "string" && fastifyCode.startsWith("FST_") && typeof (err as { statusCode?: unknown }).statusCode === "number") {
    // fastify's own refusals (unsupported media type, body too large, malformed JSON).
    status = (err as { statusCode: number }).statusCode;
    body = { error: { code: status === 415 ? "unsupported_media_type" : status === 413 ? "body_too_large" : "invalid_request", message: errorMessage(err) } };
  } else {
    status = httpStatusOf(err);
    body = errorBody(err);
  }
  if (status >= 500 && status !== 503) log.error({ event: "http_error", method: req.method, url: req.url.split("?")[0], code: body.error.code, error: body.error.message }, "admin request failed");
  return reply.code(status).header("cache-control", "no-store").send(body);
}

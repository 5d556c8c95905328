/**
 * Who may use the admin API and the console: a platform identity named in
 * `platform.allowed_identities`, proven by its client certificate over TLS — admitted by the same
 * code that admits NATS clients (gateway/admission.ts), so a certificate the gateway refuses
 * (expired, revoked, from a retired CA, a tenant's) is refused here too, with the same code.
 */
import type { IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import { admit } from "../gateway/admission.ts";
import { peerCertificates } from "../gateway/tls.ts";
import type { TenantDirectory } from "../gateway/tenant-directory.ts";
import type { PlatformIdentity } from "../pki/identity.ts";
import { httpError } from "./errors.ts";

export function isTls(req: IncomingMessage): boolean {
  return req.socket instanceof TLSSocket;
}

/** The platform identity of the request's client certificate; throws a coded error with its HTTP status. */
export function platformIdentityOf(req: IncomingMessage, registry: TenantDirectory, allowed: readonly string[]): PlatformIdentity {
  if (!(req.socket instanceof TLSSocket)) {
    throw httpError(403, "tls_required", "the admin API and the console are served over HTTPS with a platform client certificate (https:// on this port)");
  }
  const { leaf, chain } = peerCertificates(req.socket);
  if (!leaf) throw httpError(401, "client_certificate_required", "present a platform client certificate (e.g. admin.platform.serviceradar) to use the admin API and the console");
  const admitted = admit(leaf, chain, registry, allowed);
  if (admitted.kind !== "platform") {
    throw httpError(403, "platform_identity_required", `"${admitted.identity.cn}" is a tenant's edge identity; the admin API takes platform identities (${allowed.join(", ") || "none allowed"})`);
  }
  return admitted.identity;
}

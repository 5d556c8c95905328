/**
 * Onboarding packages over HTTP: the same PackageService the CLI's `package` commands use
 * (onboarding/packages.ts), each change audited; the download hands a bundle out once to whoever
 * holds the token, with the status codes of the onboarding issue (400, 401, 404, 409, 410).
 */
import { randomBytes } from "node:crypto";
import { PACKAGE_TYPES } from "../onboarding/bundle.ts";
import { downloadPackage, PackageService } from "../onboarding/packages.ts";
import type { Actor, AdminOperations, PackageOperations, PackageRequest, PackageSummary } from "./operations.ts";

/** Downloads are made by a token holder, not a platform identity: the audit names them so. */
const TOKEN_HOLDER = "_token";

export function packageOperations(ops: AdminOperations): PackageOperations {
  const service = new PackageService(ops.runtime.cp, ops.tenants);
  return {
    types: PACKAGE_TYPES,
    list: (filter) => service.list(filter),
    show: (id) => service.show(id),
    create: async (actor: Actor, spec: PackageRequest) => {
      const created = await service.create(spec);
      await ops.audit(actor, spec.tenant, "package.create");
      return created;
    },
    revoke: async (actor: Actor, id: string, reason?: string): Promise<PackageSummary> => {
      const revoked = await service.revoke(id, reason ?? `revoked by ${actor.identity} through the admin API`);
      await ops.runtime.registry.refresh(revoked.tenant);
      await ops.audit(actor, revoked.tenant, "package.revoke");
      return revoked;
    },
    download: async (id: string, token: string | undefined, remote: string) => {
      const got = await downloadPackage(ops.runtime.cp.store, id, token);
      await ops.audit({ identity: TOKEN_HOLDER, cn: "", remote, requestId: randomBytes(6).toString("hex"), request: `GET /api/v1/packages/${id}/download` }, got.package.tenant, "package.download");
      return got;
    },
  };
}

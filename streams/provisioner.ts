import type { TenantStreamProvisioner } from "../accounts/tenants.ts";

export const tenantStreamProvisioner: TenantStreamProvisioner | undefined = undefined;

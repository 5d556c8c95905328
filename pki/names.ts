/**
 * The one source of truth for tenant slugs, component and partition ids, platform identity names
 * and the certificate CN formats built from them (architecture brief, section 2).
 */
import { CodedError } from "../common/coded-error.ts";

export const CN_SUFFIX = "serviceradar";
export const PLATFORM_TOKEN = "platform";

const SLUG_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const COMPONENT_RE = /^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$/;

/** Slugs that would collide with platform names, NATS system names or the CN suffix. */
export const RESERVED_SLUGS: ReadonlySet<string> = new Set(["platform", "sys", "system", "admin", "serviceradar", "ca"]);

export type NameErrorCode = "invalid_slug" | "reserved_slug" | "invalid_component_id" | "invalid_partition_id" | "invalid_platform_name" | "invalid_cn_format";

export class NameError extends CodedError<NameErrorCode> {}

export interface EdgeName {
  kind: "edge";
  tenant: string;
  component: string;
  partition: string;
}

export interface PlatformName {
  kind: "platform";
  name: string;
}

export type ParsedCommonName = EdgeName | PlatformName;

export function isValidSlugSyntax(value: string): boolean {
  return SLUG_RE.test(value);
}

/** Throws a NameError unless `slug` may name a tenant. */
export function assertTenantSlug(slug: string): string {
  if (!SLUG_RE.test(slug)) {
    throw new NameError("invalid_slug", `invalid tenant slug ${JSON.stringify(slug)}: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit`);
  }
  if (RESERVED_SLUGS.has(slug)) {
    throw new NameError("reserved_slug", `tenant slug ${JSON.stringify(slug)} is reserved (reserved: ${[...RESERVED_SLUGS].join(", ")})`);
  }
  return slug;
}

export function assertComponentId(id: string, role: "component" | "partition" = "component"): string {
  if (!COMPONENT_RE.test(id)) {
    throw new NameError(role === "component" ? "invalid_component_id" : "invalid_partition_id", `invalid ${role} id ${JSON.stringify(id)}: use 1-63 lower-case letters, digits, '-' and '_', starting and ending with a letter or digit`);
  }
  return id;
}

/** Platform identity names (`admin`, `core`, `event-writer`) follow the slug syntax. */
export function assertPlatformName(name: string): string {
  if (!SLUG_RE.test(name)) {
    throw new NameError("invalid_platform_name", `invalid platform identity name ${JSON.stringify(name)}: use 1-63 lower-case letters, digits and '-'`);
  }
  return name;
}

export function edgeCommonName(tenant: string, component: string, partition: string): string {
  return `${assertComponentId(component)}.${assertComponentId(partition, "partition")}.${assertTenantSlug(tenant)}.${CN_SUFFIX}`;
}

export function platformCommonName(name: string): string {
  return `${assertPlatformName(name)}.${PLATFORM_TOKEN}.${CN_SUFFIX}`;
}

export function tenantCaCommonName(slug: string): string {
  return `tenant-${assertTenantSlug(slug)}.ca.${CN_SUFFIX}`;
}

/**
 * Strict CN parser: `<component>.<partition>.<slug>.serviceradar` or `<name>.platform.serviceradar`,
 * every token validated. Anything else is `invalid_cn_format`; a well-formed CN naming a reserved
 * slug is `reserved_slug`.
 */
export function parseCommonName(cn: string): ParsedCommonName {
  const tokens = cn.split(".");
  const bad = (why: string): NameError => new NameError("invalid_cn_format", `certificate CN ${JSON.stringify(cn)} is not <component>.<partition>.<tenant-slug>.${CN_SUFFIX} or <name>.${PLATFORM_TOKEN}.${CN_SUFFIX}: ${why}`);
  if (tokens[tokens.length - 1] !== CN_SUFFIX) throw bad(`it must end in .${CN_SUFFIX}`);
  if (tokens.some((t) => t.length === 0)) throw bad("it has an empty token");
  if (tokens.length === 3 && tokens[1] === PLATFORM_TOKEN) {
    const name = tokens[0]!;
    if (!SLUG_RE.test(name)) throw bad(`platform name ${JSON.stringify(name)} has invalid characters or length`);
    return { kind: "platform", name };
  }
  if (tokens.length !== 4) throw bad(`it has ${tokens.length} tokens, expected 4`);
  const [component, partition, tenant] = tokens as [string, string, string, string];
  if (!COMPONENT_RE.test(component)) throw bad(`component id ${JSON.stringify(component)} has invalid characters or length`);
  if (!COMPONENT_RE.test(partition)) throw bad(`partition id ${JSON.stringify(partition)} has invalid characters or length`);
  if (!SLUG_RE.test(tenant)) throw bad(`tenant slug ${JSON.stringify(tenant)} has invalid characters or length`);
  if (RESERVED_SLUGS.has(tenant)) {
    throw new NameError("reserved_slug", `certificate CN ${JSON.stringify(cn)} names the reserved slug ${JSON.stringify(tenant)}`);
  }
  return { kind: "edge", tenant, component, partition };
}

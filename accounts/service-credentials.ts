/**
 * Credentials for the platform's per-tenant services (a rules engine, a database writer): a
 * standard `.creds` file (user JWT + seed) of a user in the tenant's own account, connecting to
 * nats-server directly (not through the gateway, which admits certificates), so it sees the
 * tenant's subjects as NATS holds them (`<slug>.events.>`). Its permissions stay inside the
 * tenant's namespace: `--pub` / `--sub` are written in the edge view (`events.>`) and prefixed;
 * the JetStream API of the account (read and consume its streams) unless `jetstream: false`.
 * Listed in the tenant record (public key only; the seed is in the file and nowhere else) and
 * revocable like certificates: revoked for good in the account JWT.
 */
import { CodedError } from "../common/coded-error.ts";
import { edgePublishPermissions, isPrefixedTenantSubject, TenantStores } from "../common/namespaces.ts";
import { writeSecretFile } from "../common/files.ts";
import { assertComponentId } from "../pki/names.ts";
import { credsFile, encodeUserJwt } from "./jwts.ts";
import { NativeKeyPair } from "./native-keys.ts";
import type { TenantService } from "./tenants.ts";
import type { ServiceCredential } from "./tenant-store.ts";

/** How long a service may answer a request it received (nanoseconds), as for edge users. */
const RESPONSE_TTL_NS = 120 * 1_000_000_000;

export interface CredentialSpec {
  /** Edge-view subjects (wildcards allowed); default: the whole namespace. */
  publish?: string[];
  subscribe?: string[];
  /** The JetStream API to read and consume the tenant's streams (default true). */
  jetstream?: boolean;
  days?: number;
  /** Where the `.creds` file goes (default: the data dir's `tenants/<slug>/creds/<name>.creds`). */
  out?: string;
}

export interface IssuedCredential {
  tenant: string;
  credential: ServiceCredential;
  file: string;
}

/** An edge-view subject or wildcard (`events.>`, `jobs.*`) → the tenant's (`acme-corp.events.>`). */
function tenantScoped(slug: string, subject: string, what: string): string {
  const tokens = subject.split(".");
  const bad = (why: string): CodedError => new CodedError("invalid_subject", `${what} ${JSON.stringify(subject)} ${why}; write subjects in the edge view, e.g. "events.>" (the tenant prefix "${slug}." is added)`);
  if (tokens.some((t) => t.length === 0 || /\s/.test(t) || [...t].some((c) => c.charCodeAt(0) < 0x20))) throw bad("has an empty token, whitespace or a control character");
  if (tokens.some((t, i) => t === ">" && i !== tokens.length - 1)) throw bad('has ">" before its last token');
  if (!isPrefixedTenantSubject(subject)) throw bad("is outside the tenant's namespace");
  return `${slug}.${subject}`;
}

export async function issueCredential(tenants: TenantService, slug: string, name: string, spec: CredentialSpec, defaultOut: (slug: string, name: string) => string): Promise<IssuedCredential> {
  assertComponentId(name);
  const loaded = await tenants.load(slug);
  if (loaded.record.status !== "active") throw new CodedError(`tenant_${loaded.record.status}`, `tenant "${slug}" is ${loaded.record.status}; credentials are issued for active tenants`);
  const existing = (loaded.record.credentials ?? []).find((c) => c.name === name && !c.revoked_at);
  if (existing) throw new CodedError("credentials_exist", `tenant "${slug}" already has credentials "${name}" (user ${existing.user_public_key}); revoke them first ("tenant-gateway tenant creds-revoke ${slug} ${name}") or pick another name`);

  const publish = (spec.publish?.length ? spec.publish : [">"]).map((s) => tenantScoped(slug, s, "--pub subject"));
  const subscribe = (spec.subscribe?.length ? spec.subscribe : [">"]).map((s) => tenantScoped(slug, s, "--sub subject"));
  const jetstream = spec.jetstream ?? true;
  const edge = edgePublishPermissions(slug, TenantStores.NONE);
  const user = NativeKeyPair.create("user");
  const now = Date.now();
  const exp = spec.days === undefined ? undefined : Math.floor(now / 1000) + spec.days * 86_400;
  const jwt = await encodeUserJwt(name, user, {
    signer: loaded.signingKey,
    account: loaded.record.account_public_key,
    permissions: {
      pub: { allow: [...publish, ...(jetstream ? edge.allow.filter((s) => s.startsWith("$JS.")) : [])], deny: edge.deny },
      // Replies of requests and of the JetStream API come to the client's own inboxes.
      sub: { allow: [...subscribe, "_INBOX.>"] },
      resp: { max: 1, ttl: RESPONSE_TTL_NS },
    },
    tags: [`tenant:${slug}`, `service:${name}`],
    ...(exp === undefined ? {} : { exp }),
  });
  const credential: ServiceCredential = {
    name,
    user_public_key: user.getPublicKey(),
    publish,
    subscribe,
    jetstream,
    issued_at: new Date(now).toISOString(),
    ...(exp === undefined ? {} : { expires_at: new Date(exp * 1000).toISOString() }),
  };
  const file = spec.out ?? defaultOut(slug, name);
  // The file first: a recorded credential whose file was never written would be a user nobody holds.
  await writeSecretFile(file, credsFile(jwt, user));
  await tenants.update(slug, (record) => ({ ...record, credentials: [...(record.credentials ?? []).filter((c) => !(c.name === name && c.revoked_at)), credential] }));
  return { tenant: slug, credential, file };
}

/** Revoked for good in the account: NATS cuts its connections at once and refuses it from then on. */
export async function revokeCredential(tenants: TenantService, slug: string, name: string): Promise<{ tenant: string; credential: ServiceCredential; status: "revoked" | "already_revoked" }> {
  const record = await tenants.get(slug);
  const current = (record.credentials ?? []).filter((c) => c.name === name);
  const active = current.find((c) => !c.revoked_at);
  if (!active) {
    if (current.length > 0) return { tenant: slug, credential: current[current.length - 1]!, status: "already_revoked" };
    throw new CodedError("credentials_not_found", `tenant "${slug}" has no credentials "${name}" (see "tenant-gateway tenant creds-list ${slug}")`);
  }
  const revoked = { ...active, revoked_at: new Date().toISOString() };
  await tenants.update(slug, (r) => ({ ...r, credentials: (r.credentials ?? []).map((c) => (c.user_public_key === active.user_public_key ? revoked : c)) }));
  return { tenant: slug, credential: revoked, status: "revoked" };
}

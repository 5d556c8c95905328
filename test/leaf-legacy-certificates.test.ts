/**
 * The migration path for components that predate tenants: certificates `CN=<component>.serviceradar`
 * issued by the platform CA (as the seed system's generate-certs.sh issued them, with openssl) are
 * admitted into the configured legacy tenant, as clients and as leaf nodes, logged and counted as
 * legacy. Off unless `legacy_tenant` is set; never for a certificate a tenant CA issued.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import test from "ava";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { admit } from "../gateway/admission.ts";
import { CaIndex, type IdentityError, type Identity } from "../pki/identity.ts";
import { startDeployment, type ClientTls, type Deployment } from "./helpers/gateway-fixture.ts";
import { startLeafSite, untilReceived } from "./helpers/leaf-site.ts";
import { tempDir } from "./helpers/tmp.ts";

const run = promisify(execFile);
let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "default"], gateway: { leaf_listen: "127.0.0.1:0", legacy_tenant: "default" } });
});

test.after.always(async () => {
  await dep?.stop();
});

/** A pre-tenant certificate, made the way the seed system made them: openssl, signed by `ca`. */
async function legacyCertificate(cn: string, ca: { cert: string; key: string }): Promise<ClientTls> {
  const dir = tempDir("ntg-legacy-");
  const key = path.join(dir, "key.pem");
  const csr = path.join(dir, "req.csr");
  const cert = path.join(dir, "cert.pem");
  const ext = path.join(dir, "ext.cnf");
  await fs.writeFile(ext, `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:${cn}\n`);
  await run("openssl", ["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-subj", `/O=ServiceRadar/CN=${cn}`, "-out", csr]);
  await run("openssl", ["x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-CAserial", path.join(dir, "ca.srl"), "-days", "30", "-sha256", "-extfile", ext, "-out", cert]);
  return { cert: await fs.readFile(cert, "utf8"), key: await fs.readFile(key, "utf8"), ca: await fs.readFile(dep.layout.rootCert, "utf8") };
}

const platformCa = (): { cert: string; key: string } => ({ cert: dep.layout.platformCaCert, key: dep.layout.platformCaKey });

function first(sub: AsyncIterable<Msg>): Promise<Msg> {
  return (async () => {
    for await (const m of sub) return m;
    throw new Error("subscription ended");
  })();
}

async function closeAll(...ncs: NatsConnection[]): Promise<void> {
  await Promise.all(ncs.map((nc) => nc.close().catch(() => undefined)));
}

test("a pre-tenant client certificate from the platform CA is admitted into the legacy tenant, logged and counted as legacy", async (t) => {
  const nc = await dep.v3(await legacyCertificate("poller.serviceradar", platformCa()));
  const direct = await dep.direct("default");
  t.teardown(() => closeAll(nc, direct));
  const seen = first(direct.subscribe("default.events.>"));
  await direct.flush();
  nc.publish("events.poller.health", "legacy up");
  const m = await seen;
  t.is(m.subject, "default.events.poller.health", "its un-prefixed subjects land in the legacy tenant's namespace");
  const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.cn === "poller.serviceradar");
  t.is(accepted.tenant, "default");
  t.is(accepted.component, "poller");
  t.is(accepted.partition, "legacy");
  t.true(accepted.legacy);
  await dep.logs.waitFor((l) => l.event === "legacy_certificate" && l.cn === "poller.serviceradar");
  t.true(dep.gateway.stats.legacy >= 1);
});

test("a pre-tenant leaf node is admitted into the legacy tenant", async (t) => {
  const site = await startLeafSite(dep, { tenant: "default", partition: "legacy-site", tls: await legacyCertificate("leaf.serviceradar", platformCa()) });
  t.teardown(() => site.stop());
  const local = await site.client();
  const direct = await dep.direct("default");
  t.teardown(() => closeAll(local, direct));
  const atPlatform = first(direct.subscribe("default.events.legacy-leaf"));
  await untilReceived(() => local.publish("events.legacy-leaf", "from an old site"), atPlatform);
  const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.cn === "leaf.serviceradar");
  t.true(accepted.legacy);
  t.is(accepted.tenant, "default");
  t.true((dep.gateway.leafStats?.legacy ?? 0) >= 1);
});

test("a certificate of the pre-tenant format from a tenant CA is not legacy: refused as a CN of no known format", async (t) => {
  const acmeCa = { cert: dep.layout.tenantCa("acme-corp").cert, key: dep.layout.tenantCa("acme-corp").key };
  await t.throwsAsync(dep.v3(await legacyCertificate("agent.serviceradar", acmeCa), { timeout: 5000 }));
  const refused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.cn === "agent.serviceradar");
  t.is(refused.code, "invalid_cn_format");
});

test("admission: legacy certificates are refused unless a legacy tenant is configured, and the mode admits nothing else", async (t) => {
  const root = new X509Certificate(await fs.readFile(dep.layout.rootCert, "utf8"));
  const platform = new X509Certificate(await fs.readFile(dep.layout.platformCaCert, "utf8"));
  const trust = new CaIndex(root, [{ kind: "platform", cert: platform }]);
  const tenants = new Map([["default", { record: { status: "active" as const } }]]);
  const registry = Object.assign(trust, { get: (slug: string) => tenants.get(slug), revocation: (_: Identity) => undefined });
  const legacy = await legacyCertificate("checker.serviceradar", platformCa());
  const leaf = new X509Certificate(legacy.cert);
  const off = t.throws(() => admit(leaf, [], registry, ["admin"]));
  t.is((off as IdentityError).code, "invalid_cn_format");
  const on = admit(leaf, [], registry, ["admin"], undefined, { legacyTenant: "default" });
  t.is(on.kind, "edge");
  if (on.kind === "edge") {
    t.true(on.legacy);
    t.like(on.identity, { tenant: "default", component: "checker", partition: "legacy", cn: "checker.serviceradar" });
  }
  const other = await legacyCertificate("x.y.z.w.serviceradar", platformCa());
  const refused = t.throws(() => admit(new X509Certificate(other.cert), [], registry, ["admin"], undefined, { legacyTenant: "default" }));
  t.is((refused as IdentityError).code, "invalid_cn_format", "only <component>.serviceradar is the pre-tenant format");
  const missing = t.throws(() => admit(leaf, [], registry, ["admin"], undefined, { legacyTenant: "nobody" }));
  t.is((missing as IdentityError).code, "unknown_tenant", "a legacy tenant that does not exist admits no one");
});

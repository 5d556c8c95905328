/**
 * `tenant-gateway pki identify` is step 1 of troubleshooting: it must answer exactly what the
 * gateway does with the same certificate — the gateway's own admission, over the registry
 * (tenants, their CAs and status) and the gateway's config (`platform.allowed_identities`).
 * Every case here connects a stock client to a running gateway and asks identify, and both must
 * give the same verdict and code.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { connect } from "@nats-io/transport-node";
import { ensureTenantCa, issueComponentFiles, issuePlatformIdentityFiles } from "../pki/authority.ts";
import { runCliJson } from "./helpers/cli.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { tempDir } from "./helpers/tmp.ts";

let d: Deployment;

test.before(async () => {
  d = await startDeployment({ tenants: ["acme-corp", "globex"] });
});

test.after.always(async () => {
  await d?.stop();
});

interface Verdict {
  accepted: boolean;
  code?: string;
}

/** What the gateway does with a client presenting `certPem` (a leaf, or a leaf and its chain). */
async function gatewayVerdict(cn: string, certPem: string, keyPem: string): Promise<Verdict> {
  const seen = d.logs.lines.length;
  const decided = (l: Record<string, unknown>) => (l.event === "connection_refused" || l.event === "connection_accepted") && l.cn === cn && d.logs.lines.indexOf(l) >= seen;
  // A stock client's view is not the verdict: a suspended tenant's connection is held, not closed.
  const nc = await connect({ servers: d.url, tls: { cert: certPem, key: keyPem, ca: await fs.readFile(d.layout.rootCert, "utf8") }, reconnect: false, timeout: 5000 }).catch(() => undefined);
  const line = await d.logs.waitFor(decided);
  await nc?.close();
  return line.event === "connection_accepted" ? { accepted: true } : { accepted: false, code: line.code as string };
}

/** What `pki identify` says, with its exit code. */
async function identifyVerdict(args: string[]): Promise<Verdict & { exit: number; json: Record<string, unknown> }> {
  const r = await runCliJson<{ accepted: boolean; code?: string }>(["pki", "identify", ...args, "--data-dir", d.layout.dir, "--nats", d.nats.url], { TENANT_GATEWAY_CONFIG: "" });
  return { accepted: r.json.accepted, ...(r.json.code ? { code: r.json.code } : {}), exit: r.code, json: r.json as Record<string, unknown> };
}

test("an active tenant's certificate: accepted by both, identify names the tenant and its status", async (t) => {
  const { files, common_name } = await issueComponentFiles(d.layout, { tenant: "acme-corp", component: "agent-007", partition: "p1" });
  t.deepEqual(await gatewayVerdict(common_name, await fs.readFile(files.cert, "utf8"), await fs.readFile(files.key, "utf8")), { accepted: true });
  const id = await identifyVerdict([files.cert]);
  t.true(id.accepted);
  t.is(id.exit, 0);
  t.like(id.json, { tenant: { slug: "acme-corp", status: "active", plan: "pro" } });
});

test("a suspended tenant: identify refuses with tenant_suspended, as the gateway does", async (t) => {
  const { files, common_name } = await issueComponentFiles(d.layout, { tenant: "globex", component: "agent-001", partition: "p1" });
  await d.tenants.suspend("globex");
  await d.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "globex" && l.status === "suspended");
  const gateway = await gatewayVerdict(common_name, await fs.readFile(files.cert, "utf8"), await fs.readFile(files.key, "utf8"));
  t.deepEqual(gateway, { accepted: false, code: "tenant_suspended" });
  const id = await identifyVerdict([files.cert]);
  t.deepEqual({ accepted: id.accepted, code: id.code }, gateway);
  t.is(id.exit, 1);
});

test("a platform name not in allowed_identities: refused by both; allowed by the config identify is given", async (t) => {
  const { files, common_name } = await issuePlatformIdentityFiles(d.layout, "ops");
  const gateway = await gatewayVerdict(common_name, await fs.readFile(files.cert, "utf8"), await fs.readFile(files.key, "utf8"));
  t.deepEqual(gateway, { accepted: false, code: "platform_identity_not_allowed" });
  const id = await identifyVerdict([files.cert]);
  t.deepEqual({ accepted: id.accepted, code: id.code }, gateway);
  t.is(id.exit, 1);

  const config = path.join(tempDir("ntg-idcfg-"), "gateway.yaml");
  await fs.writeFile(config, "platform:\n  allowed_identities: [admin, ops]\n");
  const allowed = await identifyVerdict([files.cert, "--config", config]);
  t.true(allowed.accepted, JSON.stringify(allowed.json));
  t.is(allowed.exit, 0);
});

test("a CA with no tenant record: refused by both, with the same code, leaf alone or with its chain", async (t) => {
  await ensureTenantCa(d.layout, "ghost");
  const { files, common_name } = await issueComponentFiles(d.layout, { tenant: "ghost", component: "agent-001", partition: "p1" });
  const key = await fs.readFile(files.key, "utf8");

  const leafAlone = await gatewayVerdict(common_name, await fs.readFile(files.cert, "utf8"), key);
  t.false(leafAlone.accepted);
  const id = await identifyVerdict([files.cert]);
  t.deepEqual({ accepted: id.accepted, code: id.code }, leafAlone);
  t.is(id.exit, 1);

  const withChain = await gatewayVerdict(common_name, await fs.readFile(files.chain, "utf8"), key);
  t.deepEqual(withChain, { accepted: false, code: "unknown_tenant" });
  const idChain = await identifyVerdict([files.chain]);
  t.deepEqual({ accepted: idChain.accepted, code: idChain.code }, withChain);
});

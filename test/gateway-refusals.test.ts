/**
 * Who gets no session: every refusal ends with -ERR 'Authorization Violation' for the client and
 * a logged code for the operator, and never touches another session.
 */
import { execFileSync } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { loadTenantCa } from "../pki/authority.ts";
import { createRootCa, createTenantCa, issueEdgeCertificate, issuePlatformIdentity } from "../pki/certificates.ts";
import { issuePlatformIdentityFiles } from "../pki/authority.ts";
import { startDeployment, type ClientTls, type Deployment } from "./helpers/gateway-fixture.ts";
import { tempDir } from "./helpers/tmp.ts";

let dep: Deployment;
let root: string;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "globex", "initech", "umbrella"] });
  root = await fs.readFile(dep.layout.rootCert, "utf8");
});

test.after.always(async () => {
  await dep?.stop();
});

/** Connects with `tls`, expects a refusal, and returns the code the gateway logged for it. */
async function refusedCode(t: { regex: (s: string, r: RegExp) => void }, tls: Partial<ClientTls>, cnHint: string | undefined): Promise<string> {
  const before = dep.logs.lines.length;
  const err = await dep.v2({ ca: root, ...tls } as ClientTls).then(
    async (nc) => {
      await nc.close();
      throw new Error("connected, but should have been refused");
    },
    (e: Error) => e,
  );
  t.regex(String((err as { code?: string }).code ?? err.message), /AUTHORIZATION_VIOLATION|Authorization Violation/i);
  const line = await dep.logs.waitFor((l) => l.event === "connection_refused" && dep.logs.lines.indexOf(l) >= before && (cnHint === undefined || l.cn === cnHint));
  return String(line.code);
}

test.serial("no client certificate: missing_certificate", async (t) => {
  t.is(await refusedCode(t, {}, undefined), "missing_certificate");
});

test.serial("a certificate from another root: unknown_issuer", async (t) => {
  const otherRoot = await createRootCa();
  const otherCa = await createTenantCa(otherRoot, "acme-corp");
  const leaf = await issueEdgeCertificate(otherCa, { tenant: "acme-corp", component: "rogue-1", partition: "partition-1" });
  // The client sends its whole chain, as a careful attacker would.
  const code = await refusedCode(t, { cert: `${leaf.certPem}${otherCa.certPem}`, key: leaf.keyPem }, "rogue-1.partition-1.acme-corp.serviceradar");
  t.is(code, "unknown_issuer");
});

test.serial("an expired certificate: expired", async (t) => {
  const ca = await loadTenantCa(dep.layout, "acme-corp");
  const day = 86_400_000;
  const leaf = await issueEdgeCertificate(ca, { tenant: "acme-corp", component: "old-1", partition: "partition-1", validity: { notBefore: new Date(Date.now() - 30 * day), notAfter: new Date(Date.now() - day) } });
  t.is(await refusedCode(t, { cert: leaf.certPem, key: leaf.keyPem }, "old-1.partition-1.acme-corp.serviceradar"), "expired");
});

test.serial("a forged certificate (globex CN signed by acme-corp's CA): tenant_slug_mismatch", async (t) => {
  const ca = await loadTenantCa(dep.layout, "acme-corp");
  const leaf = await issueEdgeCertificate(ca, { tenant: "globex", component: "spy-1", partition: "partition-1" });
  t.is(await refusedCode(t, { cert: `${leaf.certPem}${ca.certPem}`, key: leaf.keyPem }, "spy-1.partition-1.globex.serviceradar"), "tenant_slug_mismatch");
});

test.serial("admin.platform.serviceradar signed by a tenant CA: platform_cn_from_tenant_ca", async (t) => {
  const ca = await loadTenantCa(dep.layout, "acme-corp");
  const leaf = await issuePlatformIdentity(ca, "admin");
  t.is(await refusedCode(t, { cert: leaf.certPem, key: leaf.keyPem }, "admin.platform.serviceradar"), "platform_cn_from_tenant_ca");
});

test.serial("a CN in a bad format: invalid_cn_format", async (t) => {
  const ca = await loadTenantCa(dep.layout, "acme-corp");
  const dir = tempDir();
  await fs.writeFile(path.join(dir, "ca-key.pem"), ca.keyPem, { mode: 0o600 });
  await fs.writeFile(path.join(dir, "ca.pem"), ca.certPem);
  await fs.writeFile(path.join(dir, "ext.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n");
  const o = (args: string[]): void => void execFileSync("openssl", args, { stdio: "ignore" });
  o(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", path.join(dir, "k.pem"), "-subj", "/CN=agent-001.acme-corp.serviceradar", "-out", path.join(dir, "r.csr")]);
  o(["x509", "-req", "-in", path.join(dir, "r.csr"), "-CA", path.join(dir, "ca.pem"), "-CAkey", path.join(dir, "ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", path.join(dir, "ext.cnf"), "-out", path.join(dir, "c.pem")]);
  const tls = { cert: await fs.readFile(path.join(dir, "c.pem"), "utf8"), key: await fs.readFile(path.join(dir, "k.pem"), "utf8") };
  t.is(await refusedCode(t, tls, "agent-001.acme-corp.serviceradar"), "invalid_cn_format");
});

test.serial("a platform identity that is not allowed to cross tenants: platform_identity_not_allowed", async (t) => {
  const core = await issuePlatformIdentityFiles(dep.layout, "core");
  const tls = { cert: await fs.readFile(core.files.cert, "utf8"), key: await fs.readFile(core.files.key, "utf8") };
  t.is(await refusedCode(t, tls, "core.platform.serviceradar"), "platform_identity_not_allowed");
});

test.serial("a suspended tenant: its live session is cut, new ones held and refused (tenant_suspended); resume releases them and lets it back", async (t) => {
  const tls = await dep.edge("initech");
  const live = await dep.v3(tls);
  const closed = live.closed();
  const bystander = await dep.v3(await dep.edge("acme-corp", "bystander"));
  t.teardown(() => bystander.close());
  const before = dep.logs.lines.length;
  await dep.tenants.suspend("initech");
  await closed;
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "initech" && l.status === "suspended" && dep.logs.lines.indexOf(l) >= before);
  // A new connection is held, not admitted (stock clients refused twice give up for good): it
  // connects, every publish is refused, and the log says why.
  const held = await dep.v3(tls);
  const refused = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.cn === "agent-001.partition-1.initech.serviceradar" && dep.logs.lines.indexOf(l) >= before);
  t.like(refused, { code: "tenant_suspended", held: true });
  await t.throwsAsync(held.request("events.held", "anyone?", { timeout: 5000 }), { message: /permissions violation/i });
  const released = held.closed();
  // Another tenant's session is untouched.
  const sub = bystander.subscribe("events.bystander", { max: 1 });
  bystander.publish("events.bystander", "still here");
  for await (const m of sub) t.is(m.string(), "still here");
  const beforeResume = dep.logs.lines.length;
  await dep.tenants.resume("initech");
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "initech" && l.status === "active" && dep.logs.lines.indexOf(l) >= beforeResume);
  // The held connection is released (it reconnects by itself when it may); a new one is served.
  await released;
  const back = await dep.v3(tls);
  await back.flush();
  t.truthy(back.info?.server_id);
  await back.close();
});

test.serial("a deleted tenant: unknown_tenant", async (t) => {
  const tls = await dep.edge("umbrella");
  const caPem = await fs.readFile(dep.layout.tenantCa("umbrella").cert, "utf8");
  const live = await dep.v3(tls);
  const closed = live.closed();
  const before = dep.logs.lines.length;
  await dep.tenants.delete("umbrella");
  await closed;
  await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "umbrella" && l.change === "removed" && dep.logs.lines.indexOf(l) >= before);
  // With its (genuine, root-signed) CA in the chain, the gateway can say exactly why.
  t.is(await refusedCode(t, { ...tls, cert: tls.cert + caPem }, "agent-001.partition-1.umbrella.serviceradar"), "unknown_tenant");
});

test.serial("a client that never starts TLS gets no session", async (t) => {
  const net = await import("node:net");
  const before = dep.logs.lines.length;
  const socket = net.connect({ host: "127.0.0.1", port: dep.gateway.port });
  t.teardown(() => socket.destroy());
  const first = await new Promise<string>((resolve) => socket.once("data", (d) => resolve(d.toString())));
  t.regex(first, /^INFO \{.*"tls_required":true/);
  socket.write('CONNECT {"verbose":false}\r\nPING\r\n');
  await new Promise((resolve) => socket.once("close", resolve));
  const line = await dep.logs.waitFor((l) => l.event === "connection_refused" && dep.logs.lines.indexOf(l) >= before);
  t.is(line.code, "tls_handshake_failed");
});

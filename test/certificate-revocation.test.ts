/**
 * Revoking one certificate, live, on both tenant stores with two gateway replicas each: its
 * sessions on every replica are cut within a second (its NATS user is revoked in the account, so
 * NATS cuts them on every server), the next connect to any replica is refused with
 * `certificate_revoked` (each replica follows the registry), other certificates of the tenant carry
 * on, and the revocation is listed by `tenant show`. Renewal: a new key and certificate for the
 * same identity, the old one valid until revoked (`--revoke-old`). Stock `nats` v2 clients.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { connect, type NatsConnection } from "nats";
import { revokeCertificate } from "../accounts/certificate-lifecycle.ts";
import type { StoreKind } from "../accounts/control-plane.ts";
import { createLogger } from "../common/logger.ts";
import { resolveConfig } from "../gateway/config.ts";
import { Gateway } from "../gateway/gateway.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { LogCapture } from "./helpers/gateway-fixture.ts";
import { tempDir } from "./helpers/tmp.ts";
import { startReplicas, type ReplicatedDeployment } from "./helpers/replicas.ts";

interface Refusal {
  code: string;
  cn?: string;
  reason?: string;
}

/** Connects through replica `i` expecting a refusal; resolves with the code the replica logged. */
async function refusedBy(dep: ReplicatedDeployment, i: number, tls: Parameters<ReplicatedDeployment["v2"]>[1], cn: string): Promise<Refusal> {
  const logs = dep.replicas[i]!.logs;
  const since = logs.lines.length;
  const attempt = await dep.v2(i, tls).then(
    async (nc) => {
      await nc.close();
      return "connected";
    },
    (err: Error) => err.message,
  );
  if (attempt === "connected") throw new Error(`replica ${i} admitted ${cn}`);
  const line = await logs.waitFor((l) => l.event === "connection_refused" && l.cn === cn && logs.lines.indexOf(l) >= since);
  return { code: line.code as string, cn: line.cn as string, reason: line.reason as string };
}

/** Resolves with the time the connection closed. */
function closedAt(nc: NatsConnection): Promise<number> {
  return nc.closed().then(() => Date.now());
}

function revocationSuite(store: StoreKind): void {
  const deployment = startReplicas({ store, replicas: 2, tenants: ["acme-corp", "globex"] });
  test.after.always(async () => (await deployment).stop());

  test.serial(`${store} store: a revoked certificate's sessions on every replica are cut within a second, and the next connect to any replica is refused with certificate_revoked`, async (t) => {
    const dep = await deployment;
    const leaked = await dep.edge("acme-corp", "agent-leaked");
    const sibling = await dep.edge("acme-corp", "agent-sibling");
    const sessions = [await dep.v2(0, leaked), await dep.v2(1, leaked)];
    const others = [await dep.v2(0, sibling), await dep.v2(1, sibling)];
    t.teardown(() => Promise.all(others.map((nc) => nc.close())));
    const closed = sessions.map(closedAt);
    const since = dep.replicas.map((r) => r.logs.lines.length);

    const started = Date.now();
    const result = await revokeCertificate(dep.cp, dep.tenants, { cert: leaked.x509, reason: "key leaked" });
    t.is(result.status, "revoked");
    for (const [i, at] of (await Promise.all(closed)).entries()) t.true(at - started < 1000, `replica ${i}'s session was cut after ${at - started} ms`);

    // Another certificate of the same tenant carries on, on both replicas.
    for (const nc of others) {
      const sub = nc.subscribe("events.sibling", { max: 1 });
      nc.publish("events.sibling", "still here");
      for await (const m of sub) t.is(m.string(), "still here");
    }
    const cn = "agent-leaked.partition-1.acme-corp.serviceradar";
    for (const i of [0, 1]) {
      await dep.changed(i, "acme-corp", since[i]!);
      const refusal = await refusedBy(dep, i, leaked, cn);
      t.is(refusal.code, "certificate_revoked", `replica ${i}`);
      t.regex(refusal.reason!, /revoked at .*\(key leaked\)/);
    }
    // `pki identify` answers exactly what the gateway does.
    const identify = await dep.cli<{ accepted: boolean; code: string }>(["pki", "identify", dep.layout.component("acme-corp", "agent-leaked", "partition-1").cert]);
    t.is(identify.code, 1);
    t.like(identify.json, { accepted: false, code: "certificate_revoked" });
  });

  test.serial(`${store} store: a certificate issued by the CLI is revoked by its serial alone; tenant show and pki revocations list it; a second revocation changes nothing`, async (t) => {
    const dep = await deployment;
    const issued = await dep.cli<{ serial_number: string; files: { cert: string; key: string } }>(["pki", "issue", "--tenant", "globex", "--component", "poller-7", "--partition", "p1"]);
    t.is(issued.code, 0, issued.stderr);
    const tls = await dep.edge("globex", "other-component");
    const nc = await dep.v2(0, { ...tls, cert: await readFile(issued.json.files.cert), key: await readFile(issued.json.files.key) });
    const cut = nc.closed();

    const revoked = await dep.cli<{ status: string; certificate: { serial_number: string; subject_cn: string; reason: string } }>(["pki", "revoke", "--tenant", "globex", "--serial", issued.json.serial_number.toUpperCase(), "--reason", "decommissioned"]);
    t.is(revoked.code, 0, revoked.stderr);
    t.like(revoked.json, { status: "revoked", certificate: { serial_number: issued.json.serial_number, subject_cn: "poller-7.p1.globex.serviceradar", reason: "decommissioned" } });
    await cut;

    const shown = await dep.cli<{ revoked_certificates: Array<{ serial_number: string; reason?: string; user_public_key?: string }> }>(["tenant", "show", "globex"]);
    const entry = shown.json.revoked_certificates.find((r) => r.serial_number === issued.json.serial_number);
    t.like(entry, { reason: "decommissioned" });
    t.is(entry?.user_public_key, undefined, "tenant show prints what was revoked, not internals");
    const listed = await dep.cli<{ revoked_certificates: Array<{ serial_number: string }> }>(["pki", "revocations", "globex"]);
    t.true(listed.json.revoked_certificates.some((r) => r.serial_number === issued.json.serial_number));
    const inventory = await dep.cli<{ certificates: Array<{ serial_number: string; state: string; source: string }> }>(["pki", "certificates", "globex"]);
    t.like(
      inventory.json.certificates.find((c) => c.serial_number === issued.json.serial_number),
      { state: "revoked", source: "pki issue" },
    );

    const again = await dep.cli<{ status: string }>(["pki", "revoke", "--tenant", "globex", "--serial", issued.json.serial_number]);
    t.is(again.json.status, "already_revoked");
    const unknown = await dep.cli<{ error: { code: string } }>(["pki", "revoke", "--tenant", "globex", "--serial", "0badc0de"]);
    t.is(unknown.code, 1);
    t.is(unknown.json.error.code, "certificate_not_found");
  });

  test.serial(`${store} store: a revoked platform certificate is cut and refused; another certificate of the same platform identity still connects`, async (t) => {
    const dep = await deployment;
    const first = await dep.platform("admin");
    const second = await dep.platform("admin");
    const session = await dep.v2(1, first);
    const cut = session.closed();
    const since = dep.replicas[0]!.logs.lines.length;
    const revoked = await dep.cli<{ status: string; scope: string }>(["pki", "revoke", "--platform", "--fingerprint", first.x509.fingerprint256]);
    t.is(revoked.code, 0, revoked.stderr);
    t.like(revoked.json, { status: "revoked", scope: "platform" });
    await cut;
    await dep.replicas[0]!.logs.waitFor((l) => l.event === "platform_trust_changed" && dep.replicas[0]!.logs.lines.indexOf(l) >= since);
    t.is((await refusedBy(dep, 0, first, "admin.platform.serviceradar")).code, "certificate_revoked");
    const other = await dep.v2(0, second);
    await other.flush();
    await other.close();
  });

  test.serial(`${store} store: pki renew --revoke-old gives the identity a new certificate that connects, and cuts and refuses the old one`, async (t) => {
    const dep = await deployment;
    const old = await dep.edge("acme-corp", "agent-renewed");
    const session = await dep.v2(0, old);
    const cut = session.closed();
    const since = dep.replicas[1]!.logs.lines.length;
    const renewed = await dep.cli<{ issued: { serial_number: string; files: { cert: string; key: string } }; previous: { serial_number: string; status: string } }>([
      "pki",
      "renew",
      "--tenant",
      "acme-corp",
      "--component",
      "agent-renewed",
      "--partition",
      "partition-1",
      "--revoke-old",
    ]);
    t.is(renewed.code, 0, renewed.stderr);
    t.is(renewed.json.previous.serial_number, old.x509.serialNumber.toLowerCase());
    t.is(renewed.json.previous.status, "revoked");
    t.not(renewed.json.issued.serial_number, renewed.json.previous.serial_number);
    await cut;
    await dep.changed(1, "acme-corp", since);
    t.is((await refusedBy(dep, 1, old, "agent-renewed.partition-1.acme-corp.serviceradar")).code, "certificate_revoked");
    const fresh = await dep.v2(1, { ...old, cert: await readFile(renewed.json.issued.files.cert), key: await readFile(renewed.json.issued.files.key) });
    await fresh.flush();
    await fresh.close();
  });

  test.serial(`${store} store: pki renew without --revoke-old leaves the old certificate valid, and pki issue over existing files says which certificate it replaced`, async (t) => {
    const dep = await deployment;
    const old = await dep.edge("globex", "agent-overlap");
    const renewed = await dep.cli<{ previous: { status: string } }>(["pki", "renew", "--tenant", "globex", "--component", "agent-overlap", "--partition", "partition-1", "--days", "30"]);
    t.is(renewed.code, 0, renewed.stderr);
    t.is(renewed.json.previous.status, "valid_until_expiry");
    const stillValid = await dep.v2(0, old);
    await stillValid.flush();
    await stillValid.close();

    const reissued = await dep.cli<{ serial_number: string; replaced: { serial_number: string } }>(["pki", "issue", "--tenant", "globex", "--component", "agent-overlap", "--partition", "partition-1"]);
    t.is(reissued.code, 0);
    t.truthy(reissued.json.replaced?.serial_number, "the JSON names the certificate the files held");
    const text = await runCli(["pki", "issue", "--tenant", "globex", "--component", "agent-overlap", "--partition", "partition-1", "--data-dir", dep.layout.dir, "--store", store, "--nats", dep.nats.url]);
    t.is(text.code, 0);
    t.regex(text.stdout, new RegExp(`warning: it replaces certificate ${reissued.json.serial_number}, which stays valid until .*\n.*pki revoke --serial ${reissued.json.serial_number} --tenant globex`));
  });
}

test.serial("a data-plane export carries the platform's trust state: a gateway serving from it refuses a platform certificate revoked on the control plane once the export is re-run", async (t) => {
  const dep = await startReplicas({ store: "dir", replicas: 0, tenants: [] });
  t.teardown(() => dep.stop());
  const admin = await dep.platform("admin");
  const target = new DataLayout(tempDir("ntg-dp-"));
  const exported = await runCliJson<{ files: Array<{ file: string }> }>(["export", "dataplane", target.dir, "--data-dir", dep.layout.dir]);
  t.is(exported.code, 0, exported.stderr);
  const logs = new LogCapture();
  const config = await resolveConfig({ env: {}, flags: { listen: "127.0.0.1:0", nats: dep.nats.url, data_dir: target.dir, sync_on_start: false, registry_poll_ms: 100, log_level: "info" } });
  const gateway = await Gateway.start(config, createLogger({ level: "info", destination: logs }));
  t.teardown(() => gateway.shutdown(0));
  const connectAdmin = (): Promise<NatsConnection> => connect({ servers: `tls://127.0.0.1:${gateway.port}`, tls: { cert: admin.cert, key: admin.key, ca: admin.ca }, reconnect: false });
  const session = await connectAdmin();
  const cut = session.closed();

  t.is((await dep.cli(["pki", "revoke", "--cert", dep.layout.platformIdentity("admin").cert])).code, 0);
  await cut;
  const again = await runCliJson<{ files: Array<{ file: string; result: string }> }>(["export", "dataplane", target.dir, "--data-dir", dep.layout.dir]);
  t.like(again.json.files.find((f) => f.file === path.join("registry", "platform", "trust.json")), { result: "written" });
  await logs.waitFor((l) => l.event === "platform_trust_changed");
  await t.throwsAsync(connectAdmin());
  t.is((await logs.waitFor((l) => l.event === "connection_refused" && l.cn === "admin.platform.serviceradar")).code, "certificate_revoked");
});

function readFile(file: string): Promise<string> {
  return fs.readFile(file, "utf8");
}

revocationSuite("dir");
revocationSuite("kv");

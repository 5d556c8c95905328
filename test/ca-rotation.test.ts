/**
 * CA rotation with an overlap, against live gateways and stock `nats` v2 clients: after
 * `pki rotate-ca`, certificates of the previous CA and of the new one both connect until the
 * deadline; a session of the previous CA ends at the deadline (its user JWT expires then); after it
 * only the new CA's certificates connect (`retired_ca`). The same for the platform CA, whose
 * rotation also re-issues the gateway's server certificate; and the gateway's server certificate
 * re-issued alone (new hostnames) without touching any CA.
 */
import { createHash, X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import tls from "node:tls";
import test from "ava";
import { createLogger } from "../common/logger.ts";
import { resolveConfig } from "../gateway/config.ts";
import { Gateway } from "../gateway/gateway.ts";
import { spkiSha256 } from "../pki/certificates.ts";
import { runCliJson } from "./helpers/cli.ts";
import { LogCapture, type ClientTls } from "./helpers/gateway-fixture.ts";
import { startReplicas, type ReplicatedDeployment } from "./helpers/replicas.ts";

const dirDeployment = startReplicas({ store: "dir", replicas: 1, tenants: ["acme-corp", "globex"] });
const kvDeployment = startReplicas({ store: "kv", replicas: 2, tenants: ["initech"] });
test.after.always(async () => {
  await (await dirDeployment).stop();
  await (await kvDeployment).stop();
});

/** The refusal code replica `i` logs for this client, or "connected". */
async function verdict(dep: ReplicatedDeployment, i: number, client: ClientTls & { x509: X509Certificate }): Promise<string> {
  const logs = dep.replicas[i]!.logs;
  const since = logs.lines.length;
  const cn = client.x509.subject.split("\n").find((l) => l.startsWith("CN="))!.slice(3);
  try {
    const nc = await dep.v2(i, client);
    await nc.flush();
    await nc.close();
    return "connected";
  } catch {
    const line = await logs.waitFor((l) => l.event === "connection_refused" && l.cn === cn && logs.lines.indexOf(l) >= since);
    return line.code as string;
  }
}

/** The server certificate a replica serves to a new TLS-first connection. */
function servedCertificate(url: string): Promise<tls.PeerCertificate> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate());
      socket.destroy();
    });
    socket.once("error", reject);
  });
}

async function sha256(file: string): Promise<string> {
  return createHash("sha256").update(await fs.readFile(file)).digest("hex");
}

interface CaStatusJson {
  status?: string;
  active: { serial_number: string; spki_sha256: string };
  previous: Array<{ serial_number: string; spki_sha256: string; admitted_until: string; state: string }>;
  overlap_until?: string;
  gateway_certificate?: { hostnames: string[]; files: { cert: string } };
}

test.serial("during a tenant CA's overlap both CAs' certificates connect; a session of the previous CA ends at the deadline; after it only the new CA's certificates connect (retired_ca)", async (t) => {
  const dep = await dirDeployment;
  const old = await dep.edge("acme-corp", "agent-old");
  // A session opened before the rotation: its user JWT expires with its certificate, so the gateway itself ends it at the deadline.
  const before = await dep.v2(0, old);
  const since = dep.replicas[0]!.logs.lines.length;
  const rotated = await dep.cli<CaStatusJson>(["pki", "rotate-ca", "acme-corp", "--overlap", "6s"]);
  t.is(rotated.code, 0, rotated.stderr);
  t.is(rotated.json.status, "rotated");
  const newCa = new X509Certificate(await fs.readFile(dep.layout.tenantCa("acme-corp").cert, "utf8"));
  t.is(spkiSha256(newCa), rotated.json.active.spki_sha256, "ca.pem is the new CA");
  t.is(rotated.json.previous[0]!.spki_sha256, spkiSha256(new X509Certificate((await dep.tenants.get("acme-corp")).previous_cas![0]!.cert_pem)));
  t.is(rotated.json.previous[0]!.state, "overlap");
  const deadline = Date.parse(rotated.json.previous[0]!.admitted_until);
  t.is(deadline % 1000, 0, "a whole second, like a JWT's expiry");
  t.is(rotated.json.overlap_until, rotated.json.previous[0]!.admitted_until);
  await dep.changed(0, "acme-corp", since);

  const fresh = await dep.edge("acme-corp", "agent-new");
  t.true(Date.now() < deadline - 1000, "the checks of the overlap run before its deadline");
  t.is(await verdict(dep, 0, old), "connected", "the previous CA's certificate connects during the overlap");
  t.is(await verdict(dep, 0, fresh), "connected");
  t.is(fresh.x509.issuer, old.x509.issuer, "the new CA has the same name");
  t.true(fresh.x509.verify(newCa.publicKey) && !old.x509.verify(newCa.publicKey), "only the certificate issued after the rotation is the new CA's");

  const session = await dep.v2(0, old);
  const [endedAt, beforeEndedAt] = await Promise.all([session.closed().then(() => Date.now()), before.closed().then(() => Date.now())]);
  t.true(endedAt >= deadline - 50 && endedAt < deadline + 3000, `the previous CA's session ended ${endedAt - deadline} ms from the deadline`);
  t.true(beforeEndedAt >= deadline - 50 && beforeEndedAt < deadline + 3000, `the session opened before the rotation ended ${beforeEndedAt - deadline} ms from the deadline`);
  await dep.replicas[0]!.logs.waitFor((l) => l.event === "session_readmitted" && l.code === "retired_ca");
  t.is(await verdict(dep, 0, old), "retired_ca");
  t.is(await verdict(dep, 0, fresh), "connected");
  const status = await dep.cli<CaStatusJson>(["pki", "ca-status", "acme-corp"]);
  t.is(status.json.previous[0]!.state, "ended");
  t.is(status.json.overlap_until, undefined);
});

test.serial("tenant show and pki identify show the overlap's deadline; pki end-overlap refuses the previous CA's certificates at once; pki tenant-ca --force on a registered tenant is refused", async (t) => {
  const dep = await dirDeployment;
  const old = await dep.edge("globex", "agent-old");
  let since = dep.replicas[0]!.logs.lines.length;
  t.is((await dep.cli(["pki", "rotate-ca", "globex", "--overlap", "30d"])).code, 0);
  await dep.changed(0, "globex", since);
  t.is(await verdict(dep, 0, old), "connected");
  const shown = await dep.cli<{ previous_cas: Array<{ state: string; admitted_until: string; serial_number: string }> }>(["tenant", "show", "globex"]);
  t.is(shown.json.previous_cas[0]!.state, "overlap");
  const deadline = Date.parse(shown.json.previous_cas[0]!.admitted_until);
  t.true(deadline > Date.now() + 29 * 86_400_000);
  const identified = await dep.cli<{ accepted: boolean; identity: { notAfter: string } }>(["pki", "identify", dep.layout.component("globex", "agent-old", "partition-1").cert]);
  t.true(identified.json.accepted, "pki identify agrees during the overlap");
  t.is(Date.parse(identified.json.identity.notAfter), deadline, "admitted until the deadline, not until the certificate's own expiry");
  since = dep.replicas[0]!.logs.lines.length;
  const ended = await dep.cli<CaStatusJson>(["pki", "end-overlap", "globex"]);
  t.is(ended.code, 0, ended.stderr);
  t.is(ended.json.previous[0]!.state, "ended");
  await dep.changed(0, "globex", since);
  t.is(await verdict(dep, 0, old), "retired_ca");

  const forced = await runCliJson<{ error: { code: string; message: string } }>(["pki", "tenant-ca", "globex", "--force", "--data-dir", dep.layout.dir]);
  t.is(forced.code, 1);
  t.is(forced.json.error.code, "tenant_registered");
  t.regex(forced.json.error.message, /pki rotate-ca globex --overlap/);
});

test.serial("platform CA rotation: the previous CA's admin certificate connects during the overlap, the new CA's too (live, without a restart); the gateway certificate is re-issued from the new CA; end-overlap refuses the old one", async (t) => {
  const dep = await dirDeployment;
  const oldAdmin = await dep.platform("admin");
  const rootBefore = await sha256(dep.layout.rootCert);
  const gatewayBefore = new X509Certificate(await fs.readFile(dep.layout.gatewayCert, "utf8"));
  const since = dep.replicas[0]!.logs.lines.length;
  const rotated = await dep.cli<CaStatusJson>(["pki", "rotate-ca", "platform", "--overlap", "30d"]);
  t.is(rotated.code, 0, rotated.stderr);
  t.is(rotated.json.previous[0]!.state, "overlap");
  const newCa = new X509Certificate(await fs.readFile(dep.layout.platformCaCert, "utf8"));
  t.is(spkiSha256(newCa), rotated.json.active.spki_sha256);
  t.is(await sha256(dep.layout.rootCert), rootBefore, "the root is untouched");
  const gatewayAfter = new X509Certificate(await fs.readFile(dep.layout.gatewayCert, "utf8"));
  t.true(gatewayAfter.verify(newCa.publicKey), "the gateway's certificate is the new platform CA's");
  t.is(gatewayAfter.subjectAltName, gatewayBefore.subjectAltName, "with the same names");
  await dep.replicas[0]!.logs.waitFor((l) => l.event === "platform_trust_changed" && dep.replicas[0]!.logs.lines.indexOf(l) >= since);

  const newAdmin = await dep.platform("admin");
  t.true(newAdmin.x509.verify(newCa.publicKey));
  t.is(await verdict(dep, 0, oldAdmin), "connected", "the previous platform CA's identity during the overlap");
  t.is(await verdict(dep, 0, newAdmin), "connected", "the new platform CA, which the running gateway did not start with");

  const status = await dep.cli<CaStatusJson>(["pki", "ca-status", "platform"]);
  t.is(status.json.overlap_until, rotated.json.previous[0]!.admitted_until);

  // A gateway started now serves the re-issued certificate and admits the new CA's identities.
  const logs = new LogCapture();
  const config = await resolveConfig({ env: {}, flags: { listen: "127.0.0.1:0", nats: dep.nats.url, data_dir: dep.layout.dir, sync_on_start: false, registry_poll_ms: 100, log_level: "info" } });
  const restarted = await Gateway.start(config, createLogger({ level: "info", destination: logs }));
  t.teardown(() => restarted.shutdown(0));
  // A TLS-first handshake: the gateway recognises the ClientHello and answers with its certificate.
  const served = await new Promise<X509Certificate>((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: restarted.port, ca: newAdmin.ca, servername: "localhost", cert: newAdmin.cert, key: newAdmin.key });
    socket.once("secureConnect", () => {
      resolve(socket.getPeerX509Certificate()!);
      socket.destroy();
    });
    socket.once("error", reject);
  });
  t.is(served.fingerprint256, gatewayAfter.fingerprint256);

  const sinceEnd = dep.replicas[0]!.logs.lines.length;
  t.is((await dep.cli(["pki", "end-overlap", "platform"])).code, 0);
  await dep.replicas[0]!.logs.waitFor((l) => l.event === "platform_trust_changed" && dep.replicas[0]!.logs.lines.indexOf(l) >= sinceEnd);
  t.is(await verdict(dep, 0, oldAdmin), "retired_ca");
  t.is(await verdict(dep, 0, newAdmin), "connected");
});

test.serial("the gateway's server certificate is re-issued with new hostnames without touching any CA: pki gateway-cert, and pki init --hostname on an existing data dir", async (t) => {
  const dep = await dirDeployment;
  const cas = [dep.layout.rootCert, dep.layout.rootKey, dep.layout.platformCaCert, dep.layout.platformCaKey, dep.layout.tenantCa("acme-corp").cert];
  const before = await Promise.all(cas.map(sha256));
  const reissued = await runCliJson<{ status: string; hostnames: string[]; replaced: { serial_number: string } }>(["pki", "gateway-cert", "--hostname", "gw.example.com", "--data-dir", dep.layout.dir]);
  t.is(reissued.code, 0, reissued.stderr);
  t.is(reissued.json.status, "reissued");
  t.deepEqual(reissued.json.hostnames, ["localhost", "127.0.0.1", "gw.example.com"]);
  t.truthy(reissued.json.replaced.serial_number);
  const init = await runCliJson<{ status: string; gateway: { status: string; hostnames: string[] } }>(["pki", "init", "--hostname", "gw2.example.com", "--data-dir", dep.layout.dir]);
  t.is(init.code, 0, init.stderr);
  t.is(init.json.gateway.status, "reissued");
  t.deepEqual(init.json.gateway.hostnames, ["localhost", "127.0.0.1", "gw.example.com", "gw2.example.com"]);
  const again = await runCliJson<{ status: string }>(["pki", "init", "--hostname", "gw2.example.com", "--data-dir", dep.layout.dir]);
  t.is(again.json.status, "exists", "idempotent once the name is there");
  t.deepEqual(await Promise.all(cas.map(sha256)), before, "no CA file changed");
  // Still a valid chain for clients: leaf, platform CA, root.
  const chain = (await fs.readFile(dep.layout.gatewayChain, "utf8")).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!.map((p) => new X509Certificate(p));
  t.true(chain[0]!.verify(chain[1]!.publicKey) && chain[1]!.verify(chain[2]!.publicKey));
  // The running gateway serves it to new connections without a restart (it looks at the files every 2 s).
  const logs = dep.replicas[0]!.logs;
  for (;;) {
    const seen = logs.lines.length;
    const served = await servedCertificate(dep.replicas[0]!.url);
    if (/DNS:gw2\.example\.com/.test(served.subjectaltname ?? "")) break;
    await logs.waitFor((l) => l.event === "tls_reloaded" && logs.lines.indexOf(l) >= seen);
  }
  const served = await servedCertificate(dep.replicas[0]!.url);
  t.regex(served.subjectaltname ?? "", /DNS:gw\.example\.com, DNS:gw2\.example\.com/);
});

test.serial("kv store: a tenant CA rotation reaches every replica; end-overlap refuses the previous CA's certificates on all of them", async (t) => {
  const dep = await kvDeployment;
  const old = await dep.edge("initech", "agent-old");
  const since = dep.replicas.map((r) => r.logs.lines.length);
  const rotated = await dep.cli<CaStatusJson>(["pki", "rotate-ca", "initech", "--overlap", "1h"]);
  t.is(rotated.code, 0, rotated.stderr);
  for (const i of [0, 1]) await dep.changed(i, "initech", since[i]!);
  const fresh = await dep.edge("initech", "agent-new");
  t.not(spkiSha256(fresh.x509), spkiSha256(old.x509));
  for (const i of [0, 1]) {
    t.is(await verdict(dep, i, old), "connected", `replica ${i}: previous CA during the overlap`);
    t.is(await verdict(dep, i, fresh), "connected", `replica ${i}: new CA`);
  }
  const sinceEnd = dep.replicas.map((r) => r.logs.lines.length);
  t.is((await dep.cli(["pki", "end-overlap", "initech"])).code, 0);
  for (const i of [0, 1]) {
    await dep.changed(i, "initech", sinceEnd[i]!);
    t.is(await verdict(dep, i, old), "retired_ca", `replica ${i}`);
    t.is(await verdict(dep, i, fresh), "connected", `replica ${i}`);
  }
});

/**
 * The admin API against a live gateway and nats-server, with real TLS: who gets in (an allowed
 * platform identity's certificate only), tenants through their lifecycle with stock clients
 * watching the effect, the CA shown and rotated, certificates issued and revoked, live sessions
 * listed and cut (also through `tenant-gateway sessions`), errors as coded JSON with the right
 * status, every change in the audit stream, and no secret in any answer.
 */
import test from "ava";
import { startDeployment, type ClientTls, type Deployment } from "./helpers/gateway-fixture.ts";
import { startHttp, type HttpAnswer, type HttpFixture } from "./helpers/http-fixture.ts";
import { runCliJson } from "./helpers/cli.ts";

let dep: Deployment;
let http: HttpFixture;
let admin: ClientTls;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp", "globex"] });
  http = await startHttp(dep);
  admin = await dep.admin();
});

test.after.always(async () => {
  await http?.stop();
  await dep?.stop();
});

const api = (method: string, path: string, body?: unknown): Promise<HttpAnswer> => http.request(method, `/api/v1${path}`, { tls: admin, ...(body === undefined ? {} : { body }) });

function errorOf(r: HttpAnswer): { code: string; message: string } {
  return r.json<{ error: { code: string; message: string } }>().error;
}

/** No private key, no nkey seed, no JWT in an answer. */
function assertNoSecrets(t: { false: (v: boolean, m?: string) => void }, text: string): void {
  t.false(/PRIVATE KEY/.test(text), "no private key");
  t.false(/\bS[AOU][A-Z2-7]{54}\b/.test(text), "no nkey seed");
  t.false(/eyJ[A-Za-z0-9_-]{10,}\.eyJ/.test(text), "no JWT");
}

test("the API answers an allowed platform identity only: plain HTTP, no certificate, an edge certificate, a platform name not allowed are refused with their codes", async (t) => {
  const plain = await http.get("/api/v1/tenants");
  t.is(plain.status, 403);
  t.is(errorOf(plain).code, "tls_required");
  const noCert = await http.request("GET", "/api/v1/tenants");
  t.is(noCert.status, 401);
  t.is(errorOf(noCert).code, "client_certificate_required");
  const edge = await http.request("GET", "/api/v1/tenants", { tls: await dep.edge("acme-corp") });
  t.is(edge.status, 403);
  t.is(errorOf(edge).code, "platform_identity_required");
  const intruder = await http.request("GET", "/api/v1/tenants", { tls: await dep.platformIdentity("monitoring") });
  t.is(intruder.status, 403);
  t.is(errorOf(intruder).code, "platform_identity_not_allowed");
  const ok = await api("GET", "/tenants");
  t.is(ok.status, 200);
  const slugs = ok.json<{ tenants: Array<{ slug: string }> }>().tenants.map((x) => x.slug);
  t.true(slugs.includes("acme-corp") && slugs.includes("globex"));
  // The console is behind the same door.
  t.is((await http.request("GET", "/ui/", { tls: await dep.edge("acme-corp") })).status, 403);
  t.is((await http.request("GET", "/ui/", { tls: admin })).status, 200);
});

test("tenants: create, show, suspend (its live session is cut), resume, set-plan and delete, each in the audit stream", async (t) => {
  const created = await api("POST", "/tenants", { slug: "initech", name: "Initech", plan: "free" });
  t.is(created.status, 201, created.text);
  const view = created.json<{ status: string; tenant: { slug: string; plan: string; status: string; ca: { subject_cn: string } } }>();
  t.like(view, { status: "created", tenant: { slug: "initech", plan: "free", status: "active", ca: { subject_cn: "tenant-initech.ca.serviceradar" } } });
  assertNoSecrets(t, created.text);

  // A stock client of the new tenant gets in at once.
  const nc = await dep.v3(await dep.edge("initech", "api-agent"));
  const sessions = await api("GET", "/sessions?tenant=initech");
  t.deepEqual(
    sessions.json<{ sessions: Array<{ cn: string }> }>().sessions.map((s) => s.cn),
    ["api-agent.partition-1.initech.serviceradar"],
  );

  const suspended = await api("POST", "/tenants/initech/suspend");
  t.is(suspended.status, 200, suspended.text);
  t.is(suspended.json<{ status: string }>().status, "suspended");
  await nc.closed();
  t.pass("the suspended tenant's session was cut");
  const resumed = await api("POST", "/tenants/initech/resume");
  t.is(resumed.json<{ status: string }>().status, "active");
  const planned = await api("PUT", "/tenants/initech/plan", { plan: "pro" });
  t.is(planned.status, 200, planned.text);
  t.is(planned.json<{ plan: string }>().plan, "pro");
  const shown = await api("GET", "/tenants/initech");
  t.like(shown.json(), { slug: "initech", plan: "pro", status: "active" });

  const deleted = await api("DELETE", "/tenants/initech");
  t.is(deleted.status, 200, deleted.text);
  t.is(deleted.json<{ status: string }>().status, "deleted");
  t.is((await api("GET", "/tenants/initech")).status, 404);

  const audit = await api("GET", "/audit?tenant=initech");
  const records = audit.json<{ records: Array<{ operation: string; api: string; identity: string; subject: string }> }>().records;
  t.deepEqual(
    records.filter((r) => r.operation === "admin_api").map((r) => r.api),
    ["tenant.create", "tenant.suspend", "tenant.resume", "tenant.set_plan", "tenant.delete"],
  );
  t.true(records.every((r) => r.identity === "admin"));
  t.is(records.find((r) => r.api === "tenant.suspend")?.subject, "POST /api/v1/tenants/initech/suspend");
});

test("the CA: shown, rotated with an overlap (the previous CA's certificate still connects, the new CA issues), audited", async (t) => {
  const before = await api("GET", "/tenants/globex/ca");
  t.is(before.status, 200);
  const ca = before.json<{ active: { serial_number: string; spki_sha256: string }; previous: unknown[] }>();
  t.deepEqual(ca.previous, []);
  const oldCert = await dep.edge("globex", "before-rotation");
  const rotated = await api("POST", "/tenants/globex/ca/rotate", { overlap: "1h" });
  t.is(rotated.status, 200, rotated.text);
  const after = rotated.json<{ status: string; active: { serial_number: string }; previous: Array<{ serial_number: string; state: string; admitted_until: string }>; overlap_until: string }>();
  t.is(after.status, "rotated");
  t.not(after.active.serial_number, ca.active.serial_number);
  t.is(after.previous[0]?.serial_number, ca.active.serial_number);
  t.is(after.previous[0]?.state, "overlap");
  t.true(Date.parse(after.overlap_until) > Date.now() + 50 * 60_000);
  assertNoSecrets(t, rotated.text);

  const old = await dep.v3(oldCert);
  await old.flush();
  await old.close();
  t.pass("a certificate of the previous CA still connects during the overlap");
  const issued = await api("POST", "/tenants/globex/certificates", { component: "after-rotation", partition: "p1", days: 30 });
  t.is(issued.status, 201, issued.text);
  const nc = await dep.v3({ cert: issued.json<{ pem: { certificate: string } }>().pem.certificate, key: issued.json<{ pem: { key: string } }>().pem.key, ca: admin.ca });
  await nc.flush();
  await nc.close();
  t.pass("a certificate of the new CA, issued through the API, connects");
  const audit = (await api("GET", "/audit?tenant=globex")).json<{ records: Array<{ api?: string }> }>().records.map((r) => r.api);
  t.true(audit.includes("ca.rotate") && audit.includes("certificate.issue"));
});

test("certificates: issued through the API, listed, revoked by serial — its session is cut and the next connect refused", async (t) => {
  const issued = await api("POST", "/tenants/acme-corp/certificates", { component: "api-issued", partition: "p1" });
  t.is(issued.status, 201, issued.text);
  const { certificate, pem } = issued.json<{ certificate: { serial_number: string; subject_cn: string; source: string }; pem: { certificate: string; key: string; chain: string } }>();
  t.is(certificate.subject_cn, "api-issued.p1.acme-corp.serviceradar");
  t.regex(certificate.source, /admin API/);
  t.regex(pem.key, /PRIVATE KEY/, "the new leaf's key, this once");
  t.is(issued.headers["cache-control"], "no-store");
  const tls = { cert: pem.certificate, key: pem.key, ca: admin.ca };
  const nc = await dep.v3(tls);
  const list = (await api("GET", "/tenants/acme-corp/certificates")).json<{ certificates: Array<{ serial_number: string; state: string }> }>();
  t.is(list.certificates.find((c) => c.serial_number === certificate.serial_number)?.state, "valid");

  const revoked = await api("POST", `/tenants/acme-corp/certificates/${certificate.serial_number}/revoke`, { reason: "test" });
  t.is(revoked.status, 200, revoked.text);
  t.is(revoked.json<{ status: string }>().status, "revoked");
  await nc.closed();
  t.pass("the revoked certificate's session was cut");
  await t.throwsAsync(dep.v3(tls, { timeout: 3000 }));
  const refusal = await dep.logs.waitFor((l) => l.event === "connection_refused" && l.cn === "api-issued.p1.acme-corp.serviceradar");
  t.is(refusal.code, "certificate_revoked");
  const again = (await api("GET", "/tenants/acme-corp/certificates")).json<{ certificates: Array<{ serial_number: string; state: string }> }>();
  t.is(again.certificates.find((c) => c.serial_number === certificate.serial_number)?.state, "revoked");
});

test("sessions: listed (all, or one tenant's), one disconnected through the API and through `tenant-gateway sessions`", async (t) => {
  const a = await dep.v3(await dep.edge("acme-corp", "list-a"), { reconnect: false });
  const b = await dep.v3(await dep.edge("globex", "list-b"), { reconnect: false });
  t.teardown(() => Promise.all([a.close(), b.close()]).then(() => undefined));
  const all = (await api("GET", "/sessions")).json<{ sessions: Array<{ id: string; cn: string; tenant?: string; counters: { msgsIn: number } }> }>().sessions;
  const mine = all.filter((s) => s.cn.startsWith("list-"));
  t.is(mine.length, 2);
  const acme = (await api("GET", "/sessions?tenant=acme-corp")).json<{ sessions: Array<{ tenant: string; cn: string }> }>().sessions;
  t.true(acme.every((s) => s.tenant === "acme-corp"));
  t.true(acme.some((s) => s.cn === "list-a.partition-1.acme-corp.serviceradar"));

  const idA = mine.find((s) => s.tenant === "acme-corp")!.id;
  const cut = await api("DELETE", `/sessions/${idA}`);
  t.is(cut.status, 200, cut.text);
  t.is(cut.json<{ status: string }>().status, "disconnected");
  await a.closed();
  t.is((await api("DELETE", `/sessions/${idA}`)).status, 404, "gone");

  // The CLI: the same API, with the data dir's admin certificate.
  const url = `https://localhost:${http.port}`;
  const listed = await runCliJson<{ sessions: Array<{ id: string; cn: string }> }>(["sessions", "list", "--tenant", "globex", "--data-dir", dep.layout.dir, "--url", url]);
  t.is(listed.code, 0, listed.stderr);
  const idB = listed.json.sessions.find((s) => s.cn === "list-b.partition-1.globex.serviceradar")?.id;
  t.truthy(idB);
  const disconnected = await runCliJson<{ status: string; session: { id: string } }>(["sessions", "disconnect", idB!, "--data-dir", dep.layout.dir, "--url", url]);
  t.is(disconnected.code, 0, disconnected.stderr);
  t.is(disconnected.json.session.id, idB!);
  await b.closed();
  const audit = (await api("GET", "/audit?tenant=globex")).json<{ records: Array<{ api?: string }> }>().records;
  t.true(audit.some((r) => r.api === "session.disconnect"));
});

test("errors are coded JSON with the status of their code", async (t) => {
  const unknown = await api("GET", "/tenants/nope");
  t.is(unknown.status, 404);
  t.is(errorOf(unknown).code, "unknown_tenant");
  const exists = await api("POST", "/tenants", { slug: "acme-corp" });
  t.is(exists.status, 409);
  t.is(errorOf(exists).code, "tenant_exists");
  const badSlug = await api("POST", "/tenants", { slug: "Not A Slug" });
  t.is(badSlug.status, 400);
  t.is(errorOf(badSlug).code, "invalid_request");
  const extra = await api("POST", "/tenants", { slug: "ok-slug", colour: "blue" });
  t.is(extra.status, 400, "unknown fields are refused, not ignored");
  const reserved = await api("POST", "/tenants", { slug: "admin" });
  t.is(reserved.status, 400);
  t.is(errorOf(reserved).code, "reserved_slug");
  const plan = await api("PUT", "/tenants/acme-corp/plan", { plan: "platinum" });
  t.is(plan.status, 400);
  t.is(errorOf(plan).code, "unknown_plan");
  const route = await api("GET", "/nothing-here");
  t.is(route.status, 404);
  t.is(errorOf(route).code, "not_found");
  const session = await api("DELETE", "/sessions/not-an-id");
  t.is(session.status, 400);
});

test("a browser cannot be made to change anything from another site", async (t) => {
  const crossSite = await http.request("POST", "/api/v1/tenants/globex/suspend", { tls: admin, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
  t.is(crossSite.status, 403);
  t.is(errorOf(crossSite).code, "csrf_failed");
  const form = await http.request("POST", "/api/v1/tenants/globex/suspend", { tls: admin, headers: { "content-type": "text/plain" }, rawBody: "x" });
  t.is(form.status, 415, "no text/plain (a form's) body");
  const consoleForm = await http.request("POST", "/ui/tenants/globex/suspend", { tls: admin, headers: { "content-type": "application/x-www-form-urlencoded" }, rawBody: "_csrf=forged" });
  t.is(consoleForm.status, 403, "a console form without its token");
  t.is((await api("GET", "/tenants/globex")).json<{ status: string }>().status, "active");
});

test("the OpenAPI document describes every route, and no answer carries a secret", async (t) => {
  const doc = await http.request("GET", "/api/v1/openapi.json");
  t.is(doc.status, 200, "readable without a certificate");
  const spec = doc.json<{ openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }>();
  t.is(spec.openapi, "3.1.0");
  for (const path of ["/api/v1/tenants", "/api/v1/tenants/{slug}", "/api/v1/tenants/{slug}/suspend", "/api/v1/tenants/{slug}/plan", "/api/v1/tenants/{slug}/ca", "/api/v1/tenants/{slug}/ca/rotate", "/api/v1/tenants/{slug}/certificates", "/api/v1/sessions", "/api/v1/sessions/{id}", "/api/v1/audit"]) {
    t.truthy(spec.paths[path], path);
  }
  t.truthy(spec.paths["/api/v1/tenants"]!.post!.responses["409"]);
  for (const path of ["/tenants", "/tenants/acme-corp", "/tenants/acme-corp/ca", "/tenants/acme-corp/certificates", "/tenants/acme-corp/streams", "/sessions", "/audit", "/plans"]) {
    const r = await api("GET", path);
    t.is(r.status, 200, `${path}: ${r.text.slice(0, 200)}`);
    assertNoSecrets(t, r.text);
  }
});

test("onboarding packages: created through the API, downloaded once over HTTPS with the token alone; 400, 401, 404, 409 and 410 otherwise", async (t) => {
  const created = await api("POST", "/packages", { tenant: "acme-corp", component: "edge-pkg", partition: "p1", type: "poller" });
  t.is(created.status, 201, created.text);
  const { package: pkg, token, download_url: url } = created.json<{ package: { id: string; state: string; download_path: string }; token: string; download_url: string }>();
  t.is(pkg.state, "pending");
  t.is(url, `https://127.0.0.1:${http.port}${pkg.download_path}?token=${token}`, "on the host the API was reached by");
  const listed = (await api("GET", "/packages?tenant=acme-corp")).json<{ packages: Array<{ id: string }> }>().packages;
  t.true(listed.some((p) => p.id === pkg.id));
  t.false(JSON.stringify(listed).includes(token), "the token is never listed");

  const path = pkg.download_path;
  const download = (query: string, tls?: ClientTls): Promise<HttpAnswer> => http.request("GET", `${path}${query}`, { tls });
  t.is(errorOf(await http.get(`${path}?token=${token}`)).code, "tls_required", "not over plain HTTP");
  const malformed = await http.request("GET", `/api/v1/packages/not-a-uuid/download?token=${token}`);
  t.is(malformed.status, 400);
  t.is(errorOf(malformed).code, "malformed_request");
  const missing = await download("");
  t.is(missing.status, 401);
  t.is(errorOf(missing).code, "token_required");
  const wrong = await download(`?token=${"A".repeat(43)}`);
  t.is(wrong.status, 401);
  t.is(errorOf(wrong).code, "token_invalid");
  const unknown = await http.request("GET", `/api/v1/packages/00000000-0000-4000-8000-000000000000/download?token=${token}`);
  t.is(unknown.status, 404);
  t.is(errorOf(unknown).code, "package_not_found");

  const first = await download(`?token=${token}`);
  t.is(first.status, 200);
  t.is(first.headers["content-type"], "application/gzip");
  t.regex(String(first.headers["content-disposition"]), /attachment; filename="acme-corp-edge-pkg-p1\.tar\.gz"/);
  t.is(first.body[0], 0x1f, "gzip");
  t.is(first.body[1], 0x8b);
  const second = await download(`?token=${token}`);
  t.is(second.status, 409);
  t.is(errorOf(second).code, "package_delivered");

  const short = (await api("POST", "/packages", { tenant: "acme-corp", component: "edge-late", partition: "p1", type: "agent", ttl: "1s" })).json<{ package: { download_path: string }; token: string }>();
  await new Promise((r) => setTimeout(r, 1500)); // the token's lifetime itself is what is tested
  const expired = await http.request("GET", `${short.package.download_path}?token=${short.token}`);
  t.is(expired.status, 410);
  t.is(errorOf(expired).code, "package_expired");

  const revoked = await api("POST", `/packages/${pkg.id}/revoke`, { reason: "test" });
  t.is(revoked.status, 200, revoked.text);
  t.is(revoked.json<{ state: string }>().state, "revoked");
  const audit = (await api("GET", "/audit?tenant=acme-corp")).json<{ records: Array<{ api?: string; identity: string }> }>().records;
  t.true(audit.some((r) => r.api === "package.create" && r.identity === "admin"));
  t.true(audit.some((r) => r.api === "package.download" && r.identity === "_token"));
  t.true(audit.some((r) => r.api === "package.revoke"));
});

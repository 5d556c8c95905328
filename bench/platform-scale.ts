/**
 * Measures the two designs for platform sessions (architecture brief, section 5) at a tenant
 * count (default 1000), against a real nats-server:
 *   A. NATS-native: every tenant exports, the PLATFORM account imports all of them; one platform
 *      connection subscribes `*.events.>`.
 *   B. Gateway routing: one upstream connection per tenant per platform session, each
 *      subscribing `<slug>.events.>`.
 * Prints a table and writes bench/results/platform-scale.json.
 *
 *   node --import tsx bench/platform-scale.ts [--tenants 1000]
 */
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { connect } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { pushAccountJwt } from "../accounts/claims.ts";
import { encodeAccountJwt, encodeUserJwt, UNLIMITED_LIMITS } from "../accounts/jwts.ts";
import { connectAsSystem, nativeJwtAuthenticator } from "../accounts/nats-control.ts";
import { startNatsServer } from "../accounts/nats-server-process.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { loadOperator, NatsFiles } from "../accounts/operator.ts";
import { encodePlatformAccountJwt, tenantPlatformExports } from "../accounts/platform-account.ts";
import { openUpstream, parseServerUrl } from "../gateway/upstream.ts";
import { DataLayout } from "../pki/layout.ts";
import { tempDir } from "../test/helpers/tmp.ts";

const argTenants = process.argv.indexOf("--tenants");
const N = argTenants > 0 ? Number(process.argv[argTenants + 1]) : 1000;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

const ms = (t0: number): number => Math.round(performance.now() - t0);

const layout = new DataLayout(tempDir("ntg-scale-"));
await initDataDir(layout, { natsPort: -1 });
const nats = await startNatsServer(new NatsFiles(layout).serverConfig);
const op = await loadOperator(layout);
const sys = await connectAsSystem([nats.url], op.systemUserCreds);
const natsPid = nats.process.pid!;
await pushAccountJwt(sys, op.platformJwt, op.operator.getPublicKey());
const rssStart = rssOf(natsPid);

// N tenant accounts with the platform exports (accounts only: CAs and streams do not matter here).
const tenants: Array<{ slug: string; account: NativeKeyPair; signing: NativeKeyPair }> = [];
let t0 = performance.now();
for (let i = 0; i < N; i++) {
  const slug = `tenant-${String(i).padStart(4, "0")}`;
  const account = NativeKeyPair.create("account");
  const jwt = await encodeAccountJwt(slug, account, op.operator, { limits: UNLIMITED_LIMITS, signing_keys: [account.getPublicKey()], exports: tenantPlatformExports(slug) });
  await pushAccountJwt(sys, jwt, op.operator.getPublicKey());
  tenants.push({ slug, account, signing: account });
}
const tenantPushMs = ms(t0);
const rssTenants = rssOf(natsPid);

async function tenantUser(t: (typeof tenants)[number]) {
  const u = NativeKeyPair.create("user");
  const jwt = await encodeUserJwt("bench", u, { signer: t.signing, account: t.account.getPublicKey() });
  return connect({ servers: nats.url, authenticator: nativeJwtAuthenticator(jwt, u) });
}

// ---- A: NATS-native imports into PLATFORM ----
const platformUser = NativeKeyPair.create("user");
const platformJwtUser = await encodeUserJwt("admin.platform.serviceradar", platformUser, { signer: op.platformSigning, account: op.platform.getPublicKey() });
const admin = await connect({ servers: nats.url, authenticator: nativeJwtAuthenticator(platformJwtUser, platformUser) });
const received = new Set<string>();
let onReceived: (() => void) | undefined;
admin.subscribe("*.events.>", {
  callback: (_e, m) => {
    received.add(m.subject.split(".")[0]!);
    onReceived?.();
  },
});
await admin.flush();

t0 = performance.now();
const platformJwt = await encodePlatformAccountJwt(op.operator, op.platform, op.platformSigning.getPublicKey(), tenants.map((t) => ({ slug: t.slug, account: t.account.getPublicKey() })));
const signMs = ms(t0);
t0 = performance.now();
await pushAccountJwt(sys, platformJwt, op.operator.getPublicKey(), { timeoutMs: 60_000 });
const platformPushMs = ms(t0);
const rssImports = rssOf(natsPid);

// Every tenant publishes once; time until the one platform subscription has seen them all.
const publishers = [];
for (const t of [tenants[0]!, tenants[Math.floor(N / 2)]!, tenants[N - 1]!]) publishers.push({ t, nc: await tenantUser(t) });
t0 = performance.now();
const allSeen = new Promise<void>((resolve) => {
  onReceived = () => received.size >= publishers.length && resolve();
});
for (const p of publishers) p.nc.publish(`${p.t.slug}.events.poller.health`, "x");
await allSeen;
const fanInMs = ms(t0);

// One more tenant after the subscription: one more push of the (bigger) PLATFORM JWT.
const late = { slug: "tenant-late", account: NativeKeyPair.create("account"), signing: undefined as unknown as NativeKeyPair };
late.signing = late.account;
await pushAccountJwt(sys, await encodeAccountJwt(late.slug, late.account, op.operator, { limits: UNLIMITED_LIMITS, signing_keys: [late.account.getPublicKey()], exports: tenantPlatformExports(late.slug) }), op.operator.getPublicKey());
t0 = performance.now();
const bigger = await encodePlatformAccountJwt(op.operator, op.platform, op.platformSigning.getPublicKey(), [...tenants, late].map((t) => ({ slug: t.slug, account: t.account.getPublicKey() })));
await pushAccountJwt(sys, bigger, op.operator.getPublicKey(), { timeoutMs: 60_000 });
const lateNc = await tenantUser(late);
const lateSeen = new Promise<void>((resolve) => {
  onReceived = () => received.has(late.slug) && resolve();
});
lateNc.publish(`${late.slug}.events.hello`, "late");
await lateSeen;
const lateTenantMs = ms(t0);
for (const p of publishers) await p.nc.close();
await lateNc.close();
await admin.close();

// ---- B: one upstream connection per tenant for one platform session ----
const heapBefore = process.memoryUsage().rss;
const rssBeforeB = rssOf(natsPid);
const sockets = [];
t0 = performance.now();
const server = parseServerUrl(nats.url);
for (const t of tenants) {
  const u = NativeKeyPair.create("user");
  const jwt = await encodeUserJwt("admin.platform.serviceradar", u, { signer: t.signing, account: t.account.getPublicKey() });
  const up = await openUpstream([server], 0, { jwt, user: u }, { headers: true, no_responders: true });
  up.socket.write(`SUB ${t.slug}.events.> 1\r\n`);
  sockets.push(up.socket);
}
const routingSetupMs = ms(t0);
const gatewayBytesPerSession = process.memoryUsage().rss - heapBefore;
const natsBytesB = rssOf(natsPid) - rssBeforeB;
for (const s of sockets) s.destroy();

const result = {
  tenants: N,
  nats_server: (await sys.info)?.version ?? "?",
  tenant_accounts_push_ms: tenantPushMs,
  nats_rss_for_tenant_accounts_bytes: rssTenants - rssStart,
  native: {
    platform_jwt_bytes: platformJwt.length,
    platform_jwt_sign_ms: signMs,
    platform_jwt_push_ms: platformPushMs,
    nats_rss_for_imports_bytes: rssImports - rssTenants,
    wildcard_fan_in_ms: fanInMs,
    tenant_after_subscription_ms: lateTenantMs,
    upstream_connections_per_platform_session: 1,
  },
  routing: {
    setup_ms: routingSetupMs,
    upstream_connections_per_platform_session: N,
    gateway_rss_per_platform_session_bytes: gatewayBytesPerSession,
    nats_rss_per_platform_session_bytes: natsBytesB,
  },
};
await sys.close();
await nats.stop();
const out = path.join(path.dirname(new URL(import.meta.url).pathname), "results");
mkdirSync(out, { recursive: true });
writeFileSync(path.join(out, "platform-scale.json"), JSON.stringify(result, null, 2) + "\n");
const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
console.log(`platform sessions at ${N} tenants (nats-server ${result.nats_server})`);
console.log(`  A  NATS-native imports: PLATFORM JWT ${(platformJwt.length / 1024).toFixed(0)} KiB, signed in ${signMs} ms, pushed in ${platformPushMs} ms, nats-server +${mb(result.native.nats_rss_for_imports_bytes)}`);
console.log(`     *.events.> fan-in from 3 tenants ${fanInMs} ms; a tenant created after the subscription is seen ${lateTenantMs} ms after its push; 1 upstream connection per platform session`);
console.log(`  B  gateway routing: ${N} upstream connections per platform session, set up in ${routingSetupMs} ms; gateway +${mb(gatewayBytesPerSession)}, nats-server +${mb(natsBytesB)} per platform session`);
process.exit(0);

/**
 * `sync` re-pushes everything: after nats-server restarts with its resolver directory wiped (the
 * accounts it knew are gone), one `sync` per store restores the PLATFORM account and every tenant,
 * and the KV registry, kept in JetStream, is readable again.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import test, { type ExecutionContext } from "ava";
import { connect, jwtAuthenticator } from "nats";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { connectAsSystem } from "../accounts/nats-control.ts";
import { loadOperator, NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { mintEdgeUser } from "../accounts/user-jwt.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCliJson } from "./helpers/cli.ts";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

interface SyncJson {
  platform: string;
  tenants: Array<{ slug: string; status: string; result: string; error?: string }>;
}

const layout = new DataLayout(tempDir());
const natsFiles = new NatsFiles(layout);

async function withService<T>(url: string, store: "dir" | "kv", fn: (svc: TenantService) => Promise<T>): Promise<T> {
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [url], store });
  try {
    return await fn(new TenantService(cp));
  } finally {
    await cp.close();
  }
}

/** The accounts nats-server's full resolver holds, as the server lists them. */
async function resolverAccounts(url: string): Promise<string[]> {
  const system = await connectAsSystem([url], (await loadOperator(layout)).systemUserCreds);
  try {
    return (await system.request("$SYS.REQ.CLAIMS.LIST", "", { timeout: 5000 })).json<{ data: string[] }>().data;
  } finally {
    await system.close();
  }
}

async function assertUsable(t: ExecutionContext, url: string, slug: string, store: "dir" | "kv"): Promise<void> {
  const minted = await withService(url, store, async (svc) => {
    const { record, signingKey } = await svc.load(slug);
    const identity = { kind: "edge" as const, cn: `agent-001.partition-1.${slug}.serviceradar`, tenant: slug, component: "agent-001", partition: "partition-1", notAfter: new Date(Date.now() + 3_600_000), fingerprint: randomBytes(32).toString("hex") };
    return mintEdgeUser(identity, { account: record.account_public_key, signingKey });
  });
  const nc = await connect({ servers: url, authenticator: jwtAuthenticator(minted.jwt, minted.user.getSeed()), reconnect: false });
  try {
    const sub = nc.subscribe(`${slug}.events.ping`, { max: 1 });
    nc.publish(`${slug}.events.ping`, "ping");
    for await (const msg of sub) t.is(msg.string(), "ping", `${slug} round trip`);
  } finally {
    await nc.close();
  }
}

test("after a nats-server restart with a wiped resolver dir, sync restores every account", async (t) => {
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  const server = await startNatsServer(natsFiles.serverConfig, { readyTimeoutMs: 60_000 });
  t.teardown(() => server.stop());
  const operator = await loadOperator(layout);
  const accounts: Record<string, string> = {};
  await withService(server.url, "dir", async (svc) => {
    await svc.sync();
    accounts.durable = (await svc.create("durable")).tenant.account_public_key;
  });
  await withService(server.url, "kv", async (svc) => {
    accounts.kvdurable = (await svc.create("kvdurable")).tenant.account_public_key;
  });
  const known = await resolverAccounts(server.url);
  for (const account of [...Object.values(accounts), operator.platform.getPublicKey()]) t.true(known.includes(account));

  const pid = server.process.pid;
  await server.stop();
  for (const file of await fs.readdir(natsFiles.resolverDir)) await fs.rm(path.join(natsFiles.resolverDir, file), { recursive: true });
  await server.restart();
  t.not(server.process.pid, pid, "a new nats-server process");
  t.deepEqual(await resolverAccounts(server.url), [operator.system.getPublicKey()], "the restarted server knows only the preloaded system account");

  const dir = await runCliJson<SyncJson>(["sync", "--data-dir", layout.dir, "--nats", server.url]);
  t.is(dir.code, 0, dir.stderr);
  t.is(dir.json.platform, operator.platform.getPublicKey());
  t.deepEqual(dir.json.tenants.map((r) => `${r.slug}:${r.result}`), ["durable:pushed"]);
  const kv = await runCliJson<SyncJson>(["sync", "--store", "kv", "--data-dir", layout.dir, "--nats", server.url]);
  t.is(kv.code, 0, kv.stderr);
  t.deepEqual(kv.json.tenants.map((r) => `${r.slug}:${r.result}`), ["kvdurable:pushed"], "the KV registry survived in JetStream");

  t.deepEqual((await resolverAccounts(server.url)).sort(), [...Object.values(accounts), operator.platform.getPublicKey(), operator.system.getPublicKey()].sort());
  await assertUsable(t, server.url, "durable", "dir");
  await assertUsable(t, server.url, "kvdurable", "kv");
});

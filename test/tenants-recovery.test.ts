/**
 * Recovery: a `tenant create` killed between two writes (SIGKILL at a crash point, like a power
 * cut) is completed by running it again or by `sync` — never left a half tenant; and a corrupt
 * store file is named in the error. Serial: a corrupt file concerns every command on the data dir.
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
import { mintEdgeUser, type MintedUser } from "../accounts/user-jwt.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

interface CliError {
  error: { code: string; message: string };
}
interface TenantJson {
  status: string;
  tenant: { slug: string; status: string };
}
interface SyncJson {
  platform: string;
  tenants: Array<{ slug: string; status: string; result: string; error?: string }>;
}

const layout = new DataLayout(tempDir());
const natsFiles = new NatsFiles(layout);
const setup = (async () => {
  // The directory store is the default; the KV store (master key written here) shares the data dir.
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  const server = await startNatsServer(natsFiles.serverConfig);
  return { server };
})();
test.after.always(async () => (await setup).server.stop());

const cliJson = async <T>(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; json: T; stderr: string }> =>
  runCliJson<T>([...args, "--data-dir", layout.dir, "--nats", (await setup).server.url], env);

/** Runs `tenant create` and lets it die at `point`; the process must really have been killed there. */
async function createKilledAt(t: ExecutionContext, slug: string, point: string, extra: string[] = []): Promise<void> {
  const r = await runCli(["tenant", "create", slug, ...extra, "--data-dir", layout.dir, "--nats", (await setup).server.url, "--json"], { TENANT_GATEWAY_FAULT: point });
  t.not(r.code, 0);
  t.is(r.stdout, "", "killed before it could report anything");
}

async function withService<T>(store: "dir" | "kv", fn: (svc: TenantService) => Promise<T>): Promise<T> {
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [(await setup).server.url], store });
  try {
    return await fn(new TenantService(cp));
  } finally {
    await cp.close();
  }
}

async function mintFor(slug: string, store: "dir" | "kv" = "dir"): Promise<MintedUser> {
  return withService(store, async (svc) => {
    const { record, signingKey } = await svc.load(slug);
    const identity = { kind: "edge" as const, cn: `agent-001.partition-1.${slug}.serviceradar`, tenant: slug, component: "agent-001", partition: "partition-1", notAfter: new Date(Date.now() + 3_600_000), fingerprint: randomBytes(32).toString("hex") };
    return mintEdgeUser(identity, { account: record.account_public_key, signingKey });
  });
}

/** A user of the tenant connects, publishes and receives: the account is live in NATS. */
async function assertUsable(t: ExecutionContext, slug: string, store: "dir" | "kv" = "dir"): Promise<void> {
  const minted = await mintFor(slug, store);
  const nc = await connect({ servers: (await setup).server.url, authenticator: jwtAuthenticator(minted.jwt, minted.user.getSeed()), reconnect: false });
  try {
    const sub = nc.subscribe(`${slug}.events.ping`, { max: 1 });
    nc.publish(`${slug}.events.ping`, "ping");
    for await (const msg of sub) t.is(msg.string(), "ping", `${slug} round trip`);
  } finally {
    await nc.close();
  }
}

/** Whether nats-server's full resolver holds the account, as the server itself lists them. */
async function resolverHas(account: string): Promise<boolean> {
  const system = await connectAsSystem([(await setup).server.url], (await loadOperator(layout)).systemUserCreds);
  try {
    return (await system.request("$SYS.REQ.CLAIMS.LIST", "", { timeout: 5000 })).json<{ data: string[] }>().data.includes(account);
  } finally {
    await system.close();
  }
}

test.serial("a create killed right after writing the CA is completed by tenant create again, reusing that CA", async (t) => {
  await createKilledAt(t, "wayne", "tenant_create_after_ca");
  const caFile = layout.tenantCa("wayne").cert;
  const ca = await fs.readFile(caFile, "utf8");
  t.regex(ca, /BEGIN CERTIFICATE/);
  t.is((await cliJson<CliError>(["tenant", "show", "wayne"])).json.error.code, "unknown_tenant", "no half tenant is visible");
  t.false((await cliJson<{ tenants: Array<{ slug: string }> }>(["tenant", "list"])).json.tenants.some((v) => v.slug === "wayne"));

  const again = await cliJson<TenantJson>(["tenant", "create", "wayne"]);
  t.is(again.code, 0, again.stderr);
  t.is(again.json.tenant.status, "active");
  t.is(await fs.readFile(caFile, "utf8"), ca, "the CA written before the crash is the tenant's CA");
  await assertUsable(t, "wayne");
});

test.serial("a create killed right after writing the record is completed by sync", async (t) => {
  await createKilledAt(t, "stark", "tenant_create_after_record");
  const shown = await cliJson<{ status: string; account: { public_key: string } }>(["tenant", "show", "stark"]);
  t.is(shown.json.status, "provisioning");
  t.false(await resolverHas(shown.json.account.public_key), "the account was never pushed");

  const synced = await cliJson<SyncJson>(["sync"]);
  t.is(synced.code, 0, synced.stderr);
  t.like(
    synced.json.tenants.find((r) => r.slug === "stark"),
    { result: "completed", status: "active" },
  );
  t.is((await cliJson<{ status: string }>(["tenant", "show", "stark"])).json.status, "active");
  t.true(await resolverHas(shown.json.account.public_key));
  await assertUsable(t, "stark");
});

test.serial("a create killed right after writing the record is completed by tenant create again", async (t) => {
  await createKilledAt(t, "oscorp", "tenant_create_after_record", ["--plan", "pro"]);
  const again = await cliJson<TenantJson & { tenant: { plan: string } }>(["tenant", "create", "oscorp"]);
  t.is(again.code, 0, again.stderr);
  t.is(again.json.status, "completed");
  t.like(again.json.tenant, { status: "active", plan: "pro" });
  await assertUsable(t, "oscorp");
});

test.serial("with the KV store, a create killed after the record is completed by sync", async (t) => {
  await createKilledAt(t, "kvco", "tenant_create_after_record", ["--store", "kv"]);
  t.is((await cliJson<{ status: string }>(["tenant", "show", "kvco", "--store", "kv"])).json.status, "provisioning");
  const synced = await cliJson<SyncJson>(["sync", "--store", "kv"]);
  t.is(synced.code, 0, synced.stderr);
  t.like(
    synced.json.tenants.find((r) => r.slug === "kvco"),
    { result: "completed", status: "active" },
  );
  await assertUsable(t, "kvco", "kv");
});

test.serial("a corrupted tenant.json is reported as corrupt_store naming the file", async (t) => {
  const file = path.join(layout.tenantDir("wayne"), "tenant.json");
  const original = await fs.readFile(file, "utf8");
  await fs.writeFile(file, "\u0000garbage{");
  t.teardown(() => fs.writeFile(file, original));
  for (const args of [["tenant", "show", "wayne"], ["tenant", "list"], ["tenant", "suspend", "wayne"]]) {
    const r = await cliJson<CliError>(args);
    t.is(r.code, 1, args.join(" "));
    t.is(r.json.error.code, "corrupt_store", args.join(" "));
    t.true(r.json.error.message.includes(file), r.json.error.message);
  }
  await fs.writeFile(file, original);
  t.is((await cliJson<{ status: string }>(["tenant", "show", "wayne"])).json.status, "active");
});

/**
 * The tenant lifecycle as an operator drives it (the CLI, and the service behind it) against a
 * real nats-server: suspension and deletion cut live connections and refuse new ones, every
 * refusal is a clean coded error that writes nothing, `init` is idempotent, and no secret ever
 * appears in output, logs or world-readable files.
 */
import { createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import test, { type ExecutionContext } from "ava";
import { decode } from "@nats-io/jwt";
import { connect, jwtAuthenticator, type NatsConnection } from "nats";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { mintEdgeUser, type MintedUser } from "../accounts/user-jwt.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCli, runCliJson } from "./helpers/cli.ts";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

/** An nkey seed of any role, or a PEM private key. */
const SECRET_PATTERN = /S[AOU][A-Z2-7]{56}|PRIVATE KEY/;

interface CliError {
  error: { code: string; message: string };
}

const layout = new DataLayout(tempDir());
const setup = (async () => {
  await initDataDir(layout, { natsPort: -1 });
  const server = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url] });
  const svc = new TenantService(cp);
  await svc.sync();
  for (const slug of ["umbrella", "cyberdyne"]) await svc.create(slug);
  await new TenantService(cp, tenantStreamProvisioner).create("soylent");
  return { server, cp, svc };
})();
test.after.always(async () => {
  const { server, cp } = await setup;
  await cp.close();
  await server.stop();
});

const cli = async (args: string[], env?: NodeJS.ProcessEnv): ReturnType<typeof runCli> => runCli([...args, "--data-dir", layout.dir, "--nats", (await setup).server.url], env);
const cliJson = async <T = Record<string, unknown>>(args: string[], env?: NodeJS.ProcessEnv): ReturnType<typeof runCliJson<T>> => runCliJson<T>([...args, "--data-dir", layout.dir, "--nats", (await setup).server.url], env);

async function mintFor(slug: string): Promise<MintedUser> {
  const { svc } = await setup;
  const { record, signingKey } = await svc.load(slug);
  const identity = { kind: "edge" as const, cn: `agent-001.partition-1.${slug}.serviceradar`, tenant: slug, component: "agent-001", partition: "partition-1", notAfter: new Date(Date.now() + 3_600_000), fingerprint: randomBytes(32).toString("hex") };
  return mintEdgeUser(identity, { account: record.account_public_key, signingKey });
}

async function client(t: ExecutionContext, minted: MintedUser): Promise<NatsConnection> {
  const nc = await connect({ servers: (await setup).server.url, authenticator: jwtAuthenticator(minted.jwt, minted.user.getSeed()), reconnect: false });
  t.teardown(() => (nc.isClosed() ? undefined : nc.close()));
  return nc;
}

/** Connects, publishes and receives its own message: the tenant is fully usable. */
async function roundTrip(t: ExecutionContext, minted: MintedUser, slug: string): Promise<void> {
  const nc = await client(t, minted);
  const sub = nc.subscribe(`${slug}.events.ping`, { max: 1 });
  nc.publish(`${slug}.events.ping`, "ping");
  for await (const msg of sub) t.is(msg.string(), "ping");
  await nc.close();
}

/** Waits for the wall clock to pass `iso` by a whole second: JWT times are in seconds. */
async function untilSecondAfter(iso: string): Promise<void> {
  const target = (Math.floor(Date.parse(iso) / 1000) + 1) * 1000;
  while (Date.now() < target) await new Promise((resolve) => setTimeout(resolve, target - Date.now()));
}

test.serial("suspending a tenant cuts its live connection within a second and refuses new ones; resume lets it back", async (t) => {
  const { svc } = await setup;
  const before = await mintFor("umbrella");
  const nc = await client(t, before);
  await nc.flush();

  const started = performance.now();
  const suspended = await svc.suspend("umbrella");
  const closedWith = await nc.closed();
  const elapsed = performance.now() - started;
  t.true(elapsed < 1000, `connection closed ${Math.round(elapsed)} ms after suspend began`);
  t.truthy(closedWith, "NATS closed it, the client did not");
  t.is(suspended.status, "suspended");

  await t.throwsAsync(client(t, before), undefined, "the user it had is refused");
  await untilSecondAfter(suspended.suspended_at!);
  const after = await mintFor("umbrella");
  t.true(decode(after.jwt).iat > Date.parse(suspended.suspended_at!) / 1000, "minted after the suspension");
  await t.throwsAsync(client(t, after), undefined, "a user minted after the suspension is refused too");
  const synced = await svc.sync();
  t.like(
    synced.tenants.find((r) => r.slug === "umbrella"),
    { result: "unchanged", status: "suspended" },
  );
  await t.throwsAsync(client(t, after), undefined, "sync keeps the suspension, it does not lift it");

  const resumed = await cliJson<{ slug: string; status: string }>(["tenant", "resume", "umbrella"]);
  t.is(resumed.code, 0, resumed.stderr);
  t.is(resumed.json.status, "active");
  await roundTrip(t, await mintFor("umbrella"), "umbrella");
});

test.serial("resume lets NATS admit the tenant's users before the record says active (gateways release held clients on the record)", async (t) => {
  const { cp, svc } = await setup;
  await svc.suspend("cyberdyne");
  // Observed at the moment the record is written: a user of the account connects to NATS.
  const put = cp.store.put.bind(cp.store);
  const seen: string[] = [];
  cp.store.put = async (record, secrets) => {
    if (record.slug === "cyberdyne" && record.status === "active") {
      const minted = await mintFor("cyberdyne");
      const nc = await connect({ servers: (await setup).server.url, authenticator: jwtAuthenticator(minted.jwt, minted.user.getSeed()), reconnect: false }).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      if (nc instanceof Error) seen.push(`refused: ${nc.message}`);
      else {
        seen.push("admitted");
        await nc.close();
      }
    }
    return put(record, secrets);
  };
  try {
    t.is((await svc.resume("cyberdyne")).status, "active");
  } finally {
    cp.store.put = put;
  }
  t.deepEqual(seen, ["admitted"]);
  await roundTrip(t, await mintFor("cyberdyne"), "cyberdyne");
});

test.serial("tenant delete without --yes refuses with confirmation_required and changes nothing", async (t) => {
  const r = await cliJson<CliError>(["tenant", "delete", "cyberdyne"]);
  t.is(r.code, 1);
  t.is(r.json.error.code, "confirmation_required");
  t.is((await cliJson<{ status: string }>(["tenant", "show", "cyberdyne"])).json.status, "active");
  await roundTrip(t, await mintFor("cyberdyne"), "cyberdyne");
});

test.serial("tenant delete --yes cuts live connections, refuses new ones and forgets the tenant", async (t) => {
  const live = await client(t, await mintFor("cyberdyne"));
  await live.flush();
  const later = await mintFor("cyberdyne");

  const r = await cliJson<{ status: string; account: string; resolver: string }>(["tenant", "delete", "cyberdyne", "--yes"]);
  t.is(r.code, 0, r.stderr);
  t.is(r.json.status, "deleted");
  t.regex(r.json.resolver, /deleted 1 account/);
  t.truthy(await live.closed(), "NATS closed the live connection");
  await t.throwsAsync(client(t, later), undefined, "a user minted before the deletion cannot connect after it");

  t.is((await cliJson<CliError>(["tenant", "show", "cyberdyne"])).json.error.code, "unknown_tenant");
  t.false((await cliJson<{ tenants: Array<{ slug: string }> }>(["tenant", "list"])).json.tenants.some((v) => v.slug === "cyberdyne"));
  await t.throwsAsync(fs.stat(layout.tenantDir("cyberdyne")), { code: "ENOENT" });
});

test.serial("a suspended tenant can be deleted, and its streams with it", async (t) => {
  const { svc } = await setup;
  const account = (await svc.get("soylent")).account_public_key;
  const streamsDir = path.join(new NatsFiles(layout).jetstreamDir, "jetstream", account, "streams");
  t.true((await fs.readdir(streamsDir)).length > 0, "the tenant has streams");
  const suspended = await cliJson<{ status: string }>(["tenant", "suspend", "soylent"]);
  t.is(suspended.json.status, "suspended", suspended.stderr);
  const shown = await cliJson<{ streams: { error: string } }>(["tenant", "show", "soylent"]);
  t.regex(shown.json.streams.error, /suspended/, "show says why it lists no streams, instead of a connection error");

  const deleted = await cliJson<{ status: string }>(["tenant", "delete", "soylent", "--yes"]);
  t.is(deleted.code, 0, deleted.stderr);
  t.is(deleted.json.status, "deleted");
  t.deepEqual(await fs.readdir(streamsDir).catch(() => []), [], "no stream is left on disk");
});

test("tenant create refuses an existing tenant, an invalid or reserved slug and an unknown plan", async (t) => {
  await setup;
  const cases: Array<[string[], string]> = [
    [["tenant", "create", "umbrella"], "tenant_exists"],
    [["tenant", "create", "Acme_Corp"], "invalid_slug"],
    [["tenant", "create", "a".repeat(64)], "invalid_slug"],
    [["tenant", "create", "platform"], "reserved_slug"],
    [["tenant", "create", "sys"], "reserved_slug"],
    [["tenant", "create", "newco", "--plan", "gold"], "unknown_plan"],
  ];
  const umbrella = await fs.readFile(path.join(layout.tenantDir("umbrella"), "tenant.json"), "utf8");
  for (const [args, code] of cases) {
    const r = await cliJson<CliError>(args);
    t.is(r.code, 1, args.join(" "));
    t.is(r.json.error.code, code, args.join(" "));
    t.true(r.stderr.includes(`[${code}]`));
    if (code !== "tenant_exists") await t.throwsAsync(fs.stat(layout.tenantDir(args[2]!)), { code: "ENOENT" }, `nothing written for ${args[2]}`);
  }
  t.is(await fs.readFile(path.join(layout.tenantDir("umbrella"), "tenant.json"), "utf8"), umbrella, "the existing tenant is untouched");
});

test("tenant create with NATS unreachable fails with nats_unreachable naming the URL and writes nothing", async (t) => {
  await setup;
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const url = `nats://127.0.0.1:${port}`;
  const json = await runCliJson<CliError>(["tenant", "create", "unreachable-co", "--data-dir", layout.dir, "--nats", url]);
  t.is(json.code, 1);
  t.is(json.json.error.code, "nats_unreachable");
  t.true(json.json.error.message.includes(url), json.json.error.message);

  const text = await runCli(["tenant", "create", "unreachable-co", "--data-dir", layout.dir, "--nats", url]);
  t.not(text.code, 0);
  t.regex(text.stderr, new RegExp(`${url.replace(/[.]/g, "\\.")}.*\\[nats_unreachable\\]`));
  await t.throwsAsync(fs.stat(layout.tenantDir("unreachable-co")), { code: "ENOENT" });
});

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

test("no seed or private key appears in CLI output or logs, and every file holding one is 0600", async (t) => {
  const { server } = await setup;
  const outputs: Array<{ what: string; text: string }> = [];
  const record = (what: string, r: { code: number; stdout?: string; stderr: string; json?: unknown }): void => {
    outputs.push({ what, text: `${r.stdout ?? JSON.stringify(r.json)}\n${r.stderr}` });
  };

  const created = await cliJson<{ status: string }>(["tenant", "create", "acme-corp"]);
  t.is(created.code, 0, created.stderr);
  record("tenant create --json", created);
  const createdText = await cli(["tenant", "create", "globex", "--plan", "pro"]);
  t.is(createdText.code, 0, createdText.stderr);
  record("tenant create", createdText);
  for (const args of [["tenant", "show", "acme-corp"], ["tenant", "list"], ["sync"]]) {
    record(args.join(" "), await cli(args));
    record(`${args.join(" ")} --json`, await cliJson(args));
  }
  record("tenant suspend", await cli(["tenant", "suspend", "globex"]));
  record("tenant resume --json", await cliJson(["tenant", "resume", "globex"]));
  record("tenant show (unknown) --json", await cliJson(["tenant", "show", "nobody"]));
  record("init", await runCli(["init", "--data-dir", layout.dir]));
  outputs.push({ what: "nats-server log", text: server.log() });

  const seeds: string[] = [];
  for (const file of await filesUnder(layout.dir)) {
    const content = await fs.readFile(file, "utf8");
    for (const m of content.matchAll(/S[AOU][A-Z2-7]{56}/g)) seeds.push(m[0]);
  }
  t.true(seeds.length >= 9, "the operator, system, platform and two tenants' seeds were found on disk");
  for (const { what, text } of outputs) {
    t.notRegex(text, SECRET_PATTERN, what);
    for (const seed of seeds) t.false(text.includes(seed), `${what} prints a seed`);
  }
  t.true(outputs.some((o) => o.text.includes("acme-corp")), "the outputs were real");

  const secretFiles = [
    layout.rootKey,
    layout.platformCaKey,
    layout.gatewayKey,
    ...["operator.nk", "system-account.nk", "system-user.creds", "platform-account.nk", "platform-signing.nk"].map((f) => path.join(layout.natsDir, f)),
    ...["ca-key.pem", "account.nk", "account-signing.nk"].map((f) => path.join(layout.tenantDir("acme-corp"), f)),
  ];
  for (const file of secretFiles) t.is((await fs.stat(file)).mode & 0o777, 0o600, file);
  for (const file of await filesUnder(layout.dir)) {
    if (SECRET_PATTERN.test(await fs.readFile(file, "latin1"))) t.is((await fs.stat(file)).mode & 0o777, 0o600, `${file} holds a secret`);
  }
});

test("init is idempotent: a second run reports exists and changes no byte", async (t) => {
  const dir = tempDir();
  const snapshot = async (): Promise<Record<string, string>> => {
    const out: Record<string, string> = {};
    for (const file of await filesUnder(dir)) {
      const stat = await fs.stat(file);
      out[path.relative(dir, file)] = `${(stat.mode & 0o777).toString(8)} ${createHash("sha256").update(await fs.readFile(file)).digest("hex")}`;
    }
    return out;
  };
  const first = await runCliJson<{ status: string }>(["init", "--data-dir", dir, "--store", "kv", "--nats-port", "4299"]);
  t.is(first.code, 0, first.stderr);
  t.is(first.json.status, "created");
  const files = await snapshot();
  t.true(Object.keys(files).length >= 15, Object.keys(files).join(", "));

  const second = await runCliJson<{ status: string; pki: string; operator: { status: string }; plans: { status: string }; nats_config: { status: string }; master_key: { status: string } }>(["init", "--data-dir", dir, "--store", "kv", "--nats-port", "4299"]);
  t.is(second.code, 0, second.stderr);
  t.like(second.json, { status: "exists", pki: "exists", operator: { status: "exists" }, plans: { status: "exists" }, nats_config: { status: "exists" }, master_key: { status: "exists" } });
  t.deepEqual(await snapshot(), files);
});

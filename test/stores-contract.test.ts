/**
 * One contract, two tenant stores: the directory store and the KV store (against a real
 * nats-server) pass the same suite, run by `storeContract` below. Then what only one of them has:
 * the KV store's sealed secrets (never in the clear in the bucket, wrong key and tampering refused)
 * and its cross-process view; the directory store's file modes and corrupt-file errors.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import test from "ava";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane, type ControlPlaneOptions } from "../accounts/control-plane.ts";
import { DirectoryTenantStore } from "../accounts/directory-store.ts";
import { DEFAULT_REGISTRY_BUCKET, KvTenantStore } from "../accounts/kv-store.ts";
import { connectAsAccountUser } from "../accounts/nats-control.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { loadOperator, NatsFiles } from "../accounts/operator.ts";
import { MasterKey } from "../accounts/secret-box.ts";
import type { TenantChange, TenantRecord, TenantSecrets, TenantStore } from "../accounts/tenant-store.ts";
import { TenantService } from "../accounts/tenants.ts";
import { DataLayout } from "../pki/layout.ts";
import { CLI, PROJECT_ROOT, runCliJson, runFile } from "./helpers/cli.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

/** An nkey seed of any role, or a PEM private key: what must never be stored or printed in the clear. */
const SECRET_PATTERN = /S[AOU][A-Z2-7]{56}|PRIVATE KEY/;

const FAKE_CA_CERT = "-----BEGIN CERTIFICATE-----\nTUlJQmZha2VjZXJ0aWZpY2F0ZQ==\n-----END CERTIFICATE-----\n";

function fakeTenant(slug: string, overrides: Partial<TenantRecord> = {}): { record: TenantRecord; secrets: TenantSecrets } {
  const account = NativeKeyPair.create("account");
  const signing = NativeKeyPair.create("account");
  const now = new Date().toISOString();
  return {
    record: {
      slug,
      id: randomUUID(),
      name: `Tenant ${slug} — Zürich`,
      plan: "free",
      status: "active",
      created_at: now,
      updated_at: now,
      ca_cert_pem: FAKE_CA_CERT,
      account_public_key: account.getPublicKey(),
      signing_public_key: signing.getPublicKey(),
      account_jwt: `eyJ0eXAiOiJKV1QifQ.${randomUUID()}.sig`,
      ...overrides,
    },
    secrets: {
      ca_key_pem: `-----BEGIN PRIVATE KEY-----\n${randomUUID()}\n-----END PRIVATE KEY-----\n`,
      account_seed: account.seedString(),
      signing_seed: signing.seedString(),
    },
  };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

/** Records every change a watch reports and lets a test await the one it expects. */
class ChangeLog {
  readonly changes: TenantChange[] = [];
  private waiters: Array<{ match: (c: TenantChange) => boolean; resolve: () => void }> = [];

  readonly listener = (change: TenantChange): void => {
    this.changes.push(change);
    for (const w of this.waiters.filter((w) => w.match(change))) w.resolve();
    this.waiters = this.waiters.filter((w) => !w.match(change));
  };

  /** Resolves on the first matching change (already seen or still to come); rejects after `ms`. */
  next(slug: string, kind: TenantChange["kind"], ms = 10_000): Promise<void> {
    const match = (c: TenantChange): boolean => c.slug === slug && c.kind === kind;
    if (this.changes.some(match)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${kind} of ${slug} within ${ms} ms; saw ${JSON.stringify(this.changes)}`)), ms);
      this.waiters.push({ match, resolve: () => (clearTimeout(timer), resolve()) });
    });
  }
}

// One data dir and one nats-server host both stores: the directory store in <data-dir>/tenants,
// the KV store in the PLATFORM account's bucket.
const layout = new DataLayout(tempDir());
const environment = (async () => {
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  const server = await startNatsServer(new NatsFiles(layout).serverConfig);
  // Opening a KV control plane pushes the PLATFORM account, which the raw bucket readers need.
  await (await ControlPlane.open({ dataDir: layout.dir, servers: [server.url], store: "kv" })).close();
  return server;
})();
test.after.always(async () => (await environment).stop());

interface StoreUnderTest {
  kind: TenantStore["kind"];
  /** How a control plane, in this process or another, opens the store. */
  options(server: RunningNatsServer): ControlPlaneOptions;
}

const CHILD_SCRIPT = `
const [options, operation] = process.argv.slice(-2).map((a) => JSON.parse(a));
const { ControlPlane } = await import(${JSON.stringify(pathToFileURL(path.join(PROJECT_ROOT, "accounts", "control-plane.ts")).href)});
const cp = await ControlPlane.open(options);
try {
  if (operation.put) await cp.store.put(operation.put.record, operation.put.secrets);
  else await cp.store.delete(operation.delete);
} finally {
  await cp.close();
}
`;

/** Runs one store operation in a separate Node process, as another gateway replica would. */
async function inAnotherProcess(options: ControlPlaneOptions, operation: { put: { record: TenantRecord; secrets: TenantSecrets } } | { delete: string }): Promise<void> {
  const r = await runFile(process.execPath, ["--import=tsx", "--input-type=module", "--eval", CHILD_SCRIPT, JSON.stringify(options), JSON.stringify(operation)]);
  if (r.code !== 0) throw new Error(`child process failed (${r.code}): ${r.stderr}`);
}

function storeContract(subject: StoreUnderTest): void {
  const { kind } = subject;
  // Two independent instances of the same store, as two gateway replicas would hold.
  const instances = (async () => {
    const server = await environment;
    const options = subject.options(server);
    const a = await ControlPlane.open(options);
    const b = await ControlPlane.open(options);
    return { a: a.store, b: b.store, options, close: () => Promise.all([a.close(), b.close()]) };
  })();
  test.after.always(async () => (await instances).close());
  const slug = (name: string): string => `${kind === "kv" ? "k" : "d"}-${name}`;

  test(`${kind} store: a record and its secrets round-trip unchanged`, async (t) => {
    const { a, b } = await instances;
    const { record, secrets } = fakeTenant(slug("roundtrip"), { status: "suspended", suspended_at: new Date().toISOString() });
    await a.put(record, secrets);
    t.deepEqual(await b.get(record.slug), record);
    t.deepEqual(await b.getSecrets(record.slug), secrets);
    const updated = { ...record, status: "active" as const, plan: "pro", updated_at: new Date(Date.now() + 1000).toISOString() };
    delete updated.suspended_at;
    await b.put(updated);
    t.deepEqual(await a.get(record.slug), updated);
    t.deepEqual(await a.getSecrets(record.slug), secrets, "a put without secrets keeps the stored ones");
  });

  test(`${kind} store: put, get, list, getSecrets and delete`, async (t) => {
    const { a, b } = await instances;
    const first = fakeTenant(slug("list-b"));
    const second = fakeTenant(slug("list-a"));
    await a.put(first.record, first.secrets);
    await a.put(second.record, second.secrets);

    const listed = await b.list();
    const slugs = listed.map((r) => r.slug);
    t.deepEqual(slugs, [...slugs].sort(), "listed by slug");
    t.true(slugs.includes(first.record.slug) && slugs.includes(second.record.slug));
    t.deepEqual(
      listed.find((r) => r.slug === first.record.slug),
      first.record,
    );
    t.false(JSON.stringify(listed).includes(first.secrets.account_seed), "listing never carries secrets");

    t.is(await b.get(slug("unknown")), undefined);
    t.is(await b.getSecrets(slug("unknown")), undefined);

    await b.delete(first.record.slug);
    t.is(await a.get(first.record.slug), undefined);
    t.is(await a.getSecrets(first.record.slug), undefined);
    t.false((await a.list()).some((r) => r.slug === first.record.slug));
    t.deepEqual(await a.get(second.record.slug), second.record, "deleting one tenant leaves the others");
  });

  test(`${kind} store: a tenant stored without secrets has none`, async (t) => {
    const { a, b } = await instances;
    const { record } = fakeTenant(slug("nosecrets"));
    await a.put(record);
    t.deepEqual(await b.get(record.slug), record);
    t.is(await b.getSecrets(record.slug), undefined);
  });

  test(`${kind} store: an invalid record or secret is refused and nothing is written`, async (t) => {
    const { a } = await instances;
    const bad = fakeTenant(slug("invalid"));
    await t.throwsAsync(a.put({ ...bad.record, account_public_key: "not-a-key" }, bad.secrets));
    await t.throwsAsync(a.put(bad.record, { ...bad.secrets, account_seed: "SAnotaseed" }));
    t.is(await a.get(bad.record.slug), undefined);
  });

  test(`${kind} store: listing while another instance creates and deletes tenants never fails`, async (t) => {
    const { a, b } = await instances;
    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 0; i < 25; i++) {
          const { record, secrets } = fakeTenant(slug(`churn-${i % 3}`));
          await b.put(record, secrets);
          await b.delete(record.slug);
        }
      } finally {
        writing = false;
      }
    })();
    let listings = 0;
    let slowest = 0;
    while (writing) {
      const started = Date.now();
      for (const record of await a.list()) if (record.slug.includes("churn")) t.truthy(record.account_jwt);
      slowest = Math.max(slowest, Date.now() - started);
      listings++;
    }
    await writer;
    t.true(listings > 0);
    t.true(slowest < 5000, `a listing took ${slowest} ms`);
    t.false((await a.list()).some((r) => r.slug.includes("churn")));
  });

  test(`${kind} store: watch sees a put and a delete made by another store instance`, async (t) => {
    const { a, b } = await instances;
    const log = new ChangeLog();
    const stop = await a.watch(log.listener);
    t.teardown(stop);
    const { record, secrets } = fakeTenant(slug("watched"));
    await b.put(record, secrets);
    await log.next(record.slug, "put");
    await b.delete(record.slug);
    await log.next(record.slug, "delete");
    t.pass();
  });

  test(`${kind} store: watch sees a put and a delete made by another process`, async (t) => {
    const { a, options } = await instances;
    const log = new ChangeLog();
    const stop = await a.watch(log.listener);
    t.teardown(stop);
    const tenant = fakeTenant(slug("elsewhere"));
    await inAnotherProcess(options, { put: tenant });
    await log.next(tenant.record.slug, "put");
    t.deepEqual(await a.get(tenant.record.slug), tenant.record);
    t.deepEqual(await a.getSecrets(tenant.record.slug), tenant.secrets);
    await inAnotherProcess(options, { delete: tenant.record.slug });
    await log.next(tenant.record.slug, "delete");
    t.is(await a.get(tenant.record.slug), undefined);
  });
}

storeContract({ kind: "directory", options: (server) => ({ dataDir: layout.dir, servers: [server.url], store: "dir", pollMs: 50 }) });
storeContract({ kind: "kv", options: (server) => ({ dataDir: layout.dir, servers: [server.url], store: "kv" }) });

// ---- KV store only --------------------------------------------------------------------------

/** A raw view of a registry bucket, over a PLATFORM-account connection of its own. */
async function rawBucket(
  at: DataLayout = layout,
  server: RunningNatsServer | Promise<RunningNatsServer> = environment,
  bucket = DEFAULT_REGISTRY_BUCKET,
): Promise<{ nc: NatsConnection; kv: KV }> {
  const { url } = await server;
  const operator = await loadOperator(at);
  const nc = await connectAsAccountUser([url], { account: operator.platform.getPublicKey(), signer: operator.platformSigning, name: "raw-bucket-reader" });
  const kv = await new Kvm(nc).create(bucket, { history: 5 });
  return { nc, kv };
}

test("kv store: a tenant created by the CLI in one process is seen by another control plane via list and watch", async (t) => {
  // A data dir and server of its own: creating a tenant pushes the PLATFORM account, which imports
  // from every stored tenant's account, and the shared bucket holds fake tenants whose accounts
  // NATS has never seen (it would try to resolve each of them first).
  const layout = new DataLayout(tempDir());
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  const server = await startNatsServer(new NatsFiles(layout).serverConfig);
  t.teardown(() => server.stop());
  const observer = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url], store: "kv" });
  t.teardown(() => observer.close());
  const log = new ChangeLog();
  t.teardown(await observer.store.watch(log.listener));

  const created = await runCliJson<{ status: string; tenant: { slug: string; status: string } }>(["tenant", "create", "globex", "--store", "kv", "--nats", server.url, "--data-dir", layout.dir]);
  t.is(created.code, 0, created.stderr);
  t.is(created.json.status, "created");
  await log.next("globex", "put");
  const listed = (await observer.store.list()).find((r) => r.slug === "globex");
  t.is(listed?.status, "active");
  t.false(await fs.stat(layout.tenantDir("globex")).then(() => true, () => false), "the KV store writes no tenant files");

  // The real tenant's CA key and seeds are in the bucket only sealed.
  const secrets = await observer.store.getSecrets("globex");
  t.regex(secrets!.ca_key_pem, /BEGIN (RSA )?PRIVATE KEY/);
  const raw = await rawBucket(layout, server);
  t.teardown(() => raw.nc.close());
  const entry = await raw.kv.get("tenants.globex");
  const text = Buffer.from(entry!.value).toString("latin1");
  t.notRegex(text, SECRET_PATTERN);
  for (const secret of [secrets!.account_seed, secrets!.signing_seed]) t.false(text.includes(secret));
  t.like(JSON.parse(text), { secrets: { alg: "AES-256-GCM" } });
});

test("kv store: no value in the bucket holds a seed or private key in the clear", async (t) => {
  const server = await environment;
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url], store: "kv" });
  t.teardown(() => cp.close());
  const tenant = fakeTenant("k-sealed");
  await cp.store.put(tenant.record, tenant.secrets);

  const raw = await rawBucket();
  t.teardown(() => raw.nc.close());
  let checked = 0;
  for await (const key of await raw.kv.keys()) {
    const entry = await raw.kv.get(key);
    if (!entry || entry.operation !== "PUT") continue;
    t.notRegex(Buffer.from(entry.value).toString("latin1"), SECRET_PATTERN, key);
    checked++;
  }
  t.true(checked >= 1);
  t.deepEqual(await cp.store.getSecrets("k-sealed"), tenant.secrets);
});

test("kv store: secrets sealed under another master key are refused with wrong_master_key", async (t) => {
  const server = await environment;
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url], store: "kv" });
  t.teardown(() => cp.close());
  const tenant = fakeTenant("k-otherkey");
  await cp.store.put(tenant.record, tenant.secrets);

  const raw = await rawBucket();
  t.teardown(() => raw.nc.close());
  const wrongKey = MasterKey.generate();
  const stranger = await KvTenantStore.open(raw.nc, wrongKey);
  t.deepEqual(await stranger.get("k-otherkey"), tenant.record, "public records need no key");
  const error = await t.throwsAsync(stranger.getSecrets("k-otherkey"));
  t.is((error as { code?: string }).code, "wrong_master_key");

  // The CLI with the wrong key in the environment says so too, and prints no secret.
  const cli = await runCliJson<{ error: { code: string; message: string } }>(["tenant", "suspend", "k-otherkey", "--store", "kv", "--nats", server.url, "--data-dir", layout.dir], {
    TENANT_GATEWAY_MASTER_KEY: wrongKey.toHex(),
  });
  t.is(cli.code, 1);
  t.is(cli.json.error.code, "wrong_master_key");
  t.notRegex(JSON.stringify(cli.json) + cli.stderr, SECRET_PATTERN);
  t.is((await cp.store.get("k-otherkey"))?.status, "active", "nothing was changed");
});

test("kv store: a tampered sealed value is refused with secret_tampered", async (t) => {
  const server = await environment;
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url], store: "kv" });
  t.teardown(() => cp.close());
  const victim = fakeTenant("k-tampered");
  const other = fakeTenant("k-donor");
  await cp.store.put(victim.record, victim.secrets);
  await cp.store.put(other.record, other.secrets);

  const raw = await rawBucket();
  t.teardown(() => raw.nc.close());
  const stored = JSON.parse((await raw.kv.get("tenants.k-tampered"))!.string()) as { record: TenantRecord; secrets: { data: string; tag: string } };

  const flipped = Buffer.from(stored.secrets.data, "base64");
  flipped[0] = flipped[0]! ^ 0x01;
  await raw.kv.put("tenants.k-tampered", JSON.stringify({ ...stored, secrets: { ...stored.secrets, data: flipped.toString("base64") } }));
  t.is(await codeOf(cp.store.getSecrets("k-tampered")), "secret_tampered", "altered ciphertext");

  const donor = JSON.parse((await raw.kv.get("tenants.k-donor"))!.string()) as { secrets: unknown };
  await raw.kv.put("tenants.k-tampered", JSON.stringify({ ...stored, secrets: donor.secrets }));
  t.is(await codeOf(cp.store.getSecrets("k-tampered")), "secret_tampered", "another tenant's sealed secrets moved into this entry");

  await raw.kv.put("tenants.k-tampered", JSON.stringify(stored));
  t.deepEqual(await cp.store.getSecrets("k-tampered"), victim.secrets, "the untouched value still opens");
});

test("kv store: a value that is not a tenant record is corrupt_store naming the key", async (t) => {
  // A bucket of its own: a corrupt entry would make every listing of the shared bucket fail.
  const raw = await rawBucket(layout, environment, "corrupt_registry");
  t.teardown(() => raw.nc.close());
  const store = await KvTenantStore.open(raw.nc, MasterKey.generate(), { bucket: "corrupt_registry" });
  const copied = JSON.stringify({ record: fakeTenant("k-elsewhere").record });
  for (const garbage of ["{not json", "null", "42", JSON.stringify({ record: { slug: "k-corrupt" } }), copied]) {
    await raw.kv.put("tenants.k-corrupt", garbage);
    const error = await t.throwsAsync(store.get("k-corrupt"));
    t.is((error as { code?: string }).code, "corrupt_store", garbage);
    t.true(error!.message.includes("kv:corrupt_registry/tenants.k-corrupt"), error!.message);
    await t.throwsAsync(store.list(), { message: /tenants\.k-corrupt/ });
  }
});

test("kv store: a registry that cannot be opened fails the CLI promptly with kv_unavailable", async (t) => {
  const server = await environment;
  // Bounded and killed on expiry: the failure this guards against is a process that never exits.
  const r = await new Promise<{ code: number | null; stderr: string; killed: boolean }>((resolve) => {
    execFile(process.execPath, [CLI, "tenant", "list", "--store", "kv", "--bucket", "bad.bucket", "--data-dir", layout.dir, "--nats", server.url], { timeout: 20_000, killSignal: "SIGKILL" }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : null) : 0, stderr, killed: err?.killed ?? false });
    });
  });
  t.false(r.killed, "the command hung with its connections open");
  t.is(r.code, 1);
  t.regex(r.stderr, /bad\.bucket.*\[kv_unavailable\]/);
});

// ---- directory store only -------------------------------------------------------------------

test("directory store: seeds and the CA key are files readable by the owner only", async (t) => {
  const dirLayout = new DataLayout(tempDir());
  const store = new DirectoryTenantStore(dirLayout);
  const { record, secrets } = fakeTenant("d-modes");
  await store.put(record, secrets);
  const dir = dirLayout.tenantDir("d-modes");
  const modes: Record<string, number> = {};
  for (const name of await fs.readdir(dir)) modes[name] = (await fs.stat(path.join(dir, name))).mode & 0o777;
  t.is(modes["ca-key.pem"], 0o600);
  t.is(modes["account.nk"], 0o600);
  t.is(modes["account-signing.nk"], 0o600);
  for (const [name, mode] of Object.entries(modes)) {
    const content = await fs.readFile(path.join(dir, name), "utf8");
    if (SECRET_PATTERN.test(content)) t.is(mode, 0o600, `${name} holds a secret`);
  }
  t.notRegex(await fs.readFile(path.join(dir, "tenant.json"), "utf8"), SECRET_PATTERN);
});

test("directory store: a tenant.json that is not a tenant record is corrupt_store naming the file", async (t) => {
  const dirLayout = new DataLayout(tempDir());
  const store = new DirectoryTenantStore(dirLayout);
  const { record, secrets } = fakeTenant("d-corrupt");
  await store.put(record, secrets);
  const file = path.join(dirLayout.tenantDir("d-corrupt"), "tenant.json");
  const copied = JSON.stringify({ ...JSON.parse(await fs.readFile(file, "utf8")), slug: "d-elsewhere" });
  for (const garbage of ["\u0000\u0001garbage", "null", JSON.stringify({ slug: "d-corrupt", status: "exploded" }), copied]) {
    await fs.writeFile(file, garbage);
    const error = await t.throwsAsync(store.get("d-corrupt"));
    t.is((error as { code?: string }).code, "corrupt_store", garbage);
    t.true(error!.message.includes(file), error!.message);
    await t.throwsAsync(store.list(), { message: new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) });
  }
});

test("the tenant service refuses stored seeds that belong to another account with corrupt_store", async (t) => {
  const server = await environment;
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url], store: "dir" });
  t.teardown(() => cp.close());
  const svc = new TenantService(cp);
  const tenant = fakeTenant("d-mixed");
  await cp.store.put(tenant.record, fakeTenant("d-other").secrets);
  const error = await t.throwsAsync(svc.load("d-mixed"));
  t.is((error as { code?: string }).code, "corrupt_store");
  t.true(error!.message.includes(tenant.record.account_public_key));

  await cp.store.put(tenant.record, tenant.secrets);
  t.is((await svc.load("d-mixed")).signingKey.getPublicKey(), tenant.record.signing_public_key);
});

/**
 * The signing primitives the accounts layer stands on: native ed25519 key pairs that must be
 * indistinguishable from nkeys.js, and the issuer check that keeps a foreign operator's account
 * JWT from ever reaching NATS (which would store it and answer "jwt updated").
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { decode, encodeAccount, type Account } from "@nats-io/jwt";
import type { Msg } from "@nats-io/transport-node";
import { createAccount, createOperator, createUser, fromPublic, fromSeed, type KeyPair } from "nkeys.js";
import { initDataDir } from "../accounts/bootstrap.ts";
import { assertIssuedByOperator, CLAIMS_UPDATE_SUBJECT, pushAccountJwt } from "../accounts/claims.ts";
import { encodeUserJwt } from "../accounts/jwts.ts";
import { connectAsSystem } from "../accounts/nats-control.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { loadOperator, NatsFiles } from "../accounts/operator.ts";
import { builtinPlans, DEFAULT_PLAN, getPlan } from "../accounts/plans.ts";
import { loadMasterKey, MASTER_KEY_ENV, MasterKey, writeMasterKeyFile } from "../accounts/secret-box.ts";
import { encodeTenantAccountJwt } from "../accounts/tenant-account.ts";
import { DataLayout } from "../pki/layout.ts";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const codeOf = async (p: Promise<unknown> | (() => unknown)): Promise<string | undefined> => {
  try {
    await (typeof p === "function" ? p() : p);
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

const roles: Array<[string, () => KeyPair]> = [
  ["operator", createOperator],
  ["account", createAccount],
  ["user", createUser],
];

for (const [role, create] of roles) {
  test(`a native ${role} key pair signs byte-identically to nkeys.js and has its public key`, (t) => {
    const reference = create();
    const native = NativeKeyPair.fromSeed(reference.getSeed());
    t.is(native.getPublicKey(), reference.getPublicKey());
    t.deepEqual(native.getSeed(), reference.getSeed());
    for (const size of [0, 1, 32, 1000]) {
      const input = randomBytes(size);
      const signature = native.sign(input);
      t.deepEqual(Buffer.from(signature), Buffer.from(reference.sign(input)), `signature over ${size} bytes`);
      t.true(fromPublic(reference.getPublicKey()).verify(input, signature));
      t.true(native.verify(input, signature));
      t.false(native.verify(Buffer.concat([input, Buffer.from([1])]), signature));
    }
  });
}

test("a natively created user key pair is a valid nkey that nkeys.js reproduces", (t) => {
  const native = NativeKeyPair.create("user");
  t.regex(native.getPublicKey(), /^U[A-Z2-7]{55}$/);
  t.regex(native.seedString(), /^SU[A-Z2-7]{56}$/);
  const reference = fromSeed(native.getSeed());
  t.is(reference.getPublicKey(), native.getPublicKey());
  const input = new TextEncoder().encode("nonce-1234");
  t.deepEqual(Buffer.from(native.sign(input)), Buffer.from(reference.sign(input)));
});

test("a seed that is not an nkey seed is refused with invalid_seed", async (t) => {
  t.is(await codeOf(() => NativeKeyPair.fromSeed("SAGARBAGE")), "invalid_seed");
  t.is(await codeOf(() => NativeKeyPair.fromSeed(createAccount().getPublicKey())), "invalid_seed");
});

test("a user JWT signed natively carries a signature nkeys.js verifies", async (t) => {
  const signing = NativeKeyPair.create("account");
  const account = NativeKeyPair.create("account");
  const user = NativeKeyPair.create("user");
  const jwt = await encodeUserJwt("agent-001.partition-1.acme-corp.serviceradar", user, { signer: signing, account: account.getPublicKey(), exp: Math.floor(Date.now() / 1000) + 60 });
  const [header, body, sig] = jwt.split(".") as [string, string, string];
  t.true(fromPublic(signing.getPublicKey()).verify(new TextEncoder().encode(`${header}.${body}`), Buffer.from(sig, "base64url")));
  const claims = decode<{ issuer_account?: string }>(jwt);
  t.is(claims.iss, signing.getPublicKey());
  t.is(claims.sub, user.getPublicKey());
  t.is(claims.nats.issuer_account, account.getPublicKey());
});

async function foreignAccountJwt(): Promise<{ jwt: string; account: string; operator: string }> {
  const foreignOperator = NativeKeyPair.create("operator");
  const account = NativeKeyPair.create("account");
  const signing = NativeKeyPair.create("account");
  const jwt = await encodeTenantAccountJwt({ slug: "acme-corp", id: "00000000-0000-4000-8000-000000000000", plan: DEFAULT_PLAN, account: account.getPublicKey(), signingKey: signing.getPublicKey() }, getPlan(builtinPlans(), DEFAULT_PLAN), foreignOperator);
  return { jwt, account: account.getPublicKey(), operator: foreignOperator.getPublicKey() };
}

test("assertIssuedByOperator refuses an account JWT of a foreign operator and anything not an account", async (t) => {
  const ours = NativeKeyPair.create("operator");
  const foreign = await foreignAccountJwt();
  const error = t.throws(() => assertIssuedByOperator(foreign.jwt, ours.getPublicKey()));
  t.is((error as { code?: string }).code, "foreign_issuer");
  t.true(error!.message.includes(foreign.operator));

  const account = NativeKeyPair.create("account");
  const own = await encodeAccount("acme-corp", account, { limits: { conn: 1 } } as Partial<Account>, { signer: ours });
  t.is(assertIssuedByOperator(own, ours.getPublicKey()), account.getPublicKey());

  const userJwt = await encodeUserJwt("someone", NativeKeyPair.create("user"), { signer: account, account: account.getPublicKey() });
  t.is(await codeOf(() => assertIssuedByOperator(userJwt, ours.getPublicKey())), "not_an_account_jwt");
  t.is(await codeOf(() => assertIssuedByOperator("not.a.jwt", ours.getPublicKey())), "invalid_jwt");
});

test("the push path refuses a foreign operator's account JWT without sending it, though NATS would store it", async (t) => {
  const layout = new DataLayout(tempDir());
  await initDataDir(layout, { natsPort: -1 });
  const server = await startNatsServer(new NatsFiles(layout).serverConfig);
  t.teardown(() => server.stop());
  const operator = await loadOperator(layout);
  const pusher = await connectAsSystem([server.url], operator.systemUserCreds);
  // A second system connection sees every claims update request that reaches NATS.
  const spy = await connectAsSystem([server.url], operator.systemUserCreds);
  t.teardown(async () => {
    await pusher.close();
    await spy.close();
  });
  const seen: string[] = [];
  spy.subscribe(CLAIMS_UPDATE_SUBJECT, {
    callback: (_err, msg: Msg) => {
      seen.push(msg.string());
    },
  });
  await spy.flush();

  const foreign = await foreignAccountJwt();
  t.is(await codeOf(pushAccountJwt(pusher, foreign.jwt, operator.operator.getPublicKey(), { attempts: 1 })), "foreign_issuer");

  // Positive control: the same bytes sent raw are stored by NATS without complaint ...
  const raw = await pusher.request(CLAIMS_UPDATE_SUBJECT, foreign.jwt, { timeout: 5000 });
  t.regex(JSON.stringify(raw.json()), /jwt updated/);
  await spy.flush();
  // ... and the spy saw exactly that one request: the refused push never left the process.
  t.deepEqual(seen, [foreign.jwt]);
});

test("a sealed secret opens only under its master key and in its place", async (t) => {
  const key = MasterKey.generate();
  const box = key.seal("the CA key", "tenants.acme-corp");
  t.false(JSON.stringify(box).includes("the CA key"));
  t.is(key.open(box, "secret", "tenants.acme-corp"), "the CA key");
  t.is(await codeOf(() => MasterKey.generate().open(box, "secret", "tenants.acme-corp")), "wrong_master_key");
  t.is(await codeOf(() => key.open(box, "secret", "tenants.globex")), "secret_tampered", "moved to another tenant's entry");
  const data = Buffer.from(box.data, "base64");
  data[0] = data[0]! ^ 0xff;
  t.is(await codeOf(() => key.open({ ...box, data: data.toString("base64") }, "secret", "tenants.acme-corp")), "secret_tampered");
  t.is(await codeOf(() => key.open({ ...box, tag: Buffer.alloc(16).toString("base64") }, "secret", "tenants.acme-corp")), "secret_tampered");
});

test("the master key comes from the environment first, else from a file only its owner can read", async (t) => {
  const dir = tempDir();
  const file = path.join(dir, "master.key");
  const key = MasterKey.generate();
  await writeMasterKeyFile(file, key);
  t.is((await fs.stat(file)).mode & 0o777, 0o600);
  t.is((await loadMasterKey({ file, env: {} })).id, key.id);

  const fromEnv = MasterKey.generate();
  t.is((await loadMasterKey({ file, env: { [MASTER_KEY_ENV]: fromEnv.toHex() } })).id, fromEnv.id);
  t.is((await loadMasterKey({ env: { [MASTER_KEY_ENV]: Buffer.from(fromEnv.toHex(), "hex").toString("base64") } })).id, fromEnv.id, "base64 too");

  await fs.chmod(file, 0o644);
  t.is(await codeOf(loadMasterKey({ file, env: {} })), "master_key_insecure");
  t.is(await codeOf(loadMasterKey({ file: path.join(dir, "missing.key"), env: {} })), "master_key_missing");
  t.is(await codeOf(loadMasterKey({ env: { [MASTER_KEY_ENV]: "too-short" } })), "invalid_master_key");
});

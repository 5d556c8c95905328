/**
 * Adopting an existing operator (made here as nsc makes one, with @nats-io/jwt and nkeys.js: an
 * operator that requires signing keys, its system account signed with the signing key, a system
 * user's creds) and its own nats-server (operator mode, full resolver): `operator adopt` takes a
 * signing key of the operator — never its identity key — and from then on tenants are created,
 * served through the gateway to stock clients, and deleted under that operator.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { encodeAccount, encodeOperator, encodeUser, fmtCreds, type Operator } from "@nats-io/jwt";
import { createAccount, createOperator, createUser } from "nkeys.js";
import { connect } from "nats";
import { connectAsSystem } from "../accounts/nats-control.ts";
import { lookupAccountJwt, resolverAccounts } from "../accounts/claims.ts";
import { decodeJwt, SYSTEM_ACCOUNT_LIMITS } from "../accounts/jwts.ts";
import { createLogger } from "../common/logger.ts";
import { resolveConfig } from "../gateway/config.ts";
import { Gateway } from "../gateway/gateway.ts";
import { DataLayout } from "../pki/layout.ts";
import { runCliJson } from "./helpers/cli.ts";
import { LogCapture } from "./helpers/gateway-fixture.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

interface ExistingPlatform {
  server: RunningNatsServer;
  files: { operatorJwt: string; signingKey: string; identityKey: string; systemCreds: string; otherCreds: string; foreignSigningKey: string };
  operator: string;
  signing: string;
}

/** An operator as `nsc` sets one up (`--require-signing-keys`: no identity key issues anything), with its nats-server running. */
async function existingPlatform(): Promise<ExistingPlatform> {
  const dir = tempDir("ntg-nsc-");
  const operator = createOperator();
  const signing = createOperator();
  const system = createAccount();
  const systemSigning = createAccount();
  const other = createAccount();
  const systemUser = createUser();
  const otherUser = createUser();
  const claims = { signing_keys: [signing.getPublicKey()], system_account: system.getPublicKey(), strict_signing_key_usage: true } as Partial<Operator>;
  const operatorJwt = await encodeOperator("existing-platform", operator, claims);
  // With --require-signing-keys accounts, too, issue users with signing keys only.
  const systemJwt = await encodeAccount("SYS", system, { limits: SYSTEM_ACCOUNT_LIMITS, signing_keys: [systemSigning.getPublicKey()] }, { signer: signing });
  const otherJwt = await encodeAccount("APP", other, { limits: SYSTEM_ACCOUNT_LIMITS }, { signer: signing });
  const td = new TextDecoder();
  const files = {
    operatorJwt: path.join(dir, "operator.jwt"),
    signingKey: path.join(dir, "operator-signing.nk"),
    identityKey: path.join(dir, "operator.nk"),
    systemCreds: path.join(dir, "sys.creds"),
    otherCreds: path.join(dir, "app.creds"),
    foreignSigningKey: path.join(dir, "foreign.nk"),
  };
  await fs.writeFile(files.operatorJwt, operatorJwt);
  await fs.writeFile(files.signingKey, td.decode(signing.getSeed()), { mode: 0o600 });
  await fs.writeFile(files.identityKey, td.decode(operator.getSeed()), { mode: 0o600 });
  await fs.writeFile(files.foreignSigningKey, td.decode(createOperator().getSeed()), { mode: 0o600 });
  await fs.writeFile(files.systemCreds, td.decode(fmtCreds(await encodeUser("sys", systemUser, system, {}, { signer: systemSigning }), systemUser)), { mode: 0o600 });
  await fs.writeFile(files.otherCreds, td.decode(fmtCreds(await encodeUser("app", otherUser, other), otherUser)), { mode: 0o600 });
  const config = path.join(dir, "nats-server.conf");
  await fs.writeFile(
    config,
    [
      'listen: "127.0.0.1:-1"',
      `operator: ${JSON.stringify(files.operatorJwt)}`,
      `system_account: ${system.getPublicKey()}`,
      `resolver: { type: full, dir: ${JSON.stringify(path.join(dir, "jwt"))}, allow_delete: true }`,
      `resolver_preload: { ${system.getPublicKey()}: ${JSON.stringify(systemJwt)}, ${other.getPublicKey()}: ${JSON.stringify(otherJwt)} }`,
      `jetstream: { store_dir: ${JSON.stringify(path.join(dir, "js"))} }`,
      "",
    ].join("\n"),
  );
  return { server: await startNatsServer(config), files, operator: operator.getPublicKey(), signing: signing.getPublicKey() };
}

const platform = existingPlatform();
test.after.always(async () => (await platform).server.stop());

test.serial("an adopted operator: the gateway signs tenant accounts with its signing key, serves their stock clients, and deletes them", async (t) => {
  const p = await platform;
  const layout = new DataLayout(tempDir("ntg-adopted-"));
  const adopt = await runCliJson<{ status: string; operator: string; signing_key: string; platform_account: string; init: { pki: string } }>([
    "operator",
    "adopt",
    "--operator-jwt",
    p.files.operatorJwt,
    "--signing-key",
    p.files.signingKey,
    "--system-creds",
    p.files.systemCreds,
    "--nats",
    p.server.url,
    "--data-dir",
    layout.dir,
  ]);
  t.is(adopt.code, 0, adopt.stderr);
  t.like(adopt.json, { status: "adopted", operator: p.operator, signing_key: p.signing, init: { pki: "created" } });
  t.is((await fs.stat(path.join(layout.natsDir, "operator.nk"))).mode & 0o777, 0o600);
  t.is((await fs.readFile(path.join(layout.natsDir, "operator.nk"), "utf8")).trim(), (await fs.readFile(p.files.signingKey, "utf8")).trim(), "the signing key, never the identity key");

  // Every command now finds the adopted NATS by the recorded URL.
  const created = await runCliJson<{ status: string; tenant: { account: { public_key: string } } }>(["tenant", "create", "acme-corp", "--plan", "pro", "--data-dir", layout.dir]);
  t.is(created.code, 0, created.stderr);
  const account = created.json.tenant.account.public_key;
  const system = await connectAsSystem([p.server.url], await fs.readFile(p.files.systemCreds, "utf8"));
  t.teardown(() => system.close());
  const held = await lookupAccountJwt(system, account);
  t.is(decodeJwt(held!, "tenant account").iss, p.signing, "the tenant account is issued by the operator's signing key");
  t.true((await resolverAccounts(system)).has(adopt.json.platform_account));

  const issued = await runCliJson<{ files: { cert: string; key: string } }>(["pki", "issue", "--tenant", "acme-corp", "--component", "agent-001", "--partition", "p1", "--data-dir", layout.dir]);
  t.is(issued.code, 0, issued.stderr);
  const logs = new LogCapture();
  const config = await resolveConfig({ env: {}, flags: { listen: "127.0.0.1:0", nats: p.server.url, data_dir: layout.dir, log_level: "info", drain_timeout_ms: 500 } });
  const gateway = await Gateway.start(config, createLogger({ level: "info", destination: logs }));
  t.teardown(() => gateway.shutdown(0));
  await logs.waitFor((l) => l.event === "sync");
  const nc = await connect({ servers: `tls://127.0.0.1:${gateway.port}`, tls: { certFile: issued.json.files.cert, keyFile: issued.json.files.key, caFile: layout.rootCert }, reconnect: false });
  const sub = nc.subscribe("events.adopted", { max: 1 });
  nc.publish("events.adopted", "under an existing operator");
  for await (const m of sub) t.is(m.string(), "under an existing operator");
  t.is((await nc.jetstream().publish("events.adopted", "stored")).stream, "events");
  await nc.close();

  const deleted = await runCliJson<{ status: string }>(["tenant", "delete", "acme-corp", "--yes", "--data-dir", layout.dir]);
  t.is(deleted.code, 0, deleted.stderr);
  t.false((await resolverAccounts(system)).has(account), "deleted from the resolver with a request signed by the signing key");

  const again = await runCliJson<{ status: string }>(["operator", "adopt", "--operator-jwt", p.files.operatorJwt, "--signing-key", p.files.signingKey, "--system-creds", p.files.systemCreds, "--nats", p.server.url, "--data-dir", layout.dir]);
  t.is(again.json.status, "exists", "adopting again is idempotent");
});

test.serial("adoption is refused with a key that is not the operator's signing key, creds of another account, or a data dir of another operator", async (t) => {
  const p = await platform;
  const adopt = (dir: string, overrides: Partial<ExistingPlatform["files"]>): Promise<{ code: number; json: { error: { code: string; message: string } } }> => {
    const f = { ...p.files, ...overrides };
    return runCliJson(["operator", "adopt", "--operator-jwt", f.operatorJwt, "--signing-key", f.signingKey, "--system-creds", f.systemCreds, "--nats", p.server.url, "--data-dir", dir]);
  };
  const foreign = await adopt(tempDir(), { signingKey: p.files.foreignSigningKey });
  t.is(foreign.json.error.code, "operator_adoption_refused");
  t.regex(foreign.json.error.message, /is not a signing key of operator existing-platform/);
  const identity = await adopt(tempDir(), { signingKey: p.files.identityKey });
  t.is(identity.json.error.code, "operator_adoption_refused", "the operator requires signing keys: its identity key signs no account");
  const notSystem = await adopt(tempDir(), { systemCreds: p.files.otherCreds });
  t.is(notSystem.json.error.code, "operator_adoption_refused");
  t.regex(notSystem.json.error.message, /not of the operator's system account/);

  const own = new DataLayout(tempDir());
  t.is((await runCliJson(["init", "--data-dir", own.dir, "--nats-port", "14999"])).code, 0);
  const taken = await adopt(own.dir, {});
  t.is(taken.code, 1);
  t.is(taken.json.error.code, "operator_exists");
});

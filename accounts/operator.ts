/**
 * The NATS trust root the gateway owns: the operator, the system account (with the user that
 * pushes account JWTs) and the PLATFORM account (platform services, the audit stream, the KV
 * registry). Kept under `<data-dir>/nats/`, seeds and creds 0600. Creating them is idempotent.
 *
 * Or the gateway adopts an operator a platform already runs (made with nsc): it is given the
 * operator's JWT, one of its signing keys and a system-account user's creds, and signs the tenant
 * and PLATFORM accounts with that signing key; the operator's identity key and the system account's
 * seed stay with their owner. `nats/operator.nk` then holds the signing key.
 */
import path from "node:path";
import { parseCreds, type Account, type Operator, type User } from "@nats-io/jwt";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { fileExists, readTextFile, writeFileAtomic, writeSecretFile } from "../common/files.ts";
import type { DataLayout } from "../pki/layout.ts";
import { lookupAccountJwt, pushAccountJwtIfChanged, type PushResult } from "./claims.ts";
import { credsFile, decodeJwt, encodeAccountJwt, encodeOperatorJwt, encodeUserJwt, SYSTEM_ACCOUNT_LIMITS, UNLIMITED_LIMITS } from "./jwts.ts";
import { connectAsSystem } from "./nats-control.ts";
import { NativeKeyPair } from "./native-keys.ts";
import type { AccountSigner } from "./user-jwt.ts";

export const OPERATOR_NAME = "tenant-gateway";
/**
 * nats-server's client port as `init` configures it: loopback only, and not 4222, which is the
 * gateway's (edge clients expect NATS's usual port there).
 */
export const DEFAULT_NATS_PORT = 14222;
/** The NATS every command talks to when neither a flag, the environment nor the data dir says otherwise. */
export const DEFAULT_NATS_URL = `nats://127.0.0.1:${DEFAULT_NATS_PORT}`;
export const SYSTEM_ACCOUNT_NAME = "SYS";
export const PLATFORM_ACCOUNT_NAME = "PLATFORM";

export class NatsFiles {
  readonly dir: string;
  constructor(layout: DataLayout) {
    this.dir = layout.natsDir;
  }
  get operatorJwt(): string {
    return path.join(this.dir, "operator.jwt");
  }
  get operatorSeed(): string {
    return path.join(this.dir, "operator.nk");
  }
  get systemAccountJwt(): string {
    return path.join(this.dir, "system-account.jwt");
  }
  get systemAccountSeed(): string {
    return path.join(this.dir, "system-account.nk");
  }
  get systemUserCreds(): string {
    return path.join(this.dir, "system-user.creds");
  }
  get platformAccountJwt(): string {
    return path.join(this.dir, "platform-account.jwt");
  }
  get platformAccountSeed(): string {
    return path.join(this.dir, "platform-account.nk");
  }
  get platformSigningSeed(): string {
    return path.join(this.dir, "platform-signing.nk");
  }
  get serverConfig(): string {
    return path.join(this.dir, "nats-server.conf");
  }
  /** Where this data dir's NATS is: the default `--nats` of every command (written by init and dev). */
  get url(): string {
    return path.join(this.dir, "url");
  }
  get resolverDir(): string {
    return path.join(this.dir, "jwt");
  }
  get jetstreamDir(): string {
    return path.join(this.dir, "js");
  }
}

export interface OperatorMaterial {
  /** What signs accounts: the operator's identity key, or (an adopted operator) one of its signing keys. */
  operator: NativeKeyPair;
  operatorJwt: string;
  /** The system account: only its public key is used (an adopted operator's seed stays with its owner). */
  system: Pick<NativeKeyPair, "getPublicKey">;
  systemJwt: string;
  systemUserCreds: string;
  platform: NativeKeyPair;
  platformSigning: NativeKeyPair;
  platformJwt: string;
}

async function readSeed(file: string, what: string): Promise<NativeKeyPair> {
  const text = await readTextFile(file, what);
  try {
    return NativeKeyPair.fromSeed(text);
  } catch (err) {
    throw new CodedError("invalid_seed", `${what} ${file} does not hold a valid nkey seed`, { cause: err });
  }
}

/** The PLATFORM account's claims: JetStream for audit and registry; imports are added by the platform layer. */
export function platformAccountClaims(signingKey: string): Parameters<typeof encodeAccountJwt>[3] {
  return { limits: UNLIMITED_LIMITS, signing_keys: [signingKey], tags: ["tenant-gateway:platform"] };
}

/**
 * What the data path needs of the PLATFORM account: its public key (from its JWT) and its
 * signing key — platform sessions, the audit stream and the KV registry. A data-plane data dir
 * holds these and none of the operator's or accounts' identity seeds.
 */
export async function loadPlatformSigner(layout: DataLayout): Promise<AccountSigner> {
  const files = new NatsFiles(layout);
  if (!(await fileExists(files.platformSigningSeed))) {
    throw new CodedError("not_initialised", `no NATS operator or PLATFORM account in ${layout.dir} (missing ${files.operatorSeed} and ${files.platformSigningSeed}); run "tenant-gateway init --data-dir ${layout.dir}" first, or "tenant-gateway export dataplane ${layout.dir}" from the control plane`);
  }
  const signingKey = await readSeed(files.platformSigningSeed, "platform signing seed");
  const claims = decodeJwt<Account>((await readTextFile(files.platformAccountJwt, "platform account JWT")).trim(), `platform account JWT ${files.platformAccountJwt}`);
  if (!(claims.nats.signing_keys ?? []).some((k) => (typeof k === "string" ? k : k.key) === signingKey.getPublicKey())) {
    throw new CodedError("operator_mismatch", `platform signing seed ${files.platformSigningSeed} is not a signing key of the PLATFORM account in ${files.platformAccountJwt}`);
  }
  return { account: claims.sub, signingKey };
}

/** Does this data dir hold the operator seed (the control plane), or only the data-plane part? */
export async function hasOperatorSeed(layout: DataLayout): Promise<boolean> {
  return fileExists(new NatsFiles(layout).operatorSeed);
}

/** The keys that may sign accounts of an operator: its identity key, unless it requires signing keys, and its signing keys. */
function operatorSigners(claims: { sub: string; nats: Partial<Operator> }): string[] {
  const signing = (claims.nats.signing_keys ?? []).map((k) => (typeof k === "string" ? k : (k as { key: string }).key));
  // nsc's `--require-signing-keys`; not in @nats-io/jwt's Operator type.
  return (claims.nats as { strict_signing_key_usage?: boolean }).strict_signing_key_usage ? signing : [claims.sub, ...signing];
}

export async function loadOperator(layout: DataLayout): Promise<OperatorMaterial> {
  const files = new NatsFiles(layout);
  if (!(await fileExists(files.operatorSeed))) {
    throw new CodedError("not_initialised", `no NATS operator in ${layout.dir} (missing ${files.operatorSeed}); run "tenant-gateway init --data-dir ${layout.dir}" first`);
  }
  const operator = await readSeed(files.operatorSeed, "operator seed");
  const operatorJwt = (await readTextFile(files.operatorJwt, "operator JWT")).trim();
  const claims = decodeJwt<Operator>(operatorJwt, `operator JWT ${files.operatorJwt}`);
  if (!operatorSigners(claims).includes(operator.getPublicKey())) {
    throw new CodedError("operator_mismatch", `operator JWT ${files.operatorJwt} is not for the operator seed ${files.operatorSeed} (neither its identity nor one of its signing keys)`);
  }
  const systemAccount = claims.nats.system_account;
  return {
    operator,
    operatorJwt,
    system: (await fileExists(files.systemAccountSeed)) || !systemAccount ? await readSeed(files.systemAccountSeed, "system account seed") : { getPublicKey: () => systemAccount },
    systemJwt: (await readTextFile(files.systemAccountJwt, "system account JWT")).trim(),
    systemUserCreds: await readTextFile(files.systemUserCreds, "system user creds"),
    platform: await readSeed(files.platformAccountSeed, "platform account seed"),
    platformSigning: await readSeed(files.platformSigningSeed, "platform signing seed"),
    platformJwt: (await readTextFile(files.platformAccountJwt, "platform account JWT")).trim(),
  };
}

/** Creates the operator, system and platform accounts unless they exist. */
export async function ensureOperator(layout: DataLayout): Promise<{ status: "created" | "exists"; material: OperatorMaterial }> {
  const files = new NatsFiles(layout);
  if (await fileExists(files.operatorJwt)) return { status: "exists", material: await loadOperator(layout) };

  const operator = NativeKeyPair.create("operator");
  const system = NativeKeyPair.create("account");
  const platform = NativeKeyPair.create("account");
  const platformSigning = NativeKeyPair.create("account");
  const systemUser = NativeKeyPair.create("user");

  const operatorJwt = await encodeOperatorJwt(OPERATOR_NAME, operator, system.getPublicKey());
  const systemJwt = await encodeAccountJwt(SYSTEM_ACCOUNT_NAME, system, operator, { limits: SYSTEM_ACCOUNT_LIMITS, tags: ["tenant-gateway:system"] });
  const platformJwt = await encodeAccountJwt(PLATFORM_ACCOUNT_NAME, platform, operator, platformAccountClaims(platformSigning.getPublicKey()));
  const systemUserJwt = await encodeUserJwt("tenant-gateway-system", systemUser, { signer: system, account: system.getPublicKey() });
  const creds = credsFile(systemUserJwt, systemUser);

  await writeSecretFile(files.operatorSeed, operator.seedString() + "\n");
  await writeSecretFile(files.systemAccountSeed, system.seedString() + "\n");
  await writeSecretFile(files.systemUserCreds, creds);
  await writeSecretFile(files.platformAccountSeed, platform.seedString() + "\n");
  await writeSecretFile(files.platformSigningSeed, platformSigning.seedString() + "\n");
  await writeFileAtomic(files.systemAccountJwt, systemJwt + "\n");
  await writeFileAtomic(files.platformAccountJwt, platformJwt + "\n");
  // Written last: its presence marks the operator material as complete.
  await writeFileAtomic(files.operatorJwt, operatorJwt + "\n");
  return { status: "created", material: { operator, operatorJwt, system, systemJwt, systemUserCreds: creds, platform, platformSigning, platformJwt } };
}

export interface ServerConfigOptions {
  host: string;
  port: number;
  /** Server-wide payload ceiling; per-tenant payload limits come from the plans. */
  maxPayload: number;
  serverName: string;
  /** Optional TLS for direct clients (the benchmark's direct path). */
  tls?: { cert: string; key: string; ca: string };
  httpPort?: number;
  /** The leafnode listener the gateway's leaf sessions connect to (on `host`); default 3200 above the client port. */
  leafPort?: number;
}

/**
 * The operator-mode core of a server's configuration, shared by `init`'s config and a cluster
 * member's: the operator, the system account, the full resolver (the system account preloaded)
 * and JetStream (`jetstreamExtra`: more lines inside its block).
 */
export function operatorModeLines(layout: DataLayout, material: OperatorMaterial, dirs: { resolver: string; jetstream: string }, jetstreamExtra: string[] = []): string[] {
  const q = (s: string): string => JSON.stringify(s);
  return [
    `operator: ${q(new NatsFiles(layout).operatorJwt)}`,
    `system_account: ${material.system.getPublicKey()}`,
    "resolver: {",
    "  type: full",
    `  dir: ${q(dirs.resolver)}`,
    "  allow_delete: true",
    '  interval: "2m"',
    '  timeout: "5s"',
    "}",
    "resolver_preload: {",
    `  ${material.system.getPublicKey()}: ${q(material.systemJwt)}`,
    "}",
    "jetstream: {",
    `  store_dir: ${q(dirs.jetstream)}`,
    ...jetstreamExtra,
    "}",
  ];
}

/** nats-server configuration for operator mode with the full resolver; listens on loopback only by default. */
export function renderServerConfig(layout: DataLayout, material: OperatorMaterial, opts: ServerConfigOptions): string {
  const files = new NatsFiles(layout);
  const q = (s: string): string => JSON.stringify(s);
  const lines = [
    "# Generated by `tenant-gateway init`. Accounts are pushed at run time with $SYS.REQ.CLAIMS.UPDATE;",
    "# never edit account JWTs here. Re-generate with `tenant-gateway init --force-config`.",
    `server_name: ${q(opts.serverName)}`,
    `listen: ${q(`${opts.host}:${opts.port}`)}`,
    `max_payload: ${opts.maxPayload}`,
    ...operatorModeLines(layout, material, { resolver: files.resolverDir, jetstream: files.jetstreamDir }),
    'lame_duck_duration: "30s"',
    'lame_duck_grace_period: "5s"',
  ];
  // Customer sites' leaf nodes reach it only through the gateway, which authenticates as the
  // tenant's user (JWT and signed nonce, as for its client connections). 3200 above the client port
  // (17422 beside 14222, as nats-server's 7422 beside 4222); a random one beside a random client port.
  lines.push("leafnodes: {", `  listen: ${q(`${opts.host}:${opts.leafPort ?? (opts.port === -1 || opts.port > 62335 ? -1 : opts.port + 3200)}`)}`, "}");
  // Monitoring (/varz, /connz, /jsz, /healthz) on the client listener's host, 4000 above its port
  // (18222 beside 14222, as nats-server's 8222 beside 4222); a random one beside a random client port.
  lines.push(`http_port: ${opts.httpPort ?? (opts.port === -1 || opts.port > 61535 ? -1 : opts.port + 4000)}`);
  if (opts.tls) {
    lines.push("tls: {", `  cert_file: ${q(opts.tls.cert)}`, `  key_file: ${q(opts.tls.key)}`, `  ca_file: ${q(opts.tls.ca)}`, "  timeout: 5", "}");
  }
  return lines.join("\n") + "\n";
}

const NATS_URL = /^(nats|tls):\/\/[^\s/,]+:\d{1,5}$/;

function checkNatsUrls(urls: string[], where: string): string[] {
  const bad = urls.find((u) => !NATS_URL.test(u));
  if (urls.length === 0 || bad !== undefined) {
    throw new CodedError("invalid_nats_url", `${where} must hold URLs like nats://127.0.0.1:${DEFAULT_NATS_PORT}${bad === undefined ? "; it holds none" : `, not ${JSON.stringify(bad)}`}`);
  }
  return urls;
}

/** The NATS URL(s) recorded in the data dir, or undefined when none is. */
export async function readNatsUrl(layout: DataLayout): Promise<string[] | undefined> {
  const file = new NatsFiles(layout).url;
  if (!(await fileExists(file))) return undefined;
  const text = await readTextFile(file, "NATS URL file");
  const urls = text.split("\n").flatMap((line) => line.replace(/#.*/, "").split(/[\s,]+/)).filter(Boolean);
  return checkNatsUrls(urls, `NATS URL file ${file}`);
}

/** Records where this data dir's NATS is; every command defaults `--nats` to it. */
export async function writeNatsUrl(layout: DataLayout, urls: string[], by: string): Promise<string> {
  const file = new NatsFiles(layout).url;
  checkNatsUrls(urls, "the NATS URL to record");
  await writeFileAtomic(file, `# The NATS of this data dir (written by ${by}): the default --nats of every tenant-gateway command.\n# --nats and TENANT_GATEWAY_NATS win. One URL per line.\n${urls.join("\n")}\n`);
  return file;
}

export async function writeServerConfig(layout: DataLayout, material: OperatorMaterial, opts: ServerConfigOptions, force = false): Promise<{ status: "created" | "exists"; file: string }> {
  const files = new NatsFiles(layout);
  if (!force && (await fileExists(files.serverConfig))) return { status: "exists", file: files.serverConfig };
  await writeFileAtomic(files.serverConfig, renderServerConfig(layout, material, opts));
  return { status: "created", file: files.serverConfig };
}

export interface AdoptOperatorInput {
  operatorJwt: string;
  /** Seed of one of the operator's signing keys (`SO…`). */
  signingSeed: string;
  /** A user of the operator's system account (nsc: `nsc generate creds -a SYS -n sys`). */
  systemCreds: string;
  /** The operator's NATS servers (full resolver). */
  servers: string[];
}

export interface AdoptedOperator {
  status: "adopted" | "exists";
  operator: string;
  operator_name: string;
  signing_key: string;
  system_account: string;
  platform_account: string;
  platform_push: PushResult;
}

function adoptionRefused(message: string): CodedError {
  return new CodedError("operator_adoption_refused", message);
}

/**
 * Takes over tenant management under an existing operator: checks that the signing key and the
 * system user belong to the operator and that its NATS accepts accounts signed with that key (the
 * PLATFORM account is pushed), then writes the operator's material into `<data-dir>/nats/`.
 * Idempotent for the same operator; a data dir of another operator is refused.
 */
export async function adoptOperator(layout: DataLayout, input: AdoptOperatorInput): Promise<AdoptedOperator> {
  const files = new NatsFiles(layout);
  const claims = decodeJwt<Operator>(input.operatorJwt.trim(), "operator JWT");
  if ((claims.nats as { type?: string }).type !== "operator" || !claims.sub.startsWith("O")) throw adoptionRefused(`the operator JWT is a ${(claims.nats as { type?: string }).type ?? "typeless"} JWT, not an operator's`);
  const systemAccount = claims.nats.system_account;
  if (!systemAccount) throw adoptionRefused(`operator ${claims.name} (${claims.sub}) names no system account; set one (nsc edit operator --system-account SYS) and give its user's creds`);
  let signing: NativeKeyPair;
  try {
    signing = NativeKeyPair.fromSeed(input.signingSeed);
  } catch {
    throw adoptionRefused("the signing key is not an nkey seed (an operator signing key's seed starts with SO)");
  }
  if (!signing.getPublicKey().startsWith("O")) throw adoptionRefused(`the signing key ${signing.getPublicKey()} is not an operator key`);
  if (!operatorSigners(claims).includes(signing.getPublicKey())) {
    throw adoptionRefused(`${signing.getPublicKey()} is not a signing key of operator ${claims.name} (${claims.sub}); add one with "nsc edit operator --sk generate" and give its seed`);
  }
  const creds = await parseCreds(new TextEncoder().encode(input.systemCreds)).catch(() => undefined);
  if (!creds) throw adoptionRefused("the system creds file is not a NATS .creds file (a user JWT and its seed)");
  const user = decodeJwt<User>(creds.jwt, "system user JWT");
  const userAccount = user.nats.issuer_account ?? user.iss;
  if (userAccount !== systemAccount) throw adoptionRefused(`the creds are of a user of account ${userAccount}, not of the operator's system account ${systemAccount}`);

  if (await fileExists(files.operatorJwt)) {
    const current = decodeJwt((await readTextFile(files.operatorJwt, "operator JWT")).trim(), `operator JWT ${files.operatorJwt}`);
    if (current.sub !== claims.sub) throw new CodedError("operator_exists", `${layout.dir} already holds operator ${current.sub}; adopt into a fresh data dir`);
  }

  let system;
  try {
    system = await connectAsSystem(input.servers, input.systemCreds);
  } catch (err) {
    throw adoptionRefused(`the system user cannot connect to NATS at ${input.servers.join(",")}: ${errorMessage(err)}`);
  }
  try {
    const systemJwt = await lookupAccountJwt(system, systemAccount);
    if (!systemJwt) throw adoptionRefused(`NATS at ${input.servers.join(",")} does not answer for the system account ${systemAccount}: is it running in operator mode with a full resolver?`);
    const existing = (await fileExists(files.platformSigningSeed)) && (await fileExists(files.platformAccountSeed));
    const platform = existing ? await readSeed(files.platformAccountSeed, "platform account seed") : NativeKeyPair.create("account");
    const platformSigning = existing ? await readSeed(files.platformSigningSeed, "platform signing seed") : NativeKeyPair.create("account");
    const platformJwt = await encodeAccountJwt(PLATFORM_ACCOUNT_NAME, platform, signing, platformAccountClaims(platformSigning.getPublicKey()));
    let pushed: PushResult;
    try {
      pushed = (await pushAccountJwtIfChanged(system, platformJwt, signing.getPublicKey())).result;
    } catch (err) {
      throw adoptionRefused(`NATS refused an account signed with ${signing.getPublicKey()}: ${errorMessage(err)}`);
    }
    await writeSecretFile(files.platformAccountSeed, platform.seedString() + "\n");
    await writeSecretFile(files.platformSigningSeed, platformSigning.seedString() + "\n");
    await writeFileAtomic(files.platformAccountJwt, platformJwt + "\n");
    await writeSecretFile(files.operatorSeed, signing.seedString() + "\n");
    await writeSecretFile(files.systemUserCreds, input.systemCreds.endsWith("\n") ? input.systemCreds : input.systemCreds + "\n");
    await writeFileAtomic(files.systemAccountJwt, systemJwt + "\n");
    await writeNatsUrl(layout, input.servers, "tenant-gateway operator adopt");
    // Written last: its presence marks the operator material as complete.
    await writeFileAtomic(files.operatorJwt, input.operatorJwt.trim() + "\n");
    return {
      status: existing ? "exists" : "adopted",
      operator: claims.sub,
      operator_name: claims.name,
      signing_key: signing.getPublicKey(),
      system_account: systemAccount,
      platform_account: platform.getPublicKey(),
      platform_push: pushed,
    };
  } finally {
    await system.close();
  }
}

/**
 * AES-256-GCM for secrets at rest in shared stores (the KV registry): whoever can read the bucket
 * must not be able to read CA keys or account seeds. The master key comes from the environment
 * (`TENANT_GATEWAY_MASTER_KEY`, 32 bytes as 64 hex chars or base64) or from a 0600 key file.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import { CodedError } from "../common/coded-error.ts";
import { writeSecretFile } from "../common/files.ts";

export const MASTER_KEY_ENV = "TENANT_GATEWAY_MASTER_KEY";

export interface SealedBox {
  alg: "AES-256-GCM";
  /** First 8 bytes of SHA-256 of the key, hex: tells "wrong key" apart from "tampered data". */
  key_id: string;
  iv: string;
  tag: string;
  data: string;
}

export class MasterKey {
  readonly id: string;
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new CodedError("invalid_master_key", `the master key must be 32 bytes, got ${key.length}`);
    this.key = key;
    this.id = createHash("sha256").update(key).digest("hex").slice(0, 16);
  }

  static parse(text: string, source: string): MasterKey {
    const t = text.trim();
    if (/^[0-9a-fA-F]{64}$/.test(t)) return new MasterKey(Buffer.from(t, "hex"));
    const b = Buffer.from(t, "base64");
    if (b.length === 32 && /^[A-Za-z0-9+/_-]+=*$/.test(t)) return new MasterKey(b);
    throw new CodedError("invalid_master_key", `${source} is not a 32-byte key (64 hex characters or base64)`);
  }

  static generate(): MasterKey {
    return new MasterKey(randomBytes(32));
  }

  toHex(): string {
    return this.key.toString("hex");
  }

  /**
   * `context` (e.g. the KV key the box is stored under) is authenticated with the data, so a box
   * moved to another place fails to open there.
   */
  seal(plaintext: string, context = ""): SealedBox {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(Buffer.from(context, "utf8"));
    const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return { alg: "AES-256-GCM", key_id: this.id, iv: iv.toString("base64"), tag: cipher.getAuthTag().toString("base64"), data: data.toString("base64") };
  }

  open(box: SealedBox, what: string, context = ""): string {
    if (box.key_id !== this.id) {
      throw new CodedError("wrong_master_key", `${what} is encrypted with master key ${box.key_id}, but the configured master key is ${this.id}: set ${MASTER_KEY_ENV} (or the key file) to the key the registry was written with`);
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, Buffer.from(box.iv, "base64"));
      decipher.setAAD(Buffer.from(context, "utf8"));
      decipher.setAuthTag(Buffer.from(box.tag, "base64"));
      return Buffer.concat([decipher.update(Buffer.from(box.data, "base64")), decipher.final()]).toString("utf8");
    } catch (err) {
      throw new CodedError("secret_tampered", `${what} fails authentication under master key ${this.id}: the stored data was altered or moved from elsewhere`, { cause: err });
    }
  }
}

/** From env, else from the key file (which must not be readable by group or others). */
export async function loadMasterKey(opts: { file?: string; env?: NodeJS.ProcessEnv }): Promise<MasterKey> {
  const env = opts.env ?? process.env;
  const fromEnv = env[MASTER_KEY_ENV];
  if (fromEnv) return MasterKey.parse(fromEnv, MASTER_KEY_ENV);
  if (!opts.file) throw new CodedError("master_key_missing", `the KV store needs a master key: set ${MASTER_KEY_ENV} or pass --master-key-file`);
  let stat;
  try {
    stat = await fs.stat(opts.file);
  } catch {
    throw new CodedError("master_key_missing", `master key file ${opts.file} does not exist; create one with "tenant-gateway init --store kv" or set ${MASTER_KEY_ENV}`);
  }
  if ((stat.mode & 0o077) !== 0) throw new CodedError("master_key_insecure", `master key file ${opts.file} is readable by group or others (mode ${(stat.mode & 0o777).toString(8)}); chmod 600 it`);
  return MasterKey.parse(await fs.readFile(opts.file, "utf8"), `master key file ${opts.file}`);
}

export async function writeMasterKeyFile(file: string, key: MasterKey): Promise<void> {
  await writeSecretFile(file, key.toHex() + "\n");
}

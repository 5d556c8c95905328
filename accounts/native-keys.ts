/**
 * nkey key pairs that sign with node:crypto's native ed25519 instead of nkeys.js's pure-JS
 * tweetnacl: the same signatures, ~300× faster (architecture brief, section 10). Every signature
 * on the connection path — the upstream nonce, each minted user JWT — goes through these.
 * nkeys.js stays for creating, encoding and decoding keys.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { createAccount, createOperator, fromSeed, Prefix, type KeyPair } from "nkeys.js";
import { Codec } from "nkeys.js/lib/codec.js";
import { CodedError } from "../common/coded-error.ts";

// DER prefixes that wrap a raw 32-byte ed25519 seed / public key as PKCS#8 / SPKI.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type KeyRole = "operator" | "account" | "user";

const PREFIX_BY_ROLE: Record<KeyRole, Prefix> = { operator: Prefix.Operator, account: Prefix.Account, user: Prefix.User };

/** An nkey pair backed by a native ed25519 KeyObject; implements what @nats-io/jwt calls. */
export class NativeKeyPair implements KeyPair {
  private readonly privateKey: KeyObject;
  private readonly seed: Uint8Array;
  private readonly publicKey: string;

  private constructor(seed: Uint8Array, rawSeed: Buffer, role: Prefix) {
    this.seed = seed;
    this.privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, rawSeed]), format: "der", type: "pkcs8" });
    const spki = createPublicKey(this.privateKey).export({ format: "der", type: "spki" });
    const rawPublic = spki.subarray(SPKI_ED25519_PREFIX.length);
    this.publicKey = decoder.decode(Codec.encode(role, rawPublic));
  }

  /** From an encoded seed (`SA…`, `SO…`, `SU…`). */
  static fromSeed(seed: string | Uint8Array): NativeKeyPair {
    const bytes = typeof seed === "string" ? encoder.encode(seed.trim()) : seed;
    let decoded;
    try {
      decoded = Codec.decodeSeed(bytes);
    } catch (err) {
      throw new CodedError("invalid_seed", "not a valid nkey seed", { cause: err });
    }
    return new NativeKeyPair(bytes, Buffer.from(decoded.buf), decoded.prefix);
  }

  /** A fresh key pair; user keys are made natively, the long-lived ones with nkeys.js. */
  static create(role: KeyRole): NativeKeyPair {
    if (role === "user") {
      const raw = randomBytes(32);
      return new NativeKeyPair(Codec.encodeSeed(PREFIX_BY_ROLE.user, raw), raw, PREFIX_BY_ROLE.user);
    }
    const kp = role === "operator" ? createOperator() : createAccount();
    return NativeKeyPair.fromSeed(kp.getSeed());
  }

  getPublicKey(): string {
    return this.publicKey;
  }

  /** @nats-io/jwt calls this only to check the pair holds a private key. */
  getPrivateKey(): Uint8Array {
    return fromSeed(this.seed).getPrivateKey();
  }

  getSeed(): Uint8Array {
    return this.seed;
  }

  seedString(): string {
    return decoder.decode(this.seed);
  }

  sign(input: Uint8Array): Uint8Array {
    return sign(null, input, this.privateKey);
  }

  verify(input: Uint8Array, sig: Uint8Array): boolean {
    return verify(null, input, createPublicKey(this.privateKey), sig);
  }

  clear(): void {
    // The KeyObject cannot be wiped from JS; dropping the reference is all we can do.
  }

  seal(): Uint8Array {
    throw new Error("seal is not supported for signing keys");
  }

  open(): Uint8Array | null {
    throw new Error("open is not supported for signing keys");
  }
}

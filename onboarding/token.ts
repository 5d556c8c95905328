/**
 * The one-time download token of an onboarding package: 32 random bytes, base64url (43
 * characters, safe in a URL query). The registry keeps only its SHA-256; the bundle is kept sealed
 * (AES-256-GCM) under a key derived from the token (HKDF-SHA256, salted with the package id), so
 * neither the registry nor whoever serves downloads can open a bundle without the token — the
 * serving gateway needs no key to hand it out.
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";

const TOKEN_BYTES = 32;
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const HKDF_INFO = "tenant-gateway onboarding bundle v1";

export interface SealedBundle {
  alg: "AES-256-GCM";
  iv: string;
  tag: string;
  data: string;
}

export function newToken(): string {
  return randomBytes(TOKEN_BYTES).toString("base64url");
}

export function tokenHash(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Does `token` hash to `expected` (constant time)? */
export function tokenMatches(token: string, expected: string): boolean {
  const a = Buffer.from(tokenHash(token), "hex");
  const b = Buffer.from(expected, "hex");
  return a.length === b.length && timingSafeEqual(a, b);
}

function bundleKey(token: string, packageId: string): Buffer {
  return Buffer.from(hkdfSync("sha256", Buffer.from(token, "utf8"), Buffer.from(packageId, "utf8"), HKDF_INFO, 32));
}

export function sealBundle(bundle: Buffer, token: string, packageId: string): SealedBundle {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", bundleKey(token, packageId), iv);
  cipher.setAAD(Buffer.from(packageId, "utf8"));
  const data = Buffer.concat([cipher.update(bundle), cipher.final()]);
  return { alg: "AES-256-GCM", iv: iv.toString("base64"), tag: cipher.getAuthTag().toString("base64"), data: data.toString("base64") };
}

/** Throws when the token is not the one it was sealed with, or the data was altered. */
export function openBundle(sealed: SealedBundle, token: string, packageId: string): Buffer {
  const decipher = createDecipheriv("aes-256-gcm", bundleKey(token, packageId), Buffer.from(sealed.iv, "base64"));
  decipher.setAAD(Buffer.from(packageId, "utf8"));
  decipher.setAuthTag(Buffer.from(sealed.tag, "base64"));
  return Buffer.concat([decipher.update(Buffer.from(sealed.data, "base64")), decipher.final()]);
}

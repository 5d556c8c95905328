/**
 * The NATS user a certificate becomes: its nkey is derived from the certificate's SHA-256
 * fingerprint under the account's signing seed (HMAC-SHA256), so every gateway replica mints the
 * same user for the same certificate, and the control plane, which holds the signing seed too, can
 * name that user in the account JWT's `revocations` when the certificate is revoked — NATS then
 * cuts its sessions on every server at once and refuses its JWTs, whichever replica minted them.
 * Without the signing seed the key cannot be computed from a certificate.
 */
import { createHmac } from "node:crypto";
import { Prefix } from "nkeys.js";
import { Codec } from "nkeys.js/lib/codec.js";
import { NativeKeyPair } from "./native-keys.ts";

const DERIVATION_LABEL = "tenant-gateway/certificate-user/v1/";

export function certificateUserKey(signingKey: NativeKeyPair, fingerprint: string): NativeKeyPair {
  const raw = createHmac("sha256", signingKey.getSeed()).update(DERIVATION_LABEL + fingerprint.toLowerCase()).digest();
  return NativeKeyPair.fromSeed(Codec.encodeSeed(Prefix.User, raw));
}

/** 9999-12-31T23:59:59Z: a revocation time no user JWT is issued after. */
export const REVOKE_FOREVER = 253_402_300_799;

/** An account's `revocations` claim revoking these users for good, in a stable order. */
export function revokedForGood(users: readonly string[]): Record<string, number> {
  return Object.fromEntries([...new Set(users)].sort().map((key) => [key, REVOKE_FOREVER]));
}

/**
 * The gateway's TLS server side: its own certificate (platform CA chain), client certificates
 * requested always, naming no acceptable CA. OpenSSL proves the client holds the key; whether the certificate is
 * acceptable is decided by identify(), with codes and reasons, not by a bare TLS alert.
 */
import { X509Certificate } from "node:crypto";
import tls from "node:tls";
import { readTextFile } from "../common/files.ts";
import { Remembered } from "../common/remembered.ts";
import type { DataLayout } from "../pki/layout.ts";

export interface GatewayTlsMaterial {
  context: tls.SecureContext;
  root: X509Certificate;
  platformCa: X509Certificate;
}

export async function loadGatewayTls(layout: DataLayout): Promise<GatewayTlsMaterial> {
  const chain = await readTextFile(layout.gatewayChain, "gateway certificate chain");
  const key = await readTextFile(layout.gatewayKey, "gateway private key");
  const rootPem = await readTextFile(layout.rootCert, "root CA certificate");
  const platformPem = await readTextFile(layout.platformCaCert, "platform CA certificate");
  // No `ca`: Node would list every CA given there in the CertificateRequest, and Go's TLS client
  // offers its certificate only when its configured chain reaches a listed CA — an edge site that
  // holds its leaf alone (issuer: its tenant CA) would send none. An empty list makes every client
  // library send its certificate; identify() verifies the chain itself, to the root.
  const context = tls.createSecureContext({ cert: chain, key, minVersion: "TLSv1.2" });
  return { context, root: new X509Certificate(rootPem), platformCa: new X509Certificate(platformPem) };
}

/**
 * Certificates parsed on earlier handshakes, by SHA-256 fingerprint: components reconnect with the
 * same chain, and parsing one costs about as much as the rest of identifying the client.
 */
const PARSED = new Remembered<X509Certificate>(4096);

function parsed(peer: tls.PeerCertificate): X509Certificate {
  let cert = PARSED.get(peer.fingerprint256);
  if (!cert) {
    cert = new X509Certificate(peer.raw);
    PARSED.set(peer.fingerprint256, cert);
  }
  return cert;
}

/** The certificates the client sent: its leaf, and whatever chain came with it. */
export function peerCertificates(socket: tls.TLSSocket): { leaf: X509Certificate | undefined; chain: X509Certificate[] } {
  // getPeerCertificate(true) first: on Node 20, after getPeerX509Certificate() the detailed
  // object comes back without its issuer chain.
  let detailed = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  if (!detailed || !detailed.raw) return { leaf: undefined, chain: [] };
  const leaf = parsed(detailed);
  const chain: X509Certificate[] = [];
  const seen = new Set<string>([detailed.fingerprint256]);
  while (detailed && detailed.raw) {
    const next: tls.DetailedPeerCertificate | undefined = detailed.issuerCertificate;
    if (!next || !next.raw || next === detailed) break;
    if (seen.has(next.fingerprint256)) break;
    seen.add(next.fingerprint256);
    chain.push(parsed(next));
    detailed = next;
  }
  return { leaf, chain };
}

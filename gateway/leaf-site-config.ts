/**
 * The nats-server configuration of a customer site that connects through the gateway as a leaf
 * node: what an onboarding bundle of type `leaf` carries next to its certificates, and what the
 * tests run stock nats-server with. The site's own clients (collectors) connect to it as usual,
 * without a tenant prefix and without certificates, and keep publishing locally while the link is
 * down; the leafnode remote connects to the gateway with the site's tenant certificate.
 *
 * With JetStream of its own the site needs a domain other than the hub's: its clients then reach
 * the tenant's streams in the hub with `jetstream(nc, { domain: "<hub domain>" })` (nats.go
 * `jetstream.WithDomain`, nats CLI `--js-domain`), the usual set-up of a leaf with JetStream.
 */
import { CodedError } from "../common/coded-error.ts";

export interface LeafSiteConfigOptions {
  /** The tenant the site belongs to (for the comments). */
  tenant: string;
  /** The gateway's leafnode listener as the site reaches it, `tls://host:port`. */
  gatewayLeafUrl: string;
  /** The site server's name (nats-server `server_name`); no blanks. */
  serverName: string;
  /** Where the site's clients connect; default 127.0.0.1:4222 (nothing but the site's own host). */
  listen?: string;
  /** TLS files as the site's nats-server reads them; default the bundle's `certs/…` paths. */
  certFile?: string;
  keyFile?: string;
  /** Verifies the gateway's certificate: the root (the tenant CA chain holds it). */
  caFile?: string;
  /** JetStream on the site itself, in a domain of its own. */
  jetstream?: { storeDir: string; domain: string };
  /** The hub's JetStream domain (the gateway's `leaf_jetstream_domain`), which the site's may not equal. */
  hubJetStreamDomain?: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function leafSiteConfig(opts: LeafSiteConfigOptions): string {
  if (!/^tls:\/\/[^\s/]+:\d{1,5}$/.test(opts.gatewayLeafUrl)) throw new CodedError("invalid_argument", `the gateway's leafnode URL must be tls://host:port, got ${JSON.stringify(opts.gatewayLeafUrl)}`);
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(opts.serverName)) throw new CodedError("invalid_argument", `server name ${JSON.stringify(opts.serverName)} must be letters, digits, '.', '_' or '-'`);
  const hubDomain = opts.hubJetStreamDomain ?? "hub";
  if (opts.jetstream) {
    if (!NAME.test(opts.jetstream.domain)) throw new CodedError("invalid_argument", `JetStream domain ${JSON.stringify(opts.jetstream.domain)} must be letters, digits, '_' or '-'`);
    if (opts.jetstream.domain === hubDomain) throw new CodedError("leaf_domain_conflict", `the site's JetStream domain may not be the hub's ("${hubDomain}"): the site could not tell its own streams from the tenant's`);
  }
  const config = {
    server_name: opts.serverName,
    listen: opts.listen ?? "127.0.0.1:4222",
    ...(opts.jetstream ? { jetstream: { store_dir: opts.jetstream.storeDir, domain: opts.jetstream.domain } } : {}),
    leafnodes: {
      remotes: [
        {
          url: opts.gatewayLeafUrl,
          tls: { cert_file: opts.certFile ?? "certs/component.pem", key_file: opts.keyFile ?? "certs/component-key.pem", ca_file: opts.caFile ?? "certs/ca-chain.pem" },
        },
      ],
    },
  };
  // JSON is both nats-server configuration and YAML: the file works as `nats-server -c <file>` and
  // wherever a bundle's configuration is read as YAML.
  return [
    `# nats-server for a site of tenant ${opts.tenant}, connected to the platform as a leaf node through the tenant gateway:`,
    "#   nats-server -c <this file>   (certificate paths are relative to the working directory)",
    "# Local clients use it as any NATS (no tenant prefix, no certificate) and keep working while the link is down;",
    `# the platform sees their subjects as ${opts.tenant}.<subject>. They reach the tenant's streams with the JetStream`,
    `# domain "${hubDomain}" (nats.js jetstream(nc, { domain: "${hubDomain}" }), nats CLI --js-domain ${hubDomain}).`,
    ...(opts.jetstream ? [] : [`# JetStream of the site's own: add "jetstream": {"store_dir": "...", "domain": "<not ${hubDomain}>"}.`]),
    JSON.stringify(config, null, 2),
    "",
  ].join("\n");
}

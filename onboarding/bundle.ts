/**
 * The onboarding bundle of one edge component, as files (the seed system's layout):
 *
 *   certs/component.pem  certs/component-key.pem (0600)  certs/ca-chain.pem (tenant CA + root)
 *   config/config.yaml   (from the profile's template)    config/nats-context.json (nats CLI)
 *   install.sh (systemd, docker, manual)  README.md
 *   kubernetes/namespace.yaml secret.yaml (kubernetes.io/tls) configmap.yaml deployment.yaml kustomization.yaml
 *
 * Everything a site needs to connect through the gateway as written: the gateway's address, the
 * tenant, subjects and streams in the edge view, and TLS files by relative path (the bundle's
 * directory is the component's working directory).
 */
import YAML from "yaml";
import { CodedError } from "../common/coded-error.ts";
import type { StreamTemplate } from "../streams/templates.ts";
import type { TarEntry } from "./tar.ts";
import { readOnboardingTemplate, renderTemplate } from "./templates.ts";
import { leafSiteConfig } from "../gateway/leaf-site-config.ts";

/** `leaf`: a site's own stock nats-server, connected as a leaf node through the gateway's leaf listener. */
export const PACKAGE_TYPES = ["agent", "poller", "checker", "collector", "leaf"] as const;
export type PackageType = (typeof PACKAGE_TYPES)[number];
export const COLLECTOR_KINDS = ["otel", "syslog-flow"] as const;

/** What a kind of component gets: its config template, a subject to try the connection with, its image. */
export interface BundleProfile {
  /** `agent`, …, `collector-otel`, `collector-syslog-flow`: the config template's name. */
  name: string;
  type: PackageType;
  title: string;
  probeSubject: string;
  image: string;
  /** What install.sh's systemd unit runs (with `--config config/config.yaml`); default the ServiceRadar binary of the type. */
  command?: string;
}

const IMAGE_REGISTRY = "ghcr.io/carverauto";

const PROFILES: Record<string, BundleProfile> = {
  agent: { name: "agent", type: "agent", title: "agent", probeSubject: "events.agent.health", image: `${IMAGE_REGISTRY}/serviceradar-agent:latest` },
  poller: { name: "poller", type: "poller", title: "poller", probeSubject: "events.poller.health", image: `${IMAGE_REGISTRY}/serviceradar-poller:latest` },
  checker: { name: "checker", type: "checker", title: "checker", probeSubject: "events.checker.health", image: `${IMAGE_REGISTRY}/serviceradar-checker:latest` },
  "collector-otel": { name: "collector-otel", type: "collector", title: "OpenTelemetry collector", probeSubject: "logs.otel", image: `${IMAGE_REGISTRY}/serviceradar-otel:latest` },
  "collector-syslog-flow": { name: "collector-syslog-flow", type: "collector", title: "syslog and flow collector", probeSubject: "logs.syslog", image: `${IMAGE_REGISTRY}/serviceradar-flowgger:latest` },
  // A stock nats-server: `--config` is its own long option, and its configuration is config/config.yaml.
  leaf: { name: "leaf", type: "leaf", title: "leaf node", probeSubject: "events.leaf.health", image: "nats:2-alpine", command: "/usr/local/bin/nats-server" },
};

export function bundleProfile(type: string, collector?: string): BundleProfile {
  if (!(PACKAGE_TYPES as readonly string[]).includes(type)) throw new CodedError("invalid_argument", `--type must be one of ${PACKAGE_TYPES.join(", ")}, got "${type}"`);
  if (type !== "collector") {
    if (collector !== undefined) throw new CodedError("invalid_argument", `--collector applies to --type collector only`);
    return PROFILES[type]!;
  }
  const kind = collector ?? "otel";
  if (!(COLLECTOR_KINDS as readonly string[]).includes(kind)) throw new CodedError("invalid_argument", `--collector must be one of ${COLLECTOR_KINDS.join(", ")}, got "${kind}"`);
  return PROFILES[`collector-${kind}`]!;
}

export interface BundleInput {
  packageId: string;
  createdAt: string;
  tenant: string;
  component: string;
  partition: string;
  cn: string;
  profile: BundleProfile;
  gatewayUrl: string;
  /** A `leaf` bundle's remote: the gateway's leaf listener, `tls://host:port`. */
  leafUrl?: string;
  certPem: string;
  keyPem: string;
  /** The tenant CA and the root, PEM. */
  caChainPem: string;
  certSerial: string;
  certNotAfter: string;
  /** The tenant's stream templates (edge view). */
  streams: readonly StreamTemplate[];
  image?: string;
  /** Operator overrides of the templates (`<data-dir>/onboarding/templates`). */
  templatesDir?: string;
}

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64");

/** The gateway's leaf listener on the host sites reach it by: the client URL's host, port 7422 (the convention). */
export function leafUrlOf(gatewayUrl: string): string {
  return gatewayUrl.replace(/:\d{1,5}$/, ":7422");
}

function streamsBlock(streams: readonly StreamTemplate[]): string {
  const list = streams.filter((s) => s.kind === "stream").map((s) => ({ name: s.name, subjects: s.subjects }));
  return `# The tenant's JetStream streams and the subjects they capture (edge view).\n${YAML.stringify({ streams: list }).trimEnd()}`;
}

export async function bundleFiles(input: BundleInput): Promise<TarEntry[]> {
  const name = `${input.profile.type}-${input.component}-${input.partition}`;
  const values: Record<string, string> = {
    package_id: input.packageId,
    created_at: input.createdAt,
    tenant: input.tenant,
    component: input.component,
    partition: input.partition,
    component_type: input.profile.type,
    profile: input.profile.title,
    cn: input.cn,
    gateway_url: input.gatewayUrl,
    cert_serial: input.certSerial,
    cert_not_after: input.certNotAfter,
    probe_subject: input.profile.probeSubject,
    image: input.image ?? input.profile.image,
    name,
    namespace: `serviceradar-${input.tenant}`,
    install_dir: `/etc/serviceradar/${name}`,
    command: input.profile.command ?? `/usr/local/bin/serviceradar-${input.profile.type}`,
    streams: streamsBlock(input.streams),
  };
  const render = async (template: string, extra: Record<string, string> = {}): Promise<string> => {
    const { file, text } = await readOnboardingTemplate(input.templatesDir, template);
    return renderTemplate(file, text, { ...values, ...extra });
  };
  // A leaf site's configuration is nats-server's own (written as JSON, which is YAML as well).
  const config =
    input.profile.type === "leaf"
      ? leafSiteConfig({ tenant: input.tenant, gatewayLeafUrl: input.leafUrl ?? leafUrlOf(input.gatewayUrl), serverName: name, listen: "0.0.0.0:4222" })
      : await render(`config/${input.profile.name}.yaml`);
  const kubernetes = { tls_crt_base64: b64(input.certPem), tls_key_base64: b64(input.keyPem), ca_crt_base64: b64(input.caChainPem), config_yaml_indented: config.trimEnd().split("\n").map((l) => (l ? `    ${l}` : l)).join("\n") };
  return [
    { path: "certs/component.pem", data: input.certPem, mode: 0o644 },
    { path: "certs/component-key.pem", data: input.keyPem, mode: 0o600 },
    { path: "certs/ca-chain.pem", data: input.caChainPem, mode: 0o644 },
    { path: "config/config.yaml", data: config, mode: 0o644 },
    { path: "config/nats-context.json", data: await render("nats-context.json"), mode: 0o644 },
    { path: "install.sh", data: await render("install.sh"), mode: 0o755 },
    { path: "README.md", data: await render("README.md"), mode: 0o644 },
    { path: "kubernetes/namespace.yaml", data: await render("kubernetes/namespace.yaml"), mode: 0o644 },
    { path: "kubernetes/secret.yaml", data: await render("kubernetes/secret.yaml", kubernetes), mode: 0o600 },
    { path: "kubernetes/configmap.yaml", data: await render("kubernetes/configmap.yaml", kubernetes), mode: 0o644 },
    { path: "kubernetes/deployment.yaml", data: await render("kubernetes/deployment.yaml"), mode: 0o644 },
    { path: "kubernetes/kustomization.yaml", data: await render("kubernetes/kustomization.yaml"), mode: 0o644 },
  ];
}

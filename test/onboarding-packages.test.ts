/**
 * Onboarding packages against a live gateway and nats-server: `package create` issues a component's
 * certificate and a bundle handed out once against a one-time token; the bundle (extracted with the
 * system's tar) verifies with `openssl verify -CAfile ca-chain.pem`, its config connects a stock
 * `nats` v2 client through the gateway as written, for every kind of component, and the nats CLI
 * connects with its context file; install.sh and the Kubernetes manifests are checked as files.
 * Download errors carry their HTTP status: 400, 401, 404, 409, 410.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import test from "ava";
import YAML from "yaml";
import { connect, type NatsConnection } from "nats";
import { PackageService } from "../onboarding/packages.ts";
import { PROJECT_ROOT } from "./helpers/cli.ts";
import { startReplicas, type ReplicatedDeployment } from "./helpers/replicas.ts";
import { tempDir } from "./helpers/tmp.ts";

const run = promisify(execFile);
const scratch = tempDir("ntg-onboarding-");
/** A fresh directory under this file's one temporary directory. */
const freshDir = (prefix = "d-"): string => mkdtempSync(path.join(scratch, prefix));
const deployment = startReplicas({ store: "dir", replicas: 1, tenants: ["acme-corp", "globex"] });
const kvDeployment = startReplicas({ store: "kv", replicas: 1, tenants: ["initech"] });
test.after.always(async () => {
  await (await deployment).stop();
  await (await kvDeployment).stop();
});

const natsCli = (async () => (await run(path.join(PROJECT_ROOT, "scripts", "nats-servers.sh"), ["natscli"])).stdout.trim())();

interface CreatedJson {
  token: string;
  package: { id: string; state: string; tenant: string; component: string; cn: string; expires_at: string; download_path: string; certificate: { serial_number: string } };
}

interface ErrorJson {
  error: { code: string; message: string; http_status?: number };
}

interface BundleConfig {
  component: { type: string; id: string; tenant: string };
  nats: { url: string; tls: { cert_file: string; key_file: string; ca_file: string } };
  subjects: { publish: Record<string, string>; subscribe?: Record<string, string>; service?: string };
  streams: Array<{ name: string; subjects: string[] }>;
}

function gatewayUrl(dep: ReplicatedDeployment): string {
  return dep.replicas[0]!.url;
}

async function createPackage(dep: ReplicatedDeployment, extra: string[]): Promise<CreatedJson> {
  const r = await dep.cli<CreatedJson>(["package", "create", "--gateway-url", gatewayUrl(dep), ...extra]);
  if (r.code !== 0) throw new Error(`package create failed: ${r.stderr}`);
  return r.json;
}

/** Downloads with the real CLI into a fresh directory and extracts it there with tar. */
async function downloadAndExtract(dep: ReplicatedDeployment, created: CreatedJson): Promise<string> {
  const dir = freshDir("bundle-");
  const file = path.join(dir, "bundle.tar.gz");
  const r = await dep.cli<{ file: string }>(["package", "download", created.package.id, "--token", created.token, "--out", file]);
  if (r.code !== 0) throw new Error(`package download failed: ${r.stderr}`);
  await run("tar", ["-xzf", file, "-C", dir]);
  return dir;
}

async function readConfig(dir: string): Promise<BundleConfig> {
  return YAML.parse(await fs.readFile(path.join(dir, "config", "config.yaml"), "utf8")) as BundleConfig;
}

/** A stock client configured exactly as the bundle's config says (paths relative to the bundle). */
function connectAsConfigured(dir: string, config: BundleConfig): Promise<NatsConnection> {
  const tls = config.nats.tls;
  return connect({ servers: config.nats.url, tls: { certFile: path.join(dir, tls.cert_file), keyFile: path.join(dir, tls.key_file), caFile: path.join(dir, tls.ca_file) }, reconnect: false });
}

test.serial("a package downloads once with its token, then 409 package_delivered; the bundle has the onboarding layout, its private files 0600", async (t) => {
  const dep = await deployment;
  const created = await createPackage(dep, ["--tenant", "acme-corp", "--component", "agent-001", "--partition", "site-a", "--type", "agent"]);
  t.is(created.package.state, "pending");
  t.regex(created.token, /^[A-Za-z0-9_-]{43}$/);
  t.is(created.package.download_path, `/api/v1/packages/${created.package.id}/download`);
  t.true(Date.parse(created.package.expires_at) - Date.now() > 23.9 * 3_600_000, "the token lives 24 h by default");

  const dir = await downloadAndExtract(dep, created);
  const listing = (await run("tar", ["-tzvf", path.join(dir, "bundle.tar.gz")])).stdout;
  const files = (await run("tar", ["-tzf", path.join(dir, "bundle.tar.gz")])).stdout.split("\n").filter((f) => f && !f.endsWith("/"));
  t.deepEqual(files.sort(), [
    "README.md",
    "certs/ca-chain.pem",
    "certs/component-key.pem",
    "certs/component.pem",
    "config/config.yaml",
    "config/nats-context.json",
    "install.sh",
    "kubernetes/configmap.yaml",
    "kubernetes/deployment.yaml",
    "kubernetes/kustomization.yaml",
    "kubernetes/namespace.yaml",
    "kubernetes/secret.yaml",
  ]);
  t.regex(listing, /-rw------- .* certs\/component-key\.pem/);
  t.regex(listing, /-rw------- .* kubernetes\/secret\.yaml/);
  t.regex(listing, /-rwxr-xr-x .* install\.sh/);
  t.is((await fs.stat(path.join(dir, "bundle.tar.gz"))).mode & 0o777, 0o600, "the downloaded bundle holds a private key");

  const again = await dep.cli<ErrorJson>(["package", "download", created.package.id, "--token", created.token, "--out", path.join(dir, "again.tar.gz")]);
  t.is(again.code, 1);
  t.like(again.json.error, { code: "package_delivered", http_status: 409 });
  const shown = await dep.cli<{ state: string; delivered_at: string }>(["package", "show", created.package.id]);
  t.is(shown.json.state, "delivered");
  t.truthy(shown.json.delivered_at);
});

for (const [type, collector] of [["agent"], ["poller"], ["checker"], ["collector", "otel"], ["collector", "syslog-flow"]] as const) {
  const kind = collector ? `${type} (${collector})` : type;
  test(`the ${kind} bundle's certificate verifies with openssl against ca-chain.pem, and its config connects a stock client through the gateway as written: what it publishes lands in the streams it lists`, async (t) => {
    const dep = await deployment;
    const component = `${collector ?? type}-01`.replace(/[^a-z0-9-]/g, "-");
    const created = await new PackageService(dep.cp, dep.tenants).create({ tenant: "globex", component, partition: "hq", type, ...(collector ? { collector } : {}), gatewayUrl: gatewayUrl(dep) });
    const got = await new PackageService(dep.cp, dep.tenants).download(created.package.id, created.token);
    const dir = freshDir("bundle-");
    await fs.writeFile(path.join(dir, got.filename), got.bundle);
    await run("tar", ["-xzf", got.filename], { cwd: dir });

    const verified = await run("openssl", ["verify", "-CAfile", "certs/ca-chain.pem", "certs/component.pem"], { cwd: dir });
    t.is(verified.stdout.trim(), "certs/component.pem: OK");

    const config = await readConfig(dir);
    t.like(config.component, { type, id: component, tenant: "globex" });
    t.is(config.nats.url, gatewayUrl(dep));
    t.true(config.streams.some((s) => s.name === "events"), "the tenant's streams, edge view");
    for (const subject of Object.values(config.subjects.publish)) t.false(subject.startsWith("globex."), `${subject} is written in the edge view`);

    const nc = await connectAsConfigured(dir, config);
    t.teardown(() => nc.close());
    const js = nc.jetstream();
    for (const [name, subject] of Object.entries(config.subjects.publish)) {
      const ack = await js.publish(subject, `${name} from ${component}`);
      t.true(
        config.streams.some((s) => s.name === ack.stream),
        `${subject} landed in ${ack.stream}, a stream the config lists`,
      );
    }
    for (const subject of Object.values(config.subjects.subscribe ?? {})) {
      const sub = nc.subscribe(subject, { max: 1 });
      nc.publish(subject, "job");
      for await (const m of sub) t.is(m.subject, subject);
    }
    if (config.subjects.service) {
      nc.subscribe(config.subjects.service, { callback: (_e, m) => m.respond("checked") });
      t.is((await nc.request(config.subjects.service, "run")).string(), "checked");
    }
  });
}

test.serial("the nats CLI connects through the gateway with the bundle's context file, from the bundle directory and as install.sh installs it", async (t) => {
  const dep = await deployment;
  const nats = await natsCli;
  const created = await createPackage(dep, ["--tenant", "acme-corp", "--component", "cli-probe", "--partition", "site-b", "--type", "poller"]);
  const dir = await downloadAndExtract(dep, created);
  const home = freshDir("home-");
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, ".config"), NATS_CONTEXT: "", NATS_URL: "" };

  const watcher = await connect({ servers: gatewayUrl(dep), tls: { certFile: path.join(dir, "certs/component.pem"), keyFile: path.join(dir, "certs/component-key.pem"), caFile: path.join(dir, "certs/ca-chain.pem") }, reconnect: false });
  t.teardown(() => watcher.close());
  const sub = watcher.subscribe("events.poller.health", { max: 2 });
  await watcher.flush();
  await run(nats, ["--context", "config/nats-context.json", "pub", "events.poller.health", "from the bundle"], { cwd: dir, env, timeout: 20_000 });
  const streams = await run(nats, ["--context", "config/nats-context.json", "stream", "ls", "--names"], { cwd: dir, env, timeout: 20_000 });
  t.deepEqual(streams.stdout.split(/\s+/).filter(Boolean).sort(), ["events", "logs", "telemetry"]);

  const prefix = path.join(freshDir("install-"), "poller");
  const installed = await run("bash", [path.join(dir, "install.sh"), "manual", "--prefix", prefix]);
  t.regex(installed.stdout, new RegExp(`installed in ${prefix}`));
  await run(nats, ["--context", path.join(prefix, "config", "nats-context.json"), "pub", "events.poller.health", "from the installed copy"], { cwd: home, env, timeout: 20_000 });
  const seen: string[] = [];
  for await (const m of sub) seen.push(m.string());
  t.deepEqual(seen, ["from the bundle", "from the installed copy"]);
});

test.serial("install.sh installs the bundle (keys 0600), writes a systemd unit running it from its directory, and gives the docker command", async (t) => {
  const dep = await deployment;
  const created = await createPackage(dep, ["--tenant", "acme-corp", "--component", "agent-002", "--partition", "site-c", "--type", "agent", "--image", "registry.example.com/agent:1.2"]);
  const dir = await downloadAndExtract(dep, created);
  const script = path.join(dir, "install.sh");
  t.is((await run("bash", ["-n", script])).stderr, "", "valid bash");
  const help = await run("bash", [script, "--help"]);
  t.regex(help.stdout, /install\.sh manual/);

  const prefix = path.join(freshDir("install-"), "agent");
  const units = freshDir("units-");
  const installed = await run("bash", [script, "systemd", "--prefix", prefix, "--unit-dir", units, "--no-start"]);
  t.regex(installed.stdout, /systemd unit: .*serviceradar-agent-agent-002-site-c\.service/);
  t.is((await fs.stat(path.join(prefix, "certs", "component-key.pem"))).mode & 0o777, 0o600);
  t.is((await fs.stat(path.join(prefix, "certs"))).mode & 0o777, 0o700);
  t.is(await fs.readFile(path.join(prefix, "config", "config.yaml"), "utf8"), await fs.readFile(path.join(dir, "config", "config.yaml"), "utf8"));
  const context = JSON.parse(await fs.readFile(path.join(prefix, "config", "nats-context.json"), "utf8")) as { cert: string; url: string };
  t.is(context.cert, path.join(prefix, "certs", "component.pem"), "the installed context names its files absolutely");
  const unit = await fs.readFile(path.join(units, "serviceradar-agent-agent-002-site-c.service"), "utf8");
  t.regex(unit, new RegExp(`WorkingDirectory=${prefix}\\n`));
  t.regex(unit, /ExecStart=\/usr\/local\/bin\/serviceradar-agent --config config\/config\.yaml/);

  const docker = await run("bash", [script, "docker", "--prefix", prefix, "--dry-run"]);
  t.regex(docker.stdout, /docker run -d --name serviceradar-agent-agent-002-site-c .*-v .*agent:\/etc\/serviceradar:ro -w \/etc\/serviceradar registry\.example\.com\/agent:1\.2 --config config\/config\.yaml/);
  const bad = await run("bash", [script, "bogus"]).catch((err: { code: number }) => err);
  t.is((bad as { code: number }).code, 2);
});

test.serial("the Kubernetes manifests: a kubernetes.io/tls Secret with the bundle's certificate, key and CA chain, a ConfigMap with config.yaml, a Deployment mounting them where the config's paths point, a kustomization listing them", async (t) => {
  const dep = await deployment;
  const created = await createPackage(dep, ["--tenant", "acme-corp", "--component", "otel-01", "--partition", "k8s", "--type", "collector", "--collector", "otel"]);
  const dir = await downloadAndExtract(dep, created);
  const read = async (f: string): Promise<Record<string, unknown>> => YAML.parse(await fs.readFile(path.join(dir, "kubernetes", f), "utf8")) as Record<string, unknown>;
  const kustomization = (await read("kustomization.yaml")) as { resources: string[]; namespace: string };
  t.is(kustomization.namespace, "serviceradar-acme-corp");
  const kinds: Record<string, Record<string, unknown>> = {};
  for (const resource of kustomization.resources) {
    const doc = await read(resource);
    kinds[doc.kind as string] = doc;
  }
  t.deepEqual(Object.keys(kinds).sort(), ["ConfigMap", "Deployment", "Namespace", "Secret"]);
  const secret = kinds.Secret as { type: string; metadata: { name: string; labels: Record<string, string> }; data: Record<string, string> };
  t.is(secret.type, "kubernetes.io/tls");
  t.is(secret.metadata.labels["serviceradar.io/tenant"], "acme-corp");
  const decoded = (k: string): string => Buffer.from(secret.data[k]!, "base64").toString("utf8");
  t.is(decoded("tls.crt"), await fs.readFile(path.join(dir, "certs", "component.pem"), "utf8"));
  t.is(decoded("tls.key"), await fs.readFile(path.join(dir, "certs", "component-key.pem"), "utf8"));
  t.is(decoded("ca.crt"), await fs.readFile(path.join(dir, "certs", "ca-chain.pem"), "utf8"));
  const configMap = kinds.ConfigMap as { data: Record<string, string> };
  t.is(configMap.data["config.yaml"], await fs.readFile(path.join(dir, "config", "config.yaml"), "utf8"));

  const deploymentDoc = kinds.Deployment as {
    spec: { template: { spec: { containers: Array<{ workingDir: string; volumeMounts: Array<{ name: string; mountPath: string }> }>; volumes: Array<{ name: string; secret?: { secretName: string; items: Array<{ key: string; path: string }> }; configMap?: { name: string } }> } } };
  };
  const pod = deploymentDoc.spec.template.spec;
  const container = pod.containers[0]!;
  const config = await readConfig(dir);
  const mounted = (file: string): string => path.posix.join(container.workingDir, file);
  const certMount = container.volumeMounts.find((m) => m.name === "certs")!;
  const certVolume = pod.volumes.find((v) => v.name === "certs")!;
  t.is(certVolume.secret!.secretName, secret.metadata.name);
  for (const [key, file] of [["tls.crt", config.nats.tls.cert_file], ["tls.key", config.nats.tls.key_file], ["ca.crt", config.nats.tls.ca_file]] as const) {
    const item = certVolume.secret!.items.find((i) => i.key === key)!;
    t.is(path.posix.join(certMount.mountPath, item.path), mounted(file), `${key} is where the config looks for it`);
  }
  t.is(pod.volumes.find((v) => v.name === "config")!.configMap!.name, (configMap as unknown as { metadata: { name: string } }).metadata.name);
  t.is(container.volumeMounts.find((m) => m.name === "config")!.mountPath, mounted("config"));
});

test.serial("download errors have stable codes and HTTP statuses: 400 malformed, 401 missing or wrong token, 404 unknown, 410 expired, 409 revoked — and revoking a package revokes its certificate", async (t) => {
  const dep = await deployment;
  const created = await createPackage(dep, ["--tenant", "acme-corp", "--component", "agent-003", "--partition", "site-d", "--type", "agent"]);
  const id = created.package.id;
  const attempt = async (args: string[]): Promise<ErrorJson["error"]> => {
    const r = await dep.cli<ErrorJson>(["package", "download", ...args, "--out", path.join(freshDir(), "x.tar.gz")], { TENANT_GATEWAY_PACKAGE_TOKEN: "" });
    t.is(r.code, 1, args.join(" "));
    return r.json.error;
  };
  t.like(await attempt(["not-a-package", "--token", created.token]), { code: "malformed_request", http_status: 400 });
  t.like(await attempt([id, "--token", "short"]), { code: "malformed_request", http_status: 400 });
  t.like(await attempt([id]), { code: "token_required", http_status: 401 });
  t.like(await attempt([id, "--token", "A".repeat(43)]), { code: "token_invalid", http_status: 401 });
  t.like(await attempt(["00000000-0000-4000-8000-000000000000", "--token", created.token]), { code: "package_not_found", http_status: 404 });

  const expiring = await createPackage(dep, ["--tenant", "acme-corp", "--component", "agent-004", "--partition", "site-d", "--type", "agent", "--ttl", "1s"]);
  // The token's lifetime is what is being tested: wait until it is over.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, Date.parse(expiring.package.expires_at) - Date.now() + 20)));
  t.like(await attempt([expiring.package.id, "--token", expiring.token]), { code: "package_expired", http_status: 410 });
  const listed = await dep.cli<{ packages: Array<{ id: string; state: string }> }>(["package", "list", "--tenant", "acme-corp"]);
  t.is(listed.json.packages.find((p) => p.id === expiring.package.id)?.state, "expired");

  // The package's certificate, which the site may already use, is revoked with it.
  const svc = new PackageService(dep.cp, dep.tenants);
  const site = await svc.create({ tenant: "acme-corp", component: "agent-005", partition: "site-d", type: "agent", gatewayUrl: gatewayUrl(dep) });
  const bundle = await svc.download(site.package.id, site.token);
  const dir = freshDir("bundle-");
  await fs.writeFile(path.join(dir, "b.tar.gz"), bundle.bundle);
  await run("tar", ["-xzf", "b.tar.gz"], { cwd: dir });
  const nc = await connectAsConfigured(dir, await readConfig(dir));
  const cut = nc.closed();
  const revoked = await dep.cli<{ state: string; certificate_revocation: string }>(["package", "revoke", site.package.id, "--reason", "site closed"]);
  t.is(revoked.code, 0, revoked.stderr);
  t.like(revoked.json, { state: "revoked", certificate_revocation: "revoked" });
  await cut;
  const shown = await dep.cli<{ revoked_certificates: Array<{ serial_number: string }> }>(["tenant", "show", "acme-corp"]);
  t.true(shown.json.revoked_certificates.some((r) => r.serial_number === site.package.certificate.serial_number));
  const pending = await svc.create({ tenant: "acme-corp", component: "agent-006", partition: "site-d", type: "agent", gatewayUrl: gatewayUrl(dep) });
  await svc.revoke(pending.package.id);
  t.like(await attempt([pending.package.id, "--token", pending.token]), { code: "package_revoked", http_status: 409 });
});

test.serial("two downloads at once: exactly one gets the bundle, the other 409", async (t) => {
  const dep = await deployment;
  const svc = new PackageService(dep.cp, dep.tenants);
  const created = await svc.create({ tenant: "globex", component: "racer", partition: "p1", type: "checker", gatewayUrl: gatewayUrl(dep) });
  const results = await Promise.allSettled([svc.download(created.package.id, created.token), svc.download(created.package.id, created.token), svc.download(created.package.id, created.token)]);
  t.is(results.filter((r) => r.status === "fulfilled").length, 1);
  for (const r of results.filter((x): x is PromiseRejectedResult => x.status === "rejected")) t.like(r.reason, { code: "package_delivered", details: { http_status: 409 } });
});

test.serial("the registry keeps the token's hash and the bundle sealed under it: no token, no key, no certificate in the clear; list and show never print them", async (t) => {
  const dep = await deployment;
  const created = await createPackage(dep, ["--tenant", "globex", "--component", "sealed", "--partition", "p1", "--type", "agent"]);
  const file = dep.layout.registryEntry("packages", created.package.id);
  const stored = await fs.readFile(file, "utf8");
  t.is((await fs.stat(file)).mode & 0o777, 0o600);
  t.false(stored.includes(created.token));
  t.notRegex(stored, /PRIVATE KEY|BEGIN CERTIFICATE/);
  t.regex(stored, /"token_sha256": "[0-9a-f]{64}"/);
  for (const args of [["package", "list"], ["package", "show", created.package.id]]) {
    const r = await dep.cli(args);
    t.false(JSON.stringify(r.json).includes(created.token), args.join(" "));
    t.false(JSON.stringify(r.json).includes("token_sha256"), args.join(" "));
  }
  await new PackageService(dep.cp, dep.tenants).download(created.package.id, created.token);
  t.false((await fs.readFile(file, "utf8")).includes('"bundle"'), "a delivered package keeps no bundle");
});

test.serial("an operator's template in <data-dir>/onboarding/templates replaces the built-in one; a template naming an unknown value is refused before anything is issued", async (t) => {
  const dep = await deployment;
  const own = path.join(dep.layout.onboardingTemplatesDir, "config");
  await fs.mkdir(own, { recursive: true });
  t.teardown(() => fs.rm(dep.layout.onboardingTemplatesDir, { recursive: true, force: true }));
  const builtin = await fs.readFile(path.join(PROJECT_ROOT, "onboarding", "templates", "config", "checker.yaml"), "utf8");
  await fs.writeFile(path.join(own, "checker.yaml"), `${builtin}site_note: managed by {{tenant}}\n`);
  const created = await createPackage(dep, ["--tenant", "globex", "--component", "custom", "--partition", "p1", "--type", "checker"]);
  const dir = await downloadAndExtract(dep, created);
  t.is((await readConfig(dir) as unknown as { site_note: string }).site_note, "managed by globex");

  await fs.writeFile(path.join(own, "checker.yaml"), `${builtin}broken: {{no_such_value}}\n`);
  const before = (await dep.cli<{ packages: unknown[] }>(["package", "list"])).json.packages.length;
  const refused = await dep.cli<ErrorJson>(["package", "create", "--tenant", "globex", "--component", "custom-2", "--partition", "p1", "--type", "checker", "--gateway-url", gatewayUrl(dep)]);
  t.is(refused.code, 1);
  t.is(refused.json.error.code, "invalid_onboarding_template");
  t.regex(refused.json.error.message, /checker\.yaml .*\{\{no_such_value\}\}/);
  t.is((await dep.cli<{ packages: unknown[] }>(["package", "list"])).json.packages.length, before, "no package was recorded");
});

test.serial("package create refuses an unknown type, a collector flavour on another type or an unknown one, and an unknown tenant", async (t) => {
  const dep = await deployment;
  const base = ["--tenant", "globex", "--component", "x", "--partition", "p1"];
  t.like((await dep.cli<ErrorJson>(["package", "create", ...base, "--type", "router"])).json.error, { code: "invalid_argument" });
  t.like((await dep.cli<ErrorJson>(["package", "create", ...base, "--type", "agent", "--collector", "otel"])).json.error, { code: "invalid_argument" });
  t.like((await dep.cli<ErrorJson>(["package", "create", ...base, "--type", "collector", "--collector", "snmp"])).json.error, { code: "invalid_argument" });
  t.like((await dep.cli<ErrorJson>(["package", "create", ...base, "--type", "agent", "--tenant", "nobody"])).json.error, { code: "unknown_tenant" });
});

test.serial("kv store: a package created by the CLI is downloaded once by another process, and its bundle connects through the gateway", async (t) => {
  const dep = await kvDeployment;
  const created = await createPackage(dep, ["--tenant", "initech", "--component", "agent-001", "--partition", "p1", "--type", "agent"]);
  const dir = await downloadAndExtract(dep, created);
  const config = await readConfig(dir);
  const nc = await connectAsConfigured(dir, config);
  const ack = await nc.jetstream().publish(config.subjects.publish.events!, "from a kv-store bundle");
  t.is(ack.stream, "events");
  await nc.close();
  const again = await dep.cli<ErrorJson>(["package", "download", created.package.id, "--token", created.token, "--out", path.join(dir, "again.tar.gz")]);
  t.like(again.json.error, { code: "package_delivered", http_status: 409 });
});

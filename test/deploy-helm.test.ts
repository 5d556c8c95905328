/**
 * The Helm charts (deploy/helm), with the pinned helm (scripts/helm.sh): they lint and render with
 * every values file under their ci/ directories; the schemas refuse bad values; and what they
 * render is checked against the product itself — the gateway pod mounts exactly the data-plane part
 * `tenant-gateway export dataplane` writes (never a root or CA private key), laid out as the
 * kubelet lays it out the gateway serves from it with the rendered config and answers the rendered
 * probes; the provisioning Job's script and publisher run against a real control plane, NATS and a
 * stand-in for the Kubernetes API; the edge chart's certificate names and subjects are the ones the
 * gateway and the onboarding packages use.
 *
 * Not run here (no cluster): the objects in a real Kubernetes API server, cert-manager, the
 * Prometheus Operator.
 */
import { X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import YAML from "yaml";
import { connect } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { NatsFiles, writeNatsUrl } from "../accounts/operator.ts";
import { TenantService } from "../accounts/tenants.ts";
import { readConfigFile } from "../gateway/config.ts";
import { bundleFiles, bundleProfile } from "../onboarding/bundle.ts";
import { issueComponentFiles } from "../pki/authority.ts";
import { DataLayout } from "../pki/layout.ts";
import { edgeCommonName, parseCommonName } from "../pki/names.ts";
import { tenantStreamProvisioner } from "../streams/provisioner.ts";
import { PROJECT_ROOT, runCli, runCliJson, runFile } from "./helpers/cli.ts";
import { freePort, startCli } from "./helpers/cli-process.ts";
import {
  CHARTS,
  envOf,
  filesUnder,
  helm,
  httpStatus,
  materialiseProjectedVolume,
  objectsOf,
  oneOf,
  podSpec,
  renderChart,
  secretFromDirs,
  addFile,
  startFakeKubeApi,
  templateArgs,
  until,
  type Container,
  type K8sObject,
  type SecretData,
  type Volume,
} from "./helpers/deploy.ts";
import { startNatsServer, type RunningNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const GATEWAY = "tenant-gateway";
const EDGE = "tenant-edge";
const BAD = path.join(PROJECT_ROOT, "test", "fixtures", "helm");
const NO_ENV = { TENANT_GATEWAY_NATS: "", TENANT_GATEWAY_CONFIG: "", TENANT_GATEWAY_DATA: "", TENANT_GATEWAY_LISTEN: "", TENANT_GATEWAY_HTTP_LISTEN: "", TENANT_GATEWAY_SYNC_ON_START: "", TENANT_GATEWAY_DRAIN_TIMEOUT_MS: "" };

async function ciValues(chart: string): Promise<string[]> {
  const dir = path.join(CHARTS, chart, "ci");
  return (await fs.readdir(dir)).filter((f) => f.endsWith(".yaml")).sort().map((f) => path.join(dir, f));
}

/** Every rendering of the gateway chart the tests look at: its defaults and each ci/ values file. */
async function gatewayRenderings(): Promise<Array<{ name: string; objects: K8sObject[] }>> {
  const files = await ciValues(GATEWAY);
  return [{ name: "defaults", objects: await renderChart(GATEWAY) }, ...(await Promise.all(files.map(async (f) => ({ name: path.basename(f), objects: await renderChart(GATEWAY, { values: [f] }) }))))];
}

function gatewayPod(objects: K8sObject[]): { spec: PodSpec; container: Container } {
  const spec = podSpec(oneOf(objects, "Deployment"));
  return { spec, container: spec.containers.find((c) => c.name === "gateway")! };
}
type PodSpec = ReturnType<typeof podSpec>;

function configOf(objects: K8sObject[]): Record<string, unknown> {
  const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name.endsWith("-config") && !o.metadata.name.startsWith("tenant-"))!;
  return YAML.parse((cm.data as Record<string, string>)["config.yaml"]!) as Record<string, unknown>;
}

function dataVolume(spec: PodSpec): Volume {
  return spec.volumes!.find((v) => v.name === "data")!;
}

// A real control plane: NATS in operator mode, two tenants, and the data-plane export the docs
// turn into Secrets. Shared by the tests that run what the charts render.
let control: DataLayout;
let nats: RunningNatsServer;
let exportDir: string;

test.before(async () => {
  control = new DataLayout(tempDir("ntg-helm-cp-"));
  await initDataDir(control, { natsPort: -1 });
  nats = await startNatsServer(new NatsFiles(control).serverConfig);
  await writeNatsUrl(control, [nats.url], "the test");
  const cp = await ControlPlane.open({ dataDir: control.dir, servers: [nats.url] });
  try {
    const tenants = new TenantService(cp, tenantStreamProvisioner);
    await tenants.sync();
    await tenants.create("acme-corp", { plan: "pro" });
    await tenants.create("globex", { plan: "free" });
  } finally {
    await cp.close();
  }
  // A revoked platform certificate: the export then carries the platform's trust state too.
  for (const args of [["pki", "issue-platform", "db-writer"], ["pki", "revoke", "--platform", "--cert", control.platformIdentity("db-writer").cert, "--reason", "test"]]) {
    const r = await runCli([...args, "--data-dir", control.dir], NO_ENV);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  exportDir = path.join(tempDir("ntg-helm-dp-"), "dataplane");
  const exported = await runCli(["export", "dataplane", exportDir, "--data-dir", control.dir], NO_ENV);
  if (exported.code !== 0) throw new Error(exported.stderr);
});

test.after.always(async () => {
  await nats?.stop();
});

/** The Secrets of the data plane as docs/deploy-kubernetes.md creates them with kubectl. */
async function dataPlaneSecrets(platformName: string, tenants: Array<{ slug: string; secret: string }>): Promise<Map<string, SecretData>> {
  const secrets = new Map<string, SecretData>();
  // After a platform CA rotation or a platform certificate revocation the export also holds the
  // platform's trust state (registry/platform/), which goes into the same Secret.
  const trust = path.join(exportDir, "registry", "platform");
  const dirs = [path.join(exportDir, "platform"), path.join(exportDir, "nats"), ...((await fs.stat(trust).catch(() => undefined))?.isDirectory() ? [trust] : [])];
  secrets.set(platformName, await addFile(await secretFromDirs(dirs), path.join(exportDir, "root.pem")));
  for (const t of tenants) secrets.set(t.secret, await secretFromDirs([path.join(exportDir, "tenants", t.slug)]));
  return secrets;
}

test("helm lint passes for both charts with every values file of their ci/ directories", async (t) => {
  for (const chart of [GATEWAY, EDGE]) {
    const files = await ciValues(chart);
    t.true(files.length >= 2, `${chart} has ci/ values files`);
    for (const values of files) {
      const r = await helm(["lint", path.join(CHARTS, chart), "--strict", "--kube-version", "1.30.0", "--values", values]);
      t.is(r.code, 0, `helm lint ${chart} --values ${path.basename(values)}: ${r.stdout}${r.stderr}`);
    }
  }
  const defaults = await helm(["lint", path.join(CHARTS, GATEWAY), "--strict", "--kube-version", "1.30.0"]);
  t.is(defaults.code, 0, `the gateway chart's defaults lint: ${defaults.stdout}`);
});

test("the schemas refuse bad values, naming the field", async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    [GATEWAY, "gateway-reserved-slug.yaml", /\/tenants\/0\/slug/],
    [GATEWAY, "gateway-bad-nats-url.yaml", /\/nats\/urls\/0.*does not match pattern/],
    [GATEWAY, "gateway-unknown-key.yaml", /additional properties 'replicas' not allowed/],
    [GATEWAY, "gateway-world-readable-keys.yaml", /\/dataPlane\/defaultMode/],
    [GATEWAY, "gateway-root.yaml", /\/podSecurityContext\/runAsNonRoot/],
    [GATEWAY, "gateway-provisioning-without-claim.yaml", /\/provisioning\/controlPlane\/existingClaim/],
    [EDGE, "edge-bad-component.yaml", /\/component.*does not match pattern/],
    [EDGE, "edge-two-replicas.yaml", /\/replicaCount/],
  ];
  for (const [chart, file, message] of cases) {
    const r = await helm(templateArgs(chart, { values: [path.join(BAD, file)] }));
    t.not(r.code, 0, `${file} is refused`);
    t.regex(r.stderr, /values don't meet the specifications of the schema/, file);
    t.regex(r.stderr, message, file);
    const lint = await helm(["lint", path.join(CHARTS, chart), "--kube-version", "1.30.0", "--values", path.join(BAD, file)]);
    t.not(lint.code, 0, `helm lint refuses ${file} too`);
  }
  const edgeDefaults = await helm(templateArgs(EDGE));
  t.not(edgeDefaults.code, 0, "the edge chart needs its tenant, component, partition and image");
  t.regex(edgeDefaults.stderr, /\/tenant/);
});

test("a termination grace not longer than the drain is refused; every rendering's grace is longer than its drain", async (t) => {
  const r = await helm(templateArgs(GATEWAY, { values: [path.join(BAD, "gateway-grace-shorter-than-drain.yaml")] }));
  t.not(r.code, 0);
  t.regex(r.stderr, /terminationGracePeriodSeconds \(30\) must be longer than the drain \(gateway\.drainTimeoutMs 30000 ms\)/);
  for (const { name, objects } of await gatewayRenderings()) {
    const drainMs = configOf(objects).drain_timeout_ms as number;
    const grace = gatewayPod(objects).spec.terminationGracePeriodSeconds!;
    t.true(grace * 1000 > drainMs, `${name}: grace ${grace} s > drain ${drainMs} ms`);
  }
});

test("the gateway chart renders the objects of an installation: Deployment, Service, PodDisruptionBudget, config, per-tenant ConfigMaps; ServiceMonitor and Issuers when asked", async (t) => {
  const objects = await renderChart(GATEWAY, { values: [path.join(CHARTS, GATEWAY, "ci", "production-values.yaml")] });
  const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  for (const expected of ["Deployment/tg-tenant-gateway", "Service/tg-tenant-gateway", "PodDisruptionBudget/tg-tenant-gateway", "ConfigMap/tg-tenant-gateway-config", "ServiceMonitor/tg-tenant-gateway", "ServiceAccount/tg-tenant-gateway"]) {
    t.true(kinds.includes(expected), `${expected} in ${kinds.join(", ")}`);
  }
  for (const slug of ["acme-corp", "globex", "initech"]) {
    t.true(kinds.includes(`ConfigMap/tenant-${slug}-nats`), slug);
    const issuer = oneOf(objects, "Issuer", `tenant-${slug}-ca`);
    t.is((issuer.spec as { ca: { secretName: string } }).ca.secretName, `tenant-${slug}-ca`, "the Issuer signs with the tenant CA Secret `pki k8s-secret` prints");
  }
  const deployment = oneOf(objects, "Deployment");
  t.is((deployment.spec as { replicas: number }).replicas, 3);
  const service = oneOf(objects, "Service");
  const ports = (service.spec as { ports: Array<{ name: string; port: number; targetPort: string }> }).ports;
  t.deepEqual(ports.map((p) => [p.name, p.port, p.targetPort]), [["nats", 4222, "nats"], ["http", 8080, "http"], ["leafnodes", 7422, "leafnodes"]], "leaf sites enabled: their port too");
  t.is((service.spec as { type: string }).type, "LoadBalancer");
  t.is((service.spec as { externalTrafficPolicy: string }).externalTrafficPolicy, "Local", "clients' addresses reach the connection logs");
  const selector = (service.spec as { selector: Record<string, string> }).selector;
  const podLabels = (deployment.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
  for (const [k, v] of Object.entries(selector)) t.is(podLabels[k], v, `the Service selects the gateway pods (${k})`);
  const pdb = oneOf(objects, "PodDisruptionBudget");
  t.deepEqual((pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, selector);
  const monitor = oneOf(objects, "ServiceMonitor");
  const endpoint = (monitor.spec as { endpoints: Array<{ port: string; path: string; scheme: string }> }).endpoints[0]!;
  t.deepEqual([endpoint.port, endpoint.path, endpoint.scheme], ["http", "/metrics", "http"]);
  t.is(monitor.metadata.labels?.release, "prometheus");

  const minimal = await renderChart(GATEWAY, { values: [path.join(CHARTS, GATEWAY, "ci", "minimal-values.yaml")] });
  t.deepEqual(objectsOf(minimal, "ServiceMonitor"), []);
  t.deepEqual(objectsOf(minimal, "Issuer"), []);
  t.deepEqual(objectsOf(minimal, "Job"), []);
  t.deepEqual(objectsOf(minimal, "ServiceAccount"), [], "an existing service account is used");
  t.is(gatewayPod(minimal).spec.serviceAccountName, "platform-gateway");
  t.is((oneOf(minimal, "PodDisruptionBudget").spec as { maxUnavailable?: number }).maxUnavailable, 1);
  t.false(minimal.some((o) => o.metadata.name.startsWith("tenant-")));
});

test("every rendering's config file is one the gateway accepts, with the pod's ports", async (t) => {
  const dir = tempDir("ntg-helm-config-");
  for (const { name, objects } of await gatewayRenderings()) {
    const config = configOf(objects);
    const file = path.join(dir, `${name}.config.yaml`);
    await fs.writeFile(file, YAML.stringify(config));
    await t.notThrowsAsync(readConfigFile(file), `${name}: the gateway's config schema accepts it`);
    const ports = Object.fromEntries(gatewayPod(objects).container.ports!.map((p) => [p.name, p.containerPort]));
    t.is(config.listen, `0.0.0.0:${ports.nats}`, name);
    t.is(config.http_listen, `0.0.0.0:${ports.http}`, name);
    t.is(config.leaf_listen, ports.leafnodes === undefined ? undefined : `0.0.0.0:${ports.leafnodes}`, name);
    t.is(config.store, "dir", `${name}: the data-plane dir, never the KV store (its master key opens the CA keys)`);
  }
});

test("gateway pods run unprivileged, without an API token, and mount the data plane read-only and nothing else secret", async (t) => {
  for (const { name, objects } of await gatewayRenderings()) {
    const { spec, container } = gatewayPod(objects);
    t.true(spec.securityContext?.runAsNonRoot, name);
    t.is(spec.securityContext?.runAsUser, 1000, `${name}: the image's user`);
    t.is(spec.securityContext?.fsGroup, 1000, `${name}: the mounted files' group, so 0440 keys are readable`);
    t.false(spec.automountServiceAccountToken, `${name}: no Kubernetes API token`);
    t.is(container.securityContext?.allowPrivilegeEscalation, false, name);
    t.is(container.securityContext?.readOnlyRootFilesystem, true, name);
    const data = dataVolume(spec);
    t.true([0o400, 0o440].includes(data.projected!.defaultMode!), `${name}: keys not readable by others`);
    t.true(container.volumeMounts!.find((m) => m.name === "data")?.readOnly, `${name}: /data is read-only`);
    t.is(container.volumeMounts!.find((m) => m.name === "data")?.mountPath, "/data");
    const secretVolumes = spec.volumes!.filter((v) => v.secret || v.persistentVolumeClaim || v.projected?.sources.some((s) => s.serviceAccountToken));
    t.deepEqual(secretVolumes, [], `${name}: no other Secret, claim or token volume`);
    const caSecrets = new Set((name === "defaults" ? [] : objectsOf(objects, "Issuer")).map((i) => (i.spec as { ca: { secretName: string } }).ca.secretName));
    for (const source of data.projected!.sources) {
      t.false(caSecrets.has(source.secret?.name ?? ""), `${name}: the tenant CA Secret ${source.secret?.name} is not mounted`);
      for (const item of source.secret?.items ?? []) {
        t.notRegex(item.key, /^tls\.key$|(^|-)ca-key\.pem$|^root-key\.pem$|^operator\.nk$|^account\.nk$|\.creds$|^master\.key$/, `${name}: ${item.key}`);
      }
    }
  }
});

test("the gateway pod mounts exactly the data-plane part `export dataplane` writes, from the Secrets the docs create", async (t) => {
  const objects = await renderChart(GATEWAY, { setJson: ['tenants=[{"slug":"acme-corp"},{"slug":"globex","dataPlaneSecret":"globex-gateway"}]'] });
  const secrets = await dataPlaneSecrets("tg-tenant-gateway-dataplane", [
    { slug: "acme-corp", secret: "tenant-acme-corp-dataplane" },
    { slug: "globex", secret: "globex-gateway" },
  ]);
  const mount = path.join(tempDir("ntg-helm-mount-"), "data");
  await fs.mkdir(mount);
  const mounted = await materialiseProjectedVolume(mount, dataVolume(gatewayPod(objects).spec), { secrets });
  const exported = (await filesUnder(exportDir)).filter((f) => f !== "nats/url");
  t.true(exported.includes("registry/platform/trust.json"), "the export holds the platform's trust state");
  t.deepEqual(mounted, exported, "every file of the export but the NATS URL (the chart's config names NATS)");
  for (const file of mounted) t.deepEqual(await fs.readFile(path.join(mount, file)), await fs.readFile(path.join(exportDir, file)), file);
  t.false(mounted.some((f) => /(^|\/)(root-key|ca-key)\.pem$|operator\.nk$|account\.nk$|system-user\.creds$/.test(f)), "no root or CA key, no identity seed");
});

test("the gateway serves from the rendered pod: its config, the data plane laid out as the kubelet does; probes answer, a stock client connects, SIGTERM drains within the grace", async (t) => {
  const objects = await renderChart(GATEWAY, { setJson: ['tenants=[{"slug":"acme-corp"},{"slug":"globex"}]', "gateway.drainTimeoutMs=3000"] });
  const { spec, container } = gatewayPod(objects);
  const dir = tempDir("ntg-helm-pod-");
  const mount = path.join(dir, "data");
  await fs.mkdir(mount);
  await materialiseProjectedVolume(mount, dataVolume(spec), {
    secrets: await dataPlaneSecrets("tg-tenant-gateway-dataplane", [
      { slug: "acme-corp", secret: "tenant-acme-corp-dataplane" },
      { slug: "globex", secret: "tenant-globex-dataplane" },
    ]),
  });

  // The rendered config file, with the pod's addresses made local: /data, the ports, NATS.
  const config = configOf(objects);
  t.is(config.data_dir, "/data");
  t.is(config.listen, "0.0.0.0:4222");
  t.is(container.ports!.find((p) => p.name === "nats")!.containerPort, 4222);
  const httpPort = container.ports!.find((p) => p.name === "http")!.containerPort;
  t.is(config.http_listen, `0.0.0.0:${httpPort}`, "the probes' port is the one the gateway listens on");
  const [natsPort, gatewayHttp] = [await freePort(), await freePort()];
  const local = { ...config, data_dir: mount, listen: `127.0.0.1:${natsPort}`, http_listen: `127.0.0.1:${gatewayHttp}`, nats: [nats.url] };
  const configFile = path.join(dir, "config.yaml");
  await fs.writeFile(configFile, YAML.stringify(local));
  await t.notThrowsAsync(readConfigFile(configFile), "the gateway's own config schema accepts the rendered file");

  const env = envOf(container);
  t.is(env.TENANT_GATEWAY_CONFIG, "/etc/tenant-gateway/config.yaml");
  t.true(container.volumeMounts!.some((m) => m.mountPath === "/etc/tenant-gateway"));
  const before = await filesUnder(mount);
  const serve = startCli(container.args!, { ...NO_ENV, TENANT_GATEWAY_CONFIG: configFile });
  t.teardown(() => serve.kill());
  const base = `http://127.0.0.1:${gatewayHttp}`;
  const probe = (p: { httpGet: { path: string } } | undefined): Promise<number | string> => httpStatus(`${base}${p!.httpGet.path}`);
  // Started (or why not: the line's wait fails with the gateway's output), then the probe.
  await serve.line((l) => l.event === "listening");
  await until("the startup probe", async () => (await probe(container.startupProbe)) === 200).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; the gateway's last lines: ${JSON.stringify(serve.lines.slice(-10))}; stderr: ${serve.stderr().slice(-2000)}`);
  });
  await until("the readiness probe", async () => (await probe(container.readinessProbe)) === 200);
  t.is(await probe(container.livenessProbe), 200);
  t.is(container.readinessProbe!.httpGet.path, "/readyz");
  t.is(container.livenessProbe!.httpGet.path, "/healthz");
  t.is(container.readinessProbe!.httpGet.port, "http");
  t.is(await httpStatus(`${base}/metrics`), 200, "the ServiceMonitor's path");

  const agent = await issueComponentFiles(control, { tenant: "acme-corp", component: "agent-001", partition: "partition-1" });
  const nc = await connect({
    servers: `tls://127.0.0.1:${natsPort}`,
    tls: { cert: await fs.readFile(agent.files.cert, "utf8"), key: await fs.readFile(agent.files.key, "utf8"), ca: await fs.readFile(control.rootCert, "utf8") },
    reconnect: false,
  });
  const sub = nc.subscribe("events.>", { max: 1 });
  await nc.flush();
  nc.publish("events.agent.health", "ok");
  t.is((await sub[Symbol.asyncIterator]().next()).value?.subject, "events.agent.health", "an edge client is served through the pod as rendered");
  t.deepEqual(await filesUnder(mount), before, "the gateway writes nothing into its (read-only) data mount");

  const stopped = Date.now();
  serve.child.kill("SIGTERM");
  await until("readiness false during the lame duck", async () => (await probe(container.readinessProbe)) !== 200, 5000);
  const exit = await serve.exited;
  t.is(exit.code, 0, serve.stderr());
  t.true(Date.now() - stopped < spec.terminationGracePeriodSeconds! * 1000, "the pod exits before Kubernetes would kill it");
  await nc.close().catch(() => undefined);
});

test("per-tenant ConfigMaps give edge deployments the gateway address, the prefix and the stream templates' subjects in the edge view", async (t) => {
  const objects = await renderChart(GATEWAY, { setJson: ['tenants=[{"slug":"acme-corp"},{"slug":"globex","edge":{"gatewayUrl":"tls://globex.example.com:4222"}}]'] });
  const templates = await runCliJson<{ templates: Array<{ name: string; subjects: string[]; kind?: string }> }>(["streams", "templates", "--data-dir", control.dir], NO_ENV);
  t.is(templates.code, 0);
  const expectedStreams = Object.fromEntries(templates.json.templates.filter((s) => (s.kind ?? "stream") === "stream").map((s) => [s.name, s.subjects]));
  for (const slug of ["acme-corp", "globex"]) {
    const cm = oneOf(objects, "ConfigMap", `tenant-${slug}-nats`);
    const data = cm.data as Record<string, string>;
    t.is(cm.metadata.labels?.["serviceradar.io/tenant"], slug);
    t.is(data.TENANT_SLUG, slug);
    t.is(data.NATS_SUBJECT_PREFIX, `${slug}.`);
    t.is(data.NATS_URL, slug === "globex" ? "tls://globex.example.com:4222" : "tls://tg-tenant-gateway.serviceradar.svc:4222");
    const nats = YAML.parse(data["nats.yaml"]!) as { streams: Record<string, string[]>; subjects: { publish: string[] }; tenant: string };
    t.deepEqual(nats.streams, expectedStreams, "the chart's defaults are the built-in stream templates (tenant-gateway streams templates)");
    t.is(nats.tenant, slug);
    for (const subject of Object.values(nats.streams).flat()) t.true(nats.subjects.publish.includes(subject), `${subject} may be published`);
    t.false(JSON.stringify(nats.subjects).includes(`${slug}.`), "subjects are in the edge view: never prefixed");
  }
});

test("the provisioning Job runs before the gateway, keeps the control plane out of the gateway and the API token out of the container that reads it", async (t) => {
  const objects = await renderChart(GATEWAY, { values: [path.join(CHARTS, GATEWAY, "ci", "production-values.yaml")] });
  const job = oneOf(objects, "Job");
  t.is(job.metadata.annotations?.["helm.sh/hook"], "pre-install,pre-upgrade");
  for (const kind of ["ServiceAccount", "Role", "RoleBinding", "ConfigMap"]) {
    const hooked = objects.find((o) => o.kind === kind && o.metadata.name === "tg-tenant-gateway-provisioning")!;
    t.is(hooked.metadata.annotations?.["helm.sh/hook"], "pre-install,pre-upgrade", kind);
    t.true(Number(hooked.metadata.annotations?.["helm.sh/hook-weight"]) < Number(job.metadata.annotations?.["helm.sh/hook-weight"]), `${kind} before the Job`);
  }
  const spec = podSpec(job);
  t.false(spec.automountServiceAccountToken);
  const provision = spec.initContainers!.find((c) => c.name === "provision")!;
  const publish = spec.containers.find((c) => c.name === "publish")!;
  const claim = spec.volumes!.find((v) => v.persistentVolumeClaim)!;
  t.is(claim.persistentVolumeClaim!.claimName, "tenant-gateway-control-plane");
  t.true(provision.volumeMounts!.some((m) => m.name === claim.name), "the provision container mounts the control plane");
  t.false(publish.volumeMounts!.some((m) => m.name === claim.name), "the publisher does not");
  const token = spec.volumes!.find((v) => v.projected?.sources.some((s) => s.serviceAccountToken))!;
  t.true(publish.volumeMounts!.some((m) => m.name === token.name && m.mountPath === "/var/run/secrets/kubernetes.io/serviceaccount"));
  t.false(provision.volumeMounts!.some((m) => m.name === token.name), "the container with the CA keys has no API token");
  const { spec: gw } = gatewayPod(objects);
  t.false((gw.volumes ?? []).some((v) => v.persistentVolumeClaim), "the gateway pods never mount the control plane");

  const role = oneOf(objects, "Role");
  const rules = role.rules as Array<{ verbs: string[]; resourceNames?: string[]; resources: string[] }>;
  const named = rules.find((r) => r.resourceNames)!;
  const mounted = [...new Set(dataVolume(gw).projected!.sources.map((s) => s.secret!.name))];
  const caSecrets = ["acme-corp", "globex", "initech"].map((s) => `tenant-${s}-ca`);
  t.deepEqual([...named.resourceNames!].sort(), [...mounted, ...caSecrets].sort(), "the Job may write the Secrets the gateway mounts (and the CA Secrets it publishes), no others");
  t.deepEqual(named.verbs.sort(), ["get", "patch"]);
  t.true(rules.every((r) => r.resources.length === 1 && r.resources[0] === "secrets"));
});

test("the provisioning Job's script creates and updates the declared tenants on a real control plane, and its publisher applies the Secrets the gateway mounts", async (t) => {
  const objects = await renderChart(GATEWAY, { values: [path.join(CHARTS, GATEWAY, "ci", "production-values.yaml")] });
  const job = oneOf(objects, "Job");
  const spec = podSpec(job);
  const provision = spec.initContainers!.find((c) => c.name === "provision")!;
  const publish = spec.containers.find((c) => c.name === "publish")!;
  const scripts = (oneOf(objects, "ConfigMap", "tg-tenant-gateway-provisioning").data as Record<string, string>);
  t.is(scripts["provision.sh"], await fs.readFile(path.join(CHARTS, GATEWAY, "files", "provision.sh"), "utf8"));
  const dir = tempDir("ntg-helm-job-");
  for (const [name, text] of Object.entries(scripts)) await fs.writeFile(path.join(dir, name), text);

  // A control plane of its own (the Job changes tenants), on the test's NATS.
  const jobControl = new DataLayout(path.join(dir, "control"));
  await initDataDir(jobControl, { natsPort: -1 });
  const jobNats = await startNatsServer(new NatsFiles(jobControl).serverConfig);
  t.teardown(() => jobNats.stop());
  const exportRoot = path.join(dir, "export");
  await fs.mkdir(exportRoot);
  // The container's paths, made local: /control, /export, /scripts; NATS; the CLI of this checkout.
  const local = (value: string): string => value.replaceAll("/control", jobControl.dir).replaceAll("/export", exportRoot).replaceAll("/scripts", dir);
  const provisionEnv = Object.fromEntries(Object.entries(envOf(provision)).map(([k, v]) => [k, local(v)]));
  t.is(provisionEnv.TENANTS, "acme-corp:pro:active globex:enterprise:active initech:free:suspended");
  const run = (env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> =>
    runFile(provision.command![0]!, provision.command!.slice(1).map(local), { ...NO_ENV, ...provisionEnv, TENANT_GATEWAY_NATS: jobNats.url, TENANT_GATEWAY_CLI: path.join(PROJECT_ROOT, "bin", "tenant-gateway.js"), ...env });

  const first = await run();
  t.is(first.code, 0, first.stderr);
  const show = async (slug: string): Promise<{ plan: string; status: string; name: string }> => (await runCliJson<{ plan: string; status: string; name: string }>(["tenant", "show", slug, "--data-dir", jobControl.dir], NO_ENV)).json;
  t.like(await show("acme-corp"), { plan: "pro", status: "active", name: "Acme Corp" });
  t.like(await show("globex"), { plan: "enterprise", status: "active", name: "Globex Corporation" });
  t.like(await show("initech"), { plan: "free", status: "suspended" });
  for (const name of ["admin", "db-writer"]) await t.notThrowsAsync(fs.access(jobControl.platformIdentity(name).cert), `platform identity ${name}`);

  const again = await run({ TENANTS: "acme-corp:free:active globex:enterprise:active initech:free:active" });
  t.is(again.code, 0, again.stderr);
  t.regex(again.stdout, /tenant globex: exists/);
  t.like(await show("acme-corp"), { plan: "free", status: "active" });
  t.like(await show("initech"), { status: "active" }, "a declared status change resumes the tenant");
  const bad = await run({ TENANTS: "acme-corp:pro:paused" });
  t.is(bad.code, 2);
  t.regex(bad.stderr, /status must be active or suspended/);

  const api = await startFakeKubeApi(dir);
  t.teardown(() => api.stop());
  const publishEnv = Object.fromEntries(Object.entries(envOf(publish)).map(([k, v]) => [k, local(v)]));
  const published = await runFile(publish.command![0]!, publish.command!.slice(1).map(local), {
    ...publishEnv,
    APP_DIR: PROJECT_ROOT,
    K8S_API_URL: api.url,
    K8S_CA_FILE: api.caFile,
    K8S_TOKEN_FILE: api.tokenFile,
    K8S_NAMESPACE: "serviceradar",
  });
  t.is(published.code, 0, published.stderr);
  const role = oneOf(objects, "Role");
  const allowed = (role.rules as Array<{ resourceNames?: string[] }>).find((r) => r.resourceNames)!.resourceNames!;
  t.deepEqual(api.applied.map((a) => a.body.metadata.name).sort(), [...allowed].sort(), "exactly the Secrets the Role allows");
  for (const a of api.applied) {
    t.is(a.method, "PATCH");
    t.is(a.contentType, "application/apply-patch+yaml", "server-side apply: created or updated");
    t.is(a.query.get("fieldManager"), "tenant-gateway-provisioning");
    t.is(a.path, `/api/v1/namespaces/serviceradar/secrets/${a.body.metadata.name}`);
  }
  // What the publisher applied is what the gateway pods mount, and what kubectl makes of the export.
  const secrets = new Map(api.applied.map((a) => [a.body.metadata.name, new Map(Object.entries(a.body.data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, "base64")]))]));
  const mount = path.join(dir, "mount");
  await fs.mkdir(mount);
  const mounted = await materialiseProjectedVolume(mount, dataVolume(gatewayPod(objects).spec), { secrets });
  t.deepEqual(mounted, (await filesUnder(path.join(exportRoot, "dataplane"))).filter((f) => f !== "nats/url"));
  const caNames = new Set(["acme-corp", "globex", "initech"].map((slug) => `tenant-${slug}-ca`));
  const ca = api.applied.find((a) => a.body.metadata.name === "tenant-acme-corp-ca")!.body;
  t.is(ca.type, "kubernetes.io/tls");
  t.deepEqual(Object.keys(ca.data as object).sort(), ["ca.crt", "tls.crt", "tls.key"], "the CA Secret for cert-manager (never mounted by the gateway)");
  t.is(new X509Certificate(Buffer.from((ca.data as Record<string, string>)["tls.crt"]!, "base64")).subject.split("\n").find((l) => l.startsWith("CN=")), "CN=tenant-acme-corp.ca.serviceradar");

  // --print gives the same Secrets as a List for kubectl apply.
  const printed = await runFile(process.execPath, [path.join(dir, "publish-secrets.mjs"), path.join(exportRoot, "dataplane"), "--print"], { ...publishEnv, APP_DIR: PROJECT_ROOT, CA_SECRETS_DIR: "" });
  t.is(printed.code, 0, printed.stderr);
  const list = JSON.parse(printed.stdout) as { kind: string; items: K8sObject[] };
  t.is(list.kind, "List");
  t.deepEqual(list.items.map((i) => i.metadata.name).sort(), allowed.filter((n) => !caNames.has(n)).sort());
});

test("the edge chart mounts the component's certificate and config where its config says, with the onboarding package's names", async (t) => {
  for (const values of await ciValues(EDGE)) {
    const objects = await renderChart(EDGE, { values: [values] });
    const v = YAML.parse(await fs.readFile(values, "utf8")) as { tenant: string; component: string; partition: string; type: string; config: { existingConfigMap?: string } };
    const name = `${v.type}-${v.component}-${v.partition}`;
    const spec = podSpec(oneOf(objects, "Deployment", name));
    const container = spec.containers[0]!;
    t.true(spec.securityContext?.runAsNonRoot, values);
    t.false(spec.automountServiceAccountToken, values);
    const certs = spec.volumes!.find((vol) => vol.name === "certs")!;
    const projected = certs.projected!.sources.flatMap((s) => (s.secret ?? s.configMap)!.items!.map((i) => i.path)).sort();
    t.deepEqual(projected, ["ca-chain.pem", "component-key.pem", "component.pem"], "the package's certs/ layout");
    t.is(certs.projected!.sources[0]!.secret!.name, `${name}-tls`, "the Secret an onboarding package's kubernetes/secret.yaml creates");
    const mounts = Object.fromEntries(container.volumeMounts!.map((m) => [m.name, m.mountPath]));
    t.is(mounts.certs, `${container.workingDir}/certs`);
    t.is(mounts.config, `${container.workingDir}/config`);
    t.deepEqual(container.args, ["--config", "config/config.yaml"]);
    t.is(container.envFrom![0]!.configMapRef!.name, `tenant-${v.tenant}-nats`, "the gateway chart's tenant ConfigMap, when there");
    const configVolume = spec.volumes!.find((vol) => vol.name === "config")!;
    if (v.config.existingConfigMap) {
      t.is(configVolume.configMap!.name, v.config.existingConfigMap);
      t.deepEqual(objectsOf(objects, "ConfigMap"), []);
      continue;
    }
    const config = YAML.parse((oneOf(objects, "ConfigMap", configVolume.configMap!.name).data as Record<string, string>)["config.yaml"]!) as { component: { identity: string }; nats: { tls: Record<string, string> } };
    t.deepEqual(Object.values(config.nats.tls).sort(), ["certs/ca-chain.pem", "certs/component-key.pem", "certs/component.pem"], "config paths relative to the working directory");
    t.is(config.component.identity, edgeCommonName(v.tenant, v.component, v.partition));
  }
});

test("the edge chart's cert-manager Certificate carries the names `pki issue` gives, which the gateway's CN rule accepts", async (t) => {
  const objects = await renderChart(EDGE, { values: [path.join(CHARTS, EDGE, "ci", "cert-manager-values.yaml")] });
  const cert = oneOf(objects, "Certificate").spec as { commonName: string; dnsNames: string[]; uris: string[]; usages: string[]; secretName: string; issuerRef: { name: string }; privateKey: { size: number } };
  t.deepEqual(parseCommonName(cert.commonName), { kind: "edge", tenant: "globex", component: "agent-001", partition: "partition-1" });
  const issued = await issueComponentFiles(control, { tenant: "globex", component: "agent-001", partition: "partition-1" });
  const x509 = new X509Certificate(await fs.readFile(issued.files.cert));
  const sans = x509.subjectAltName!.split(", ");
  t.deepEqual([...cert.dnsNames.map((d) => `DNS:${d}`), ...cert.uris.map((u) => `URI:${u}`)].sort(), sans.sort(), "the same SANs as a certificate `pki issue` makes");
  t.true(cert.usages.includes("client auth") && cert.usages.includes("server auth"));
  t.is(cert.issuerRef.name, "tenant-globex-ca", "the gateway chart's Issuer of that tenant");
  t.is(cert.privateKey.size, 2048);
  const spec = podSpec(oneOf(objects, "Deployment"));
  t.is(spec.volumes!.find((v) => v.name === "certs")!.projected!.sources[0]!.secret!.name, cert.secretName);
  t.is(spec.volumes!.find((v) => v.name === "certs")!.projected!.sources[1]!.configMap!.name, "tenant-globex-nats", "the root from the tenant ConfigMap: cert-manager's ca.crt is the tenant CA");
});

test("the edge chart's default subjects are the onboarding packages' for each type", async (t) => {
  for (const type of ["agent", "poller", "checker", "collector"]) {
    const objects = await renderChart(EDGE, { setJson: [`tenant="acme-corp"`, `component="c-01"`, `partition="p-1"`, `type="${type}"`, `image={"repository":"example/x"}`, `config={"gatewayUrl":"tls://gateway:4222"}`] });
    const rendered = YAML.parse((oneOf(objects, "ConfigMap").data as Record<string, string>)["config.yaml"]!) as { subjects: unknown };
    const files = await bundleFiles({
      packageId: "p",
      createdAt: "now",
      tenant: "acme-corp",
      component: "c-01",
      partition: "p-1",
      cn: edgeCommonName("acme-corp", "c-01", "p-1"),
      profile: bundleProfile(type),
      gatewayUrl: "tls://gateway:4222",
      certPem: "cert",
      keyPem: "key",
      caChainPem: "chain",
      certSerial: "01",
      certNotAfter: "later",
      streams: [],
    });
    const bundle = YAML.parse(files.find((f) => f.path === "config/config.yaml")!.data.toString()) as { subjects: unknown };
    t.deepEqual(rendered.subjects, bundle.subjects, type);
  }
});

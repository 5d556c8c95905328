// The provisioning Job's last step: the data-plane export (`tenant-gateway export dataplane`) as the
// Secrets the gateway pods mount, applied through the Kubernetes API (server-side apply: created or
// brought up to date).
//
//   node publish-secrets.mjs <export-dir> [--print]
//
// The Secrets follow the rule the docs give for kubectl (`create secret generic --from-file=<dir>/`:
// each regular file of a directory, named by its base name):
//   $PLATFORM_SECRET           <export>/ (root.pem), <export>/platform/, <export>/nats/, and
//                              <export>/registry/platform/ when there (the platform's trust state)
//   $TENANT_SECRETS            "slug=name …": <export>/tenants/<slug>/ as Secret <name>; tenants of
//                              the export not listed are not published
//   $CA_SECRETS_DIR            optional: <slug>.yaml manifests (`tenant-gateway pki k8s-secret`) of
//                              the tenants listed, applied as they are
// --print writes them as a JSON List instead (kubectl apply -f - takes it). In the cluster it uses
// the pod's service account (token, CA and namespace under /var/run/secrets/kubernetes.io/serviceaccount);
// K8S_API_URL, K8S_TOKEN_FILE, K8S_CA_FILE and K8S_NAMESPACE say otherwise.

import { promises as fs } from "node:fs";
import https from "node:https";
import { createRequire } from "node:module";
import path from "node:path";

// The image's own yaml package (APP_DIR: where the gateway is installed, /app in the image).
const YAML = createRequire(path.join(process.env.APP_DIR ?? "/app", "package.json"))("yaml");
const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
const FIELD_MANAGER = "tenant-gateway-provisioning";

function usage(message) {
  console.error(`error: ${message}\nusage: node publish-secrets.mjs <export-dir> [--print]`);
  process.exit(2);
}

/** kubectl's --from-file=<dir>/: each regular file (symlinks followed), keyed by its base name. */
async function filesOf(dir, into, source) {
  for (const entry of (await fs.readdir(dir)).sort()) {
    const file = path.join(dir, entry);
    if (!(await fs.stat(file)).isFile()) continue;
    if (into.has(entry)) throw new Error(`${file} and ${source.get(entry)} would both be key ${entry}`);
    into.set(entry, (await fs.readFile(file)).toString("base64"));
    source.set(entry, file);
  }
}

function secret(name, namespace, labels, data) {
  return { apiVersion: "v1", kind: "Secret", metadata: { name, ...(namespace ? { namespace } : {}), labels }, type: "Opaque", data: Object.fromEntries(data) };
}

async function buildSecrets(exportDir, namespace) {
  const platformName = process.env.PLATFORM_SECRET || usage("PLATFORM_SECRET names the platform part's Secret");
  const tenants = (process.env.TENANT_SECRETS ?? "").split(/\s+/).filter(Boolean).map((pair) => {
    const [slug, name] = pair.split("=");
    if (!slug || !name) usage(`TENANT_SECRETS entries are slug=name, not ${JSON.stringify(pair)}`);
    return { slug, name };
  });
  const managed = { "app.kubernetes.io/managed-by": FIELD_MANAGER };
  const platform = new Map();
  const source = new Map();
  for (const dir of [exportDir, path.join(exportDir, "platform"), path.join(exportDir, "nats")]) await filesOf(dir, platform, source);
  const trust = path.join(exportDir, "registry", "platform");
  if (await fs.stat(trust).then((s) => s.isDirectory(), () => false)) await filesOf(trust, platform, source);
  const secrets = [secret(platformName, namespace, { ...managed, "app.kubernetes.io/component": "gateway-dataplane" }, platform)];
  const exported = new Set(await fs.readdir(path.join(exportDir, "tenants")).catch(() => []));
  for (const { slug, name } of tenants) {
    if (!exported.has(slug)) throw new Error(`tenant ${slug} is not in the export ${exportDir}: was it created?`);
    const data = new Map();
    await filesOf(path.join(exportDir, "tenants", slug), data, new Map());
    secrets.push(secret(name, namespace, { ...managed, "app.kubernetes.io/component": "tenant-dataplane", "serviceradar.io/tenant": slug }, data));
  }
  const skipped = [...exported].filter((slug) => !tenants.some((t) => t.slug === slug));
  if (skipped.length > 0) console.error(`not published (not declared): ${skipped.join(", ")}`);
  if (process.env.CA_SECRETS_DIR) {
    for (const { slug } of tenants) {
      const file = path.join(process.env.CA_SECRETS_DIR, `${slug}.yaml`);
      const doc = YAML.parse(await fs.readFile(file, "utf8"));
      if (doc?.kind !== "Secret" || !doc.metadata?.name) throw new Error(`${file} is not a Secret manifest`);
      doc.metadata.labels = { ...doc.metadata.labels, ...managed };
      if (namespace) doc.metadata.namespace = namespace;
      secrets.push(doc);
    }
  }
  return secrets;
}

function apply(api, object) {
  const url = new URL(`/api/v1/namespaces/${object.metadata.namespace}/secrets/${object.metadata.name}?fieldManager=${FIELD_MANAGER}&force=true`, api.url);
  const body = JSON.stringify(object);
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: "PATCH", ca: api.ca, headers: { authorization: `Bearer ${api.token}`, "content-type": "application/apply-patch+yaml", "content-length": Buffer.byteLength(body) } }, (res) => {
      let text = "";
      res.on("data", (c) => (text += c));
      res.on("end", () => (res.statusCode >= 200 && res.statusCode < 300 ? resolve(res.statusCode) : reject(new Error(`apply Secret ${object.metadata.name}: HTTP ${res.statusCode} ${text.slice(0, 500)}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const args = process.argv.slice(2);
const exportDir = args.find((a) => !a.startsWith("--")) ?? usage("the export dir is missing");
const print = args.includes("--print");
const namespace = process.env.K8S_NAMESPACE ?? (print ? undefined : (await fs.readFile(path.join(SA_DIR, "namespace"), "utf8")).trim());
const secrets = await buildSecrets(exportDir, namespace);
if (print) {
  process.stdout.write(`${JSON.stringify({ apiVersion: "v1", kind: "List", items: secrets }, null, 2)}\n`);
} else {
  const api = {
    url: process.env.K8S_API_URL ?? `https://${process.env.KUBERNETES_SERVICE_HOST}:${process.env.KUBERNETES_SERVICE_PORT}`,
    token: (await fs.readFile(process.env.K8S_TOKEN_FILE ?? path.join(SA_DIR, "token"), "utf8")).trim(),
    ca: await fs.readFile(process.env.K8S_CA_FILE ?? path.join(SA_DIR, "ca.crt")),
  };
  for (const object of secrets) {
    await apply(api, object);
    console.log(`secret ${object.metadata.name}: applied (${Object.keys(object.data).length} keys)`);
  }
}

/**
 * What the deployment tests need around the artefacts: the pinned helm (scripts/helm.sh), rendered
 * manifests as objects, the Secrets `kubectl create secret generic --from-file=<dir>/` makes of a
 * data-plane export, a projected volume laid out as the kubelet lays it out (`..data` symlinks),
 * and a stand-in for the Kubernetes API that records what is applied to it.
 */
import { execFileSync } from "node:child_process";
import { accessSync, constants, promises as fs } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import YAML from "yaml";
import { PROJECT_ROOT, runFile, type CliResult } from "./cli.ts";

export const CHARTS = path.join(PROJECT_ROOT, "deploy", "helm");
/** The Kubernetes version the charts render for (helm built by `go install` defaults to 1.20). */
export const KUBE_VERSION = "1.30.0";

let helmPath: string | undefined;

/** HELM_BIN, else the pinned helm scripts/helm.sh installs; an error naming the install command otherwise. */
export function helmBinary(): string {
  if (helmPath) return helmPath;
  const candidate = process.env.HELM_BIN || execFileSync(path.join(PROJECT_ROOT, "scripts", "helm.sh"), ["path"], { encoding: "utf8" }).trim();
  try {
    accessSync(candidate, constants.X_OK);
  } catch {
    throw new Error(`helm is not installed at ${candidate}: run scripts/helm.sh install (or set HELM_BIN)`);
  }
  helmPath = candidate;
  return candidate;
}

export function helm(args: string[]): Promise<CliResult> {
  return runFile(helmBinary(), args, { HELM_CACHE_HOME: path.join(PROJECT_ROOT, ".tmp", "helm-cache"), HELM_CONFIG_HOME: path.join(PROJECT_ROOT, ".tmp", "helm-config") });
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // Everything else is read through the typed accessors of each test.
  [field: string]: unknown;
}

export interface RenderOptions {
  values?: string[];
  setJson?: string[];
  release?: string;
  namespace?: string;
}

/** `helm template` of a chart (its directory under deploy/helm), parsed; throws with helm's stderr when it refuses. */
export async function renderChart(chart: string, opts: RenderOptions = {}): Promise<K8sObject[]> {
  const r = await helm(templateArgs(chart, opts));
  if (r.code !== 0) throw new Error(`helm template ${chart} failed: ${r.stderr}`);
  return YAML.parseAllDocuments(r.stdout)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

export function templateArgs(chart: string, opts: RenderOptions = {}): string[] {
  return [
    "template",
    opts.release ?? "tg",
    path.join(CHARTS, chart),
    "--namespace",
    opts.namespace ?? "serviceradar",
    "--kube-version",
    KUBE_VERSION,
    ...(opts.values ?? []).flatMap((v) => ["--values", v]),
    ...(opts.setJson ?? []).flatMap((s) => ["--set-json", s]),
  ];
}

export function objectsOf(objects: K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

export function oneOf(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ""}, rendered ${found.length}: ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(", ")}`);
  return found[0]!;
}

/** The parts of a pod spec the tests read. */
export interface KeyToPath {
  key: string;
  path: string;
}
export interface VolumeProjection {
  secret?: { name: string; items?: KeyToPath[]; optional?: boolean };
  configMap?: { name: string; items?: KeyToPath[]; optional?: boolean };
  serviceAccountToken?: { path: string };
  downwardAPI?: { items: Array<{ path: string }> };
}
export interface Volume {
  name: string;
  projected?: { defaultMode?: number; sources: VolumeProjection[] };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number };
  configMap?: { name: string; items?: KeyToPath[] };
  persistentVolumeClaim?: { claimName: string };
  emptyDir?: Record<string, unknown>;
}
export interface HttpProbe {
  httpGet: { path: string; port: string | number; scheme?: string };
  periodSeconds?: number;
  failureThreshold?: number;
}
export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: Array<{ name: string; value?: string }>;
  envFrom?: Array<{ configMapRef?: { name: string; optional?: boolean } }>;
  ports?: Array<{ name: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string }>;
  startupProbe?: HttpProbe;
  livenessProbe?: HttpProbe;
  readinessProbe?: HttpProbe;
  securityContext?: Record<string, unknown>;
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number; fsGroup?: number };
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
}

export function podSpec(workload: K8sObject): PodSpec {
  return (workload.spec as { template: { spec: PodSpec } }).template.spec;
}

export function envOf(container: Container): Record<string, string> {
  return Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? ""]));
}

export type SecretData = Map<string, Buffer>;

/** kubectl create secret generic --from-file=<dir>/: each regular file of the directory (symlinks followed), by base name. */
export async function secretFromDirs(dirs: string[]): Promise<SecretData> {
  const data: SecretData = new Map();
  for (const dir of dirs) {
    for (const entry of (await fs.readdir(dir)).sort()) {
      const file = path.join(dir, entry);
      if (!(await fs.stat(file)).isFile()) continue;
      if (data.has(entry)) throw new Error(`two files would be key ${entry} (kubectl refuses that too)`);
      data.set(entry, await fs.readFile(file));
    }
  }
  return data;
}

/** kubectl create secret generic --from-file=<file>: one key, the file's base name. */
export async function addFile(data: SecretData, file: string): Promise<SecretData> {
  data.set(path.basename(file), await fs.readFile(file));
  return data;
}

/**
 * Writes a projected volume the way the kubelet does: the files in a timestamped directory,
 * `..data` pointing at it, and a symlink per top-level entry into `..data`; file modes from
 * defaultMode. A missing Secret, or a key an item names that the Secret lacks, fails as the pod's
 * mount would. Returns the files as the container sees them (relative paths).
 */
export async function materialiseProjectedVolume(dir: string, volume: Volume, sources: { secrets: Map<string, SecretData>; configMaps?: Map<string, SecretData> }): Promise<string[]> {
  if (!volume.projected) throw new Error(`volume ${volume.name} is not projected`);
  const stamp = "..2026_01_01_00_00_00.000000001";
  const real = path.join(dir, stamp);
  const files: string[] = [];
  const mode = volume.projected.defaultMode ?? 0o644;
  for (const source of volume.projected.sources) {
    const ref = source.secret ?? source.configMap;
    if (!ref) continue;
    const kind = source.secret ? "Secret" : "ConfigMap";
    const data = (source.secret ? sources.secrets : (sources.configMaps ?? new Map<string, SecretData>())).get(ref.name);
    if (!data) {
      if (ref.optional) continue;
      throw new Error(`${kind} ${ref.name} does not exist: the pod would not start (volume ${volume.name})`);
    }
    const items = ref.items ?? [...data.keys()].map((key) => ({ key, path: key }));
    for (const item of items) {
      const value = data.get(item.key);
      if (value === undefined) {
        if (ref.optional) continue;
        throw new Error(`${kind} ${ref.name} has no key ${item.key}: the pod would not start (volume ${volume.name})`);
      }
      if (files.includes(item.path)) throw new Error(`two sources project ${item.path} (volume ${volume.name})`);
      const target = path.join(real, item.path);
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.writeFile(target, value, { mode });
      await fs.chmod(target, mode);
      files.push(item.path);
    }
  }
  await fs.mkdir(real, { recursive: true });
  await fs.symlink(stamp, path.join(dir, "..data"));
  for (const top of new Set(files.map((f) => f.split("/")[0]!))) await fs.symlink(path.join("..data", top), path.join(dir, top));
  return files.sort();
}

/** Every file under `dir` (following the kubelet's symlinks), relative, sorted; `..`-entries skipped. */
export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await fs.readdir(path.join(dir, rel))) {
      if (entry.startsWith("..")) continue;
      const relPath = rel ? `${rel}/${entry}` : entry;
      const stat = await fs.stat(path.join(dir, relPath));
      if (stat.isDirectory()) await walk(relPath);
      else out.push(relPath);
    }
  };
  await walk("");
  return out.sort();
}

export interface AppliedObject {
  method: string;
  path: string;
  query: URLSearchParams;
  contentType: string;
  authorization: string;
  body: K8sObject;
}

/** An HTTPS stand-in for the Kubernetes API that accepts server-side applies of Secrets and records them. */
export async function startFakeKubeApi(dir: string): Promise<{ url: string; caFile: string; tokenFile: string; token: string; applied: AppliedObject[]; stop: () => Promise<void> }> {
  const key = path.join(dir, "api-key.pem");
  const cert = path.join(dir, "api.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=kubernetes", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1"], { stdio: "ignore" });
  const token = "test-service-account-token";
  const tokenFile = path.join(dir, "token");
  await fs.writeFile(tokenFile, `${token}\n`);
  const applied: AppliedObject[] = [];
  const server = https.createServer({ key: await fs.readFile(key), cert: await fs.readFile(cert) }, (req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "https://127.0.0.1");
      const record: AppliedObject = { method: req.method ?? "", path: url.pathname, query: url.searchParams, contentType: req.headers["content-type"] ?? "", authorization: req.headers.authorization ?? "", body: JSON.parse(body || "{}") as K8sObject };
      applied.push(record);
      const ok = record.method === "PATCH" && record.authorization === `Bearer ${token}` && /^\/api\/v1\/namespaces\/[^/]+\/secrets\/[^/]+$/.test(record.path);
      res.writeHead(ok ? 200 : 403, { "content-type": "application/json" });
      res.end(JSON.stringify(ok ? record.body : { kind: "Status", status: "Failure", code: 403 }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    caFile: cert,
    tokenFile,
    token,
    applied,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** GET on the gateway's HTTP listener: the status, or the error code when nothing answers. */
export async function httpStatus(url: string): Promise<number | string> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
  }
}

/** Polls `check` until it returns true or `timeoutMs` passes (for endpoints, which have no events to await). */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

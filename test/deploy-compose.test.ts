/**
 * The compose set-up (docker/compose.yaml, docker/docker-compose.override.example.yml), the image
 * (docker/Dockerfile) and its build context (.dockerignore). There is no Docker engine here, so
 * the files are checked as documents — the Compose specification's schema, users, volumes, health
 * checks, restart policies, profiles, what the context lets through — and then every command in
 * them runs as written outside Docker: each service's command and environment, with the container
 * paths mapped to directories standing in for its volumes and the addresses made local (ports,
 * the `nats` and `gateway` host names), against the real CLI and a real nats-server, health checks
 * included.
 *
 * Not run here: docker build, docker compose up (the images, the engine's volume ownership, the
 * network between containers).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs, readFileSync } from "node:fs";
import path from "node:path";
import test from "ava";
import { Ajv } from "ajv";
import YAML from "yaml";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { natsServerBinary } from "../accounts/nats-server-process.ts";
import { jemallocLibrary } from "./helpers/allocator.ts";
import { PROJECT_ROOT, runFile } from "./helpers/cli.ts";
import { freePort } from "./helpers/cli-process.ts";
import { until } from "./helpers/deploy.ts";
import { tempDir } from "./helpers/tmp.ts";

const DOCKER = path.join(PROJECT_ROOT, "docker");
const COMPOSE = path.join(DOCKER, "compose.yaml");
const OVERRIDE = path.join(DOCKER, "docker-compose.override.example.yml");
const CLI = path.join(PROJECT_ROOT, "bin", "tenant-gateway.js");
const UID = "1000:1000";

type Command = string[];
interface Healthcheck {
  test: Command;
  interval?: string;
  retries?: number;
}
interface Service {
  image?: string;
  build?: unknown;
  command?: Command;
  entrypoint?: Command;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  user?: string;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  restart?: string;
  profiles?: string[];
  stop_grace_period?: string;
}
interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

function readYaml(file: string): unknown {
  return YAML.parse(readFileSync(file, "utf8"), { merge: true });
}

/** Compose's merge of an override: services and volumes by name, mappings key by key, lists replaced. */
function merge<T>(base: T, over: unknown): T {
  if (over === null || typeof over !== "object" || Array.isArray(over) || base === null || typeof base !== "object" || Array.isArray(base)) return over as T;
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = k in out ? merge(out[k], v) : v;
  return out as T;
}

/** `${VAR:-default}` and `${VAR}` as compose interpolates them. */
function interpolate<T>(value: T, env: Record<string, string | undefined>): T {
  if (typeof value === "string") return value.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => env[name] || fallback || "") as T;
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env)) as T;
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env)])) as T;
  return value;
}

const base = readYaml(COMPOSE) as ComposeFile;
const withOverride = merge(base, readYaml(OVERRIDE)) as ComposeFile;
const dockerfile = readFileSync(path.join(DOCKER, "Dockerfile"), "utf8");

/** The image's ENV lines (what every gateway-image service starts with). */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const m of dockerfile.matchAll(/^ENV\s+((?:[^\n]*\\\n)*[^\n]*)/gm)) {
    for (const pair of m[1]!.replace(/\\\n/g, " ").trim().split(/\s+/)) {
      const [k, ...v] = pair.split("=");
      env[k!] = v.join("=");
    }
  }
  return env;
}

function usesGatewayImage(s: Service): boolean {
  return s.image === "nats-tenant-gateway:dev";
}

test("the compose files are valid Compose documents (the Compose specification's schema), alone and with the override", (t) => {
  // compose-spec/compose-spec schema/compose-spec.json (Apache-2.0), vendored as a test fixture.
  const schema = JSON.parse(readFileSync(path.join(PROJECT_ROOT, "test", "fixtures", "compose-spec.json"), "utf8")) as object;
  const validate = new Ajv({ strict: false, allErrors: true, validateSchema: false }).compile(schema);
  for (const [name, doc] of [["compose.yaml", base], ["docker-compose.override.example.yml", readYaml(OVERRIDE)], ["both", withOverride]] as const) {
    t.true(validate(doc), `${name}: ${JSON.stringify(validate.errors?.slice(0, 5))}`);
  }
});

test("every service runs as the unprivileged user 1000:1000, as the image does, so one step's files (keys 0600) are the next one's", (t) => {
  const userLines = [...dockerfile.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]);
  t.is(userLines.at(-1), UID, "the image's user, by number (Kubernetes runAsNonRoot can check it)");
  t.regex(dockerfile, /mkdir -p \/data \/export && chown 1000:1000 \/data \/export/, "the volumes' mount points belong to that user, so new volumes do");
  for (const [name, s] of Object.entries(withOverride.services)) {
    if (usesGatewayImage(s)) t.true(s.user === undefined || s.user === UID, `${name} keeps the image's user`);
    else t.is(s.user, UID, `${name} runs as ${UID}`);
    t.false(/^(0|root)(:|$)/.test(s.user ?? ""), `${name} is not root`);
  }
});

test("start order does not matter: every dependency has a condition, one-shot steps complete, long-running services have health checks and restart", (t) => {
  const services = withOverride.services;
  for (const [name, s] of Object.entries(services)) {
    const oneShot = s.restart === "no";
    if (!oneShot && !s.profiles?.includes("cli")) {
      t.is(s.restart, "unless-stopped", `${name} restarts`);
      t.truthy(s.healthcheck?.test?.length, `${name} has a health check`);
    }
    for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
      const target = services[dep];
      t.truthy(target, `${name} depends on ${dep}, which exists`);
      if (condition === "service_completed_successfully") t.is(target!.restart, "no", `${name} waits for ${dep} to complete: a one-shot step`);
      else {
        t.is(condition, "service_healthy", `${name} → ${dep}`);
        t.truthy(target!.healthcheck, `${name} waits for ${dep} to be healthy: it has a health check`);
      }
      for (const profile of target!.profiles ?? []) t.true(s.profiles?.includes(profile), `${name} (profiles ${s.profiles ?? "none"}) may not depend on ${dep}, only in profile ${profile}`);
    }
  }
  const order: string[] = [];
  const visit = (name: string, path: string[]): void => {
    t.false(path.includes(name), `no cycle: ${[...path, name].join(" → ")}`);
    if (order.includes(name) || path.includes(name)) return;
    for (const dep of Object.keys(services[name]!.depends_on ?? {})) visit(dep, [...path, name]);
    order.push(name);
  };
  for (const name of Object.keys(services)) visit(name, []);
  t.true(order.indexOf("init") < order.indexOf("nats") && order.indexOf("nats") < order.indexOf("provision") && order.indexOf("provision") < order.indexOf("gateway"));
  const grace = Number(/^(\d+)s$/.exec(services.gateway!.stop_grace_period ?? "")?.[1]);
  t.true(grace * 1000 > Number(services.gateway!.environment!.TENANT_GATEWAY_DRAIN_TIMEOUT_MS), "docker stop waits longer than the gateway's drain");
});

test("the NATS image is pinned to a nats-server version the test suite runs against", (t) => {
  const versions = readFileSync(path.join(PROJECT_ROOT, "scripts", "versions.env"), "utf8");
  const pinned = [...versions.matchAll(/^(?:DEBIAN|NEWEST)_NATS_SERVER=v?(\S+)/gm)].map((m) => m[1]!);
  const image = base.services.nats!.image!;
  const m = /^nats:(\d+\.\d+\.\d+)-alpine(@sha256:[a-f0-9]{64})?$/.exec(image);
  t.truthy(m, `${image} names an exact version`);
  t.true(pinned.includes(m![1]!), `${image} is one of ${pinned.join(", ")} (scripts/versions.env)`);
});

test("volumes: the gateway mounts only the data-plane export, read-only; each edge component only its own bundle; the full data dir only the set-up steps, the cli and NATS", (t) => {
  const services = withOverride.services;
  t.deepEqual(services.gateway!.volumes, ["dataplane:/data:ro"]);
  for (const [name, s] of Object.entries(services)) {
    const named = (s.volumes ?? []).map((v) => v.split(":")).filter(([src]) => !src!.startsWith("."));
    if (name.startsWith("edge-")) {
      const slug = name.slice("edge-".length);
      t.deepEqual(named.map((v) => v.join(":")), [`edge-${slug}:/edge:ro`], `${name} sees its own bundle only`);
    }
    if (named.some(([src]) => src === "data")) t.true(["init", "nats", "provision", "cli"].includes(name) || name.startsWith("enroll-"), `${name} mounts the full data dir`);
    for (const [src] of named) t.truthy(withOverride.volumes?.[src!], `${name}: volume ${src} is declared`);
    for (const bind of (s.volumes ?? []).filter((v) => v.startsWith("."))) {
      const [src, , mode] = bind.split(":");
      t.is(mode, "ro", `${name}: ${bind} is read-only`);
      t.notThrows(() => readFileSync(path.resolve(DOCKER, src!)), `${name}: ${src} exists`);
    }
  }
});

test("per-tenant profiles: tenant-<slug> enrolls and runs one edge component of <slug>, which TENANTS provisions", (t) => {
  const check = (file: ComposeFile, expected: string[]): void => {
    const profiles = new Set(Object.values(file.services).flatMap((s) => s.profiles ?? []).filter((p) => p.startsWith("tenant-")));
    t.deepEqual([...profiles].sort(), expected.map((s) => `tenant-${s}`));
    const tenants = interpolate(file.services.provision!.environment!.TENANTS!, {}).split(/\s+/).map((e) => e.split(":")[0]);
    for (const slug of expected) {
      t.true(tenants.includes(slug), `${slug} is provisioned`);
      const enroll = file.services[`enroll-${slug}`]!;
      const edge = file.services[`edge-${slug}`]!;
      t.deepEqual(enroll.profiles, [`tenant-${slug}`]);
      t.deepEqual(edge.profiles, [`tenant-${slug}`]);
      t.is(enroll.entrypoint![2], slug, "the enrolled component belongs to the profile's tenant");
      t.truthy(edge.depends_on?.[`enroll-${slug}`]);
      t.truthy(edge.depends_on?.gateway);
    }
  };
  check(base, ["acme-corp"]);
  check(withOverride, ["acme-corp", "globex"]);
});

const GLOBSTAR = "GLOBSTAR";

/** .dockerignore as Docker reads it: last matching pattern wins, `!` re-includes, a pattern matching a parent directory matches. */
function dockerignore(text: string): (rel: string) => boolean {
  const rules = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const exclusion = l.startsWith("!");
      const pattern = path.posix.normalize((exclusion ? l.slice(1) : l).replace(/^\//, ""));
      const re = pattern
        .split("/")
        .map((seg) => (seg === "**" ? GLOBSTAR : seg.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")))
        .join("/")
        .replace(new RegExp(`^${GLOBSTAR}/`), "(?:.*/)?")
        .replace(new RegExp(`/${GLOBSTAR}$`), "(?:/.*)?")
        .replaceAll(`/${GLOBSTAR}/`, "/(?:.*/)?")
        .replaceAll(GLOBSTAR, ".*");
      return { exclusion, re: new RegExp(`^${re}$`) };
    });
  return (rel) => {
    const parents = rel.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const rule of rules) if (parents.some((p) => rule.re.test(p))) excluded = !rule.exclusion;
    return excluded;
  };
}

test(".dockerignore sends the sources the build compiles and nothing else: no node_modules, dist, data dirs, keys or git history", async (t) => {
  const excluded = dockerignore(await fs.readFile(path.join(PROJECT_ROOT, ".dockerignore"), "utf8"));
  const buildDirs = (JSON.parse(await fs.readFile(path.join(PROJECT_ROOT, "tsconfig.build.json"), "utf8")) as { include: string[] }).include;
  const tracked = (await runFile("git", ["-C", PROJECT_ROOT, "ls-files", "--cached", "--others", "--exclude-standard"])).stdout.split("\n").filter(Boolean);
  for (const dir of buildDirs) {
    const files = tracked.filter((f) => f.startsWith(`${dir}/`));
    t.true(files.length > 0, `${dir} has files`);
    for (const f of files) t.false(excluded(f), `${f} (compiled by the build) reaches the builder`);
  }
  for (const f of ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "bin/tenant-gateway.js", "scripts/build.ts"]) t.false(excluded(f), f);
  for (const f of ["node_modules/nats/package.json", "dist/cli/main.js", "data/root-key.pem", "data/tenants/acme-corp/ca-key.pem", ".git/HEAD", "test/pki.test.ts", "bench/run.ts", "scripts/test.sh", "docker/compose.yaml", ".tmp/x", "accounts/tenants/acme-corp/ca-key.pem", "pki/fixtures/account.nk", "gateway/x.creds", "cli/master.key", "accounts/node_modules/x.js"]) {
    t.true(excluded(f), `${f} stays out of the build context`);
  }
  t.regex(dockerfile, /COPY \. \.\nRUN npm run build/, "the build stage copies the whole (filtered) context, so a new source directory needs only its .dockerignore line");
});

test("the image runs the compiled gateway as written: entrypoint, ports and the data dir the compose services use", (t) => {
  t.regex(dockerfile, /^ENTRYPOINT \["node", "\/app\/bin\/tenant-gateway\.js"\]$/m);
  t.regex(dockerfile, /^COPY --from=build \/src\/dist \.\/dist$/m, "the runtime stage runs dist/ (no sources: the launcher cannot fall back to tsx)");
  t.regex(dockerfile, /^EXPOSE 4222 8080$/m);
  t.is(imageEnv().TENANT_GATEWAY_DATA, "/data");
  // jemalloc preloaded (glibc's malloc keeps a crowd's TLS buffers), linked at the path LD_PRELOAD names.
  t.is(imageEnv().LD_PRELOAD, "/usr/local/lib/libjemalloc.so.2");
  t.regex(dockerfile, /apt-get install -y --no-install-recommends libjemalloc2 .*\n.*ln -s "\$\(dpkg -L libjemalloc2 \| grep [^)]*\)" \/usr\/local\/lib\/libjemalloc\.so\.2/);
  const published = base.services.gateway!.ports!.map((p) => Number(p.split(":").at(-1)));
  t.deepEqual(published, [4222, 8080]);
});

// ---- Everything the compose files run, outside Docker ----------------------------------------

/** One service as a local process would run it: its argv and environment with container paths and addresses mapped. */
interface LocalService {
  argv: string[];
  env: Record<string, string>;
}

function localService(name: string, file: ComposeFile, volumes: Record<string, string>, addresses: Array<[string, string]>, extraEnv: Record<string, string> = {}): LocalService {
  const s = interpolate(file.services[name]!, { TENANTS: undefined });
  // Longest container path first: /opt/tenant-gateway/provision.sh before /opt.
  const mounts = (s.volumes ?? [])
    .map((v) => v.split(":"))
    .map(([src, target]) => [target!, src!.startsWith(".") ? path.resolve(DOCKER, src!) : volumes[src!]!] as const)
    .sort((a, b) => b[0].length - a[0].length);
  if (usesGatewayImage(s)) mounts.push(["/app", PROJECT_ROOT] as const);
  const local = (value: string): string => {
    let v = value;
    for (const [from, to] of addresses) v = v.replaceAll(from, to);
    for (const [target, host] of mounts) if (v === target || v.startsWith(`${target}/`)) return host + v.slice(target.length);
    return v;
  };
  const entrypoint = s.entrypoint ?? (usesGatewayImage(s) ? ["node", "/app/bin/tenant-gateway.js"] : ["nats-server"]);
  const argv = [...entrypoint, ...(s.command ?? [])].map(local);
  if (argv[0] === "nats-server") argv[0] = natsServerBinary();
  const env = { ...(usesGatewayImage(s) ? imageEnv() : {}), ...(s.environment ?? {}) };
  // The image's jemalloc stands here as this machine's (the same Debian package).
  if ("LD_PRELOAD" in env) env.LD_PRELOAD = jemallocLibrary() ?? "";
  return { argv, env: { ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, local(String(v))])), TENANT_GATEWAY_CLI: CLI, APP_DIR: PROJECT_ROOT, TENANT_GATEWAY_NATS: "", TENANT_GATEWAY_CONFIG: "", ...extraEnv } };
}

function start(svc: LocalService): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(svc.argv[0]!, svc.argv.slice(1), { env: { ...process.env, ...svc.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
  return { child, output: () => out, exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))) };
}

async function run(svc: LocalService): Promise<{ code: number | null; output: string }> {
  const p = start(svc);
  const code = await p.exited;
  return { code, output: p.output() };
}

async function healthy(check: Healthcheck, addresses: Array<[string, string]>, env: Record<string, string>, mounts: (v: string) => string = (v) => v): Promise<boolean> {
  const [kind, ...argv] = check.test;
  if (kind !== "CMD") throw new Error(`health check ${check.test.join(" ")}: only CMD form is run here`);
  const local = argv.map((a) => mounts(addresses.reduce((v, [from, to]) => v.replaceAll(from, to), a)));
  // The nats image's busybox wget; GNU wget takes the same arguments. Without one, the same GET in node.
  if (local[0] === "wget" && (await runFile("sh", ["-c", "command -v wget"])).code !== 0) {
    return (await fetch(local.at(-1)!).then((r) => r.status, () => 0)) === 200;
  }
  return (await run({ argv: local, env })).code === 0;
}

test("the compose set-up, run outside Docker as written: init, NATS, provision, the gateway, two tenants' edge components — health checks pass and tenants stay apart", async (t) => {
  const root = tempDir("ntg-compose-");
  const volumes: Record<string, string> = {};
  for (const v of Object.keys(withOverride.volumes!)) {
    volumes[v] = path.join(root, v);
    await fs.mkdir(volumes[v]!, { mode: 0o700 });
  }
  const [natsPort, monitorPort, gatewayPort, httpPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // The addresses of the compose network, made local.
  const addresses: Array<[string, string]> = [
    ["nats://nats:14222", `nats://127.0.0.1:${natsPort}`],
    ["0.0.0.0:4222", `127.0.0.1:${gatewayPort}`],
    ["0.0.0.0:8080", `127.0.0.1:${httpPort}`],
    ["http://127.0.0.1:8080/", `http://127.0.0.1:${httpPort}/`],
    ["http://127.0.0.1:8222/", `http://127.0.0.1:${monitorPort}/`],
  ];
  const svc = (name: string, extra: Record<string, string> = {}): LocalService => localService(name, withOverride, volumes, addresses, extra);
  const running: ChildProcess[] = [];
  t.teardown(() => running.forEach((c) => c.exitCode === null && c.kill("SIGKILL")));

  // init, twice: compose runs it on every `up`.
  for (const pass of [1, 2]) {
    const init = await run(svc("init"));
    t.is(init.code, 0, `init (pass ${pass}): ${init.output}`);
  }
  t.regex(await fs.readFile(path.join(volumes.data!, "nats", "url"), "utf8"), new RegExp(`nats://127\\.0\\.0\\.1:${natsPort}`));
  // Inside its container NATS's other listeners (leaf nodes) are its own; here they need free ports.
  const natsConf = path.join(volumes.data!, "nats", "nats-server.conf");
  let conf = await fs.readFile(natsConf, "utf8");
  for (const m of conf.matchAll(/^leafnodes: \{\n {2}listen: "([^"]+):(\d+)"/gm)) conf = conf.replace(m[0], m[0].replace(`:${m[2]}"`, `:${await freePort()}"`));
  await fs.writeFile(natsConf, conf);

  // NATS with the service's flags (-a 0.0.0.0 → loopback, -m 8222 → a free port), the config's port made free.
  const natsSvc = svc("nats");
  natsSvc.argv = natsSvc.argv.map((a) => (a === "0.0.0.0" ? "127.0.0.1" : a === "8222" ? String(monitorPort) : a)).concat(["-p", String(natsPort)]);
  const natsProcess = start(natsSvc);
  running.push(natsProcess.child);
  await until("nats-server ready", async () => /Server is ready/.test(natsProcess.output()) || natsProcess.child.exitCode !== null, 20_000);
  t.is(natsProcess.child.exitCode, null, natsProcess.output());
  await until("the nats health check", () => healthy(withOverride.services.nats!.healthcheck!, addresses, {}));

  for (const pass of [1, 2]) {
    const provision = await run(svc("provision"));
    t.is(provision.code, 0, `provision (pass ${pass}): ${provision.output}`);
    if (pass === 2) {
      t.regex(provision.output, /tenant acme-corp: exists \(pro, active\)/);
      t.regex(provision.output, /tenant globex: exists \(free, active\)/, "the override's TENANTS: globex on the free plan");
      t.regex(provision.output, /platform identity admin: exists/);
    }
  }
  const exported = await fs.readdir(path.join(volumes.dataplane!, "tenants"));
  t.deepEqual(exported.sort(), ["acme-corp", "globex"]);
  await t.throwsAsync(fs.access(path.join(volumes.dataplane!, "root-key.pem")), undefined, "the gateway's volume holds no root key");

  const gateway = start(svc("gateway"));
  running.push(gateway.child);
  await until("the gateway health check", () => healthy(withOverride.services.gateway!.healthcheck!, addresses, {}), 30_000);

  for (const [slug, expected] of [["acme-corp", "agent-001.partition-1.acme-corp.serviceradar"], ["globex", "poller-01.site-a.globex.serviceradar"]] as const) {
    for (const pass of [1, 2]) {
      const enroll = await run(svc(`enroll-${slug}`, { GATEWAY_URL: `tls://localhost:${gatewayPort}` }));
      t.is(enroll.code, 0, `enroll-${slug} (pass ${pass}): ${enroll.output}`);
      if (pass === 2) t.regex(enroll.output, /exists/);
    }
    const config = YAML.parse(await fs.readFile(path.join(volumes[`edge-${slug}`]!, "config", "config.yaml"), "utf8")) as { component: { identity: string } };
    t.is(config.component.identity, expected);
  }

  // The platform admin (issued by provision) watches every tenant's events through the gateway.
  const tls = async (dir: string, cert: string, key: string): Promise<{ cert: string; key: string; ca: string }> => ({ cert: await fs.readFile(path.join(dir, cert), "utf8"), key: await fs.readFile(path.join(dir, key), "utf8"), ca: await fs.readFile(path.join(volumes.data!, "root.pem"), "utf8") });
  const clients: NatsConnection[] = [];
  t.teardown(() => Promise.all(clients.map((c) => c.close().catch(() => undefined))));
  const admin = await connect({ servers: `tls://127.0.0.1:${gatewayPort}`, tls: await tls(path.join(volumes.data!, "platform", "identities"), "admin.pem", "admin-key.pem"), reconnect: false });
  const acmeView = await connect({ servers: `tls://127.0.0.1:${gatewayPort}`, tls: await tls(path.join(volumes["edge-acme-corp"]!, "certs"), "component.pem", "component-key.pem"), reconnect: false });
  clients.push(admin, acmeView);
  const seen = new Set<string>();
  const acmeSeen = new Set<string>();
  admin.subscribe("*.events.>", {
    callback: (_e, m) => {
      seen.add(m.subject);
    },
  });
  acmeView.subscribe(">", {
    callback: (_e, m) => {
      acmeSeen.add(m.subject);
    },
  });
  await Promise.all([admin.flush(), acmeView.flush()]);

  const edges: Array<{ slug: string; process: ReturnType<typeof start>; heartbeat: string }> = [];
  for (const slug of ["acme-corp", "globex"]) {
    const heartbeat = path.join(root, `heartbeat-${slug}`);
    const edge = start(svc(`edge-${slug}`, { EDGE_HEARTBEAT_FILE: heartbeat, EDGE_INTERVAL_MS: "300" }));
    running.push(edge.child);
    edges.push({ slug, process: edge, heartbeat });
  }
  await until("both tenants' edge components publish their health", async () => seen.has("acme-corp.events.agent.health") && seen.has("globex.events.poller.health"), 30_000);
  for (const e of edges) {
    const check = localService(`edge-${e.slug}`, withOverride, volumes, addresses, { EDGE_HEARTBEAT_FILE: e.heartbeat, EDGE_INTERVAL_MS: "300" });
    const mapped = (v: string): string => (v.startsWith("/opt/tenant-gateway/") ? path.join(DOCKER, path.basename(v)) : v);
    t.true(await healthy(withOverride.services[`edge-${e.slug}`]!.healthcheck!, addresses, check.env, mapped), `edge-${e.slug} health check`);
  }
  t.true(acmeSeen.has("events.agent.health"), "acme-corp sees its own agent, unprefixed");
  t.false([...acmeSeen].some((s) => s.includes("poller")), `acme-corp never sees globex's poller: ${[...acmeSeen].join(", ")}`);

  for (const e of edges) {
    e.process.child.kill("SIGTERM");
    t.is(await e.process.exited, 0, `edge-${e.slug} stops cleanly: ${e.process.output()}`);
  }
  await Promise.all(clients.map((c) => c.close()));
  gateway.child.kill("SIGTERM");
  t.is(await gateway.exited, 0, gateway.output().slice(-2000));
  natsProcess.child.kill("SIGTERM");
  await natsProcess.exited;
});

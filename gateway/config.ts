/**
 * `tenant-gateway serve` configuration: defaults, then a config file (YAML or JSON, validated
 * with ajv), then environment variables, then flags — each later source wins. Where none names
 * NATS, the data dir does (`nats/url`, written by init and dev). Every mistake is reported with
 * where it came from (file path, env name or flag).
 */
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import YAML from "yaml";
import { DEFAULT_NATS_URL, readNatsUrl } from "../accounts/operator.ts";
import { CodedError } from "../common/coded-error.ts";
import { ajv, describeAjvErrors } from "../common/schema.ts";
import { DataLayout } from "../pki/layout.ts";
import type { TlsFirstMode } from "./listener.ts";
import { FAIR_BUSY_HIGH } from "./rate-limits.ts";

export interface GatewayConfig {
  listen: string;
  /**
   * The HTTP listener: health, readiness and metrics in plain HTTP or HTTPS, the admin API and the
   * console in HTTPS with a platform client certificate, all on this one port. `off` (or "") = none.
   */
  http_listen: string;
  /** How often the tenants' streams and consumers are read for the JetStream metrics (consumer lag). */
  jetstream_stats_interval_ms: number;
  nats: string[];
  data_dir: string;
  store: "dir" | "kv";
  master_key_file?: string;
  bucket?: string;
  /** Caps the payload clients may send below what NATS allows (bytes); 0 = NATS's own limit. */
  max_payload: number;
  tls_first: TlsFirstMode;
  tls_first_delay_ms: number;
  handshake_timeout_ms: number;
  /** TLS handshakes in progress at once; more connections wait their turn, unread (a reconnect storm). */
  handshake_concurrency: number;
  /** A client that cannot take its messages for this long is cut (a slow consumer). */
  slow_consumer_ms: number;
  /**
   * A client backed up this long stops holding NATS back: its upstream is read again and what it
   * cannot take is dropped (counted), as nats-server 2.10+ drops for a slow consumer; until then
   * NATS keeps the backlog. Holding NATS back longer makes nats-server 2.9 stall every publisher to
   * the slow client's subjects. 0 (or not below slow_consumer_ms): never drop, hold NATS back.
   */
  slow_consumer_drop_ms: number;
  /**
   * SIGTERM: how long lame-duck clients get to leave before the rest are closed. Below
   * Kubernetes' default termination grace (30 s), so the pod exits by itself, not killed mid-drain.
   */
  drain_timeout_ms: number;
  /**
   * Lame duck: how long after the `ldm` INFO before the gateway starts closing the clients that
   * stayed (those that honour it leave by themselves; replicas stopped together do not send clients
   * to each other). At most a quarter of the drain; the closes are then spread over the rest of it.
   */
  lame_duck_grace_ms: number;
  /**
   * When the sessions fall to a quarter of a peak of at least 100 and none has opened for this
   * long, one full garbage collection gives the crowd's heap back (V8 keeps it otherwise); 0: never.
   */
  memory_relief_ms: number;
  /**
   * Fair share between tenants: when the event loop is busy this share of the time (0–1; the
   * process is saturated) and one tenant publishes most of the messages, that tenant's reads are
   * paced down until the loop has room again, so a flood cannot take the process from its
   * neighbours. 0: off.
   */
  fair_share_busy: number;
  /** Start-up: how long to keep retrying an unreachable NATS (with backoff) before giving up; 0 = until it answers. */
  nats_wait_ms: number;
  log_level: string;
  /** Skip the account/stream sync at start-up (another replica or the operator does it). */
  sync_on_start: boolean;
  /** How often the directory store is checked for tenant changes (the KV store is watched instead). */
  registry_poll_ms: number;
  /**
   * How often the whole registry is compared with the gateway's view, under the watch (a change the
   * watch missed is applied within this time; nats-server 2.9 can skip a KV message); 0 = never.
   */
  registry_reconcile_ms: number;
  /** Trust for tls:// upstream URLs (default: the data dir's root CA). */
  nats_ca_file?: string;
  platform: { allowed_identities: string[] };
  /** Gateway processes sharing the listener (node:cluster); 0 = one per CPU core. */
  workers: number;
  /** Retention of the audit stream, e.g. "30d". */
  audit_max_age: string;
  /** Repeats of one cross-tenant operation within this window become one summary record. */
  audit_window_ms: number;
  /** Where customer sites' leaf nodes connect (host:port, 7422 by convention); no leaf listener when unset. */
  leaf_listen?: string;
  /** nats-server's leafnode listener(s) the leaf sessions connect to; unset: asked of NATS (VARZ, system account). */
  leaf_nats?: string[];
  /** The JetStream domain a site names the tenant's streams by (`$JS.<domain>.API`). */
  leaf_jetstream_domain: string;
  /** Admit pre-tenant certificates (`<component>.serviceradar` from the platform CA) into this tenant; off when unset. */
  legacy_tenant?: string;
}

export const DEFAULT_CONFIG: GatewayConfig = {
  listen: "0.0.0.0:4222",
  http_listen: "0.0.0.0:8080",
  jetstream_stats_interval_ms: 15_000,
  nats: [DEFAULT_NATS_URL],
  data_dir: "./data",
  store: "dir",
  max_payload: 0,
  tls_first: "auto",
  tls_first_delay_ms: 50,
  handshake_timeout_ms: 5000,
  handshake_concurrency: 100,
  slow_consumer_ms: 10_000,
  slow_consumer_drop_ms: 1000,
  drain_timeout_ms: 20_000,
  lame_duck_grace_ms: 5000,
  memory_relief_ms: 10_000,
  fair_share_busy: FAIR_BUSY_HIGH,
  nats_wait_ms: 0,
  log_level: "info",
  sync_on_start: true,
  registry_poll_ms: 1000,
  registry_reconcile_ms: 30_000,
  platform: { allowed_identities: ["admin"] },
  workers: 1,
  audit_max_age: "30d",
  audit_window_ms: 60_000,
  leaf_jetstream_domain: "hub",
};

const schema = {
  type: "object",
  additionalProperties: false,
  properties: {
    listen: { type: "string", pattern: "^.+:\\d{1,5}$" },
    http_listen: { type: "string", pattern: "^$|^off$|^.+:\\d{1,5}$" },
    jetstream_stats_interval_ms: { type: "integer", minimum: 1000, maximum: 3600000 },
    nats: { anyOf: [{ type: "string", minLength: 1 }, { type: "array", minItems: 1, items: { type: "string", minLength: 1 } }] },
    data_dir: { type: "string", minLength: 1 },
    store: { enum: ["dir", "kv"] },
    master_key_file: { type: "string" },
    bucket: { type: "string", pattern: "^[A-Za-z0-9_-]+$" },
    max_payload: { type: "integer", minimum: 0, maximum: 67108864 },
    tls_first: { enum: ["auto", "always", "never"] },
    tls_first_delay_ms: { type: "integer", minimum: 0, maximum: 10000 },
    handshake_timeout_ms: { type: "integer", minimum: 100, maximum: 120000 },
    handshake_concurrency: { type: "integer", minimum: 1, maximum: 100000 },
    slow_consumer_ms: { type: "integer", minimum: 100, maximum: 600000 },
    slow_consumer_drop_ms: { type: "integer", minimum: 0, maximum: 600000 },
    drain_timeout_ms: { type: "integer", minimum: 0, maximum: 3600000 },
    lame_duck_grace_ms: { type: "integer", minimum: 0, maximum: 600000 },
    memory_relief_ms: { type: "integer", minimum: 0, maximum: 3600000 },
    fair_share_busy: { type: "number", minimum: 0, maximum: 1 },
    nats_wait_ms: { type: "integer", minimum: 0, maximum: 86400000 },
    log_level: { enum: ["fatal", "error", "warn", "info", "debug", "trace", "silent"] },
    sync_on_start: { type: "boolean" },
    registry_poll_ms: { type: "integer", minimum: 50, maximum: 600000 },
    registry_reconcile_ms: { type: "integer", minimum: 0, maximum: 3600000 },
    nats_ca_file: { type: "string" },
    audit_max_age: { type: "string", pattern: "^\\d+[smhd]?$|^(\\d+[smhd])+$" },
    audit_window_ms: { type: "integer", minimum: 100, maximum: 3600000 },
    workers: { type: "integer", minimum: 0, maximum: 256 },
    leaf_listen: { type: "string", pattern: "^.+:\\d{1,5}$" },
    leaf_nats: { anyOf: [{ type: "string", minLength: 1 }, { type: "array", minItems: 1, items: { type: "string", minLength: 1 } }] },
    leaf_jetstream_domain: { type: "string", pattern: "^[A-Za-z0-9_-]{1,64}$" },
    legacy_tenant: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" },
    platform: {
      type: "object",
      additionalProperties: false,
      properties: { allowed_identities: { type: "array", items: { type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" } } },
    },
  },
};

const validate = ajv.compile(schema);

type PartialConfig = Partial<Omit<GatewayConfig, "nats" | "platform" | "leaf_nats">> & { nats?: string | string[]; leaf_nats?: string | string[]; platform?: Partial<GatewayConfig["platform"]> };

function check(value: unknown, source: string): PartialConfig {
  if (!validate(value)) throw new CodedError("invalid_config", `${source}: ${describeAjvErrors(validate.errors)}`);
  return value as PartialConfig;
}

export async function readConfigFile(file: string): Promise<PartialConfig> {
  let text: string;
  try {
    text = await fs.readFile(file, "utf8");
  } catch (err) {
    throw new CodedError("invalid_config", `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: unknown;
  try {
    parsed = /\.json$/i.test(file) ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new CodedError("invalid_config", `config file ${file} is not valid ${/\.json$/i.test(file) ? "JSON" : "YAML"}: ${(err as Error).message.split("\n")[0]!.replace(/:\s*$/, "")}`);
  }
  if (parsed === null || parsed === undefined) return {};
  return check(parsed, `config file ${file}`);
}

const ENV: Array<[string, keyof GatewayConfig, "string" | "int" | "bool" | "list"]> = [
  ["TENANT_GATEWAY_LISTEN", "listen", "string"],
  ["TENANT_GATEWAY_HTTP_LISTEN", "http_listen", "string"],
  ["TENANT_GATEWAY_JETSTREAM_STATS_INTERVAL_MS", "jetstream_stats_interval_ms", "int"],
  ["TENANT_GATEWAY_NATS", "nats", "list"],
  ["TENANT_GATEWAY_DATA", "data_dir", "string"],
  ["TENANT_GATEWAY_STORE", "store", "string"],
  ["TENANT_GATEWAY_MASTER_KEY_FILE", "master_key_file", "string"],
  ["TENANT_GATEWAY_BUCKET", "bucket", "string"],
  ["TENANT_GATEWAY_MAX_PAYLOAD", "max_payload", "int"],
  ["TENANT_GATEWAY_TLS_FIRST", "tls_first", "string"],
  ["TENANT_GATEWAY_SLOW_CONSUMER_MS", "slow_consumer_ms", "int"],
  ["TENANT_GATEWAY_SLOW_CONSUMER_DROP_MS", "slow_consumer_drop_ms", "int"],
  ["TENANT_GATEWAY_DRAIN_TIMEOUT_MS", "drain_timeout_ms", "int"],
  ["TENANT_GATEWAY_LAME_DUCK_GRACE_MS", "lame_duck_grace_ms", "int"],
  ["TENANT_GATEWAY_NATS_WAIT_MS", "nats_wait_ms", "int"],
  ["TENANT_GATEWAY_LOG_LEVEL", "log_level", "string"],
  ["TENANT_GATEWAY_SYNC_ON_START", "sync_on_start", "bool"],
  ["TENANT_GATEWAY_WORKERS", "workers", "int"],
  ["TENANT_GATEWAY_LEAF_LISTEN", "leaf_listen", "string"],
  ["TENANT_GATEWAY_LEAF_NATS", "leaf_nats", "list"],
  ["TENANT_GATEWAY_LEGACY_TENANT", "legacy_tenant", "string"],
];

function fromEnv(env: NodeJS.ProcessEnv): PartialConfig {
  const out: Record<string, unknown> = {};
  for (const [name, key, kind] of ENV) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    if (kind === "int") {
      if (!/^\d+$/.test(raw)) throw new CodedError("invalid_config", `environment ${name}: must be a whole number, got ${JSON.stringify(raw)}`);
      out[key] = Number(raw);
    } else if (kind === "bool") {
      if (!/^(true|false|1|0)$/.test(raw)) throw new CodedError("invalid_config", `environment ${name}: must be true or false, got ${JSON.stringify(raw)}`);
      out[key] = raw === "true" || raw === "1";
    } else if (kind === "list") out[key] = raw.split(",").map((s) => s.trim()).filter(Boolean);
    else out[key] = raw;
  }
  return check(out, "environment");
}

/**
 * Merges defaults < data dir (NATS URL) < file < env < flags and validates the result. `defaults`
 * replaces built-in defaults for one command (`dev` serves HTTP on loopback only).
 */
export async function resolveConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; flags?: PartialConfig; defaults?: Partial<Pick<GatewayConfig, "http_listen">> }): Promise<GatewayConfig> {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.TENANT_GATEWAY_CONFIG;
  const layers: PartialConfig[] = [file ? await readConfigFile(file) : {}, fromEnv(env), check(stripUndefined(opts.flags ?? {}), "command line")];
  const merged: GatewayConfig = { ...DEFAULT_CONFIG, ...stripUndefined(opts.defaults ?? {}), platform: { ...DEFAULT_CONFIG.platform } };
  let natsGiven = false;
  for (const layer of layers) {
    const { platform, nats, leaf_nats: leafNats, ...rest } = layer;
    Object.assign(merged, stripUndefined(rest));
    if (leafNats !== undefined) merged.leaf_nats = (Array.isArray(leafNats) ? leafNats : [leafNats]).flatMap((n) => n.split(",")).map((n) => n.trim()).filter(Boolean);
    if (nats !== undefined) {
      merged.nats = (Array.isArray(nats) ? nats : [nats]).flatMap((n) => n.split(",")).map((n) => n.trim()).filter(Boolean);
      natsGiven = true;
    }
    if (platform?.allowed_identities) merged.platform.allowed_identities = platform.allowed_identities;
  }
  merged.data_dir = path.resolve(merged.data_dir);
  if (!natsGiven) merged.nats = (await readNatsUrl(new DataLayout(merged.data_dir))) ?? merged.nats;
  parseListen(merged.listen);
  httpListenAddress(merged);
  if (merged.leaf_listen) parseListen(merged.leaf_listen);
  return merged;
}

/** Where the HTTP listener binds, or undefined when it is off. */
export function httpListenAddress(config: Pick<GatewayConfig, "http_listen">): { host: string; port: number } | undefined {
  if (config.http_listen === "" || config.http_listen === "off") return undefined;
  return parseListen(config.http_listen);
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  const host = listen.slice(0, i).replace(/^\[|\]$/g, "") || "0.0.0.0";
  const portText = listen.slice(i + 1);
  const port = Number(portText);
  if (i < 0 || !/^\d{1,5}$/.test(portText) || port > 65535) throw new CodedError("invalid_config", `listen address ${JSON.stringify(listen)}: the port must be a number from 0 to 65535 (host:port)`);
  return { host, port };
}

/**
 * Checks that the listen address can be bound (free port, local address), then lets it go: run
 * first, so that a gateway that could never serve fails at once with `listen_failed`, before it
 * waits for NATS or syncs anything.
 */
export async function checkListenAddress(listen: string): Promise<void> {
  const { host, port } = parseListen(listen);
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", (err: NodeJS.ErrnoException) => {
      const why = err.code === "EADDRINUSE" ? "the address is in use" : err.code === "EADDRNOTAVAIL" ? "the address is not one of this host's" : err.code === "EACCES" ? "permission denied (a port below 1024 needs privileges)" : (err.code ?? err.message);
      reject(new CodedError("listen_failed", `cannot listen on ${host}:${port}: ${why}${err.code && err.code !== why ? ` (${err.code})` : ""}`, { cause: err }));
    });
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve()));
  });
}

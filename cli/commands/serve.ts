/** `tenant-gateway serve` and `tenant-gateway dev`: run the gateway; dev also runs NATS and demo tenants. */
import path from "node:path";
import { Command } from "commander";
import { CodedError, errorMessage } from "../../common/coded-error.ts";
import { fileExists, writeFileAtomic } from "../../common/files.ts";
import { leafSiteConfig } from "../../gateway/leaf-site-config.ts";
import { createLogger, type Logger } from "../../common/logger.ts";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { ControlPlane } from "../../accounts/control-plane.ts";
import { startNatsServer, type RunningNatsServer } from "../../accounts/nats-server-process.ts";
import { NatsFiles, writeNatsUrl } from "../../accounts/operator.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { issueComponentFiles, issuePlatformIdentityFiles } from "../../pki/authority.ts";
import { DataLayout, dataDirFromEnv } from "../../pki/layout.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { checkListenAddress, resolveConfig } from "../../gateway/config.ts";
import { Gateway } from "../../gateway/gateway.ts";
import { exitWorkerStartFailed, isWorker, reportWorkerListening, runPrimary, workerCount } from "../../gateway/workers.ts";
import { serveWorkerTelemetry, startHttpSide, startPrimaryHttpSide, type HttpSide } from "../../admin/serving.ts";
import { printFailure, parseIntegerOption, EXIT_FAILURE } from "../output.ts";

interface ServeFlags {
  config?: string;
  listen?: string;
  leafListen?: string;
  httpListen?: string;
  nats?: string;
  dataDir?: string;
  maxPayload?: number;
  store?: string;
  masterKeyFile?: string;
  tlsFirst?: string;
  logLevel?: string;
  workers?: number;
  drainTimeoutMs?: number;
  natsWaitMs?: number;
  json?: boolean;
}

/** A process that cannot serve says so in one line and exits 1 at once: nothing it opened may keep it alive. */
function exitFailed(opts: { json: boolean }, err: unknown): never {
  printFailure(opts, err);
  process.exit(process.exitCode ?? EXIT_FAILURE);
}

/** Runs until SIGTERM/SIGINT, then lame duck (readiness says no at once), drain, exit 0. */
function runUntilSignalled(gateway: Gateway, log: Logger, http: HttpSide | undefined, after: () => Promise<void> = async () => {}): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ event: "signal", signal }, "shutting down");
    http?.draining();
    gateway
      .shutdown()
      .then(() => http?.close())
      .then(after)
      .then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err: errorMessage(err) }, "shutdown failed");
          process.exit(EXIT_FAILURE);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

export function serveCommand(): Command {
  return new Command("serve")
    .description("run the gateway: clients connect with their certificate, NATS behind")
    .option("--config <file>", "config file (YAML or JSON; env TENANT_GATEWAY_CONFIG)")
    .option("--listen <host:port>", "client listen address (default 0.0.0.0:4222; env TENANT_GATEWAY_LISTEN)")
    .option("--leaf-listen <host:port>", "leaf node listener for customer sites' own nats-server, e.g. 0.0.0.0:7422 (off unless set; env TENANT_GATEWAY_LEAF_LISTEN)")
    .option("--http-listen <host:port>", "HTTP listener: /healthz /readyz /metrics (HTTP or HTTPS), admin API /api/v1 and console /ui/ (HTTPS, platform certificate); off disables (default 0.0.0.0:8080; env TENANT_GATEWAY_HTTP_LISTEN)")
    .option("--nats <urls>", "NATS server URL(s), comma-separated (env TENANT_GATEWAY_NATS; default: the URL recorded in <data-dir>/nats/url)")
    .option("--data-dir <dir>", "data directory (env TENANT_GATEWAY_DATA)")
    .option("--max-payload <bytes>", "cap client payloads below NATS's max_payload", parseIntegerOption("--max-payload", 1, 64 * 1024 * 1024))
    .option("--store <kind>", "tenant store: dir or kv (env TENANT_GATEWAY_STORE)")
    .option("--master-key-file <file>", "master key for the kv store")
    .option("--tls-first <mode>", "auto | always | never: clients that start TLS before INFO")
    .option("--log-level <level>", "fatal|error|warn|info|debug|trace")
    .option("--workers <n>", "gateway processes sharing the listener; 0 = one per core (env TENANT_GATEWAY_WORKERS)", parseIntegerOption("--workers", 0, 256))
    .option("--drain-timeout-ms <ms>", "SIGTERM: how long lame-duck clients get to leave (default 20000; env TENANT_GATEWAY_DRAIN_TIMEOUT_MS)", parseIntegerOption("--drain-timeout-ms", 0, 3_600_000))
    .option("--nats-wait-ms <ms>", "start-up: how long to retry an unreachable NATS; 0 = until it answers (default; env TENANT_GATEWAY_NATS_WAIT_MS)", parseIntegerOption("--nats-wait-ms", 0, 86_400_000))
    .option("--json", "errors as JSON", false)
    .action(async (flags: ServeFlags) => {
      try {
        const config = await resolveConfig({
          ...(flags.config ? { file: flags.config } : {}),
          flags: {
            listen: flags.listen,
            leaf_listen: flags.leafListen,
            http_listen: flags.httpListen,
            nats: flags.nats,
            data_dir: flags.dataDir,
            max_payload: flags.maxPayload,
            store: flags.store as "dir" | "kv" | undefined,
            master_key_file: flags.masterKeyFile,
            tls_first: flags.tlsFirst as "auto" | undefined,
            log_level: flags.logLevel,
            workers: isWorker() ? 1 : flags.workers,
            drain_timeout_ms: flags.drainTimeoutMs,
            nats_wait_ms: flags.natsWaitMs,
          },
        });
        const log = createLogger({ level: config.log_level });
        // The listen address first: a gateway that could never serve must not wait for NATS or sync.
        // (Workers share the primary's listener, which it checked.)
        if (!isWorker()) await checkListenAddress(config.listen);
        if (!isWorker() && config.leaf_listen) await checkListenAddress(config.leaf_listen);
        if (!isWorker() && workerCount(config) > 1) {
          // The primary serves HTTP for the group: alive while the workers start, ready once one serves.
          const http = await startPrimaryHttpSide(config, log);
          await runPrimary(config, log);
          await http?.attach();
          return;
        }
        if (isWorker()) {
          const gateway = await Gateway.start(config, log);
          serveWorkerTelemetry(gateway);
          reportWorkerListening();
          return runUntilSignalled(gateway, log, undefined);
        }
        const http = await startHttpSide(config, log);
        const gateway = await Gateway.start(config, log);
        http?.attach(gateway);
        runUntilSignalled(gateway, log, http);
      } catch (err) {
        if (isWorker()) return exitWorkerStartFailed(err);
        exitFailed({ json: flags.json ?? false }, err);
      }
    });
}

const DEMO_TENANTS = ["acme-corp", "globex"];

export function devCommand(): Command {
  return new Command("dev")
    .description("the embedded default: NATS (from PATH) in operator mode, the gateway, demo tenants acme-corp and globex")
    .option("--data-dir <dir>", "data directory (env TENANT_GATEWAY_DATA)")
    .option("--listen <host:port>", "gateway listen address", "127.0.0.1:4222")
    .option("--leaf-listen <host:port>", "leaf node listener for a site's nats-server (off unless set, e.g. 127.0.0.1:7422)")
    .option("--http-listen <host:port>", "HTTP listener: health, metrics, admin API and console; off disables (default 127.0.0.1:8080; env TENANT_GATEWAY_HTTP_LISTEN)")
    .option("--log-level <level>", "gateway log level", "info")
    .action(async (flags: { dataDir?: string; listen: string; leafListen?: string; httpListen?: string; logLevel: string }) => {
      let nats: RunningNatsServer | undefined;
      try {
        await checkListenAddress(flags.listen);
        const dataDir = dataDirFromEnv(flags.dataDir);
        const layout = new DataLayout(dataDir);
        await initDataDir(layout, { natsPort: -1 });
        nats = await startNatsServer(new NatsFiles(layout).serverConfig);
        // Every other command on this data dir finds this NATS (its port is random) through the record.
        const urlFile = await writeNatsUrl(layout, [nats.url], "tenant-gateway dev");
        const cp = await ControlPlane.open({ dataDir, servers: [nats.url] });
        const svc = new TenantService(cp, tenantStreamProvisioner);
        await svc.sync();
        for (const slug of DEMO_TENANTS) {
          if (!(await cp.store.get(slug))) await svc.create(slug, { name: slug === "acme-corp" ? "Acme Corp" : "Globex", plan: "pro" });
          if (!(await fileExists(layout.component(slug, "agent-001", "partition-1").cert))) await issueComponentFiles(layout, { tenant: slug, component: "agent-001", partition: "partition-1" });
        }
        if (!(await fileExists(layout.platformIdentity("admin").cert))) await issuePlatformIdentityFiles(layout, "admin");
        await cp.close();

        const config = await resolveConfig({
          flags: { listen: flags.listen, leaf_listen: flags.leafListen, http_listen: flags.httpListen, nats: nats.url, data_dir: dataDir, log_level: flags.logLevel, sync_on_start: false, drain_timeout_ms: 2000 },
          defaults: { http_listen: "127.0.0.1:8080" },
        });
        const log = createLogger({ level: config.log_level });
        const http = await startHttpSide(config, log);
        const gateway = await Gateway.start(config, log);
        http?.attach(gateway);
        const admin = layout.platformIdentity("admin");
        const consoleUrl = http ? `https://localhost:${http.server.address.port}` : undefined;
        const acme = layout.component("acme-corp", "agent-001", "partition-1");
        const server = `tls://localhost:${gateway.port}`;
        const tlsArgs = `--tlscert ${rel(acme.cert)} --tlskey ${rel(acme.key)} --tlsca ${rel(layout.rootCert)}`;
        process.stderr.write(
          [
            "",
            `tenant-gateway dev: NATS ${nats.url} (operator mode, data in ${rel(dataDir)}), gateway ${server}`,
            `  other tenant-gateway commands on ${rel(dataDir)} use this NATS (recorded in ${rel(urlFile)}), e.g. tenant-gateway tenant list${flags.dataDir ? ` --data-dir ${rel(dataDir)}` : ""}`,
            `  tenants: ${DEMO_TENANTS.join(", ")}; certificates under ${rel(layout.tenantsDir)}/<slug>/components/, admin under ${rel(path.dirname(layout.platformIdentity("admin").cert))}/`,
            "  try it with the nats CLI (https://github.com/nats-io/natscli):",
            `    nats -s ${server} ${tlsArgs} sub 'events.>' &`,
            `    nats -s ${server} ${tlsArgs} pub events.poller.health '{"ok":true}'`,
            `    nats -s ${server} ${tlsArgs} stream ls      # acme-corp's own streams`,
            ...(consoleUrl
              ? [
                  `  HTTP: ${consoleUrl.replace("https:", "http:")}/healthz, /readyz, /metrics; admin API ${consoleUrl}/api/v1/ and console ${consoleUrl}/ui/ with the admin certificate:`,
                  `    curl --cacert ${rel(layout.rootCert)} --cert ${rel(admin.cert)} --key ${rel(admin.key)} ${consoleUrl}/api/v1/tenants`,
                  `    tenant-gateway sessions list${flags.dataDir ? ` --data-dir ${rel(dataDir)}` : ""} --url ${consoleUrl}`,
                ]
              : []),
            ...(gateway.leafPort ? await devLeafSite(layout, gateway.leafPort) : []),
            "  Ctrl-C stops the gateway and NATS.",
            "",
          ].join("\n"),
        );
        const running = nats;
        runUntilSignalled(gateway, log, http, () => running.stop());
      } catch (err) {
        await nats?.stop();
        exitFailed({ json: false }, err instanceof Error ? err : new CodedError("internal_error", String(err)));
      }
    });
}

/** A leaf certificate for acme-corp and a site configuration using it, for trying a leaf node against dev. */
async function devLeafSite(layout: DataLayout, port: number): Promise<string[]> {
  const files = layout.component("acme-corp", "leaf", "site-1");
  if (!(await fileExists(files.cert))) await issueComponentFiles(layout, { tenant: "acme-corp", component: "leaf", partition: "site-1" });
  const conf = path.join(layout.dir, "leaf-site-acme-corp.conf");
  const site = leafSiteConfig({ tenant: "acme-corp", gatewayLeafUrl: `tls://localhost:${port}`, serverName: "acme-corp-site-1", listen: "127.0.0.1:4333", certFile: files.cert, keyFile: files.key, caFile: layout.rootCert });
  await writeFileAtomic(conf, site);
  return [
    `  leaf nodes: tls://localhost:${port}; a site of acme-corp (its clients on nats://127.0.0.1:4333, in acme-corp's view):`,
    `    nats-server -c ${rel(conf)}`,
  ];
}

function rel(p: string): string {
  const r = path.relative(process.cwd(), p);
  return r.startsWith("..") ? p : r || ".";
}

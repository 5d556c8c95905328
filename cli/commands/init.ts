/** `tenant-gateway init` and `tenant-gateway sync`. */
import { Command } from "commander";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { splitServers } from "../../accounts/nats-control.ts";
import { DEFAULT_NATS_PORT } from "../../accounts/operator.ts";
import { TenantService } from "../../accounts/tenants.ts";
import { DataLayout } from "../../pki/layout.ts";
import { tenantStreamProvisioner } from "../../streams/provisioner.ts";
import { withControlPlane, withNatsOptions, storeKind, type NatsOptions } from "../nats-options.ts";
import { action, collect, parseIntegerOption, withCommonOptions } from "../output.ts";

export function initCommand(): Command {
  return withCommonOptions(
    new Command("init")
      .description("bootstrap a data dir: platform PKI, NATS operator, system and PLATFORM accounts, plans, nats-server.conf (idempotent)")
      .option("--nats-port <port>", `port nats-server listens on (127.0.0.1 only; not 4222, the gateway's)`, parseIntegerOption("--nats-port", 1, 65535), DEFAULT_NATS_PORT)
      .option("--nats-url <urls>", "where NATS is reached, when not at 127.0.0.1:<nats-port> (e.g. nats://nats:14222); recorded in <data-dir>/nats/url, the default --nats of every command")
      .option("--hostname <name>", "extra DNS name or IP in the gateway certificate (repeatable)", collect, [])
      .option("--store <kind>", "tenant store this deployment uses: dir or kv (kv also creates <data-dir>/master.key)")
      .option("--force-config", "re-write nats-server.conf", false),
  ).action(
    action<{ natsPort: number; natsUrl?: string; hostname: string[]; store?: string; forceConfig: boolean }>(async (opts) => {
      const result = await initDataDir(new DataLayout(opts.dataDir), {
        natsPort: opts.natsPort,
        ...(opts.natsUrl ? { natsUrl: splitServers(opts.natsUrl) } : {}),
        hostnames: opts.hostname,
        store: storeKind(opts),
        forceConfig: opts.forceConfig,
      });
      return {
        json: result,
        text: [
          `data dir ${result.data_dir}: ${result.status}`,
          `  platform PKI     ${result.pki}`,
          `  NATS operator    ${result.operator.status}  ${result.operator.public_key}`,
          `  plans            ${result.plans.status}  ${result.plans.file}`,
          `  nats-server.conf ${result.nats_config.status}  ${result.nats_config.file}`,
          ...(result.nats_url ? [`  NATS URL         ${result.nats_url.status}  ${result.nats_url.urls.join(",")}  (${result.nats_url.file}: every command's default --nats)`] : []),
          ...(result.master_key ? [`  master key       ${result.master_key.status}  ${result.master_key.file}`] : []),
          `start NATS with: nats-server -c ${result.nats_config.file}`,
        ],
      };
    }),
  );
}

export function syncCommand(): Command {
  return withNatsOptions(withCommonOptions(new Command("sync").description("re-push the PLATFORM account and every tenant account, finish interrupted creates, reconcile streams"))).action(
    action<NatsOptions>(async (opts) =>
      withControlPlane(opts, async (cp) => {
        const result = await new TenantService(cp, tenantStreamProvisioner).sync();
        const failed = result.tenants.filter((t) => t.result === "failed");
        return {
          json: result,
          text: [
            `platform account ${result.platform}: ${result.platform_result}`,
            ...result.tenants.map((t) => `  ${t.slug.padEnd(24)} ${t.result}${t.jetstream ? `  jetstream ${t.jetstream.status}` : ""}${t.error ? `: ${t.error}` : ""}`),
            `${result.tenants.length} tenant(s), ${failed.length} failed`,
          ],
          ...(failed.length > 0 ? { exitCode: 1 } : {}),
        };
      }),
    ),
  );
}

/**
 * `tenant-gateway sessions …`: the live sessions of a running gateway (every worker of it), read
 * and cut through its admin API with the data dir's platform certificate.
 */
import { Command } from "commander";
import { adminClient, ADMIN_URL_ENV, DEFAULT_ADMIN_URL } from "../../admin/api-client.ts";
import type { SessionSummary } from "../../gateway/telemetry.ts";
import { assertTenantSlug } from "../../pki/names.ts";
import { DataLayout } from "../../pki/layout.ts";
import { action, withCommonOptions } from "../output.ts";

interface ClientOptions {
  url?: string;
  identity?: string;
}

function withClientOptions(cmd: Command): Command {
  return withCommonOptions(cmd)
    .option("--url <https://host:port>", `the gateway's HTTP listener (env ${ADMIN_URL_ENV}; default ${DEFAULT_ADMIN_URL})`)
    .option("--identity <name>", "the platform identity whose certificate (in the data dir) is used", "admin");
}

function row(s: SessionSummary): string {
  const who = s.kind === "platform" ? `platform:${s.platform ?? "?"}` : (s.tenant ?? "?");
  return `${s.id}  ${who.padEnd(20)} ${s.cn.padEnd(48)} ${s.remote.padEnd(22)} ${s.started_at}  in ${s.counters.msgsIn} out ${s.counters.msgsOut}`;
}

export function sessionsCommand(): Command {
  const sessions = new Command("sessions").description("live sessions of a running gateway (through its admin API)");

  withClientOptions(sessions.command("list"))
    .option("--tenant <slug>", "only this tenant's sessions")
    .description("list live sessions: id, tenant, identity, remote address, since, messages in and out")
    .action(
      action<ClientOptions & { tenant?: string }>(async (opts) => {
        if (opts.tenant !== undefined) assertTenantSlug(opts.tenant);
        const client = await adminClient(new DataLayout(opts.dataDir), opts);
        const { sessions: list } = await client.request<{ sessions: SessionSummary[] }>("GET", `/api/v1/sessions${opts.tenant ? `?tenant=${opts.tenant}` : ""}`);
        return {
          json: { gateway: client.url, sessions: list },
          text: list.length === 0 ? [`no live sessions${opts.tenant ? ` of ${opts.tenant}` : ""} on ${client.url}`] : [`${"SESSION".padEnd(12)}  ${"TENANT".padEnd(20)} ${"IDENTITY".padEnd(48)} ${"REMOTE".padEnd(22)} SINCE`, ...list.map(row)],
        };
      }),
    );

  withClientOptions(sessions.command("disconnect"))
    .argument("<id>", "session id (from sessions list)")
    .description("disconnect one session (the client may reconnect; suspend the tenant or revoke the certificate to keep it out)")
    .action(
      action<ClientOptions>(async (opts, id) => {
        const client = await adminClient(new DataLayout(opts.dataDir), opts);
        const done = await client.request<{ status: string; session: SessionSummary }>("DELETE", `/api/v1/sessions/${encodeURIComponent(id!)}`);
        return { json: done, text: [`session ${done.session.id} (${done.session.cn}) disconnected`] };
      }),
    );

  return sessions;
}

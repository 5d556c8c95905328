/** `tenant-gateway audit`: who crossed tenants, when, and how. */
import { Command } from "commander";
import { CodedError } from "../../common/coded-error.ts";
import { readAuditRecords } from "../../gateway/audit-stream.ts";
import { ALL_TENANTS } from "../../gateway/audit.ts";
import { assertPlatformName, assertTenantSlug } from "../../pki/names.ts";
import { parseDurationSeconds } from "../../streams/units.ts";
import { withControlPlane, withNatsOptions, type NatsOptions } from "../nats-options.ts";
import { action, parseIntegerOption, withCommonOptions } from "../output.ts";

export function auditCommand(): Command {
  return withNatsOptions(
    withCommonOptions(
      new Command("audit")
        .description("list cross-tenant operations of platform identities (subscribe, publish, request, JetStream API) from the audit stream")
        .option("--tenant <slug>", "only this tenant (wildcard subscriptions are listed under _all)")
        .option("--identity <name>", "only this platform identity, e.g. admin")
        .option("--since <duration>", "only records newer than this, e.g. 15m, 24h, 7d")
        .option("--limit <n>", "at most this many records", parseIntegerOption("--limit", 1, 1_000_000), 10_000),
    ),
  ).action(
    action<NatsOptions & { tenant?: string; identity?: string; since?: string; limit: number }>(async (opts) => {
      if (opts.tenant && opts.tenant !== ALL_TENANTS) assertTenantSlug(opts.tenant);
      if (opts.identity) assertPlatformName(opts.identity);
      let since: Date | undefined;
      if (opts.since) {
        const seconds = parseDurationSeconds(opts.since);
        if (seconds === undefined || seconds <= 0) throw new CodedError("invalid_argument", `--since must be a duration like 15m, 24h or 7d, got ${JSON.stringify(opts.since)}`);
        since = new Date(Date.now() - seconds * 1000);
      }
      return withControlPlane(opts, async (cp) => {
        const nc = await cp.accountConnection(cp.platform.account, cp.platform.signingKey, "tenant-gateway-audit");
        const records = await readAuditRecords(nc, { ...(opts.tenant ? { tenant: opts.tenant } : {}), ...(opts.identity ? { identity: opts.identity } : {}), ...(since ? { since } : {}), limit: opts.limit });
        return {
          json: { records },
          text:
            records.length === 0
              ? ["no audit records"]
              : records.map((r) => `${r.time}  ${r.identity.padEnd(12)} ${r.tenant.padEnd(20)} ${r.operation.padEnd(14)} ${r.subject}${r.count > 1 ? `  (x${r.count})` : ""}`),
        };
      });
    }),
  );
}

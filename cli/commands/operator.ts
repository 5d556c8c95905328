/** `tenant-gateway operator adopt`: manage tenant accounts under an operator the platform already runs (nsc). */
import { Command } from "commander";
import { initDataDir } from "../../accounts/bootstrap.ts";
import { splitServers } from "../../accounts/nats-control.ts";
import { adoptOperator } from "../../accounts/operator.ts";
import { readTextFile } from "../../common/files.ts";
import { DataLayout } from "../../pki/layout.ts";
import { storeKind } from "../nats-options.ts";
import { action, collect, withCommonOptions } from "../output.ts";

export function operatorCommand(): Command {
  const operator = new Command("operator").description("the NATS operator the gateway signs tenant accounts with");
  withCommonOptions(
    operator
      .command("adopt")
      .description("use an existing operator (nsc) instead of creating one: tenant and PLATFORM accounts are signed with one of its signing keys and pushed with its system user; then the rest of init (PKI, plans)")
      .requiredOption("--operator-jwt <file>", "the operator's JWT (nsc describe operator --raw, or the server's operator: file)")
      .requiredOption("--signing-key <file>", "seed of one of the operator's signing keys (SO…; nsc edit operator --sk generate)")
      .requiredOption("--system-creds <file>", "creds of a user of the operator's system account (nsc generate creds -a SYS -n <user>)")
      .requiredOption("--nats <urls>", "the operator's NATS server(s), comma-separated (full resolver; allow_delete for tenant deletion)")
      .option("--hostname <name>", "extra DNS name or IP in the gateway certificate (repeatable)", collect, [])
      .option("--store <kind>", "tenant store: dir or kv (kv also creates <data-dir>/master.key)"),
  ).action(
    action<{ operatorJwt: string; signingKey: string; systemCreds: string; nats: string; hostname: string[]; store?: string }>(async (opts) => {
      const layout = new DataLayout(opts.dataDir);
      const servers = splitServers(opts.nats);
      const adopted = await adoptOperator(layout, {
        operatorJwt: await readTextFile(opts.operatorJwt, "operator JWT"),
        signingSeed: await readTextFile(opts.signingKey, "operator signing key"),
        systemCreds: await readTextFile(opts.systemCreds, "system user creds"),
        servers,
      });
      const init = await initDataDir(layout, { natsUrl: servers, hostnames: opts.hostname, store: storeKind(opts) });
      return {
        json: { ...adopted, init },
        text: [
          `operator ${adopted.operator_name} (${adopted.operator}): ${adopted.status} in ${layout.dir}`,
          `  signing key      ${adopted.signing_key}`,
          `  system account   ${adopted.system_account}`,
          `  PLATFORM account ${adopted.platform_account} (${adopted.platform_push})`,
          `  platform PKI     ${init.pki}`,
          `  NATS             ${servers.join(",")}`,
          "create tenants with: tenant-gateway tenant create <slug>; the operator's NATS configuration stays yours (the data dir's nats-server.conf is not used)",
        ],
      };
    }),
  );
  return operator;
}

/** `tenant-gateway export dataplane <dir>`: the part of the data dir a serving gateway needs, and nothing more. */
import { Command } from "commander";
import { exportDataPlane } from "../../accounts/data-plane.ts";
import { DataLayout } from "../../pki/layout.ts";
import { storeKind } from "../nats-options.ts";
import { action, withCommonOptions } from "../output.ts";

export function exportCommand(): Command {
  const exp = new Command("export").description("write a part of the data dir into another directory");
  withCommonOptions(
    exp
      .command("dataplane")
      .argument("<dir>", "target directory (created; re-run it to bring it up to date)")
      .description("the data-plane part for `serve`: CA certificates, the gateway's key and certificate, account signing keys, the NATS URL — no root or CA keys, no operator or account identity seeds")
      .option("--store <kind>", "tenant store: dir (tenants are copied) or kv (they stay in the bucket; the master key is copied); env TENANT_GATEWAY_STORE")
      .option("--master-key-file <file>", "master key of the kv store (default <data-dir>/master.key)"),
  ).action(
    action<{ store?: string; masterKeyFile?: string }>(async (opts, dir) => {
      const target = new DataLayout(dir!);
      const result = await exportDataPlane(new DataLayout(opts.dataDir), target, { store: storeKind(opts), ...(opts.masterKeyFile ? { masterKeyFile: opts.masterKeyFile } : {}) });
      const count = (r: string): number => result.files.filter((f) => f.result === r).length;
      return {
        json: result,
        text: [
          `data-plane part of ${result.from} in ${result.data_dir}`,
          `  files            ${count("written")} written, ${count("unchanged")} unchanged`,
          ...(result.store === "dir" ? [`  tenants          ${result.tenants.map((t) => `${t.slug} ${t.result}`).join(", ") || "none"}`] : []),
          ...result.tenants.filter((t) => t.reason).map((t) => `  ${t.slug}: ${t.reason}`),
          ...result.warnings.map((w) => `warning: ${w}`),
          `serve it with: tenant-gateway serve --data-dir ${result.data_dir}`,
        ],
      };
    }),
  );
  return exp;
}

/** The `tenant-gateway` command line: one CLI for every operator task. */
import { Command, CommanderError } from "commander";
import { initCommand, syncCommand } from "./commands/init.ts";
import { pkiCommand } from "./commands/pki.ts";
import { auditCommand } from "./commands/audit.ts";
import { devCommand, serveCommand } from "./commands/serve.ts";
import { exportCommand } from "./commands/export.ts";
import { operatorCommand } from "./commands/operator.ts";
import { packageCommand } from "./commands/package.ts";
import { sessionsCommand } from "./commands/sessions.ts";
import { streamsCommand } from "./commands/streams.ts";
import { tenantCommand } from "./commands/tenant.ts";
import { EXIT_USAGE } from "./output.ts";

export function buildProgram(): Command {
  const program = new Command("tenant-gateway")
    .description("A multi-tenant mTLS gateway in front of NATS: tenants, CAs, certificates, accounts and the data path")
    .version("0.1.0")
    .showHelpAfterError(false);
  program.addCommand(initCommand());
  program.addCommand(operatorCommand());
  program.addCommand(pkiCommand());
  program.addCommand(tenantCommand());
  program.addCommand(packageCommand());
  program.addCommand(streamsCommand());
  program.addCommand(syncCommand());
  program.addCommand(auditCommand());
  program.addCommand(sessionsCommand());
  program.addCommand(exportCommand());
  program.addCommand(serveCommand());
  program.addCommand(devCommand());
  return program;
}

function applyExitOverride(cmd: Command): void {
  cmd.exitOverride();
  for (const sub of cmd.commands) applyExitOverride(sub);
}

const program = buildProgram();
applyExitOverride(program);
try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end with a CommanderError too: those are not failures.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    throw err;
  }
}

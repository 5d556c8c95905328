/**
 * How every command reports: a result object printed as JSON with `--json`, or as short human
 * lines; a failure is one line on stderr (or `{"error": {code, message}}` with `--json`) and a
 * non-zero exit code. Nothing else decides exit codes.
 */
import { InvalidArgumentError, type Command } from "commander";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { dataDirFromEnv } from "../pki/layout.ts";

export interface CommonOptions {
  dataDir: string;
  json: boolean;
}

/** Exit codes: 0 done, 1 refused or failed, 2 bad usage. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function withCommonOptions(cmd: Command): Command {
  return cmd
    .option("--data-dir <dir>", "data directory (env TENANT_GATEWAY_DATA)", undefined)
    .option("--json", "print machine-readable JSON", false);
}

export function commonOptions(raw: { dataDir?: string; json?: boolean }): CommonOptions {
  return { dataDir: dataDirFromEnv(raw.dataDir), json: raw.json ?? false };
}

export interface Report {
  /** The JSON printed with --json. */
  json: unknown;
  /** The lines printed without --json. */
  text: string[];
  /** Non-zero when the command answered but the answer is a refusal (e.g. `pki identify`). */
  exitCode?: number;
}

export function printReport(opts: { json: boolean }, report: Report): void {
  if (opts.json) process.stdout.write(JSON.stringify(report.json, null, 2) + "\n");
  else if (report.text.length > 0) process.stdout.write(report.text.join("\n") + "\n");
  if (report.exitCode) process.exitCode = report.exitCode;
}

export function printFailure(opts: { json: boolean }, err: unknown): void {
  const code = err instanceof CodedError ? err.code : "internal_error";
  const message = errorMessage(err);
  if (opts.json) process.stdout.write(JSON.stringify({ error: err instanceof CodedError ? err.toJSON() : { code, message } }, null, 2) + "\n");
  process.stderr.write(`error: ${message} [${code}]\n`);
  if (code === "internal_error" && process.env.TENANT_GATEWAY_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  process.exitCode = code === "invalid_argument" ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * Wraps a command action: positional arguments, the command's options merged with the common
 * ones, the report printed, failures reported.
 */
export function action<O extends object = object>(run: (opts: CommonOptions & O, ...positional: string[]) => Promise<Report>): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const raw = cmd.opts() as O & { dataDir?: string; json?: boolean };
    const opts = { ...raw, ...commonOptions(raw) };
    try {
      printReport(opts, await run(opts, ...(args.slice(0, -2) as string[])));
    } catch (err) {
      printFailure(opts, err);
    }
  };
}

export function parseIntegerOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be a whole number.`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`${name} must be between ${min} and ${max}.`);
    return n;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

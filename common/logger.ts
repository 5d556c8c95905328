/**
 * pino JSON logs. Sessions log through child loggers that carry tenant, component, partition,
 * CN and session id, so every line says who it is about. Paths that could hold secrets are
 * redacted as a last line of defence; the code never logs them in the first place.
 */
import { pino, type Logger, type LoggerOptions } from "pino";

export type { Logger } from "pino";

export const REDACTED_PATHS = ["*.seed", "*.jwt", "*.key", "*.keyPem", "*.key_pem", "*.ca_key_pem", "*.account_seed", "*.signing_seed", "*.creds", "*.sig"];

export function createLogger(opts: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {}): Logger {
  const options: LoggerOptions = {
    level: opts.level ?? process.env.TENANT_GATEWAY_LOG_LEVEL ?? "info",
    name: opts.name ?? "tenant-gateway",
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return opts.destination ? pino(options, opts.destination as never) : pino(options);
}

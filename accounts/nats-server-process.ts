/**
 * Runs a nats-server process from PATH with a config `tenant-gateway init` wrote: used by
 * `tenant-gateway dev` and by the tests. Readiness and the actual port come from the server's
 * own log lines (the config may say port -1, a random port).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { CodedError } from "../common/coded-error.ts";

export interface RunningNatsServer {
  url: string;
  port: number;
  configFile: string;
  readonly process: ChildProcess;
  /** Everything the server logged so far (since its last start). */
  log(): string;
  stop(): Promise<void>;
  /** Stops (SIGKILL when `hard`) and starts again on the same port with the same store. */
  restart(opts?: { hard?: boolean }): Promise<void>;
}

export const NATS_SERVER_INSTALL_HINT =
  "install it: `apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS), or a release binary from https://github.com/nats-io/nats-server/releases";

/**
 * Which nats-server binary runs: `NATS_SERVER_BIN` (a path), else `nats-server` from PATH. The test
 * suites run once per supported server version by setting it (scripts/nats-servers.sh).
 */
export function natsServerBinary(): string {
  return process.env.NATS_SERVER_BIN || "nats-server";
}

const READY = /Server is ready/;
const LISTEN = /Listening for client connections on [^\s]+:(\d+)/;

function launch(configFile: string, port: number | undefined, readyTimeoutMs: number): Promise<{ child: ChildProcess; port: number; logs: string[] }> {
  const args = ["-c", configFile, ...(port === undefined ? [] : ["-p", String(port)])];
  const child = spawn(natsServerBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  const logs: string[] = [];
  return new Promise((resolve, reject) => {
    let found: number | undefined;
    let done = false;
    const fail = (err: Error): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(err);
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(new CodedError("nats_server_start_failed", `nats-server did not become ready in ${readyTimeoutMs} ms:\n${logs.join("")}`));
    }, readyTimeoutMs);
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      logs.push(text);
      const m = LISTEN.exec(text);
      if (m) found = Number(m[1]);
      if (!done && found !== undefined && READY.test(logs.join(""))) {
        done = true;
        clearTimeout(timer);
        resolve({ child, port: found, logs });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") fail(new CodedError("nats_server_missing", `${natsServerBinary()} is not installed (NATS_SERVER_BIN or PATH); ${NATS_SERVER_INSTALL_HINT}`));
      else fail(new CodedError("nats_server_start_failed", `cannot start nats-server: ${err.message}`));
    });
    child.once("exit", (code) => fail(new CodedError("nats_server_start_failed", `nats-server exited with ${code} before it was ready:\n${logs.join("")}`)));
  });
}

export async function startNatsServer(configFile: string, opts: { port?: number; readyTimeoutMs?: number } = {}): Promise<RunningNatsServer> {
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  let current = await launch(configFile, opts.port, readyTimeoutMs);
  const port = current.port;
  const stopCurrent = async (signal: NodeJS.Signals): Promise<void> => {
    const child = current.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  };
  process.once("exit", () => current.child.kill("SIGKILL"));
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    configFile,
    get process() {
      return current.child;
    },
    log: () => current.logs.join(""),
    stop: () => stopCurrent("SIGTERM"),
    restart: async (o = {}) => {
      await stopCurrent(o.hard ? "SIGKILL" : "SIGTERM");
      current = await launch(configFile, port, readyTimeoutMs);
    },
  };
}

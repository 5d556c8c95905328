/**
 * Real nats-server processes for tests: operator mode with the config `tenant-gateway init`
 * writes, a random loopback port, a temp data dir. Readiness and the port come from the server's
 * own log lines, not from sleeps.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";

export interface RunningNatsServer {
  url: string;
  port: number;
  configFile: string;
  process: ChildProcess;
  /** Everything the server logged so far. */
  log(): string;
  stop(): Promise<void>;
  /** Stops (SIGKILL when `hard`) and starts again on the same port, same store. */
  restart(opts?: { hard?: boolean }): Promise<void>;
}

const READY = /Server is ready/;
const LISTEN = /Listening for client connections on [^\s]+:(\d+)/;

function launch(configFile: string, port: number | undefined): Promise<{ child: ChildProcess; port: number; logs: string[] }> {
  const args = ["-c", configFile, ...(port === undefined ? [] : ["-p", String(port)])];
  const child = spawn("nats-server", args, { stdio: ["ignore", "pipe", "pipe"] });
  const logs: string[] = [];
  return new Promise((resolve, reject) => {
    let found: number | undefined;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`nats-server did not become ready in 20s:\n${logs.join("")}`));
    }, 20_000);
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString();
      logs.push(text);
      const m = LISTEN.exec(text);
      if (m) found = Number(m[1]);
      if (READY.test(logs.join("")) && found !== undefined) {
        clearTimeout(timer);
        resolve({ child, port: found, logs });
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited with ${code} before it was ready:\n${logs.join("")}`));
    });
  });
}

export async function startNatsServer(configFile: string): Promise<RunningNatsServer> {
  let current = await launch(configFile, undefined);
  const port = current.port;
  const stopCurrent = async (signal: NodeJS.Signals): Promise<void> => {
    const child = current.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, "exit");
    child.kill(signal);
    await exited;
  };
  const server: RunningNatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    configFile,
    get process() {
      return current.child;
    },
    log: () => current.logs.join(""),
    stop: () => stopCurrent("SIGTERM"),
    restart: async (opts = {}) => {
      await stopCurrent(opts.hard ? "SIGKILL" : "SIGTERM");
      current = await launch(configFile, port);
    },
  };
  process.once("exit", () => current.child.kill("SIGKILL"));
  return server;
}

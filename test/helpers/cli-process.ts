/**
 * A long-running `tenant-gateway` command (`serve`, `dev`) as its own process: its JSON log lines
 * as they come, its stderr, its exit. Tests await log lines and the exit, never sleep.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import readline from "node:readline";
import { CLI } from "./cli.ts";

export type LogRecord = Record<string, unknown>;

export interface CliProcess {
  child: ChildProcess;
  /** Every line the process wrote on stdout so far (JSON lines parsed; others as `{text}`). */
  lines: LogRecord[];
  stderr(): string;
  /** The first line (so far or to come) that matches; rejects when the process exits first. */
  line(predicate: (l: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Resolves when stderr (so far or to come) matches. */
  stderrMatch(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Exited, and everything it wrote has been read. */
  closed: Promise<void>;
  /** SIGKILL unless it already exited (for teardown). */
  kill(): void;
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  const lines: LogRecord[] = [];
  let stderr = "";
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    notify();
  });
  const exited = once(child, "exit").then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  const closed = once(child, "close").then(() => undefined);
  readline.createInterface({ input: child.stdout! }).on("line", (text) => {
    try {
      lines.push(JSON.parse(text) as LogRecord);
    } catch {
      lines.push({ text });
    }
    notify();
  });
  const waitFor = <T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = find();
        if (found === undefined) return false;
        cleanup();
        resolve(found);
        return true;
      };
      const describe = (): string => `stdout: ${JSON.stringify(lines).slice(-3000)}; stderr: ${stderr}`;
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what}: nothing within ${timeoutMs} ms; ${describe()}`));
      }, timeoutMs);
      const onExit = (): void => {
        // Output still in the pipes is read before "close".
        void closed.then(() => {
          if (check()) return;
          cleanup();
          reject(new Error(`${what}: the process exited first (${child.exitCode ?? child.signalCode}); ${describe()}`));
        });
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        listeners.delete(listener);
        child.off("exit", onExit);
      };
      const listener = (): void => void check();
      if (check()) return;
      listeners.add(listener);
      child.once("exit", onExit);
    });
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    closed,
    line: (predicate, timeoutMs = 60_000) => waitFor(() => lines.find(predicate), "log line", timeoutMs),
    stderrMatch: (pattern, timeoutMs = 60_000) => waitFor(() => (pattern.test(stderr) ? stderr : undefined), `stderr ${pattern}`, timeoutMs),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Runs the command to its end, or kills it after `timeoutMs` (then `timedOut`). */
export async function runToEnd(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 30_000): Promise<{ code: number | null; timedOut: boolean; stderr: string; lines: LogRecord[]; ms: number }> {
  const started = Date.now();
  const run = startCli(args, env);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    run.kill();
  }, timeoutMs);
  const { code } = await run.exited;
  clearTimeout(timer);
  await run.closed;
  return { code, timedOut, stderr: run.stderr(), lines: run.lines, ms: Date.now() - started };
}

/** A loopback port nothing listens on (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A loopback port held by another listener until `release`. */
export async function busyPort(): Promise<{ port: number; release: () => Promise<void> }> {
  const server = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return { port: (server.address() as net.AddressInfo).port, release: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Whether a TCP connection to the port is accepted ("connected") or the error code. */
export function probeConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve("connected");
    });
    socket.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

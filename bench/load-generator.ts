/** The orchestrator's handle on one load generator process (bench/load.ts). */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { BENCH_DIR } from "./deployment.ts";
import type { LoadMessage, LoadReply, LoadResults, LoadTask } from "./load-protocol.ts";

export class LoadGenerator {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private nextId = 1;
  readonly name: string;

  private constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    child.on("message", (reply: LoadReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new Error(`${this.name}: ${reply.error}`));
    });
    child.once("exit", (code, signal) => {
      for (const waiter of this.pending.values()) waiter.reject(new Error(`${this.name} exited (${code ?? signal})`));
      this.pending.clear();
    });
  }

  static async start(name: string): Promise<LoadGenerator> {
    const child = fork(path.join(BENCH_DIR, "load.ts"), [], { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    await once(child, "spawn");
    return new LoadGenerator(name, child);
  }

  get pid(): number {
    return this.child.pid!;
  }

  run<T extends LoadTask>(task: T): Promise<LoadResults[T["op"]]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, task } satisfies LoadMessage);
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, "exit");
    this.child.disconnect();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

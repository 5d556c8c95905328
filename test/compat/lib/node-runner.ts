/**
 * What the two Node client programs (node-v2, node-v3) share: reading the harness's environment,
 * running each scenario bounded in time, printing one JSON line per scenario, and the gateway
 * restart hand-shake of the `reconnect` scenario. The scenarios themselves use only their own
 * library, written as that library is meant to be used against nats-server.
 */
import { readFileSync } from "node:fs";
import { createInterface, type Interface } from "node:readline";
import { SCENARIOS, type ScenarioId, type ScenarioReport } from "./scenarios.ts";

export interface CompatEnv {
  url: string;
  ca: string;
  edgeCert: string;
  edgeKey: string;
  adminCert: string;
  adminKey: string;
  tenant: string;
  maxPayload: number;
  stream: string;
  kv: string;
  obj: string;
  /** A token unique to this run, for subjects, consumer and service names. */
  run: string;
  scenarios: Set<string> | undefined;
  variant: string;
}

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the compatibility harness sets it)`);
  return value;
}

export function compatEnv(): CompatEnv {
  const list = (process.env.NTG_SCENARIOS ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  return {
    url: required("NTG_URL"),
    ca: required("NTG_CA"),
    edgeCert: required("NTG_EDGE_CERT"),
    edgeKey: required("NTG_EDGE_KEY"),
    adminCert: required("NTG_ADMIN_CERT"),
    adminKey: required("NTG_ADMIN_KEY"),
    tenant: required("NTG_TENANT"),
    maxPayload: Number(required("NTG_MAX_PAYLOAD")),
    stream: required("NTG_STREAM"),
    kv: required("NTG_KV"),
    obj: required("NTG_OBJ"),
    run: required("NTG_RUN"),
    scenarios: list.length ? new Set(list) : undefined,
    variant: process.env.NTG_VARIANT ?? "leaf",
  };
}

/** File contents for libraries that take PEM text rather than paths. */
export function pem(file: string): string {
  return readFileSync(file, "utf8");
}

/** A scenario that cannot be expressed with this library: the cell says n/a and why. */
export class NotApplicable {
  constructor(readonly reason: string) {}
}

/** A pass with something worth knowing in its detail. */
export class PassedWith {
  constructor(readonly detail: string) {}
}

export interface ScenarioContext {
  /** What the scenario is doing now; a timeout or an error names it. */
  step(what: string): void;
  /** Something seen on the way (an async -ERR, a close reason); added to a failure's detail. */
  note(text: string): void;
  /** Runs at the end of the scenario, pass or fail (closing connections). */
  defer(cleanup: () => Promise<unknown> | unknown): void;
}

export type ScenarioBody = (ctx: ScenarioContext) => Promise<void | NotApplicable | PassedWith>;

export class CheckFailed extends Error {}

export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new CheckFailed(message);
}

/** An error as a short line: its class, message, and code where the library sets one. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err instanceof CheckFailed) return err.message;
  const code = (err as { code?: unknown }).code;
  const cause = err.cause instanceof Error && err.cause.message !== err.message ? ` (cause: ${describeError(err.cause)})` : "";
  return `${err.name}: ${err.message}${code !== undefined && !err.message.includes(String(code)) ? ` [code ${String(code)}]` : ""}${cause}`;
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Rejects with `waiting for <what>` when `promise` takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

let stdinLines: Interface | undefined;

/**
 * The `reconnect` hand-shake: tell the harness to restart the gateway (a control line on stdout)
 * and wait for its `restarted` line on stdin.
 */
export function requestGatewayRestart(): Promise<void> {
  stdinLines ??= createInterface({ input: process.stdin });
  const lines = stdinLines;
  return new Promise((resolve) => {
    lines.once("line", () => resolve());
    process.stdout.write(JSON.stringify({ control: "restart-gateway" }) + "\n");
  });
}

function emit(report: ScenarioReport): void {
  process.stdout.write(JSON.stringify(report) + "\n");
}

/**
 * Runs the scenarios the harness asked for (all when NTG_SCENARIOS is empty), each bounded by
 * `timeoutMs`; `reconnect` runs last because it restarts the gateway under every connection.
 */
export async function runScenarios(env: CompatEnv, bodies: Record<ScenarioId, ScenarioBody>, opts: { timeoutMs?: number } = {}): Promise<never> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const wanted = SCENARIOS.filter((id) => !env.scenarios || env.scenarios.has(id));
  const ordered = [...wanted.filter((id) => id !== "reconnect"), ...wanted.filter((id) => id === "reconnect")];
  for (const id of ordered) {
    let step = "start";
    const notes: string[] = [];
    const cleanups: Array<() => Promise<unknown> | unknown> = [];
    const ctx: ScenarioContext = {
      step: (what) => {
        step = what;
      },
      note: (text) => {
        if (!notes.includes(text)) notes.push(text);
      },
      defer: (cleanup) => cleanups.push(cleanup),
    };
    const started = Date.now();
    let report: ScenarioReport;
    try {
      const outcome = await within(bodies[id](ctx), id === "reconnect" ? timeoutMs + 10_000 : timeoutMs, `the scenario to finish (step: ${step})`).catch((err: unknown) => {
        if (err instanceof CheckFailed && err.message.startsWith("timed out") && err.message.includes("the scenario to finish")) {
          throw new CheckFailed(`timed out after ${Date.now() - started} ms at step: ${step}`);
        }
        throw err;
      });
      report =
        outcome instanceof NotApplicable
          ? { scenario: id, result: "n/a", detail: outcome.reason }
          : { scenario: id, result: "pass", detail: outcome instanceof PassedWith ? outcome.detail : "" };
    } catch (err) {
      const at = err instanceof CheckFailed && err.message.includes("at step:") ? "" : ` (step: ${step})`;
      report = { scenario: id, result: "fail", detail: `${describeError(err)}${at}${notes.length ? `; seen: ${notes.join("; ")}` : ""}` };
    }
    for (const cleanup of cleanups.reverse()) {
      await within(Promise.resolve().then(cleanup), 2000, "cleanup").catch(() => undefined);
    }
    emit(report);
    process.stderr.write(`[${new Date().toISOString()}] ${id}: ${report.result} in ${Date.now() - started} ms ${report.detail}\n`);
  }
  process.exit(0);
}

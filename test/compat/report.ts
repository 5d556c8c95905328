/**
 * The suite's results: the JSON written to results/latest.json, and the tables (console and
 * markdown for the README) made from it.
 */
import { SCENARIOS, type CellResult, type Variant } from "./lib/scenarios.ts";
import type { ReadmeCommandResult } from "./readme-check.ts";

export interface Cell {
  result: CellResult;
  detail: string;
}

export interface GatewayLogSummary {
  /** Distinct refusals and errors the gateway logged for this client's sessions, with counts. */
  event: string;
  count: number;
}

export interface ClientRun {
  client: string;
  variant: Variant;
  duration_ms: number;
  exit: string;
  cells: Record<string, Cell>;
  gateway_log: GatewayLogSummary[];
}

export interface BuildResult {
  ok: boolean;
  duration_ms: number;
  detail: string;
}

export interface ServerRun {
  version: string;
  bin: string;
  /** Set when the deployment could not start: every cell of this server fails with it. */
  error?: string;
  decoy: string;
  max_payload: number;
  duration_ms: number;
  runs: ClientRun[];
  readme: ReadmeCommandResult[];
}

export interface SuiteResults {
  generated: string;
  commit: string;
  duration_ms: number;
  clients: string[];
  builds: Record<string, BuildResult>;
  servers: ServerRun[];
}

const VARIANT_TITLE: Record<Variant, string> = { leaf: "edge certificate: leaf alone", chain: "edge certificate: leaf + tenant CA" };

function counts(results: SuiteResults): Record<CellResult, number> {
  const c: Record<CellResult, number> = { pass: 0, fail: 0, "n/a": 0 };
  for (const s of results.servers) for (const r of s.runs) for (const cell of Object.values(r.cells)) c[cell.result]++;
  return c;
}

export function failed(results: SuiteResults): boolean {
  return counts(results).fail > 0 || results.servers.some((s) => s.error || s.readme.some((r) => !r.ok));
}

function variantsOf(server: ServerRun): Variant[] {
  return (["leaf", "chain"] as const).filter((v) => server.runs.some((r) => r.variant === v));
}

function scenariosOf(server: ServerRun, variant: Variant): string[] {
  const seen = new Set(server.runs.filter((r) => r.variant === variant).flatMap((r) => Object.keys(r.cells)));
  return [...SCENARIOS.filter((s) => seen.has(s)), ...[...seen].filter((s) => !(SCENARIOS as readonly string[]).includes(s))];
}

function cellOf(server: ServerRun, variant: Variant, client: string, scenario: string): Cell | undefined {
  return server.runs.find((r) => r.variant === variant && r.client === client)?.cells[scenario];
}

function oneLine(text: string, max = 400): string {
  const t = text.replace(/\s+/g, " ").replaceAll("|", "\\|").trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

export function markdown(results: SuiteResults): string {
  const c = counts(results);
  const out: string[] = [
    `Compatibility suite (\`node --import tsx test/compat/run.ts\`), ${results.generated.slice(0, 10)}, commit ${results.commit.slice(0, 10)}: ${c.pass} pass, ${c.fail} fail, ${c["n/a"]} n/a in ${Math.round(results.duration_ms / 1000)} s.`,
    "",
  ];
  const brokenBuilds = Object.entries(results.builds).filter(([, b]) => !b.ok);
  if (brokenBuilds.length) {
    out.push("Client builds that failed:", "");
    for (const [client, b] of brokenBuilds) out.push(`- ${client}: ${oneLine(b.detail)}`);
    out.push("");
  }
  for (const server of results.servers) {
    if (server.error) {
      out.push(`### nats-server ${server.version}`, "", `Deployment failed: ${oneLine(server.error)}`, "");
      continue;
    }
    for (const variant of variantsOf(server)) {
      const clients = results.clients.filter((cl) => server.runs.some((r) => r.variant === variant && r.client === cl));
      out.push(`### nats-server ${server.version}, ${VARIANT_TITLE[variant]}`, "");
      out.push(`| scenario | ${clients.join(" | ")} |`, `|---|${clients.map(() => "---").join("|")}|`);
      for (const scenario of scenariosOf(server, variant)) {
        const cells = clients.map((cl) => {
          const cell = cellOf(server, variant, cl, scenario);
          return cell ? (cell.result === "fail" ? "**fail**" : cell.result) : "";
        });
        out.push(`| ${scenario} | ${cells.join(" | ")} |`);
      }
      out.push("");
      const notes: string[] = [];
      for (const run of server.runs.filter((r) => r.variant === variant)) {
        for (const scenario of scenariosOf(server, variant)) {
          const cell = run.cells[scenario];
          if (cell && cell.result !== "pass" && cell.detail) notes.push(`- ${run.client} \`${scenario}\` (${cell.result}): ${oneLine(cell.detail)}`);
        }
      }
      if (notes.length) out.push("<details><summary>failures and n/a reasons</summary>", "", ...notes, "", "</details>", "");
    }
    if (server.decoy !== "running") out.push(`globex-decoy service: ${oneLine(server.decoy)}.`, "");
    if (server.readme.length) {
      out.push(`README commands against nats-server ${server.version}:`, "");
      for (const r of server.readme) out.push(`- ${r.ok ? "ok" : "**failed**"}: \`${r.command}\`${r.ok ? "" : ` — ${oneLine(r.detail)}`}`);
      out.push("");
    }
  }
  return out.join("\n");
}

const SHORT: Record<CellResult, string> = { pass: "ok", fail: "FAIL", "n/a": "n/a" };

/** A compact table per server and variant for the terminal, then every failure with its detail. */
export function consoleReport(results: SuiteResults): string {
  const out: string[] = [];
  for (const server of results.servers) {
    if (server.error) {
      out.push(`nats-server ${server.version}: deployment failed: ${server.error}`, "");
      continue;
    }
    for (const variant of variantsOf(server)) {
      const clients = results.clients.filter((cl) => server.runs.some((r) => r.variant === variant && r.client === cl));
      const scenarios = scenariosOf(server, variant);
      const w = Math.max(...scenarios.map((s) => s.length), 8);
      const cw = clients.map((cl) => Math.max(cl.length, 4));
      out.push(`nats-server ${server.version}, ${VARIANT_TITLE[variant]}`);
      out.push(`${"".padEnd(w)}  ${clients.map((cl, i) => cl.padEnd(cw[i]!)).join("  ")}`);
      for (const s of scenarios) {
        out.push(`${s.padEnd(w)}  ${clients.map((cl, i) => (SHORT[cellOf(server, variant, cl, s)?.result ?? "n/a"] ?? "").padEnd(cw[i]!)).join("  ")}`);
      }
      out.push("");
    }
    for (const run of server.runs) {
      for (const [scenario, cell] of Object.entries(run.cells)) {
        if (cell.result === "fail") out.push(`FAIL ${server.version} ${run.variant} ${run.client} ${scenario}: ${oneLine(cell.detail, 600)}`);
      }
    }
    for (const r of server.readme) if (!r.ok) out.push(`FAIL ${server.version} README: ${r.command}: ${oneLine(r.detail, 600)}`);
    out.push("");
  }
  const c = counts(results);
  out.push(`${c.pass} pass, ${c.fail} fail, ${c["n/a"]} n/a; ${Math.round(results.duration_ms / 1000)} s`);
  return out.join("\n");
}

/**
 * docs/troubleshooting.md maps every code to its cause and fix: the codes the source can produce
 * — errors' codes (`new CodedError("…")`, `IdentityError`, the HTTP errors), code unions
 * (`…Code = "a" | "b"`, `…Reason`), refusals' codes (`code: "…"`, `refuse("…")`), the rewriters'
 * REFUSAL_CODES and the HTTP status table — all appear in its tables, and every code its tables
 * name is one the source produces.
 */
import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { PROJECT_ROOT } from "./helpers/cli.ts";

const SOURCE_DIRS = ["common", "pki", "accounts", "streams", "gateway", "admin", "onboarding", "cli"];
const CODE = "[a-z][a-z0-9]*(?:_[a-z0-9]+)*";

async function sourceFiles(): Promise<string[]> {
  const files: string[] = [];
  for (const dir of SOURCE_DIRS) {
    const root = path.join(PROJECT_ROOT, dir);
    const entries = await fs.readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isFile() && e.name.endsWith(".ts")) files.push(path.join(e.parentPath, e.name));
  }
  return files;
}

/** Every code the source can produce, with a file that produces it. */
async function sourceCodes(): Promise<Map<string, string>> {
  const codes = new Map<string, string>();
  const add = (code: string, file: string): void => void (codes.has(code) || codes.set(code, path.relative(PROJECT_ROOT, file)));
  for (const file of await sourceFiles()) {
    const text = await fs.readFile(file, "utf8");
    // String literals of an expression, except those it compares with (`role === "component" ? … : …`).
    const literals = (expression: string): string[] => [...expression.matchAll(new RegExp(`(?<![!=]==\\s*)"(${CODE})"`, "g"))].map((m) => m[1]!);
    // new CodedError("x", …), new IdentityError(err.code ?? "x", …): the first argument's literals
    for (const m of text.matchAll(/\bnew \w*(?:Error|Refused)\(\s*([^,\n]*?)[,)]/g)) literals(m[1]!).forEach((c) => add(c, file));
    // httpError(404, "x", …), downloadError(409, "x", …): the second argument's
    for (const m of text.matchAll(/\b(?:httpError|downloadError)\([^,\n]*,\s*([^,\n]*?)[,)]/g)) literals(m[1]!).forEach((c) => add(c, file));
    // { code: "x" }, { code: cond ? "x" : "y" } in refusals and log records
    for (const m of text.matchAll(/\bcode: ([^,{}\n]*)/g)) literals(m[1]!).forEach((c) => add(c, file));
    // refuse("x", …), refusal(verb, "x", …)
    for (const m of text.matchAll(new RegExp(`\\b(?:refuse|refusal)\\((?:[^"()]*,\\s*)?"(${CODE})"`, "g"))) add(m[1]!, file);
    for (const union of text.matchAll(/type \w*(?:Code|Reason)\s*=([^;]*);/g)) for (const m of union[1]!.matchAll(new RegExp(`"(${CODE})"`, "g"))) add(m[1]!, file);
    for (const table of text.matchAll(/(?:REFUSAL_CODES|STATUS_BY_CODE)[^{]*\{([^}]*)\}/g)) {
      for (const m of table[1]!.matchAll(new RegExp(`(?:"(${CODE})"|^\\s*(${CODE}):)`, "gm"))) add((m[1] ?? m[2])!, file);
    }
  }
  return codes;
}

/** The codes docs/troubleshooting.md's tables name in their first column. */
async function documentedCodes(): Promise<Set<string>> {
  const text = await fs.readFile(path.join(PROJECT_ROOT, "docs", "troubleshooting.md"), "utf8");
  const codes = new Set<string>();
  for (const row of text.matchAll(/^\|([^|\n]*)\|/gm)) for (const m of row[1]!.matchAll(new RegExp(`\`(${CODE})\``, "g"))) codes.add(m[1]!);
  return codes;
}

test("every code the source produces has its cause and fix in docs/troubleshooting.md", async (t) => {
  const source = await sourceCodes();
  const documented = await documentedCodes();
  t.true(source.size > 100, `${source.size} codes found in the source`);
  const missing = [...source].filter(([code]) => !documented.has(code)).map(([code, file]) => `${code} (${file})`);
  t.deepEqual(missing, [], "add a row to docs/troubleshooting.md for each");
});

test("every code docs/troubleshooting.md names is one the source produces", async (t) => {
  const source = await sourceCodes();
  const stale = [...(await documentedCodes())].filter((code) => !source.has(code));
  t.deepEqual(stale, [], "codes no longer in the source: remove or rename their rows");
});

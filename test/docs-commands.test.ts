/**
 * The docs stay true: every ```sh block of docs/*.md runs, in order, in a directory where
 * `tenant-gateway dev` is running (as the pages say), with this repository's deploy/ and docker/
 * beside it — only the gateway's ports made free. A block preceded by `<!-- not run: <reason> -->`
 * (it needs a Docker engine or a Kubernetes cluster) is listed instead, and the `tenant-gateway`
 * commands of every block, run or not, are checked against the CLI: each subcommand exists and
 * takes each option the page gives it. Relative links between the pages resolve, anchors included.
 */
import { spawn } from "node:child_process";
import { promises as fs, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import test from "ava";
import { CLI, PROJECT_ROOT, runCli, runFile } from "./helpers/cli.ts";
import { freePort } from "./helpers/cli-process.ts";
import { helmBinary } from "./helpers/deploy.ts";
import { tempDir } from "./helpers/tmp.ts";

const DOCS = path.join(PROJECT_ROOT, "docs");
const NOT_RUN = /^<!--\s*not run:\s*(.+?)\s*-->$/;

interface Block {
  doc: string;
  line: number;
  text: string;
  notRun?: string;
}

function blocksOf(doc: string, markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    let end = i + 1;
    while (end < lines.length && !/^\s*```\s*$/.test(lines[end]!)) end++;
    if (open[2] === "sh") {
      let prev = i - 1;
      while (prev >= 0 && lines[prev]!.trim() === "") prev--;
      const notRun = prev >= 0 ? NOT_RUN.exec(lines[prev]!.trim())?.[1] : undefined;
      const text = lines.slice(i + 1, end).map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length))).join("\n");
      blocks.push({ doc, line: i + 1, text, ...(notRun ? { notRun } : {}) });
    }
    i = end;
  }
  return blocks;
}

function docFiles(): string[] {
  return readdirSync(DOCS).filter((f) => f.endsWith(".md")).sort();
}

function allBlocks(): Block[] {
  return docFiles().flatMap((f) => blocksOf(f, readFileSync(path.join(DOCS, f), "utf8")));
}

/** Shell commands of a block, continuation lines joined, comments dropped. */
function commandsOf(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, " ")
    .split("\n")
    .map((l) => l.replace(/(^|\s)#.*$/, "").trim())
    .filter(Boolean);
}

/** `tenant-gateway …` invocations in a command line (also after `|`, `&&`, `$(`, env assignments). */
function tenantGatewayCalls(command: string): string[][] {
  const calls: string[][] = [];
  for (const m of command.matchAll(/(?:^|[|;&(]\s*|\s)tenant-gateway((?:\s+(?:"[^"]*"|'[^']*'|[^\s|;&)]+))*)/g)) {
    const words = [...m[1]!.matchAll(/"[^"]*"|'[^']*'|[^\s]+/g)].map((w) => w[0]);
    calls.push(words);
  }
  return calls;
}

const helpCache = new Map<string, string>();
async function helpOf(subcommands: string[]): Promise<{ code: number; text: string }> {
  const key = subcommands.join(" ");
  if (!helpCache.has(key)) {
    const r = await runCli([...subcommands, "--help"]);
    helpCache.set(key, r.code === 0 ? r.stdout : `\u0000${r.stderr}`);
  }
  const text = helpCache.get(key)!;
  return text.startsWith("\u0000") ? { code: 1, text: text.slice(1) } : { code: 0, text };
}

test("every tenant-gateway command the docs show names a real subcommand and only options it takes", async (t) => {
  let checked = 0;
  for (const block of allBlocks()) {
    for (const command of commandsOf(block.text)) {
      for (const words of tenantGatewayCalls(command)) {
        const subcommands: string[] = [];
        for (const w of words) {
          if (w.startsWith("-") || !/^[a-z][a-z0-9-]*$/.test(w)) break;
          const help = await helpOf([...subcommands, w]);
          if (help.code !== 0 || !/Usage: tenant-gateway/.test(help.text)) break;
          // An argument that happens to look like a word (a slug) is not a subcommand: stop when the parent has no such command.
          const parent = await helpOf(subcommands);
          if (!new RegExp(`^\\s+${w}\\b`, "m").test(parent.text.split("Commands:")[1] ?? "")) break;
          subcommands.push(w);
        }
        t.true(subcommands.length > 0, `${block.doc}:${block.line}: "tenant-gateway ${words.join(" ")}" names no subcommand`);
        const help = (await helpOf(subcommands)).text;
        for (const option of words.filter((w) => /^--[a-z]/.test(w)).map((w) => w.split("=")[0]!)) {
          t.true(help.includes(option), `${block.doc}:${block.line}: tenant-gateway ${subcommands.join(" ")} has no option ${option}`);
        }
        checked++;
      }
    }
  }
  t.true(checked > 40, `checked ${checked} commands`);
});

/**
 * The README's `tenant-gateway …` usages: its shell blocks and every inline code span (the CLI
 * tables), with the usage notation (`[--opt X]`, `(--a | --b)`) stripped to words.
 */
function readmeCalls(): Array<{ line: number; words: string[] }> {
  const lines = readFileSync(path.join(PROJECT_ROOT, "README.md"), "utf8").split("\n");
  const calls: Array<{ line: number; words: string[] }> = [];
  lines.forEach((text, i) => {
    const spans = [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    for (const span of spans.length > 0 ? spans : [text]) {
      for (const words of tenantGatewayCalls(span.replace(/\\\|/g, "/"))) calls.push({ line: i + 1, words: words.map((w) => w.replace(/^[[(]+|[\])]+$/g, "")) });
    }
  });
  return calls;
}

test("every tenant-gateway command the README shows names a real subcommand and only options it takes", async (t) => {
  let checked = 0;
  for (const { line, words } of readmeCalls()) {
    const subcommands: string[] = [];
    for (const w of words) {
      if (!/^[a-z][a-z0-9-]*$/.test(w)) break;
      const parent = await helpOf(subcommands);
      if (!new RegExp(`^\\s+${w}\\b`, "m").test(parent.text.split("Commands:")[1] ?? "")) break;
      subcommands.push(w);
    }
    if (subcommands.length === 0) continue; // prose: "tenant-gateway serve" as a name, not a usage
    const help = (await helpOf(subcommands)).text;
    for (const option of words.filter((w) => /^--[a-z]/.test(w)).map((w) => w.split("=")[0]!)) {
      t.true(help.includes(option), `README.md:${line}: tenant-gateway ${subcommands.join(" ")} has no option ${option}`);
    }
    checked++;
  }
  t.true(checked > 40, `checked ${checked} commands`);
});

test("relative links between the docs resolve, anchors included", async (t) => {
  const slug = (heading: string): string => heading.trim().toLowerCase().replace(/[`*_]/g, "").replace(/[^\p{L}\p{N}\s-]/gu, "").replace(/\s/g, "-");
  const anchors = new Map<string, Set<string>>();
  for (const f of docFiles()) anchors.set(f, new Set([...readFileSync(path.join(DOCS, f), "utf8").matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1]!))));
  for (const f of docFiles()) {
    const text = readFileSync(path.join(DOCS, f), "utf8").replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!;
      if (/^[a-z]+:/.test(target)) continue;
      const [file, anchor] = target.split("#");
      const resolved = file ? path.resolve(DOCS, file) : path.join(DOCS, f);
      await t.notThrowsAsync(fs.access(resolved), `${f}: link ${target}`);
      if (anchor && resolved.startsWith(DOCS) && resolved.endsWith(".md")) t.true(anchors.get(path.basename(resolved))?.has(anchor), `${f}: anchor #${anchor} in ${path.basename(resolved)}`);
    }
  }
});

test("blocks that are not run say why", (t) => {
  const notRun = allBlocks().filter((b) => b.notRun);
  for (const b of notRun) {
    t.regex(b.notRun!, /\w{3,}/, `${b.doc}:${b.line}`);
    t.log(`not run: ${b.doc}:${b.line} — ${b.notRun}`);
  }
  t.true(allBlocks().filter((b) => !b.notRun).length > notRun.length, "most blocks run");
});

async function tool(name: string, candidates: string[]): Promise<string> {
  for (const c of candidates) {
    if ((await runFile("sh", ["-c", `command -v ${c}`])).code === 0 || (await fs.access(c).then(() => true, () => false))) return c;
  }
  throw new Error(`${name} is needed to run the docs' commands (install it; CI's .ci/run does)`);
}

/** Runs one page's runnable blocks, in order, against a fresh `tenant-gateway dev`. */
async function runDoc(doc: string): Promise<{ ran: number; output: string; code: number | null; failedAt?: string }> {
  const blocks = blocksOf(doc, await fs.readFile(path.join(DOCS, doc), "utf8")).filter((b) => !b.notRun);
  if (blocks.length === 0) return { ran: 0, output: "", code: 0 };
  for (const needed of ["jq", "curl", "openssl"]) await tool(needed, [needed]);
  const dir = tempDir("ntg-docs-");
  for (const shared of ["deploy", "docker"]) await fs.symlink(path.join(PROJECT_ROOT, shared), path.join(dir, shared));
  const bin = path.join(dir, ".bin");
  await fs.mkdir(bin);
  const natscli = (await runFile(path.join(PROJECT_ROOT, "scripts", "nats-servers.sh"), ["natscli"])).stdout.trim();
  await fs.access(natscli).catch(() => {
    throw new Error(`the nats CLI is not installed at ${natscli}: run scripts/nats-servers.sh install`);
  });
  const shims: Record<string, string> = { "tenant-gateway": `exec node ${JSON.stringify(CLI)} "$@"`, nats: `exec ${JSON.stringify(natscli)} "$@"`, helm: `exec ${JSON.stringify(helmBinary())} "$@"` };
  for (const [name, body] of Object.entries(shims)) await fs.writeFile(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });

  const [gatewayPort, httpPort] = [await freePort(), await freePort()];
  // The pages' commands see a clean environment: none of this process's TENANT_GATEWAY_* settings.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TENANT_GATEWAY_"))) as Record<string, string>;
  const env: Record<string, string> = { ...inherited, PATH: `${bin}:${process.env.PATH ?? ""}`, HOME: path.join(dir, ".home"), TENANT_GATEWAY_CLI: CLI, APP_DIR: PROJECT_ROOT };
  await fs.mkdir(env.HOME!);
  const dev = startDev(dir, gatewayPort, httpPort, env);
  try {
    await dev.ready;
    const script = [
      `trap 'echo "docs-test: failed in ${doc} block at line $BLOCK_LINE" >&2' ERR`,
      ...blocks.map((b) => `BLOCK_LINE=${b.line}\n${b.text.replaceAll("localhost:4222", `localhost:${gatewayPort}`).replaceAll("localhost:8080", `localhost:${httpPort}`)}`),
    ].join("\n");
    await fs.writeFile(path.join(dir, ".script.sh"), script);
    const r = await runIn(dir, ["bash", "-euo", "pipefail", ".script.sh"], env);
    const failedAt = /docs-test: failed in (.+)$/m.exec(r.output)?.[1];
    return { ran: blocks.length, output: r.output, code: r.code, ...(failedAt ? { failedAt } : {}) };
  } finally {
    await dev.stop();
  }
}

/** `tenant-gateway dev` in `dir` (its data in `dir/data`), ready once it prints how to connect. */
function startDev(dir: string, gatewayPort: number, httpPort: number, env: Record<string, string>): { ready: Promise<void>; stop: () => Promise<void> } {
  const child = spawn(process.execPath, [CLI, "dev", "--listen", `127.0.0.1:${gatewayPort}`, "--http-listen", `127.0.0.1:${httpPort}`, "--log-level", "warn"], { cwd: dir, env, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tenant-gateway dev did not start within 120 s: ${stderr}`)), 120_000);
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
      if (/Ctrl-C stops/.test(stderr)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`tenant-gateway dev exited (${code}) before it was ready: ${stderr}`));
    });
  });
  return {
    ready,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

function runIn(cwd: string, argv: string[], env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output += c.toString()));
    child.stderr.on("data", (c: Buffer) => (output += c.toString()));
    child.once("exit", (code) => resolve({ code, output }));
  });
}

for (const doc of docFiles()) {
  test.serial(`docs/${doc}: every shell block that can run here runs as written`, async (t) => {
    const r = await runDoc(doc);
    if (r.ran === 0) {
      t.pass(`${doc} has no runnable shell blocks`);
      return;
    }
    t.is(r.code, 0, `${r.failedAt ?? doc}:\n${r.output.slice(-4000)}`);
    t.log(`${doc}: ${r.ran} block(s) ran`);
  });
}

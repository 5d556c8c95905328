/**
 * Every `nats …` command the README shows in its shell code blocks, run as written with the pinned
 * nats CLI against the suite's gateway: from a directory whose `data` is the deployment's data dir,
 * with the README's own variable assignments (`C=…`), only the server URL's port changed. A command
 * ending in `&` runs in the background while the following ones run (the README's subscriber).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { issueComponentFiles } from "../../pki/authority.ts";
import { startEchoResponder } from "./decoy.ts";
import { EDGE_TENANT, type CompatDeployment } from "./deployment.ts";

export interface ReadmeCommandResult {
  command: string;
  ok: boolean;
  detail: string;
}

interface ReadmeCommand {
  text: string;
  background: boolean;
}

/** Variable assignments (`NAME=value` lines) and `nats` command lines of the README's shell blocks. */
export function readmeCommands(readme: string): { assignments: string[]; commands: ReadmeCommand[] } {
  const assignments: string[] = [];
  const commands: ReadmeCommand[] = [];
  for (const block of shellBlocks(readme)) {
    for (const raw of block.split("\n")) {
      const line = raw.replace(/\s+#.*$/, "").trim();
      if (/^[A-Z_][A-Z0-9_]*=\S+$/.test(line)) assignments.push(line);
      if (!line.startsWith("nats ")) continue;
      const background = line.endsWith("&");
      commands.push({ text: background ? line.slice(0, -1).trim() : line, background });
    }
  }
  return { assignments, commands };
}

/** The bodies of the fenced blocks marked sh, bash, shell or console, or not marked at all (a yaml block's closing fence opens nothing). */
function shellBlocks(markdown: string): string[] {
  const blocks: string[] = [];
  let open: { shell: boolean; lines: string[] } | undefined;
  for (const line of markdown.split("\n")) {
    const fence = /^```\s*(\S*)\s*$/.exec(line);
    if (!fence) {
      open?.lines.push(line);
      continue;
    }
    if (open) {
      if (open.shell) blocks.push(open.lines.join("\n"));
      open = undefined;
    } else open = { shell: ["", "sh", "bash", "shell", "console"].includes(fence[1]!), lines: [] };
  }
  return blocks;
}

function tail(text: string, max = 300): string {
  const t = text.trim().replace(/\s+/g, " ");
  return t.length > max ? `…${t.slice(-max)}` : t;
}

export async function checkReadmeCommands(opts: { readmeFile: string; natscli: string; deployment: CompatDeployment; workDir: string }): Promise<ReadmeCommandResult[]> {
  const { assignments, commands } = readmeCommands(await fs.readFile(opts.readmeFile, "utf8"));
  if (commands.length === 0) return [];
  const d = opts.deployment;
  const dir = path.join(opts.workDir, "readme");
  await fs.mkdir(dir, { recursive: true });
  await fs.rm(path.join(dir, "data"), { force: true });
  await fs.symlink(d.layout.dir, path.join(dir, "data"));
  // The files the README's commands name: what `tenant-gateway dev` creates.
  const agent = await issueComponentFiles(d.layout, { tenant: EDGE_TENANT, component: "agent-001", partition: "partition-1" });
  // `req svc.echo` needs something answering; `dev` runs nothing there, so the harness does.
  const echo = await startEchoResponder(d.url, { cert: agent.files.cert, key: agent.files.key }, d.rootCa, "svc.echo");
  const home = await fs.mkdtemp(path.join(os.tmpdir(), "compat-readme-home-"));
  const env = { ...process.env, PATH: `${path.dirname(opts.natscli)}:${process.env.PATH ?? ""}`, HOME: home, XDG_CONFIG_HOME: path.join(home, ".config") };
  const port = new URL(d.url).port;
  const prelude = assignments.map((a) => `${a}; `).join("");
  const results: ReadmeCommandResult[] = [];
  const background: Array<{ command: ReadmeCommand; child: ChildProcess; output: () => string; exit: Promise<number | null> }> = [];
  const runOne = (command: ReadmeCommand): { child: ChildProcess; output: () => string; exit: Promise<number | null> } => {
    const script = prelude + command.text.replaceAll("tls://localhost:4222", `tls://localhost:${port}`);
    const child = spawn("bash", ["-c", script], { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    child.stdout!.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr!.on("data", (c: Buffer) => (out += c.toString()));
    const exit = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    return { child, output: () => out, exit };
  };
  const kill = (child: ChildProcess): void => {
    try {
      if (child.pid) process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
  };
  try {
    for (const [i, command] of commands.entries()) {
      const running = runOne(command);
      if (command.background) {
        background.push({ command, ...running });
        // Give a subscriber time to subscribe before the next command publishes.
        await new Promise((r) => setTimeout(r, 700));
        continue;
      }
      const timer = setTimeout(() => kill(running.child), 15_000);
      const code = await running.exit;
      clearTimeout(timer);
      // The CLI exits 0 after some failures (`req` without responders): its output is read too.
      const complaint = /no responders|error|denied|violation|timeout/i.exec(running.output());
      const ok = code === 0 && !complaint;
      results[i] = { command: command.text, ok, detail: ok ? tail(running.output(), 160) : `exit ${code ?? "killed after 15 s"}: ${tail(running.output())}` };
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const b of background) {
      const i = commands.indexOf(b.command);
      const exited = b.child.exitCode;
      kill(b.child);
      await b.exit;
      const received = (b.output().match(/Received on/g) ?? []).length;
      const expectsMessages = / sub /.test(` ${b.command.text} `) && commands.slice(i + 1).some((c) => / pub /.test(` ${c.text} `));
      const ok = exited === null && (!expectsMessages || received > 0);
      results[i] = { command: `${b.command.text} &`, ok, detail: exited !== null ? `exited early (${exited}): ${tail(b.output())}` : `ran in the background; received ${received} message(s)${ok ? "" : `: ${tail(b.output())}`}` };
    }
  } finally {
    for (const b of background) kill(b.child);
    await echo.stop();
    await fs.rm(home, { recursive: true, force: true });
  }
  if (echo.status !== "running") results.push({ command: "(harness) svc.echo responder for `nats req svc.echo`", ok: false, detail: echo.status });
  return results.filter(Boolean);
}

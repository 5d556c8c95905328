import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { CLI, PROJECT_ROOT, runFile } from "./helpers/cli.ts";
import { tempDir } from "./helpers/tmp.ts";

/**
 * The launcher's choice between dist/ and the sources, on a checkout of its own: the real
 * launcher file, the real node_modules (for tsx), and two stand-in entry points that say which ran.
 */
async function checkout(): Promise<{ root: string; at(rel: string, secondsFromNow: number): Promise<void>; run(): Promise<string> }> {
  const root = tempDir("ntg-bin-");
  await fs.mkdir(path.join(root, "bin"));
  await fs.copyFile(CLI, path.join(root, "bin", "tenant-gateway.js"));
  await fs.symlink(path.join(PROJECT_ROOT, "node_modules"), path.join(root, "node_modules"));
  await fs.writeFile(path.join(root, "package.json"), JSON.stringify({ type: "module" }));
  await fs.mkdir(path.join(root, "cli"));
  await fs.writeFile(path.join(root, "cli", "main.ts"), 'const ran: string = "sources";\nprocess.stdout.write(ran);\n');
  await fs.mkdir(path.join(root, "dist", "cli"), { recursive: true });
  await fs.writeFile(path.join(root, "dist", "cli", "main.js"), 'process.stdout.write("compiled");\n');
  const now = Date.now() / 1000;
  return {
    root,
    async at(rel, secondsFromNow) {
      const file = path.join(root, rel);
      await fs.mkdir(path.dirname(file), { recursive: true });
      await fs.appendFile(file, "");
      await fs.utimes(file, now + secondsFromNow, now + secondsFromNow);
    },
    async run() {
      const r = await runFile(process.execPath, [path.join(root, "bin", "tenant-gateway.js")]);
      if (r.code !== 0) throw new Error(`launcher failed: ${r.stderr}`);
      return r.stdout;
    },
  };
}

test("without a finished build (no dist/BUILD) the launcher runs the sources", async (t) => {
  const c = await checkout();
  t.is(await c.run(), "sources");
});

test("a build newer than every source file is what runs", async (t) => {
  const c = await checkout();
  await c.at("cli/main.ts", -60);
  await c.at("pki/names.ts", -60);
  await c.at("dist/BUILD", 0);
  t.is(await c.run(), "compiled");
});

test("a source file edited after the build, however deep, sends the launcher back to the sources", async (t) => {
  const c = await checkout();
  await c.at("cli/main.ts", -60);
  await c.at("dist/BUILD", 0);
  await c.at("streams/templates/events.json", 60);
  t.is(await c.run(), "sources");
});

test("an image that carries only bin/ and dist/ runs the build", async (t) => {
  const c = await checkout();
  await c.at("dist/BUILD", 0);
  await fs.rm(path.join(c.root, "cli", "main.ts"));
  t.is(await c.run(), "compiled");
});

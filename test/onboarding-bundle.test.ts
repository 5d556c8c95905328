/**
 * The pieces of an onboarding bundle without NATS: the tar writer (read back by the system's tar
 * and by Python's tarfile, long paths included), the token that seals a bundle (only it opens it,
 * only for its package), and the template renderer's refusals.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { tarGz } from "../onboarding/tar.ts";
import { renderTemplate } from "../onboarding/templates.ts";
import { newToken, openBundle, sealBundle, TOKEN_PATTERN, tokenHash, tokenMatches } from "../onboarding/token.ts";
import { tempDir } from "./helpers/tmp.ts";

const run = promisify(execFile);

test("a tar.gz of in-memory files is extracted by the system's tar with its contents, modes and directories; long paths too", async (t) => {
  const dir = tempDir();
  const long = `${"deep/".repeat(25)}file.txt`;
  const binary = Buffer.from(Array.from({ length: 1500 }, (_, i) => i % 256));
  const archive = tarGz([
    { path: "certs/key.pem", data: "secret\n", mode: 0o600 },
    { path: "install.sh", data: "#!/bin/sh\necho hi\n", mode: 0o755 },
    { path: "empty.txt", data: "", mode: 0o644 },
    { path: "blob.bin", data: binary, mode: 0o644 },
    { path: long, data: "long\n", mode: 0o644 },
  ]);
  await fs.writeFile(path.join(dir, "a.tar.gz"), archive);
  const out = path.join(dir, "out");
  await fs.mkdir(out);
  await run("tar", ["-xzf", path.join(dir, "a.tar.gz"), "-C", out]);
  t.is(await fs.readFile(path.join(out, "certs/key.pem"), "utf8"), "secret\n");
  t.is((await fs.stat(path.join(out, "certs/key.pem"))).mode & 0o777, 0o600);
  t.is((await fs.stat(path.join(out, "install.sh"))).mode & 0o777, 0o755);
  t.is((await run(path.join(out, "install.sh"), [])).stdout, "hi\n");
  t.deepEqual(await fs.readFile(path.join(out, "blob.bin")), binary);
  t.is(await fs.readFile(path.join(out, "empty.txt"), "utf8"), "");
  t.is(await fs.readFile(path.join(out, long), "utf8"), "long\n");
  const python = await run("python3", ["-c", "import tarfile,sys; print('\\n'.join(sorted(m.name for m in tarfile.open(sys.argv[1]).getmembers() if m.isfile())))", path.join(dir, "a.tar.gz")]).catch(() => undefined);
  if (python) t.deepEqual(python.stdout.trim().split("\n"), ["blob.bin", "certs/key.pem", long, "empty.txt", "install.sh"].sort());
});

test("a bundle sealed under a token opens with that token only, and only as that package's", (t) => {
  const token = newToken();
  t.regex(token, TOKEN_PATTERN);
  t.not(newToken(), token);
  const sealed = sealBundle(Buffer.from("the bundle"), token, "pkg-1");
  t.is(openBundle(sealed, token, "pkg-1").toString(), "the bundle");
  t.throws(() => openBundle(sealed, newToken(), "pkg-1"));
  t.throws(() => openBundle(sealed, token, "pkg-2"), undefined, "moved to another package, it does not open");
  t.true(tokenMatches(token, tokenHash(token)));
  t.false(tokenMatches(newToken(), tokenHash(token)));
  t.false(sealed.data.includes(Buffer.from("the bundle").toString("base64")));
});

test("the renderer substitutes values and refuses unknown names, malformed placeholders and output that does not parse", (t) => {
  t.is(renderTemplate("x.yaml", "tenant: {{tenant}}\nid: {{id2}}\n", { tenant: "acme", id2: "7" }), "tenant: acme\nid: 7\n");
  t.throws(() => renderTemplate("x.yaml", "a: {{nope}}\n", { tenant: "acme" }), { code: "invalid_onboarding_template", message: /x\.yaml .*\{\{nope\}\}.*\{\{tenant\}\}/ });
  t.throws(() => renderTemplate("x.yaml", "a: {{Tenant}}\n", { tenant: "acme" }), { code: "invalid_onboarding_template", message: /\{\{Tenant\}\} is not a placeholder/ });
  t.throws(() => renderTemplate("x.yaml", "a: [{{tenant}}\n", { tenant: "acme" }), { code: "invalid_onboarding_template", message: /does not parse/ });
  t.throws(() => renderTemplate("x.json", '{"a": {{tenant}}}', { tenant: "acme" }), { code: "invalid_onboarding_template", message: /does not parse/ });
  t.is(renderTemplate("install.sh", 'echo "${HOME}" {{tenant}}\n', { tenant: "acme" }), 'echo "${HOME}" acme\n', "shell syntax passes untouched");
});

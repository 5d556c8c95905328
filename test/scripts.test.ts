import { promises as fs } from "node:fs";
import path from "node:path";
import test from "ava";
import { PROJECT_ROOT, runFile } from "./helpers/cli.ts";
import { tempDir } from "./helpers/tmp.ts";

const script = (name: string): string => path.join(PROJECT_ROOT, "scripts", name);

test("generate-certs.sh builds the hierarchy on a clean directory and is idempotent", async (t) => {
  const dir = path.join(tempDir(), "certs");
  const first = await runFile(script("generate-certs.sh"), ["--output-dir", dir, "--tenant", "acme-corp"]);
  t.is(first.code, 0, first.stderr);
  for (const rel of ["root.pem", "root-key.pem", "platform/ca.pem", "platform/gateway.pem", "tenants/acme-corp/ca.pem", "tenants/acme-corp/ca-key.pem", "tenants/acme-corp/ca-chain.pem", "tenants/acme-corp/components/agent-001-partition-1.pem", "tenants/acme-corp/components/agent-001-partition-1-key.pem", "tenants/acme-corp/components/agent-001-partition-1-chain.pem"]) {
    await t.notThrowsAsync(fs.access(path.join(dir, rel)), rel);
  }
  const snapshot = async (): Promise<string[]> => Promise.all(["root.pem", "tenants/acme-corp/ca.pem", "tenants/acme-corp/components/agent-001-partition-1.pem"].map((f) => fs.readFile(path.join(dir, f), "utf8")));
  const before = await snapshot();
  const second = await runFile(script("generate-certs.sh"), ["--output-dir", dir, "--tenant", "acme-corp"]);
  t.is(second.code, 0, second.stderr);
  t.regex(second.stdout, /exists/);
  t.deepEqual(await snapshot(), before, "a second run changes nothing");
});

test("generate-certs.sh defaults to a 'default' tenant, and FORCE_REGENERATE re-creates", async (t) => {
  const dir = path.join(tempDir(), "certs");
  t.is((await runFile(script("generate-certs.sh"), ["--output-dir", dir])).code, 0);
  const leaf = path.join(dir, "tenants/default/components/agent-001-partition-1.pem");
  const before = await fs.readFile(leaf, "utf8");
  const forced = await runFile(script("generate-certs.sh"), ["--output-dir", dir], { FORCE_REGENERATE: "true" });
  t.is(forced.code, 0, forced.stderr);
  t.not(await fs.readFile(leaf, "utf8"), before);
});

test("generate-tenant-ca.sh wraps pki tenant-ca and passes --json through", async (t) => {
  const dir = path.join(tempDir(), "certs");
  t.is((await runFile(script("generate-certs.sh"), ["--output-dir", dir, "--tenant", "acme-corp"])).code, 0);
  const r = await runFile(script("generate-tenant-ca.sh"), ["globex", "--output-dir", dir, "--validity-years", "5", "--json"]);
  t.is(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { status: string; subject_cn: string; not_after: string };
  t.is(json.status, "created");
  t.is(json.subject_cn, "tenant-globex.ca.serviceradar");
  const years = (Date.parse(json.not_after) - Date.now()) / (365.25 * 86_400_000);
  t.true(years > 4.9 && years < 5.1);
  const again = JSON.parse((await runFile(script("generate-tenant-ca.sh"), ["globex", "--output-dir", dir, "--json"])).stdout) as { status: string };
  t.is(again.status, "exists");
  const bad = await runFile(script("generate-tenant-ca.sh"), ["Not_A_Slug", "--output-dir", dir]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /invalid_slug/);
});

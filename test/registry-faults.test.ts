/**
 * A registry change the gateway could not read when it heard of it is not lost. The store may
 * fail a read (a NATS node restarting under the KV store, a timeout under load, a file caught
 * mid-edit): the gateway keeps the tenant's last good state and reads it again, with backoff,
 * until it succeeds — no second change has to come along to carry it.
 */
import { promises as fs } from "node:fs";
import test from "ava";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"] });
});

test.after.always(async () => {
  await dep?.stop();
});

test("a tenant record that cannot be read when its change is seen is read again until it can be", async (t) => {
  const file = dep.layout.tenantRecord("acme-corp").record;
  const original = await fs.readFile(file, "utf8");
  const record = JSON.parse(original) as { status: string };
  t.is(record.status, "active");
  // The change the gateway must not lose, and an unreadable file of exactly its size.
  const suspended = JSON.stringify({ ...record, status: "suspended" }, null, 2) + "\n";
  const unreadable = "x" + suspended.slice(1);

  const seen = dep.logs.lines.length;
  await fs.writeFile(file, unreadable);
  const failed = await dep.logs.waitFor((l) => l.event === "tenant_refresh_failed" && l.tenant === "acme-corp" && dep.logs.lines.indexOf(l) >= seen);
  t.true(Number(failed.retry_in_ms) > 0);
  // Repaired without anything the store's watch could notice: same size, same modification time.
  const { mtime } = await fs.stat(file);
  await fs.writeFile(file, suspended);
  await fs.utimes(file, mtime, mtime);
  const changed = await dep.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "acme-corp" && dep.logs.lines.indexOf(l) >= seen, 15_000);
  t.is(changed.status, "suspended");
  t.is(dep.logs.lines.filter((l) => l.event === "tenant_changed" && l.tenant === "acme-corp" && dep.logs.lines.indexOf(l) >= seen).length, 1);
});

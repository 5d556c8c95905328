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

test("a registry change the watch never reported is applied by the periodic reconciliation", async (t) => {
  // A deployment of its own: the reconciliation runs every 300 ms here (30 s by default).
  const own = await startDeployment({ tenants: ["globex"], gateway: { registry_reconcile_ms: 300 } });
  t.teardown(() => own.stop());
  const file = own.layout.tenantRecord("globex").record;
  const original = await fs.readFile(file, "utf8");
  const record = JSON.parse(original) as { status: string };
  t.is(record.status, "active");
  // The suspension, written so the store's watch cannot see it (same size, same modification
  // time), stands for a change the watch lost (nats-server 2.9 can skip a KV message).
  const compact = JSON.stringify({ ...record, status: "suspended" });
  t.true(compact.length < original.length);
  const suspended = compact.padEnd(original.length - 1, " ") + "\n";
  // A whole-second modification time first (utimes cannot restore sub-millisecond ones); the
  // watch sees that touch and re-reads the unchanged record.
  const stamp = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
  const touched = own.logs.lines.length;
  await fs.utimes(file, stamp, stamp);
  await own.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "globex" && own.logs.lines.indexOf(l) >= touched);
  const seen = own.logs.lines.length;
  // Prepared beside it and renamed over it: at no moment does the file show another size or time.
  await fs.writeFile(`${file}.new`, suspended);
  await fs.utimes(`${file}.new`, stamp, stamp);
  await fs.rename(`${file}.new`, file);

  const reconciled = await own.logs.waitFor((l) => l.event === "registry_reconciled" && own.logs.lines.indexOf(l) >= seen, 10_000);
  t.deepEqual(reconciled.tenants, ["globex"]);
  const changed = await own.logs.waitFor((l) => l.event === "tenant_changed" && l.tenant === "globex" && own.logs.lines.indexOf(l) >= seen);
  t.is(changed.status, "suspended");
  // Applied once: the next round finds the registry and the gateway's view in agreement.
  const rounds = own.logs.lines.length;
  const next = await own.logs.waitFor((l) => (l.event === "registry_reconcile" || l.event === "registry_reconciled") && own.logs.lines.indexOf(l) >= rounds);
  t.is(next.event, "registry_reconcile", "a second correction was logged for a change already applied");
});

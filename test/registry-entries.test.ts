/**
 * Registry entries (the inventory of issued certificates, onboarding packages, the platform's
 * trust state) on both tenant stores against a real nats-server: the same contract — round trip,
 * listing by prefix, conditional writes that let exactly one of two racing writers win, deletion,
 * and a watch that sees another instance's writes.
 */
import test from "ava";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane, type ControlPlaneOptions } from "../accounts/control-plane.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { DataLayout } from "../pki/layout.ts";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const layout = new DataLayout(tempDir());
const environment = (async () => {
  await initDataDir(layout, { natsPort: -1, store: "kv" });
  return startNatsServer(new NatsFiles(layout).serverConfig);
})();
test.after.always(async () => (await environment).stop());

function entriesContract(kind: "dir" | "kv"): void {
  const stores = (async () => {
    const server = await environment;
    const options: ControlPlaneOptions = { dataDir: layout.dir, servers: [server.url], store: kind, pollMs: 50 };
    const a = await ControlPlane.open(options);
    const b = await ControlPlane.open(options);
    return { a: a.store, b: b.store, close: () => Promise.all([a.close(), b.close()]) };
  })();
  test.after.always(async () => (await stores).close());
  const key = (k: string): string => `${kind}-${k}`;

  test(`${kind} store: an entry round-trips, lists by whole-token prefix, and deletes`, async (t) => {
    const { a, b } = await stores;
    await a.putEntry("certificates", `${key("acme")}.0a1b`, { n: 1 });
    await a.putEntry("certificates", `${key("acme")}.0a1c`, { n: 2 });
    await a.putEntry("certificates", `${key("acme-two")}.0a1d`, { n: 3 });
    t.deepEqual((await b.getEntry("certificates", `${key("acme")}.0a1b`))?.value, { n: 1 });
    t.deepEqual((await b.listEntries("certificates", `${key("acme")}.`)).map((e) => e.value), [{ n: 1 }, { n: 2 }], "acme-two's are not acme's");
    t.is((await b.listEntries("packages", "nothing.")).length, 0);
    await b.deleteEntry("certificates", `${key("acme")}.0a1b`);
    t.is(await a.getEntry("certificates", `${key("acme")}.0a1b`), undefined);
    await t.throwsAsync(a.putEntry("packages", "Not A Key", {}), { code: "invalid_argument" });
  });

  test(`${kind} store: of two writers that read the same revision, exactly one writes; a create of an existing entry is refused`, async (t) => {
    const { a, b } = await stores;
    const k = key("race");
    const first = await a.putEntry("packages", k, { status: "pending" }, { expectRevision: 0 });
    await t.throwsAsync(b.putEntry("packages", k, { status: "other" }, { expectRevision: 0 }), { code: "entry_conflict" });
    const results = await Promise.allSettled([a.putEntry("packages", k, { status: "delivered", by: "a" }, { expectRevision: first }), b.putEntry("packages", k, { status: "delivered", by: "b" }, { expectRevision: first })]);
    t.is(results.filter((r) => r.status === "fulfilled").length, 1);
    t.like(results.find((r) => r.status === "rejected"), { reason: { code: "entry_conflict" } });
    const winner = (await a.getEntry("packages", k))!;
    t.is((winner.value as { by: string }).by, results[0]!.status === "fulfilled" ? "a" : "b");
  });

  test(`${kind} store: watchEntry sees another instance's writes`, async (t) => {
    const { a, b } = await stores;
    const k = key("watched");
    let seen = 0;
    let notify: () => void = () => undefined;
    const stop = await a.watchEntry("platform", k, () => {
      seen++;
      notify();
    });
    t.teardown(stop);
    const next = (): Promise<void> => new Promise((resolve) => (notify = resolve));
    const first = next();
    await b.putEntry("platform", k, { v: 1 });
    await first;
    const second = next();
    await b.putEntry("platform", k, { v: 2 });
    await second;
    t.true(seen >= 2);
  });
}

entriesContract("dir");
entriesContract("kv");

/**
 * Onboarding a site that runs its own NATS: a `leaf` package's bundle, downloaded once with its
 * token and unpacked by the system's tar, configures a stock nats-server (run as the bundle says,
 * from the bundle's directory) that connects through the gateway's leaf listener; its local
 * clients work in the tenant's view.
 */
import { spawn, execFile } from "node:child_process";
import { once } from "node:events";
import { promises as fs } from "node:fs";
import net from "node:net";
import path from "node:path";
import { promisify } from "node:util";
import test from "ava";
import YAML from "yaml";
import { connect, type Msg } from "@nats-io/transport-node";
import { natsServerBinary } from "../accounts/nats-server-process.ts";
import { PackageService } from "../onboarding/packages.ts";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";
import { untilReceived } from "./helpers/leaf-site.ts";
import { tempDir } from "./helpers/tmp.ts";

const run = promisify(execFile);
let dep: Deployment;

test.before(async () => {
  dep = await startDeployment({ tenants: ["acme-corp"], gateway: { leaf_listen: "127.0.0.1:0" } });
});

test.after.always(async () => {
  await dep?.stop();
});

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a stock nats-server configured from a leaf bundle connects through the gateway, and its local clients work in the tenant's view", async (t) => {
  const packages = new PackageService(dep.cp, dep.tenants);
  const created = await packages.create({ tenant: "acme-corp", component: "leaf", partition: "branch-1", type: "leaf", gatewayUrl: "tls://127.0.0.1:4222", leafUrl: `tls://127.0.0.1:${dep.gateway.leafPort}` });
  t.is(created.package.type, "leaf");
  const { bundle } = await packages.download(created.package.id, created.token);
  const dir = tempDir("ntg-leaf-bundle-");
  await fs.writeFile(path.join(dir, "bundle.tar.gz"), bundle);
  await run("tar", ["-xzf", "bundle.tar.gz"], { cwd: dir });

  const configText = await fs.readFile(path.join(dir, "config/config.yaml"), "utf8");
  const config = YAML.parse(configText) as { leafnodes: { remotes: Array<{ url: string; tls: Record<string, string> }> } };
  t.is(config.leafnodes.remotes[0]!.url, `tls://127.0.0.1:${dep.gateway.leafPort}`);
  t.deepEqual(config.leafnodes.remotes[0]!.tls, { cert_file: "certs/component.pem", key_file: "certs/component-key.pem", ca_file: "certs/ca-chain.pem" });
  t.regex(await fs.readFile(path.join(dir, "install.sh"), "utf8"), /ExecStart=\/usr\/local\/bin\/nats-server --config config\/config\.yaml/);

  // As install.sh runs it: the bundle's directory as working directory, `--config config/config.yaml`
  // (the port moved off 4222 only because tests share this host).
  const port = await freePort();
  const server = spawn(natsServerBinary(), ["--config", "config/config.yaml", "-a", "127.0.0.1", "-p", String(port)], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  t.teardown(async () => {
    if (server.exitCode === null) {
      server.kill("SIGTERM");
      await once(server, "exit");
    }
  });
  let log = "";
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      if (log.includes("Server is ready")) resolve();
    };
    server.stdout!.on("data", onData);
    server.stderr!.on("data", onData);
    server.once("exit", (code) => reject(new Error(`nats-server exited with ${code}:\n${log}`)));
  });
  await ready;

  const local = await connect({ servers: `nats://127.0.0.1:${port}` });
  const direct = await dep.direct("acme-corp");
  t.teardown(async () => {
    await local.close();
    await direct.close();
  });
  const atPlatform = (async (): Promise<Msg> => {
    for await (const m of direct.subscribe("acme-corp.events.leaf.health")) return m;
    throw new Error("ended");
  })();
  await untilReceived(() => local.publish("events.leaf.health", "up"), atPlatform);
  t.is((await atPlatform).subject, "acme-corp.events.leaf.health");
  const atSite = (async (): Promise<Msg> => {
    for await (const m of local.subscribe("jobs.branch-1")) return m;
    throw new Error("ended");
  })();
  await untilReceived(() => direct.publish("acme-corp.jobs.branch-1", "run"), atSite);
  t.is((await atSite).subject, "jobs.branch-1");
  const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.kind === "leaf" && l.partition === "branch-1");
  t.is(accepted.cn, "leaf.branch-1.acme-corp.serviceradar");
});

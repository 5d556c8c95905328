/**
 * Tenants in a running nats-server (operator mode, full resolver), proven with stock clients that
 * connect to NATS directly, underneath the gateway: a new tenant is live at once without a restart,
 * accounts isolate tenants, and the plan's limits are enforced by NATS itself.
 */
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import net from "node:net";
import test, { type ExecutionContext } from "ava";
import { connect as connectV2, jwtAuthenticator, type NatsConnection as NatsConnectionV2, type Status } from "nats";
import { connect as connectV3, type NatsConnection } from "@nats-io/transport-node";
import { initDataDir } from "../accounts/bootstrap.ts";
import { ControlPlane } from "../accounts/control-plane.ts";
import { encodeUserJwt } from "../accounts/jwts.ts";
import { nativeJwtAuthenticator } from "../accounts/nats-control.ts";
import { NativeKeyPair } from "../accounts/native-keys.ts";
import { NatsFiles } from "../accounts/operator.ts";
import { plansFilePath, type PlanFile } from "../accounts/plans.ts";
import { TenantService } from "../accounts/tenants.ts";
import { mintEdgeUser, type MintedUser } from "../accounts/user-jwt.ts";
import type { EdgeIdentity } from "../pki/identity.ts";
import { DataLayout } from "../pki/layout.ts";
import { startNatsServer } from "./helpers/nats-server.ts";
import { tempDir } from "./helpers/tmp.ts";

const MiB = 1024 * 1024;

function edgeIdentity(tenant: string, component = "agent-001", partition = "partition-1"): EdgeIdentity {
  return { kind: "edge", cn: `${component}.${partition}.${tenant}.serviceradar`, tenant, component, partition, notAfter: new Date(Date.now() + 3_600_000), fingerprint: randomBytes(32).toString("hex") };
}

/** Things that arrive asynchronously (messages, status events), awaited by predicate with a deadline. */
class Arrivals<T> {
  readonly items: T[] = [];
  private waiters: Array<{ match: (item: T) => boolean; resolve: (item: T) => void }> = [];

  push = (item: T): void => {
    this.items.push(item);
    const ready = this.waiters.filter((w) => w.match(item));
    this.waiters = this.waiters.filter((w) => !w.match(item));
    for (const w of ready) w.resolve(item);
  };

  next(match: (item: T) => boolean, what: string, ms = 10_000): Promise<T> {
    const seen = this.items.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms (saw ${JSON.stringify(this.items)})`)), ms);
      this.waiters.push({ match, resolve: (item) => (clearTimeout(timer), resolve(item)) });
    });
  }
}

const layout = new DataLayout(tempDir());
const setup = (async () => {
  await initDataDir(layout, { natsPort: -1 });
  const server = await startNatsServer(new NatsFiles(layout).serverConfig);
  const cp = await ControlPlane.open({ dataDir: layout.dir, servers: [server.url] });
  const svc = new TenantService(cp);
  await svc.sync();
  for (const slug of ["acme-corp", "globex", "initech"]) await svc.create(slug);
  return { server, cp, svc };
})();
test.after.always(async () => {
  const { server, cp } = await setup;
  await cp.close();
  await server.stop();
});

async function mintFor(slug: string, component?: string): Promise<MintedUser> {
  const { svc } = await setup;
  const { record, signingKey } = await svc.load(slug);
  return mintEdgeUser(edgeIdentity(slug, component), { account: record.account_public_key, signingKey });
}

/** A user of the tenant's account with no permission limits: isolation then rests on accounts alone. */
async function mintUnrestricted(slug: string): Promise<MintedUser> {
  const { svc } = await setup;
  const { record, signingKey } = await svc.load(slug);
  const user = NativeKeyPair.create("user");
  const jwt = await encodeUserJwt(`unrestricted.${slug}`, user, { signer: signingKey, account: record.account_public_key });
  return { jwt, user, exp: 0 };
}

/** nats.js v2, the stock client most edge code uses; closed when the test ends. */
async function clientV2(t: ExecutionContext, minted: MintedUser): Promise<NatsConnectionV2> {
  const { server } = await setup;
  const nc = await connectV2({ servers: server.url, authenticator: jwtAuthenticator(minted.jwt, minted.user.getSeed()), reconnect: false });
  t.teardown(() => nc.close());
  return nc;
}

/** @nats-io/transport-node v3 with a native signer, for connection-heavy tests; closed when the test ends. */
async function clientV3(t: ExecutionContext, minted: MintedUser): Promise<NatsConnection> {
  const { server } = await setup;
  const nc = await connectV3({ servers: server.url, authenticator: nativeJwtAuthenticator(minted.jwt, minted.user), reconnect: false });
  t.teardown(() => nc.close());
  return nc;
}

/**
 * Publishes over a bare socket speaking the NATS protocol, so that no client library's own
 * max_payload check stands in front of the server's: resolves with the server's answer — `PONG`
 * when it accepted the message, else its `-ERR` line (to CONNECT or to PUB).
 */
async function rawPublish(minted: MintedUser, subject: string, size: number, opts: { sendPayload: boolean }): Promise<string> {
  const { server } = await setup;
  const socket = net.connect(server.port, "127.0.0.1");
  let received = "";
  const waiting = new Set<() => void>();
  const wake = (): void => waiting.forEach((check) => check());
  socket.on("data", (chunk: Buffer) => {
    received += chunk.toString("latin1");
    wake();
  });
  socket.on("close", wake);
  socket.on("error", wake);
  const expect = (pattern: RegExp): Promise<string> =>
    new Promise((resolve, reject) => {
      const finish = (err: Error | undefined, line = ""): void => {
        clearTimeout(timer);
        waiting.delete(check);
        if (err) reject(err);
        else resolve(line);
      };
      const check = (): void => {
        const match = pattern.exec(received);
        if (match) {
          received = received.slice(match.index + match[0].length);
          finish(undefined, match[0].trim());
        } else if (socket.destroyed) finish(new Error(`nats-server closed the socket before ${pattern}; got ${JSON.stringify(received.slice(0, 200))}`));
      };
      const timer = setTimeout(() => finish(new Error(`no ${pattern} from nats-server within 10 s`)), 10_000);
      waiting.add(check);
      check();
    });
  try {
    const info = JSON.parse((await expect(/INFO (.*)\r\n/)).slice(5)) as { nonce: string };
    const sig = Buffer.from(minted.user.sign(Buffer.from(info.nonce))).toString("base64url");
    socket.write(`CONNECT ${JSON.stringify({ jwt: minted.jwt, sig, verbose: false, pedantic: false, protocol: 1 })}\r\nPING\r\n`);
    const admitted = await expect(/PONG\r\n|-ERR [^\r]*\r\n/);
    if (admitted !== "PONG") return admitted;
    if (!opts.sendPayload) {
      // The server judges the size the PUB line declares, before any payload byte: a refusal
      // arrives at once. (Sending the payload anyway would race the server's close, and a reset
      // socket loses the -ERR.)
      socket.write(`PUB ${subject} ${size}\r\n`);
      return await expect(/-ERR [^\r]*\r\n/);
    }
    socket.write(Buffer.concat([Buffer.from(`PUB ${subject} ${size}\r\n`), Buffer.alloc(size, 0x61), Buffer.from("\r\nPING\r\n")]));
    return await expect(/PONG|-ERR [^\r]*\r\n/);
  } finally {
    socket.destroy();
  }
}

/** Live client connections of an account, as the server counts them. */
async function connectionsOf(slug: string): Promise<number> {
  const { cp, svc } = await setup;
  const account = (await svc.get(slug)).account_public_key;
  const reply = await (await cp.system()).request(`$SYS.REQ.ACCOUNT.${account}.CONNZ`, "", { timeout: 5000 });
  return (reply.json<{ data?: { num_connections?: number } }>().data?.num_connections ?? 0);
}

/** Polls until the server has dropped every connection of the tenant (closing is asynchronous on its side). */
async function untilNoConnections(slug: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await connectionsOf(slug)) > 0) {
    if (Date.now() > deadline) throw new Error(`${slug} still has connections`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Opens connections (closed when the test ends) until one is refused; how many were admitted, and the refusal. */
async function connectUntilRefused(t: ExecutionContext, slug: string, max: number): Promise<{ accepted: NatsConnection[]; refusal: unknown }> {
  const minted = await mintFor(slug);
  const accepted: NatsConnection[] = [];
  for (let i = 0; i < max; i++) {
    try {
      const nc = await clientV3(t, minted);
      await nc.flush();
      accepted.push(nc);
    } catch (err) {
      return { accepted, refusal: err };
    }
  }
  return { accepted, refusal: undefined };
}

test("a tenant created while nats-server runs can connect at once, without a NATS restart", async (t) => {
  const { server, svc } = await setup;
  const pid = server.process.pid;
  t.truthy(pid);

  const { tenant } = await svc.create("hooli");
  t.is(tenant.status, "active");
  const nc = await clientV2(t, await mintFor("hooli"));
  const sub = nc.subscribe("hooli.events.poller.health", { max: 1 });
  nc.publish("hooli.events.poller.health", "up");
  for await (const msg of sub) t.is(msg.string(), "up");
  t.is(sub.getReceived(), 1);
  t.is(server.process.pid, pid, "the same nats-server process served the new tenant");
  t.is(server.log().match(/Server is ready/g)?.length, 1);
});

test("an acme-corp user cannot publish or subscribe outside acme-corp.>", async (t) => {
  const nc = await clientV2(t, await mintFor("acme-corp"));
  const violations = new Arrivals<NonNullable<Status["permissionContext"]>>();
  void (async () => {
    for await (const s of nc.status()) if (s.permissionContext) violations.push(s.permissionContext);
  })();

  for (const subject of ["globex.events.poller.health", "events.poller.health", "_INBOX.abc", "$SYS.REQ.CLAIMS.UPDATE"]) {
    nc.publish(subject, "x");
    await violations.next((v) => v.operation === "publish" && v.subject === subject, `publish to ${subject} refused`);
  }
  for (const subject of ["globex.>", ">", "_INBOX.>"]) {
    const refused = new Promise<Error | null>((resolve) => nc.subscribe(subject, { callback: (err) => resolve(err) }));
    t.regex(String(await refused), /permissions violation/i, `subscription to ${subject}`);
  }
  t.is(violations.items.filter((v) => v.operation === "publish").length, 4);

  // Inside its own namespace everything works on the same connection.
  const sub = nc.subscribe("acme-corp.events.>", { max: 1 });
  nc.publish("acme-corp.events.poller.health", "ok");
  for await (const msg of sub) t.is(msg.subject, "acme-corp.events.poller.health");
  t.false(nc.isClosed());
});

test("a globex subscriber to > receives nothing of acme-corp, only its own account's messages", async (t) => {
  const globex = await clientV2(t, await mintUnrestricted("globex"));
  const received = new Arrivals<string>();
  globex.subscribe(">", { callback: (_err, msg) => received.push(msg.subject) });
  await globex.flush();

  // acme-corp publishes, with a subscriber of its own proving the messages really went out.
  const acme = await clientV2(t, await mintUnrestricted("acme-corp"));
  const acmeSeen = new Arrivals<string>();
  acme.subscribe(">", { callback: (_err, msg) => acmeSeen.push(msg.subject) });
  await acme.flush();
  const acmeSubjects = ["acme-corp.events.poller.health", "globex.events.poller.health", "events.poller.health"];
  for (const subject of acmeSubjects) acme.publish(subject, "from acme");
  await acme.flush();
  for (const subject of acmeSubjects) await acmeSeen.next((s) => s === subject, `acme-corp's own subscriber gets ${subject}`);

  // Positive control: what globex publishes afterwards does arrive, so silence is not a timing artefact.
  globex.publish("globex.marker", "from globex");
  await received.next((s) => s === "globex.marker", "globex gets its own message");
  await globex.flush();
  t.deepEqual(received.items, ["globex.marker"]);
});

test.serial("the 11th connection of a free tenant is refused by NATS; 10 are admitted", async (t) => {
  await untilNoConnections("initech");
  const { accepted, refusal } = await connectUntilRefused(t, "initech", 11);
  t.is(accepted.length, 10);
  t.truthy(refusal);
  t.is(await connectionsOf("initech"), 10, "the server counts exactly the 10 admitted");
  await Promise.all(accepted.map((nc) => nc.flush()));
});

test.serial("the refusal of a connection over the limit names the limit", async (t) => {
  await untilNoConnections("initech");
  const minted = await mintFor("initech");
  const { accepted } = await connectUntilRefused(t, "initech", 10);
  t.is(accepted.length, 10);
  // A stock client may see the socket close before it reads the -ERR; the raw protocol shows the reason.
  t.regex(await rawPublish(minted, "initech.x", 1, { sendPayload: true }), /maximum account active connections exceeded/i);
});

test.serial("raising the plan's connection limit in plans.json is in force after sync", async (t) => {
  const { svc } = await setup;
  await untilNoConnections("initech");
  const file = plansFilePath(layout.dir);
  const original = await fs.readFile(file, "utf8");
  t.teardown(() => fs.writeFile(file, original));
  const plans = JSON.parse(original) as PlanFile;
  plans.plans.free!.connections = 12;
  await fs.writeFile(file, JSON.stringify(plans, null, 2));

  const before = await connectUntilRefused(t, "initech", 13);
  t.is(before.accepted.length, 10, "an edited plans file changes nothing until sync");
  await Promise.all(before.accepted.map((nc) => nc.close()));
  await untilNoConnections("initech");

  const result = await svc.sync();
  t.true(result.tenants.every((r) => r.result === "pushed"), JSON.stringify(result));
  const after = await connectUntilRefused(t, "initech", 13);
  t.is(after.accepted.length, 12);
  t.truthy(after.refusal);
  t.is(await connectionsOf("initech"), 12);
});

test.serial("a payload over the plan's max_payload is refused by NATS; a larger plan admits it", async (t) => {
  const { svc } = await setup;
  const minted = await mintFor("initech");

  // NATS tells stock clients the plan's limit, and they refuse to send more ...
  const nc = await clientV2(t, minted);
  t.is(nc.info?.max_payload, MiB);
  t.throws(() => nc.publish("initech.payload", new Uint8Array(MiB + 1)), { code: "MAX_PAYLOAD_EXCEEDED" } as never);
  await nc.close();
  // ... and the server itself refuses it from a client that sends it anyway.
  t.is(await rawPublish(minted, "initech.payload", MiB, { sendPayload: true }), "PONG", "exactly the free plan's 1 MiB passes");
  t.regex(await rawPublish(minted, "initech.payload", MiB + 1, { sendPayload: false }), /-ERR 'Maximum Payload Violation'/);

  await svc.setPlan("initech", "pro");
  t.is(await rawPublish(minted, "initech.payload", 2 * MiB, { sendPayload: true }), "PONG", "the pro plan admits 2 MiB");
  t.regex(await rawPublish(minted, "initech.payload", 4 * MiB + 1, { sendPayload: false }), /-ERR 'Maximum Payload Violation'/, "and refuses more than its 4 MiB");
  const pro = await clientV2(t, minted);
  t.is(pro.info?.max_payload, 4 * MiB);
});

/**
 * The data path with stock clients: `nats` v2 and `@nats-io/transport-node` v3 connect to the
 * gateway with a tenant certificate, exactly as an edge site would, against a real nats-server.
 */
import test from "ava";
import { headers as headersV2, StringCodec, Empty, ErrorCode } from "nats";
import { headers as headersV3 } from "@nats-io/transport-node";
import { startDeployment, type Deployment } from "./helpers/gateway-fixture.ts";

const sc = StringCodec();
let dep: Deployment;

test.before(async () => {
  dep = await startDeployment();
});

test.after.always(async () => {
  await dep?.stop();
});

/** The next message of a subscription, or a failure after `ms`. */
async function next<T>(iter: AsyncIterable<T>, ms = 5000): Promise<T> {
  const it = iter[Symbol.asyncIterator]();
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms));
  const r = await Promise.race([it.next(), timeout]);
  if (r.done) throw new Error("subscription ended");
  return r.value;
}

for (const handshakeFirst of [false, true]) {
  const mode = handshakeFirst ? "TLS-first" : "INFO then TLS";
  test(`v2: pub/sub and request/reply inside acme-corp (${mode})`, async (t) => {
    const component = handshakeFirst ? "tlsfirst-v2" : "infofirst-v2";
    const tls = { ...(await dep.edge("acme-corp", component)), handshakeFirst };
    const nc = await dep.v2(tls);
    t.teardown(() => nc.close());
    const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.component === component);
    t.is(accepted.tls_first, handshakeFirst, "the gateway saw the handshake mode the client used");
    const direct = await dep.direct("acme-corp");
    t.is(nc.info?.version, direct.info?.version, "INFO mirrors the upstream server's version");
    await direct.close();
    t.true(nc.info?.headers);
    t.true(nc.info?.jetstream);
    const sub = nc.subscribe(`events.${component}.>`);
    nc.subscribe("svc.echo", {
      callback: (_err, m) => {
        m.respond(sc.encode(`echo:${sc.decode(m.data)}`));
      },
    });
    await nc.flush();
    nc.publish(`events.${component}.health`, sc.encode("ok"));
    const m = await next(sub);
    t.is(m.subject, `events.${component}.health`);
    t.is(sc.decode(m.data), "ok");
    const reply = await nc.request("svc.echo", sc.encode("ping"), { timeout: 3000 });
    t.is(sc.decode(reply.data), "echo:ping");
    t.regex(reply.subject, /^_INBOX\./, "the reply subject is in the edge view");
  });

  test(`v3: pub/sub and request/reply inside acme-corp (${mode})`, async (t) => {
    const component = handshakeFirst ? "tlsfirst-v3" : "infofirst-v3";
    const tls = { ...(await dep.edge("acme-corp", component)), handshakeFirst };
    const nc = await dep.v3(tls);
    t.teardown(() => nc.close());
    const accepted = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.component === component);
    t.is(accepted.tls_first, handshakeFirst);
    const sub = nc.subscribe(`logs.${component}.>`);
    nc.subscribe("svc.upper", {
      callback: (_err, m) => {
        m.respond(m.string().toUpperCase());
      },
    });
    await nc.flush();
    nc.publish(`logs.${component}.syslog`, "line");
    const m = await next(sub);
    t.is(m.subject, `logs.${component}.syslog`);
    t.is(m.string(), "line");
    const reply = await nc.request("svc.upper", "abc", { timeout: 3000 });
    t.is(reply.string(), "ABC");
  });
}

test("queue groups: each message goes to one member of the group", async (t) => {
  const tls = await dep.edge("acme-corp", "worker-1");
  const members = await Promise.all([1, 2, 3].map(() => dep.v3(tls)));
  const pub = await dep.v3(tls);
  t.teardown(async () => {
    await Promise.all([...members, pub].map((c) => c.close()));
  });
  const counts = [0, 0, 0];
  let total = 0;
  const all = new Promise<void>((resolve) => {
    members.forEach((nc, i) =>
      nc.subscribe("jobs.work", {
        queue: "workers",
        callback: () => {
          counts[i]!++;
          if (++total === 60) resolve();
        },
      }),
    );
  });
  await Promise.all(members.map((m) => m.flush()));
  for (let i = 0; i < 60; i++) pub.publish("jobs.work", String(i));
  await pub.flush();
  await all;
  await Promise.all(members.map((m) => m.flush()));
  t.is(counts.reduce((a, b) => a + b, 0), 60, "every message delivered exactly once across the group");
  t.true(counts.filter((c) => c > 0).length >= 2, `spread over members: ${counts.join(",")}`);
});

test("headers pass both ways (v2 and v3)", async (t) => {
  const tls = await dep.edge("acme-corp");
  const a = await dep.v2(tls);
  const b = await dep.v3(tls);
  t.teardown(async () => {
    await a.close();
    await b.close();
  });
  const sub = b.subscribe("events.with-headers");
  await b.flush();
  const h = headersV2();
  h.set("X-Trace", "abc-123");
  a.publish("events.with-headers", sc.encode("body"), { headers: h });
  const m = await next(sub);
  t.is(m.headers?.get("X-Trace"), "abc-123");
  t.is(m.string(), "body");
  const sub2 = a.subscribe("events.back");
  await a.flush();
  const h3 = headersV3();
  h3.set("X-Back", "yes");
  b.publish("events.back", "x", { headers: h3 });
  const m2 = await next(sub2);
  t.is(m2.headers?.get("X-Back"), "yes");
});

test("no_responders: a request nobody serves gets a 503 at once", async (t) => {
  const nc = await dep.v2(await dep.edge("acme-corp"));
  t.teardown(() => nc.close());
  const started = Date.now();
  const err = await t.throwsAsync(nc.request("nobody.home", Empty, { timeout: 5000 }));
  t.is((err as { code?: string }).code, ErrorCode.NoResponders);
  t.true(Date.now() - started < 2000, "answered by NATS, not by the timeout");
});

test("echo: false keeps a client's own messages from it", async (t) => {
  const tls = await dep.edge("acme-corp");
  const quiet = await dep.v2(tls, { noEcho: true });
  const other = await dep.v2(tls);
  t.teardown(async () => {
    await quiet.close();
    await other.close();
  });
  const received: string[] = [];
  const sub = quiet.subscribe("events.echo-test", {
    callback: (_e, m) => {
      received.push(sc.decode(m.data));
    },
  });
  await quiet.flush();
  quiet.publish("events.echo-test", sc.encode("mine"));
  other.publish("events.echo-test", sc.encode("theirs"));
  await other.flush();
  // The other client's message is the positive control: once it arrived, ours would have too.
  while (!received.includes("theirs")) await quiet.flush();
  sub.unsubscribe();
  t.deepEqual(received, ["theirs"]);
});

test("UNSUB with max: the subscription ends after max messages", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp"));
  t.teardown(() => nc.close());
  const sub = nc.subscribe("events.limited", { max: 3 });
  await nc.flush();
  for (let i = 0; i < 10; i++) nc.publish("events.limited", String(i));
  const got: string[] = [];
  for await (const m of sub) got.push(m.string());
  t.deepEqual(got, ["0", "1", "2"]);
});

test("a payload of exactly max_payload bytes passes; one byte more is refused", async (t) => {
  const nc = await dep.v2(await dep.edge("acme-corp"));
  t.teardown(() => nc.close());
  const max = nc.info!.max_payload;
  t.is(max, 4 * 1024 * 1024, "the INFO update carries the pro plan's payload limit, not the server's");
  const sub = nc.subscribe("events.big");
  await nc.flush();
  nc.publish("events.big", new Uint8Array(max).fill(7));
  const m = await next(sub);
  t.is(m.data.length, max);
  t.throws(() => nc.publish("events.big", new Uint8Array(max + 1)), undefined, "the client library refuses beyond the INFO max_payload");
});

test("inside NATS the traffic is prefixed with the tenant slug", async (t) => {
  const direct = await dep.direct("acme-corp");
  const nc = await dep.v3(await dep.edge("acme-corp"));
  t.teardown(async () => {
    await direct.close();
    await nc.close();
  });
  const sub = direct.subscribe("acme-corp.events.prefix-check.>");
  await direct.flush();
  nc.publish("events.prefix-check.health", "prefixed?");
  const m = await next(sub);
  t.is(m.subject, "acme-corp.events.prefix-check.health");
  t.is(m.string(), "prefixed?");
});

test("isolation: globex subscribed to > receives nothing of acme-corp", async (t) => {
  const globex = await dep.v3(await dep.edge("globex"));
  const acme = await dep.v3(await dep.edge("acme-corp"));
  t.teardown(async () => {
    await globex.close();
    await acme.close();
  });
  const seen: string[] = [];
  let resolveMarker: () => void;
  const marker = new Promise<void>((r) => (resolveMarker = r));
  globex.subscribe(">", {
    callback: (_e, m) => {
      seen.push(m.subject);
      if (m.subject === "events.marker") resolveMarker();
    },
  });
  await globex.flush();
  for (const s of ["events.poller.health", "globex.events.x", "x", "logs.syslog"]) acme.publish(s, "acme data");
  await acme.flush();
  // Positive control: globex's own message arrives, so anything of acme's would have arrived before it.
  const globexPub = await dep.v3(await dep.edge("globex", "agent-002"));
  t.teardown(() => globexPub.close());
  globexPub.publish("events.marker", "globex data");
  await marker;
  t.deepEqual(seen, ["events.marker"]);
});

test("isolation: acme-corp publishing to globex.events.x stays inside acme-corp", async (t) => {
  const directGlobex = await dep.direct("globex");
  const directAcme = await dep.direct("acme-corp");
  const acme = await dep.v3(await dep.edge("acme-corp"));
  t.teardown(async () => {
    await Promise.all([directGlobex.close(), directAcme.close(), acme.close()]);
  });
  const globexSeen: string[] = [];
  directGlobex.subscribe("globex.>", {
    callback: (_e, m) => {
      globexSeen.push(m.subject);
    },
  });
  const acmeSub = directAcme.subscribe("acme-corp.globex.>");
  await Promise.all([directGlobex.flush(), directAcme.flush()]);
  acme.publish("globex.events.x", "crossing?");
  const landed = await next(acmeSub);
  t.is(landed.subject, "acme-corp.globex.events.x", "it landed in acme-corp's own namespace");
  await directGlobex.flush();
  t.deepEqual(globexSeen, []);
});

test("isolation: replies never cross tenants", async (t) => {
  const acme = await dep.v3(await dep.edge("acme-corp"));
  const globex = await dep.v3(await dep.edge("globex"));
  t.teardown(async () => {
    await acme.close();
    await globex.close();
  });
  let globexServed = 0;
  globex.subscribe("svc.shared", {
    callback: (_e, m) => {
      globexServed++;
      m.respond("from globex");
    },
  });
  acme.subscribe("svc.shared", {
    callback: (_e, m) => {
      m.respond("from acme");
    },
  });
  await Promise.all([acme.flush(), globex.flush()]);
  for (let i = 0; i < 5; i++) t.is((await acme.request("svc.shared", "q", { timeout: 3000 })).string(), "from acme");
  t.is(globexServed, 0);
});

test("the gateway logs every accepted session with tenant, component, partition and CN", async (t) => {
  const nc = await dep.v3(await dep.edge("acme-corp", "checker-7", "partition-2"));
  await nc.close();
  const line = await dep.logs.waitFor((l) => l.event === "connection_accepted" && l.component === "checker-7");
  t.like(line, { tenant: "acme-corp", component: "checker-7", partition: "partition-2", cn: "checker-7.partition-2.acme-corp.serviceradar" });
  t.truthy(line.session);
  const closed = await dep.logs.waitFor((l) => l.event === "session_closed" && l.session === line.session);
  t.like(closed, { tenant: "acme-corp", component: "checker-7", partition: "partition-2" });
});

/**
 * The leaf session's decisions, byte for byte, without sockets: interest and messages each way,
 * queue groups and weights, loop detection, platform replies, refusals, and the JetStream path
 * (translated requests that wait for nats-server to confirm the interest sent before them).
 */
import test from "ava";
import YAML from "yaml";
import { LeafRewriter, type LeafRewriterEvents } from "../gateway/leaf-rewriter.ts";
import { leafSiteConfig } from "../gateway/leaf-site-config.ts";
import { TenantStores } from "../common/namespaces.ts";

interface Recorded {
  ended: string[];
  refused: string[];
  kept: string[];
  dropped: string[];
  jetStreamRefused: string[];
}

function rewriter(opts: { maxPayload?: number; domain?: string | undefined; stores?: TenantStores } = {}): { rw: LeafRewriter; seen: Recorded; site: (s: string) => void; hub: (s: string) => void; out: () => { hub: string; site: string; js: string } } {
  const seen: Recorded = { ended: [], refused: [], kept: [], dropped: [], jetStreamRefused: [] };
  const events: LeafRewriterEvents = {
    ended: (e) => seen.ended.push(e.code),
    refused: (r) => seen.refused.push(`${r.code}:${r.subject ?? ""}`),
    interestKept: (side, subject) => seen.kept.push(`${side}:${subject}`),
    dropped: (kind, subject) => seen.dropped.push(`${kind}:${subject}`),
    jetStreamRefused: (api, code) => seen.jetStreamRefused.push(`${api}:${code}`),
    hubError: () => {},
    siteError: () => {},
    hubLameDuck: () => {},
  };
  const rw = new LeafRewriter({ slug: "acme-corp", maxPayload: opts.maxPayload ?? 1024, hubMaxPayload: 1024 * 1024, jetStreamDomain: "domain" in opts ? opts.domain : "hub", stores: opts.stores ?? TenantStores.NONE, events });
  return {
    rw,
    seen,
    site: (s) => rw.siteData(Buffer.from(s, "latin1")),
    hub: (s) => rw.hubData(Buffer.from(s, "latin1")),
    out: () => ({ hub: rw.takeForHub()?.toString("latin1") ?? "", site: rw.takeForSite()?.toString("latin1") ?? "", js: rw.takeForJetStream()?.toString("latin1") ?? "" }),
  };
}

test("the site's interest goes into the tenant's namespace, queue group and weight as they came; loop detection passes; other $ interest stays", (t) => {
  const { site, out, seen } = rewriter();
  site("LS+ events.>\r\nLS+ work.q workers 3\r\nLS- work.q workers\r\nLS+ $LDS.abc123\r\nLS+ $SYS.REQ.ACCOUNT.PING.CONNZ\r\nLS+ $JS.site.API.>\r\nLS+ $SRV.PING\r\n");
  t.is(out().hub, "LS+ acme-corp.events.>\r\nLS+ acme-corp.work.q workers 3\r\nLS- acme-corp.work.q workers\r\nLS+ $LDS.abc123\r\nLS+ acme-corp.$SRV.PING\r\n");
  t.deepEqual(seen.kept, ["site:$SYS.REQ.ACCOUNT.PING.CONNZ", "site:$JS.site.API.>"]);
});

test("the hub's interest reaches the site un-prefixed; its service imports and other tenants' subjects do not", (t) => {
  const { hub, out, seen } = rewriter();
  hub("LS+ acme-corp.jobs.*\r\nLS+ acme-corp.svc.q g 2\r\nLS+ $JS.API.>\r\nLS+ $SYS.REQ.USER.INFO\r\nLS+ globex.jobs.x\r\nLS+ acme-corp.$KV.config.>\r\nLS+ $JS.ACK.events.c.>\r\nLS+ _R_.Ab.>\r\nLS+ $LDS.hub1\r\n");
  t.is(out().site, "LS+ jobs.*\r\nLS+ svc.q g 2\r\nLS+ $JS.ACK.events.c.>\r\nLS+ _R_.Ab.>\r\nLS+ $LDS.hub1\r\n");
  t.deepEqual(seen.kept, ["hub:$JS.API.>", "hub:$SYS.REQ.USER.INFO", "hub:globex.jobs.x", "hub:acme-corp.$KV.config.>"]);
});

test("messages: subjects and replies prefixed towards the hub and checked for ownership back; queue lists and payloads untouched", (t) => {
  const { site, hub, out, seen } = rewriter();
  site("LMSG events.a _INBOX.x.1 2\r\nhi\r\nLMSG work.q + _INBOX.y.2 workers other 3\r\nabc\r\nLMSG work.q | workers 1\r\nz\r\nHMSG events.h 12 14\r\nNATS/1.0\r\n\r\nok\r\n");
  t.is(
    out().hub,
    "LMSG acme-corp.events.a acme-corp._INBOX.x.1 2\r\nhi\r\nLMSG acme-corp.work.q + acme-corp._INBOX.y.2 workers other 3\r\nabc\r\nLMSG acme-corp.work.q | workers 1\r\nz\r\nHMSG acme-corp.events.h 12 14\r\nNATS/1.0\r\n\r\nok\r\n",
  );
  hub("LMSG acme-corp.jobs.a acme-corp._INBOX.r.1 2\r\nhi\r\nLMSG globex.jobs.a 2\r\nno\r\nLMSG acme-corp.jobs.b globex._INBOX.x 2\r\nno\r\nLMSG acme-corp.$KV.x 2\r\nno\r\nLMSG acme-corp.svc.q | g 1\r\nq\r\n");
  t.is(out().site, "LMSG jobs.a _INBOX.r.1 2\r\nhi\r\nLMSG svc.q | g 1\r\nq\r\n");
  t.deepEqual(seen.dropped, ["subject:globex.jobs.a", "reply:globex._INBOX.x", "subject:acme-corp.$KV.x"]);
});

test("a JetStream delivery's own subject, after the reply's `@`, is translated or the message goes nowhere", (t) => {
  const { hub, out, seen } = rewriter();
  hub("LMSG acme-corp._INBOX.d.1 $JS.ACK.events.c.1.1.1.9.0@acme-corp.events.x 2\r\n42\r\nLMSG acme-corp._INBOX.d.1 $JS.ACK.KV_config.c.1.1.1.9.0@$KV.config.k 1\r\nv\r\nLMSG acme-corp._INBOX.d.1 $JS.ACK.events.c.1.1.1.9.0@globex.events.x 2\r\nno\r\n");
  t.is(out().site, "LMSG _INBOX.d.1 $JS.ACK.events.c.1.1.1.9.0@events.x 2\r\n42\r\nLMSG _INBOX.d.1 $JS.ACK.KV_config.c.1.1.1.9.0@$KV.config.k 1\r\nv\r\n");
  t.deepEqual(seen.dropped, ["subject:globex.events.x"]);
});

test("a platform request's made-up reply subject may be answered once, as it is", (t) => {
  const { site, hub, out } = rewriter();
  hub("LMSG acme-corp.svc.echo _R_.Ab.cd 2\r\nhi\r\n");
  t.is(out().site, "LMSG svc.echo _R_.Ab.cd 2\r\nhi\r\n");
  site("LMSG _R_.Ab.cd 2\r\nok\r\nLMSG _R_.Ab.cd 2\r\nok\r\n");
  t.is(out().hub, "LMSG _R_.Ab.cd 2\r\nok\r\nLMSG acme-corp._R_.Ab.cd 2\r\nok\r\n", "the second answer is the tenant's own subject");
});

test("refused as a client's publish is: -ERR, the frame goes nowhere, the session goes on", (t) => {
  const { site, out, seen, rw } = rewriter({ maxPayload: 4 });
  site("LMSG events.* 1\r\nx\r\nLMSG a..b 1\r\nx\r\nLMSG $SYS.X 1\r\nx\r\nLMSG $JS.API.INFO _INBOX.a 0\r\n\r\nLMSG events.ok $bad 1\r\nx\r\nLMSG events.big 5\r\n12345\r\nLMSG events.ok 1\r\ny\r\n");
  const o = out();
  t.is(o.hub, "LMSG acme-corp.events.ok 1\r\ny\r\n");
  t.is(
    o.site,
    [
      "-ERR 'Invalid Publish Subject'",
      "-ERR 'Invalid Publish Subject'",
      `-ERR 'Permissions Violation for Publish to "$SYS.X"'`,
      `-ERR 'Permissions Violation for Publish to "$JS.API.INFO"'`,
      `-ERR 'Permissions Violation for Publish to "$bad"'`,
      "-ERR 'Maximum Payload Violation'",
      "",
    ].join("\r\n"),
  );
  t.is(seen.refused.length, 6);
  t.is(rw.ended, undefined);
  site("BOGUS\r\n");
  t.deepEqual(seen.ended, ["unknown_protocol_operation"]);
});

test("PINGs pass both ways and each PONG goes back to whoever asked", (t) => {
  const { site, hub, out } = rewriter();
  site("PING\r\n");
  t.is(out().hub, "PING\r\n");
  hub("PING\r\n");
  t.is(out().site, "PING\r\n");
  site("PONG\r\n");
  t.is(out().hub, "PONG\r\n");
  hub("PONG\r\n");
  t.is(out().site, "PONG\r\n", "the site's PING was answered");
});

test("JetStream through the hub's domain: translated onto the JetStream connection once the hub has confirmed the interest sent before it", (t) => {
  const { site, hub, out } = rewriter();
  site("LS+ _INBOX.js.*\r\nLMSG $JS.hub.API.STREAM.INFO.events _INBOX.js.1 0\r\n\r\n");
  let o = out();
  t.is(o.hub, "LS+ acme-corp._INBOX.js.*\r\nPING\r\n", "the request waits behind a PING after the interest");
  t.is(o.js, "");
  site("LMSG $JS.hub.API.STREAM.NAMES _INBOX.js.2 0\r\n\r\n");
  t.is(out().hub, "", "a second request waits behind the same PING");
  hub("PONG\r\n");
  o = out();
  t.is(o.site, "", "the gateway's own PONG is not passed on");
  t.is(o.js, "PUB $JS.API.STREAM.INFO.events acme-corp._INBOX.js.1 0\r\n\r\nPUB $JS.API.STREAM.NAMES acme-corp._INBOX.js.2 0\r\n\r\n", "released in order");
  site("LMSG $JS.hub.API.STREAM.INFO.logs _INBOX.js.3 0\r\n\r\n");
  t.is(out().js, "PUB $JS.API.STREAM.INFO.logs acme-corp._INBOX.js.3 0\r\n\r\n", "no new interest: no wait");
  const body = JSON.stringify({ type: "io.nats.jetstream.api.v1.stream_info_response", config: { name: "logs", subjects: ["acme-corp.logs.>"] } });
  hub(`LMSG acme-corp._INBOX.js.3 ${body.length}\r\n${body}\r\n`);
  const reply = out().site;
  t.regex(reply, /^LMSG _INBOX\.js\.3 \d+\r\n/);
  t.deepEqual((JSON.parse(reply.split("\r\n")[1]!) as { config: { subjects: string[] } }).config.subjects, ["logs.>"], "the reply is translated into the site's view");
});

test("JetStream refusals are answered to the site at once; acks and flow control go on the JetStream connection", (t) => {
  const { site, out, seen } = rewriter();
  site('LMSG $JS.hub.API.STREAM.CREATE.x _INBOX.c.1 14\r\n{"name":"x"}\r\n\r\n');
  const o = out();
  t.is(o.js, "");
  t.regex(o.site, /^LMSG _INBOX\.c\.1 \d+\r\n\{"type":"io\.nats\.jetstream\.api\.v1\.stream_create_response","error":\{"code":403/);
  t.deepEqual(seen.jetStreamRefused, ["$JS.API.STREAM.CREATE.x:403"]);
  site("LMSG $JS.ACK.events.c.1.2.3.4.0 0\r\n\r\nLMSG $JS.FC.events.c.x _INBOX.f 0\r\n\r\n");
  t.is(out().js, "PUB $JS.ACK.events.c.1.2.3.4.0 0\r\n\r\nPUB $JS.FC.events.c.x acme-corp._INBOX.f 0\r\n\r\n");
});

test("key-value writes through the domain reach only buckets edge clients may write", (t) => {
  const stores = new TenantStores([
    { kind: "kv", name: "state", edge: "read-write", platform: "read-write" },
    { kind: "kv", name: "config", edge: "read", platform: "read-write" },
  ]);
  const { site, out } = rewriter({ stores });
  site("LMSG $JS.hub.API.$KV.state.agent-1 _INBOX.k.1 2\r\nup\r\nLMSG $JS.hub.API.$KV.config.interval _INBOX.k.2 2\r\n5s\r\n");
  const o = out();
  t.is(o.js, "PUB $KV.state.agent-1 acme-corp._INBOX.k.1 2\r\nup\r\n");
  t.is(o.site, `-ERR 'Permissions Violation for Publish to "$JS.hub.API.$KV.config.interval"'\r\n`);
});

test("without JetStream in the hub, the site gets no domain interest and its domain requests are refused", (t) => {
  const { rw, site, out } = rewriter({ domain: undefined });
  rw.start();
  t.is(out().site, "LS+ _R_.>\r\n", "only the platform's replies");
  site("LMSG $JS.hub.API.INFO _INBOX.a 0\r\n\r\n");
  t.is(out().site, `-ERR 'Permissions Violation for Publish to "$JS.hub.API.INFO"'\r\n`);
  const withJs = rewriter();
  withJs.rw.start();
  t.is(withJs.out().site, "LS+ _R_.>\r\nLS+ $JS.hub.API.>\r\n");
});

test("the leaf-site configuration a bundle carries: a stock nats-server config with the remote, its TLS files and an optional JetStream domain", (t) => {
  const conf = leafSiteConfig({ tenant: "acme-corp", gatewayLeafUrl: "tls://gateway.example.com:7422", serverName: "acme-corp-site-1", jetstream: { storeDir: "/var/lib/nats", domain: "site-1" } });
  // Valid YAML too (a bundle's configuration is read as YAML): the same content either way.
  t.like(YAML.parse(conf), {
    server_name: "acme-corp-site-1",
    listen: "127.0.0.1:4222",
    jetstream: { domain: "site-1" },
    leafnodes: { remotes: [{ url: "tls://gateway.example.com:7422", tls: { cert_file: "certs/component.pem", key_file: "certs/component-key.pem", ca_file: "certs/ca-chain.pem" } }] },
  });
  t.throws(() => leafSiteConfig({ tenant: "acme-corp", gatewayLeafUrl: "tls://g:7422", serverName: "s", jetstream: { storeDir: "/x", domain: "hub" } }), { message: /may not be the hub's/ });
  t.throws(() => leafSiteConfig({ tenant: "acme-corp", gatewayLeafUrl: "nats://g:7422", serverName: "s" }), { message: /tls:\/\/host:port/ });
});

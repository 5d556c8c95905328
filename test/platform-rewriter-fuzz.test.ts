/**
 * Property tests of the platform rewriter, no network: whatever a platform client sends, nothing
 * reaches the PLATFORM account's internals ($SYS, its own $JS.API, $KV, the gateway's `_tg`
 * subjects) except the imports the gateway itself writes for a known tenant and the session's own
 * private namespace; whatever NATS delivers, the client gets only tenant subjects (each tenant
 * audited) and its own; and the rewriter never throws.
 */
import { Writable } from "node:stream";
import test from "ava";
import fc from "fast-check";
import { createLogger } from "../common/logger.ts";
import { AuditTrail, SessionAudit, type AuditRecord } from "../gateway/audit.ts";
import { PlatformRewriter } from "../gateway/platform-rewriter.ts";
import { ClientVerb, frameString, type ClientFrame } from "../gateway/protocol/frames.ts";
import { ClientProtocolParser } from "../gateway/protocol/parser.ts";
import type { RewriterEvents, SessionEnd } from "../gateway/session-rewriter.ts";

const RUNS = Number(process.env.FUZZ_RUNS ?? 400);
const TENANTS = new Set(["acme-corp", "globex"]);

const token = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("acme-corp", "globex", "initech", "events", "jobs", "x", "_INBOX", "API", "ACK", "STREAM", "LIST", "_tg", "_tg_to", "audit") },
  { weight: 1, arbitrary: fc.constantFrom("*", ">", "", "$SYS", "$JS", "$KV", "\r", "a\fb", "\x7f", "$O") },
);
const subject = fc.tuple(fc.option(fc.constantFrom("$JS.", "$JS.acme-corp.API.", "$JS.acme-corp.ACK.", "$JS.API.", "$SYS.", "$KV.", "_tg.", "_tg_to.", "_tg_to.acme-corp."), { nil: "" }), fc.array(token, { minLength: 1, maxLength: 4 })).map(([ns, ts]) => ns + ts.join("."));
const frame = fc.oneof(
  fc.tuple(subject, fc.option(subject, { nil: undefined }), fc.uint8Array({ maxLength: 16 })).map(([s, r, p]) => Buffer.concat([Buffer.from(`PUB ${s}${r === undefined ? "" : ` ${r}`} ${p.length}\r\n`), Buffer.from(p), Buffer.from("\r\n")])),
  fc.tuple(subject, fc.option(fc.constantFrom("q1", "a\rb"), { nil: undefined }), fc.nat(99)).map(([s, q, sid]) => Buffer.from(`SUB ${s}${q ? ` ${q}` : ""} ${sid + 1}\r\n`)),
  fc.nat(99).map((sid) => Buffer.from(`UNSUB ${sid + 1}\r\n`)),
  fc.constant(Buffer.from("PING\r\n")),
  fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b)),
);

function rewriter(records: AuditRecord[], ended: SessionEnd[]): PlatformRewriter {
  const sink = new Writable({ write: (_c, _e, done) => done() });
  const trail = new AuditTrail(createLogger({ level: "silent", destination: sink }), (_subject, r) => records.push(r));
  const events: RewriterEvents = { ended: (e) => ended.push(e), refused: (e) => ended.push(e), dropped: () => {}, jetStreamRefused: () => {}, natsError: () => {}, natsLameDuck: () => {} };
  return new PlatformRewriter({ session: "s1", maxPayload: 1024, isTenant: (s) => TENANTS.has(s), audit: new SessionAudit(trail, { identity: "admin", cn: "admin.platform.serviceradar", session: "s1" }, 60_000), events });
}

/** A byte nats-server would split an argument on, or DEL. */
const hasControl = (s: string): boolean => [...s].some((c) => c.charCodeAt(0) <= 0x20 || c.charCodeAt(0) === 0x7f);

const OWN = "_tg_s.s1.";

/** Into a tenant the way its edge clients can name subjects there (no `$` but `$SRV.`). */
function intoTenant(rest: string): boolean {
  const [slug, ...tail] = rest.split(".");
  const inside = tail.join(".");
  return TENANTS.has(slug!) && inside !== "" && (!inside.startsWith("$") || inside.startsWith("$SRV."));
}

function allowedUpstream(subject: string): boolean {
  if (hasControl(subject)) return false;
  if (subject.startsWith("_tg_to.")) return intoTenant(subject.slice("_tg_to.".length));
  if (subject.startsWith(OWN)) return !subject.startsWith(`${OWN}_tg`);
  if (subject.startsWith("_")) return false;
  if (subject.startsWith("$")) return /^\$JS\.(acme-corp|globex)\.(API|ACK)\./.test(subject);
  return false;
}

/** A reply the session's answers come back on: always its own namespace. */
function allowedReply(reply: string): boolean {
  return !hasControl(reply) && reply.startsWith(OWN) && !reply.startsWith(`${OWN}_tg`);
}

/** A subscription: the tenant view (never `$` or `_`), or the session's own namespace. */
function allowedSubscription(subject: string): boolean {
  return !hasControl(subject) && (subject.startsWith(OWN) ? !subject.startsWith(`${OWN}_tg`) : !/^(\$|_)/.test(subject));
}

test("platform sessions never reach the PLATFORM account's internals, whatever they send", (t) => {
  t.notThrows(() =>
    fc.assert(
    fc.property(fc.array(frame, { maxLength: 12 }), fc.array(fc.nat(60), { maxLength: 4 }), (frames, cuts) => {
      const records: AuditRecord[] = [];
      const ended: SessionEnd[] = [];
      const r = rewriter(records, ended);
      const input = Buffer.concat(frames);
      const points = [...new Set(cuts.map((c) => Math.min(c, input.length)))].sort((a, b) => a - b);
      const outputs: Buffer[] = [];
      let at = 0;
      for (const p of [...points, input.length]) {
        const out = r.clientData(input.subarray(at, p));
        if (out) outputs.push(out);
        at = p;
      }
      const upstream: Array<{ verb: number; subject: string; reply?: string }> = [];
      const parser = new ClientProtocolParser(
        {
          onFrame: (f: ClientFrame) => {
            if (f.verb === ClientVerb.Pub || f.verb === ClientVerb.Hpub || f.verb === ClientVerb.Sub) {
              upstream.push({ verb: f.verb, subject: frameString(f.buf, f.subjectStart, f.subjectEnd), ...(f.replyStart >= 0 ? { reply: frameString(f.buf, f.replyStart, f.replyEnd) } : {}) });
            }
          },
          onError: (e) => {
            throw e;
          },
        },
        { maxPayload: 1 << 20, maxControlLine: 1 << 16 },
      );
      parser.parse(Buffer.concat(outputs));
      for (const u of upstream) {
        if (u.verb === ClientVerb.Sub) {
          if (!allowedSubscription(u.subject)) return false;
        } else if (!allowedUpstream(u.subject) || (u.reply !== undefined && !allowedReply(u.reply))) return false;
      }
      // Every publish into a tenant is audited under that tenant.
      const intoTenants = upstream.filter((u) => u.verb !== ClientVerb.Sub && u.subject.startsWith("_tg_to.")).map((u) => u.subject.split(".")[1]);
      return intoTenants.every((slug) => records.some((rec) => rec.tenant === slug));
    }),
    { numRuns: RUNS },
    ),
  );
});

// ---- NATS → platform client ----------------------------------------------------------------------

/** Subjects NATS could deliver in the PLATFORM account: tenants', this session's, and everything else that lives there. */
const deliveredSubject = fc.tuple(
  fc.constantFrom("acme-corp.", "globex.", "initech.", OWN, "_tg_s.s2.", "_INBOX.", "_tg.audit.acme-corp.", "$JS.EVENT.ADVISORY.API.", "$KV.tenant_gateway_registry.", "$SYS.ACCOUNT.", "_R_.", ""),
  fc.array(fc.constantFrom("events", "x", "_INBOX", "abc", "1"), { minLength: 1, maxLength: 3 }),
).map(([p, ts]) => p + ts.join("."));

test("a platform client gets only tenant subjects and its own, and every tenant delivery is audited", (t) => {
  fc.assert(
    fc.property(fc.array(fc.tuple(deliveredSubject, fc.option(deliveredSubject, { nil: undefined }), fc.integer({ min: 1, max: 3 })), { minLength: 1, maxLength: 10 }), (messages) => {
      const records: AuditRecord[] = [];
      const r = rewriter(records, []);
      // Subscriptions as a curious admin makes them: everything, every tenant's events, its inboxes.
      r.clientData(Buffer.from("SUB > 1\r\nSUB *.events.> 2\r\nSUB _INBOX.> 3\r\n"));
      const input = Buffer.concat(messages.map(([subject, reply, sid]) => Buffer.from(`MSG ${subject} ${sid}${reply ? ` ${reply}` : ""} 2\r\nhi\r\n`)));
      const out = r.upstreamData(input)?.toString("latin1") ?? "";
      const got = [...out.matchAll(/MSG (\S+) (\d+)(?: (\S+))? 2\r\n/g)].map((m) => ({ subject: m[1]!, sid: Number(m[2]), reply: m[3] }));
      const ownOrTenant = (s: string): boolean => s.startsWith(OWN) || TENANTS.has(s.split(".")[0]!);
      const expected = messages.filter(([subject, reply]) => ownOrTenant(subject) && (reply === undefined || ownOrTenant(reply)));
      if (got.length !== expected.length) return false;
      for (const [i, [subject, reply]] of expected.entries()) {
        const view = (s: string): string => (s.startsWith(OWN) ? s.slice(OWN.length) : s);
        if (got[i]!.subject !== view(subject) || got[i]!.reply !== (reply === undefined ? undefined : view(reply))) return false;
      }
      // Every tenant whose message was delivered has a receive record, whatever the subscription.
      const delivered = new Set(expected.map(([subject]) => subject.split(".")[0]!).filter((s) => TENANTS.has(s)));
      return [...delivered].every((slug) => records.some((rec) => rec.operation === "receive" && rec.tenant === slug));
    }),
    { numRuns: RUNS },
  );
  t.pass();
});

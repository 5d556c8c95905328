/**
 * Does a tenant account's JetStream still take messages? Each stream and each consumer is served
 * inside nats-server by internal clients of the account; when one is closed (nats-server before
 * 2.10.28 / 2.11.2 closes them on account updates, see tenant-account.ts), the JetStream API still
 * answers — account info, stream info, consumer info look healthy — but publishes to the stream
 * get no responder (503, "jetstream is not enabled" in nats.js) and the consumer delivers nothing.
 *
 * So the check looks where the breakage is: the subscriptions the server holds. A live stream
 * has a subscription on each of its subjects from an internal client (not from one of the
 * account's connections, which CONNZ lists); a live durable consumer has its ack subscription
 * (`$JS.ACK.<stream>.<consumer>.…`). Everything is asked through the system account (JSZ, SUBSZ,
 * CONNZ of the account, from every server), so it writes nothing into the tenant's streams and
 * works while the tenant is suspended.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { errorMessage } from "../common/coded-error.ts";

/** One server's answer to `$SYS.REQ.ACCOUNT.<account>.<JSZ|SUBSZ|CONNZ>`. */
interface ServerReply<T> {
  server: { id: string; ver?: string; jetstream?: boolean };
  data?: T | null;
  error?: { code?: number; description?: string };
}

export interface JszAccount {
  stream_detail?: Array<{
    name: string;
    config?: { subjects?: string[] };
    consumer_detail?: Array<{ name: string; config?: { durable_name?: string } }>;
  }>;
}

interface Subsz {
  /** `account`: whose subscription it is — the account's own, or an importer's shadow in the account's interest (the PLATFORM account's platform streams). */
  subscriptions_list?: Array<{ subject: string; cid: number; account?: string }>;
}

interface Connz {
  connections?: Array<{ cid: number }>;
}

/** What one server holds for the account. */
export interface ServerJetStreamView {
  server: string;
  jsz: JszAccount | undefined;
  /** Why JSZ had no answer for the account (e.g. `account "A…" not jetstream enabled`). */
  jszError?: string;
  subscriptions: Array<{ subject: string; cid: number }>;
  /** The account's client connections on this server (every other subscription is an internal client's). */
  connectionCids: ReadonlySet<number>;
}

export interface JetStreamHealth {
  status: "ok" | "unavailable";
  streams: number;
  consumers: number;
  /** What does not take or deliver messages: `stream logs`, `consumer events/w0`, or why JetStream is off. */
  dead: string[];
}

/**
 * The verdict from what the servers hold. Pure. A stream is alive when some server has an internal
 * subscription on each of its subjects; a durable consumer when some server has its ack
 * subscription (ephemeral consumers come and go on their own and are not judged).
 */
export function judgeJetStream(views: readonly ServerJetStreamView[]): JetStreamHealth {
  const answered = views.filter((v) => v.jsz);
  if (answered.length === 0) {
    const why = views.map((v) => v.jszError).find((e) => e !== undefined) ?? "no server answered for the account";
    return { status: "unavailable", streams: 0, consumers: 0, dead: [`JetStream: ${why}`] };
  }
  const streams = new Map<string, string[]>();
  const consumers = new Set<string>();
  for (const v of answered) {
    for (const s of v.jsz!.stream_detail ?? []) {
      streams.set(s.name, s.config?.subjects ?? streams.get(s.name) ?? []);
      for (const c of s.consumer_detail ?? []) if (c.config?.durable_name) consumers.add(`${s.name}/${c.name}`);
    }
  }
  const internalSubjects = views.map((v) => new Set(v.subscriptions.filter((s) => !v.connectionCids.has(s.cid)).map((s) => s.subject)));
  const allSubjects = views.flatMap((v) => v.subscriptions.map((s) => s.subject));
  const dead: string[] = [];
  for (const [name, subjects] of streams) {
    if (subjects.length === 0) continue; // mirrors and sources: no subject to take messages on
    if (!internalSubjects.some((held) => subjects.every((s) => held.has(s)))) dead.push(`stream ${name}`);
  }
  for (const key of consumers) {
    const [stream, consumer] = key.split("/") as [string, string];
    const ack = `$JS.ACK.${stream}.${consumer}.`;
    if (!allSubjects.some((s) => s.startsWith(ack))) dead.push(`consumer ${key}`);
  }
  return { status: dead.length === 0 ? "ok" : "unavailable", streams: streams.size, consumers: consumers.size, dead };
}

/** Releases with the fix (nats-server b8d8d73): 2.10.28 and later 2.10s, 2.11.2 and later; 2.12+. */
export function dropsJetStreamClientsOnAccountUpdate(version: string): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 2) return major < 2;
  if (minor < 10) return true;
  if (minor === 10) return patch < 28;
  if (minor === 11) return patch < 2;
  return false;
}

const PING_SUBJECT = "$SYS.REQ.SERVER.PING";
const LARGE_LIMIT = 1_000_000;

/**
 * Asks every server of the deployment. The server count and versions are learnt once (a PING to
 * all servers); each check then waits for exactly that many answers.
 */
export class AccountJetStreamProbe {
  private readonly system: NatsConnection;
  private servers: Promise<Array<{ id: string; version: string; jetstream: boolean }>> | undefined;

  constructor(system: NatsConnection) {
    this.system = system;
  }

  private deployment(): Promise<Array<{ id: string; version: string; jetstream: boolean }>> {
    this.servers ??= (async () => {
      const found: Array<{ id: string; version: string; jetstream: boolean }> = [];
      const replies = await this.system.requestMany(PING_SUBJECT, "", { strategy: "stall", stall: 150, maxWait: 3000 });
      for await (const msg of replies) {
        const { server } = msg.json<ServerReply<unknown>>();
        if (server?.id && !found.some((s) => s.id === server.id)) found.push({ id: server.id, version: server.ver ?? "", jetstream: server.jetstream ?? false });
      }
      if (found.length === 0) found.push({ id: "", version: this.system.info?.version ?? "", jetstream: this.system.info?.jetstream ?? false });
      return found;
    })();
    return this.servers;
  }

  /** Does any server of the deployment close internal JetStream clients on account updates? */
  async dropsClientsOnUpdate(): Promise<boolean> {
    return (await this.deployment()).some((s) => dropsJetStreamClientsOnAccountUpdate(s.version));
  }

  /** Any JetStream at all in the deployment (else there is nothing to check). */
  async hasJetStream(): Promise<boolean> {
    return (await this.deployment()).some((s) => s.jetstream);
  }

  private async ask<T>(account: string, what: "JSZ" | "SUBSZ" | "CONNZ", body: unknown): Promise<Map<string, ServerReply<T>>> {
    const expected = (await this.deployment()).length;
    const replies = new Map<string, ServerReply<T>>();
    const iterator = await this.system.requestMany(`$SYS.REQ.ACCOUNT.${account}.${what}`, JSON.stringify(body), { strategy: "count", maxMessages: expected, maxWait: 3000 });
    for await (const msg of iterator) {
      const reply = msg.json<ServerReply<T>>();
      if (reply.server?.id !== undefined) replies.set(reply.server.id, reply);
    }
    return replies;
  }

  private async views(account: string): Promise<ServerJetStreamView[]> {
    // JSZ first, then SUBSZ, then CONNZ: a stream or client that appears in between is never taken for a dead one.
    const jsz = await this.ask<JszAccount>(account, "JSZ", { streams: true, consumer: true, config: true });
    const subsz = await this.ask<Subsz>(account, "SUBSZ", { subscriptions: true, limit: LARGE_LIMIT });
    const connz = await this.ask<Connz>(account, "CONNZ", { limit: LARGE_LIMIT });
    const ids = new Set([...jsz.keys(), ...subsz.keys()]);
    return [...ids].map((server) => {
      const j = jsz.get(server);
      return {
        server,
        jsz: j?.data ?? undefined,
        ...(j?.error && j.server.jetstream !== false ? { jszError: j.error.description ?? JSON.stringify(j.error) } : {}),
        // Another account's interest (an import's shadow subscription) says nothing of this account's streams.
        subscriptions: (subsz.get(server)?.data?.subscriptions_list ?? []).filter((sub) => sub.account === undefined || sub.account === account),
        connectionCids: new Set((connz.get(server)?.data?.connections ?? []).map((c) => c.cid)),
      };
    });
  }

  /**
   * The account's JetStream health. A dead verdict is taken twice and only what is dead both
   * times counts, so a stream or consumer removed during the first look is not reported.
   */
  async check(account: string): Promise<JetStreamHealth> {
    try {
      const first = judgeJetStream(await this.views(account));
      if (first.status === "ok") return first;
      const second = judgeJetStream(await this.views(account));
      const dead = second.dead.filter((d) => first.dead.includes(d));
      return { ...second, status: dead.length === 0 ? "ok" : "unavailable", dead };
    } catch (err) {
      return { status: "unavailable", streams: 0, consumers: 0, dead: [`JetStream: the servers did not say (${errorMessage(err)})`] };
    }
  }
}

/**
 * The tenants' streams as an operator watches them: messages, bytes, consumers and consumer lag
 * (the seed system's plans ask for consumer-lag health per tenant). Read through the system
 * account — one JSZ request per page of accounts answers for every tenant at once — periodically,
 * never per scrape: at 1,000 tenants a collection is a handful of requests every interval.
 *
 * A data-plane data dir has no system account: the periodic figures are then unavailable
 * (`tenant_gateway_jetstream_stats_up 0`), and one tenant's streams are read on demand through a
 * control user of its own account instead (the console's tenant page).
 */
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorMessage } from "../common/coded-error.ts";
import type { Logger } from "../common/logger.ts";
import { tenantSubjectMapper } from "../common/namespaces.ts";
import type { ControlPlane } from "../accounts/control-plane.ts";
import type { TenantRecord } from "../accounts/tenant-store.ts";
import { TenantService } from "../accounts/tenants.ts";

export interface ConsumerStats {
  name: string;
  durable: boolean;
  /** Messages of the stream (matching its filter) not yet delivered to it: its lag. */
  num_pending: number;
  num_ack_pending: number;
  num_redelivered: number;
  num_waiting: number;
  /** The last stream sequence delivered, and the one up to which everything is acknowledged. */
  delivered_stream_seq: number;
  ack_floor_stream_seq: number;
}

export interface StreamStats {
  tenant: string;
  stream: string;
  /** Edge view (what the tenant's clients name), when known. */
  subjects?: string[];
  messages: number;
  bytes: number;
  consumers: number;
  /** The largest num_pending of the stream's consumers (0 without consumers). */
  consumer_lag: number;
  /** Delivered and not yet acknowledged, summed over the consumers. */
  ack_pending: number;
  consumer_detail?: ConsumerStats[];
}

/** One server's JSZ answer (`$SYS.REQ.SERVER.PING.JSZ`, `$SYS.REQ.ACCOUNT.<id>.JSZ`): the parts read here. */
export interface JszReply {
  server?: { name?: string; id?: string };
  data?: {
    account_details?: JszAccountDetail[];
    /** `$SYS.REQ.ACCOUNT.<id>.JSZ` answers with one account's details at the top level. */
    stream_detail?: JszStream[];
    id?: string;
  } | null;
  error?: { description?: string };
}

interface JszAccountDetail {
  name?: string;
  id: string;
  stream_detail?: JszStream[];
}

interface JszStream {
  name: string;
  cluster?: { leader?: string };
  config?: { subjects?: string[] };
  state?: { messages?: number; bytes?: number; consumer_count?: number };
  consumer_detail?: Array<{
    name: string;
    config?: { durable_name?: string };
    delivered?: { stream_seq?: number };
    ack_floor?: { stream_seq?: number };
    num_ack_pending?: number;
    num_redelivered?: number;
    num_waiting?: number;
    num_pending?: number;
  }>;
}

function consumerStats(c: NonNullable<JszStream["consumer_detail"]>[number]): ConsumerStats {
  return {
    name: c.name,
    durable: c.config?.durable_name !== undefined,
    num_pending: c.num_pending ?? 0,
    num_ack_pending: c.num_ack_pending ?? 0,
    num_redelivered: c.num_redelivered ?? 0,
    num_waiting: c.num_waiting ?? 0,
    delivered_stream_seq: c.delivered?.stream_seq ?? 0,
    ack_floor_stream_seq: c.ack_floor?.stream_seq ?? 0,
  };
}

export function summarizeStream(tenant: string, stream: string, state: { messages: number; bytes: number }, consumers: ConsumerStats[], subjects?: string[], withDetail = false): StreamStats {
  return {
    tenant,
    stream,
    ...(subjects ? { subjects } : {}),
    messages: state.messages,
    bytes: state.bytes,
    consumers: consumers.length,
    consumer_lag: consumers.reduce((max, c) => Math.max(max, c.num_pending), 0),
    ack_pending: consumers.reduce((sum, c) => sum + c.num_ack_pending, 0),
    ...(withDetail ? { consumer_detail: consumers } : {}),
  };
}

/**
 * Per tenant stream, from the JSZ answers of every server. In a cluster each replica reports its
 * copy of a stream: the stream leader's answer is the one taken. Pure.
 */
export function streamStatsFromJsz(replies: readonly JszReply[], tenantOf: (accountId: string) => string | undefined, opts: { withDetail?: boolean } = {}): StreamStats[] {
  const chosen = new Map<string, { stats: StreamStats; leader: boolean }>();
  for (const reply of replies) {
    const accounts = reply.data?.account_details ?? (reply.data?.stream_detail && reply.data.id ? [{ id: reply.data.id, stream_detail: reply.data.stream_detail }] : []);
    for (const account of accounts) {
      const tenant = tenantOf(account.id);
      if (!tenant) continue;
      const mapper = tenantSubjectMapper(tenant);
      for (const s of account.stream_detail ?? []) {
        const key = `${tenant}\u0000${s.name}`;
        const leader = s.cluster?.leader !== undefined && s.cluster.leader === reply.server?.name;
        const previous = chosen.get(key);
        if (previous && (previous.leader || !leader)) continue;
        const subjects = s.config?.subjects?.map((subject) => mapper.toEdge(subject) ?? subject);
        const stats = summarizeStream(tenant, s.name, { messages: s.state?.messages ?? 0, bytes: s.state?.bytes ?? 0 }, (s.consumer_detail ?? []).map(consumerStats), subjects, opts.withDetail);
        chosen.set(key, { stats, leader });
      }
    }
  }
  return [...chosen.values()].map((c) => c.stats).sort((a, b) => a.tenant.localeCompare(b.tenant) || a.stream.localeCompare(b.stream));
}

/** Accounts per JSZ page: keeps each server's answer well under NATS's payload limit with 1,000 tenants. */
const PAGE = 64;
const STALL_MS = 250;
const MAX_WAIT_MS = 5000;

async function askAll(system: NatsConnection, subject: string, body: object, servers: number | undefined): Promise<JszReply[]> {
  const replies: JszReply[] = [];
  const options = servers ? { strategy: "count" as const, maxMessages: servers, maxWait: MAX_WAIT_MS } : { strategy: "stall" as const, stall: STALL_MS, maxWait: MAX_WAIT_MS };
  for await (const m of await system.requestMany(subject, JSON.stringify(body), options)) replies.push(m.json<JszReply>());
  return replies;
}

export interface JetStreamSnapshot {
  available: boolean;
  streams: StreamStats[];
  collectedAt?: Date;
  durationMs?: number;
  error?: string;
}

export class JetStreamStats {
  private readonly cp: ControlPlane;
  private readonly tenants: () => Iterable<TenantRecord>;
  private readonly intervalMs: number;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private current: JetStreamSnapshot;
  /** How many servers answered last time: later requests wait for exactly that many. */
  private servers: number | undefined;

  constructor(opts: { cp: ControlPlane; tenants: () => Iterable<TenantRecord>; intervalMs: number; log: Logger }) {
    this.cp = opts.cp;
    this.tenants = opts.tenants;
    this.intervalMs = opts.intervalMs;
    this.log = opts.log;
    this.current = { available: this.cp.canSignAccounts, streams: [] };
  }

  latest(): JetStreamSnapshot {
    return this.current;
  }

  /** Collects now, then every interval, until stop(). Nothing happens without the system account. */
  start(): void {
    if (!this.cp.canSignAccounts) {
      this.log.info({ event: "jetstream_stats_unavailable" }, "no system account in this data dir (its data-plane part): the periodic JetStream metrics (consumer lag) come from a gateway on the control plane's data dir");
      return;
    }
    const tick = (): void => {
      this.running = this.collect().finally(() => {
        this.running = undefined;
        if (!this.stopped) {
          this.timer = setTimeout(tick, this.intervalMs);
          this.timer.unref();
        }
      });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private accountIndex(): Map<string, string> {
    const index = new Map<string, string>();
    for (const r of this.tenants()) index.set(r.account_public_key, r.slug);
    return index;
  }

  /** One collection over every tenant account, page by page. */
  async collect(): Promise<void> {
    const started = Date.now();
    try {
      const system = await this.cp.system();
      const index = this.accountIndex();
      const replies: JszReply[] = [];
      for (let offset = 0; ; offset += PAGE) {
        const page = await askAll(system, "$SYS.REQ.SERVER.PING.JSZ", { accounts: true, streams: true, consumer: true, config: true, offset, limit: PAGE }, this.servers);
        if (page.length === 0) throw new Error("no NATS server answered the JSZ request");
        this.servers = page.length;
        replies.push(...page);
        if (page.every((r) => (r.data?.account_details?.length ?? 0) < PAGE)) break;
      }
      this.current = { available: true, streams: streamStatsFromJsz(replies, (id) => index.get(id)), collectedAt: new Date(), durationMs: Date.now() - started };
    } catch (err) {
      this.servers = undefined;
      const error = errorMessage(err);
      if (this.current.error !== error) this.log.warn({ event: "jetstream_stats_failed", error }, "reading the tenants' streams for the JetStream metrics failed; retried next interval");
      this.current = { ...this.current, error, durationMs: Date.now() - started };
    }
  }

  /**
   * One tenant's streams with each consumer, now (the console's tenant page, the API): through
   * the system account when there is one, else through a control user of the tenant's account.
   */
  async tenant(record: TenantRecord): Promise<StreamStats[]> {
    if (this.cp.canSignAccounts) {
      const system = await this.cp.system();
      const replies = await askAll(system, `$SYS.REQ.ACCOUNT.${record.account_public_key}.JSZ`, { streams: true, consumer: true, config: true }, this.servers);
      return streamStatsFromJsz(replies, (id) => (id === record.account_public_key ? record.slug : undefined), { withDetail: true });
    }
    const { signingKey } = await new TenantService(this.cp).load(record.slug);
    const nc = await this.cp.accountConnection(record.account_public_key, signingKey, "tenant-gateway-stats");
    try {
      const jsm = await jetstreamManager(nc);
      const mapper = tenantSubjectMapper(record.slug);
      const out: StreamStats[] = [];
      for await (const si of jsm.streams.list()) {
        const consumers: ConsumerStats[] = [];
        for await (const ci of jsm.consumers.list(si.config.name)) {
          consumers.push(
            consumerStats({
              name: ci.name,
              config: ci.config.durable_name ? { durable_name: ci.config.durable_name } : {},
              delivered: { stream_seq: ci.delivered.stream_seq },
              ack_floor: { stream_seq: ci.ack_floor.stream_seq },
              num_ack_pending: ci.num_ack_pending,
              num_redelivered: ci.num_redelivered,
              num_waiting: ci.num_waiting,
              num_pending: ci.num_pending,
            }),
          );
        }
        const subjects = (si.config.subjects ?? []).map((s) => mapper.toEdge(s) ?? s);
        out.push(summarizeStream(record.slug, si.config.name, si.state, consumers, subjects, true));
      }
      return out.sort((a, b) => a.stream.localeCompare(b.stream));
    } finally {
      await nc.close();
    }
  }
}

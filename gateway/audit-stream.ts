/**
 * The audit stream in the PLATFORM account: created (or brought to the configured retention) by
 * the gateway at start-up, written by the gateway's own control connection, read by
 * `tenant-gateway audit`. Platform sessions may neither read nor write `_tg.` subjects.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager, type StreamConfig } from "@nats-io/jetstream";
import { CodedError, errorMessage } from "../common/coded-error.ts";
import { AUDIT_STREAM, AUDIT_SUBJECT_PREFIX, type AuditRecord } from "./audit.ts";

const NANOS_PER_SECOND = 1_000_000_000;

export async function ensureAuditStream(nc: NatsConnection, opts: { maxAgeSeconds: number; maxBytes?: number }): Promise<"created" | "updated" | "unchanged"> {
  const jsm = await jetstreamManager(nc);
  const wanted: Partial<StreamConfig> & { name: string } = {
    name: AUDIT_STREAM,
    subjects: [`${AUDIT_SUBJECT_PREFIX}.>`],
    max_age: opts.maxAgeSeconds * NANOS_PER_SECOND,
    max_bytes: opts.maxBytes ?? -1,
    description: "tenant-gateway: cross-tenant access by platform identities",
  };
  try {
    const info = await jsm.streams.info(AUDIT_STREAM);
    if (info.config.max_age === wanted.max_age && info.config.max_bytes === wanted.max_bytes) return "unchanged";
    await jsm.streams.update(AUDIT_STREAM, { ...info.config, ...wanted });
    return "updated";
  } catch (err) {
    if (!/not found/i.test(errorMessage(err))) throw new CodedError("audit_stream_failed", `cannot read the audit stream: ${errorMessage(err)}`, { cause: err });
    await jsm.streams.add(wanted);
    return "created";
  }
}

export interface AuditQuery {
  tenant?: string;
  identity?: string;
  /** Only records at or after this time. */
  since?: Date;
  limit?: number;
}

/** Reads matching records, oldest first, with an ordered consumer filtered by subject. */
export async function readAuditRecords(nc: NatsConnection, q: AuditQuery): Promise<AuditRecord[]> {
  const js = jetstream(nc);
  const filter = `${AUDIT_SUBJECT_PREFIX}.${q.tenant ?? "*"}.${q.identity ?? "*"}`;
  const records: AuditRecord[] = [];
  let consumer;
  try {
    consumer = await js.consumers.get(AUDIT_STREAM, {
      filter_subjects: filter,
      ...(q.since ? { deliver_policy: DeliverPolicy.StartTime, opt_start_time: q.since.toISOString() } : { deliver_policy: DeliverPolicy.All }),
    });
  } catch (err) {
    if (/not found/i.test(errorMessage(err))) return records;
    throw err;
  }
  const limit = q.limit ?? 10_000;
  for (;;) {
    let last = -1;
    for await (const m of await consumer.fetch({ max_messages: 500, expires: 1000 })) {
      records.push(m.json<AuditRecord>());
      last = m.info.pending;
      if (records.length >= limit) break;
    }
    if (last <= 0 || records.length >= limit) break;
  }
  await consumer.delete().catch(() => undefined);
  return records;
}

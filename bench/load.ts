/**
 * A load generator process. The orchestrator forks it (`node --import tsx bench/load.ts`) and
 * sends it one task at a time over IPC (bench/load-protocol.ts); it answers with the figures it
 * measured. Publishers, subscribers and responders run in different generator processes, so no
 * client process does both ends of a measurement.
 */
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToIo } from "node:timers/promises";
import { connectPath, type BenchConnection } from "./nats-client.ts";
import type { ConnectTask, JetStreamPublishTask, LatencySummary, LoadMessage, LoadReply, LoadTask, OpenIdleTask, PublishTask, RequestTask, RespondTask, SubscribeTask, Throughput } from "./load-protocol.ts";
import { quantile } from "./stats.ts";

/** Messages published between two yields to the event loop: about 64 KiB of payload. */
function burstOf(size: number): number {
  return Math.max(1, Math.floor((64 * 1024) / size));
}

/** Without subscribers, a flush (PING/PONG) every this many payload bytes, and this many outstanding. */
const FLUSH_EVERY_BYTES = 1024 * 1024;
const FLUSHES_IN_FLIGHT = 4;
const ACK_TICK_MS = 2;
/** No acknowledgement for this long: the messages are lost (a slow consumer cut, a broken path). */
const STALL_MS = 15_000;

const held: BenchConnection[] = [];
const timers: NodeJS.Timeout[] = [];
let connectionSeq = 0;

function name(role: string): string {
  return `bench-${role}-${process.pid}-${++connectionSeq}`;
}

function payloadOf(size: number): Uint8Array {
  return new Uint8Array(size).fill(0x78);
}

async function publish(task: PublishTask): Promise<Throughput> {
  const nc = await connectPath(task.library, task.path, name("pub"));
  try {
    const payload = payloadOf(task.size);
    const burst = burstOf(task.size);
    const acked = new Map<string, number>();
    let ackedTotal = 0;
    let wake: (() => void) | undefined;
    const flow = task.flow;
    if (flow) {
      nc.subscribe(flow.ackSubject, (data) => {
        const [id, count] = Buffer.from(data).toString("latin1").split(" ");
        ackedTotal += Number(count) - (acked.get(id!) ?? 0);
        acked.set(id!, Number(count));
        wake?.();
      });
      await nc.flush();
    }
    const waitForAck = (): Promise<void> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no acknowledgement for ${STALL_MS} ms: ${sent - ackedTotal} of ${sent} messages undelivered`)), STALL_MS);
        wake = () => {
          clearTimeout(timer);
          wake = undefined;
          resolve();
        };
      });
    const flushEvery = Math.max(1, Math.floor(FLUSH_EVERY_BYTES / task.size));
    const flushes: Promise<void>[] = [];
    let sent = 0;
    let sinceFlush = 0;
    const started = performance.now();
    const deadline = started + task.durationMs;
    while (performance.now() < deadline && sent < task.maxMessages) {
      let n = Math.min(burst, task.maxMessages - sent);
      if (flow) {
        const credit = flow.maxInFlight - (sent - ackedTotal);
        if (credit <= 0) {
          await waitForAck();
          continue;
        }
        n = Math.min(n, credit);
      }
      for (let i = 0; i < n; i++) nc.publish(task.subject, payload);
      sent += n;
      sinceFlush += n;
      if (!flow && sinceFlush >= flushEvery) {
        sinceFlush = 0;
        flushes.push(nc.flush());
        if (flushes.length >= FLUSHES_IN_FLIGHT) await flushes.shift();
        else await yieldToIo();
      } else await yieldToIo();
    }
    if (flow) while (ackedTotal < sent) await waitForAck();
    else {
      flushes.push(nc.flush());
      await Promise.all(flushes);
    }
    return { messages: sent, seconds: (performance.now() - started) / 1000 };
  } finally {
    await nc.close();
  }
}

async function subscribe(task: SubscribeTask): Promise<{ ready: true }> {
  const connections = await Promise.all(Array.from({ length: task.connections }, () => connectPath(task.library, task.path, name("sub"))));
  held.push(...connections);
  connections.forEach((nc, index) => {
    const id = `${process.pid}-${index}`;
    let count = 0;
    let reported = 0;
    const ack = (): void => {
      reported = count;
      nc.publish(task.ackSubject, Buffer.from(`${id} ${count}`, "latin1"));
    };
    nc.subscribe(
      task.subject,
      () => {
        if (++count - reported >= task.ackEvery) ack();
      },
      task.queue,
    );
    // The last messages of a run are fewer than ackEvery: acknowledged within a tick.
    timers.push(
      setInterval(() => {
        if (count > reported) ack();
      }, ACK_TICK_MS),
    );
  });
  await Promise.all(connections.map((nc) => nc.flush()));
  return { ready: true };
}

async function respond(task: RespondTask): Promise<{ ready: true }> {
  const nc = await connectPath(task.library, task.path, name("responder"));
  held.push(nc);
  nc.subscribe(task.subject, (data, reply) => {
    if (reply) nc.publish(reply, data);
  });
  await nc.flush();
  return { ready: true };
}

/**
 * Requests at a fixed rate (open loop: the next request does not wait for the last reply), each
 * timed from its send to its reply. Replies are matched by the sequence number in the payload.
 */
async function request(task: RequestTask): Promise<LatencySummary> {
  const nc = await connectPath(task.library, task.path, name("requester"));
  try {
    const total = Math.max(1, Math.round((task.ratePerSecond * task.durationMs) / 1000));
    const warmup = Math.round((task.ratePerSecond * task.warmupMs) / 1000);
    const sentAt = new Float64Array(warmup + total);
    const rtts = new Float64Array(total);
    let counted = 0;
    let received = 0;
    const replySubject = `${task.path.subjectPrefix}_INBOX.bench.${process.pid}.${connectionSeq}`;
    let allReplies: (() => void) | undefined;
    nc.subscribe(replySubject, (data) => {
      const now = performance.now();
      const seq = Buffer.from(data.buffer, data.byteOffset, data.length).readUInt32LE(0);
      received++;
      if (seq >= warmup) rtts[counted++] = (now - sentAt[seq]!) * 1000;
      if (received === sentAt.length) allReplies?.();
    });
    await nc.flush();
    const intervalMs = 1000 / task.ratePerSecond;
    let sent = 0;
    const started = performance.now();
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(sentAt.length, Math.floor((performance.now() - started) / intervalMs) + 1);
        while (sent < due) {
          const payload = Buffer.alloc(Math.max(task.size, 4), 0x78);
          payload.writeUInt32LE(sent, 0);
          sentAt[sent] = performance.now();
          nc.publish(task.subject, payload, replySubject);
          sent++;
        }
        if (sent >= sentAt.length) {
          clearInterval(timer);
          resolve();
        }
      };
      const timer = setInterval(tick, Math.max(1, Math.floor(intervalMs)));
      tick();
    });
    if (received < sentAt.length) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 5000);
        allReplies = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const sorted = rtts.subarray(0, counted).sort();
    return { count: counted, lost: sentAt.length - received, p50_us: quantile(sorted, 0.5), p90_us: quantile(sorted, 0.9), p99_us: quantile(sorted, 0.99), p999_us: quantile(sorted, 0.999) };
  } finally {
    await nc.close();
  }
}

async function jsPublish(task: JetStreamPublishTask): Promise<Throughput> {
  const nc = await connectPath(task.library, task.path, name("js"));
  try {
    const payload = payloadOf(task.size);
    let sent = 0;
    let acked = 0;
    let failure: unknown;
    const started = performance.now();
    const deadline = started + task.durationMs;
    await new Promise<void>((resolve) => {
      const more = (): void => {
        if (failure !== undefined) return resolve();
        while (sent - acked < task.window && sent < task.maxMessages && performance.now() < deadline) {
          sent++;
          nc.jsPublish(task.subject, payload).then(
            () => {
              acked++;
              if (acked === sent && (sent >= task.maxMessages || performance.now() >= deadline)) resolve();
              else more();
            },
            (err: unknown) => {
              failure ??= err;
              resolve();
            },
          );
        }
      };
      more();
    });
    if (failure !== undefined) throw failure;
    return { messages: acked, seconds: (performance.now() - started) / 1000 };
  } finally {
    await nc.close();
  }
}

/** New connections, each complete through the first PONG, from `concurrency` sequential workers. */
async function connectMany(task: ConnectTask): Promise<{ connections: number; seconds: number }> {
  let done = 0;
  let started = 0;
  const closing: Promise<void>[] = [];
  const t0 = performance.now();
  const deadline = t0 + task.durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < deadline && started < task.maxConnections) {
      started++;
      const nc = await connectPath(task.library, task.path, name("connect"));
      done++;
      closing.push(nc.close());
    }
  };
  await Promise.all(Array.from({ length: task.concurrency }, worker));
  const seconds = (performance.now() - t0) / 1000;
  await Promise.allSettled(closing);
  return { connections: done, seconds };
}

async function openIdle(task: OpenIdleTask): Promise<{ opened: number }> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < task.count) {
      next++;
      held.push(await connectPath(task.library, task.path, name("idle")));
    }
  };
  await Promise.all(Array.from({ length: task.concurrency }, worker));
  return { opened: task.count };
}

async function release(): Promise<{ released: number }> {
  for (const t of timers.splice(0)) clearInterval(t);
  const connections = held.splice(0);
  await Promise.allSettled(connections.map((nc) => nc.close()));
  return { released: connections.length };
}

function run(task: LoadTask): Promise<unknown> {
  switch (task.op) {
    case "publish":
      return publish(task);
    case "subscribe":
      return subscribe(task);
    case "respond":
      return respond(task);
    case "request":
      return request(task);
    case "jsPublish":
      return jsPublish(task);
    case "connect":
      return connectMany(task);
    case "openIdle":
      return openIdle(task);
    case "release":
      return release();
  }
}

process.on("message", (message: LoadMessage) => {
  run(message.task).then(
    (value) => process.send!({ id: message.id, ok: true, value } satisfies LoadReply),
    (err: unknown) => process.send!({ id: message.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) } satisfies LoadReply),
  );
});
process.on("disconnect", () => process.exit(0));

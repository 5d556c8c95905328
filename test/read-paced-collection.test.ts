/**
 * Young collections paced by the bytes read: one after every `everyBytes`, once the turn's reads
 * are processed, and none while less has been read. The collections are V8's own (observed as GC
 * entries of the young generation), not a counter that moved.
 */
import test from "ava";
import { constants, PerformanceObserver } from "node:perf_hooks";
import { ReadPacedCollection } from "../gateway/memory-relief.ts";

const MB = 1024 * 1024;
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Young collections V8 reports while `run` runs (the observer delivers its entries asynchronously). */
async function youngCollectionsDuring(run: () => Promise<void>): Promise<number> {
  let young = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) young++;
  });
  observer.observe({ entryTypes: ["gc"] });
  await run();
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  return young;
}

test.serial("reading past the pace runs one young collection after the turn; less runs none", async (t) => {
  const pacing = new ReadPacedCollection(4 * MB);
  for (let i = 0; i < 60; i++) pacing.read(64 * 1024);
  await nextTurn();
  t.is(pacing.collections, 0, "3.75 MB read: no collection of its own");

  const young = await youngCollectionsDuring(async () => {
    for (let i = 0; i < 8; i++) pacing.read(64 * 1024);
    t.is(pacing.collections, 0, "not inside the reads of the turn");
    await nextTurn();
  });
  t.is(pacing.collections, 1);
  t.true(young >= 1, "V8 ran a young collection in that turn");

  // Counting starts again after a collection: many reads in one turn make one collection.
  for (let i = 0; i < 200; i++) pacing.read(64 * 1024);
  await nextTurn();
  t.is(pacing.collections, 2);
});

/**
 * MemoryKV's history: bounded by auto-compaction, never skipping events silently. (The store's
 * etcd semantics at large are the conformance suite's, run side by side with a real etcd.)
 */
import assert from "node:assert/strict";
import { KVCompactedError, type KVEvent } from "../../src/lease/kv.ts";
import { MemoryKV } from "../../src/lease/memory/kv.ts";

Deno.test("MemoryKV: the history stays bounded; a watch from before the compaction is told so", async () => {
  const kv = new MemoryKV({ historyLimit: 10 });
  try {
    for (let i = 0; i < 25; i++) kv.put(`/p/k${i}`, String(i));
    const ctl = new AbortController();
    const it = kv.watch("/p/", 2n, ctl.signal)[Symbol.asyncIterator]();
    await assert.rejects(it.next(), KVCompactedError);
    // The newest ten are still there: a watch from inside them works.
    const fresh = kv.watch("/p/", kv.revision - 5n, ctl.signal)[Symbol.asyncIterator]();
    const got = await fresh.next();
    assert.deepEqual((got.value as KVEvent[]).map((e) => e.value), ["19", "20", "21", "22", "23", "24"]);
    ctl.abort();
  } finally {
    kv.close();
  }
});

Deno.test("MemoryKV: a watcher that keeps up sees every event while the history is trimmed", async () => {
  const kv = new MemoryKV({ historyLimit: 4 });
  const ctl = new AbortController();
  try {
    const it = kv.watch("/p/", kv.revision + 1n, ctl.signal)[Symbol.asyncIterator]();
    const seen: string[] = [];
    for (let i = 0; i < 50; i++) {
      kv.put(`/p/k${i % 3}`, String(i));
      kv.put(`/other/${i}`, "x"); // not under the prefix, trimmed all the same
      const r = await it.next();
      seen.push(...(r.value as KVEvent[]).map((e) => e.value));
    }
    assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => String(i)));
  } finally {
    ctl.abort();
    kv.close();
  }
});

Deno.test("MemoryKV: a watcher left behind by the trimming gets KVCompactedError, not a gap", async () => {
  const kv = new MemoryKV({ historyLimit: 3 });
  const ctl = new AbortController();
  try {
    const it = kv.watch("/p/", kv.revision + 1n, ctl.signal)[Symbol.asyncIterator]();
    kv.put("/p/a", "1");
    assert.deepEqual(((await it.next()).value as KVEvent[]).map((e) => e.value), ["1"]);
    for (let i = 2; i < 20; i++) kv.put("/p/a", String(i)); // while the consumer is not pulling
    await assert.rejects(it.next(), KVCompactedError);
  } finally {
    ctl.abort();
    kv.close();
  }
});

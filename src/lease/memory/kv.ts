/**
 * An in-memory {@linkcode KV} with etcd's semantics: one global revision, mod revisions per key,
 * TTL leases that delete their keys when they expire, a change history that can be compacted,
 * and prefix watches that resume from any revision still in the history.
 *
 * Used by the unit tier, by the lease-store conformance suite (side by side with real etcd), and
 * by library users who want a single-process flannel without a datastore.
 *
 * @module
 */
import { type Clock, systemClock } from "../../util/clock.ts";
import { type KV, KVCompactedError, type KVEntry, type KVEvent } from "../kv.ts";

/** Change events a {@linkcode MemoryKV} keeps by default. */
export const DEFAULT_HISTORY_LIMIT = 10_000;

interface Watcher {
  prefix: string;
  wake: () => void;
}

/** The in-memory store. Call {@linkcode MemoryKV.close} to stop its expiry timer. */
export class MemoryKV implements KV {
  #clock: Clock;
  #rev = 1n;
  #compacted = 0n;
  #data = new Map<string, KVEntry>();
  #history: KVEvent[] = [];
  #leases = new Map<bigint, { expiresAt: number; keys: Set<string> }>();
  #nextLease = 1n;
  #watchers = new Set<Watcher>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  readonly #historyLimit: number;

  /**
   * @param opts.historyLimit Change events kept for watches (default
   *   {@linkcode DEFAULT_HISTORY_LIMIT}); beyond twice that the oldest are compacted away, as
   *   etcd's auto-compaction does, so a long-lived store does not grow without end. A watcher
   *   that fell behind the compaction gets {@linkcode KVCompactedError} and lists again.
   */
  constructor(opts: { clock?: Clock; historyLimit?: number } = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#historyLimit = Math.max(1, opts.historyLimit ?? DEFAULT_HISTORY_LIMIT);
  }

  /** The current store revision. */
  get revision(): bigint {
    return this.#rev;
  }

  get(key: string): Promise<{ entry: KVEntry | undefined; revision: bigint }> {
    this.#expire();
    const entry = this.#data.get(key);
    return Promise.resolve({ entry: entry && { ...entry }, revision: this.#rev });
  }

  list(prefix: string): Promise<{ entries: KVEntry[]; revision: bigint }> {
    this.#expire();
    const entries = [...this.#data.values()].filter((e) => e.key.startsWith(prefix))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((e) => ({ ...e }));
    return Promise.resolve({ entries, revision: this.#rev });
  }

  create(key: string, value: string, ttlSeconds: number): Promise<KVEntry | undefined> {
    this.#expire();
    if (this.#data.has(key)) return Promise.resolve(undefined);
    return Promise.resolve(this.#put(key, value, ttlSeconds));
  }

  update(
    key: string,
    value: string,
    ttlSeconds: number,
    expectRevision: bigint,
  ): Promise<KVEntry | undefined> {
    this.#expire();
    const cur = this.#data.get(key);
    if (!cur || cur.modRevision !== expectRevision) return Promise.resolve(undefined);
    return Promise.resolve(this.#put(key, value, ttlSeconds));
  }

  delete(key: string, expectRevision?: bigint): Promise<boolean> {
    this.#expire();
    const cur = this.#data.get(key);
    if (!cur || (expectRevision !== undefined && cur.modRevision !== expectRevision)) {
      return Promise.resolve(false);
    }
    this.#remove(key);
    this.#notify();
    return Promise.resolve(true);
  }

  /** Writes a key unconditionally, like `etcdctl put` (optionally bound to a TTL). */
  put(key: string, value: string, ttlSeconds = 0): KVEntry {
    this.#expire();
    return this.#put(key, value, ttlSeconds);
  }

  ttl(leaseId: bigint): Promise<number> {
    this.#expire();
    const l = this.#leases.get(leaseId);
    if (!l) return Promise.resolve(-1);
    return Promise.resolve(Math.max(0, Math.ceil((l.expiresAt - this.#clock.now()) / 1000)));
  }

  /** Drops history up to `revision`, as `etcdctl compact` does. */
  compact(revision: bigint): void {
    this.#compacted = revision;
    this.#history = this.#history.filter((e) => e.modRevision > revision);
  }

  async *watch(prefix: string, fromRevision: bigint, signal: AbortSignal): AsyncIterable<KVEvent[]> {
    if (fromRevision <= this.#compacted && fromRevision > 0n) throw new KVCompactedError(this.#compacted);
    let next = fromRevision > 0n ? fromRevision : this.#rev + 1n;
    let wake: () => void = () => {};
    const watcher: Watcher = { prefix, wake: () => wake() };
    const onAbort = () => wake();
    signal.addEventListener("abort", onAbort, { once: true });
    this.#watchers.add(watcher);
    try {
      while (!signal.aborted) {
        // Events this watcher has not seen were compacted away: say so, never skip them silently.
        if (next <= this.#compacted) throw new KVCompactedError(this.#compacted);
        const batch = this.#history.filter((e) => e.modRevision >= next && e.key.startsWith(prefix));
        if (batch.length > 0) {
          next = batch[batch.length - 1]!.modRevision + 1n;
          yield batch.map((e) => ({ ...e }));
          continue;
        }
        next = this.#rev + 1n; // caught up: everything so far was seen (or not under the prefix)
        if (this.#closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#watchers.delete(watcher);
    }
  }

  /** Stops the expiry timer. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#watchers) w.wake();
  }

  #put(key: string, value: string, ttlSeconds: number): KVEntry {
    const old = this.#data.get(key);
    if (old && old.leaseId !== 0n) this.#leases.get(old.leaseId)?.keys.delete(key);
    let leaseId = 0n;
    if (ttlSeconds > 0) {
      leaseId = this.#nextLease++;
      this.#leases.set(leaseId, { expiresAt: this.#clock.now() + ttlSeconds * 1000, keys: new Set([key]) });
      this.#schedule();
    }
    const rev = ++this.#rev;
    const entry: KVEntry = {
      key,
      value,
      createRevision: old?.createRevision ?? rev,
      modRevision: rev,
      leaseId,
    };
    this.#data.set(key, entry);
    this.#history.push({ type: "put", key, value, modRevision: rev, leaseId });
    this.#trim();
    this.#notify();
    return { ...entry };
  }

  #remove(key: string): void {
    const old = this.#data.get(key);
    if (!old) return;
    if (old.leaseId !== 0n) this.#leases.get(old.leaseId)?.keys.delete(key);
    this.#data.delete(key);
    const rev = ++this.#rev;
    this.#history.push({ type: "delete", key, value: "", modRevision: rev, leaseId: 0n });
    this.#trim();
  }

  /** Auto-compaction: past twice the limit, keep the newest `historyLimit` events. */
  #trim(): void {
    const h = this.#history;
    if (h.length > 2 * this.#historyLimit) this.compact(h[h.length - this.#historyLimit - 1]!.modRevision);
  }

  #expire(): void {
    const now = this.#clock.now();
    let changed = false;
    for (const [id, l] of this.#leases) {
      if (l.expiresAt > now) continue;
      this.#leases.delete(id);
      for (const key of l.keys) {
        this.#remove(key);
        changed = true;
      }
    }
    if (changed) this.#notify();
  }

  #schedule(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    let soonest = Infinity;
    for (const l of this.#leases.values()) if (l.keys.size > 0) soonest = Math.min(soonest, l.expiresAt);
    if (soonest === Infinity) {
      this.#timer = undefined;
      return;
    }
    // Wake at least once a minute, so long TTLs need no far-away timer; close() stops it.
    const delay = Math.min(60_000, Math.max(0, soonest - this.#clock.now()) + 5);
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#expire();
      this.#schedule();
    }, delay);
  }

  #notify(): void {
    for (const w of this.#watchers) w.wake();
  }
}

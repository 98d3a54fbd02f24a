/**
 * The small key-value interface the etcd lease store is written against. It has the etcd v3
 * semantics flannel needs (revisions, TTL-bound keys, compare-and-swap, prefix watch with
 * compaction) and two implementations: {@linkcode MemoryKV} for tests and embedding, and the
 * etcd one over the v3 JSON gateway. Both pass one conformance suite.
 *
 * @module
 */

/** One stored key. */
export interface KVEntry {
  key: string;
  value: string;
  createRevision: bigint;
  modRevision: bigint;
  /** The TTL lease the key is bound to; 0n when none (an upstream "reservation"). */
  leaseId: bigint;
}

/** A change seen by a watch. For deletes, `value` is empty. */
export interface KVEvent {
  type: "put" | "delete";
  key: string;
  value: string;
  modRevision: bigint;
  leaseId: bigint;
}

/** A watch started below the store's compaction horizon; re-list and watch from the new revision. */
export class KVCompactedError extends Error {
  override name = "KVCompactedError";
  constructor(readonly compactRevision: bigint, options?: ErrorOptions) {
    super(`Watch revision was compacted (compact revision ${compactRevision})`, options);
  }
}

/** The store cannot be reached; callers retry with backoff and keep the data path up. */
export class KVUnavailableError extends Error {
  override name = "KVUnavailableError";
}

/** The etcd-like operations the lease manager uses. Every call takes an optional abort signal. */
export interface KV {
  /** Reads one key (undefined when absent) and the store revision of the read. */
  get(key: string, signal?: AbortSignal): Promise<{ entry: KVEntry | undefined; revision: bigint }>;
  /** Lists every key that starts with `prefix`, sorted by key, at one revision. */
  list(prefix: string, signal?: AbortSignal): Promise<{ entries: KVEntry[]; revision: bigint }>;
  /**
   * Creates `key` only if it does not exist, bound to a new TTL of `ttlSeconds` (0: no TTL).
   * Returns the new entry, or undefined when the key already exists (the caller lost a race).
   */
  create(key: string, value: string, ttlSeconds: number, signal?: AbortSignal): Promise<KVEntry | undefined>;
  /**
   * Replaces `key` only while its mod revision is still `expectRevision`, bound to a new TTL.
   * Returns the new entry, or undefined when the key changed or vanished meanwhile.
   */
  update(
    key: string,
    value: string,
    ttlSeconds: number,
    expectRevision: bigint,
    signal?: AbortSignal,
  ): Promise<KVEntry | undefined>;
  /** Deletes `key`, only at `expectRevision` when given. True when a key was deleted. */
  delete(key: string, expectRevision?: bigint, signal?: AbortSignal): Promise<boolean>;
  /** Remaining seconds of a TTL lease; -1 when the lease does not exist or is 0n. */
  ttl(leaseId: bigint, signal?: AbortSignal): Promise<number>;
  /**
   * Streams changes under `prefix` from `fromRevision` on, one array per store response.
   * Throws {@linkcode KVCompactedError} when `fromRevision` is compacted, and
   * {@linkcode KVUnavailableError} when the stream breaks. Ends when the signal aborts.
   */
  watch(prefix: string, fromRevision: bigint, signal: AbortSignal): AsyncIterable<KVEvent[]>;
}

/**
 * The watch stream of etcd's v3 gateway: the client's types, the `WatchCreateRequest`, and the
 * decoding of each streamed `{"result": WatchResponse}` (or `{"error": …}`) message.
 *
 * @module
 */

import {
  EtcdCompactedError,
  EtcdError,
  EtcdUnavailableError,
  GrpcCode,
  grpcCodeOfStatusText,
} from "./errors.ts";
import {
  b64,
  decodeKeyValue,
  headerRevision,
  int64,
  type KeyValue,
  parseWireError,
  prefixRangeEnd,
  type WireHeader,
  type WireKeyValue,
} from "./wire.ts";

/** Options of `EtcdClient.watch`. */
export interface WatchOptions {
  /** Watch every key that starts with `key`. */
  prefix?: boolean | undefined;
  /** First revision to report; 0n means "from now on". */
  startRevision: bigint;
  /** Ask etcd for periodic empty batches that carry the current revision. */
  progressNotify?: boolean | undefined;
}

/** One change seen by a watch. A delete's `kv` has only `key` and `modRevision` set. */
export interface WatchEvent {
  type: "put" | "delete";
  kv: KeyValue;
}

/**
 * One watch response. `revision` is the store revision when etcd sent it: resume a broken watch
 * from `revision + 1n`. `events` is empty for a progress notification.
 */
export interface WatchBatch {
  revision: bigint;
  events: WatchEvent[];
}

/** `etcdserverpb.WatchResponse` as JSON. */
export interface WireWatchResult {
  header?: WireHeader;
  created?: boolean;
  canceled?: boolean;
  compact_revision?: string;
  cancel_reason?: string;
  events?: { type?: "PUT" | "DELETE"; kv?: WireKeyValue }[];
}

/** The JSON of a `WatchCreateRequest`. */
export function watchCreateRequest(key: string, opts: WatchOptions): Record<string, unknown> {
  const create: Record<string, unknown> = { key: b64(key) };
  if (opts.prefix) create.range_end = prefixRangeEnd(key);
  if (opts.startRevision > 0n) create.start_revision = String(opts.startRevision);
  if (opts.progressNotify) create.progress_notify = true;
  return create;
}

/**
 * Decodes one watch stream message: a batch, or undefined for the "created" confirmation. Throws
 * for compaction, cancellation (auth, permissions) and stream errors.
 */
export function decodeWatchMessage(msg: unknown, what: string, endpoint: string): WatchBatch | undefined {
  const m = msg as { result?: WireWatchResult; error?: unknown };
  if (m.error !== undefined) {
    const { code, message } = parseWireError(m);
    const text = `The ${what} at ${endpoint} failed: ${message ?? "unknown error"}`;
    if (code === GrpcCode.Unavailable) throw new EtcdUnavailableError(text, [endpoint]);
    throw new EtcdError(text, { code });
  }
  const r = m.result ?? {};
  const compactRevision = int64(r.compact_revision);
  if (compactRevision > 0n) {
    throw new EtcdCompactedError(
      `The ${what} asked for a compacted revision; etcd has revisions from ${compactRevision} on`,
      compactRevision,
    );
  }
  if (r.canceled) {
    const reason = r.cancel_reason ?? "";
    throw new EtcdError(`The ${what} was canceled by etcd: ${reason || "no reason given"}`, {
      code: grpcCodeOfStatusText(reason),
    });
  }
  const events = (r.events ?? []).map((e): WatchEvent => ({
    type: e.type === "DELETE" ? "delete" : "put",
    kv: decodeKeyValue(e.kv ?? {}),
  }));
  if (r.created && events.length === 0) return undefined;
  return { revision: headerRevision(r), events };
}

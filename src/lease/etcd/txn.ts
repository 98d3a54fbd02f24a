/**
 * Transaction and range requests of etcd's v3 gateway: the client's types, and their JSON form
 * (`etcdserverpb.Compare`, `RequestOp`, `ResponseOp`).
 *
 * @module
 */

import {
  b64,
  decodeKeyValue,
  headerRevision,
  int64,
  type KeyValue,
  prefixRangeEnd,
  type WireHeader,
  type WireKeyValue,
} from "./wire.ts";

/** Options of a range read. */
export interface RangeOptions {
  /** Read every key that starts with the key. */
  prefix?: boolean | undefined;
  /** Read at this revision; default the latest. */
  revision?: bigint | undefined;
  /** Return only the count, no keys. */
  countOnly?: boolean | undefined;
}

/** How a compare relates the stored field to the given value. */
export type CompareResult = "EQUAL" | "GREATER" | "LESS" | "NOT_EQUAL";

/**
 * A transaction guard on one key. `VERSION` is the number of puts since creation (0n: the key
 * does not exist); `CREATE` and `MOD` are revisions; `LEASE` is the attached lease (0n: none).
 */
export type Compare =
  | { key: string; target: "VERSION" | "CREATE" | "MOD" | "LEASE"; result: CompareResult; value: bigint }
  | { key: string; target: "VALUE"; result: CompareResult; value: string };

/** One operation of a transaction branch. */
export type TxnOp =
  | { op: "put"; key: string; value: string; lease?: bigint | undefined }
  | { op: "delete"; key: string; prefix?: boolean | undefined }
  | ({ op: "range"; key: string } & RangeOptions);

/** The result of one transaction operation, in the order of the branch that ran. */
export type TxnOpResponse =
  | { op: "put"; revision: bigint }
  | { op: "delete"; deleted: number; revision: bigint }
  | { op: "range"; kvs: KeyValue[]; count: number; revision: bigint };

/** The outcome of a transaction: which branch ran, the revision after it, and its results. */
export interface TxnResult {
  succeeded: boolean;
  revision: bigint;
  responses: TxnOpResponse[];
}

/** `etcdserverpb.TxnResponse` as JSON. */
export interface WireTxnResponse {
  header?: WireHeader;
  succeeded?: boolean;
  responses?: WireResponseOp[];
}

interface WireResponseOp {
  response_put?: { header?: WireHeader };
  response_delete_range?: { header?: WireHeader; deleted?: string };
  response_range?: { header?: WireHeader; kvs?: WireKeyValue[]; count?: string };
}

/** The JSON of a `RangeRequest`. */
export function rangeRequest(key: string, opts: RangeOptions): Record<string, unknown> {
  const req: Record<string, unknown> = { key: b64(key) };
  if (opts.prefix) req.range_end = prefixRangeEnd(key);
  if (opts.revision !== undefined && opts.revision > 0n) req.revision = String(opts.revision);
  if (opts.countOnly) req.count_only = true;
  return req;
}

const unionField = {
  VERSION: "version",
  CREATE: "create_revision",
  MOD: "mod_revision",
  LEASE: "lease",
  VALUE: "value",
} as const;

/**
 * The JSON of a `Compare`. The value is always sent, even when zero: the gateway tells the
 * `target_union` oneof from the field's presence, and `VERSION == 0` means "absent".
 */
export function encodeCompare(c: Compare): Record<string, unknown> {
  return {
    key: b64(c.key),
    target: c.target,
    result: c.result,
    [unionField[c.target]]: c.target === "VALUE" ? b64(c.value) : String(c.value),
  };
}

/** The JSON of a `RequestOp`. */
export function encodeOp(op: TxnOp): Record<string, unknown> {
  switch (op.op) {
    case "put":
      return { request_put: { key: b64(op.key), value: b64(op.value), lease: String(op.lease ?? 0n) } };
    case "delete":
      return {
        request_delete_range: op.prefix ? { key: b64(op.key), range_end: prefixRangeEnd(op.key) } : {
          key: b64(op.key),
        },
      };
    case "range":
      return { request_range: rangeRequest(op.key, op) };
  }
}

/** A `ResponseOp` as a {@linkcode TxnOpResponse}. */
export function decodeOpResponse(r: WireResponseOp): TxnOpResponse {
  if (r.response_put) return { op: "put", revision: headerRevision(r.response_put) };
  if (r.response_delete_range) {
    const d = r.response_delete_range;
    return { op: "delete", deleted: Number(int64(d.deleted)), revision: headerRevision(d) };
  }
  const g = r.response_range ?? {};
  return {
    op: "range",
    kvs: (g.kvs ?? []).map(decodeKeyValue),
    count: Number(int64(g.count)),
    revision: headerRevision(g),
  };
}

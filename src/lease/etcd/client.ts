/**
 * A small etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`,
 * `/v3/auth/authenticate`), served by every etcd since 3.4 on its client URL. It needs only
 * `fetch`, so it bundles and runs the same under Deno and Node; TLS client certificates plug in
 * through an injected `fetch` (see `src/runtime/http.ts`).
 *
 * Behaviour worth knowing:
 * - Endpoints are tried in order. A connection error, a timeout or an `Unavailable` answer moves
 *   on to the next one; the endpoint that answered is remembered and tried first next time. A
 *   mutation whose connection broke after etcd received it may have been applied, as with any
 *   etcd client; flannel's writes are compare-and-swap transactions, so a retry is safe.
 * - With a username, the client authenticates once, sends the token in `Authorization`, and
 *   re-authenticates once when etcd rejects it (`Unauthenticated`, or `InvalidArgument`, the code
 *   etcd uses for a token older than the auth store). If etcd says auth is not enabled
 *   (`FailedPrecondition`), requests go without a token, like etcd's Go client.
 *
 * @module
 */

import type { Logger } from "../../log/logger.ts";
import { EtcdError, EtcdUnavailableError, GrpcCode } from "./errors.ts";
import {
  b64,
  decodeKeyValue,
  headerRevision,
  int64,
  JsonLines,
  type KeyValue,
  prefixRangeEnd,
  throwForBody,
  throwForStatus,
  type WireHeader,
  type WireKeyValue,
} from "./wire.ts";
import { decodeWatchMessage, type WatchBatch, watchCreateRequest, type WatchOptions } from "./watch.ts";
import {
  type Compare,
  decodeOpResponse,
  encodeCompare,
  encodeOp,
  type RangeOptions,
  rangeRequest,
  type TxnOp,
  type TxnResult,
  type WireTxnResponse,
} from "./txn.ts";

export { EtcdCompactedError, EtcdError, EtcdUnavailableError, GrpcCode } from "./errors.ts";
export type { KeyValue } from "./wire.ts";
export type { WatchBatch, WatchEvent, WatchOptions } from "./watch.ts";
export type { Compare, CompareResult, RangeOptions, TxnOp, TxnOpResponse, TxnResult } from "./txn.ts";

/** Options of an {@linkcode EtcdClient}. */
export interface EtcdClientOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`; `host:port` means `http://host:port`. */
  endpoints: string[];
  /** etcd user; enables token authentication. */
  username?: string | undefined;
  password?: string | undefined;
  /** The `fetch` to use; `createFetch` in `src/runtime/http.ts` makes one with TLS client certs. */
  fetch?: typeof fetch | undefined;
  log: Logger;
  /** Per-endpoint timeout of a request (and of opening a watch), in ms. Default 10 000. */
  requestTimeoutMs?: number | undefined;
  /** Told of every attempt of a unary request at one endpoint (metrics: datastore health). */
  observe?: ((attempt: EtcdAttempt) => void) | undefined;
}

/** One attempt of a unary request, as {@linkcode EtcdClientOptions.observe} hears of it. */
export interface EtcdAttempt {
  endpoint: string;
  /** Answered (any etcd answer, errors included), or failed at the transport (unreachable, timeout). */
  ok: boolean;
  /** Wall time of the attempt, ms. */
  ms: number;
}

/** A range result: the keys (none with `countOnly`), how many matched, and the read revision. */
export interface RangeResult {
  kvs: KeyValue[];
  count: number;
  revision: bigint;
}

interface WireRangeResponse {
  header?: WireHeader;
  kvs?: WireKeyValue[];
  count?: string;
}

/** An open watch stream after etcd confirmed the watch. */
interface WatchStream {
  endpoint: string;
  reader: ReadableStreamDefaultReader<Uint8Array>;
  lines: JsonLines;
  pending: unknown[];
  attempt: AbortController;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * An etcd v3 client over the JSON gateway.
 *
 * @example
 * ```ts ignore
 * import { EtcdClient } from "./client.ts";
 * import { nullLogger } from "../../log/logger.ts";
 * const etcd = new EtcdClient({ endpoints: ["http://127.0.0.1:2379"], log: nullLogger });
 * const { revision } = await etcd.put("/coreos.com/network/config", '{"Network":"10.5.0.0/16"}');
 * const { kvs } = await etcd.range("/coreos.com/network/", { prefix: true });
 * etcd.close();
 * ```
 */
export class EtcdClient {
  readonly #endpoints: readonly string[];
  readonly #username: string | undefined;
  readonly #password: string;
  readonly #fetch: typeof fetch;
  readonly #observe: ((attempt: EtcdAttempt) => void) | undefined;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #closed = new AbortController();
  #current = 0;
  /** undefined: not authenticated yet; "": etcd has auth disabled. */
  #token: string | undefined;

  constructor(opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new TypeError("Cannot create etcd client: no endpoints given");
    this.#endpoints = opts.endpoints.map(normaliseEndpoint);
    this.#username = opts.username === "" ? undefined : opts.username;
    this.#password = opts.password ?? "";
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.#observe = opts.observe;
    this.#log = opts.log;
    this.#timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The endpoints, normalised, in the order they are tried. */
  get endpoints(): readonly string[] {
    return this.#endpoints;
  }

  /** Reads `key`, or every key under it with `prefix`, at `revision` (default: latest). */
  async range(key: string, opts: RangeOptions = {}, signal?: AbortSignal): Promise<RangeResult> {
    const res = await this.#call<WireRangeResponse>(
      "/v3/kv/range",
      rangeRequest(key, opts),
      `Cannot read ${JSON.stringify(key)} from etcd`,
      signal,
    );
    return {
      kvs: (res.kvs ?? []).map(decodeKeyValue),
      count: Number(int64(res.count)),
      revision: headerRevision(res),
    };
  }

  /** Writes `key`, attached to etcd lease `lease` when given. */
  async put(
    key: string,
    value: string,
    opts: { lease?: bigint | undefined } = {},
    signal?: AbortSignal,
  ): Promise<{ revision: bigint }> {
    const body = { key: b64(key), value: b64(value), lease: String(opts.lease ?? 0n) };
    const res = await this.#call<{ header?: WireHeader }>(
      "/v3/kv/put",
      body,
      `Cannot write ${JSON.stringify(key)} to etcd`,
      signal,
    );
    return { revision: headerRevision(res) };
  }

  /** Deletes `key`, or every key under it with `prefix`. */
  async delete(
    key: string,
    opts: { prefix?: boolean | undefined } = {},
    signal?: AbortSignal,
  ): Promise<{ deleted: number; revision: bigint }> {
    const body = opts.prefix ? { key: b64(key), range_end: prefixRangeEnd(key) } : { key: b64(key) };
    const res = await this.#call<{ header?: WireHeader; deleted?: string }>(
      "/v3/kv/deleterange",
      body,
      `Cannot delete ${JSON.stringify(key)} from etcd`,
      signal,
    );
    return { deleted: Number(int64(res.deleted)), revision: headerRevision(res) };
  }

  /** Runs `success` when every compare holds, else `failure`, atomically. */
  async txn(
    t: { compare: Compare[]; success: TxnOp[]; failure?: TxnOp[] | undefined },
    signal?: AbortSignal,
  ): Promise<TxnResult> {
    const body = {
      compare: t.compare.map(encodeCompare),
      success: t.success.map(encodeOp),
      failure: (t.failure ?? []).map(encodeOp),
    };
    const keys = t.compare.map((c) => c.key).concat(t.success.map((o) => o.key));
    const res = await this.#call<WireTxnResponse>(
      "/v3/kv/txn",
      body,
      `Cannot run etcd transaction on ${[...new Set(keys)].map((k) => JSON.stringify(k)).join(", ")}`,
      signal,
    );
    return {
      succeeded: res.succeeded === true,
      revision: headerRevision(res),
      responses: (res.responses ?? []).map(decodeOpResponse),
    };
  }

  /** Creates an etcd lease of `ttlSeconds`. */
  async grant(ttlSeconds: number, signal?: AbortSignal): Promise<{ id: bigint; ttl: number }> {
    const res = await this.#call<{ ID?: string; TTL?: string; error?: string }>(
      "/v3/lease/grant",
      { TTL: String(ttlSeconds), ID: "0" },
      `Cannot grant etcd lease of ${ttlSeconds}s`,
      signal,
    );
    if (res.error) throw new EtcdError(`Cannot grant etcd lease of ${ttlSeconds}s: ${res.error}`);
    return { id: int64(res.ID), ttl: Number(int64(res.TTL)) };
  }

  /** Revokes etcd lease `id`, deleting its keys. Throws `NotFound` when it does not exist. */
  async revoke(id: bigint, signal?: AbortSignal): Promise<void> {
    await this.#call("/v3/lease/revoke", { ID: String(id) }, `Cannot revoke etcd lease ${id}`, signal);
  }

  /** Remaining seconds of etcd lease `id`; -1 when it does not exist (or is 0n), like etcd. */
  async timeToLive(id: bigint, signal?: AbortSignal): Promise<number> {
    if (id === 0n) return -1;
    const res = await this.#call<{ TTL?: string }>(
      "/v3/lease/timetolive",
      { ID: String(id) },
      `Cannot read TTL of etcd lease ${id}`,
      signal,
    );
    return Number(int64(res.TTL));
  }

  /** Compacts history up to `revision`, and waits until etcd has done it. */
  async compact(revision: bigint, signal?: AbortSignal): Promise<void> {
    await this.#call(
      "/v3/kv/compaction",
      { revision: String(revision), physical: true },
      `Cannot compact etcd at revision ${revision}`,
      signal,
    );
  }

  /**
   * Streams changes of `key` (or under it with `prefix`) from `startRevision` on. Throws
   * {@linkcode EtcdCompactedError} when that revision is compacted, and
   * {@linkcode EtcdUnavailableError} when the stream cannot open or breaks; then re-watch from
   * the last batch's `revision + 1n`. Ends quietly when `signal` aborts, closing the stream.
   * The watch requires an etcd leader: a member that loses it ends the stream.
   */
  watch(key: string, opts: WatchOptions, signal: AbortSignal): AsyncIterable<WatchBatch> {
    return this.#watch(key, opts, signal);
  }

  /** Aborts every request and watch in flight; later calls fail. The injected fetch is not closed. */
  close(): void {
    this.#closed.abort(new EtcdError("EtcdClient is closed"));
  }

  async *#watch(key: string, opts: WatchOptions, signal: AbortSignal): AsyncGenerator<WatchBatch> {
    const what = `etcd watch on ${JSON.stringify(key)}`;
    const create = watchCreateRequest(key, opts);
    let stream: WatchStream;
    try {
      stream = await this.#withAuth(
        signal,
        (token) => this.#openWatch({ create_request: create }, what, token, signal),
      );
    } catch (err) {
      if (signal.aborted) return;
      throw err;
    }
    try {
      for (;;) {
        for (let msg = stream.pending.shift(); msg !== undefined; msg = stream.pending.shift()) {
          const batch = decodeWatchMessage(msg, what, stream.endpoint);
          if (batch) yield batch;
        }
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await stream.reader.read();
        } catch (err) {
          if (signal.aborted) return;
          this.#throwIfClosed();
          throw new EtcdUnavailableError(`The ${what} at ${stream.endpoint} broke`, [stream.endpoint], {
            cause: err,
          });
        }
        if (chunk.done) {
          if (signal.aborted) return;
          this.#throwIfClosed();
          throw new EtcdUnavailableError(`The ${what} at ${stream.endpoint} ended`, [stream.endpoint]);
        }
        stream.pending.push(...stream.lines.push(chunk.value));
      }
    } finally {
      stream.attempt.abort();
      await stream.reader.cancel().catch(() => {});
    }
  }

  /** Opens the watch stream and reads until etcd confirms (or refuses) the watch. */
  #openWatch(body: unknown, what: string, token: string, signal: AbortSignal): Promise<WatchStream> {
    return this.#request("/v3/watch", body, token, what, signal, true, async (res, endpoint, attempt) => {
      if (!res.ok || res.body === null) await throwForStatus(res, `Cannot open ${what}`);
      const reader = res.body!.getReader();
      // Aborting the fetch does not always settle a read already waiting on the body (seen with
      // Deno 2.9 while another stream was busy): cancel the reader too, which always does.
      attempt.signal.addEventListener("abort", () => void reader.cancel().catch(() => {}), { once: true });
      const lines = new JsonLines();
      try {
        for (;;) {
          const chunk = await reader.read();
          if (chunk.done) throw new TypeError(`The ${what} ended before etcd confirmed it`);
          const msgs = lines.push(chunk.value);
          const first = msgs.shift();
          if (first === undefined) continue;
          // Refusals (auth, compaction at creation) throw here, before the stream is handed out.
          decodeWatchMessage(first, what, endpoint);
          return { endpoint, reader, lines, pending: msgs, attempt };
        }
      } catch (err) {
        await reader.cancel().catch(() => {});
        throw err;
      }
    });
  }

  /** A unary gateway call with authentication and endpoint failover. */
  #call<T>(path: string, body: unknown, what: string, signal: AbortSignal | undefined): Promise<T> {
    return this.#withAuth(
      signal,
      (token) =>
        this.#request(path, body, token, what, signal, false, async (res) => {
          const text = await res.text();
          if (!res.ok) throwForBody(res.status, text, what);
          try {
            return JSON.parse(text === "" ? "{}" : text) as T;
          } catch (err) {
            throw new EtcdError(`${what}: etcd sent a response that is not JSON`, { cause: err });
          }
        }),
    );
  }

  /** Runs `fn` with a token, and once more with a fresh one when etcd rejects the token. */
  async #withAuth<T>(signal: AbortSignal | undefined, fn: (token: string) => Promise<T>): Promise<T> {
    const token = await this.#ensureToken(signal);
    try {
      return await fn(token);
    } catch (err) {
      const retry = this.#username !== undefined && err instanceof EtcdError &&
        !(err instanceof EtcdUnavailableError) &&
        (err.code === GrpcCode.Unauthenticated || err.code === GrpcCode.InvalidArgument);
      if (!retry) throw err;
      this.#log.v(2, `etcd rejected the auth token (code ${err.code}), authenticating again`);
      if (this.#token === token) this.#token = undefined;
      return await fn(await this.#ensureToken(signal));
    }
  }

  async #ensureToken(signal: AbortSignal | undefined): Promise<string> {
    if (this.#username === undefined) return "";
    if (this.#token !== undefined) return this.#token;
    const what = `Cannot authenticate to etcd as ${JSON.stringify(this.#username)}`;
    const body = { name: this.#username, password: this.#password };
    try {
      const res = await this.#request("/v3/auth/authenticate", body, "", what, signal, false, async (r) => {
        const text = await r.text();
        if (!r.ok) throwForBody(r.status, text, what);
        return JSON.parse(text) as { token?: string };
      });
      this.#token = res.token ?? "";
    } catch (err) {
      if (!(err instanceof EtcdError) || err.code !== GrpcCode.FailedPrecondition) throw err;
      this.#log.v(1, `etcd has authentication disabled; not sending credentials`);
      this.#token = "";
    }
    return this.#token;
  }

  /**
   * Posts `body` to each endpoint in turn, from the remembered one, until one answers; `consume`
   * reads the answer under the same per-endpoint timeout. `stream` leaves the attempt open.
   */
  async #request<T>(
    path: string,
    body: unknown,
    token: string,
    what: string,
    signal: AbortSignal | undefined,
    stream: boolean,
    consume: (res: Response, endpoint: string, attempt: AbortController) => Promise<T>,
  ): Promise<T> {
    this.#throwIfClosed();
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (token !== "") headers.authorization = token;
    // etcd's WithRequireLeader, as gRPC metadata through the gateway.
    if (stream) headers["grpc-metadata-hasleader"] = "true";
    const tried: string[] = [];
    const errors: unknown[] = [];
    const n = this.#endpoints.length;
    for (let i = 0; i < n; i++) {
      const idx = (this.#current + i) % n;
      const endpoint = this.#endpoints[idx]!;
      const attempt = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        attempt.abort();
      }, this.#timeoutMs);
      // The caller's signal and close() abort the attempt through listeners that go away with
      // the attempt, so a long-lived caller signal does not collect one per request.
      const link = () => attempt.abort();
      const sources = signal ? [this.#closed.signal, signal] : [this.#closed.signal];
      for (const src of sources) src.addEventListener("abort", link, { once: true });
      attempt.signal.addEventListener("abort", () => {
        for (const src of sources) src.removeEventListener("abort", link);
      }, { once: true });
      if (sources.some((src) => src.aborted)) attempt.abort();
      let handedOver = false;
      try {
        const init = {
          method: "POST",
          headers,
          body: JSON.stringify(body),
          signal: attempt.signal,
        };
        const started = performance.now();
        const res = await this.#fetch(endpoint + path, init).catch((err) => {
          if (!stream) this.#observe?.({ endpoint, ok: false, ms: performance.now() - started });
          throw err;
        });
        if (!stream) this.#observe?.({ endpoint, ok: true, ms: performance.now() - started });
        const out = await consume(res, endpoint, attempt);
        handedOver = stream;
        if (idx !== this.#current) {
          this.#log.warn(`Using etcd endpoint ${endpoint} after ${tried.join(", ")} failed`);
          this.#current = idx;
        }
        return out;
      } catch (err) {
        attempt.abort();
        if (signal?.aborted) throw signal.reason;
        this.#throwIfClosed();
        if (err instanceof EtcdError && err.code !== GrpcCode.Unavailable) throw err;
        const reason = timedOut ? `timed out after ${this.#timeoutMs} ms` : describe(err);
        tried.push(`${endpoint} (${reason})`);
        errors.push(err);
        this.#log.v(2, `${what}: etcd endpoint ${endpoint} failed: ${reason}`);
      } finally {
        clearTimeout(timer);
        // A unary call is done with its attempt; a watch stream aborts it when it ends.
        if (!handedOver) attempt.abort();
      }
    }
    throw new EtcdUnavailableError(
      `${what}: no etcd endpoint reachable, tried ${tried.join(", ")}; check --etcd-endpoints`,
      this.#endpoints,
      { cause: new AggregateError(errors, "Every etcd endpoint failed") },
    );
  }

  #throwIfClosed(): void {
    if (this.#closed.signal.aborted) throw this.#closed.signal.reason;
  }
}

/** A short one-line reason for a transport failure (for the message; the error is the cause). */
function describe(err: unknown): string {
  let e = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  const msg = e instanceof Error ? e.message : String(e);
  return msg.replace(/^error sending request for url \([^)]*\): /, "").split("\n")[0]!;
}

function normaliseEndpoint(raw: string): string {
  const s = raw.trim();
  const withScheme = s.includes("://") ? s : `http://${s}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (err) {
    throw new TypeError(`Cannot use etcd endpoint ${JSON.stringify(raw)}: not a URL`, { cause: err });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`Cannot use etcd endpoint ${JSON.stringify(raw)}: scheme must be http or https`);
  }
  return withScheme.replace(/\/+$/, "");
}

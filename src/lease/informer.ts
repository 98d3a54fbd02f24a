/**
 * List+watch over a {@linkcode KV} prefix, the one pattern behind every lease stream:
 * list at revision R and deliver that as a snapshot, watch from R+1, advance the resume revision
 * with every response, re-list when the revision was compacted (upstream hot-looped there for
 * days, flannel#2470), reconnect with capped exponential backoff when the store goes away, and
 * re-list on a slow timer as a safety net. Errors are logged once per outage, not once a retry.
 *
 * @module
 */
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../log/logger.ts";
import { type KV, KVCompactedError, type KVEntry, type KVEvent } from "./kv.ts";

/** What the informer yields. */
export type InformerItem =
  | { kind: "snapshot"; entries: KVEntry[]; revision: bigint }
  | { kind: "events"; events: KVEvent[] };

/** Backoff between reconnects: 100 ms doubling to 5 s, as upstream. */
export const WATCH_BACKOFF_MIN_MS = 100;
export const WATCH_BACKOFF_MAX_MS = 5_000;

export interface InformerOptions {
  kv: KV;
  prefix: string;
  log: Logger;
  clock: Clock;
  /** Full re-list interval; 0 disables. Default 5 minutes. */
  resyncMs?: number;
  /** What the stream is, for log lines ("subnet leases"). */
  what: string;
}

/** Runs list+watch until the signal aborts. Never throws except the abort reason. */
export async function* listWatch(opts: InformerOptions, signal: AbortSignal): AsyncGenerator<InformerItem> {
  const { kv, prefix, log, clock } = opts;
  const resyncMs = opts.resyncMs ?? 5 * 60_000;
  const outage = new OutageLog(log, opts.what);
  let backoff = WATCH_BACKOFF_MIN_MS;
  let resume: bigint | undefined;
  let lastList = 0;

  while (!signal.aborted) {
    if (resume === undefined || (resyncMs > 0 && clock.now() - lastList >= resyncMs)) {
      try {
        const { entries, revision } = await kv.list(prefix, signal);
        outage.ok();
        backoff = WATCH_BACKOFF_MIN_MS;
        lastList = clock.now();
        resume = revision + 1n;
        yield { kind: "snapshot", entries, revision };
      } catch (e) {
        if (signal.aborted) return;
        outage.failed(e);
        await clock.sleep(backoff, signal).catch(() => {});
        backoff = Math.min(backoff * 2, WATCH_BACKOFF_MAX_MS);
      }
      continue;
    }

    // Watch until the next resync is due; an inner signal ends the session then.
    const session = new AbortController();
    const stop = () => session.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const timer = resyncMs > 0
      ? setTimeout(() => session.abort(new Error("resync")), Math.max(0, lastList + resyncMs - clock.now()))
      : undefined;
    try {
      for await (const events of kv.watch(prefix, resume, session.signal)) {
        outage.ok();
        backoff = WATCH_BACKOFF_MIN_MS;
        if (events.length === 0) continue;
        resume = events[events.length - 1]!.modRevision + 1n;
        yield { kind: "events", events };
      }
    } catch (e) {
      if (signal.aborted) return;
      if (session.signal.aborted) continue; // resync due
      if (e instanceof KVCompactedError) {
        log.info(`Watch of ${opts.what} fell behind compaction (revision ${resume}); listing again`);
        resume = undefined;
        continue;
      }
      outage.failed(e);
      await clock.sleep(backoff, signal).catch(() => {});
      backoff = Math.min(backoff * 2, WATCH_BACKOFF_MAX_MS);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
    if (!session.signal.aborted && !signal.aborted) {
      // The stream ended without an error (the server closed it): reconnect after a short pause.
      await clock.sleep(backoff, signal).catch(() => {});
      backoff = Math.min(backoff * 2, WATCH_BACKOFF_MAX_MS);
    }
  }
}

/** Logs the first failure of an outage as a warning, repeats at -v=2, and logs the recovery. */
export class OutageLog {
  #down = false;
  #last = "";
  #count = 0;
  constructor(private readonly log: Logger, private readonly what: string) {}

  failed(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    this.#count++;
    if (!this.#down || msg !== this.#last) {
      this.log.warn(`Cannot watch ${this.what}, retrying with backoff: ${msg}`);
    } else {
      this.log.v(2, `Still cannot watch ${this.what} (attempt ${this.#count}): ${msg}`);
    }
    this.#down = true;
    this.#last = msg;
  }

  ok(): void {
    if (this.#down) this.log.info(`Watch of ${this.what} restored after ${this.#count} failed attempts`);
    this.#down = false;
    this.#last = "";
    this.#count = 0;
  }
}

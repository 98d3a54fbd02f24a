/**
 * The loop every kernel-programming backend runs: a reconcile pass after each lease batch, after
 * kernel changes that touch our state (a deleted device or route heals within the pass that
 * follows), and on a slow timer as a safety net. Triggers arriving during a pass are coalesced
 * into one more pass. The loop never dies on a failed pass: it logs and waits for the next
 * trigger.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import type { KernelEvent, KernelOps } from "../netlink/ops.ts";
import type { Lease, LeaseBatch } from "../lease/types.ts";
import type { Clock } from "../util/clock.ts";

/** Upstream re-checks host-gw routes every 10 s; we do that for every backend. */
export const DEFAULT_RESYNC_MS = 10_000;

/**
 * The pause between the end of one pass and the start of the next. A full pass costs O(peers)
 * (three kernel dumps and the desired-state diff, about 20 ms at 2000 peers), and during a burst
 * of lease changes etcd delivers one watch response per put: without a gap every put bought a
 * full pass, and 2000 new leases took 38 s to converge. With it, a burst is absorbed in a few
 * passes, and an isolated change is still applied at once (no wait when the last pass is older).
 */
export const MIN_PASS_GAP_MS = 100;

export interface NetLoopOptions {
  kernel: KernelOps;
  log: Logger;
  clock: Clock;
  /** One full pass: make the kernel match the peers' leases. */
  pass(leases: ReadonlyMap<string, Lease>): Promise<void>;
  /** Does this kernel change touch our state? */
  interesting(e: KernelEvent): boolean;
  resyncMs?: number;
  /**
   * Called once, before the first pass, with a function that asks for a pass: for a backend's
   * own triggers (the udp data path's thread died).
   */
  wakeOn?(kick: () => void): void;
  /** Override of {@linkcode MIN_PASS_GAP_MS} (tests). */
  minGapMs?: number;
}

/** Runs until the batches end or the signal aborts. */
export async function runNetLoop(
  opts: NetLoopOptions,
  batches: AsyncIterable<LeaseBatch>,
  signal: AbortSignal,
): Promise<void> {
  let leases: ReadonlyMap<string, Lease> | undefined;
  let dirty = false;
  let lastPassEnd = 0;
  let wake: () => void = () => {};
  const kick = () => {
    dirty = true;
    wake();
  };
  opts.wakeOn?.(kick);
  const stop = new AbortController();
  const onAbort = () => stop.abort(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });

  const feeders = [
    (async () => {
      for await (const b of batches) {
        leases = b.leases;
        kick();
      }
    })(),
    (async () => {
      for await (const e of opts.kernel.events(stop.signal)) {
        if (e.kind === "overrun" || opts.interesting(e)) kick();
      }
    })(),
    (async () => {
      for (;;) {
        await opts.clock.sleep(opts.resyncMs ?? DEFAULT_RESYNC_MS, stop.signal);
        kick();
      }
    })(),
  ].map((p) =>
    p.catch((e) => {
      if (!stop.signal.aborted) opts.log.error(`Backend loop input failed: ${(e as Error).message}`);
    })
  );
  const batchesDone = feeders[0]!.then(() => stop.abort());
  stop.signal.addEventListener("abort", () => wake(), { once: true });

  try {
    while (!stop.signal.aborted) {
      if (!dirty) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      // Keep a gap after the previous pass: changes that arrive meanwhile (lease batches, and the
      // kernel's echoes of our own writes) are absorbed by the next pass.
      const wait = lastPassEnd + (opts.minGapMs ?? MIN_PASS_GAP_MS) - opts.clock.now();
      if (wait > 0) await opts.clock.sleep(wait, stop.signal).catch(() => {});
      if (stop.signal.aborted) break;
      dirty = false;
      if (!leases) continue; // nothing to program before the first lease batch
      try {
        await opts.pass(leases);
      } catch (e) {
        opts.log.error(
          `Reconcile pass failed, retrying on the next change or in ${
            (opts.resyncMs ?? DEFAULT_RESYNC_MS) / 1000
          }s: ${(e as Error).message}`,
        );
      }
      lastPassEnd = opts.clock.now();
    }
  } finally {
    stop.abort();
    signal.removeEventListener("abort", onAbort);
    await Promise.allSettled([...feeders, batchesDone]);
  }
}

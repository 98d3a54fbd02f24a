/**
 * The health server on Deno.
 *
 * @module
 */
import type { HealthServe } from "../daemon/daemon.ts";

/** Serves `handler` until the signal aborts; rejects when the address cannot be bound. */
export const denoServeHealth: HealthServe = (opts, handler) => {
  return new Promise((resolve, reject) => {
    try {
      const server = Deno.serve({
        hostname: opts.hostname,
        port: opts.port,
        signal: opts.signal,
        onListen: () => resolve({ finished: server.finished }),
        onError: () => new Response("internal error", { status: 500 }),
      }, handler);
    } catch (e) {
      reject(e);
    }
  });
};

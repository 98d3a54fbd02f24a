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
      // onListen runs inside Deno.serve, before `server` is assigned: hand over a getter.
      let listening = false;
      const server = Deno.serve({
        hostname: opts.hostname,
        port: opts.port,
        signal: opts.signal,
        onListen: () => void (listening = true),
        onError: () => new Response("internal error", { status: 500 }),
      }, handler);
      if (listening) resolve({ finished: server.finished });
      else reject(new Error("server did not start listening"));
    } catch (e) {
      reject(e);
    }
  });
};

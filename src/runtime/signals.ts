/**
 * SIGINT/SIGTERM on Deno: the first one aborts the returned signal and removes the handlers, so
 * a second signal terminates at once (upstream's behaviour).
 *
 * @module
 */

/** An abort signal for the first SIGINT or SIGTERM. */
export function shutdownSignal(log: (msg: string) => void): AbortSignal {
  const ctl = new AbortController();
  const names: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = names.map((name) => {
    const h = () => {
      log(`Received ${name}, shutting down`);
      for (const [i, n] of names.entries()) Deno.removeSignalListener(n, handlers[i]!);
      ctl.abort(new Error(name));
    };
    return h;
  });
  for (const [i, n] of names.entries()) Deno.addSignalListener(n, handlers[i]!);
  return ctl.signal;
}

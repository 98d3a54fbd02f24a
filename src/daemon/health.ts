/**
 * The health endpoints, as a plain request handler (the runtime serves it):
 * `/healthz` 200 `flanneld is running`; `/readyz` 200 `flanneld is ready` once the subnet file
 * is written, else 503 `flanneld is not ready yet` (upstream's texts); `/metrics` Prometheus.
 *
 * @module
 */
import type { Metrics } from "./metrics.ts";

/** What the handler reads; the daemon updates it. */
export interface HealthState {
  ready: boolean;
}

/** Builds the handler for the health server. */
export function healthHandler(state: HealthState, metrics: Metrics): (req: Request) => Response {
  return (req) => {
    const path = new URL(req.url).pathname;
    const text = (body: string, status = 200, type = "text/plain; charset=utf-8") =>
      new Response(body, { status, headers: { "content-type": type } });
    switch (path) {
      case "/healthz":
        return text("flanneld is running");
      case "/readyz":
        return state.ready ? text("flanneld is ready") : text("flanneld is not ready yet", 503);
      case "/metrics":
        return text(metrics.render(), 200, "text/plain; version=0.0.4; charset=utf-8");
      default:
        return text("404 page not found\n", 404);
    }
  };
}

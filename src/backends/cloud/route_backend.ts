/**
 * The cloud route backends (`tencent-vpc`, `aws-vpc`, `gce`, `ali-vpc`): no data path on the
 * node. Each node asks its cloud to route its own lease's subnet to its own instance, and the
 * cloud's VPC router carries pod traffic between nodes. So a node never looks at its peers'
 * leases; the whole backend is "make sure the cloud has one route, ours".
 *
 * What each provider does differs only in the API: this file holds what they share.
 * Registration reads the options and the instance's identity (metadata service), takes the
 * lease (PublicIP = the external address, no BackendType, as upstream), and makes the route
 * exist before the daemon writes subnet.env, so `/readyz` means "the cloud routes to us". Better
 * than upstream, which set the route once: the route is checked again every
 * {@linkcode ROUTE_CHECK_MS} and put back if someone deleted or changed it (one log line), and
 * an API that fails at start-up is retried with backoff instead of crashing the pod in a loop
 * (the error says what failed: credentials, metadata, quota).
 *
 * Every provider's HTTP goes through the injected `fetch` (the runtime's, or a test's), and its
 * endpoints can be pointed elsewhere (standard SDK environment variables where the cloud has
 * them, else backend options), which is how the tests run against faithful fakes on loopback.
 *
 * @module
 */
import type { IP4, IP4Net } from "../../ip/mod.ts";
import type { LeaseAttrs } from "../../lease/types.ts";
import type { Logger } from "../../log/logger.ts";
import type { Clock } from "../../util/clock.ts";
import { hex } from "../../util/hex.ts";
import { acquireLease, type BackendContext, type BackendFactory, type Network } from "../types.ts";

/** How often the route is checked again after start-up (upstream: never). */
export const ROUTE_CHECK_MS = 60_000;
/** Start-up retries of a failing cloud API: first wait, doubling up to the cap. */
export const RETRY_FIRST_MS = 1_000;
export const RETRY_MAX_MS = 30_000;

/** What a provider gets to set itself up. */
export interface CloudContext {
  /** net-conf's `Backend` object (options read case-insensitively, unknown keys ignored). */
  backend: Record<string, unknown>;
  /** The external IPv4 address (what upstream's providers use to find the instance or as gateway). */
  extAddr: IP4;
  env(name: string): string | undefined;
  fetch: typeof fetch;
  log: Logger;
  clock: Clock;
  signal: AbortSignal;
}

/** What `ensureRoute` did. */
export type RouteOutcome = "kept" | "created" | "replaced";

/** A provider, set up for this instance. */
export interface CloudRouter {
  /** For the start-up log: `VPC vpc-1a2b in ap-guangzhou, route table rtb-9f8e`. */
  readonly where: string;
  /** Makes the cloud route `subnet` to this instance. Throws {@linkcode CloudApiError} and friends. */
  ensureRoute(subnet: IP4Net, signal?: AbortSignal): Promise<RouteOutcome>;
  /**
   * Uninstall (`flanneld --cleanup`): removes the route for `subnet` when it points at this
   * instance, and waits until the cloud has applied that. Resolves true when a route was removed,
   * false when there was none of ours; a route for `subnet` that points elsewhere (the subnet is
   * another node's now) is never touched.
   */
  deleteRoute(subnet: IP4Net, signal?: AbortSignal): Promise<boolean>;
}

/** A cloud route provider: the backend type and how to set it up. */
export interface CloudRouteProvider {
  /** The net-conf `Backend.Type`. */
  readonly type: string;
  /** Reads options, credentials and instance metadata; throws one-line errors naming the fix. */
  open(ctx: CloudContext): Promise<CloudRouter>;
}

/**
 * A cloud API said no. `code` is the cloud's own error code (`AuthFailure.SignatureFailure`,
 * `UnauthorizedOperation`, HTTP 403), kept apart so callers and tests never parse the text.
 */
export class CloudApiError extends Error {
  override name = "CloudApiError";
  constructor(
    readonly cloud: string,
    readonly action: string,
    readonly code: string,
    message: string,
    /** False for errors no retry can fix (bad credentials, a missing permission, bad options). */
    readonly retryable = true,
  ) {
    super(`${cloud} ${action} failed: ${code}: ${message}`);
  }
}

/** Options for {@linkcode createCloudRouteBackend}. */
export interface CloudBackendOptions {
  /** The HTTP client; default the runtime's global `fetch`. */
  fetch?: typeof fetch;
  /** Override of {@linkcode ROUTE_CHECK_MS} (tests). */
  checkMs?: number;
  /** Override of the start-up retry delays (tests). */
  retryFirstMs?: number;
}

/** A backend factory for a cloud route provider. */
export function createCloudRouteBackend(
  provider: CloudRouteProvider,
  opts: CloudBackendOptions = {},
): BackendFactory {
  return {
    type: provider.type,
    register: (ctx) => registerCloud(ctx, provider, opts),
  };
}

async function registerCloud(
  ctx: BackendContext,
  provider: CloudRouteProvider,
  opts: CloudBackendOptions,
): Promise<Network> {
  const { log, clock, signal } = ctx;
  const extAddr = ctx.ext.extAddr;
  if (!ctx.config.enableIPv4 || !extAddr) {
    throw new Error(`the ${provider.type} backend routes IPv4 only: it needs an IPv4 Network and address`);
  }
  const cloud: CloudContext = {
    backend: ctx.config.backend,
    extAddr,
    env: (name) => ctx.host?.env(name),
    fetch: opts.fetch ?? ((input, init) => fetch(input, init)),
    log,
    clock,
    signal,
  };
  // Until it works: retryable API failures (throttling, 5xx, timeouts) back off; the others
  // (credentials, permissions, options, no metadata service) end registration with their error.
  let wait = opts.retryFirstMs ?? RETRY_FIRST_MS;
  const retrying = async <T>(step: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await step();
      } catch (e) {
        if (!(e instanceof CloudApiError) || !e.retryable || signal.aborted) throw e;
        log.error(`${e.message}; retrying in ${Math.max(1, Math.round(wait / 1000))}s`);
        await clock.sleep(wait, signal);
        wait = Math.min(wait * 2, RETRY_MAX_MS);
      }
    }
  };
  const router = await retrying(() => provider.open(cloud));
  log.info(`${provider.type}: routes go to ${router.where}`);
  const attrs: LeaseAttrs = { publicIP: extAddr };
  const lease = await acquireLease(ctx, attrs);
  const subnet = lease.subnet;
  // What the checks found, for /metrics.
  const checks: Record<RouteOutcome | "error", number> = { kept: 0, created: 0, replaced: 0, error: 0 };
  let lastOk = true;
  const counted = (o: RouteOutcome) => (checks[o]++, lastOk = true, o);
  // The route before subnet.env: ready means the cloud routes to us.
  report(log, provider.type, subnet, counted(await retrying(() => router.ensureRoute(subnet, signal))), true);

  return {
    lease,
    mtu: ctx.ext.mtu,
    async run(batches, runSignal) {
      // Peers' leases change nothing here (the cloud routes them); keep the stream drained.
      const drain = (async () => {
        for await (const _ of batches) if (runSignal.aborted) break;
      })().catch(() => {}); // the stream ends with an abort; nothing here to report
      const checkMs = opts.checkMs ?? ROUTE_CHECK_MS;
      try {
        while (!runSignal.aborted) {
          await clock.sleep(checkMs, runSignal);
          try {
            report(log, provider.type, subnet, counted(await router.ensureRoute(subnet, runSignal)), false);
          } catch (e) {
            if (runSignal.aborted) break;
            checks.error++;
            lastOk = false;
            log.error(`Cannot check the ${provider.type} route for ${subnet}: ${(e as Error).message}`);
          }
        }
      } catch {
        // the sleep ended by the signal
      }
      await drain;
    },
    close: () => Promise.resolve(),
    collectMetrics(sink) {
      const help = "Checks of our cloud route, by what they found or did";
      for (const [result, n] of Object.entries(checks)) {
        sink.counter("flannel_cloud_route_checks_total", help, n, { backend: provider.type, result });
      }
      sink.set(
        "flannel_cloud_route_ok",
        "1 when the last check found or put our cloud route in place",
        lastOk ? 1 : 0,
        { backend: provider.type },
      );
    },
  };
}

function report(log: Logger, type: string, subnet: IP4Net, outcome: RouteOutcome, first: boolean): void {
  if (outcome === "kept") {
    if (first) log.info(`${type}: the route for ${subnet} to this instance is in place`);
    return;
  }
  log[first ? "info" : "warn"](
    first
      ? `${type}: ${outcome} the route for ${subnet} to this instance`
      : `${type}: the route for ${subnet} had gone or changed; ${outcome} it`,
  );
}

export { hex };

/** SHA-256 of text, hex. */
export async function sha256Hex(text: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** HMAC of `data` under `key` with `hash` (`SHA-256`, `SHA-1`). */
export async function hmac(
  hash: "SHA-256" | "SHA-1",
  key: Uint8Array | string,
  data: string,
): Promise<Uint8Array> {
  const raw = typeof key === "string" ? new TextEncoder().encode(key) : key;
  const k = await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash },
    false,
    [
      "sign",
    ],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, new TextEncoder().encode(data)));
}

/** How long one cloud API request may take (a dead keep-alive connection must not hang a node). */
export const API_TIMEOUT_MS = 30_000;

/** `signal` bounded by {@linkcode API_TIMEOUT_MS}. */
export function apiSignal(signal: AbortSignal): AbortSignal {
  return AbortSignal.any([signal, AbortSignal.timeout(API_TIMEOUT_MS)]);
}

/** How long one metadata request may take (the service is link-local: it answers in ms or not at all). */
export const METADATA_TIMEOUT_MS = 5_000;

/**
 * GETs one metadata value (text, trimmed). Errors say which value, from where, and what to check:
 * `Cannot read region from the Tencent Cloud metadata service at http://…: connection refused;
 * is this node running on Tencent Cloud?`
 */
export async function metadataGet(
  ctx: Pick<CloudContext, "fetch" | "signal">,
  cloud: string,
  url: string,
  what: string,
  init: RequestInit = {},
): Promise<string> {
  const fail = (why: string) =>
    new Error(
      `Cannot read ${what} from the ${cloud} metadata service at ${url}: ${why}; is this node running on ${cloud}?`,
    );
  let res: Response;
  try {
    res = await ctx.fetch(url, {
      ...init,
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(METADATA_TIMEOUT_MS)]),
    });
  } catch (e) {
    throw fail((e as Error).message);
  }
  const text = await res.text();
  if (!res.ok) throw fail(`HTTP ${res.status}${text ? ` ${text.trim().slice(0, 200)}` : ""}`);
  return text.trim();
}

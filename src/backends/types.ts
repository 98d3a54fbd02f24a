/**
 * The backend contract: a backend registers the node's network (acquires the lease, sets up its
 * devices) and then runs, turning lease batches into kernel state.
 *
 * @module
 */
import type { MetricsSink } from "../daemon/metrics.ts";
import type { NetworkConfig } from "../config/network_config.ts";
import type { ExtIface } from "../iface/mod.ts";
import type { SubnetManager } from "../lease/manager.ts";
import type { Lease, LeaseBatch } from "../lease/types.ts";
import type { Logger } from "../log/logger.ts";
import type { Clock } from "../util/clock.ts";
import type { KernelOps } from "../netlink/ops.ts";
import type { ReconcileResult } from "./reconcile.ts";
import type { HostOps } from "./host.ts";

/** Everything a backend may use; nothing is reached through globals. */
export interface BackendContext {
  ext: ExtIface;
  config: NetworkConfig;
  manager: SubnetManager;
  log: Logger;
  clock: Clock;
  signal: AbortSignal;
  /** Kernel access; backends that program the kernel fail registration without it. */
  kernel?: KernelOps;
  /** Host access (files, processes, unix sockets) for backends that need it. */
  host?: HostOps;
  /** Called after every reconcile pass (metrics, readiness, tests). */
  onReconcile?: (r: ReconcileResult) => void;
}

/** The kernel, or the error a backend that needs it reports. */
export function requireKernel(ctx: BackendContext, backend: string): KernelOps {
  if (!ctx.kernel) {
    throw new Error(`the ${backend} backend needs kernel access (netlink), which this build lacks`);
  }
  return ctx.kernel;
}

/** The node's registered network. */
export interface Network {
  readonly lease: Lease;
  /** The MTU written to subnet.env. */
  readonly mtu: number;
  /**
   * True for backends that program the kernel through reconcile passes: the daemon is ready only
   * after the first pass (the data path matches the leases), not merely when subnet.env exists.
   */
  readonly reconciles?: boolean;
  /** Consumes lease batches until they end or the signal aborts. */
  run(batches: AsyncIterable<LeaseBatch>, signal: AbortSignal): Promise<void>;
  /** Removes what must not outlive the daemon (most backends leave the data path up). */
  close(): Promise<void>;
  /** Reports the backend's own numbers at each scrape of `/metrics` (data path counters, …). */
  collectMetrics?(sink: MetricsSink): void;
}

/** One backend type, as listed in the registry. */
export interface BackendFactory {
  /** The net-conf `Backend.Type` (lower case). */
  readonly type: string;
  register(ctx: BackendContext): Promise<Network>;
}

/** The host, or the error a backend that needs it reports. */
export function requireHost(ctx: BackendContext, backend: string): HostOps {
  if (!ctx.host) throw new Error(`the ${backend} backend needs host access, which this build lacks`);
  return ctx.host;
}

/** Lease acquisition failed inside a backend's registration. */
export class AcquireLeaseError extends Error {
  override name = "AcquireLeaseError";
}

/** Acquires the lease as every backend does, wrapping errors as upstream (`failed to acquire lease: …`). */
export async function acquireLease(
  ctx: BackendContext,
  attrs: Parameters<SubnetManager["acquireLease"]>[0],
): Promise<Lease> {
  try {
    return await ctx.manager.acquireLease(attrs, ctx.signal);
  } catch (e) {
    if (ctx.signal.aborted) throw e;
    throw new AcquireLeaseError(`failed to acquire lease: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The subnet manager interface: what the daemon asks of a lease store. Two implementations:
 * the KV manager (etcd, or in memory) and, later, the Kubernetes one.
 *
 * @module
 */
import type { IP4Net, IP6Net } from "../ip/mod.ts";
import type { NetworkConfig } from "../config/network_config.ts";
import type { Lease, LeaseAttrs, LeaseBatch } from "./types.ts";

/** How {@linkcode SubnetManager.completeLease} ended. */
export type LeaseOutcome =
  /** Our lease was deleted from the store: shut down in order, exit 0 (upstream behaviour). */
  | "revoked"
  /** Another writer replaced our lease: shut down and exit non-zero, naming the conflict. */
  | "lost"
  /** The signal aborted. */
  | "cancelled";

/** A lease store as the daemon and the backends use it. */
export interface SubnetManager {
  /** Shown at start-up: `Created subnet manager: <name>`. */
  readonly name: string;
  /** Reads and validates the network configuration. */
  getNetworkConfig(signal?: AbortSignal): Promise<NetworkConfig>;
  /** Takes (or re-takes) this node's lease, publishing `attrs`. */
  acquireLease(attrs: LeaseAttrs, signal?: AbortSignal): Promise<Lease>;
  /** Streams the other nodes' leases: a first batch with all of them, then changes. */
  watchLeases(ownLease: Lease, signal: AbortSignal): AsyncIterable<LeaseBatch>;
  /** Keeps our lease: renews it before expiry and watches it until it is revoked or lost. */
  completeLease(lease: Lease, signal: AbortSignal): Promise<LeaseOutcome>;
  /**
   * Public addresses the store holds for this node (kube: the `node-public-ip[v6]` annotations),
   * which override `--public-ip` / `--public-ipv6` (start-up step 12).
   */
  storedPublicIPs?(signal?: AbortSignal): Promise<{ publicIp?: string; publicIpv6?: string }>;
  /**
   * Uninstall (`--cleanup`): deletes this node's lease so that peers drop it at once instead of at
   * its expiry. Only a lease that is provably ours goes: the one of `subnets` whose PublicIP (or
   * PublicIPv6) is one of `ownAddresses`, bound to a TTL (a reservation is the admin's). Returns
   * one line for the log saying what happened.
   */
  releaseLease?(subnets: ReleaseTarget, signal?: AbortSignal): Promise<string>;
}

/** What {@linkcode SubnetManager.releaseLease} looks for. */
export interface ReleaseTarget {
  subnet?: IP4Net;
  ipv6Subnet?: IP6Net;
  /** The host's addresses, as text: a lease whose public address is one of them is ours. */
  ownAddresses: ReadonlySet<string>;
}

/** No free subnet is left in [SubnetMin, SubnetMax]. */
export class OutOfSubnetsError extends Error {
  override name = "OutOfSubnetsError";
}

/** The store has no network configuration (etcd `<prefix>/config` missing). */
export class ConfigNotFoundError extends Error {
  override name = "ConfigNotFoundError";
}

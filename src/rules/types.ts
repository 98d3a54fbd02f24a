/**
 * The traffic manager: flannel's masquerade and forward rules (§6 of the behaviour reference), in
 * iptables or nftables mode, behind one interface.
 *
 * @module
 */
import type { IP4Net, IP6Net } from "../ip/mod.ts";

/** An address family, as the rules name it. */
export type Family = "ipv4" | "ipv6";

/** Which kernel interface the rules go through; `EnableNFTables` in net-conf.json picks nftables. */
export type RulesMode = "iptables" | "nftables";

/** What the rules need from the network configuration (a `NetworkConfig` fits). */
export interface RulesNetworkConfig {
  enableIPv4: boolean;
  enableIPv6: boolean;
  /** `Network`, in network form. */
  network?: IP4Net;
  /** `IPv6Network`, in network form. */
  ipv6Network?: IP6Net;
}

/** What the rules need from our own lease (a `Lease` fits). */
export interface RulesLease {
  subnet: IP4Net;
  ipv6Subnet?: IP6Net;
}

/**
 * What the previous run left in subnet.env, networks in network form (the daemon's
 * `PreviousSubnets` fits). A family that had a network before and is disabled now gets its rules
 * removed; a changed network or subnet has its old rules replaced.
 */
export interface PreviousNetworks {
  network?: IP4Net;
  subnet?: IP4Net;
  ipv6Network?: IP6Net;
  ipv6Subnet?: IP6Net;
}

/** Makes sure a blackhole route for `subnet` exists (netlink, owned by the route layer). */
export type EnsureBlackhole = (subnet: IP4Net | IP6Net) => Promise<void>;

/** What one reconcile found and did. */
export interface ReconcileReport {
  /** True when a transaction was applied. */
  changed: boolean;
  /** One line per difference found, e.g. `IPv4 nat/POSTROUTING: jump not last`. */
  repairs: string[];
}

/**
 * Masquerade and forward rules for one flannel network.
 *
 * Call order (upstream's start-up steps 15–18): {@linkcode cleanupOtherMode}, {@linkcode init},
 * {@linkcode setupMasq} when `--ip-masq`, {@linkcode setupForward} when `--iptables-forward-rules`,
 * {@linkcode setupBlackhole} when `--ip-blackhole-route`, then {@linkcode run} in the background.
 * Every change is one transaction per family (`iptables-restore --noflush`, `nft -f -`); the
 * periodic {@linkcode reconcile} only reads while nothing differs. All methods are serialised.
 */
export interface TrafficManager {
  /** The mode this manager programs. */
  readonly mode: RulesMode;
  /**
   * Removes what the other mode left (flannel's nft tables in iptables mode; flannel's iptables
   * chains and jump rules in nftables mode). Never throws: failures and a missing tool are logged.
   */
  cleanupOtherMode(): Promise<void>;
  /**
   * Probes the tools (versions, `--wait`, random-fully support) and, in nftables mode, creates the
   * tables. Throws with a one-line reason (missing tool and its Debian package, missing kernel
   * support) when the mode cannot work here.
   */
  init(): Promise<void>;
  /** Installs the masquerade rules for every enabled family, replacing any previous network's. */
  setupMasq(config: RulesNetworkConfig, lease: RulesLease, previous?: PreviousNetworks): Promise<void>;
  /** Installs the forward-accept rules for every enabled family. */
  setupForward(config: RulesNetworkConfig, previous?: PreviousNetworks): Promise<void>;
  /**
   * Keeps a blackhole route for our own subnets, checked every resync period. The route itself is
   * made by `ensureBlackhole` (netlink lives elsewhere); errors are logged.
   */
  setupBlackhole(config: RulesNetworkConfig, lease: RulesLease, ensureBlackhole: EnsureBlackhole): void;
  /**
   * Compares the kernel's rules with the desired ones and repairs missing, duplicated, changed
   * and reordered rules in one transaction per family. Reads only when nothing differs.
   */
  reconcile(): Promise<ReconcileReport>;
  /** Reconciles (and checks blackhole routes) every resync period until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Removes exactly our chains, jump rules and tables, in both families. */
  cleanup(): Promise<void>;
}

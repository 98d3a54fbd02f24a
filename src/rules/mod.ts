/**
 * flannel's masquerade and forward rules (§6 of the behaviour reference): iptables or nftables,
 * applied as transactions, text identical to upstream's, and kept in place by a cheap resync.
 *
 * @example
 * ```ts ignore
 * import { createTrafficManager } from "./mod.ts";
 * import { denoRunStdinCommand } from "../runtime/command_stdin.ts";
 *
 * const rules = createTrafficManager({
 *   enableNFTables: config.enableNFTables,
 *   enableIPv4: config.enableIPv4,
 *   enableIPv6: config.enableIPv6,
 *   run: denoRunStdinCommand,
 *   log, clock,
 *   resyncSeconds: options.iptablesResync,
 *   fullyRandomDisable: options.ipMasqFullyRandomDisable,
 * });
 * await rules.cleanupOtherMode();
 * await rules.init();
 * if (options.ipMasq) await rules.setupMasq(config, lease, previous);
 * if (options.iptablesForwardRules) await rules.setupForward(config, previous);
 * tasks.push(rules.run(signal));
 * ```
 *
 * @module
 */
import type { ManagerDeps } from "./common.ts";
import { IptablesManager, type IptablesTools, type ListingStrategy } from "./iptables.ts";
import { NftablesManager } from "./nftables.ts";
import type { Family, TrafficManager } from "./types.ts";

export type {
  EnsureBlackhole,
  Family,
  PreviousNetworks,
  ReconcileReport,
  RulesLease,
  RulesMode,
  RulesNetworkConfig,
  TrafficManager,
} from "./types.ts";
export { type ManagerDeps, ToolMissingError } from "./common.ts";
export {
  IptablesManager,
  type IptablesManagerOptions,
  type IptablesTools,
  iptablesTools,
  type ListingStrategy,
} from "./iptables.ts";
export { NftablesManager, type NftablesManagerOptions } from "./nftables.ts";
export { blackholeSubnets } from "./blackhole.ts";

/** Options of {@linkcode createTrafficManager}. */
export interface TrafficManagerOptions extends ManagerDeps {
  /** `EnableNFTables` from the network config: nftables mode when true, iptables otherwise. */
  enableNFTables: boolean;
  /** iptables program names per family (tests pick `iptables-legacy…` / `iptables-nft…`). */
  iptablesTools?: Partial<Record<Family, IptablesTools>>;
  /** Force how the iptables resync reads rules; default by backend. */
  iptablesListing?: ListingStrategy;
  /** The nft program; default `nft`. */
  nft?: string;
}

/**
 * The traffic manager for the configured mode, wired to clean up the other mode's state.
 * In nftables mode the iptables cleanup covers both families, whatever is enabled.
 */
export function createTrafficManager(o: TrafficManagerOptions): TrafficManager {
  const deps: ManagerDeps = {
    run: o.run,
    log: o.log,
    clock: o.clock,
    resyncSeconds: o.resyncSeconds,
    fullyRandomDisable: o.fullyRandomDisable,
    enableIPv4: o.enableIPv4,
    enableIPv6: o.enableIPv6,
  };
  const iptOpts = {
    ...deps,
    ...(o.iptablesTools ? { tools: o.iptablesTools } : {}),
    ...(o.iptablesListing ? { listing: o.iptablesListing } : {}),
  };
  const nftOpts = { ...deps, ...(o.nft ? { nft: o.nft } : {}) };
  if (o.enableNFTables) {
    const other = new IptablesManager(iptOpts);
    return new NftablesManager({ ...nftOpts, otherModeCleanup: () => other.cleanup() });
  }
  const other = new NftablesManager(nftOpts);
  return new IptablesManager({ ...iptOpts, otherModeCleanup: () => other.cleanup() });
}

/**
 * `--ip-blackhole-route` (§6.4): which blackhole routes flannel keeps. With them, traffic to an
 * unused address of our own subnet is dropped here instead of following the default route out of
 * the node. Pure planning; the route is made by an injected `EnsureBlackhole` (netlink).
 *
 * @module
 */
import type { IP4Net, IP6Net } from "../ip/mod.ts";
import type { RulesLease, RulesNetworkConfig } from "./types.ts";

/**
 * Our own subnets, in network form, one per enabled family: `blackhole 10.5.72.0/24`.
 *
 * @example
 * ```ts
 * import { IP4Net } from "../ip/mod.ts";
 * const subnets = blackholeSubnets(
 *   { enableIPv4: true, enableIPv6: false },
 *   { subnet: IP4Net.parse("10.5.72.0/24") },
 * );
 * console.assert(subnets.map(String).join() === "10.5.72.0/24");
 * ```
 */
export function blackholeSubnets(config: RulesNetworkConfig, lease: RulesLease): Array<IP4Net | IP6Net> {
  const out: Array<IP4Net | IP6Net> = [];
  if (config.enableIPv4) out.push(lease.subnet.network());
  if (config.enableIPv6 && lease.ipv6Subnet) out.push(lease.ipv6Subnet.network());
  return out;
}

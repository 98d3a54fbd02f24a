/**
 * Subnet arithmetic for acquisition: is a lease compatible with the configuration, does it
 * overlap another, and which free subnet to take.
 *
 * @module
 */
import type { NetworkConfig } from "../config/network_config.ts";
import { IP4Net, IP6Net } from "../ip/mod.ts";
import type { Lease } from "./types.ts";

/** Upstream picks at random among the first 100 free subnets, so nodes rarely collide. */
export const FREE_CANDIDATES = 100;

/**
 * True when the lease's subnets lie in [SubnetMin, SubnetMax] with the configured lengths, and
 * its IPv6 part matches the configuration (none when IPv6 is off).
 */
export function compatibleWithConfig(lease: Lease, cfg: NetworkConfig): boolean {
  const sn = lease.subnet;
  if (!cfg.subnetMin || !cfg.subnetMax) return false;
  if (sn.prefixLen !== cfg.subnetLen) return false;
  if (sn.ip.value < cfg.subnetMin.value || sn.ip.value > cfg.subnetMax.value) return false;
  if (!cfg.enableIPv6) return lease.ipv6Subnet === undefined;
  const sn6 = lease.ipv6Subnet;
  if (!sn6 || !cfg.ipv6SubnetMin || !cfg.ipv6SubnetMax) return false;
  return sn6.prefixLen === cfg.ipv6SubnetLen && sn6.ip.value >= cfg.ipv6SubnetMin.value &&
    sn6.ip.value <= cfg.ipv6SubnetMax.value;
}

/** True when the lease's IPv4 (or IPv6) subnet overlaps any of `others`. */
export function overlapsAny(lease: Lease, others: readonly Lease[]): boolean {
  return others.some((o) =>
    o.subnet.overlaps(lease.subnet) ||
    (lease.ipv6Subnet !== undefined && o.ipv6Subnet !== undefined && o.ipv6Subnet.overlaps(lease.ipv6Subnet))
  );
}

/**
 * Chooses a free subnet (and a free IPv6 subnet when IPv6 is on): walk from SubnetMin to
 * SubnetMax, skip every candidate that overlaps an existing lease, stop after
 * {@linkcode FREE_CANDIDATES} free ones, and pick one of those at random.
 * Returns undefined when no subnet is free.
 */
export function allocateSubnet(
  cfg: NetworkConfig,
  leases: readonly Lease[],
  random: () => number,
): { sn: IP4Net; sn6?: IP6Net } | undefined {
  if (!cfg.subnetMin || !cfg.subnetMax) return undefined;
  const taken4 = leases.map((l) => l.subnet);
  const free4: IP4Net[] = [];
  for (let c = new IP4Net(cfg.subnetMin, cfg.subnetLen); c.ip.value <= cfg.subnetMax.value; c = c.next()) {
    if (!taken4.some((t) => t.overlaps(c))) free4.push(c);
    if (free4.length >= FREE_CANDIDATES) break;
    if (c.ip.value + c.size() > 0xffffffff) break;
  }
  const sn = pick(free4, random);
  if (!sn) return undefined;
  if (!cfg.enableIPv6) return { sn };
  if (!cfg.ipv6SubnetMin || !cfg.ipv6SubnetMax) return undefined;
  const taken6 = leases.flatMap((l) => (l.ipv6Subnet ? [l.ipv6Subnet] : []));
  const free6: IP6Net[] = [];
  for (
    let c = new IP6Net(cfg.ipv6SubnetMin, cfg.ipv6SubnetLen);
    c.ip.value <= cfg.ipv6SubnetMax.value;
    c = c.next()
  ) {
    if (!taken6.some((t) => t.overlaps(c))) free6.push(c);
    if (free6.length >= FREE_CANDIDATES) break;
    if (c.ip.value + c.size() > (1n << 128n) - 1n) break;
  }
  const sn6 = pick(free6, random);
  return sn6 ? { sn, sn6 } : undefined;
}

function pick<T>(items: T[], random: () => number): T | undefined {
  if (items.length === 0) return undefined;
  return items[Math.min(items.length - 1, Math.floor(random() * items.length))];
}

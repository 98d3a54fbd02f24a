/**
 * A read-only view of the host's links, addresses and routes: everything external interface
 * selection needs to know about the kernel, and nothing more.
 *
 * Selection is pure logic over this view, so unit tests use a fake and the daemon uses a real
 * implementation: kernel_net_info.ts over our netlink stack (the daemon's), or ip_command.ts over
 * `ip -j` (kept for comparison and for embedders without netlink access).
 *
 * @module
 */

import type { IP4, IP6 } from "../ip/mod.ts";

/** The scope the kernel gives an address (`ip addr` prints it); other numeric scopes pass through. */
export type AddrScope = "global" | "site" | "link" | "host" | "nowhere" | (string & Record<never, never>);

/** One address of a link, with the kernel's flags that matter for choosing among them. */
export interface LinkAddr {
  /** The local address (for point-to-point links, our end, not the peer). */
  ip: IP4 | IP6;
  /** Prefix length of the address's subnet. */
  prefixLen: number;
  /** The kernel's address scope. */
  scope: AddrScope;
  /** Not permanent: it has a finite valid lifetime (SLAAC, DHCP clients). */
  dynamic: boolean;
  /** An IPv6 privacy (temporary) address. */
  temporary: boolean;
  /** Its preferred lifetime has run out; the kernel no longer picks it as a source. */
  deprecated: boolean;
}

/** One network link and its addresses. */
export interface LinkInfo {
  /** Interface name, e.g. `eth0`. */
  name: string;
  /** Kernel interface index. */
  index: number;
  /** MTU in bytes; 0 when the kernel did not report one. */
  mtu: number;
  /** Link flags in lower case, as `ip link` names them: `up`, `loopback`, `lower_up`, … */
  flags: string[];
  /** Addresses in the kernel's order. */
  addrs: LinkAddr[];
}

/** The result of a kernel route lookup: the outgoing link and the preferred source address. */
export interface RouteGetResult {
  /** Name of the link the kernel would send the packet through. */
  link: string;
  /** The route's preferred source address, when it has one. */
  src?: IP4 | IP6;
}

/** The host's network state as external interface selection sees it. */
export interface NetInfo {
  /** All links with their addresses, in the kernel's order. */
  links(): Promise<LinkInfo[]>;
  /**
   * Names of the links that carry a default route (`0.0.0.0/0` or `::/0`) in the main table, in
   * route order; empty when there is none.
   */
  defaultRouteLink(family: 4 | 6): Promise<string[]>;
  /** The kernel's route lookup for `dst`; `undefined` when there is no route. */
  routeGet(dst: IP4 | IP6): Promise<RouteGetResult | undefined>;
}

/**
 * {@linkcode NetInfo} over our own netlink stack ({@linkcode KernelOps}): the daemon's view of
 * links, addresses and routes for external interface selection, with no `ip` binary involved.
 * Upstream reads the same facts over netlink, so a node image without iproute2 (or with a
 * busybox `ip` that has no `-j`) works as it does with upstream.
 *
 * The facts match `ip -j` (ip_command.ts, kept for comparison): links and addresses in the
 * kernel's dump order, `dynamic` for addresses without IFA_F_PERMANENT, `temporary` and
 * `deprecated` from IFA_F_*, default-route links in the main table's order. A privileged test
 * checks the two agree on a namespace with secondary, deprecated and link-local addresses.
 *
 * @module
 */
import { IP4, type IP6 } from "../ip/mod.ts";
import type { KernelOps } from "../netlink/ops.ts";
import type { LinkInfo, NetInfo, RouteGetResult } from "./net_info.ts";

/** The host's links, addresses and routes as selection needs them, read over netlink. */
export function kernelNetInfo(kernel: KernelOps): NetInfo {
  return {
    async links(): Promise<LinkInfo[]> {
      const links = await kernel.linkList();
      const addrs = await kernel.addrList();
      return links.map((l) => ({
        name: l.name,
        index: l.index ?? 0,
        mtu: l.mtu ?? 0,
        flags: l.up ? ["up"] : [],
        addrs: addrs.filter((a) => a.dev === l.name).map((a) => ({
          ip: a.addr.ip,
          prefixLen: a.addr.prefixLen,
          scope: a.scope ?? "global",
          dynamic: a.permanent === false,
          temporary: a.temporary === true,
          deprecated: a.deprecated === true,
        })),
      }));
    },
    async defaultRouteLink(family: 4 | 6): Promise<string[]> {
      const out: string[] = [];
      for (const r of await kernel.routeList()) {
        const v4 = r.dst.ip instanceof IP4;
        if (r.dst.prefixLen !== 0 || v4 !== (family === 4)) continue;
        if (r.type !== undefined && r.type !== "unicast") continue;
        for (const dev of r.dev ? [r.dev] : r.nexthopDevs ?? []) if (!out.includes(dev)) out.push(dev);
      }
      return out;
    },
    async routeGet(dst: IP4 | IP6): Promise<RouteGetResult | undefined> {
      const r = await kernel.routeGet(dst);
      if (!r) return undefined;
      return r.src ? { link: r.dev, src: r.src } : { link: r.dev };
    },
  };
}

/**
 * The `host-gw` backend.
 *
 * Design notes. No device: every node must be on one L2 segment, and each peer's subnet is
 * routed straight to the peer's public address through the external interface:
 *
 *   ip route replace 10.5.34.0/24 via 192.168.1.11 dev eth0 proto 91
 *   ip -6 route replace fd05:0:0:22::/64 via fd00:1::11 dev eth0 proto 91
 *
 * The lease publishes only the public address (BackendType host-gw, no BackendData). The MTU is
 * the interface's. A public IP that differs from the interface address means NAT, which cannot
 * work without encapsulation, so registration fails (upstream's error). Routes are reconciled
 * like every backend's: stale ones are removed, deleted ones come back in the next pass (upstream
 * re-checked only every 10 s and never removed routes of nodes that left while it was down).
 *
 * @module
 */
import { IP4 } from "../../ip/mod.ts";
import type { Lease, LeaseAttrs } from "../../lease/types.ts";
import type { KernelEvent, Route } from "../../netlink/ops.ts";
import { runNetLoop } from "../net_loop.ts";
import { reconcile, RTPROT_FLANNEL, RTPROT_KERNEL } from "../reconcile.ts";
import {
  acquireLease,
  type BackendContext,
  type BackendFactory,
  type Network,
  requireKernel,
} from "../types.ts";

/** The host-gw backend factory. */
export const hostGwBackend: BackendFactory = {
  type: "host-gw",
  async register(ctx: BackendContext): Promise<Network> {
    const kernel = requireKernel(ctx, "host-gw");
    const { ext, log, config } = ctx;
    const natted =
      (config.enableIPv4 && ext.extAddr && ext.ifaceAddr && !ext.extAddr.equals(ext.ifaceAddr)) ||
      (config.enableIPv6 && ext.extV6Addr && ext.ifaceV6Addr && !ext.extV6Addr.equals(ext.ifaceV6Addr));
    if (natted) {
      throw new Error(
        "your PublicIP differs from interface IP, meaning that probably you're on a NAT, which is not supported by " +
          `host-gw backend (public ${ext.extAddr ?? ext.extV6Addr}, interface ${
            ext.ifaceAddr ?? ext.ifaceV6Addr
          }); ` +
          "use the vxlan or wireguard backend, or drop --public-ip",
      );
    }
    const attrs: LeaseAttrs = { publicIP: ext.extAddr ?? IP4.fromNumber(0), backendType: "host-gw" };
    if (config.enableIPv6 && ext.extV6Addr) attrs.publicIPv6 = ext.extV6Addr;
    const lease = await acquireLease(ctx, attrs);
    const dev = ext.name;
    const inCluster = (r: Route) =>
      (config.network !== undefined && r.dst.ip instanceof IP4 && config.network.contains(r.dst.ip)) ||
      (config.ipv6Network !== undefined && !(r.dst.ip instanceof IP4) &&
        config.ipv6Network.contains(r.dst.ip as never));
    const owns = (r: Route) =>
      r.protocol === RTPROT_FLANNEL ||
      (r.dev === dev && r.gateway !== undefined && r.protocol !== RTPROT_KERNEL && inCluster(r) &&
        !r.dst.equals(lease.subnet as never));

    const pass = async (leases: ReadonlyMap<string, Lease>) => {
      const routes: Route[] = [];
      for (const l of leases.values()) {
        if (l.attrs.backendType !== "host-gw") continue;
        if (config.enableIPv4 && !l.attrs.publicIP.isUnspecified()) {
          routes.push({ dst: l.subnet, gateway: l.attrs.publicIP, dev, protocol: RTPROT_FLANNEL });
        }
        if (config.enableIPv6 && l.ipv6Subnet && l.attrs.publicIPv6) {
          routes.push({ dst: l.ipv6Subnet, gateway: l.attrs.publicIPv6, dev, protocol: RTPROT_FLANNEL });
        }
      }
      const result = await reconcile(
        kernel,
        { routes, neighs: [], fdbs: [] },
        { devices: [], route: owns },
        log,
      );
      ctx.onReconcile?.(result);
    };
    const interesting = (e: KernelEvent) =>
      (e.kind === "route" && e.op === "del" && owns(e.route)) || (e.kind === "link" && e.link.name === dev) ||
      (e.kind === "addr" && e.addr.dev === dev);
    return {
      lease,
      reconciles: true,
      mtu: ext.mtu,
      run: (batches, signal) =>
        runNetLoop({ kernel, log, clock: ctx.clock, pass, interesting }, batches, signal),
      close: () => Promise.resolve(),
    };
  },
};

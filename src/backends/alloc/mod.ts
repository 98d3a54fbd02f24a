/**
 * The `alloc` backend: it only takes a subnet lease for the node and programs nothing.
 *
 * Design notes. What goes into the kernel per peer: nothing. The lease publishes only the
 * node's public address (no BackendType, no BackendData, as upstream), the MTU written to
 * subnet.env is the external interface's, and peers' leases are followed only so that the
 * daemon's view of the cluster (logs, metrics) stays current. Useful when something else
 * (a cloud route table, a router) carries the pod traffic.
 *
 * @module
 */
import { IP4 } from "../../ip/mod.ts";
import type { LeaseAttrs } from "../../lease/types.ts";
import { acquireLease, type BackendContext, type BackendFactory, type Network } from "../types.ts";

/** The alloc backend factory. */
export const allocBackend: BackendFactory = {
  type: "alloc",
  async register(ctx: BackendContext): Promise<Network> {
    const attrs: LeaseAttrs = { publicIP: ctx.ext.extAddr ?? IP4.fromNumber(0) };
    if (ctx.ext.extV6Addr) attrs.publicIPv6 = ctx.ext.extV6Addr;
    const lease = await acquireLease(ctx, attrs);
    const log = ctx.log;
    return {
      lease,
      mtu: ctx.ext.mtu,
      async run(batches, signal) {
        for await (const batch of batches) {
          if (signal.aborted) break;
          for (const ev of batch.events) {
            log.v(1, `Subnet ${ev.type}: ${ev.lease.subnet} (PublicIP ${ev.lease.attrs.publicIP})`);
          }
        }
      },
      close: () => Promise.resolve(),
    };
  },
};

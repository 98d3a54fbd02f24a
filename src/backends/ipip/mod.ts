/**
 * The `ipip` backend (IPv4 only).
 *
 * Design notes. One device, `flannel.ipip` (type ipip, local = the interface address, remote
 * any), MTU = interface MTU − 20, carrying our subnet's network address as /32. Per peer (a
 * lease with BackendType ipip):
 *
 *   ip route replace 10.5.34.0/24 via <peer PublicIP> dev flannel.ipip onlink proto 91
 *
 * The kernel encapsulates toward the route's gateway. With DirectRouting, a peer whose PublicIP
 * is directly connected gets `via <PublicIP> dev <external interface>` instead (no
 * encapsulation). This kernel-lab-only backend shares the reconciler with host-gw and vxlan.
 *
 * @module
 */
import { IP4, IP4Net } from "../../ip/mod.ts";
import type { Lease } from "../../lease/types.ts";
import type { KernelEvent, Route } from "../../netlink/ops.ts";
import { ensureDeviceAddress } from "../addresses.ts";
import { runNetLoop } from "../net_loop.ts";
import { OptionReader } from "../options.ts";
import { reconcile, RTPROT_FLANNEL, RTPROT_KERNEL } from "../reconcile.ts";
import {
  acquireLease,
  type BackendContext,
  type BackendFactory,
  type Network,
  requireKernel,
} from "../types.ts";

/** The device name upstream uses. */
export const IPIP_DEVICE = "flannel.ipip";
/** The outer IPv4 header. */
export const IPIP_OVERHEAD = 20;

/** The ipip backend factory. */
export const ipipBackend: BackendFactory = {
  type: "ipip",
  async register(ctx: BackendContext): Promise<Network> {
    const kernel = requireKernel(ctx, "ipip");
    const { ext, log, config } = ctx;
    const directRouting = new OptionReader(config.backend, "error decoding IPIP backend config").bool(
      "DirectRouting",
    );
    log.info(`IPIP config: DirectRouting=${directRouting}`);
    if (!ext.ifaceAddr) throw new Error("the ipip backend needs an IPv4 address on the external interface");
    const mtu = ext.mtu - IPIP_OVERHEAD;
    if (mtu <= 0) throw new Error(`MTU ${mtu} is too small for ipip mode to work`);

    const ensureDevice = async () => {
      const have = await kernel.linkGet(IPIP_DEVICE);
      if (have && have.kind !== "ipip") {
        throw new Error(`${IPIP_DEVICE} isn't an ipip mode device, please remove device and try again`);
      }
      const stale = have && (String(have.ipip?.local ?? "") !== String(ext.ifaceAddr) ||
        (have.ipip?.remote !== undefined && !have.ipip.remote.isUnspecified()));
      if (stale) {
        log.warn(
          `${IPIP_DEVICE} has local ${have.ipip?.local} remote ${have.ipip?.remote}, want local ${ext.ifaceAddr} remote any; recreating it`,
        );
        await kernel.linkDel(IPIP_DEVICE);
      }
      if (!have || stale) {
        await kernel.linkAdd({ name: IPIP_DEVICE, kind: "ipip", mtu, ipip: { local: ext.ifaceAddr! } });
      } else if (have.mtu !== mtu) {
        await kernel.linkSet(IPIP_DEVICE, { mtu });
      }
    };
    await ensureDevice();
    const lease = await acquireLease(ctx, {
      publicIP: ext.extAddr ?? IP4.fromNumber(0),
      backendType: "ipip",
    });
    const ensureAddress = async () => {
      await ensureDeviceAddress(kernel, IPIP_DEVICE, new IP4Net(lease.subnet.ip, 32), config.network);
      const link = await kernel.linkGet(IPIP_DEVICE);
      if (link && !link.up) await kernel.linkSet(IPIP_DEVICE, { up: true });
    };
    await ensureAddress();

    const owns = (r: Route) =>
      r.protocol === RTPROT_FLANNEL || (r.dev === IPIP_DEVICE && r.protocol !== RTPROT_KERNEL);
    const pass = async (leases: ReadonlyMap<string, Lease>) => {
      await ensureDevice();
      await ensureAddress();
      const routes: Route[] = [];
      for (const l of leases.values()) {
        if (l.attrs.backendType !== "ipip" || l.attrs.publicIP.isUnspecified()) continue;
        if (directRouting) {
          const via = await kernel.routeGet(l.attrs.publicIP);
          if (via && !via.gateway) {
            routes.push({
              dst: l.subnet,
              gateway: l.attrs.publicIP,
              dev: ext.name,
              protocol: RTPROT_FLANNEL,
            });
            continue;
          }
        }
        routes.push({
          dst: l.subnet,
          gateway: l.attrs.publicIP,
          dev: IPIP_DEVICE,
          onlink: true,
          protocol: RTPROT_FLANNEL,
        });
      }
      // Not onReconcile?.(await reconcile(…)): optional chaining would skip the reconcile itself.
      const result = await reconcile(
        kernel,
        { routes, neighs: [], fdbs: [] },
        { devices: [], route: owns },
        log,
      );
      ctx.onReconcile?.(result);
    };
    const interesting = (e: KernelEvent) =>
      (e.kind === "link" && e.link.name === IPIP_DEVICE) ||
      (e.kind === "route" && e.op === "del" && owns(e.route)) ||
      (e.kind === "addr" && e.op === "del" && e.addr.dev === IPIP_DEVICE);
    return {
      lease,
      mtu,
      reconciles: true,
      run: (batches, signal) =>
        runNetLoop({ kernel, log, clock: ctx.clock, pass, interesting }, batches, signal),
      close: () => Promise.resolve(),
    };
  },
};

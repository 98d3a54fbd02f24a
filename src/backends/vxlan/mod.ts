/**
 * The `vxlan` backend.
 *
 * Design notes. One VXLAN device per family, `flannel.<VNI>` (and `flannel-v6.<VNI>`), bound to
 * the external interface and our public address, learning off, MTU = underlay MTU − 50. It
 * carries our subnet's network address as /32 (/128), so the kernel has a source for replies.
 * What goes into the kernel per peer (a lease with BackendType vxlan), IPv4 shown:
 *
 *   ip neigh replace 10.5.34.0 lladdr <peer VtepMAC> dev flannel.1 nud permanent
 *   bridge fdb replace <peer VtepMAC> dev flannel.1 self dst <peer PublicIP> permanent
 *   ip route replace 10.5.34.0/24 via 10.5.34.0 dev flannel.1 onlink proto 91
 *
 * The route sends the peer's pods to a gateway address that is the peer subnet's network
 * address; `onlink` makes the kernel accept it without a connected route; the neighbour entry
 * resolves that gateway to the peer's VTEP MAC without ARP, and the FDB entry tells the VXLAN
 * driver which underlay IP owns that MAC. With DirectRouting, a peer whose PublicIP is directly
 * connected (the route lookup finds no gateway) gets a plain route via its PublicIP instead, and
 * its traffic is not encapsulated.
 *
 * Better than upstream: the whole desired state is reconciled (stale entries of nodes that left
 * while we were down are removed at start), a deleted device is recreated with the same MAC and
 * fully reprogrammed in the next pass, the MTU follows the config, and a new device's MAC is
 * derived from the node's address so it survives reboots.
 *
 * @module
 */
import { IP4, IP4Net, IP6Net } from "../../ip/mod.ts";
import type { Lease, LeaseAttrs } from "../../lease/types.ts";
import type { Fdb, IP, KernelEvent, KernelOps, Neigh, Route } from "../../netlink/ops.ts";
import { stableMac } from "../../util/mac.ts";
import { runNetLoop } from "../net_loop.ts";
import { type DesiredState, reconcile, RTPROT_FLANNEL, RTPROT_KERNEL } from "../reconcile.ts";
import {
  acquireLease,
  type BackendContext,
  type BackendFactory,
  type Network,
  requireKernel,
} from "../types.ts";
import {
  decodeVxlanData,
  encodeVxlanData,
  parseVxlanConfig,
  VXLAN6_OVERHEAD,
  VXLAN_OVERHEAD,
  type VxlanConfig,
} from "./config.ts";
import { ensureDeviceAddress, ensureVxlanDevice, type VxlanDeviceSpec } from "./device.ts";

interface Family {
  v: 4 | 6;
  spec: VxlanDeviceSpec;
}

/** The vxlan backend factory. */
export const vxlanBackend: BackendFactory = {
  type: "vxlan",
  async register(ctx: BackendContext): Promise<Network> {
    const kernel = requireKernel(ctx, "vxlan");
    const cfg = parseVxlanConfig(ctx.config.backend);
    const { ext, log } = ctx;
    log.info(
      `VXLAN config: VNI=${cfg.vni} Port=${cfg.port} GBP=${cfg.gbp} Learning=${cfg.learning} DirectRouting=${cfg.directRouting}`,
    );
    const underlay = cfg.mtu || ext.mtu;
    const mtu = underlay - VXLAN_OVERHEAD;
    const families: Family[] = [];
    const spec = async (v: 4 | 6, name: string, local: IP | undefined): Promise<Family> => ({
      v,
      spec: {
        name,
        vni: cfg.vni,
        link: ext.index,
        port: cfg.port,
        learning: cfg.learning,
        gbp: cfg.gbp,
        mtu: v === 6 && local && !(local instanceof IP4) ? underlay - VXLAN6_OVERHEAD : mtu,
        mac: await stableMac(`flannel-vxlan:${name}:${local ?? ext.name}`),
        ...(local ? { local } : {}),
      },
    });
    if (ctx.config.enableIPv4) families.push(await spec(4, `flannel.${cfg.vni}`, ext.extAddr));
    if (ctx.config.enableIPv6) families.push(await spec(6, `flannel-v6.${cfg.vni}`, ext.extV6Addr));

    // Devices first (upstream order): their MACs go into the lease.
    const macs = new Map<4 | 6, string>();
    const refusedMtu = new Set<string>();
    for (const f of families) {
      f.spec.mac = await ensureVxlanDevice(kernel, f.spec, log, refusedMtu);
      macs.set(f.v, f.spec.mac);
    }

    const attrs: LeaseAttrs = { publicIP: ext.extAddr ?? IP4.fromNumber(0), backendType: "vxlan" };
    if (macs.has(4) && ext.extAddr) {
      attrs.backendData = encodeVxlanData({ vni: cfg.vni, vtepMac: macs.get(4)! });
    }
    if (macs.has(6) && ext.extV6Addr) {
      attrs.publicIPv6 = ext.extV6Addr;
      attrs.backendV6Data = encodeVxlanData({ vni: cfg.vni, vtepMac: macs.get(6)! });
    }
    const lease = await acquireLease(ctx, attrs);
    const ensureAddresses = async () => {
      for (const f of families) {
        if (f.v === 4) {
          await ensureDeviceAddress(kernel, f.spec.name, new IP4Net(lease.subnet.ip, 32), ctx.config.network);
        } else {
          if (!lease.ipv6Subnet) {
            throw new Error(
              `failed to configure interface ${f.spec.name}: IPv6 is enabled but the lease has no IPv6`,
            );
          }
          await ensureDeviceAddress(
            kernel,
            f.spec.name,
            new IP6Net(lease.ipv6Subnet.ip, 128),
            ctx.config.ipv6Network,
          );
        }
      }
    };
    await ensureAddresses();

    const devices = families.map((f) => f.spec.name);
    const warned = new Set<string>();
    const pass = async (leases: ReadonlyMap<string, Lease>) => {
      // Heal the devices first: a deleted device comes back with the same MAC.
      for (const f of families) await ensureVxlanDevice(kernel, f.spec, log, refusedMtu);
      await ensureAddresses();
      const desired = await desiredState(kernel, cfg, families, leases, (key, msg) => {
        if (warned.has(key)) return;
        warned.add(key);
        log.warn(msg);
      });
      const result = await reconcile(kernel, desired, {
        devices,
        route: (r) =>
          r.protocol === RTPROT_FLANNEL ||
          (r.dev !== undefined && devices.includes(r.dev) && r.protocol !== RTPROT_KERNEL),
      }, log);
      ctx.onReconcile?.(result);
    };
    const interesting = (e: KernelEvent) =>
      (e.kind === "link" && devices.includes(e.link.name)) ||
      (e.kind === "route" && e.op === "del" &&
        ((e.route.dev !== undefined && devices.includes(e.route.dev)) ||
          e.route.protocol === RTPROT_FLANNEL)) ||
      (e.kind === "neigh" && e.op === "del" && devices.includes(e.neigh.dev)) ||
      (e.kind === "addr" && e.op === "del" && devices.includes(e.addr.dev));

    return {
      lease,
      reconciles: true,
      // Pods get the smallest device MTU, so neither family needs fragmentation (upstream writes
      // the IPv4 figure even when IPv6 rides a 20-byte larger header).
      mtu: Math.min(...families.map((f) => f.spec.mtu)),
      run: (batches, signal) =>
        runNetLoop({ kernel, log, clock: ctx.clock, pass, interesting }, batches, signal),
      // The data path outlives the daemon (hitless restarts): nothing to remove.
      close: () => Promise.resolve(),
    };
  },
};

async function desiredState(
  kernel: KernelOps,
  cfg: VxlanConfig,
  families: Family[],
  leases: ReadonlyMap<string, Lease>,
  warnOnce: (key: string, msg: string) => void,
): Promise<DesiredState> {
  const routes: Route[] = [];
  const neighs: Neigh[] = [];
  const fdbs: Fdb[] = [];
  for (const lease of leases.values()) {
    if (lease.attrs.backendType !== "vxlan") continue;
    for (const f of families) {
      const dev = f.spec.name;
      const subnet = f.v === 4 ? lease.subnet : lease.ipv6Subnet;
      const publicIP: IP | undefined = f.v === 4 ? lease.attrs.publicIP : lease.attrs.publicIPv6;
      const data = f.v === 4 ? lease.attrs.backendData : lease.attrs.backendV6Data;
      if (!subnet || !publicIP || !data) continue;
      let mac: string;
      try {
        mac = decodeVxlanData(data).vtepMac;
      } catch (e) {
        warnOnce(
          `${subnet}|${data}`,
          `Skipping the lease of ${subnet} (PublicIP ${publicIP}): ${(e as Error).message}`,
        );
        continue;
      }
      if (cfg.directRouting) {
        const via = await kernel.routeGet(publicIP);
        if (via && !via.gateway) {
          routes.push({ dst: subnet, gateway: publicIP, dev: via.dev, protocol: RTPROT_FLANNEL });
          continue;
        }
      }
      neighs.push({ dev, ip: subnet.ip, mac, permanent: true });
      fdbs.push({ dev, mac, dst: publicIP, self: true, permanent: true });
      routes.push({ dst: subnet, gateway: subnet.ip, dev, onlink: true, protocol: RTPROT_FLANNEL });
    }
  }
  return { routes, neighs, fdbs };
}

/**
 * The `udp` backend (IPv4 only): a userspace data path, for hosts without vxlan.
 *
 * Design notes. One TUN device, asked for as `flannel%d` (the kernel picks the number, so
 * `flannel0`), IFF_TUN | IFF_NO_PI, MTU = interface MTU − 28 (outer IPv4 and UDP headers),
 * carrying our subnet's network address as /32, up. One route sends the whole cluster Network
 * into it:
 *
 *   ip route replace 10.5.0.0/16 dev flannel0 proto 91
 *
 * Our own subnet stays on the bridge (cni0) by its longer prefix; everything else in the Network
 * reaches the TUN device, where our loop reads it, finds the peer whose subnet contains the
 * destination (first match, moved to the front), decrements the TTL and sends the unmodified
 * IPv4 packet as the payload of one UDP datagram from `<IfaceAddr>:<Port>` to
 * `<peer PublicIP>:<Port>` (Port 8285 unless configured: every node must use the same).
 * Datagrams received on that socket are TTL-checked and written into the TUN device. A
 * destination in no peer's subnet gets ICMP "net unreachable" back from the TUN address. Peers
 * are every other lease with a PublicIP, whatever its BackendType (upstream does not check it);
 * our lease publishes PublicIP only. The wire format is upstream's, so mixed clusters work.
 *
 * The loop (sys_deno.ts, forwarder.ts, offload.ts) runs on Worker threads that block in
 * poll(2), batches with recvmmsg/sendmmsg and allocates nothing per packet. With offloads (the
 * default) the TUN device hands over TCP segments of up to 64 KiB (IFF_VNET_HDR + TSO), which the
 * loop cuts into MTU-sized packets sent with one UDP_SEGMENT sendmsg; received datagrams come in
 * UDP_GRO batches and consecutive segments of a TCP flow go back into the TUN device as one. On a
 * 2-CPU VM this moved iperf3 from 0.9 to 5–6.6 Gbit/s (our vxlan: 7–7.4 Gbit/s); see
 * tests/bench/udp_bench.ts. If a loop thread ever stops on its own, the error is logged and the
 * next pass (asked for at once) closes and reopens the whole data path.
 *
 * The device lives as long as our file descriptor: close() stops the loop and closes it, which
 * removes the device and its route (upstream too). Linux 6.x drops packets whose source is one of
 * our own addresses (a martian, even with rp_filter off), which is what ICMP errors from the TUN
 * address are when they come back in, so the device gets `accept_local=1`. Better than upstream:
 * the device, address and route are reconciled on every pass (a deleted device is reopened),
 * `ping` to an unknown destination gets its ICMP error (upstream answers no ICMP at all), and it
 * works on every architecture Deno runs on (upstream's C proxy is amd64-only).
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
import type { PeerRoute } from "./packet.ts";
import {
  type DataPath,
  type DataPathOptions,
  type DataPathStats,
  type OpenDataPath,
  zeroStats,
} from "./sys.ts";

export type { DataPath, DataPathOptions, DataPathStats, OpenDataPath } from "./sys.ts";
export { zeroStats } from "./sys.ts";

/** The TUN name asked of the kernel (upstream's). */
export const UDP_DEVICE_PATTERN = "flannel%d";
/** Outer IPv4 (20) and UDP (8) headers. */
export const UDP_OVERHEAD = 28;
/** Upstream's default `Port`. */
export const DEFAULT_UDP_PORT = 8285;
/** The peer table never needs more rows than subnets fit the Network; this caps its memory. */
const MAX_PEERS = 1 << 20;

/**
 * What the host (`BackendContext.host`) offers for the data path: the runtime's TUN device, UDP
 * socket and loop (`openDenoDataPath` of sys_deno.ts under Deno). Backends reach the runtime only
 * through injected objects, so this file, and the library built from it, stays runtime-neutral.
 */
export interface UdpHost {
  openUdpDataPath?: OpenDataPath;
}

/** How {@linkcode createUdpBackend} builds the data path. */
export interface UdpBackendOptions {
  /** The data path; absent: the host's `openUdpDataPath` ({@linkcode UdpHost}). */
  openDataPath?: OpenDataPath;
  /** Where the loop runs (see {@linkcode DataPathOptions.threads}). */
  threads?: DataPathOptions["threads"];
}

/**
 * A udp backend factory over the given data path.
 *
 * @example
 * ```ts ignore
 * import { BackendRegistry } from "../registry.ts";
 * import { createUdpBackend } from "./mod.ts";
 *  * const registry = new BackendRegistry([createUdpBackend({ openDataPath: openDenoDataPath })]);
 * console.log(registry.types); // ["udp"]
 * ```
 */
export function createUdpBackend(opts: UdpBackendOptions): BackendFactory {
  return {
    type: "udp",
    register: (ctx) => registerUdp(ctx, opts),
  };
}

/** The udp backend factory; the data path comes from the host ({@linkcode UdpHost}). */
export const udpBackend: BackendFactory = createUdpBackend({});

async function registerUdp(ctx: BackendContext, opts: UdpBackendOptions): Promise<Network> {
  const kernel = requireKernel(ctx, "udp");
  const { ext, log, config } = ctx;
  const port = new OptionReader(config.backend, "error decoding UDP backend config").int(
    "Port",
    DEFAULT_UDP_PORT,
    0,
    65535,
  );
  const network = config.network;
  if (!config.enableIPv4 || !network) throw new Error("the udp backend supports IPv4 only: set Network");
  if (!ext.ifaceAddr) throw new Error("the udp backend needs an IPv4 address on the external interface");
  const ifaceAddr = ext.ifaceAddr;
  const mtu = ext.mtu - UDP_OVERHEAD;
  if (mtu < 68) throw new Error(`MTU ${mtu} is too small for udp mode to work`);

  const openDataPath = opts.openDataPath ?? (ctx.host as UdpHost | undefined)?.openUdpDataPath;
  if (!openDataPath) {
    throw new Error("the udp backend needs a TUN data path (host.openUdpDataPath), which this build lacks");
  }
  const lease = await acquireLease(ctx, { publicIP: ext.extAddr ?? IP4.fromNumber(0) });
  const fit = config.subnetLen > network.prefixLen ? 2 ** (config.subnetLen - network.prefixLen) : 1;
  const open = () =>
    openDataPath({
      tunName: UDP_DEVICE_PATTERN,
      tunAddr: lease.subnet.ip.value,
      bindAddr: ifaceAddr.value,
      port,
      mtu,
      maxPeers: Math.min(fit, MAX_PEERS),
      ...(opts.threads ? { threads: opts.threads } : {}),
    });
  let dp: DataPath = await open();
  log.info(`UDP config: Port=${dp.port}; TUN device ${dp.tunName}, MTU ${mtu}, ${dp.features.join(" ")}`);
  /** Set when the open data path's loop died: the next pass reopens it. */
  let died: Error | undefined;
  let kick = () => {};
  const watch = (path: DataPath) =>
    void path.failed.then((e) => {
      if (path !== dp) return; // an old data path, already replaced
      died = e;
      log.error(`${e.message}; packets through ${path.tunName} stop until it is reopened`);
      kick();
    });
  watch(dp);

  // Counters of closed data paths, so that the exported totals never go down on a reopen.
  const carried = zeroStats();
  const restarts = { loop_died: 0, device_gone: 0 };
  /** Set once the open data path's counters are in `carried` (it is closed or closing). */
  let absorbed = false;
  const reopen = async (cause: keyof typeof restarts) => {
    restarts[cause]++;
    await dp.close();
    if (!absorbed) addStats(carried, dp.stats()); // a failed open() leaves the old path: count it once
    absorbed = true;
    dp = await open();
    absorbed = false;
    watch(dp);
  };

  const ensureDevice = async () => {
    if (died) {
      log.warn(`Reopening the udp data path (TUN device ${dp.tunName}) after its loop stopped`);
      died = undefined;
      await reopen("loop_died");
    }
    let link = await kernel.linkGet(dp.tunName);
    if (!link) {
      log.warn(`TUN device ${dp.tunName} is gone; reopening it`);
      await reopen("device_gone");
      link = await kernel.linkGet(dp.tunName);
      if (!link) throw new Error(`TUN device ${dp.tunName} does not show up after opening it`);
    }
    if (link.mtu !== mtu) await kernel.linkSet(dp.tunName, { mtu });
    await ensureDeviceAddress(kernel, dp.tunName, new IP4Net(lease.subnet.ip, 32), network);
    if (!link.up) await kernel.linkSet(dp.tunName, { up: true });
    try {
      dp.setDeviceSysctl("accept_local", "1");
    } catch (e) {
      log.warn(`ICMP errors from ${dp.tunName} may be dropped as martians: ${(e as Error).message}`);
    }
  };
  try {
    await ensureDevice();
  } catch (e) {
    await dp.close();
    throw e;
  }

  const owns = (r: Route) => r.dev === dp.tunName && r.protocol !== RTPROT_KERNEL;
  const pass = async (leases: ReadonlyMap<string, Lease>) => {
    await ensureDevice();
    dp.setPeers(peerRoutes(leases, lease, port));
    const routes: Route[] = [{ dst: network, dev: dp.tunName, protocol: RTPROT_FLANNEL }];
    // Not `onReconcile?.(await reconcile(…))`: optional chaining would skip the whole call, reconcile
    // included, when no one listens.
    const result = await reconcile(
      kernel,
      { routes, neighs: [], fdbs: [] },
      { devices: [], route: owns },
      log,
    );
    ctx.onReconcile?.(result);
  };
  const interesting = (e: KernelEvent) =>
    (e.kind === "link" && e.link.name === dp.tunName) ||
    (e.kind === "route" && e.op === "del" && owns(e.route)) ||
    (e.kind === "addr" && e.op === "del" && e.addr.dev === dp.tunName);
  return {
    lease,
    mtu,
    reconciles: true,
    run: (batches, signal) =>
      runNetLoop(
        { kernel, log, clock: ctx.clock, pass, interesting, wakeOn: (k) => void (kick = k) },
        batches,
        signal,
      ),
    close: () => dp.close(),
    collectMetrics(sink) {
      const st = addStats(zeroStats(), carried);
      if (!absorbed) addStats(st, dp.stats());
      const packets = "Packets through the udp data path, by where they were counted";
      sink.counter("flannel_udp_packets_total", packets, st.tunRx, { point: "tun_read" });
      sink.counter("flannel_udp_packets_total", packets, st.udpTx, { point: "udp_send" });
      sink.counter("flannel_udp_packets_total", packets, st.udpRx, { point: "udp_receive" });
      sink.counter("flannel_udp_packets_total", packets, st.tunTx, { point: "tun_write" });
      sink.counter(
        "flannel_udp_tun_writes_total",
        "Write calls into the TUN device (segments coalesced)",
        st.tunWrites,
      );
      const dropped = "Packets the udp data path dropped, by reason";
      sink.counter("flannel_udp_dropped_packets_total", dropped, st.noRoute, { reason: "no_route" });
      sink.counter("flannel_udp_dropped_packets_total", dropped, st.ttlExpired, { reason: "ttl_expired" });
      sink.counter("flannel_udp_dropped_packets_total", dropped, st.malformed, { reason: "malformed" });
      sink.counter(
        "flannel_udp_icmp_unreachable_total",
        "ICMP net unreachable answers written into the TUN device",
        st.icmpSent,
      );
      sink.counter(
        "flannel_udp_syscall_errors_total",
        "Failed system calls of the udp loop (other than would-block)",
        st.errors,
      );
      if (st.lastErrno) {
        sink.set("flannel_udp_last_errno", "The errno of the loop's last failed call", st.lastErrno);
      }
      for (const [cause, n] of Object.entries(restarts)) {
        sink.counter("flannel_udp_datapath_restarts_total", "Times the data path was reopened", n, { cause });
      }
    },
  };
}

/** Adds `b`'s counters into `a` (the last errno: `b`'s when it has one); returns `a`. */
function addStats(a: DataPathStats, b: DataPathStats): DataPathStats {
  for (const k of Object.keys(a) as (keyof DataPathStats)[]) {
    a[k] = k === "lastErrno" ? (b.lastErrno || a.lastErrno) : a[k] + b[k];
  }
  return a;
}

/** The peer table for the leases: every other node with a PublicIP, at our configured port. */
export function peerRoutes(leases: ReadonlyMap<string, Lease>, own: Lease, port: number): PeerRoute[] {
  const routes: PeerRoute[] = [];
  for (const l of leases.values()) {
    if (
      l.attrs.publicIP.isUnspecified() || l.subnet.network().toString() === own.subnet.network().toString()
    ) {
      continue;
    }
    routes.push({
      net: l.subnet.network().ip.value,
      mask: l.subnet.mask(),
      addr: l.attrs.publicIP.value,
      port,
    });
  }
  return routes;
}

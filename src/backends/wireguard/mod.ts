/**
 * The `wireguard` backend.
 *
 * Design notes. Mode `separate` (the default) makes `flannel-wg` for IPv4 (ListenPort 51820) and
 * `flannel-wg-v6` for IPv6 (ListenPortV6 51821); modes `auto`, `ipv4` and `ipv6` make one
 * `flannel-wg` that carries both families. Each device has our subnet's address as /32 (/128),
 * MTU = underlay MTU − 80, and a route for the whole cluster Network (`ip route replace
 * 10.5.0.0/16 dev flannel-wg scope link proto 91`): WireGuard's allowed IPs, not the routing
 * table, pick the peer. Per peer (a lease with BackendType wireguard):
 *
 *   wg set flannel-wg peer <PublicKey> endpoint <PublicIP>:<Port> allowed-ips <subnet> \
 *        [preshared-key …] [persistent-keepalive N]
 *
 * The private key lives in /run/flannel/wgkey (or $WIREGUARD_KEY_FILE), 0400, and survives
 * restarts, so the public key in our lease stays the same. Devices are removed at shutdown (as
 * upstream). Better than upstream: peers that no lease backs are removed; a peer whose endpoint
 * roamed away from its lease is pinned back; a kernel without WireGuard falls back to
 * wireguard-go.
 *
 * @module
 */
import { IP4, IP4Net, type IP6, IP6Net } from "../../ip/mod.ts";
import type { Lease, LeaseAttrs } from "../../lease/types.ts";
import type { IP, IPNet, KernelEvent, Route, WgPeer } from "../../netlink/ops.ts";
import { ensureDeviceAddress } from "../addresses.ts";
import { runNetLoop } from "../net_loop.ts";
import { reconcile, RTPROT_FLANNEL, RTPROT_KERNEL } from "../reconcile.ts";
import {
  acquireLease,
  type BackendContext,
  type BackendFactory,
  type Network,
  requireHost,
  requireKernel,
} from "../types.ts";
import { decodeWgData, encodeWgData, parseWgConfig, WG_OVERHEAD, type WgConfig } from "./config.ts";
import { chooseWgDriver, type WgDriver } from "./driver.ts";
import { loadOrCreatePrivateKey, publicKey } from "./keys.ts";
import { hex } from "./uapi.ts";

export interface Device {
  name: string;
  port: number;
  families: (4 | 6)[];
}

/** The wireguard backend factory. */
export const wireguardBackend: BackendFactory = {
  type: "wireguard",
  async register(ctx: BackendContext): Promise<Network> {
    const kernel = requireKernel(ctx, "wireguard");
    const host = requireHost(ctx, "wireguard");
    const { ext, log, config } = ctx;
    const cfg = parseWgConfig(config.backend);
    const { key } = await loadOrCreatePrivateKey(host, log);
    const pub = publicKey(key);
    const mtu = (cfg.mtu || ext.mtu) - WG_OVERHEAD;

    const devices: Device[] = [];
    if (cfg.mode === "separate") {
      if (config.enableIPv4) devices.push({ name: "flannel-wg", port: cfg.listenPort, families: [4] });
      if (config.enableIPv6) devices.push({ name: "flannel-wg-v6", port: cfg.listenPortV6, families: [6] });
    } else {
      const families: (4 | 6)[] = [];
      if (config.enableIPv4) families.push(4);
      if (config.enableIPv6) families.push(6);
      devices.push({ name: "flannel-wg", port: cfg.listenPort, families });
    }
    let driver: WgDriver | undefined;
    const createDevice = async (d: Device) => {
      if (!driver) driver = await chooseWgDriver(kernel, host, log, d.name, mtu);
      else await driver.create(d.name, mtu);
      await driver.configure(d.name, { privateKey: key, listenPort: d.port, replacePeers: true, peers: [] });
    };
    for (const d of devices) await createDevice(d);

    const attrs: LeaseAttrs = { publicIP: ext.extAddr ?? IP4.fromNumber(0), backendType: "wireguard" };
    if (config.enableIPv4) attrs.backendData = encodeWgData({ publicKey: pub, port: cfg.listenPort });
    if (config.enableIPv6) {
      if (ext.extV6Addr) attrs.publicIPv6 = ext.extV6Addr;
      attrs.backendV6Data = encodeWgData({ publicKey: pub, port: cfg.listenPortV6 });
    }
    const lease = await acquireLease(ctx, attrs);

    const devFor = (f: 4 | 6) => devices.find((d) => d.families.includes(f))!;
    const ensureDevicesAndAddresses = async () => {
      for (const d of devices) {
        if (!(await kernel.linkGet(d.name))) {
          log.warn(`${d.name} is gone; recreating it`);
          await createDevice(d);
        }
        if (d.families.includes(4)) {
          await ensureDeviceAddress(kernel, d.name, new IP4Net(lease.subnet.ip, 32), config.network);
        }
        if (d.families.includes(6) && lease.ipv6Subnet) {
          await ensureDeviceAddress(kernel, d.name, new IP6Net(lease.ipv6Subnet.ip, 128), config.ipv6Network);
        }
        const link = await kernel.linkGet(d.name);
        if (link && !link.up) await kernel.linkSet(d.name, { up: true });
      }
    };
    await ensureDevicesAndAddresses();

    const names = devices.map((d) => d.name);
    const warned = new Set<string>();
    const warnOnce = (k: string, msg: string) => {
      if (!warned.has(k)) {
        warned.add(k);
        log.warn(msg);
      }
    };
    /** Last handshake (seconds since the epoch, 0: never) of each device's peers, as of the last pass. */
    const handshakes = new Map<string, number[]>();
    const pass = async (leases: ReadonlyMap<string, Lease>) => {
      await ensureDevicesAndAddresses();
      const want = desiredPeers(cfg, devices, ext, leases, warnOnce, pub);
      for (const d of devices) {
        await syncPeers(driver!, d.name, want.get(d.name) ?? [], log, (peers) => {
          // Only peers we keep count; one removed in this pass is gone from the next read.
          const wanted = new Set((want.get(d.name) ?? []).map((p) => hex(p.publicKey)));
          handshakes.set(
            d.name,
            peers.filter((p) => wanted.has(hex(p.publicKey))).map((p) => p.lastHandshake ?? 0),
          );
        });
      }
      const routes: Route[] = [];
      if (config.enableIPv4 && config.network) {
        routes.push({ dst: config.network, dev: devFor(4).name, scope: "link", protocol: RTPROT_FLANNEL });
      }
      if (config.enableIPv6 && config.ipv6Network) {
        routes.push({
          dst: config.ipv6Network,
          dev: devFor(6).name,
          scope: "link",
          protocol: RTPROT_FLANNEL,
        });
      }
      const result = await reconcile(kernel, { routes, neighs: [], fdbs: [] }, {
        devices: [],
        route: (r) =>
          r.protocol === RTPROT_FLANNEL ||
          (r.dev !== undefined && names.includes(r.dev) && r.protocol !== RTPROT_KERNEL),
      }, log);
      ctx.onReconcile?.(result);
    };
    const interesting = (e: KernelEvent) =>
      (e.kind === "link" && names.includes(e.link.name)) ||
      (e.kind === "route" && e.op === "del" && e.route.dev !== undefined && names.includes(e.route.dev)) ||
      (e.kind === "addr" && e.op === "del" && names.includes(e.addr.dev));

    return {
      lease,
      mtu,
      reconciles: true,
      run: (batches, signal) =>
        runNetLoop({ kernel, log, clock: ctx.clock, pass, interesting }, batches, signal),
      collectMetrics(sink) {
        // Counts, not a series per peer: 5000 nodes must not mean 5000 series on every node.
        const now = ctx.clock.now() / 1000;
        const help = "WireGuard peers by their last handshake (as of the last reconcile pass): " +
          `within ${HANDSHAKE_RECENT_S} s, older, or never`;
        for (const [device, times] of handshakes) {
          const recent = times.filter((t) => t > 0 && now - t <= HANDSHAKE_RECENT_S).length;
          const never = times.filter((t) => t === 0).length;
          sink.set("flannel_wireguard_peers", help, recent, { device, handshake: "recent" });
          sink.set("flannel_wireguard_peers", help, times.length - recent - never, {
            device,
            handshake: "old",
          });
          sink.set("flannel_wireguard_peers", help, never, { device, handshake: "never" });
        }
      },
      async close() {
        // Upstream removes its WireGuard devices at shutdown.
        for (const d of devices) {
          await driver?.remove(d.name).catch((e) => log.warn(`Removing ${d.name}: ${(e as Error).message}`));
        }
      },
    };
  },
};

/**
 * A handshake this recent means the tunnel works: WireGuard re-keys every 2 minutes while traffic
 * flows (REKEY_AFTER_TIME) and gives up on a session after 3 (REJECT_AFTER_TIME).
 */
export const HANDSHAKE_RECENT_S = 180;

/** The peers each device should have, from the leases. */
export function desiredPeers(
  cfg: WgConfig,
  devices: Device[],
  ext: { extAddr?: IP4; extV6Addr?: IP6 },
  leases: ReadonlyMap<string, Lease>,
  warnOnce: (key: string, msg: string) => void,
  ownKey?: Uint8Array,
): Map<string, WgPeer[]> {
  const out = new Map<string, WgPeer[]>(devices.map((d) => [d.name, []]));
  const decode = (l: Lease, text: string | undefined, fam: 4 | 6) => {
    if (!text) return undefined;
    try {
      return decodeWgData(text);
    } catch (e) {
      warnOnce(`${l.subnet}|${fam}|${text}`, `Skipping the lease of ${l.subnet}: ${(e as Error).message}`);
      return undefined;
    }
  };
  const base = (k: Uint8Array): WgPeer => ({
    publicKey: k,
    replaceAllowedIPs: true,
    persistentKeepalive: cfg.persistentKeepalive,
    ...(cfg.psk ? { presharedKey: cfg.psk } : {}),
  });
  for (const l of leases.values()) {
    if (l.attrs.backendType !== "wireguard") continue;
    const d4 = decode(l, l.attrs.backendData, 4);
    const d6 = decode(l, l.attrs.backendV6Data, 6);
    if (ownKey && [d4, d6].some((d) => d && hex(d.publicKey) === hex(ownKey))) {
      warnOnce(
        `${l.subnet}|same-key`,
        `The node of ${l.subnet} (PublicIP ${l.attrs.publicIP}) has this node's WireGuard public key; ` +
          "was the key file copied between nodes? Delete it on one of them and restart that node",
      );
      continue;
    }
    if (cfg.mode === "separate") {
      for (const d of devices) {
        const fam = d.families[0]!;
        const data = fam === 4 ? d4 : d6;
        const ip: IP | undefined = fam === 4 ? l.attrs.publicIP : l.attrs.publicIPv6;
        const subnet: IPNet | undefined = fam === 4 ? l.subnet : l.ipv6Subnet;
        if (!data || !ip || !subnet || (fam === 4 && l.attrs.publicIP.isUnspecified())) continue;
        out.get(d.name)!.push({
          ...base(data.publicKey),
          endpoint: { ip, port: data.port || d.port },
          allowedIPs: [subnet],
        });
      }
      continue;
    }
    const d = devices[0]!;
    const data = d6 ?? d4;
    if (!data) continue;
    const allowed: IPNet[] = [];
    if (d.families.includes(4)) allowed.push(l.subnet);
    if (d.families.includes(6) && l.ipv6Subnet) allowed.push(l.ipv6Subnet);
    const useV6 = cfg.mode === "ipv6" ||
      (cfg.mode === "auto" && l.attrs.publicIPv6 !== undefined &&
        (l.attrs.publicIP.isPrivate() || !ext.extAddr) && !l.attrs.publicIPv6.isULA() &&
        ext.extV6Addr !== undefined && !ext.extV6Addr.isULA());
    const endpointIP: IP | undefined = useV6 ? l.attrs.publicIPv6 : l.attrs.publicIP;
    const port = useV6 ? (d6?.port || d.port) : (d4?.port || d.port);
    out.get(d.name)!.push({
      ...base(data.publicKey),
      ...(endpointIP ? { endpoint: { ip: endpointIP, port } } : {}),
      allowedIPs: allowed,
    });
  }
  return out;
}

/** Applies the difference between the device's peers and `want` in one configure call. */
async function syncPeers(
  driver: WgDriver,
  name: string,
  want: WgPeer[],
  log: { v(n: number, m: string): void },
  /** Hears the device's peers as read (for /metrics: their handshakes). */
  onRead?: (peers: WgPeer[]) => void,
): Promise<void> {
  const have = await driver.get(name);
  onRead?.(have?.peers ?? []);
  const haveBy = new Map((have?.peers ?? []).map((p) => [hex(p.publicKey), p]));
  const wantBy = new Map(want.map((p) => [hex(p.publicKey), p]));
  const changes: WgPeer[] = [];
  for (const [k, p] of haveBy) if (!wantBy.has(k)) changes.push({ publicKey: p.publicKey, remove: true });
  for (const [k, p] of wantBy) {
    const h = haveBy.get(k);
    const same = h &&
      String(h.endpoint?.ip ?? "") === String(p.endpoint?.ip ?? "") &&
      (h.endpoint?.port ?? 0) === (p.endpoint?.port ?? 0) &&
      sortedNets(h.allowedIPs) === sortedNets(p.allowedIPs) &&
      (h.persistentKeepalive ?? 0) === (p.persistentKeepalive ?? 0) &&
      hex(h.presharedKey ?? new Uint8Array()) === hex(p.presharedKey ?? new Uint8Array());
    if (!same) changes.push(p);
  }
  if (changes.length === 0) return;
  log.v(2, `Updating ${changes.length} WireGuard peers on ${name}`);
  await driver.configure(name, { peers: changes });
}

function sortedNets(nets: IPNet[] | undefined): string {
  return (nets ?? []).map(String).sort().join(",");
}

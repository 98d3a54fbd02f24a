/**
 * The kernel operations the backends use, in `ip`'s terms rather than netlink's. Two
 * implementations: the real one over our netlink codec and transport, and a fake kernel for
 * backend unit tests (tests/fakes/fake_kernel.ts) that renders its state as sorted `ip`/`bridge`
 * lines. Backends compute desired state and reconcile it through this interface only.
 *
 * Optional fields mean "not specified": on input, not sent (the kernel default applies); on
 * output, not reported.
 *
 * @module
 */
import type { IP4, IP4Net, IP6, IP6Net } from "../ip/mod.ts";

/** An address of either family. */
export type IP = IP4 | IP6;
/** A network (address and prefix length; host bits significant for interface addresses). */
export type IPNet = IP4Net | IP6Net;

/** VXLAN device attributes (IFLA_VXLAN_*), as flannel uses them. */
export interface VxlanAttrs {
  vni: number;
  /** Underlay source address (IFLA_VXLAN_LOCAL / LOCAL6). */
  local?: IP;
  /** Underlay device index (IFLA_VXLAN_LINK). */
  link?: number;
  /** UDP destination port; 0 or absent: the kernel's default (8472 on Linux). */
  port?: number;
  learning?: boolean;
  gbp?: boolean;
  ttl?: number;
  l2miss?: boolean;
  l3miss?: boolean;
  /** Multicast group or remote (IFLA_VXLAN_GROUP / GROUP6). */
  group?: IP;
}

/** IPIP tunnel attributes (IFLA_IPTUN_*). */
export interface IpipAttrs {
  local?: IP4;
  remote?: IP4;
  ttl?: number;
  pmtudisc?: boolean;
}

/** A link, as created (input) or observed (output). */
export interface Link {
  name: string;
  /** Output only. */
  index?: number;
  /** `vxlan`, `veth`, `bridge`, `tun`, `wireguard`, `ipip`, …; absent for physical devices. */
  kind?: string;
  mtu?: number;
  /** MAC address, lower case `aa:bb:cc:dd:ee:ff`. */
  address?: string;
  /** Administratively up (IFF_UP). */
  up?: boolean;
  /** Master device index (bridge port). */
  master?: number;
  vxlan?: VxlanAttrs;
  ipip?: IpipAttrs;
  /** veth: the peer's name, created with the link (input only). */
  vethPeer?: string;
}

/** Changes to an existing link; only the given fields are applied. */
export interface LinkChange {
  up?: boolean;
  mtu?: number;
  address?: string;
}

/** An interface address. */
export interface Addr {
  /** Device name. */
  dev: string;
  /** The address with its prefix length (`10.5.34.0/32`). */
  addr: IPNet;
  /** Output only: IFA_F_* derived facts. */
  permanent?: boolean;
  /** Output only: an IPv6 privacy address (IFA_F_TEMPORARY; the same bit means "secondary" in IPv4). */
  temporary?: boolean;
  /** Output only: its preferred lifetime ran out (IFA_F_DEPRECATED). */
  deprecated?: boolean;
  scope?: "global" | "link" | "host" | "site";
}

/** Route type (RTN_*). */
export type RouteType =
  | "unicast"
  | "blackhole"
  | "unreachable"
  | "prohibit"
  | "local"
  | "broadcast"
  | "multicast";

/** A route. Identity (for replace/delete) is (table, dst, metric, type). */
export interface Route {
  dst: IPNet;
  gateway?: IP;
  /** Device name. */
  dev?: string;
  onlink?: boolean;
  /** RTPROT_* number; flannel marks its routes with its own (see the reconciler). */
  protocol?: number;
  /** Main table (254) when absent. */
  table?: number;
  scope?: "universe" | "link" | "host";
  type?: RouteType;
  /** Preferred source (RTA_PREFSRC). */
  src?: IP;
  metric?: number;
  /** Output only: the devices of a multipath route's next hops, in order (it has no `dev`). */
  nexthopDevs?: string[];
}

/** A neighbour (ARP/NDP) entry. */
export interface Neigh {
  dev: string;
  ip: IP;
  mac: string;
  /** NUD_PERMANENT when true. */
  permanent?: boolean;
}

/** A bridge forwarding-database entry on a VXLAN device (`bridge fdb … self dst …`). */
export interface Fdb {
  dev: string;
  mac: string;
  dst: IP;
  /** NTF_SELF; flannel's entries always have it. */
  self?: boolean;
  permanent?: boolean;
}

/** The result of an `ip route get` lookup. */
export interface RouteLookup {
  dev: string;
  gateway?: IP;
  src?: IP;
}

/** A WireGuard peer (configure: only set fields are applied). */
export interface WgPeer {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  endpoint?: { ip: IP; port: number };
  persistentKeepalive?: number;
  allowedIPs?: IPNet[];
  /** Replace this peer's allowed IPs instead of adding to them. */
  replaceAllowedIPs?: boolean;
  remove?: boolean;
  /** Output only. */
  lastHandshake?: number;
}

/** A WireGuard device configuration. */
export interface WgConfig {
  privateKey?: Uint8Array;
  listenPort?: number;
  /** Replace all peers with `peers` instead of merging. */
  replacePeers?: boolean;
  peers?: WgPeer[];
}

/** A WireGuard device as read back. */
export interface WgDevice {
  name: string;
  publicKey?: Uint8Array;
  listenPort?: number;
  peers: WgPeer[];
}

/** An ESP tunnel-mode xfrm policy, as the ipsec backend installs them. */
export interface XfrmPolicy {
  src: IPNet;
  dst: IPNet;
  dir: "in" | "out" | "fwd";
  /** Template: the tunnel endpoints, ESP, reqid. */
  tmplSrc: IP;
  tmplDst: IP;
  reqid: number;
}

/** A change the kernel announced (link/addr/route/neigh multicast groups). */
export type KernelEvent =
  | { kind: "link"; op: "new" | "del"; link: Link }
  | { kind: "addr"; op: "new" | "del"; addr: Addr }
  | { kind: "route"; op: "new" | "del"; route: Route }
  | { kind: "neigh"; op: "new" | "del"; neigh: Neigh }
  /** Events were lost (socket buffer overrun): resynchronise from a full dump. */
  | { kind: "overrun" };

/** The operations. Errors are `NetlinkError`s (op text, errno name, the kernel's message). */
export interface KernelOps {
  linkList(): Promise<Link[]>;
  /** The link by name, or undefined. */
  linkGet(name: string): Promise<Link | undefined>;
  linkAdd(link: Link): Promise<void>;
  linkSet(name: string, change: LinkChange): Promise<void>;
  linkDel(name: string): Promise<void>;

  addrList(dev?: string): Promise<Addr[]>;
  addrAdd(a: Addr): Promise<void>;
  addrDel(a: Addr): Promise<void>;

  /** Routes of one table (main when absent), both families. */
  routeList(table?: number): Promise<Route[]>;
  routeReplace(r: Route): Promise<void>;
  routeDel(r: Route): Promise<void>;
  routeGet(dst: IP): Promise<RouteLookup | undefined>;

  neighList(dev?: string): Promise<Neigh[]>;
  neighReplace(n: Neigh): Promise<void>;
  neighDel(n: Neigh): Promise<void>;

  fdbList(dev?: string): Promise<Fdb[]>;
  fdbReplace(f: Fdb): Promise<void>;
  fdbDel(f: Fdb): Promise<void>;

  wgGet(name: string): Promise<WgDevice | undefined>;
  wgConfigure(name: string, cfg: WgConfig): Promise<void>;

  xfrmPolicyList(): Promise<XfrmPolicy[]>;
  xfrmPolicyReplace(p: XfrmPolicy): Promise<void>;
  xfrmPolicyDel(p: XfrmPolicy): Promise<void>;

  /** Kernel change notifications until the signal aborts. */
  events(signal: AbortSignal): AsyncIterable<KernelEvent>;
}

/** The main routing table (RT_TABLE_MAIN). */
export const MAIN_TABLE = 254;

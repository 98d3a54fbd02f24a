/**
 * {@linkcode KernelOps} on the real kernel: our rtnetlink codec over our netlink transport.
 * The transport is passed in (`openNetlink` of the runtime), so this file is the same under Deno
 * and Node. Requests are serialised on one socket; events come from a socket of their own.
 *
 * @module
 */
import { IP4, IP4Net, IP6Net } from "../ip/mod.ts";
import type { Logger } from "../log/logger.ts";
import {
  isErrno,
  NETLINK_GENERIC,
  NETLINK_ROUTE,
  NETLINK_XFRM,
  NetlinkError,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  type NlMsg,
} from "./codec/mod.ts";
import * as genl from "./genl/mod.ts";
import * as xfrm from "./xfrm/mod.ts";
import { linkData } from "./link_kinds/mod.ts";
import * as rt from "./route/mod.ts";
import type { NetlinkSocket, OpenNetlink } from "./transport/mod.ts";
import { isEventsLost } from "./transport/mod.ts";
import type {
  Addr,
  Fdb,
  IP,
  IPNet,
  KernelEvent,
  KernelOps,
  Link,
  LinkChange,
  Neigh,
  Route,
  RouteLookup,
  RouteType,
  WgConfig,
  WgDevice,
  XfrmPolicy,
} from "./ops.ts";
import { MAIN_TABLE } from "./ops.ts";

const ROUTE_TYPES: Record<number, RouteType> = {
  [rt.RTN_UNICAST]: "unicast",
  [rt.RTN_LOCAL]: "local",
  [rt.RTN_BROADCAST]: "broadcast",
  [rt.RTN_MULTICAST]: "multicast",
  [rt.RTN_BLACKHOLE]: "blackhole",
  [rt.RTN_UNREACHABLE]: "unreachable",
  [rt.RTN_PROHIBIT]: "prohibit",
};
const ROUTE_TYPE_NUM = Object.fromEntries(
  Object.entries(ROUTE_TYPES).map(([n, t]) => [t, Number(n)]),
) as Record<RouteType, number>;
const SCOPES: Record<string, number> = {
  universe: rt.RT_SCOPE_UNIVERSE,
  link: rt.RT_SCOPE_LINK,
  host: rt.RT_SCOPE_HOST,
  site: rt.RT_SCOPE_SITE,
};

/** Turns a kernel refusal of a device type into a hint naming the missing module. */
function kindHint(kind: string | undefined, e: unknown): never {
  if (kind && isErrno(e, "EOPNOTSUPP")) {
    const err = e as NetlinkError;
    throw new NetlinkError({
      op: err.op,
      errno: err.errno,
      kernelMessage: err.kernelMessage,
      hint:
        `this kernel has no ${kind} support (module ${kind}); load it with modprobe ${kind} or pick another backend`,
      cause: e,
    });
  }
  throw e;
}

const netOf = (ip: IP, len: number): IPNet => (ip instanceof IP4 ? new IP4Net(ip, len) : new IP6Net(ip, len));

/** Options of {@linkcode NetlinkKernel}. */
export interface NetlinkKernelOptions {
  open: OpenNetlink;
  /** Work inside this named network namespace (tests). */
  netns?: string;
  log: Logger;
}

/** The real kernel. `close()` releases the sockets. */
export class NetlinkKernel implements KernelOps {
  readonly #opts: NetlinkKernelOptions;
  #sock: NetlinkSocket | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  readonly #names = new Map<number, string>();

  constructor(opts: NetlinkKernelOptions) {
    this.#opts = opts;
  }

  #socket(): NetlinkSocket {
    this.#sock ??= this.#opts.open(NETLINK_ROUTE, {
      log: this.#opts.log,
      ...(this.#opts.netns ? { netns: this.#opts.netns } : {}),
    });
    return this.#sock;
  }

  /** One request at a time on the shared socket. */
  #serial<T>(fn: (s: NetlinkSocket) => Promise<T>): Promise<T> {
    const next = this.#queue.then(() => fn(this.#socket()));
    this.#queue = next.catch(() => {});
    return next;
  }

  #request(type: number, flags: number, payload: Uint8Array, op: string): Promise<NlMsg[]> {
    return this.#serial((s) => s.request({ type, flags, payload }, { op }));
  }

  #dump(type: number, payload: Uint8Array, op: string): Promise<NlMsg[]> {
    return this.#serial((s) => s.dump({ type, payload }, { op }));
  }

  close(): void {
    for (const s of [this.#sock, this.#genl, this.#xfrm]) s?.close();
    this.#sock = this.#genl = this.#xfrm = undefined;
  }

  // ---- links -------------------------------------------------------------------------------
  #toLink(l: rt.Link): Link {
    const out: Link = { name: l.name ?? `if${l.index}`, index: l.index, up: (l.flags & rt.IFF_UP) !== 0 };
    this.#names.set(l.index, out.name);
    if (l.linkinfo?.kind) out.kind = l.linkinfo.kind;
    if (l.mtu !== undefined) out.mtu = l.mtu;
    if (l.address && l.address.length === 6) out.address = rt.formatMac(l.address);
    if (l.master) out.master = l.master;
    const vx = linkData(l, "vxlan");
    if (vx) {
      out.vxlan = { vni: vx.id ?? 0 };
      const local = vx.local ?? vx.local6;
      if (local) out.vxlan.local = local;
      if (vx.link !== undefined) out.vxlan.link = vx.link;
      if (vx.port !== undefined) out.vxlan.port = vx.port;
      if (vx.learning !== undefined) out.vxlan.learning = vx.learning;
      out.vxlan.gbp = vx.gbp === true;
      if (vx.ttl !== undefined) out.vxlan.ttl = vx.ttl;
      if (vx.l2miss !== undefined) out.vxlan.l2miss = vx.l2miss;
      if (vx.l3miss !== undefined) out.vxlan.l3miss = vx.l3miss;
      const group = vx.group ?? vx.group6;
      if (group && !group.isUnspecified()) out.vxlan.group = group;
    }
    const ipip = linkData(l, "ipip");
    if (ipip) {
      out.ipip = {};
      if (ipip.local) out.ipip.local = ipip.local;
      if (ipip.remote) out.ipip.remote = ipip.remote;
      if (ipip.ttl !== undefined) out.ipip.ttl = ipip.ttl;
      if (ipip.pmtudisc !== undefined) out.ipip.pmtudisc = ipip.pmtudisc;
    }
    return out;
  }

  async linkList(): Promise<Link[]> {
    const msgs = await this.#dump(
      rt.RTM_GETLINK,
      rt.encodeLinkMessage({ family: rt.AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0 }),
      "list links",
    );
    return msgs.filter((m) => m.type === rt.RTM_NEWLINK).map((m) =>
      this.#toLink(rt.decodeLinkMessage(m.payload))
    );
  }

  async linkGet(name: string): Promise<Link | undefined> {
    try {
      const msgs = await this.#request(
        rt.RTM_GETLINK,
        0,
        rt.encodeLinkMessage({ family: rt.AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0, name }),
        `get link ${name}`,
      );
      const m = msgs.find((m) => m.type === rt.RTM_NEWLINK);
      return m && this.#toLink(rt.decodeLinkMessage(m.payload));
    } catch (e) {
      if (isErrno(e, "ENODEV")) return undefined;
      throw e;
    }
  }

  async #index(name: string, op: string): Promise<number> {
    const l = await this.linkGet(name);
    if (!l?.index) throw new NetlinkError({ op, errno: 19, hint: `no device named ${name}` });
    return l.index;
  }

  async #name(index: number): Promise<string | undefined> {
    if (!this.#names.has(index)) await this.linkList();
    return this.#names.get(index);
  }

  async linkAdd(link: Link): Promise<void> {
    const op = `add link ${link.name} type ${link.kind ?? "?"}`;
    const msg: rt.Link = {
      family: rt.AF_UNSPEC,
      type: 0,
      index: 0,
      flags: link.up ? rt.IFF_UP : 0,
      change: link.up ? rt.IFF_UP : 0,
      name: link.name,
    };
    if (link.mtu !== undefined) msg.mtu = link.mtu;
    if (link.address) msg.address = rt.parseMac(link.address);
    if (link.kind) {
      msg.linkinfo = { kind: link.kind };
      if (link.vxlan) {
        const v = link.vxlan;
        const data: rt.Link["linkinfo"] extends infer _ ? Record<string, unknown> : never = { id: v.vni };
        if (v.local instanceof IP4) data.local = v.local;
        else if (v.local) data.local6 = v.local;
        if (v.link !== undefined) data.link = v.link;
        if (v.port) data.port = v.port;
        if (v.learning !== undefined) data.learning = v.learning;
        if (v.gbp) data.gbp = true;
        if (v.ttl !== undefined) data.ttl = v.ttl;
        if (v.l2miss !== undefined) data.l2miss = v.l2miss;
        if (v.l3miss !== undefined) data.l3miss = v.l3miss;
        msg.linkinfo.data = data as never;
      } else if (link.ipip) {
        const data: Record<string, unknown> = {};
        if (link.ipip.local) data.local = link.ipip.local;
        if (link.ipip.remote) data.remote = link.ipip.remote;
        if (link.ipip.ttl !== undefined) data.ttl = link.ipip.ttl;
        if (link.ipip.pmtudisc !== undefined) data.pmtudisc = link.ipip.pmtudisc;
        msg.linkinfo.data = data as never;
      } else if (link.vethPeer) {
        msg.linkinfo.data = {
          peer: { family: rt.AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0, name: link.vethPeer },
        } as never;
      }
    }
    await this.#request(rt.RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, rt.encodeLinkMessage(msg), op).catch((e) =>
      kindHint(link.kind, e)
    );
  }

  async linkSet(name: string, change: LinkChange): Promise<void> {
    const op = `set link ${name}`;
    const index = await this.#index(name, op);
    const msg: rt.Link = { family: rt.AF_UNSPEC, type: 0, index, flags: 0, change: 0 };
    if (change.up !== undefined) {
      msg.flags = change.up ? rt.IFF_UP : 0;
      msg.change = rt.IFF_UP;
    }
    if (change.mtu !== undefined) msg.mtu = change.mtu;
    if (change.address) msg.address = rt.parseMac(change.address);
    await this.#request(rt.RTM_NEWLINK, 0, rt.encodeLinkMessage(msg), op);
  }

  async linkDel(name: string): Promise<void> {
    await this.#request(
      rt.RTM_DELLINK,
      0,
      rt.encodeLinkMessage({ family: rt.AF_UNSPEC, type: 0, index: 0, flags: 0, change: 0, name }),
      `delete link ${name}`,
    );
  }

  // ---- addresses -----------------------------------------------------------------------------
  async addrList(dev?: string): Promise<Addr[]> {
    const index = dev === undefined ? undefined : (await this.linkGet(dev))?.index;
    if (dev !== undefined && index === undefined) return [];
    const msgs = await this.#dump(
      rt.RTM_GETADDR,
      rt.encodeAddrMessage({ family: rt.AF_UNSPEC, prefixLen: 0, flags: 0, scope: 0, index: index ?? 0 }),
      `list addresses${dev ? ` dev ${dev}` : ""}`,
    );
    const out: Addr[] = [];
    for (const m of msgs) {
      if (m.type !== rt.RTM_NEWADDR) continue;
      const a = rt.decodeAddrMessage(m.payload);
      if (index !== undefined && a.index !== index) continue;
      const ip = a.local ?? a.address;
      if (!ip) continue;
      const name = await this.#name(a.index);
      if (!name) continue;
      const flags = a.extFlags ?? a.flags;
      out.push({
        dev: name,
        addr: netOf(ip, a.prefixLen),
        permanent: (flags & rt.IFA_F_PERMANENT) !== 0,
        ...(a.family === rt.AF_INET6 && (flags & rt.IFA_F_SECONDARY) !== 0 ? { temporary: true } : {}),
        ...((flags & rt.IFA_F_DEPRECATED) !== 0 ? { deprecated: true } : {}),
        scope: a.scope === rt.RT_SCOPE_LINK
          ? "link"
          : a.scope === rt.RT_SCOPE_HOST
          ? "host"
          : a.scope === rt.RT_SCOPE_SITE
          ? "site"
          : "global",
      });
    }
    return out;
  }

  async #addr(type: number, flags: number, a: Addr, op: string): Promise<void> {
    const index = await this.#index(a.dev, op);
    const ip = a.addr.ip;
    await this.#request(
      type,
      flags,
      rt.encodeAddrMessage({
        family: rt.familyOf(ip),
        prefixLen: a.addr.prefixLen,
        flags: 0,
        scope: rt.RT_SCOPE_UNIVERSE,
        index,
        local: ip,
        address: ip,
      }),
      op,
    );
  }
  addrAdd(a: Addr): Promise<void> {
    return this.#addr(rt.RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, a, `add address ${a.addr} dev ${a.dev}`);
  }
  addrDel(a: Addr): Promise<void> {
    return this.#addr(rt.RTM_DELADDR, 0, a, `delete address ${a.addr} dev ${a.dev}`);
  }

  // ---- routes --------------------------------------------------------------------------------
  async #toRoute(r: rt.Route): Promise<Route> {
    const dst = r.dst ?? (r.family === rt.AF_INET ? IP4.fromNumber(0) : IP6Net.parse("::/0").ip);
    const out: Route = { dst: netOf(dst, r.dstLen) };
    if (r.gateway) out.gateway = r.gateway;
    if (r.oif !== undefined) {
      const name = await this.#name(r.oif);
      if (name) out.dev = name;
    }
    if (r.multipath?.length) {
      // A multipath route (or a nexthop group, reported the same way) has its devices per path.
      const devs: string[] = [];
      for (const nh of r.multipath) {
        const name = await this.#name(nh.ifindex);
        if (name && !devs.includes(name)) devs.push(name);
      }
      if (devs.length) out.nexthopDevs = devs;
    }
    if (r.flags & rt.RTNH_F_ONLINK) out.onlink = true;
    out.protocol = r.protocol;
    const table = r.tableId ?? r.table;
    if (table !== MAIN_TABLE) out.table = table;
    if (r.scope === rt.RT_SCOPE_LINK) out.scope = "link";
    else if (r.scope === rt.RT_SCOPE_HOST) out.scope = "host";
    const type = ROUTE_TYPES[r.type];
    if (type && type !== "unicast") out.type = type;
    if (r.prefsrc) out.src = r.prefsrc;
    if (r.priority) out.metric = r.priority;
    return out;
  }

  async routeList(table = MAIN_TABLE): Promise<Route[]> {
    const out: Route[] = [];
    for (const family of [rt.AF_INET, rt.AF_INET6]) {
      const req: rt.Route = {
        family,
        dstLen: 0,
        srcLen: 0,
        tos: 0,
        table: 0,
        protocol: 0,
        scope: 0,
        type: 0,
        flags: 0,
      };
      const msgs = await this.#dump(rt.RTM_GETROUTE, rt.encodeRouteMessage(req), "list routes");
      for (const m of msgs) {
        if (m.type !== rt.RTM_NEWROUTE) continue;
        const r = rt.decodeRouteMessage(m.payload);
        if ((r.tableId ?? r.table) !== table || (r.flags & rt.RTM_F_CLONED)) continue;
        out.push(await this.#toRoute(r));
      }
    }
    return out;
  }

  async #routeMsg(r: Route, op: string, del: boolean): Promise<rt.Route> {
    const ip = r.dst.ip;
    const table = r.table ?? MAIN_TABLE;
    const type = r.type ?? "unicast";
    const msg: rt.Route = {
      family: rt.familyOf(ip),
      dstLen: r.dst.prefixLen,
      srcLen: 0,
      tos: 0,
      table: table < 256 ? table : 0,
      protocol: del ? (r.protocol ?? 0) : (r.protocol ?? rt.RTPROT_BOOT),
      scope: del
        ? rt.RT_SCOPE_NOWHERE
        : r.scope !== undefined
        ? SCOPES[r.scope]!
        : (type === "unicast" && !r.gateway && r.dev ? rt.RT_SCOPE_LINK : rt.RT_SCOPE_UNIVERSE),
      type: ROUTE_TYPE_NUM[type],
      flags: r.onlink ? rt.RTNH_F_ONLINK : 0,
      dst: r.dst.network().ip,
    };
    if (table >= 256) msg.tableId = table;
    if (r.gateway) msg.gateway = r.gateway;
    if (r.dev) msg.oif = await this.#index(r.dev, op);
    if (r.src) msg.prefsrc = r.src;
    if (r.metric) msg.priority = r.metric;
    return msg;
  }

  async routeReplace(r: Route): Promise<void> {
    const op = `replace route ${describe(r)}`;
    await this.#request(
      rt.RTM_NEWROUTE,
      NLM_F_CREATE | NLM_F_REPLACE,
      rt.encodeRouteMessage(await this.#routeMsg(r, op, false)),
      op,
    );
  }

  async routeDel(r: Route): Promise<void> {
    const op = `delete route ${describe(r)}`;
    await this.#request(rt.RTM_DELROUTE, 0, rt.encodeRouteMessage(await this.#routeMsg(r, op, true)), op);
  }

  async routeGet(dst: IP): Promise<RouteLookup | undefined> {
    try {
      const msgs = await this.#request(
        rt.RTM_GETROUTE,
        0,
        rt.encodeRouteMessage(rt.routeLookupRequest({ dst })),
        `get route to ${dst}`,
      );
      const m = msgs.find((m) => m.type === rt.RTM_NEWROUTE);
      if (!m) return undefined;
      const r = rt.decodeRouteMessage(m.payload);
      const dev = r.oif !== undefined ? await this.#name(r.oif) : undefined;
      if (!dev) return undefined;
      const out: RouteLookup = { dev };
      if (r.gateway) out.gateway = r.gateway;
      if (r.prefsrc) out.src = r.prefsrc;
      return out;
    } catch (e) {
      if (isErrno(e, "ENETUNREACH", "EHOSTUNREACH")) return undefined;
      throw e;
    }
  }

  // ---- neighbours and FDB -----------------------------------------------------------------------
  async #neighDump(
    family: number,
    dev: string | undefined,
    op: string,
  ): Promise<{ n: rt.Neigh; dev: string }[]> {
    const index = dev === undefined ? 0 : (await this.linkGet(dev))?.index;
    if (index === undefined) return [];
    // Strict dump checking wants an all-zero ndmsg for ARP/NDP dumps, the device in NDA_IFINDEX;
    // FDB dumps take it in ndm_ifindex.
    const req: rt.Neigh = family === rt.AF_BRIDGE
      ? { family, index, state: 0, flags: 0, type: 0 }
      : { family, index: 0, state: 0, flags: 0, type: 0, ...(index ? { remoteIfindex: index } : {}) };
    const msgs = await this.#dump(rt.RTM_GETNEIGH, rt.encodeNeighMessage(req), op);
    const out: { n: rt.Neigh; dev: string }[] = [];
    for (const m of msgs) {
      if (m.type !== rt.RTM_NEWNEIGH) continue;
      const n = rt.decodeNeighMessage(m.payload);
      if (index && n.index !== index) continue;
      const name = await this.#name(n.index);
      if (name) out.push({ n, dev: name });
    }
    return out;
  }

  async neighList(dev?: string): Promise<Neigh[]> {
    const out: Neigh[] = [];
    for (const family of [rt.AF_INET, rt.AF_INET6]) {
      for (
        const { n, dev: d } of await this.#neighDump(
          family,
          dev,
          `list neighbours${dev ? ` dev ${dev}` : ""}`,
        )
      ) {
        if (!n.dst || !n.lladdr || n.lladdr.length !== 6) continue;
        out.push({
          dev: d,
          ip: n.dst,
          mac: rt.formatMac(n.lladdr),
          permanent: (n.state & rt.NUD_PERMANENT) !== 0,
        });
      }
    }
    return out;
  }

  async neighReplace(n: Neigh): Promise<void> {
    const op = `replace neighbour ${n.ip} dev ${n.dev}`;
    const index = await this.#index(n.dev, op);
    await this.#request(
      rt.RTM_NEWNEIGH,
      NLM_F_CREATE | NLM_F_REPLACE,
      rt.encodeNeighMessage({
        family: rt.familyOf(n.ip),
        index,
        state: n.permanent ? rt.NUD_PERMANENT : rt.NUD_REACHABLE,
        flags: 0,
        type: 0,
        dst: n.ip,
        lladdr: rt.parseMac(n.mac),
      }),
      op,
    );
  }

  async neighDel(n: Neigh): Promise<void> {
    const op = `delete neighbour ${n.ip} dev ${n.dev}`;
    const index = await this.#index(n.dev, op);
    await this.#request(
      rt.RTM_DELNEIGH,
      0,
      rt.encodeNeighMessage({ family: rt.familyOf(n.ip), index, state: 0, flags: 0, type: 0, dst: n.ip }),
      op,
    );
  }

  async fdbList(dev?: string): Promise<Fdb[]> {
    const out: Fdb[] = [];
    for (
      const { n, dev: d } of await this.#neighDump(rt.AF_BRIDGE, dev, `list fdb${dev ? ` dev ${dev}` : ""}`)
    ) {
      if (!n.dst || !n.lladdr) continue;
      out.push({
        dev: d,
        mac: rt.formatMac(n.lladdr),
        dst: n.dst,
        self: (n.flags & rt.NTF_SELF) !== 0,
        permanent: (n.state & rt.NUD_PERMANENT) !== 0,
      });
    }
    return out;
  }

  async #fdb(type: number, flags: number, f: Fdb, op: string): Promise<void> {
    const index = await this.#index(f.dev, op);
    await this.#request(
      type,
      flags,
      rt.encodeNeighMessage({
        family: rt.AF_BRIDGE,
        index,
        state: rt.NUD_PERMANENT,
        flags: rt.NTF_SELF,
        type: 0,
        lladdr: rt.parseMac(f.mac),
        dst: f.dst,
      }),
      op,
    );
  }
  fdbReplace(f: Fdb): Promise<void> {
    return this.#fdb(
      rt.RTM_NEWNEIGH,
      NLM_F_CREATE | NLM_F_REPLACE,
      f,
      `replace fdb ${f.mac} dev ${f.dev} dst ${f.dst}`,
    );
  }
  fdbDel(f: Fdb): Promise<void> {
    return this.#fdb(rt.RTM_DELNEIGH, 0, f, `delete fdb ${f.mac} dev ${f.dev} dst ${f.dst}`);
  }

  // ---- wireguard (genetlink) and xfrm ---------------------------------------------------------------
  #genl: NetlinkSocket | undefined;
  #xfrm: NetlinkSocket | undefined;
  #wgFamily: number | undefined;
  #otherQueue: Promise<unknown> = Promise.resolve();

  #other<T>(proto: number, fn: (s: NetlinkSocket) => Promise<T>): Promise<T> {
    const open = () =>
      this.#opts.open(proto, {
        log: this.#opts.log,
        ...(this.#opts.netns ? { netns: this.#opts.netns } : {}),
      });
    const next = this.#otherQueue.then(() => {
      if (proto === NETLINK_GENERIC) return fn(this.#genl ??= open());
      return fn(this.#xfrm ??= open());
    });
    this.#otherQueue = next.catch(() => {});
    return next;
  }

  async #wireguardFamily(op: string): Promise<number> {
    if (this.#wgFamily !== undefined) return this.#wgFamily;
    const req = genl.getFamilyRequest("wireguard");
    try {
      const msgs = await this.#other(
        NETLINK_GENERIC,
        (s) =>
          s.request({ type: req.type, flags: 0, payload: req.payload }, {
            op: "get genetlink family wireguard",
          }),
      );
      const m = msgs.find((m) => m.type === req.type);
      if (!m) throw new NetlinkError({ op, errno: 2, hint: "the genetlink controller did not answer" });
      const id = genl.decodeFamily(m.payload).id;
      this.#wgFamily = id;
      return id;
    } catch (e) {
      if (isErrno(e, "ENOENT")) {
        throw new NetlinkError({
          op,
          errno: 95,
          hint: "this kernel has no WireGuard (module wireguard)",
          cause: e,
        });
      }
      throw e;
    }
  }

  async wgGet(name: string): Promise<WgDevice | undefined> {
    const op = `get wireguard device ${name}`;
    const family = await this.#wireguardFamily(op);
    const req = genl.wgGetDeviceRequest(family, { ifname: name });
    let msgs: NlMsg[];
    try {
      msgs = await this.#other(
        NETLINK_GENERIC,
        (s) => s.dump({ type: req.type, payload: req.payload }, { op }),
      );
    } catch (e) {
      if (isErrno(e, "ENODEV")) return undefined;
      throw e;
    }
    const d = genl.decodeWgDevice(msgs);
    const dev: WgDevice = { name, peers: [] };
    if (d.publicKey) dev.publicKey = d.publicKey;
    if (d.listenPort !== undefined) dev.listenPort = d.listenPort;
    for (const p of d.peers ?? []) {
      const peer: WgDevice["peers"][number] = { publicKey: p.publicKey, allowedIPs: p.allowedIps ?? [] };
      if (p.presharedKey && p.presharedKey.some((b) => b !== 0)) peer.presharedKey = p.presharedKey;
      if (p.endpoint) peer.endpoint = { ip: p.endpoint.ip, port: p.endpoint.port };
      if (p.persistentKeepaliveInterval !== undefined) {
        peer.persistentKeepalive = p.persistentKeepaliveInterval;
      }
      if (p.lastHandshakeTime) peer.lastHandshake = Number(p.lastHandshakeTime.sec);
      dev.peers.push(peer);
    }
    return dev;
  }

  async wgConfigure(name: string, cfg: WgConfig): Promise<void> {
    const op = `configure wireguard device ${name}`;
    const family = await this.#wireguardFamily(op);
    const dev: genl.WgDevice = { ifname: name, flags: cfg.replacePeers ? genl.WGDEVICE_F_REPLACE_PEERS : 0 };
    if (cfg.privateKey) dev.privateKey = cfg.privateKey;
    if (cfg.listenPort !== undefined) dev.listenPort = cfg.listenPort;
    dev.peers = (cfg.peers ?? []).map((p) => {
      const peer: genl.WgPeer = {
        publicKey: p.publicKey,
        flags: (p.remove ? genl.WGPEER_F_REMOVE_ME : 0) |
          (p.replaceAllowedIPs ? genl.WGPEER_F_REPLACE_ALLOWEDIPS : 0),
      };
      if (p.remove) return peer;
      if (p.presharedKey) peer.presharedKey = p.presharedKey;
      if (p.endpoint) peer.endpoint = { ip: p.endpoint.ip, port: p.endpoint.port };
      if (p.persistentKeepalive !== undefined) peer.persistentKeepaliveInterval = p.persistentKeepalive;
      if (p.allowedIPs) peer.allowedIps = p.allowedIPs;
      return peer;
    });
    for (const m of genl.wgSetDeviceRequests(family, dev)) {
      await this.#other(
        NETLINK_GENERIC,
        (s) => s.request({ type: m.type, flags: 0, payload: m.payload }, { op }),
      );
    }
  }

  async xfrmPolicyList(): Promise<XfrmPolicy[]> {
    const req = xfrm.dumpPoliciesRequest();
    const msgs = await this.#other(
      NETLINK_XFRM,
      (s) => s.dump({ type: req.type, payload: req.payload }, { op: "list xfrm policies" }),
    );
    const out: XfrmPolicy[] = [];
    for (const m of msgs) {
      if (m.type !== xfrm.XFRM_MSG_NEWPOLICY) continue;
      const p = xfrm.decodePolicy(m.payload);
      const t = p.tmpls?.[0];
      const dir = p.dir === xfrm.XFRM_POLICY_IN
        ? "in"
        : p.dir === xfrm.XFRM_POLICY_OUT
        ? "out"
        : p.dir === xfrm.XFRM_POLICY_FWD
        ? "fwd"
        : undefined;
      if (!t || !dir) continue;
      out.push({
        src: netOf(p.sel.saddr, p.sel.prefixlenS),
        dst: netOf(p.sel.daddr, p.sel.prefixlenD),
        dir,
        tmplSrc: t.saddr,
        tmplDst: t.id.daddr,
        reqid: t.reqid,
      });
    }
    return out;
  }

  #policy(p: XfrmPolicy): xfrm.XfrmPolicy {
    return {
      sel: xfrm.xfrmSelector(p.src, p.dst),
      lft: xfrm.xfrmLifetimeInfinite(),
      curlft: xfrm.xfrmLifetimeZero(),
      priority: 0,
      index: 0,
      dir: p.dir === "in"
        ? xfrm.XFRM_POLICY_IN
        : p.dir === "out"
        ? xfrm.XFRM_POLICY_OUT
        : xfrm.XFRM_POLICY_FWD,
      action: xfrm.XFRM_POLICY_ALLOW,
      flags: 0,
      share: xfrm.XFRM_SHARE_ANY,
      tmpls: [xfrm.espTunnelTmpl(p.tmplSrc, p.tmplDst, p.reqid)],
    };
  }

  async xfrmPolicyReplace(p: XfrmPolicy): Promise<void> {
    const req = xfrm.updatePolicyRequest(this.#policy(p));
    const op = `update xfrm policy src ${p.src} dst ${p.dst} dir ${p.dir}`;
    await this.#other(
      NETLINK_XFRM,
      (s) => s.request({ type: req.type, flags: req.flags, payload: req.payload }, { op }),
    );
  }

  async xfrmPolicyDel(p: XfrmPolicy): Promise<void> {
    const req = xfrm.deletePolicyRequest(xfrm.policyIdOf(this.#policy(p)));
    const op = `delete xfrm policy src ${p.src} dst ${p.dst} dir ${p.dir}`;
    await this.#other(
      NETLINK_XFRM,
      (s) => s.request({ type: req.type, flags: req.flags, payload: req.payload }, { op }),
    );
  }

  // ---- events --------------------------------------------------------------------------------
  async *events(signal: AbortSignal): AsyncIterable<KernelEvent> {
    const groups = [
      rt.RTNLGRP_LINK,
      rt.RTNLGRP_NEIGH,
      rt.RTNLGRP_IPV4_IFADDR,
      rt.RTNLGRP_IPV6_IFADDR,
      rt.RTNLGRP_IPV4_ROUTE,
      rt.RTNLGRP_IPV6_ROUTE,
    ];
    for await (const batch of this.#socket().subscribe(groups, { signal })) {
      if (isEventsLost(batch)) {
        yield { kind: "overrun" };
        continue;
      }
      for (const m of batch) {
        try {
          const e = await this.#event(m);
          if (e) yield e;
        } catch (err) {
          this.#opts.log.v(
            2,
            `Ignoring an undecodable netlink event (type ${m.type}): ${(err as Error).message}`,
          );
        }
      }
    }
  }

  async #event(m: NlMsg): Promise<KernelEvent | undefined> {
    switch (m.type) {
      case rt.RTM_NEWLINK:
      case rt.RTM_DELLINK: {
        const l = this.#toLink(rt.decodeLinkMessage(m.payload));
        if (m.type === rt.RTM_DELLINK) this.#names.delete(l.index!);
        return { kind: "link", op: m.type === rt.RTM_NEWLINK ? "new" : "del", link: l };
      }
      case rt.RTM_NEWADDR:
      case rt.RTM_DELADDR: {
        const a = rt.decodeAddrMessage(m.payload);
        const ip = a.local ?? a.address;
        const dev = await this.#name(a.index);
        if (!ip || !dev) return undefined;
        return {
          kind: "addr",
          op: m.type === rt.RTM_NEWADDR ? "new" : "del",
          addr: { dev, addr: netOf(ip, a.prefixLen) },
        };
      }
      case rt.RTM_NEWROUTE:
      case rt.RTM_DELROUTE:
        return {
          kind: "route",
          op: m.type === rt.RTM_NEWROUTE ? "new" : "del",
          route: await this.#toRoute(rt.decodeRouteMessage(m.payload)),
        };
      case rt.RTM_NEWNEIGH:
      case rt.RTM_DELNEIGH: {
        const n = rt.decodeNeighMessage(m.payload);
        const dev = await this.#name(n.index);
        if (!dev || !n.dst || n.family === rt.AF_BRIDGE) return undefined;
        return {
          kind: "neigh",
          op: m.type === rt.RTM_NEWNEIGH ? "new" : "del",
          neigh: {
            dev,
            ip: n.dst,
            mac: n.lladdr ? rt.formatMac(n.lladdr) : "",
            permanent: (n.state & rt.NUD_PERMANENT) !== 0,
          },
        };
      }
    }
    return undefined;
  }
}

function describe(r: Route): string {
  let s = `${r.type && r.type !== "unicast" ? `${r.type} ` : ""}${r.dst}`;
  if (r.gateway) s += ` via ${r.gateway}`;
  if (r.dev) s += ` dev ${r.dev}`;
  if (r.onlink) s += " onlink";
  return s;
}

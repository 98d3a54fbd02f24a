/**
 * A fake kernel at the semantic layer (STYLE.md rule 6): it implements {@linkcode KernelOps} with
 * the kernel's rules that matter to backends (EEXIST, ENODEV, ESRCH, gateways that must be
 * reachable unless onlink, deleting a link drops its addresses, routes and entries, device kinds
 * the kernel lacks) and renders its state as sorted `ip link` / `ip addr` / `ip route` /
 * `ip neigh` / `bridge fdb` lines, so backend tests are tables of {leases in, text out}.
 */
// deno-lint-ignore-file require-await -- async so that refusals reject instead of throwing
import { IP4, IP4Net, IP6Net } from "../../src/ip/mod.ts";
import { NetlinkError } from "../../src/netlink/codec/mod.ts";
import { errnoOf } from "../../src/netlink/codec/errno.ts";
import {
  type Addr,
  type Fdb,
  type IP,
  type IPNet,
  type KernelEvent,
  type KernelOps,
  type Link,
  type LinkChange,
  MAIN_TABLE,
  type Neigh,
  type Route,
  type RouteLookup,
  type WgConfig,
  type WgDevice,
  type XfrmPolicy,
} from "../../src/netlink/ops.ts";

function fail(op: string, name: string, kernelMessage?: string, hint?: string): never {
  throw new NetlinkError({ op, errno: errnoOf(name)!, kernelMessage, hint });
}

const netOf = (a: IPNet): IPNet => a.network();
/** Like the kernel, IPv6 routes added without a metric get 1024 (IP6_RT_PRIO_USER). */
const metricOf = (r: Route) => r.metric || (r.dst.ip instanceof IP4 ? 0 : 1024);
const keyOfRoute = (r: Route) =>
  `${r.table ?? MAIN_TABLE}|${r.type ?? "unicast"}|${r.dst.network()}|${metricOf(r)}`;
const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

/** Options of the fake. */
export interface FakeKernelOptions {
  /** Link kinds this "kernel" cannot create (EOPNOTSUPP), e.g. ["ipip", "wireguard"]. */
  missingKinds?: string[];
}

/** The fake kernel. Seed it with links and addresses, then hand it to a backend. */
export class FakeKernel implements KernelOps {
  readonly #links = new Map<string, Link & { index: number }>();
  readonly #addrs: Addr[] = [];
  readonly #routes = new Map<string, Route>();
  readonly #neigh = new Map<string, Neigh>();
  readonly #fdb = new Map<string, Fdb>();
  readonly #wg = new Map<string, WgDevice & { privateKey?: Uint8Array }>();
  readonly #xfrm = new Map<string, XfrmPolicy>();
  readonly #subs = new Set<(e: KernelEvent) => void>();
  readonly #missing: Set<string>;
  #nextIndex = 1;
  /** Every mutating call, in order, as `op args` text: for "nothing changed" assertions. */
  readonly calls: string[] = [];

  constructor(opts: FakeKernelOptions = {}) {
    this.#missing = new Set(opts.missingKinds ?? []);
    this.#links.set("lo", { name: "lo", index: this.#nextIndex++, mtu: 65536, up: true });
  }

  /** Adds a physical-looking device with an address (test setup; not recorded in `calls`). */
  seedLink(name: string, mtu: number, ...addrs: string[]): number {
    const index = this.#nextIndex++;
    this.#links.set(name, {
      name,
      index,
      mtu,
      up: true,
      address: `02:00:00:00:00:${index.toString(16).padStart(2, "0")}`,
    });
    for (const a of addrs) {
      this.#addrs.push({ dev: name, addr: a.includes(":") ? IP6Net.parse(a) : IP4Net.parse(a) });
    }
    return index;
  }

  /** Adds a route without recording it (test setup, e.g. a default route). */
  seedRoute(r: Route): void {
    this.#routes.set(keyOfRoute(r), r);
  }

  // ---- links -------------------------------------------------------------------------------
  async linkList(): Promise<Link[]> {
    return Promise.resolve([...this.#links.values()].map((l) => ({ ...l })));
  }
  async linkGet(name: string): Promise<Link | undefined> {
    const l = this.#links.get(name);
    return Promise.resolve(l && { ...l });
  }
  async linkAdd(link: Link): Promise<void> {
    const op = `add link ${link.name} type ${link.kind ?? "?"}`;
    this.calls.push(op);
    if (link.kind && this.#missing.has(link.kind)) {
      fail(
        op,
        "EOPNOTSUPP",
        "Unknown device type",
        `the kernel has no ${link.kind} support (module ${link.kind})`,
      );
    }
    if (this.#links.has(link.name)) fail(op, "EEXIST");
    if (
      link.vxlan?.link !== undefined && ![...this.#links.values()].some((l) => l.index === link.vxlan!.link)
    ) {
      fail(op, "ENODEV");
    }
    const index = this.#nextIndex++;
    const address = link.address ?? `0a:00:00:00:00:${index.toString(16).padStart(2, "0")}`;
    const { vethPeer, ...rest } = link;
    this.#links.set(link.name, { ...rest, index, address, up: link.up ?? false });
    if (vethPeer) {
      this.#links.set(vethPeer, { name: vethPeer, kind: "veth", index: this.#nextIndex++, up: false });
    }
    this.#emit({ kind: "link", op: "new", link: { ...link, index } });
    return Promise.resolve();
  }
  async linkSet(name: string, change: LinkChange): Promise<void> {
    const op = `set link ${name} ${JSON.stringify(change)}`;
    this.calls.push(op);
    const l = this.#links.get(name) ?? fail(op, "ENODEV");
    Object.assign(l, change);
    this.#emit({ kind: "link", op: "new", link: { ...l } });
    return Promise.resolve();
  }
  async linkDel(name: string): Promise<void> {
    const op = `delete link ${name}`;
    this.calls.push(op);
    const l = this.#links.get(name) ?? fail(op, "ENODEV");
    this.#links.delete(name);
    for (let i = this.#addrs.length - 1; i >= 0; i--) {
      if (this.#addrs[i]!.dev === name) this.#addrs.splice(i, 1);
    }
    for (const [k, r] of this.#routes) if (r.dev === name) this.#routes.delete(k);
    for (const [k, n] of this.#neigh) if (n.dev === name) this.#neigh.delete(k);
    for (const [k, f] of this.#fdb) if (f.dev === name) this.#fdb.delete(k);
    this.#wg.delete(name);
    this.#emit({ kind: "link", op: "del", link: { ...l } });
    return Promise.resolve();
  }

  // ---- addresses -----------------------------------------------------------------------------
  async addrList(dev?: string): Promise<Addr[]> {
    return Promise.resolve(
      this.#addrs.filter((a) => dev === undefined || a.dev === dev).map((a) => ({ ...a })),
    );
  }
  async addrAdd(a: Addr): Promise<void> {
    const op = `add address ${a.addr} dev ${a.dev}`;
    this.calls.push(op);
    if (!this.#links.has(a.dev)) fail(op, "ENODEV");
    if (this.#addrs.some((x) => x.dev === a.dev && x.addr.equals(a.addr as never))) fail(op, "EEXIST");
    this.#addrs.push({ dev: a.dev, addr: a.addr });
    this.#emit({ kind: "addr", op: "new", addr: a });
    return Promise.resolve();
  }
  async addrDel(a: Addr): Promise<void> {
    const op = `delete address ${a.addr} dev ${a.dev}`;
    this.calls.push(op);
    const i = this.#addrs.findIndex((x) => x.dev === a.dev && x.addr.toString() === a.addr.toString());
    if (i < 0) fail(op, "EADDRNOTAVAIL");
    this.#addrs.splice(i, 1);
    this.#emit({ kind: "addr", op: "del", addr: a });
    return Promise.resolve();
  }

  // ---- routes --------------------------------------------------------------------------------
  async routeList(table = MAIN_TABLE): Promise<Route[]> {
    return Promise.resolve(
      [...this.#routes.values()].filter((r) => (r.table ?? MAIN_TABLE) === table).map((r) => ({ ...r })),
    );
  }
  async routeReplace(r: Route): Promise<void> {
    const op = `replace route ${describeRoute(r)}`;
    this.calls.push(op);
    if (r.dev !== undefined && !this.#links.has(r.dev)) fail(op, "ENODEV");
    if (r.gateway && !r.onlink) {
      const reachable = this.#connected().some((c) =>
        (r.dev === undefined || c.dev === r.dev) && contains(c.net, r.gateway!)
      );
      if (!reachable) fail(op, "ENETUNREACH", "Nexthop has invalid gateway");
    }
    const route = { ...r, dst: r.dst.network() } as Route;
    if (metricOf(route)) route.metric = metricOf(route);
    if (route.dev === undefined && route.gateway) {
      const c = this.#connected().find((c) => contains(c.net, route.gateway!));
      if (c) route.dev = c.dev;
    }
    this.#routes.set(keyOfRoute(route), route);
    this.#emit({ kind: "route", op: "new", route });
    return Promise.resolve();
  }
  async routeDel(r: Route): Promise<void> {
    const op = `delete route ${describeRoute(r)}`;
    this.calls.push(op);
    const k = keyOfRoute(r);
    const had = this.#routes.get(k) ?? fail(op, "ESRCH");
    this.#routes.delete(k);
    this.#emit({ kind: "route", op: "del", route: had });
    return Promise.resolve();
  }
  async routeGet(dst: IP): Promise<RouteLookup | undefined> {
    let best: { len: number; r: RouteLookup } | undefined;
    const consider = (net: IPNet, r: RouteLookup) => {
      if (contains(net, dst) && (!best || net.prefixLen > best.len)) best = { len: net.prefixLen, r };
    };
    for (const c of this.#connected()) consider(c.net, { dev: c.dev, src: c.src });
    for (const r of this.#routes.values()) {
      if ((r.table ?? MAIN_TABLE) !== MAIN_TABLE || (r.type ?? "unicast") !== "unicast" || !r.dev) continue;
      consider(r.dst, { dev: r.dev, ...(r.gateway ? { gateway: r.gateway } : {}) });
    }
    return Promise.resolve(best?.r);
  }

  #connected(): { dev: string; net: IPNet; src: IP }[] {
    return this.#addrs.filter((a) => this.#links.get(a.dev)?.up !== false).map((a) => ({
      dev: a.dev,
      net: netOf(a.addr),
      src: a.addr.ip,
    }));
  }

  // ---- neighbours and FDB -----------------------------------------------------------------------
  async neighList(dev?: string): Promise<Neigh[]> {
    return Promise.resolve(
      [...this.#neigh.values()].filter((n) => dev === undefined || n.dev === dev).map((n) => ({ ...n })),
    );
  }
  async neighReplace(n: Neigh): Promise<void> {
    const op = `replace neighbour ${n.ip} dev ${n.dev}`;
    this.calls.push(op);
    if (!this.#links.has(n.dev)) fail(op, "ENODEV");
    this.#neigh.set(`${n.dev}|${n.ip}`, { ...n });
    return Promise.resolve();
  }
  async neighDel(n: Neigh): Promise<void> {
    const op = `delete neighbour ${n.ip} dev ${n.dev}`;
    this.calls.push(op);
    if (!this.#neigh.delete(`${n.dev}|${n.ip}`)) fail(op, "ENOENT");
    return Promise.resolve();
  }
  async fdbList(dev?: string): Promise<Fdb[]> {
    return Promise.resolve(
      [...this.#fdb.values()].filter((f) => dev === undefined || f.dev === dev).map((f) => ({ ...f })),
    );
  }
  async fdbReplace(f: Fdb): Promise<void> {
    const op = `replace fdb ${f.mac} dev ${f.dev} dst ${f.dst}`;
    this.calls.push(op);
    if (this.#links.get(f.dev)?.kind !== "vxlan") fail(op, this.#links.has(f.dev) ? "EOPNOTSUPP" : "ENODEV");
    this.#fdb.set(`${f.dev}|${f.mac}|${f.dst}`, { ...f });
    return Promise.resolve();
  }
  async fdbDel(f: Fdb): Promise<void> {
    const op = `delete fdb ${f.mac} dev ${f.dev} dst ${f.dst}`;
    this.calls.push(op);
    if (!this.#fdb.delete(`${f.dev}|${f.mac}|${f.dst}`)) fail(op, "ENOENT");
    return Promise.resolve();
  }

  // ---- wireguard and xfrm ------------------------------------------------------------------------
  async wgGet(name: string): Promise<WgDevice | undefined> {
    const d = this.#wg.get(name);
    return Promise.resolve(
      d &&
        {
          name,
          ...(d.listenPort ? { listenPort: d.listenPort } : {}),
          peers: d.peers.map((p) => ({ ...p })),
        },
    );
  }
  /** Records a handshake with the peer whose key starts with `keyHex`, as the kernel would. */
  wgHandshake(name: string, keyHex: string, sec: number): void {
    const p = this.#wg.get(name)?.peers.find((x) => hex(x.publicKey).startsWith(keyHex));
    if (!p) throw new Error(`no WireGuard peer ${keyHex}… on ${name}`);
    p.lastHandshake = sec;
  }
  async wgConfigure(name: string, cfg: WgConfig): Promise<void> {
    const op = `configure wireguard ${name}`;
    this.calls.push(op);
    if (this.#links.get(name)?.kind !== "wireguard") fail(op, "ENODEV");
    const d = this.#wg.get(name) ?? { name, peers: [] };
    if (cfg.privateKey) d.privateKey = cfg.privateKey;
    if (cfg.listenPort !== undefined) d.listenPort = cfg.listenPort;
    if (cfg.replacePeers) d.peers = [];
    for (const p of cfg.peers ?? []) {
      const i = d.peers.findIndex((x) => hex(x.publicKey) === hex(p.publicKey));
      if (p.remove) {
        if (i >= 0) d.peers.splice(i, 1);
        continue;
      }
      const cur = i >= 0 ? d.peers[i]! : { publicKey: p.publicKey, allowedIPs: [] };
      const next = {
        ...cur,
        ...p,
        allowedIPs: p.replaceAllowedIPs
          ? p.allowedIPs ?? []
          : [...(cur.allowedIPs ?? []), ...(p.allowedIPs ?? [])],
      };
      delete next.replaceAllowedIPs;
      if (i >= 0) d.peers[i] = next;
      else d.peers.push(next);
    }
    this.#wg.set(name, d);
    return Promise.resolve();
  }
  async xfrmPolicyList(): Promise<XfrmPolicy[]> {
    return Promise.resolve([...this.#xfrm.values()].map((p) => ({ ...p })));
  }
  async xfrmPolicyReplace(p: XfrmPolicy): Promise<void> {
    this.calls.push(`replace xfrm policy ${p.src} ${p.dst} ${p.dir}`);
    this.#xfrm.set(`${p.src}|${p.dst}|${p.dir}`, { ...p });
    return Promise.resolve();
  }
  async xfrmPolicyDel(p: XfrmPolicy): Promise<void> {
    const op = `delete xfrm policy ${p.src} ${p.dst} ${p.dir}`;
    this.calls.push(op);
    if (!this.#xfrm.delete(`${p.src}|${p.dst}|${p.dir}`)) fail(op, "ENOENT");
    return Promise.resolve();
  }

  // ---- events --------------------------------------------------------------------------------
  async *events(signal: AbortSignal): AsyncIterable<KernelEvent> {
    const queue: KernelEvent[] = [];
    let wake: () => void = () => {};
    const sub = (e: KernelEvent) => {
      queue.push(e);
      wake();
    };
    const onAbort = () => wake();
    this.#subs.add(sub);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      while (!signal.aborted) {
        const e = queue.shift();
        if (e) {
          yield e;
          continue;
        }
        await new Promise<void>((r) => (wake = r));
      }
    } finally {
      this.#subs.delete(sub);
      signal.removeEventListener("abort", onAbort);
    }
  }

  #emit(e: KernelEvent): void {
    for (const s of this.#subs) s(e);
  }

  // ---- rendering ---------------------------------------------------------------------------------
  /** `ip -d link`-like lines for links other than lo, sorted. */
  renderLinks(): string[] {
    return [...this.#links.values()].filter((l) => l.name !== "lo").map((l) => {
      let s = `${l.name}`;
      if (l.kind) s += ` ${l.kind}`;
      const v = l.vxlan;
      if (v) {
        s += ` id ${v.vni}`;
        if (v.local) s += ` local ${v.local}`;
        if (v.link !== undefined) s += ` dev ${this.#nameOf(v.link)}`;
        if (v.port) s += ` dstport ${v.port}`;
        if (v.learning === false) s += " nolearning";
        if (v.gbp) s += " gbp";
      }
      if (l.ipip?.local) s += ` local ${l.ipip.local}`;
      if (l.mtu !== undefined) s += ` mtu ${l.mtu}`;
      if (l.address) s += ` addr ${l.address}`;
      s += l.up ? " up" : " down";
      return s;
    }).sort();
  }
  /** `ip addr`-like lines: `<addr> dev <dev>`, sorted. */
  renderAddrs(): string[] {
    return this.#addrs.map((a) => `${a.addr} dev ${a.dev}`).sort();
  }
  /** `ip route`-like lines for every table, sorted. */
  renderRoutes(): string[] {
    return [...this.#routes.values()].map(describeRoute).sort();
  }
  /** `ip neigh`-like lines, sorted. */
  renderNeigh(): string[] {
    return [...this.#neigh.values()].map((n) =>
      `${n.ip} dev ${n.dev} lladdr ${n.mac}${n.permanent ? " PERMANENT" : ""}`
    ).sort();
  }
  /** `bridge fdb`-like lines, sorted. */
  renderFdb(): string[] {
    return [...this.#fdb.values()].map((f) =>
      `${f.mac} dev ${f.dev} dst ${f.dst}${f.self ? " self" : ""}${f.permanent ? " permanent" : ""}`
    ).sort();
  }
  /** `wg show`-like lines: one per peer, `<dev> peer <hex key> endpoint … allowed-ips … keepalive …`. */
  renderWireguard(): string[] {
    const out: string[] = [];
    for (const [name, d] of this.#wg) {
      out.push(`${name} listen-port ${d.listenPort ?? 0}`);
      for (const p of d.peers) {
        let s = `${name} peer ${hex(p.publicKey).slice(0, 8)}`;
        if (p.endpoint) s += ` endpoint ${p.endpoint.ip}:${p.endpoint.port}`;
        s += ` allowed-ips ${(p.allowedIPs ?? []).map(String).join(",") || "(none)"}`;
        if (p.persistentKeepalive) s += ` keepalive ${p.persistentKeepalive}`;
        if (p.presharedKey) s += " psk";
        out.push(s);
      }
    }
    return out.sort();
  }
  /** Everything, one block per kind: the usual assertion target. */
  render(): string {
    const block = (title: string, lines: string[]) => lines.length ? `# ${title}\n${lines.join("\n")}\n` : "";
    return block("link", this.renderLinks()) + block("addr", this.renderAddrs()) +
      block("route", this.renderRoutes()) +
      block("neigh", this.renderNeigh()) + block("fdb", this.renderFdb()) +
      block("wg", this.renderWireguard()) +
      block(
        "xfrm",
        [...this.#xfrm.values()].map((p) =>
          `${p.src} ${p.dst} dir ${p.dir} tmpl ${p.tmplSrc} ${p.tmplDst} reqid ${p.reqid}`
        ).sort(),
      );
  }

  #nameOf(index: number): string {
    return [...this.#links.values()].find((l) => l.index === index)?.name ?? `if${index}`;
  }
}

function contains(net: IPNet, ip: IP): boolean {
  return net instanceof IP4Net
    ? ip instanceof IP4 && net.contains(ip)
    : !(ip instanceof IP4) && (net as IP6Net).contains(ip);
}

/** `ip route`-style text of a route. */
export function describeRoute(r: Route): string {
  let s = r.type && r.type !== "unicast" ? `${r.type} ${r.dst}` : `${r.dst}`;
  if (r.gateway) s += ` via ${r.gateway}`;
  if (r.dev) s += ` dev ${r.dev}`;
  if (r.table !== undefined && r.table !== MAIN_TABLE) s += ` table ${r.table}`;
  if (r.protocol !== undefined) s += ` proto ${r.protocol}`;
  if (r.scope && r.scope !== "universe") s += ` scope ${r.scope}`;
  if (r.src) s += ` src ${r.src}`;
  if (r.metric && !(r.metric === 1024 && !(r.dst.ip instanceof IP4))) s += ` metric ${r.metric}`;
  if (r.onlink) s += " onlink";
  return s;
}

/**
 * External interface selection: which link flanneld sends overlay traffic from, with which
 * addresses, and which addresses it advertises to other nodes.
 *
 * The rules, in the order flanneld applies them:
 * 1. None of `--iface`, `--iface-regex`, `--iface-can-reach` given: if `--public-ip` (else
 *    `--public-ipv6`) is set, the link that owns that address; otherwise the default-route link.
 * 2. Otherwise each `--iface` in order (an IP selects the link owning it, anything else is a link
 *    name), then each `--iface-regex` (over addresses first, then link names), then
 *    `--iface-can-reach` (the kernel's route lookup). The first that works wins; each failure is
 *    logged as `Could not find valid interface matching …`.
 *
 * With both families enabled, the IPv4 and IPv6 addresses must come from the same link. Addresses
 * the rule does not pin are chosen by {@linkcode preferredAddress}. The advertised (external)
 * addresses are `--public-ip` / `--public-ipv6` when set, else the link's own addresses.
 *
 * @module
 */

import { IP4, IP4Net, IP6, IP6Net, parseIP } from "../ip/mod.ts";
import type { Logger } from "../log/logger.ts";
import type { LinkAddr, LinkInfo, NetInfo } from "./net_info.ts";

/** The flags and network-config fields that drive selection. Empty strings mean "not given". */
export interface SelectOptions {
  /** `--iface` values (link names or IPs), tried in order. */
  iface: string[];
  /** `--iface-regex` values, tried in order after `iface`. */
  ifaceRegex: string[];
  /** `--iface-can-reach`: an IP whose route picks the link. */
  ifaceCanReach: string;
  /** `--public-ip` (possibly replaced by the node's `node-public-ip` annotation). */
  publicIp: string;
  /** `--public-ipv6` (possibly replaced by the node's `node-public-ipv6` annotation). */
  publicIpv6: string;
  /** `EnableIPv4` from the network config. */
  enableIPv4: boolean;
  /** `EnableIPv6` from the network config. */
  enableIPv6: boolean;
}

/** The chosen external interface. Address fields are present for the enabled families. */
export interface ExtIface {
  /** Link name. */
  name: string;
  /** Kernel link index. */
  index: number;
  /** Link MTU, never 0. */
  mtu: number;
  /** The link's own IPv4 address used for overlay traffic. */
  ifaceAddr?: IP4;
  /** The link's own IPv6 address used for overlay traffic. */
  ifaceV6Addr?: IP6;
  /** The IPv4 address advertised to other nodes: `--public-ip`, else `ifaceAddr`. */
  extAddr?: IP4;
  /** The IPv6 address advertised to other nodes: `--public-ipv6`, else `ifaceV6Addr`. */
  extV6Addr?: IP6;
}

/** Selection failed; the daemon exits 1 with this message. */
export class InterfaceSelectionError extends Error {
  /** Creates the error; pass the underlying failure as `cause`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InterfaceSelectionError";
  }
}

/** A rule failed to produce an interface; carries upstream's wording for one attempt. */
class MatchError extends Error {}

/** What a rule found: the link, and any address the rule itself pinned. */
interface Match {
  link: LinkInfo;
  v4?: IP4;
  v6?: IP6;
}

/** Per-call inputs shared by the rules. */
interface Ctx {
  opts: SelectOptions;
  net: NetInfo;
  links: LinkInfo[];
  public4?: IP4;
  public6?: IP6;
}

/**
 * Picks the external interface per the rules in this module's description.
 *
 * @throws {InterfaceSelectionError} when no rule yields a usable interface, a public IP does not
 * parse, or no IP family is enabled.
 *
 * @example
 * ```ts ignore
 * const ext = await selectExternalInterface(
 *   { iface: ["eth0"], ifaceRegex: [], ifaceCanReach: "", publicIp: "", publicIpv6: "",
 *     enableIPv4: true, enableIPv6: false },
 *   ipCommandNetInfo({ run }),
 *   log,
 * );
 * ```
 */
export async function selectExternalInterface(
  opts: SelectOptions,
  net: NetInfo,
  log: Logger,
): Promise<ExtIface> {
  if (!opts.enableIPv4 && !opts.enableIPv6) {
    throw new InterfaceSelectionError(
      'No IP family enabled: set "EnableIPv4" or "EnableIPv6" in the network config',
    );
  }
  const public4 = parsePublic(opts.publicIp, 4);
  const public6 = parsePublic(opts.publicIpv6, 6);
  let links: LinkInfo[];
  try {
    links = await net.links();
  } catch (err) {
    throw new InterfaceSelectionError(
      `Failed to find any valid interface to use: cannot list the network interfaces: ${
        (err as Error).message
      }`,
      { cause: err },
    );
  }
  const ctx: Ctx = { opts, net, links };
  if (public4) ctx.public4 = public4;
  if (public6) ctx.public6 = public6;

  const ext = opts.iface.length === 0 && opts.ifaceRegex.length === 0 && opts.ifaceCanReach === ""
    ? await implicitChoice(ctx)
    : await explicitChoice(ctx, log);

  if (ext.ifaceAddr) log.info(`Using interface with name ${ext.name} and address ${ext.ifaceAddr}`);
  if (ext.ifaceV6Addr) {
    log.info(`Using interface with name ${ext.name} and v6 address ${ext.ifaceV6Addr}`);
  }
  return ext;
}

/** Rule 1: no selection flags, so the public IP's owner or the default-route link. */
async function implicitChoice(ctx: Ctx): Promise<ExtIface> {
  const publicIp = ctx.public4 ?? ctx.public6;
  try {
    const match = publicIp
      ? byIP(ctx, publicIp, publicIp instanceof IP4 ? "--public-ip" : "--public-ipv6")
      : await byDefaultRoute(ctx);
    return complete(ctx, match);
  } catch (err) {
    if (!(err instanceof MatchError)) throw err;
    throw new InterfaceSelectionError(
      `Failed to find any valid interface to use: ${err.message}; ` +
        "pass --iface, --iface-regex or --iface-can-reach to choose one",
      { cause: err },
    );
  }
}

/** Rule 2: each `--iface`, then each `--iface-regex`, then `--iface-can-reach`. */
async function explicitChoice(ctx: Ctx, log: Logger): Promise<ExtIface> {
  const attempts: { label: string; value: string; find: () => Match | Promise<Match> }[] = [
    ...ctx.opts.iface.map((v) => ({ label: "--iface", value: v, find: () => byIfaceValue(ctx, v) })),
    ...ctx.opts.ifaceRegex.map((v) => ({ label: "--iface-regex", value: v, find: () => byRegex(ctx, v) })),
  ];
  if (ctx.opts.ifaceCanReach !== "") {
    const v = ctx.opts.ifaceCanReach;
    attempts.push({ label: "--iface-can-reach", value: v, find: () => byCanReach(ctx, v) });
  }
  for (const { value, find } of attempts) {
    try {
      return complete(ctx, await find());
    } catch (err) {
      if (!(err instanceof MatchError)) throw err;
      log.warn(`Could not find valid interface matching ${value}: ${err.message}`);
    }
  }
  const tried = attempts.map((a) => `${a.label} ${a.value}`).join(", ");
  throw new InterfaceSelectionError(
    "Failed to find interface to use that matches the interfaces and/or regexes provided " +
      `(tried ${tried}; each failure is logged above): check the values against "ip addr", ` +
      "or pass none of them to use the default-route interface",
  );
}

/** `--iface` value: an IP selects the link that owns it, anything else is a link name. */
function byIfaceValue(ctx: Ctx, value: string): Match {
  const ip = tryParseIP(value);
  if (ip) return byIP(ctx, ip, "--iface");
  const link = ctx.links.find((l) => l.name === value);
  if (!link) throw new MatchError(`no interface named "${value}"`);
  return { link };
}

/**
 * The link owning `ip`. With both families enabled, the other family's public IP (if given) must
 * live on the same link and becomes that family's interface address.
 */
function byIP(ctx: Ctx, ip: IP4 | IP6, source: string): Match {
  const { enableIPv4, enableIPv6 } = ctx.opts;
  if (ip instanceof IP4) {
    if (!enableIPv4) throw new MatchError(`${source} ${ip} is IPv4 but the network config disables IPv4`);
    const link = owner(ctx, ip, source);
    const match: Match = { link, v4: ip };
    if (enableIPv6 && ctx.public6) {
      const other = owner(ctx, ctx.public6, "--public-ipv6");
      if (other !== link) {
        throw new MatchError(`v6 interface ${other.name} must be the same with v4 interface ${link.name}`);
      }
      match.v6 = ctx.public6;
    }
    return match;
  }
  if (!enableIPv6) throw new MatchError(`${source} ${ip} is IPv6 but the network config disables IPv6`);
  const link = owner(ctx, ip, source);
  const match: Match = { link, v6: ip };
  if (enableIPv4 && ctx.public4) {
    const other = owner(ctx, ctx.public4, "--public-ip");
    if (other !== link) {
      throw new MatchError(`v4 interface ${other.name} must be the same with v6 interface ${link.name}`);
    }
    match.v4 = ctx.public4;
  }
  return match;
}

/** The first link (kernel order) with `ip` among its addresses. */
function owner(ctx: Ctx, ip: IP4 | IP6, source: string): LinkInfo {
  const link = ctx.links.find((l) => l.addrs.some((a) => sameIP(a.ip, ip)));
  if (!link) throw new MatchError(`no interface has the address ${ip} (from ${source})`);
  return link;
}

/**
 * `--iface-regex` (unanchored): first over each link's usable addresses of the enabled families
 * (both families need a match on the same link), then over link names, links in kernel order.
 */
function byRegex(ctx: Ctx, pattern: string): Match {
  let re: RegExp;
  try {
    re = new RegExp(pattern);
  } catch (err) {
    throw new MatchError(`invalid regex: ${(err as Error).message}`, { cause: err });
  }
  const { enableIPv4, enableIPv6 } = ctx.opts;
  for (const link of ctx.links) {
    const usable = link.addrs.filter(isUsable).map((a) => a.ip);
    const v4 = usable.find((ip): ip is IP4 => ip instanceof IP4 && re.test(ip.toString()));
    const v6 = usable.find((ip): ip is IP6 => ip instanceof IP6 && re.test(ip.toString()));
    if ((enableIPv4 && !v4) || (enableIPv6 && !v6)) continue;
    const match: Match = { link };
    if (enableIPv4 && v4) match.v4 = v4;
    if (enableIPv6 && v6) match.v6 = v6;
    return match;
  }
  const link = ctx.links.find((l) => re.test(l.name));
  if (link) return { link };
  const seen = ctx.links.map((l) => `${l.name}:[${l.addrs.map((a) => a.ip.toString()).join(" ")}]`);
  throw new MatchError(`no interface name or address matches; interfaces are ${seen.join(" ")}`);
}

/** `--iface-can-reach`: the route's link, and its preferred source as that family's address. */
async function byCanReach(ctx: Ctx, value: string): Promise<Match> {
  const dst = tryParseIP(value);
  if (!dst) throw new MatchError(`--iface-can-reach ${JSON.stringify(value)} is not an IP address`);
  const v4 = dst instanceof IP4;
  if (v4 ? !ctx.opts.enableIPv4 : !ctx.opts.enableIPv6) {
    throw new MatchError(
      `--iface-can-reach ${dst} is IPv${v4 ? 4 : 6} but the network config disables IPv${v4 ? 4 : 6}`,
    );
  }
  let route;
  try {
    route = await ctx.net.routeGet(dst);
  } catch (err) {
    throw new MatchError(`route lookup for ${dst} failed: ${(err as Error).message}`, { cause: err });
  }
  if (!route) throw new MatchError(`no route to ${dst}`);
  const link = ctx.links.find((l) => l.name === route.link);
  if (!link) throw new MatchError(`route to ${dst} uses interface ${route.link}, which was not found`);
  const match: Match = { link };
  if (v4 && route.src instanceof IP4) match.v4 = route.src;
  if (!v4 && route.src instanceof IP6) match.v6 = route.src;
  return match;
}

/** The link of the first default route; with both families, the IPv4 and IPv6 ones must agree. */
async function byDefaultRoute(ctx: Ctx): Promise<Match> {
  const name4 = ctx.opts.enableIPv4 ? await defaultLink(ctx, 4) : undefined;
  const name6 = ctx.opts.enableIPv6 ? await defaultLink(ctx, 6) : undefined;
  if (name4 !== undefined && name6 !== undefined && name4 !== name6) {
    throw new MatchError(
      `v6 default route interface ${name6} must be the same with v4 default route interface ${name4}`,
    );
  }
  const name = (name4 ?? name6)!;
  const link = ctx.links.find((l) => l.name === name);
  if (!link) throw new MatchError(`default route interface ${name} was not found`);
  return { link };
}

async function defaultLink(ctx: Ctx, family: 4 | 6): Promise<string> {
  let names: string[];
  try {
    names = await ctx.net.defaultRouteLink(family);
  } catch (err) {
    throw new MatchError(`reading the IPv${family} default route failed: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const name = names[0];
  if (name === undefined) throw new MatchError(`no IPv${family} default route in the main table`);
  return name;
}

/** Fills the addresses the rule left open, checks the MTU and applies the public IPs. */
function complete(ctx: Ctx, match: Match): ExtIface {
  const { link } = match;
  if (!(link.mtu > 0)) throw new MatchError(`failed to determine MTU for ${link.name} interface`);
  const ext: ExtIface = { name: link.name, index: link.index, mtu: link.mtu };
  if (ctx.opts.enableIPv4) {
    const addr = match.v4 ?? preferredAddress(link, 4);
    if (!addr) throw new MatchError(`failed to find IPv4 address for interface ${link.name}`);
    ext.ifaceAddr = addr;
  }
  if (ctx.opts.enableIPv6) {
    const addr = match.v6 ?? preferredAddress(link, 6);
    if (!addr) throw new MatchError(`failed to find IPv6 address for interface ${link.name}`);
    ext.ifaceV6Addr = addr;
  }
  const ext4 = ctx.public4 ?? ext.ifaceAddr;
  const ext6 = ctx.public6 ?? ext.ifaceV6Addr;
  if (ext4) ext.extAddr = ext4;
  if (ext6) ext.extV6Addr = ext6;
  return ext;
}

/**
 * The address a link would use for one family: among its global-unicast and link-local-unicast
 * addresses that are not deprecated, global before link-local, then permanent before dynamic, then
 * non-temporary before temporary, then kernel order. `undefined` when there is none.
 *
 * @example
 * ```ts ignore
 * preferredAddress(link, 4)?.toString(); // "192.0.2.2"
 * ```
 */
export function preferredAddress(link: LinkInfo, family: 4): IP4 | undefined;
export function preferredAddress(link: LinkInfo, family: 6): IP6 | undefined;
export function preferredAddress(link: LinkInfo, family: 4 | 6): IP4 | IP6 | undefined {
  const rank = (a: LinkAddr) =>
    (isLinkLocalUnicast(a.ip) ? 4 : 0) + (a.dynamic ? 2 : 0) + (a.temporary ? 1 : 0);
  const candidates = link.addrs
    .filter((a) => isUsable(a) && (family === 4 ? a.ip instanceof IP4 : a.ip instanceof IP6))
    .sort((a, b) => rank(a) - rank(b)); // Array.prototype.sort is stable: ties keep kernel order.
  return candidates[0]?.ip;
}

/** Global or link-local unicast, and not deprecated. */
function isUsable(a: LinkAddr): boolean {
  return !a.deprecated && (isGlobalUnicast(a.ip) || isLinkLocalUnicast(a.ip));
}

// Special-purpose ranges, as in RFC 6890: everything unicast outside them counts as global,
// including private (RFC 1918) and unique-local (fc00::/7) addresses.
const V4_NOT_GLOBAL = ["0.0.0.0/32", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32"]
  .map((s) => IP4Net.parse(s));
const V6_NOT_GLOBAL = ["::/128", "::1/128", "fe80::/10", "ff00::/8"].map((s) => IP6Net.parse(s));
const V4_LINK_LOCAL = IP4Net.parse("169.254.0.0/16");
const V6_LINK_LOCAL = IP6Net.parse("fe80::/10");

function isGlobalUnicast(ip: IP4 | IP6): boolean {
  return ip instanceof IP4
    ? !V4_NOT_GLOBAL.some((n) => n.contains(ip))
    : !V6_NOT_GLOBAL.some((n) => n.contains(ip));
}

function isLinkLocalUnicast(ip: IP4 | IP6): boolean {
  return ip instanceof IP4 ? V4_LINK_LOCAL.contains(ip) : V6_LINK_LOCAL.contains(ip);
}

function sameIP(a: IP4 | IP6, b: IP4 | IP6): boolean {
  if (a instanceof IP4) return b instanceof IP4 && a.equals(b);
  return b instanceof IP6 && a.equals(b);
}

function tryParseIP(s: string): IP4 | IP6 | undefined {
  try {
    return parseIP(s);
  } catch {
    return undefined;
  }
}

function parsePublic(value: string, family: 4): IP4 | undefined;
function parsePublic(value: string, family: 6): IP6 | undefined;
function parsePublic(value: string, family: 4 | 6): IP4 | IP6 | undefined {
  if (value === "") return undefined;
  const ip = tryParseIP(value);
  const ok = family === 4 ? ip instanceof IP4 : ip instanceof IP6;
  if (!ip || !ok) {
    const flag = family === 4 ? "--public-ip" : "--public-ipv6";
    throw new InterfaceSelectionError(
      `invalid public IP address: ${value}: ${flag} must be an IPv${family} address`,
    );
  }
  return ip;
}

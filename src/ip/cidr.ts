/**
 * IPv4 and IPv6 networks: an address and a prefix length.
 *
 * Parsing keeps the host bits as written (`10.5.34.7/24` stays that), because subnet keys and
 * subnet.env carry addresses that are not network addresses; {@linkcode IP4Net.network} masks them.
 * Upstream's net-conf.json parser masks `Network`; the config module does that, not this one.
 *
 * @module
 */

import { IP4 } from "./ip4.ts";
import { IP6 } from "./ip6.ts";
import { escapeControls, parseDottedQuad, parseIPv6Text, parsePrefixLength, quote } from "./text.ts";

/** Splits CIDR text at its first `/`, as Go's `net.ParseCIDR` does. */
function splitCIDR(s: string): [string, string] | undefined {
  const slash = s.indexOf("/");
  return slash < 0 ? undefined : [s.slice(0, slash), s.slice(slash + 1)];
}

function checkPrefixLength(prefixLen: number, max: number, family: string): void {
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max) {
    throw new RangeError(
      `Cannot make an ${family} network with prefix length ${prefixLen}: must be 0..${max}`,
    );
  }
}

function ip4Mask(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (~0 << (32 - prefixLen)) >>> 0;
}

function ip6Mask(prefixLen: number): bigint {
  return ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefixLen)) - 1n);
}

/**
 * Upstream's reason for text that is not an IPv4 CIDR: `invalid IPv4 CIDR format` for IPv6 CIDR
 * text, otherwise Go's `invalid CIDR address: <s>` (control characters escaped).
 */
export function ip4NetParseReason(s: string): string {
  return IP6Net.tryParse(s) === undefined
    ? `invalid CIDR address: ${escapeControls(s)}`
    : "invalid IPv4 CIDR format";
}

/** The reason for text that is not an IPv6 CIDR, by analogy with {@linkcode ip4NetParseReason}. */
export function ip6NetParseReason(s: string): string {
  return IP4Net.tryParse(s) === undefined
    ? `invalid CIDR address: ${escapeControls(s)}`
    : "invalid IPv6 CIDR format";
}

/**
 * An immutable IPv4 network.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP4Net } from "./cidr.ts";
 * const net = IP4Net.parse("10.5.34.0/24");
 * assert(net.next().toString() === "10.5.35.0/24");
 * assert(net.firstHost().toString() === "10.5.34.1/24");
 * assert(IP4Net.parse("10.5.0.0/16").contains(net));
 * ```
 */
export class IP4Net {
  /** `0.0.0.0/0`, upstream's zero value for "no network". */
  static readonly EMPTY: IP4Net = new IP4Net(IP4.fromNumber(0), 0);

  /** The address as written; host bits may be set. */
  readonly ip: IP4;
  /** The prefix length, `0..32`. */
  readonly prefixLen: number;

  /** @throws {RangeError} when `prefixLen` is not an integer in `0..32`. */
  constructor(ip: IP4, prefixLen: number) {
    checkPrefixLength(prefixLen, 32, "IPv4");
    this.ip = ip;
    this.prefixLen = prefixLen;
    Object.freeze(this);
  }

  /**
   * Parses `a.b.c.d/n` with `n` in `0..32`, keeping host bits.
   *
   * @throws {SyntaxError} naming the value: `invalid IPv4 CIDR format` for IPv6 CIDR text,
   * otherwise Go's `invalid CIDR address: <s>`.
   */
  static parse(s: string): IP4Net {
    const net = IP4Net.tryParse(s);
    if (net !== undefined) return net;
    throw new SyntaxError(`Cannot parse IPv4 CIDR ${quote(s)}: ${ip4NetParseReason(s)}`);
  }

  /** Like {@linkcode IP4Net.parse}, but returns `undefined` instead of throwing. */
  static tryParse(s: string): IP4Net | undefined {
    const parts = splitCIDR(s);
    if (parts === undefined) return undefined;
    const value = parseDottedQuad(parts[0]);
    const prefixLen = parsePrefixLength(parts[1], 32);
    if (value === undefined || prefixLen === undefined) return undefined;
    return new IP4Net(IP4.fromNumber(value), prefixLen);
  }

  /** CIDR text, e.g. `10.5.34.0/24`. */
  toString(): string {
    return `${this.ip}/${this.prefixLen}`;
  }

  /** JSON form: the CIDR string. */
  toJSON(): string {
    return this.toString();
  }

  /** The netmask as a uint32 (`/24` is `0xffffff00`). */
  mask(): number {
    return ip4Mask(this.prefixLen);
  }

  /** The same network with the host bits cleared. */
  network(): IP4Net {
    const value = (this.ip.value & this.mask()) >>> 0;
    return value === this.ip.value ? this : new IP4Net(IP4.fromNumber(value), this.prefixLen);
  }

  /** Whether the address, or the whole of the network, lies inside this network. */
  contains(other: IP4 | IP4Net): boolean {
    if (other instanceof IP4Net) return other.prefixLen >= this.prefixLen && this.contains(other.ip);
    const mask = this.mask();
    return ((other.value & mask) >>> 0) === ((this.ip.value & mask) >>> 0);
  }

  /** Whether the two networks share any address. */
  overlaps(other: IP4Net): boolean {
    const mask = ip4Mask(Math.min(this.prefixLen, other.prefixLen));
    return ((this.ip.value & mask) >>> 0) === ((other.ip.value & mask) >>> 0);
  }

  /**
   * The adjacent network of the same size.
   *
   * @throws {RangeError} past the end of the address space.
   */
  next(): IP4Net {
    return new IP4Net(this.network().ip.add(this.size()), this.prefixLen);
  }

  /** The number of addresses, `2^(32-prefixLen)`. */
  size(): number {
    return 2 ** (32 - this.prefixLen);
  }

  /** Whether both have the same address and prefix length. */
  equals(other: IP4Net): boolean {
    return this.ip.equals(other.ip) && this.prefixLen === other.prefixLen;
  }

  /**
   * The network address plus one, with the same prefix length: what subnet.env's
   * `FLANNEL_SUBNET` carries (`10.5.72.0/24` → `10.5.72.1/24`).
   */
  firstHost(): IP4Net {
    return new IP4Net(this.network().ip.add(1), this.prefixLen);
  }

  /** Whether this is `0.0.0.0/0`, upstream's zero value. */
  isEmpty(): boolean {
    return this.ip.value === 0 && this.prefixLen === 0;
  }
}

/**
 * An immutable IPv6 network. Prints as `<IP6 text>/<n>`, so a network in `::ffff:0:0/96` prints with
 * a dotted quad as upstream does, and does not parse back.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP6Net } from "./cidr.ts";
 * const net = IP6Net.parse("fc00:1::/64");
 * assert(net.firstHost().toString() === "fc00:1::1/64");
 * assert(IP6Net.parse("fc00::/16").overlaps(net));
 * assert(net.size() === 2n ** 64n);
 * ```
 */
export class IP6Net {
  /** `::/0`, upstream's zero value for "no network". */
  static readonly EMPTY: IP6Net = new IP6Net(IP6.fromBigInt(0n), 0);

  /** The address as written; host bits may be set. */
  readonly ip: IP6;
  /** The prefix length, `0..128`. */
  readonly prefixLen: number;

  /** @throws {RangeError} when `prefixLen` is not an integer in `0..128`. */
  constructor(ip: IP6, prefixLen: number) {
    checkPrefixLength(prefixLen, 128, "IPv6");
    this.ip = ip;
    this.prefixLen = prefixLen;
    Object.freeze(this);
  }

  /**
   * Parses `<IPv6 text>/n` with `n` in `0..128`, keeping host bits. The address must be IPv6
   * notation; IPv4 CIDR text is rejected.
   *
   * @throws {SyntaxError} naming the value: `invalid IPv6 CIDR format` for IPv4 CIDR text,
   * otherwise Go's `invalid CIDR address: <s>`.
   */
  static parse(s: string): IP6Net {
    const net = IP6Net.tryParse(s);
    if (net !== undefined) return net;
    throw new SyntaxError(`Cannot parse IPv6 CIDR ${quote(s)}: ${ip6NetParseReason(s)}`);
  }

  /** Like {@linkcode IP6Net.parse}, but returns `undefined` instead of throwing. */
  static tryParse(s: string): IP6Net | undefined {
    const parts = splitCIDR(s);
    if (parts === undefined) return undefined;
    const value = parseIPv6Text(parts[0]);
    const prefixLen = parsePrefixLength(parts[1], 128);
    if (value === undefined || prefixLen === undefined) return undefined;
    return new IP6Net(IP6.fromBigInt(value), prefixLen);
  }

  /** CIDR text, e.g. `fc00:1::/64`. */
  toString(): string {
    return `${this.ip}/${this.prefixLen}`;
  }

  /** JSON form: the CIDR string. */
  toJSON(): string {
    return this.toString();
  }

  /** The netmask as a 128-bit integer. */
  mask(): bigint {
    return ip6Mask(this.prefixLen);
  }

  /** The same network with the host bits cleared. */
  network(): IP6Net {
    const value = this.ip.value & this.mask();
    return value === this.ip.value ? this : new IP6Net(IP6.fromBigInt(value), this.prefixLen);
  }

  /** Whether the address, or the whole of the network, lies inside this network. */
  contains(other: IP6 | IP6Net): boolean {
    if (other instanceof IP6Net) return other.prefixLen >= this.prefixLen && this.contains(other.ip);
    const mask = this.mask();
    return (other.value & mask) === (this.ip.value & mask);
  }

  /** Whether the two networks share any address. */
  overlaps(other: IP6Net): boolean {
    const mask = ip6Mask(Math.min(this.prefixLen, other.prefixLen));
    return (this.ip.value & mask) === (other.ip.value & mask);
  }

  /**
   * The adjacent network of the same size.
   *
   * @throws {RangeError} past the end of the address space.
   */
  next(): IP6Net {
    return new IP6Net(this.network().ip.add(this.size()), this.prefixLen);
  }

  /** The number of addresses, `2^(128-prefixLen)`. */
  size(): bigint {
    return 1n << BigInt(128 - this.prefixLen);
  }

  /** Whether both have the same address and prefix length. */
  equals(other: IP6Net): boolean {
    return this.ip.equals(other.ip) && this.prefixLen === other.prefixLen;
  }

  /** The network address plus one, with the same prefix length (`fc00:1::/64` → `fc00:1::1/64`). */
  firstHost(): IP6Net {
    return new IP6Net(this.network().ip.add(1n), this.prefixLen);
  }

  /** Whether this is `::/0`, upstream's zero value. */
  isEmpty(): boolean {
    return this.ip.value === 0n && this.prefixLen === 0;
  }
}

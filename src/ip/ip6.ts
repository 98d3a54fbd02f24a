/**
 * The IPv6 address value type.
 *
 * @module
 */

import { formatIPv6, isV4Mapped, parseDottedQuad, parseIPv6Text, quote } from "./text.ts";

const ADDRESS_SPACE = 1n << 128n;

/**
 * An immutable IPv6 address, held as its 128-bit value.
 *
 * Text follows Go's `net.IP`, because upstream writes these addresses into etcd keys, lease JSON,
 * annotations and subnet.env: {@linkcode IP6.toString} prints RFC 5952 text, except that an
 * IPv4-mapped address prints as a bare dotted quad; {@linkcode IP6.parse} accepts a bare dotted quad
 * as the IPv4-mapped address, so the two round-trip.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP6 } from "./ip6.ts";
 * const ip = IP6.parse("FC00:0:0:1:0:0:0:0");
 * assert(ip.toString() === "fc00:0:0:1::");
 * assert(ip.isPrivate());
 * ```
 */
export class IP6 {
  /** The address as an unsigned 128-bit integer. */
  readonly value: bigint;

  private constructor(value: bigint) {
    this.value = value;
    Object.freeze(this);
  }

  /**
   * The address with the given 128-bit value.
   *
   * @throws {RangeError} when `n` is outside `0..2^128-1`.
   */
  static fromBigInt(n: bigint): IP6 {
    if (n < 0n || n >= ADDRESS_SPACE) {
      throw new RangeError(`Cannot make an IPv6 address from ${n}: must be in 0..2^128-1`);
    }
    return new IP6(n);
  }

  /**
   * The address in sixteen network-order bytes.
   *
   * @throws {RangeError} when `bytes` is not 16 bytes long.
   */
  static fromBytes(bytes: Uint8Array): IP6 {
    if (bytes.length !== 16) {
      throw new RangeError(`Cannot make an IPv6 address from ${bytes.length} bytes: need 16`);
    }
    let value = 0n;
    for (const b of bytes) value = (value << 8n) | BigInt(b);
    return new IP6(value);
  }

  /**
   * Parses IPv6 text (`fc00::1`, `::ffff:1.2.3.4`), or a dotted quad as its IPv4-mapped address.
   * Zones (`fe80::1%eth0`), brackets and whitespace are rejected.
   *
   * @throws {SyntaxError} naming the value, with upstream's reason after the colon.
   */
  static parse(s: string): IP6 {
    const ip = IP6.tryParse(s);
    if (ip === undefined) {
      throw new SyntaxError(`Cannot parse IPv6 address ${quote(s)}: invalid IP address format`);
    }
    return ip;
  }

  /** Like {@linkcode IP6.parse}, but returns `undefined` instead of throwing. */
  static tryParse(s: string): IP6 | undefined {
    const value = parseIPv6Text(s);
    if (value !== undefined) return new IP6(value);
    const v4 = parseDottedQuad(s);
    return v4 === undefined ? undefined : new IP6(0xffff00000000n | BigInt(v4));
  }

  /** The sixteen network-order bytes. */
  toBytes(): Uint8Array {
    const bytes = new Uint8Array(16);
    let v = this.value;
    for (let i = 15; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
    return bytes;
  }

  /** Go `net.IP` text: `fc00::1`, `2001:db8::1:0:0:1`, and `1.2.3.4` for `::ffff:1.2.3.4`. */
  toString(): string {
    return formatIPv6(this.value);
  }

  /** JSON form: the {@linkcode IP6.toString} text. */
  toJSON(): string {
    return this.toString();
  }

  /**
   * The address `n` further on (or back, for negative `n`).
   *
   * @throws {RangeError} when the result leaves the IPv6 address space.
   */
  add(n: bigint): IP6 {
    const sum = this.value + n;
    if (sum < 0n || sum >= ADDRESS_SPACE) {
      throw new RangeError(`Cannot add ${n} to ${this}: the result is outside the IPv6 address space`);
    }
    return new IP6(sum);
  }

  /** Whether both are the same address. */
  equals(other: IP6): boolean {
    return this.value === other.value;
  }

  /** Whether the address is a unique local address, in `fc00::/7` (RFC 4193). */
  isULA(): boolean {
    return this.value >> 121n === 0x7en;
  }

  /** Upstream's "private" IPv6 test: the same as {@linkcode IP6.isULA}. */
  isPrivate(): boolean {
    return this.isULA();
  }

  /** Whether the address is `::`. */
  isUnspecified(): boolean {
    return this.value === 0n;
  }

  /** Whether the address is in `::ffff:0:0/96`, which prints as a dotted quad. */
  isIPv4Mapped(): boolean {
    return isV4Mapped(this.value);
  }
}

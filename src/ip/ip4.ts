/**
 * The IPv4 address value type.
 *
 * @module
 */

import { formatDottedQuad, parseDottedQuad, parseIPv6Text, quote } from "./text.ts";

const ADDRESS_SPACE = 2 ** 32;

/**
 * The reason upstream gives for text that is not an IPv4 address: a valid IPv6 address is
 * `invalid IPv4 address format`, anything else `invalid IP address format`.
 */
export function ip4ParseReason(s: string): string {
  return parseIPv6Text(s) === undefined ? "invalid IP address format" : "invalid IPv4 address format";
}

/**
 * An immutable IPv4 address, held as its uint32 value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP4 } from "./ip4.ts";
 * const ip = IP4.parse("10.5.34.0");
 * assert(ip.add(1).toString() === "10.5.34.1");
 * assert(ip.isPrivate());
 * ```
 */
export class IP4 {
  /** The address as an unsigned 32-bit number (`10.0.0.1` is `0x0a000001`). */
  readonly value: number;

  private constructor(value: number) {
    this.value = value;
    Object.freeze(this);
  }

  /**
   * The address with the given uint32 value.
   *
   * @throws {RangeError} when `n` is not an integer in `0..2^32-1`.
   */
  static fromNumber(n: number): IP4 {
    if (!Number.isInteger(n) || n < 0 || n >= ADDRESS_SPACE) {
      throw new RangeError(`Cannot make an IPv4 address from ${n}: must be an integer in 0..4294967295`);
    }
    return new IP4(n);
  }

  /**
   * The address in four network-order bytes.
   *
   * @throws {RangeError} when `bytes` is not 4 bytes long.
   */
  static fromBytes(bytes: Uint8Array): IP4 {
    if (bytes.length !== 4) {
      throw new RangeError(`Cannot make an IPv4 address from ${bytes.length} bytes: need 4`);
    }
    return new IP4(((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0);
  }

  /**
   * Parses a strict dotted quad (`10.0.0.1`). IPv6 text, IPv4-mapped IPv6 text, leading zeros,
   * whitespace and trailing junk are rejected.
   *
   * @throws {SyntaxError} naming the value, with upstream's reason after the colon.
   */
  static parse(s: string): IP4 {
    const ip = IP4.tryParse(s);
    if (ip === undefined) {
      throw new SyntaxError(`Cannot parse IPv4 address ${quote(s)}: ${ip4ParseReason(s)}`);
    }
    return ip;
  }

  /** Like {@linkcode IP4.parse}, but returns `undefined` instead of throwing. */
  static tryParse(s: string): IP4 | undefined {
    const value = parseDottedQuad(s);
    return value === undefined ? undefined : new IP4(value);
  }

  /** The four network-order bytes. */
  toBytes(): Uint8Array {
    const v = this.value;
    return Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  }

  /** Dotted-quad text, e.g. `10.5.34.0`. */
  toString(): string {
    return formatDottedQuad(this.value);
  }

  /** JSON form: the dotted-quad string, as upstream's lease and config JSON carry it. */
  toJSON(): string {
    return this.toString();
  }

  /**
   * The address `n` further on (or back, for negative `n`).
   *
   * @throws {RangeError} when the result leaves the IPv4 address space; upstream wraps around
   * silently, which turns a scan past `255.255.255.255` into an endless loop.
   */
  add(n: number): IP4 {
    const sum = this.value + n;
    if (!Number.isInteger(n) || sum < 0 || sum >= ADDRESS_SPACE) {
      throw new RangeError(`Cannot add ${n} to ${this}: the result is outside the IPv4 address space`);
    }
    return new IP4(sum);
  }

  /** Whether both are the same address. */
  equals(other: IP4): boolean {
    return this.value === other.value;
  }

  /** Whether the address is in an RFC 1918 range: 10/8, 172.16/12 or 192.168/16. */
  isPrivate(): boolean {
    const v = this.value;
    return v >>> 24 === 10 || v >>> 20 === 0xac1 || v >>> 16 === 0xc0a8;
  }

  /** Whether the address is `0.0.0.0`, which upstream also uses for "not set". */
  isUnspecified(): boolean {
    return this.value === 0;
  }
}

/**
 * Addresses in rtnetlink messages: IP addresses as our {@linkcode IP4}/{@linkcode IP6} value
 * types, link-layer (MAC) addresses as raw bytes with text helpers.
 *
 * @module
 */
import { IP4, IP6 } from "../../ip/mod.ts";
import { AF_INET, AF_INET6 } from "./constants.ts";

/** An IPv4 or IPv6 address. */
export type IP = IP4 | IP6;

/** The address family of an address: `AF_INET` or `AF_INET6`. */
export function familyOf(ip: IP): number {
  return ip instanceof IP4 ? AF_INET : AF_INET6;
}

/** The address in network byte order: 4 or 16 bytes. */
export function ipBytes(ip: IP): Uint8Array {
  return ip.toBytes();
}

/** The address in 4 (IPv4) or 16 (IPv6) network-order bytes, or `undefined` for any other length. */
export function ipFromBytes(b: Uint8Array): IP | undefined {
  if (b.length === 4) return IP4.fromBytes(b);
  if (b.length === 16) return IP6.fromBytes(b);
  return undefined;
}

/**
 * Formats a link-layer address as lower-case hex octets joined by colons, as `ip link` prints it.
 *
 * @example
 * ```ts
 * import { formatMac } from "./addresses.ts";
 * console.assert(formatMac(Uint8Array.of(10, 88, 10, 5, 34, 0)) === "0a:58:0a:05:22:00");
 * ```
 */
export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/**
 * Parses a colon-separated link-layer address (`0a:58:0a:05:22:00`, any number of octets).
 *
 * @throws {SyntaxError} when an octet is not one or two hex digits.
 */
export function parseMac(s: string): Uint8Array {
  const parts = s.split(":");
  if (!parts.every((p) => /^[0-9a-fA-F]{1,2}$/.test(p))) {
    throw new SyntaxError(
      `Cannot parse link-layer address ${JSON.stringify(s)}: expected hex octets like 0a:58:0a:05:22:00`,
    );
  }
  return Uint8Array.from(parts, (p) => parseInt(p, 16));
}

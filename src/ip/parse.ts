/**
 * Family-agnostic parsing: text in, the IPv4 or IPv6 value out.
 *
 * @module
 */

import { IP4Net, IP6Net } from "./cidr.ts";
import { IP4 } from "./ip4.ts";
import { IP6 } from "./ip6.ts";
import { escapeControls, parseIPv6Text, quote } from "./text.ts";

/**
 * Parses an address: a dotted quad gives an {@linkcode IP4}, IPv6 notation an {@linkcode IP6}
 * (also for IPv4-mapped text such as `::ffff:1.2.3.4`).
 *
 * @throws {SyntaxError} naming the value when it is neither.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIP } from "./parse.ts";
 * import { IP6 } from "./ip6.ts";
 * assert(parseIP("fc00::1") instanceof IP6);
 * assert(parseIP("10.0.0.1").toString() === "10.0.0.1");
 * ```
 */
export function parseIP(s: string): IP4 | IP6 {
  const ip4 = IP4.tryParse(s);
  if (ip4 !== undefined) return ip4;
  const value = parseIPv6Text(s);
  if (value === undefined) {
    throw new SyntaxError(`Cannot parse IP address ${quote(s)}: invalid IP address format`);
  }
  return IP6.fromBigInt(value);
}

/**
 * Parses CIDR text into an {@linkcode IP4Net} or {@linkcode IP6Net}, keeping host bits.
 *
 * @throws {SyntaxError} naming the value, with Go's `invalid CIDR address: <s>` after the colon.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCIDR } from "./parse.ts";
 * import { IP4Net } from "./cidr.ts";
 * assert(parseCIDR("10.244.0.0/16") instanceof IP4Net);
 * assert(parseCIDR("fd00::/56").toString() === "fd00::/56");
 * ```
 */
export function parseCIDR(s: string): IP4Net | IP6Net {
  const net = IP4Net.tryParse(s) ?? IP6Net.tryParse(s);
  if (net === undefined) {
    throw new SyntaxError(`Cannot parse CIDR ${quote(s)}: invalid CIDR address: ${escapeControls(s)}`);
  }
  return net;
}

/**
 * Subnet keys: the last path element of `<prefix>/subnets/<key>` in etcd, one per node lease.
 *
 * - IPv4 only: `10.5.34.0-24`
 * - dual stack: `10.12.13.0-24&fd00:12:13::-56`
 *
 * The parser reproduces upstream's pattern
 * `(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$` exactly, quirks included: it is anchored at
 * the end only (so `x10.5.34.0-24` is accepted as `10.5.34.0/24`), two of its dots are unescaped,
 * the IPv4 prefix length must fit in 5 bits (`-32` is rejected) and the IPv6 one in 7 bits (`-128`
 * is rejected). Other flannel versions write keys into the same etcd, so we accept what they accept.
 *
 * @module
 */

import { IP4Net, IP6Net } from "./cidr.ts";
import { IP4 } from "./ip4.ts";
import { IP6 } from "./ip6.ts";
import { parseDottedQuad, parseIPv6Text, parsePrefixLength } from "./text.ts";

/** Go's `.` matches anything but a newline; JavaScript's also skips `\r`, U+2028 and U+2029. */
const SUBNET_KEY = /(\d+\.\d+[^\n]\d+[^\n]\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/u;

/** The largest prefix lengths upstream's bit-size-limited `strconv.ParseUint` lets through. */
const MAX_IP4_KEY_PREFIX = 31;
const MAX_IP6_KEY_PREFIX = 127;

/** The networks a subnet key names. */
export interface SubnetKey {
  ip4: IP4Net;
  ip6: IP6Net | undefined;
}

/**
 * Parses a subnet key. Returns `undefined` for a key that is not a subnet (upstream ignores those).
 * Host bits are kept as written.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSubnetKey } from "./subnet_key.ts";
 * const key = parseSubnetKey("10.12.13.0-24&fd00:12:13::-56");
 * assert(key?.ip4.toString() === "10.12.13.0/24");
 * assert(key?.ip6?.toString() === "fd00:12:13::/56");
 * assert(parseSubnetKey("10.12.13.0-24hi") === undefined);
 * ```
 */
export function parseSubnetKey(key: string): SubnetKey | undefined {
  const m = SUBNET_KEY.exec(key);
  if (m === null) return undefined;
  const [, ip4Text = "", ip4Prefix = "", ip6Text, ip6Prefix = ""] = m;
  const ip4 = parseDottedQuad(ip4Text);
  const prefix4 = parsePrefixLength(ip4Prefix, MAX_IP4_KEY_PREFIX);
  if (ip4 === undefined || prefix4 === undefined) return undefined;
  const ip4Net = new IP4Net(IP4.fromNumber(ip4), prefix4);
  if (ip6Text === undefined) return { ip4: ip4Net, ip6: undefined };
  const ip6 = parseIPv6Text(ip6Text);
  const prefix6 = parsePrefixLength(ip6Prefix, MAX_IP6_KEY_PREFIX);
  if (ip6 === undefined || prefix6 === undefined) return undefined;
  return { ip4: ip4Net, ip6: new IP6Net(IP6.fromBigInt(ip6), prefix6) };
}

/**
 * Formats the subnet key for a lease: `10.5.34.0-24`, or `10.12.13.0-24&fd00:12:13::-56`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeSubnetKey } from "./subnet_key.ts";
 * import { IP4Net } from "./cidr.ts";
 * assert(makeSubnetKey(IP4Net.parse("10.5.34.0/24")) === "10.5.34.0-24");
 * ```
 */
export function makeSubnetKey(ip4: IP4Net, ip6?: IP6Net): string {
  const key = `${ip4.ip}-${ip4.prefixLen}`;
  return ip6 === undefined ? key : `${key}&${ip6.ip}-${ip6.prefixLen}`;
}

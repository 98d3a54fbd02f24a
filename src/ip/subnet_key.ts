/**
 * Subnet keys: the last path element of `<prefix>/subnets/<key>` in etcd, one per node lease.
 *
 * - IPv4 only: `10.5.34.0-24`
 * - dual stack: `10.12.13.0-24&fd00:12:13::-56`
 *
 * Parsing reproduces upstream's pattern `(\d+\.\d+.\d+.\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$` exactly,
 * quirks included: it is anchored at the end only (so `x10.5.34.0-24` is accepted as `10.5.34.0/24`),
 * two of its dots are unescaped, the IPv4 prefix length must fit in 5 bits (`-32` is rejected) and the
 * IPv6 one in 7 bits (`-128` is rejected). Other flannel versions write keys into the same etcd, so we
 * accept what they accept.
 *
 * The pattern is matched by hand rather than with a JavaScript RegExp: Go's RE2 runs in linear time,
 * but a backtracking engine takes cubic time on long digit runs (a 2000-character key takes seconds).
 * tests/unit/subnet_key_test.ts checks the hand matcher against the RegExp on random keys.
 *
 * @module
 */

import { IP4Net, IP6Net } from "./cidr.ts";
import { IP4 } from "./ip4.ts";
import { IP6 } from "./ip6.ts";
import { parseDottedQuad, parseIPv6Text, parsePrefixLength } from "./text.ts";

/** The largest prefix lengths upstream's bit-size-limited `strconv.ParseUint` lets through. */
const MAX_IP4_KEY_PREFIX = 31;
const MAX_IP6_KEY_PREFIX = 127;

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isHexOrColon = (c: string | undefined) =>
  isDigit(c) || (c !== undefined && c >= "a" && c <= "f") || c === ":";

/** Where the run of digits that ends just before `end` starts (`end` itself when there is none). */
function digitRunStart(s: string[], end: number): number {
  let i = end;
  while (i > 0 && isDigit(s[i - 1])) i--;
  return i;
}

/**
 * Whether `s[from..end)` matches `\d+.\d+.\d+` (Go's `.` is any code point but `\n`), given the
 * positions of its non-digits in ascending order: they must be usable as the two `.`s.
 */
function matchesDigitsDotDigitsDotDigits(
  s: string[],
  from: number,
  end: number,
  nonDigits: number[],
): boolean {
  const len = end - from;
  if (len < 5 || nonDigits.some((k) => s[k] === "\n")) return false;
  const [k1, k2] = nonDigits.map((k) => k - from);
  if (k1 === undefined) return true;
  if (k2 === undefined) return (k1 >= 1 && k1 <= len - 4) || (k1 >= 3 && k1 <= len - 2);
  return nonDigits.length === 2 && k1 >= 1 && k2 >= k1 + 2 && k2 <= len - 2;
}

/**
 * The leftmost start of a match of `\d+\.\d+.\d+.\d+` that ends exactly at `end`, or -1. The part
 * after the literal dot holds at most two non-digits, so the dot is one of the last three non-digits.
 */
function ip4FieldStart(s: string[], end: number): number {
  const nonDigits: number[] = [];
  for (let i = end - 1; i >= 0 && nonDigits.length < 3; i--) if (!isDigit(s[i])) nonDigits.unshift(i);
  for (const [n, dot] of nonDigits.entries()) {
    if (s[dot] !== "." || !isDigit(s[dot - 1])) continue;
    if (matchesDigitsDotDigitsDotDigits(s, dot + 1, end, nonDigits.slice(n + 1))) {
      return digitRunStart(s, dot);
    }
  }
  return -1;
}

/**
 * The capture groups upstream's pattern yields for `key` (IPv4 address, prefix length, and for a
 * dual-stack key IPv6 address and prefix length), or `undefined` when it does not match. Exported
 * for the test that compares it with the RegExp.
 */
export function matchSubnetKey(key: string): [string, string, string?, string?] | undefined {
  const s = Array.from(key);
  const join = (from: number, to: number) => s.slice(from, to).join("");
  const lastDigits = digitRunStart(s, s.length);
  const lastDash = lastDigits - 1;
  if (lastDigits === s.length || s[lastDash] !== "-") return undefined;
  // Without the optional group: `A-D` at the end.
  const plainStart = ip4FieldStart(s, lastDash);
  // With it: `A-D&H-D` at the end; H runs back to an `&`, the digits before that back to a `-`.
  let h = lastDash;
  while (h > 0 && isHexOrColon(s[h - 1])) h--;
  const d1 = digitRunStart(s, h - 1);
  const dualOk = h < lastDash && s[h - 1] === "&" && d1 < h - 1 && s[d1 - 1] === "-";
  const dualStart = dualOk ? ip4FieldStart(s, d1 - 1) : -1;
  // The leftmost start wins. From the same start the RegExp tries the plain form first: its second
  // digit run is longer, and the engine backtracks greedy runs from the longest.
  if (dualStart >= 0 && (plainStart < 0 || dualStart < plainStart)) {
    return [join(dualStart, d1 - 1), join(d1, h - 1), join(h, lastDash), join(lastDigits, s.length)];
  }
  if (plainStart >= 0) return [join(plainStart, lastDash), join(lastDigits, s.length)];
  return undefined;
}

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
  const m = matchSubnetKey(key);
  if (m === undefined) return undefined;
  const [ip4Text, ip4Prefix, ip6Text, ip6Prefix = ""] = m;
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

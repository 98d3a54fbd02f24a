/**
 * Text codecs for IP addresses and prefix lengths, as pure functions that return `undefined`
 * instead of throwing. The value classes build their errors on top of these.
 *
 * The accepted syntax is what upstream flanneld accepts, because upstream reads addresses with Go's
 * `net.ParseIP` / `net.ParseCIDR`:
 * - IPv4: exactly four decimal fields 0..255, no leading zeros (Go rejects `010.0.0.1` since 1.17,
 *   because other tools read it as octal), no whitespace, no zone.
 * - IPv6: 1..4 hex digits per group, either case, at most one `::` which stands for at least one
 *   zero group, an optional dotted quad as the last 32 bits, no zone (`%eth0`).
 * - Prefix lengths: one or more ASCII digits, leading zeros allowed (Go's `net.ParseCIDR` and
 *   `strconv.ParseUint` both take `/024`).
 *
 * @module
 */

const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
const DOTTED_QUAD = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DIGITS = /^\d+$/;

/** The IPv4-mapped prefix `::ffff:0:0/96`, shifted down by 32 bits. */
const V4_MAPPED_HIGH = 0xffffn;

/**
 * Parses a strict dotted quad into its uint32 value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDottedQuad } from "./text.ts";
 * assert(parseDottedQuad("10.0.0.1") === 0x0a000001);
 * assert(parseDottedQuad("010.0.0.1") === undefined);
 * ```
 */
export function parseDottedQuad(s: string): number | undefined {
  if (!DOTTED_QUAD.test(s)) return undefined;
  let value = 0;
  for (const field of s.split(".")) value = value * 256 + Number(field);
  return value;
}

/** Formats a uint32 as a dotted quad. */
export function formatDottedQuad(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 0xff}.${(value >>> 8) & 0xff}.${value & 0xff}`;
}

/** Splits `a:b:c` into 16-bit words; `""` is no words. */
function hexGroups(part: string): number[] | undefined {
  if (part === "") return [];
  const words: number[] = [];
  for (const group of part.split(":")) {
    if (!HEX_GROUP.test(group)) return undefined;
    words.push(parseInt(group, 16));
  }
  return words;
}

/**
 * Parses IPv6 notation (it must contain a colon) into its 128-bit value.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIPv6Text } from "./text.ts";
 * assert(parseIPv6Text("::1") === 1n);
 * assert(parseIPv6Text("::ffff:1.2.3.4") === 0xffff01020304n);
 * assert(parseIPv6Text("1.2.3.4") === undefined);
 * ```
 */
export function parseIPv6Text(s: string): bigint | undefined {
  const lastColon = s.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  let rest = s;
  let embedded: number | undefined;
  if (s.includes(".")) {
    embedded = parseDottedQuad(s.slice(lastColon + 1));
    if (embedded === undefined) return undefined;
    // Keep a `::` that directly precedes the dotted quad; drop a single separating colon.
    rest = s.slice(0, lastColon + 1);
    if (!rest.endsWith("::")) rest = rest.slice(0, -1);
  }
  const tailWords = embedded === undefined ? [] : [embedded >>> 16, embedded & 0xffff];
  let words: number[];
  const gap = rest.indexOf("::");
  if (gap < 0) {
    const all = hexGroups(rest);
    if (all === undefined || all.length + tailWords.length !== 8) return undefined;
    words = all;
  } else {
    if (rest.indexOf("::", gap + 1) >= 0) return undefined;
    const left = hexGroups(rest.slice(0, gap));
    const right = hexGroups(rest.slice(gap + 2));
    if (left === undefined || right === undefined) return undefined;
    const zeros = 8 - tailWords.length - left.length - right.length;
    if (zeros < 1) return undefined;
    words = [...left, ...new Array<number>(zeros).fill(0), ...right];
  }
  let value = 0n;
  for (const word of [...words, ...tailWords]) value = (value << 16n) | BigInt(word);
  return value;
}

/** Whether a 128-bit value is in `::ffff:0:0/96`. */
export function isV4Mapped(value: bigint): boolean {
  return value >> 32n === V4_MAPPED_HIGH;
}

/**
 * Formats a 128-bit value the way Go's `net.IP.String` does: an IPv4-mapped address prints as a
 * bare dotted quad (`::ffff:1.2.3.4` → `1.2.3.4`); anything else as lowercase hex groups without
 * leading zeros, with the longest run of two or more zero groups (the first, on a tie) written as
 * `::` (RFC 5952).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIPv6 } from "./text.ts";
 * assert(formatIPv6(0x20010db8000000000001000000000001n) === "2001:db8::1:0:0:1");
 * ```
 */
export function formatIPv6(value: bigint): string {
  if (isV4Mapped(value)) return formatDottedQuad(Number(value & 0xffffffffn));
  const words: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) words.push(Number((value >> shift) & 0xffffn));
  let runStart = -1;
  let runLength = 1; // only runs of two or more groups are compressed
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > runLength) [runStart, runLength] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(":");
  if (runStart < 0) return hex(words);
  return `${hex(words.slice(0, runStart))}::${hex(words.slice(runStart + runLength))}`;
}

/**
 * Parses a decimal prefix length in `0..max`. Leading zeros are accepted, as Go does.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePrefixLength } from "./text.ts";
 * assert(parsePrefixLength("024", 32) === 24);
 * assert(parsePrefixLength("33", 32) === undefined);
 * ```
 */
export function parsePrefixLength(s: string, max: number): number | undefined {
  if (!DIGITS.test(s)) return undefined;
  const n = Number(s);
  return n <= max ? n : undefined;
}

// deno-lint-ignore no-control-regex -- matching control characters is the point: they get escaped
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const SHORT_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/**
 * `s` with control and line-separator characters escaped (`\n`, `\u0000`), so that an error
 * message quoting it stays on one line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeControls } from "./text.ts";
 * assert.equal(escapeControls("10.0.0.0/8\n"), "10.0.0.0/8\\n");
 * ```
 */
export function escapeControls(s: string): string {
  return s.replace(CONTROL, (c) => SHORT_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** `s` as a JSON string literal that prints on one line, for naming a value in an error message. */
export function quote(s: string): string {
  return escapeControls(JSON.stringify(s));
}

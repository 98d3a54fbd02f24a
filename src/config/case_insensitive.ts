/**
 * Case-insensitive field lookup with Go `encoding/json` semantics, for net-conf.json and backend
 * options, which upstream decodes into Go structs.
 *
 * Go matches an object key to a struct field when the two are equal under Unicode simple case
 * folding (`bytes.EqualFold`), and decodes every matching key in document order, so the **last**
 * matching key wins: `{"network": "a", "Network": "b"}` gives `b`. For our ASCII field names the
 * folding also lets U+212A KELVIN SIGN stand for `k` and U+017F LONG S for `s`.
 *
 * One difference remains: `JSON.parse` keeps an exactly repeated key at its first position, so
 * when a key is repeated exactly *and* also appears in another case, the winner can differ.
 *
 * @module
 */

const KELVIN = 0x212a;
const LONG_S = 0x17f;

/** Folds one code point of a key the way Go's EqualFold relates it to an ASCII letter. */
function foldCodePoint(cp: number): number {
  if (cp === KELVIN) return 0x6b; // k
  if (cp === LONG_S) return 0x73; // s
  return cp >= 0x41 && cp <= 0x5a ? cp + 0x20 : cp;
}

/**
 * Whether `key` equals the ASCII field `name` ignoring case, as Go's `encoding/json` decides.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { keyMatches } from "./case_insensitive.ts";
 * assert(keyMatches("subnetlen", "SubnetLen"));
 * assert(!keyMatches("subnet_len", "SubnetLen"));
 * ```
 */
export function keyMatches(key: string, name: string): boolean {
  const a = Array.from(key, (c) => foldCodePoint(c.codePointAt(0)!));
  if (a.length !== name.length) return false;
  return a.every((cp, i) => cp === foldCodePoint(name.charCodeAt(i)));
}

/**
 * The value of the field `name` in a decoded JSON object, matching keys case-insensitively like Go
 * `encoding/json`: when several keys match, the last one in the object wins. Returns `undefined`
 * when no key matches. Only own properties are considered.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { getField } from "./case_insensitive.ts";
 * assert.equal(getField({ network: "10.3.0.0/16" }, "Network"), "10.3.0.0/16");
 * assert.equal(getField({ VNI: 1 }, "Port"), undefined);
 * ```
 */
export function getField(obj: Record<string, unknown>, name: string): unknown {
  let found: unknown = undefined;
  for (const key of Object.keys(obj)) {
    if (keyMatches(key, name)) found = obj[key];
  }
  return found;
}

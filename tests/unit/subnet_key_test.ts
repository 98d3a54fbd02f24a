import assert from "node:assert/strict";
import fc from "fast-check";
import { IP4, IP4Net, IP6, IP6Net, makeSubnetKey, parseSubnetKey } from "../../src/ip/mod.ts";
import { matchSubnetKey } from "../../src/ip/subnet_key.ts";

// Upstream pkg/subnet subnet_test: TestSubnetNodev4, TestSubnetNodev6, TestSubnetNodeInvalid.

Deno.test("an IPv4 subnet key parses and round-trips", () => {
  const key = parseSubnetKey("10.12.13.0-24");
  assert(key !== undefined);
  assert.equal(key.ip4.toString(), "10.12.13.0/24");
  assert.equal(key.ip6, undefined);
  assert.equal(makeSubnetKey(key.ip4), "10.12.13.0-24");
  assert.equal(makeSubnetKey(IP4Net.parse("10.5.34.0/24")), "10.5.34.0-24");
});

Deno.test("a dual-stack subnet key parses and round-trips", () => {
  const key = parseSubnetKey("10.12.13.0-24&fd00:12:13::-56");
  assert(key !== undefined);
  assert.equal(key.ip4.toString(), "10.12.13.0/24");
  assert.equal(key.ip6?.toString(), "fd00:12:13::/56");
  assert.equal(makeSubnetKey(key.ip4, key.ip6), "10.12.13.0-24&fd00:12:13::-56");
});

Deno.test("keys that are not subnets are rejected", () => {
  const invalid = [
    "10",
    "10.12.13.0",
    "10.12.13-24",
    "10.12.13.300-24",
    "10.12.13.0-24hi",
    "&2001::-56",
    "10.12.13.0-24&:12:13:-56",
    "10.12.13.0-24&20011::-56",
    "10.12.13.0-24&2001-56",
    "10.12.13.0-24&2001::",
    "10.12.13.0-24&2001::-56hi",
  ];
  for (const key of invalid) assert.equal(parseSubnetKey(key), undefined, key);
});

Deno.test("subnet key quirks kept from upstream's pattern", () => {
  // Anchored at the end only: leading junk is skipped.
  assert.equal(parseSubnetKey("x10.12.13.0-24")?.ip4.toString(), "10.12.13.0/24");
  assert.equal(parseSubnetKey("/coreos.com/network/subnets/10.12.13.0-24")?.ip4.toString(), "10.12.13.0/24");
  // IPv4 prefix length fits in 5 bits, IPv6 in 7; leading zeros are fine.
  assert.equal(parseSubnetKey("10.12.13.0-31")?.ip4.prefixLen, 31);
  assert.equal(parseSubnetKey("10.12.13.0-32"), undefined);
  assert.equal(parseSubnetKey("10.12.13.0-024")?.ip4.prefixLen, 24);
  assert.equal(parseSubnetKey("10.12.13.0-24&fd00::-127")?.ip6?.prefixLen, 127);
  assert.equal(parseSubnetKey("10.12.13.0-24&fd00::-128"), undefined);
  // Host bits are kept as written.
  assert.equal(parseSubnetKey("10.12.13.7-24")?.ip4.toString(), "10.12.13.7/24");
  // The IPv6 part is lowercase hex and colons only.
  assert.equal(parseSubnetKey("10.12.13.0-24&FD00::-56"), undefined);
  assert.equal(parseSubnetKey("10.12.13.0-24&::ffff:1.2.3.4-120"), undefined);
  // Two of the pattern's dots match any character, but the address must still parse.
  assert.equal(parseSubnetKey("10.12x13y0-24"), undefined);
  // When both forms match from the same start, the pattern takes the one without the IPv6 part.
  assert.deepEqual(matchSubnetKey("1.23456-7&8-9"), ["1.23456-7&8", "9"]);
  assert.equal(parseSubnetKey("1.23456-7&8-9"), undefined);
  // Leading zeros in the address and a trailing newline are rejected.
  assert.equal(parseSubnetKey("010.12.13.0-24"), undefined);
  assert.equal(parseSubnetKey("10.12.13.0-24\n"), undefined);
});

const ip4Key = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 31 }))
  .map(([n, p]) => new IP4Net(IP4.fromNumber(n), p));
const ip6Key = fc.tuple(
  fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).filter((v) => v >> 32n !== 0xffffn),
  fc.integer({ min: 0, max: 127 }),
).map(([v, p]) => new IP6Net(IP6.fromBigInt(v), p));

Deno.test("property: subnet keys round-trip", () => {
  fc.assert(fc.property(ip4Key, fc.option(ip6Key, { nil: undefined }), (ip4, ip6) => {
    const key = makeSubnetKey(ip4, ip6);
    const parsed = parseSubnetKey(key);
    assert(parsed !== undefined, key);
    assert(parsed.ip4.equals(ip4));
    if (ip6 === undefined) assert.equal(parsed.ip6, undefined);
    else assert(parsed.ip6?.equals(ip6));
    assert.equal(makeSubnetKey(parsed.ip4, parsed.ip6), key);
  }));
});

/** Upstream's pattern, run by a backtracking engine: the oracle for the linear-time matcher. */
const UPSTREAM_PATTERN = /(\d+\.\d+[^\n]\d+[^\n]\d+)-(\d+)(?:&([a-f\d:]+)-(\d+))?$/u;

function oracle(key: string): string | undefined {
  const m = UPSTREAM_PATTERN.exec(key);
  if (m === null) return undefined;
  const [, a = "", p = "", h, q = ""] = m;
  const prefix = (s: string, max: number) => /^\d+$/.test(s) && Number(s) <= max;
  if (IP4.tryParse(a) === undefined || !prefix(p, 31)) return undefined;
  if (h === undefined) return `${a}/${Number(p)}`;
  const ip6 = IP6.tryParse(h);
  if (ip6 === undefined || !prefix(q, 127)) return undefined;
  return `${a}/${Number(p)} ${ip6}/${Number(q)}`;
}

function describeKey(key: string): string | undefined {
  const parsed = parseSubnetKey(key);
  if (parsed === undefined) return undefined;
  return parsed.ip6 === undefined ? `${parsed.ip4}` : `${parsed.ip4} ${parsed.ip6}`;
}

const keyText = fc.oneof(
  fc.string({ unit: fc.constantFrom(..."0123456789.-&af:x\n\r\u2028😀".split(/(?:)/u)), maxLength: 30 }),
  fc.array(
    fc.oneof(
      fc.constantFrom(".", "-", "&", ":", "::", "\n", "😀", "x"),
      fc.stringMatching(/^\d{1,4}$/),
      fc.stringMatching(/^[0-9a-f]{1,4}$/),
      fc.constantFrom("10.12.13.0", "1.2.3.4", "fd00:12:13::", "24", "024", "31", "32", "127", "128"),
    ),
    { maxLength: 12 },
  ).map((parts) => parts.join("")),
  fc.string({ unit: "binary", maxLength: 30 }),
  // Short digit runs between single separators: where the pattern's alternatives compete.
  fc.array(fc.tuple(fc.stringMatching(/^\d{0,3}$/), fc.constantFrom(".", "-", "&", ":", "a", "x", "\n")), {
    maxLength: 8,
  }).chain((parts) =>
    fc.stringMatching(/^\d{1,2}$/).map((last) => parts.map(([d, sep]) => d + sep).join("") + last)
  ),
);

Deno.test("property: parseSubnetKey agrees with upstream's pattern", () => {
  fc.assert(
    fc.property(keyText, (key) => {
      assert.equal(describeKey(key), oracle(key), JSON.stringify(key));
      const m = UPSTREAM_PATTERN.exec(key);
      assert.deepEqual(
        matchSubnetKey(key),
        m === null ? undefined : m.slice(1).filter((g) => g !== undefined),
      );
    }),
    { numRuns: 20000 },
  );
});

Deno.test("parseSubnetKey takes linear time on long digit runs", () => {
  const key = "1.1.1.1" + "1".repeat(100_000) + "-24";
  const started = performance.now();
  assert.equal(parseSubnetKey(key), undefined);
  assert(performance.now() - started < 1000);
});

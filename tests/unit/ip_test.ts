import assert from "node:assert/strict";
import fc from "fast-check";
import { IP4, IP4Net, IP6, IP6Net, parseCIDR, parseIP } from "../../src/ip/mod.ts";

// --- IP4 (upstream pkg/ip TestIP4) -----------------------------------------------------------------

Deno.test("IP4 parses, prints and serialises a dotted quad", () => {
  const ip = IP4.parse("1.2.3.4");
  assert.equal(ip.value, 0x01020304);
  assert.deepEqual([...ip.toBytes()], [1, 2, 3, 4]);
  assert.equal(ip.toString(), "1.2.3.4");
  assert.equal(JSON.stringify(ip), '"1.2.3.4"');
  assert.equal(JSON.stringify({ PublicIP: ip }), '{"PublicIP":"1.2.3.4"}');
  assert(IP4.fromBytes(Uint8Array.of(1, 2, 3, 4)).equals(ip));
  assert(IP4.fromNumber(0x01020304).equals(ip));
  assert(!ip.equals(IP4.parse("1.2.3.5")));
});

Deno.test("IP4.parse rejects IPv6 text with upstream's reason", () => {
  for (const s of ["fc00::1", "::ffff:1.2.3.4", "::1"]) {
    assert.throws(() => IP4.parse(s), {
      name: "SyntaxError",
      message: `Cannot parse IPv4 address ${JSON.stringify(s)}: invalid IPv4 address format`,
    });
  }
  assert.throws(() => IP4.parse("1.2.3"), {
    name: "SyntaxError",
    message: 'Cannot parse IPv4 address "1.2.3": invalid IP address format',
  });
});

Deno.test("IP4.parse is a strict dotted quad", () => {
  for (const s of ["0.0.0.0", "255.255.255.255", "10.0.0.1", "192.168.100.200"]) {
    assert.equal(IP4.parse(s).toString(), s);
  }
  const bad = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "1.2.3.256",
    "01.2.3.4",
    "1.2.3.00",
    "1.2.3.-1",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4\n",
    "x1.2.3.4",
    "1.2.3.4x",
    "0x1.2.3.4",
    "1..3.4",
    "1.2.3.4/32",
    "１.2.3.4",
    "1.2.3.4%eth0",
  ];
  for (const s of bad) assert.equal(IP4.tryParse(s), undefined, s);
});

Deno.test("IP4.isPrivate is RFC 1918", () => {
  for (const s of ["10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1"]) {
    assert.equal(IP4.parse(s).isPrivate(), true, s);
  }
  for (const s of ["8.8.8.8", "172.32.0.1", "172.15.255.255", "192.167.0.1", "192.169.0.1", "11.0.0.0"]) {
    assert.equal(IP4.parse(s).isPrivate(), false, s);
  }
});

Deno.test("IP4 arithmetic stays inside the address space", () => {
  assert.equal(IP4.parse("10.0.0.255").add(1).toString(), "10.0.1.0");
  assert.equal(IP4.parse("10.0.1.0").add(-1).toString(), "10.0.0.255");
  assert.equal(IP4.parse("0.0.0.0").isUnspecified(), true);
  assert.equal(IP4.parse("0.0.0.1").isUnspecified(), false);
  assert.throws(() => IP4.parse("255.255.255.255").add(1), RangeError);
  assert.throws(() => IP4.parse("0.0.0.0").add(-1), RangeError);
  assert.throws(() => IP4.parse("0.0.0.0").add(0.5), RangeError);
  for (const n of [-1, 2 ** 32, 1.5, NaN]) assert.throws(() => IP4.fromNumber(n), RangeError);
  assert.throws(() => IP4.fromBytes(new Uint8Array(16)), RangeError);
  assert(Object.isFrozen(IP4.parse("1.2.3.4")));
});

// --- IP4Net (upstream TestIP4Net) ----------------------------------------------------------------

Deno.test("IP4Net prints, overlaps, contains and serialises like upstream", () => {
  const net = IP4Net.parse("1.2.3.0/24");
  assert.equal(net.toString(), "1.2.3.0/24");
  assert.equal(net.ip.toString(), "1.2.3.0");
  assert.equal(net.prefixLen, 24);
  assert.equal(JSON.stringify(net), '"1.2.3.0/24"');

  assert(net.overlaps(net));
  assert(net.overlaps(IP4Net.parse("1.2.0.0/16")));
  assert(IP4Net.parse("1.2.0.0/16").overlaps(net));
  assert(!net.overlaps(IP4Net.parse("1.2.4.0/24")));
  assert(!net.overlaps(IP4Net.parse("7.2.4.0/22")));

  assert(net.contains(IP4.parse("1.2.3.0")));
  assert(net.contains(IP4.parse("1.2.3.255")));
  assert(!net.contains(IP4.parse("1.2.4.0")));
  assert(IP4Net.parse("1.2.0.0/16").contains(net));
  assert(net.contains(net));
  assert(!net.contains(IP4Net.parse("1.2.0.0/16")));

  assert.equal(net.firstHost().toString(), "1.2.3.1/24");
});

Deno.test("IP4Net.parse rejects IPv6 and malformed CIDRs with upstream's reasons", () => {
  assert.throws(() => IP4Net.parse("fc00::/64"), {
    name: "SyntaxError",
    message: 'Cannot parse IPv4 CIDR "fc00::/64": invalid IPv4 CIDR format',
  });
  for (
    const s of ["1.2.3.0/33", "1.2.3.0", "1.2.3.0/", "1.2.3.0/-1", "1.2.3.0/24/1", "1.2.3.0/ 24", "1.2.3/24"]
  ) {
    assert.throws(() => IP4Net.parse(s), {
      name: "SyntaxError",
      message: `Cannot parse IPv4 CIDR ${JSON.stringify(s)}: invalid CIDR address: ${s}`,
    });
  }
  // Go's net.ParseCIDR accepts leading zeros in the prefix length.
  assert.equal(IP4Net.parse("1.2.3.0/024").toString(), "1.2.3.0/24");
});

Deno.test("IP4Net keeps host bits; network() masks them", () => {
  const net = IP4Net.parse("10.5.72.9/24");
  assert.equal(net.toString(), "10.5.72.9/24");
  assert.equal(net.network().toString(), "10.5.72.0/24");
  assert.equal(net.firstHost().toString(), "10.5.72.1/24");
  assert.equal(net.next().toString(), "10.5.73.0/24");
  assert.equal(IP4Net.parse("0.0.0.0/0").network().toString(), "0.0.0.0/0");
  assert.equal(IP4Net.parse("255.255.255.255/0").network().toString(), "0.0.0.0/0");
  assert.equal(IP4Net.parse("10.1.2.3/32").network().toString(), "10.1.2.3/32");
  assert.equal(net.mask(), 0xffffff00);
});

Deno.test("IP4Net size, next, equals and isEmpty", () => {
  assert.equal(IP4Net.parse("10.0.0.0/8").size(), 2 ** 24);
  assert.equal(IP4Net.parse("0.0.0.0/0").size(), 2 ** 32);
  assert.equal(IP4Net.parse("10.0.0.0/32").size(), 1);
  assert.equal(IP4Net.parse("10.3.255.0/24").next().toString(), "10.4.0.0/24");
  assert.throws(() => IP4Net.parse("255.255.255.0/24").next(), RangeError);
  assert(IP4Net.parse("10.3.0.0/16").equals(IP4Net.parse("10.3.0.0/16")));
  assert(!IP4Net.parse("10.3.0.0/16").equals(IP4Net.parse("10.3.0.0/17")));
  assert(IP4Net.EMPTY.isEmpty());
  assert(IP4Net.parse("0.0.0.0/0").isEmpty());
  assert(!IP4Net.parse("0.0.0.0/1").isEmpty());
  assert(!IP4Net.parse("10.0.0.0/8").isEmpty());
  for (const p of [-1, 33, 1.5]) assert.throws(() => new IP4Net(IP4.fromNumber(0), p), RangeError);
});

// --- IP6 (upstream TestIP6) and RFC 5952 text -------------------------------------------------------

Deno.test("IP6 round-trips and serialises", () => {
  const ip = IP6.parse("fc00::1");
  assert.equal(ip.toString(), "fc00::1");
  assert.equal(JSON.stringify(ip), '"fc00::1"');
  assert.equal(ip.value, 0xfc000000000000000000000000000001n);
  assert(IP6.fromBytes(ip.toBytes()).equals(ip));
  assert.equal(ip.toBytes()[0], 0xfc);
  assert.equal(ip.toBytes()[15], 1);
});

Deno.test("IP6.isPrivate is fc00::/7", () => {
  for (const s of ["fc00::1", "fcff::1", "fd00::1", "fdff::1"]) {
    assert.equal(IP6.parse(s).isPrivate(), true, s);
    assert.equal(IP6.parse(s).isULA(), true, s);
  }
  for (const s of ["2001::", "fe00::", "fb00::1", "fe80::1", "::1"]) {
    assert.equal(IP6.parse(s).isPrivate(), false, s);
  }
});

Deno.test("IP6 prints like Go's net.IP (RFC 5952)", () => {
  const cases: [string, string][] = [
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // tie: the first run wins
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group is not compressed
    ["0:0:0:0:0:0:0:0", "::"],
    ["0:0:0:0:0:0:0:1", "::1"],
    ["1:0:0:0:0:0:0:0", "1::"],
    ["fc00:0:0:1:0:0:0:0", "fc00:0:0:1::"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run wins
    ["1:0:0:0:1:0:0:0", "1::1:0:0:0"],
    ["1:0:1:0:1:0:1:0", "1:0:1:0:1:0:1:0"],
    ["2001:DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["FE80::ABCD", "fe80::abcd"],
    ["::ffff:1.2.3.4", "1.2.3.4"], // IPv4-mapped: Go prints the dotted quad
    ["::ffff:0:0", "0.0.0.0"],
    ["0:0:0:0:0:ffff:a00:1", "10.0.0.1"],
    ["::1.2.3.4", "::102:304"], // IPv4-compatible is not special
    ["::fffe:1.2.3.4", "::fffe:102:304"],
    ["1::ffff:1.2.3.4", "1::ffff:102:304"],
    ["fd00:12:13::", "fd00:12:13::"],
  ];
  for (const [input, want] of cases) assert.equal(IP6.parse(input).toString(), want, input);
});

Deno.test("IP6.parse accepts Go's IPv6 syntax and rejects the rest", () => {
  const good = [
    "::",
    "::1",
    "1::",
    "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7::",
    "::2:3:4:5:6:7:8",
    "1:2:3:4:5:6::8",
    "1:2:3:4:5:6:1.2.3.4",
    "::ffff:1.2.3.4",
    "1::1.2.3.4",
    "FC00::1",
    "0001:0002::",
    "1.2.3.4",
  ];
  for (const s of good) assert.notEqual(IP6.tryParse(s), undefined, s);
  assert.equal(IP6.parse("1.2.3.4").toString(), "1.2.3.4");
  assert(IP6.parse("1.2.3.4").isIPv4Mapped());
  const bad = [
    "",
    ":",
    ":::",
    "1:::2",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::",
    "1:2:3:4:5:6:7::8",
    "::1:2:3:4:5:6:7:8",
    "12345::",
    "g::",
    "::1%eth0",
    "[::1]",
    " ::1",
    "::1 ",
    ":1::",
    "1::2:",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::01.2.3.4",
    "::1.2.3",
    "1.2.3.4::",
    "::ffff:1.2.3.4:1",
    "fe80::1/64",
    "::1.2.3.4.5",
    "1:1.2.3.4",
    "::-1",
    "+1::",
  ];
  for (const s of bad) assert.equal(IP6.tryParse(s), undefined, s);
  assert.throws(() => IP6.parse("fe80::1%eth0"), {
    name: "SyntaxError",
    message: 'Cannot parse IPv6 address "fe80::1%eth0": invalid IP address format',
  });
});

Deno.test("IP6 arithmetic stays inside the address space", () => {
  assert.equal(IP6.parse("fc00::ffff").add(1n).toString(), "fc00::1:0");
  assert.equal(IP6.parse("fc00::1:0").add(-1n).toString(), "fc00::ffff");
  assert(IP6.parse("::").isUnspecified());
  assert.throws(() => IP6.parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").add(1n), RangeError);
  assert.throws(() => IP6.parse("::").add(-1n), RangeError);
  assert.throws(() => IP6.fromBigInt(1n << 128n), RangeError);
  assert.throws(() => IP6.fromBigInt(-1n), RangeError);
  assert.throws(() => IP6.fromBytes(new Uint8Array(4)), RangeError);
});

// --- IP6Net (upstream TestIP6Net) ----------------------------------------------------------------

Deno.test("IP6Net empty, overlaps, contains, JSON and firstHost like upstream", () => {
  assert(IP6Net.EMPTY.isEmpty());
  assert(IP6Net.parse("::/0").isEmpty());
  assert(!IP6Net.parse("::/64").isEmpty());

  const net = IP6Net.parse("fc00:1::/64");
  const wide = IP6Net.parse("fc00::/16");
  assert(net.overlaps(wide));
  assert(wide.overlaps(net));
  assert(wide.contains(net));
  assert(!net.contains(wide));
  assert(!net.overlaps(IP6Net.parse("fc00:2::/64")));
  assert(!net.overlaps(IP6Net.parse("fb00:2::/48")));
  assert(!wide.overlaps(IP6Net.parse("fb00:2::/48")));
  assert(net.contains(IP6.parse("fc00:1::ffff")));
  assert(!net.contains(IP6.parse("fc00:2::")));

  assert.equal(JSON.stringify(net), '"fc00:1::/64"');
  assert.equal(net.firstHost().toString(), "fc00:1::1/64");
});

Deno.test("IP6Net parsing, masking, size and next", () => {
  assert.throws(() => IP6Net.parse("10.0.0.0/8"), {
    name: "SyntaxError",
    message: 'Cannot parse IPv6 CIDR "10.0.0.0/8": invalid IPv6 CIDR format',
  });
  for (const s of ["fc00::/129", "fc00::", "fc00::/", "fc00::%1/64", "zz::/64"]) {
    assert.throws(() => IP6Net.parse(s), {
      message: `Cannot parse IPv6 CIDR ${JSON.stringify(s)}: invalid CIDR address: ${s}`,
    });
  }
  const net = IP6Net.parse("fc00:1::5/64");
  assert.equal(net.toString(), "fc00:1::5/64");
  assert.equal(net.network().toString(), "fc00:1::/64");
  assert.equal(net.next().toString(), "fc00:1:0:1::/64");
  assert.equal(net.size(), 1n << 64n);
  assert.equal(IP6Net.parse("::/0").size(), 1n << 128n);
  assert.equal(IP6Net.parse("::ffff:10.0.0.0/104").toString(), "10.0.0.0/104");
  assert.throws(() => IP6Net.parse("ffff::/16").next(), RangeError);
  assert(IP6Net.parse("fc00::/48").equals(IP6Net.parse("FC00:0::/048")));
  for (const p of [-1, 129, 0.5]) assert.throws(() => new IP6Net(IP6.fromBigInt(0n), p), RangeError);
});

// --- parseIP / parseCIDR ---------------------------------------------------------------------------

Deno.test("parseIP and parseCIDR pick the family from the text", () => {
  assert(parseIP("10.0.0.1") instanceof IP4);
  assert(parseIP("fc00::1") instanceof IP6);
  assert(parseIP("::ffff:10.0.0.1") instanceof IP6);
  assert.throws(() => parseIP("10.0.0"), {
    name: "SyntaxError",
    message: 'Cannot parse IP address "10.0.0": invalid IP address format',
  });
  assert(parseCIDR("10.244.0.0/16") instanceof IP4Net);
  assert(parseCIDR("fd00::/56") instanceof IP6Net);
  assert.throws(() => parseCIDR("not-a-cidr"), {
    name: "SyntaxError",
    message: 'Cannot parse CIDR "not-a-cidr": invalid CIDR address: not-a-cidr',
  });
});

// --- properties ------------------------------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
/** 128-bit values, half of them built from groups that are often zero, to exercise `::`. */
const u128 = fc.oneof(
  fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }),
  fc.array(fc.oneof(fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), {
    minLength: 8,
    maxLength: 8,
  }).map((ws) => ws.reduce((acc, w) => (acc << 16n) | BigInt(w), 0n)),
);
const notMapped = u128.filter((v) => v >> 32n !== 0xffffn);

Deno.test("property: IP4 and IP4Net text round-trips", () => {
  fc.assert(fc.property(u32, (n) => {
    const ip = IP4.fromNumber(n);
    assert(IP4.parse(ip.toString()).equals(ip));
    assert(IP4.fromBytes(ip.toBytes()).equals(ip));
  }));
  fc.assert(fc.property(u32, fc.integer({ min: 0, max: 32 }), (n, p) => {
    const net = new IP4Net(IP4.fromNumber(n), p);
    assert(IP4Net.parse(net.toString()).equals(net));
    assert(parseCIDR(net.toString()).toString() === net.toString());
  }));
});

Deno.test("property: IP6 and IP6Net text round-trips", () => {
  fc.assert(fc.property(u128, (v) => {
    const ip = IP6.fromBigInt(v);
    assert(IP6.parse(ip.toString()).equals(ip));
    assert(IP6.fromBytes(ip.toBytes()).equals(ip));
  }));
  // An IPv4-mapped network prints with a dotted quad (as upstream) and is not IPv6 CIDR text.
  fc.assert(fc.property(notMapped, fc.integer({ min: 0, max: 128 }), (v, p) => {
    const net = new IP6Net(IP6.fromBigInt(v), p);
    assert(IP6Net.parse(net.toString()).equals(net));
  }));
});

Deno.test("property: IP6 text matches the WHATWG URL serializer (same RFC 5952 rules)", () => {
  fc.assert(fc.property(notMapped, (v) => {
    const text = IP6.fromBigInt(v).toString();
    assert.equal(new URL(`http://[${text}]/`).hostname, `[${text}]`);
  }));
});

const ipAlphabet = fc.constantFrom(..."0123456789abcdefABCDEF:./%-x \n".split(""));
const anyText = fc.oneof(
  fc.string({ unit: ipAlphabet, maxLength: 45 }),
  fc.string({ unit: "binary", maxLength: 45 }),
  u128.map((v) => IP6.fromBigInt(v).toString()).chain((s) => fc.nat(s.length).map((i) => s.slice(0, i))),
);

Deno.test("property: IP parsers throw nothing but SyntaxError", () => {
  const parsers = [IP4.parse, IP6.parse, IP4Net.parse, IP6Net.parse, parseIP, parseCIDR];
  fc.assert(
    fc.property(anyText, (s) => {
      for (const parse of parsers) {
        try {
          parse(s);
        } catch (e) {
          assert(e instanceof SyntaxError, `${parse.name}(${JSON.stringify(s)}) threw ${e}`);
          assert(!/[\n\r\u2028\u2029]/.test(e.message), e.message);
        }
      }
      // A strict dotted quad has exactly one spelling.
      const ip4 = IP4.tryParse(s);
      if (ip4 !== undefined) assert.equal(ip4.toString(), s);
      const ip6 = IP6.tryParse(s);
      if (ip6 !== undefined) assert(IP6.parse(ip6.toString()).equals(ip6));
    }),
    { numRuns: 2000 },
  );
});

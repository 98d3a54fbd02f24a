import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decrementTTL,
  icmpNetUnreachable,
  ipv4HeaderChecksum,
  onesSum,
  PeerTable,
} from "../../src/backends/udp/packet.ts";
import { IP4 } from "../../src/ip/mod.ts";

/** An IPv4/UDP packet 10.5.1.2 → 10.5.2.3 with a correct header checksum. */
function packet(ttl = 64, proto = 17, frag = 0): Uint8Array {
  const p = Uint8Array.from([
    0x45,
    0x00,
    0x00,
    0x21,
    0x12,
    0x34,
    frag >> 8,
    frag & 0xff,
    ttl,
    proto,
    0x00,
    0x00,
    10,
    5,
    1,
    2,
    10,
    5,
    2,
    3,
    0x30,
    0x39,
    0x00,
    0x35,
    0x00,
    0x0d,
    0x00,
    0x00,
    0x68,
    0x65,
    0x6c,
    0x6c,
    0x6f,
  ]);
  const c = ipv4HeaderChecksum(p);
  p[10] = c >> 8;
  p[11] = c & 0xff;
  return p;
}

Deno.test("udp core: header checksum of a known header (RFC 1071 example shape)", () => {
  // The classic example header from RFC 1071 discussions: 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7.
  const h = Uint8Array.from([
    0x45,
    0x00,
    0x00,
    0x73,
    0x00,
    0x00,
    0x40,
    0x00,
    0x40,
    0x11,
    0xb8,
    0x61,
    0xc0,
    0xa8,
    0x00,
    0x01,
    0xc0,
    0xa8,
    0x00,
    0xc7,
  ]);
  assert.equal(ipv4HeaderChecksum(h), 0xb861);
  assert.equal(onesSum(h, 0, 20), 0xffff, "a correct header sums to 0xffff");
});

Deno.test("udp core: TTL decrement keeps the checksum valid; TTL 1 is dropped", () => {
  fc.assert(fc.property(fc.integer({ min: 2, max: 255 }), fc.integer({ min: 0, max: 255 }), (ttl, proto) => {
    const p = packet(ttl, proto);
    assert.ok(decrementTTL(p));
    assert.equal(p[8], ttl - 1);
    assert.equal(onesSum(p, 0, 20), 0xffff);
  }));
  const p = packet(1);
  assert.equal(decrementTTL(p), false);
  assert.equal(p[8], 1, "untouched");
});

Deno.test("udp core: the peer table finds the containing subnet and moves hits to the front", () => {
  const t = new PeerTable();
  const route = (cidr: string, peer: string) => {
    const [ip, len] = cidr.split("/");
    const mask = Number(len) === 0 ? 0 : (0xffffffff << (32 - Number(len))) >>> 0;
    return { net: IP4.parse(ip!).value, mask, addr: IP4.parse(peer).value, port: 8285 };
  };
  t.set([route("10.5.2.0/24", "192.0.2.2"), route("10.5.3.0/24", "192.0.2.3")]);
  assert.equal(t.lookup(IP4.parse("10.5.3.9").value)?.addr, IP4.parse("192.0.2.3").value);
  assert.equal(t.lookup(IP4.parse("10.5.3.10").value)?.addr, IP4.parse("192.0.2.3").value);
  assert.equal(t.lookup(IP4.parse("10.5.4.1").value), undefined);
  const order = () => t.routes().map((r) => IP4.fromNumber(r.addr).toString());
  assert.deepEqual(order(), ["192.0.2.3", "192.0.2.2"], "the hit moved to the front");
  t.set([
    route("10.5.2.0/24", "192.0.2.2"),
    route("10.5.3.0/24", "192.0.2.3"),
    route("10.5.4.0/24", "192.0.2.4"),
  ]);
  t.lookup(IP4.parse("10.5.4.1").value);
  assert.deepEqual(order(), ["192.0.2.4", "192.0.2.2", "192.0.2.3"], "the rest keep their order");
  t.lookup(IP4.parse("10.5.4.2").value);
  assert.deepEqual(order(), ["192.0.2.4", "192.0.2.2", "192.0.2.3"], "a hit at the front changes nothing");
});

Deno.test("udp core: ICMP net unreachable quotes header + 8 bytes, from our address, TTL 8", () => {
  const p = packet(64);
  const out = new Uint8Array(128);
  const n = icmpNetUnreachable(p, p.length, IP4.parse("10.5.1.0").value, out);
  assert.equal(n, 20 + 8 + 28);
  assert.deepEqual([...out.subarray(12, 20)], [10, 5, 1, 0, 10, 5, 1, 2]);
  assert.equal(out[8], 8);
  assert.equal(out[9], 1);
  assert.deepEqual([out[20], out[21]], [3, 0]);
  assert.equal(onesSum(out, 0, 20), 0xffff, "IP checksum");
  assert.equal(onesSum(out, 20, n - 20), 0xffff, "ICMP checksum");
  assert.deepEqual(out.subarray(28, n), p.subarray(0, 28));
  const icmp = (type: number) => {
    const p = packet(64, 1);
    p[20] = type;
    return p;
  };
  for (const type of [3, 4, 5, 11, 12]) {
    assert.equal(icmpNetUnreachable(icmp(type), 33, 1, out), 0, `never for an ICMP error (type ${type})`);
  }
  assert.ok(icmpNetUnreachable(icmp(8), 33, 1, out) > 0, "an echo request is a query: it gets one");
  assert.equal(icmpNetUnreachable(icmp(8), 20, 1, out), 0, "ICMP without its type byte");
  const to = (a: number, b: number) => {
    const p = packet(64);
    p[a] = b;
    return p;
  };
  assert.equal(icmpNetUnreachable(to(16, 224), 33, 1, out), 0, "never to multicast");
  assert.equal(icmpNetUnreachable(to(16, 255), 33, 1, out), 0, "never to broadcast");
  assert.equal(icmpNetUnreachable(to(12, 0), 33, 1, out), 0, "never to 0.x.x.x");
  assert.equal(icmpNetUnreachable(to(12, 127), 33, 1, out), 0, "never to loopback sources");
  assert.equal(icmpNetUnreachable(packet(64, 17, 0x0010), 33, 1, out), 0, "never for a non-first fragment");
  assert.ok(
    icmpNetUnreachable(packet(64, 17, 0x2000), 33, 1, out) > 0,
    "a first fragment (MF set, offset 0) gets one",
  );
});

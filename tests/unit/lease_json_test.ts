import assert from "node:assert/strict";
import fc from "fast-check";
import { decodeLeaseAttrs, encodeLeaseAttrs, LeaseValueError } from "../../src/lease/lease_json.ts";
import { IP4, IP6 } from "../../src/ip/mod.ts";

Deno.test("lease JSON: PublicIP only, exactly as upstream's registry test stores it", () => {
  assert.equal(
    encodeLeaseAttrs({ publicIP: IP4.parse("1.2.3.4") }),
    `{"PublicIP":"1.2.3.4","PublicIPv6":null}`,
  );
});

Deno.test("lease JSON: vxlan value with embedded BackendData, field order fixed", () => {
  const text =
    `{"PublicIP":"192.168.64.3","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}}`;
  const attrs = decodeLeaseAttrs(text);
  assert.equal(attrs.backendType, "vxlan");
  assert.equal(attrs.backendData, `{"VNI":1,"VtepMAC":"c6:d2:32:6f:8f:44"}`);
  assert.equal(encodeLeaseAttrs(attrs), text);
});

Deno.test("lease JSON: dual stack with BackendV6Data", () => {
  const text = `{"PublicIP":"10.0.0.1","PublicIPv6":"fd00::1","BackendType":"wireguard",` +
    `"BackendData":{"PublicKey":"k","Port":51820},"BackendV6Data":{"PublicKey":"k","Port":51821}}`;
  assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(text)), text);
});

Deno.test("lease JSON: field names match case-insensitively and unknown fields are ignored", () => {
  const attrs = decodeLeaseAttrs(
    `{"publicip":"1.2.3.4","publicIPv6":"2001:db8::1","backendtype":"udp","Extra":1}`,
  );
  assert.equal(attrs.publicIP.toString(), "1.2.3.4");
  assert.equal(attrs.publicIPv6?.toString(), "2001:db8::1");
  assert.equal(
    encodeLeaseAttrs(attrs),
    `{"PublicIP":"1.2.3.4","PublicIPv6":"2001:db8::1","BackendType":"udp"}`,
  );
});

Deno.test("lease JSON: missing PublicIP is the zero address, as Go's zero value", () => {
  assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(`{}`)), `{"PublicIP":"0.0.0.0","PublicIPv6":null}`);
});

Deno.test("lease JSON: bad values are one-line errors naming the field", () => {
  const cases: [string, RegExp][] = [
    [`not json`, /^Lease value is not JSON/],
    [`[1]`, /must be a JSON object/],
    [`{"PublicIP":"fd00::1"}`, /"PublicIP" is "fd00::1", must be an IPv4 address/],
    [`{"PublicIP":5}`, /"PublicIP" is 5/],
    [`{"PublicIP":"1.2.3.4","PublicIPv6":"zz::1"}`, /"PublicIPv6" is "zz::1"/],
    [`{"PublicIP":"1.2.3.4","BackendType":7}`, /"BackendType" is 7, must be a string/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => decodeLeaseAttrs(text), (e) => {
      assert.ok(e instanceof LeaseValueError, String(e));
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("lease JSON: arbitrary text never throws anything but LeaseValueError", () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
      try {
        const attrs = decodeLeaseAttrs(text);
        decodeLeaseAttrs(encodeLeaseAttrs(attrs)); // and what decodes re-encodes to something decodable
      } catch (e) {
        assert.ok(e instanceof LeaseValueError, `${e}`);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("lease JSON: encode/decode round trip", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.option(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n })),
      fc.option(fc.constantFrom("vxlan", "host-gw", "alloc")),
      fc.option(fc.json()),
      (ip, ip6, type, data) => {
        const attrs = {
          publicIP: IP4.fromNumber(ip),
          ...(ip6 !== null ? { publicIPv6: IP6.parse(IP6.fromBigInt(ip6).toString()) } : {}),
          ...(type !== null ? { backendType: type } : {}),
          ...(data !== null && data !== "null" ? { backendData: JSON.stringify(JSON.parse(data)) } : {}),
        };
        const text = encodeLeaseAttrs(attrs);
        assert.equal(encodeLeaseAttrs(decodeLeaseAttrs(text)), text);
      },
    ),
    { numRuns: 500 },
  );
});

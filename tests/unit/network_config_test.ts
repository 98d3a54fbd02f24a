import assert from "node:assert/strict";
import fc from "fast-check";
import {
  checkNetworkConfig,
  getField,
  keyMatches,
  type NetworkConfig,
  NetworkConfigError,
  parseAndCheckNetworkConfig,
  parseNetworkConfig,
} from "../../src/config/mod.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";

/** Asserts that `fn` throws a NetworkConfigError with exactly this message and field. */
function assertConfigError(fn: () => unknown, message: string, field?: string): NetworkConfigError {
  try {
    fn();
  } catch (e) {
    assert(e instanceof NetworkConfigError, `expected a NetworkConfigError, got ${e}`);
    assert.equal(e.message, message);
    assert.equal(e.field, field);
    assert.equal(e.name, "NetworkConfigError");
    assert(message.endsWith(e.reason));
    return e;
  }
  assert.fail(`expected ${JSON.stringify(message)}`);
}

const prefix = "Cannot parse net-conf.json:";

// --- upstream pkg/subnet config_test ---------------------------------------------------------------

Deno.test("TestConfigDefaults: a lower-case key and derived defaults", () => {
  const cfg = parseAndCheckNetworkConfig('{ "network": "10.3.0.0/16" }');
  assert.equal(cfg.network?.toString(), "10.3.0.0/16");
  assert.equal(cfg.subnetLen, 24);
  assert.equal(cfg.subnetMin?.toString(), "10.3.1.0");
  assert.equal(cfg.subnetMax?.toString(), "10.3.255.0");
});

Deno.test("TestIPv6ConfigDefaults: IPv6-only derived defaults", () => {
  const cfg = parseAndCheckNetworkConfig(
    '{ "enableIPv6": true, "ipv6Network": "fc00::/48", "enableIPv4": false }',
  );
  assert.equal(cfg.enableIPv4, false);
  assert.equal(cfg.enableIPv6, true);
  assert.equal(cfg.ipv6SubnetLen, 64);
  assert.equal(cfg.ipv6SubnetMin?.toString(), "fc00:0:0:1::");
  assert.equal(cfg.ipv6SubnetMax?.toString(), "fc00:0:0:ffff::");
  assert.equal(cfg.subnetMin, undefined);
});

Deno.test("TestConfigOverrides: explicit values are kept", () => {
  const text =
    '{ "Network": "10.3.0.0/16", "SubnetMin": "10.3.5.0", "SubnetMax": "10.3.8.0", "SubnetLen": 28 }';
  for (const cfg of [parseNetworkConfig(text), parseAndCheckNetworkConfig(text)]) {
    assert.equal(cfg.subnetMin?.toString(), "10.3.5.0");
    assert.equal(cfg.subnetMax?.toString(), "10.3.8.0");
    assert.equal(cfg.subnetLen, 28);
  }
});

Deno.test("TestIPv6ConfigOverrides: explicit IPv6 values are kept", () => {
  const text = `{ "EnableIPv6": true, "IPv6Network": "fc00::/120", "IPv6SubnetMin": "fc00::10",
    "IPv6SubnetMax": "fc00::f0", "IPv6SubnetLen": 124, "EnableIPv4": false }`;
  for (const cfg of [parseNetworkConfig(text), parseAndCheckNetworkConfig(text)]) {
    assert.equal(cfg.ipv6SubnetMin?.toString(), "fc00::10");
    assert.equal(cfg.ipv6SubnetMax?.toString(), "fc00::f0");
    assert.equal(cfg.ipv6SubnetLen, 124);
  }
});

// --- §2.1 parsing -----------------------------------------------------------------------------------

Deno.test("parse defaults: EnableIPv4 true, udp backend, absent fields omitted", () => {
  const cfg = parseNetworkConfig("{}");
  assert.deepEqual(cfg, {
    enableIPv4: true,
    enableIPv6: false,
    enableNFTables: false,
    subnetLen: 0,
    ipv6SubnetLen: 0,
    backendType: "udp",
    backend: {},
  });
  for (const key of ["network", "ipv6Network", "subnetMin", "subnetMax", "ipv6SubnetMin", "ipv6SubnetMax"]) {
    assert(!(key in cfg), key);
  }
});

Deno.test("parse reads every field, case-insensitively, ignoring unknown keys", () => {
  const cfg = parseNetworkConfig(`{
    "NETWORK": "10.244.0.0/16", "ipv6network": "fd00:10:244::/56", "enableipv4": true, "EnableIPv6": true,
    "enableNFTables": true, "subnetlen": 26, "SUBNETMIN": "10.244.1.0", "subnetMax": "10.244.200.0",
    "IPv6SubnetLen": 64, "ipv6subnetmin": "fd00:10:244:1::", "IPv6SUBNETMAX": "fd00:10:244:ff::",
    "backend": { "type": "VXLAN", "VNI": 4096, "Port": 4789 }, "Networks": ["1.2.3.0/24"], "Comment": "x"
  }`);
  assert.equal(cfg.network?.toString(), "10.244.0.0/16");
  assert.equal(cfg.ipv6Network?.toString(), "fd00:10:244::/56");
  assert.equal(cfg.enableIPv4, true);
  assert.equal(cfg.enableIPv6, true);
  assert.equal(cfg.enableNFTables, true);
  assert.equal(cfg.subnetLen, 26);
  assert.equal(cfg.subnetMin?.toString(), "10.244.1.0");
  assert.equal(cfg.subnetMax?.toString(), "10.244.200.0");
  assert.equal(cfg.ipv6SubnetLen, 64);
  assert.equal(cfg.ipv6SubnetMin?.toString(), "fd00:10:244:1::");
  assert.equal(cfg.ipv6SubnetMax?.toString(), "fd00:10:244:ff::");
  assert.equal(cfg.backendType, "vxlan");
  assert.deepEqual(cfg.backend, { type: "VXLAN", VNI: 4096, Port: 4789 });
});

Deno.test("parse masks host bits off Network and IPv6Network", () => {
  const cfg = parseNetworkConfig('{"Network": "10.3.4.5/16", "IPv6Network": "fc00::1/48"}');
  assert.equal(cfg.network?.toString(), "10.3.0.0/16");
  assert.equal(cfg.ipv6Network?.toString(), "fc00::/48");
});

Deno.test("parse: the last of several case variants of a key wins, as in Go", () => {
  const cfg = parseNetworkConfig('{"Network": "10.1.0.0/16", "network": "10.2.0.0/16"}');
  assert.equal(cfg.network?.toString(), "10.2.0.0/16");
});

Deno.test("parse: null leaves booleans and lengths at their defaults", () => {
  const cfg = parseNetworkConfig('{"EnableIPv4": null, "SubnetLen": null, "EnableIPv6": null}');
  assert.equal(cfg.enableIPv4, true);
  assert.equal(cfg.enableIPv6, false);
  assert.equal(cfg.subnetLen, 0);
});

Deno.test("parse: Backend absent is udp; empty, null or untyped is the empty type", () => {
  assert.equal(parseNetworkConfig("{}").backendType, "udp");
  assert.equal(parseNetworkConfig('{"Backend": {}}').backendType, "");
  assert.equal(parseNetworkConfig('{"Backend": null}').backendType, "");
  assert.equal(parseNetworkConfig('{"Backend": {"Type": null}}').backendType, "");
  const cfg = parseNetworkConfig('{"Backend": {"VNI": 1}}');
  assert.equal(cfg.backendType, "");
  assert.deepEqual(cfg.backend, { VNI: 1 });
  assert.equal(parseNetworkConfig('{"Backend": {"Type": "Host-GW"}}').backendType, "host-gw");
});

/** Rows of `<config JSON> => <message after "Cannot parse net-conf.json: ">`; the field is the quoted name. */
function assertErrorRows(rows: string[], run: (text: string) => unknown) {
  for (const row of rows) {
    const [text = "", detail = ""] = row.split(" => ");
    assertConfigError(() => run(text), `${prefix} ${detail}`, /^"(\w+)"/.exec(detail)?.[1]);
  }
}

Deno.test("parse errors name the field and value and keep upstream's text", () => {
  assertErrorRows([
    '{"Network": "fc00::/48"} => "Network" is "fc00::/48": invalid IPv4 CIDR format',
    '{"Network": "10.3.0.0/33"} => "Network" is "10.3.0.0/33": invalid CIDR address: 10.3.0.0/33',
    '{"Network": "10.3.0.0"} => "Network" is "10.3.0.0": invalid CIDR address: 10.3.0.0',
    '{"Network": 10} => "Network" is 10: invalid CIDR address: 10',
    '{"Network": null} => "Network" is null: invalid CIDR address: null',
    '{"IPv6Network": "fc00::/129"} => "IPv6Network" is "fc00::/129": invalid CIDR address: fc00::/129',
    '{"IPv6Network": "10.0.0.0/8"} => "IPv6Network" is "10.0.0.0/8": invalid IPv6 CIDR format',
    '{"SubnetMin": "10.3.300.0"} => "SubnetMin" is "10.3.300.0": invalid IP address format',
    '{"SubnetMin": "fc00::1"} => "SubnetMin" is "fc00::1": invalid IPv4 address format',
    '{"SubnetMax": ""} => "SubnetMax" is "": invalid IP address format',
    '{"IPv6SubnetMin": "fc00::g"} => "IPv6SubnetMin" is "fc00::g": invalid IP address format',
    '{"IPv6SubnetMax": 5} => "IPv6SubnetMax" is 5: invalid IP address format',
    '{"EnableIPv4": "true"} => "EnableIPv4" is "true": expected true or false',
    '{"enableNFTables": 1} => "EnableNFTables" is 1: expected true or false',
    '{"SubnetLen": -1} => "SubnetLen" is -1: expected a non-negative integer',
    '{"SubnetLen": 24.5} => "SubnetLen" is 24.5: expected a non-negative integer',
    '{"IPv6SubnetLen": "64"} => "IPv6SubnetLen" is "64": expected a non-negative integer',
    '{"Backend": "vxlan"} => "Backend" is "vxlan": error decoding Backend property of config: expected a JSON object, got a string',
    '{"Backend": ["vxlan"]} => "Backend" is ["vxlan"]: error decoding Backend property of config: expected a JSON object, got an array',
    '{"Backend": {"Type": 5}} => "Backend" is {"Type":5}: error decoding Backend property of config: "Type" is 5, expected a string',
  ], parseNetworkConfig);
});

Deno.test("invalid JSON gives one line with line and column", () => {
  const cases: [string, string][] = [
    ["", "line 1, column 1: expected a JSON value, found end of input"],
    ["Network: 10.0.0.0/8", 'line 1, column 1: expected a JSON value, found "N"'],
    [
      '{\n  "Network": "10.0.0.0/8",\n  oops\n}',
      'line 3, column 3: expected a double-quoted property name, found "o"',
    ],
    ['{"Network": "10.0.0.0/8",}', 'line 1, column 26: expected a double-quoted property name, found "}"'],
    ['{"Network" "10.0.0.0/8"}', `line 1, column 12: expected ':', found "\\""`],
    ['{"Network": "10.0.0.0/8"', "line 1, column 25: expected ',' or '}', found end of input"],
    ['{"Backend": {"Type": "vxlan"]}', "line 1, column 29: expected ',' or '}', found \"]\""],
    ['{"a": [1, 2}', "line 1, column 12: expected ',' or ']', found \"}\""],
    ['{"a": "\t"}', "line 1, column 8: expected an escaped control character, found U+0009"],
    ['{"a": "\\q"}', 'line 1, column 9: expected an escape sequence, found "q"'],
    ['{"a": 01}', "line 1, column 8: expected ',' or '}', found \"1\""],
    ['{"a": tru}', 'line 1, column 7: expected a JSON value, found "t"'],
    ["{} {}", 'line 1, column 4: expected end of input, found "{"'],
    ["\ufeff{}", "line 1, column 1: expected a JSON value, found U+FEFF"],
    ["[".repeat(100_000), "line 1, column 100001: expected a JSON value, found end of input"],
  ];
  for (const [text, where] of cases) {
    const e = assertConfigError(() => parseNetworkConfig(text), `${prefix} invalid JSON at ${where}`);
    assert(e.cause instanceof SyntaxError);
    assert(!e.message.includes("\n"));
  }
});

Deno.test("a document that is not an object is rejected", () => {
  for (const [text, got] of [["[]", "an array"], ["null", "null"], ['"x"', "a string"], ["5", "a number"]]) {
    assertConfigError(() => parseNetworkConfig(text!), `${prefix} expected a JSON object, got ${got}`);
  }
});

Deno.test("the source option names where the text came from", () => {
  assertConfigError(
    () =>
      parseAndCheckNetworkConfig('{"Network": "10.3.0.0/16", "SubnetLen": 33}', {
        source: "/coreos.com/network/config",
      }),
    'Cannot parse /coreos.com/network/config: "SubnetLen" is 33: SubnetLen must be less than /31',
    "SubnetLen",
  );
});

// --- §2.2 validation --------------------------------------------------------------------------------

Deno.test("IPv4 validation errors", () => {
  assertErrorRows([
    '{} => "Network" is missing: please define a correct Network parameter in the flannel config',
    '{"Network": "0.0.0.0/0"} => "Network" is "0.0.0.0/0": please define a correct Network parameter in the flannel config',
    '{"Network": "10.3.0.0/16", "SubnetLen": 33} => "SubnetLen" is 33: SubnetLen must be less than /31',
    '{"Network": "10.3.0.0/16", "SubnetLen": 31} => "SubnetLen" is 31: SubnetLen must be less than /31',
    '{"Network": "10.3.0.0/16", "SubnetLen": 17} => "SubnetLen" is 17: network must be able to accommodate at least four subnets',
    '{"Network": "10.3.0.0/29"} => "Network" is "10.3.0.0/29": network is too small. Minimum useful network prefix is /28',
    '{"Network": "10.3.0.0/16", "SubnetMin": "10.4.1.0"} => "SubnetMin" is "10.4.1.0": SubnetMin is not in the range of the Network',
    '{"Network": "10.3.0.0/16", "SubnetMax": "10.2.1.0"} => "SubnetMax" is "10.2.1.0": SubnetMax is not in the range of the Network',
    '{"Network": "10.3.0.0/16", "SubnetMin": "10.3.1.5"} => "SubnetMin" is "10.3.1.5": SubnetMin is not on a SubnetLen boundary: 10.3.1.5',
    '{"Network": "10.3.0.0/16", "SubnetLen": 26, "SubnetMax": "10.3.8.32"} => "SubnetMax" is "10.3.8.32": SubnetMax is not on a SubnetLen boundary: 10.3.8.32',
  ], parseAndCheckNetworkConfig);
});

Deno.test("IPv4 derived subnet lengths and ranges", () => {
  const cases: [string, number, string, string][] = [
    ["10.0.0.0/8", 24, "10.0.1.0", "10.255.255.0"],
    ["10.3.0.0/22", 24, "10.3.1.0", "10.3.3.0"],
    ["10.3.0.0/23", 25, "10.3.0.128", "10.3.1.128"],
    ["10.3.0.0/28", 30, "10.3.0.4", "10.3.0.12"],
    ["128.0.0.0/1", 24, "128.0.1.0", "255.255.255.0"],
  ];
  for (const [network, len, min, max] of cases) {
    const cfg = parseAndCheckNetworkConfig(JSON.stringify({ Network: network }));
    assert.deepEqual([cfg.subnetLen, `${cfg.subnetMin}`, `${cfg.subnetMax}`], [len, min, max], network);
  }
  // Explicit lengths at the limits, 0.0.0.0 as "unset", and no min <= max check.
  assert.equal(
    parseAndCheckNetworkConfig('{"Network": "10.3.0.0/16", "SubnetLen": 18}').subnetMax?.toString(),
    "10.3.192.0",
  );
  assert.equal(
    parseAndCheckNetworkConfig('{"Network": "10.3.0.0/28", "SubnetLen": 30}').subnetMin?.toString(),
    "10.3.0.4",
  );
  const zero = parseAndCheckNetworkConfig(
    '{"Network": "10.3.0.0/16", "SubnetMin": "0.0.0.0", "SubnetMax": "0.0.0.0"}',
  );
  assert.deepEqual([`${zero.subnetMin}`, `${zero.subnetMax}`], ["10.3.1.0", "10.3.255.0"]);
  const swapped = parseAndCheckNetworkConfig(
    '{"Network": "10.3.0.0/16", "SubnetMin": "10.3.8.0", "SubnetMax": "10.3.5.0"}',
  );
  assert.deepEqual([`${swapped.subnetMin}`, `${swapped.subnetMax}`], ["10.3.8.0", "10.3.5.0"]);
});

Deno.test("IPv6 validation errors", () => {
  const v6 = '{"EnableIPv4": false, "EnableIPv6": true';
  assertErrorRows([
    '} => "IPv6Network" is missing: please define a correct IPv6Network parameter in the flannel config',
    ', "IPv6Network": "::/0"} => "IPv6Network" is "::/0": please define a correct IPv6Network parameter in the flannel config',
    ', "IPv6Network": "fc00::/48", "IPv6SubnetLen": 127} => "IPv6SubnetLen" is 127: SubnetLen must be less than /127',
    ', "IPv6Network": "fc00::/48", "IPv6SubnetLen": 49} => "IPv6SubnetLen" is 49: network must be able to accommodate at least four subnets',
    ', "IPv6Network": "fc00::/125"} => "IPv6Network" is "fc00::/125": IPv6Network is too small. Minimum useful network prefix is /124',
    ', "IPv6Network": "fc00::/48", "IPv6SubnetMin": "fc01::"} => "IPv6SubnetMin" is "fc01::": IPv6SubnetMin is not in the range of the IPv6Network',
    ', "IPv6Network": "fc00::/48", "IPv6SubnetMax": "::"} => "IPv6SubnetMax" is "::": IPv6SubnetMax is not in the range of the IPv6Network',
    ', "IPv6Network": "fc00::/48", "IPv6SubnetMin": "fc00:0:0:1::1"} => "IPv6SubnetMin" is "fc00:0:0:1::1": IPv6SubnetMin is not on a SubnetLen boundary: fc00:0:0:1::1',
    ', "IPv6Network": "fc00::/48", "IPv6SubnetMax": "fc00:0:0:ff:8000::"} => "IPv6SubnetMax" is "fc00:0:0:ff:8000::": IPv6SubnetMax is not on a SubnetLen boundary: fc00:0:0:ff:8000::',
  ], (rest) => parseAndCheckNetworkConfig(v6 + rest));
});

Deno.test("IPv6 derived subnet lengths and ranges", () => {
  const cases: [string, number, string, string][] = [
    ["fc00::/48", 64, "fc00:0:0:1::", "fc00:0:0:ffff::"],
    ["fd00::/62", 64, "fd00:0:0:1::", "fd00:0:0:3::"],
    ["fd00::/63", 65, "fd00::8000:0:0:0", "fd00:0:0:1:8000::"],
    ["fd00::/124", 126, "fd00::4", "fd00::c"],
  ];
  for (const [network, len, min, max] of cases) {
    const cfg = parseAndCheckNetworkConfig(
      JSON.stringify({ EnableIPv6: true, EnableIPv4: false, IPv6Network: network }),
    );
    assert.deepEqual(
      [cfg.ipv6SubnetLen, `${cfg.ipv6SubnetMin}`, `${cfg.ipv6SubnetMax}`],
      [len, min, max],
      network,
    );
  }
});

Deno.test("dual stack checks both families; a disabled family is not checked", () => {
  const cfg = parseAndCheckNetworkConfig(
    '{"Network": "10.244.0.0/16", "EnableIPv6": true, "IPv6Network": "fd00:10:244::/56", "Backend": {"Type": "vxlan"}}',
  );
  assert.equal(cfg.subnetLen, 24);
  assert.equal(cfg.ipv6SubnetLen, 64);
  assert.equal(cfg.ipv6SubnetMin?.toString(), "fd00:10:244:1::");
  assert.equal(cfg.ipv6SubnetMax?.toString(), "fd00:10:244:ff::");
  const v6only = parseAndCheckNetworkConfig(
    '{"EnableIPv4": false, "EnableIPv6": true, "IPv6Network": "fc00::/48"}',
  );
  assert.equal(v6only.network, undefined);
  assert.equal(v6only.subnetLen, 0);
  const none = checkNetworkConfig(parseNetworkConfig('{"EnableIPv4": false}'));
  assert.equal(none.subnetMin, undefined);
});

Deno.test("checkNetworkConfig returns a new config and leaves its input alone", () => {
  const input: NetworkConfig = {
    network: IP4Net.parse("10.3.7.0/16"),
    enableIPv4: true,
    enableIPv6: false,
    enableNFTables: false,
    subnetLen: 0,
    subnetMin: IP4.parse("10.3.2.0"),
    ipv6SubnetLen: 0,
    backendType: "vxlan",
    backend: { Type: "vxlan" },
  };
  const out = checkNetworkConfig(input);
  assert.notEqual(out, input);
  assert.equal(input.subnetLen, 0);
  assert.equal(input.subnetMax, undefined);
  assert.equal(out.network?.toString(), "10.3.0.0/16");
  assert.deepEqual([out.subnetLen, `${out.subnetMin}`, `${out.subnetMax}`], [24, "10.3.2.0", "10.3.255.0"]);
  assert.equal(out.backendType, "vxlan");
});

// --- case-insensitive lookup --------------------------------------------------------------------------

Deno.test("getField matches keys like Go encoding/json", () => {
  assert.equal(getField({ Network: "a" }, "Network"), "a");
  assert.equal(getField({ network: "a" }, "Network"), "a");
  assert.equal(getField({ NETWORK: "a" }, "network"), "a");
  assert.equal(getField({ network: "a", Network: "b" }, "Network"), "b");
  assert.equal(getField({ Network: "b", network: "a" }, "Network"), "a");
  assert.equal(getField({ Networks: "a" }, "Network"), undefined);
  assert.equal(getField({}, "constructor"), undefined);
  assert.equal(getField(JSON.parse('{"__proto__": 1}'), "__PROTO__"), 1);
  // Unicode simple folding: KELVIN SIGN is a k, LONG S an s.
  assert(keyMatches("\u212Aey", "Key"));
  assert(keyMatches("\u017Fubnet", "Subnet"));
  assert(!keyMatches("\u0130d", "Id"));
  assert(!keyMatches("Networ", "Network"));
});

// --- properties --------------------------------------------------------------------------------------

const fieldNames = [
  "Network",
  "IPv6Network",
  "EnableIPv4",
  "EnableIPv6",
  "EnableNFTables",
  "SubnetLen",
  "SubnetMin",
  "SubnetMax",
  "IPv6SubnetLen",
  "IPv6SubnetMin",
  "IPv6SubnetMax",
  "Backend",
  "Type",
];
const anyCase = fc.constantFrom(...fieldNames).chain((name) =>
  fc.array(fc.boolean(), { minLength: name.length, maxLength: name.length })
    .map((upper) => [...name].map((c, i) => (upper[i] ? c.toUpperCase() : c.toLowerCase())).join(""))
);
const addressish = fc.oneof(
  fc.constantFrom("10.3.0.0/16", "10.3.1.0", "fc00::/48", "fc00:0:0:1::", "0.0.0.0/0", "::/0", "10.3.0.0/29"),
  fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 40 }))
    .map(([n, p]) => `${IP4.fromNumber(n)}/${p}`),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdef:./\n\u2028".split("")), maxLength: 20 }),
);
const value: fc.Arbitrary<unknown> = fc.oneof(
  addressish,
  fc.integer({ min: -2, max: 140 }),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 2 }),
  fc.dictionary(anyCase, fc.oneof(fc.string(), fc.constantFrom("vxlan", "host-gw")), { maxKeys: 3 }),
);
const configText = fc.oneof(
  fc.dictionary(anyCase, value, { maxKeys: 8 }).map((o) => JSON.stringify(o)),
  fc.string({ unit: fc.constantFrom(...'{}[]",:0123456789 \nabc-.eE+'.split("")), maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.jsonValue().map((v) => JSON.stringify(v)),
);

Deno.test("property: config parsing and checking throw nothing but one-line NetworkConfigErrors", () => {
  fc.assert(
    fc.property(configText, (text) => {
      try {
        parseAndCheckNetworkConfig(text);
      } catch (e) {
        assert(e instanceof NetworkConfigError, `${JSON.stringify(text)} threw ${e}`);
        assert(!/[\n\r\u2028\u2029]/.test(e.message), e.message);
        assert(e.message.startsWith(`${prefix} `));
        let parsed = true;
        try {
          JSON.parse(text);
        } catch {
          parsed = false;
        }
        // Every JSON syntax error is located, so the engine's own message is never shown.
        if (!parsed) assert.match(e.message, /: invalid JSON at line \d+, column \d+: expected /);
      }
    }),
    { numRuns: 3000 },
  );
});

Deno.test("property: a checked config has aligned subnets inside its network", () => {
  const networks = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 28 }));
  fc.assert(fc.property(networks, fc.integer({ min: 0, max: 30 }), ([n, p], len) => {
    const network = new IP4Net(IP4.fromNumber(n), p).network();
    let cfg: NetworkConfig;
    try {
      cfg = parseAndCheckNetworkConfig(JSON.stringify({ Network: network, SubnetLen: len }));
    } catch (e) {
      assert(e instanceof NetworkConfigError);
      assert(len !== 0 && (len < p + 2 || len > 30), e.message);
      return;
    }
    const size = 2 ** (32 - cfg.subnetLen);
    for (const ip of [cfg.subnetMin!, cfg.subnetMax!]) {
      assert(network.contains(ip));
      assert.equal(ip.value % size, 0);
    }
    assert.equal(cfg.subnetMin!.value, network.ip.value + size);
    assert.equal(cfg.subnetMax!.value + size, network.ip.value + network.size());
  }));
});

// External interface selection (reference §8) against a fake NetInfo, plus the `ip -j` NetInfo
// against captured iproute2 output. The "ipmatch" cases re-create upstream's pkg/ipmatch tests
// (reference §10.1) with a fake dummy0 instead of a real one.

import assert from "node:assert/strict";
import { type IP4, type IP6, parseIP } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import {
  type ExtIface,
  InterfaceSelectionError,
  type LinkInfo,
  type NetInfo,
  preferredAddress,
  selectExternalInterface,
  type SelectOptions,
} from "../../src/iface/mod.ts";
import { type CommandResult, ipCommandNetInfo } from "../../src/iface/ip_command.ts";

// ---------------------------------------------------------------------------------------------
// Fake host

/** `"10.0.0.1/24"`, optionally followed by flags: `"fd00::5/64 dynamic temporary deprecated"`. */
type AddrSpec = string;

function link(name: string, index: number, addrs: AddrSpec[], extra: Partial<LinkInfo> = {}): LinkInfo {
  return {
    name,
    index,
    mtu: 1500,
    flags: ["up"],
    addrs: addrs.map((spec) => {
      const [cidr = "", ...flags] = spec.split(" ");
      const [ip = "", len = ""] = cidr.split("/");
      const addr = parseIP(ip);
      const linkLocal = ip.startsWith("fe80:") || ip.startsWith("169.254.");
      return {
        ip: addr,
        prefixLen: Number(len),
        scope: ip.startsWith("127.") || ip === "::1" ? "host" : linkLocal ? "link" : "global",
        dynamic: flags.includes("dynamic"),
        temporary: flags.includes("temporary"),
        deprecated: flags.includes("deprecated"),
      };
    }),
    ...extra,
  };
}

interface FakeHost {
  links: LinkInfo[];
  default4?: string[];
  default6?: string[];
  /** dst → route; a string value makes the lookup throw with that message. */
  routes?: Record<string, { link: string; src?: string } | string>;
}

class FakeNet implements NetInfo {
  readonly routeGets: string[] = [];
  constructor(readonly host: FakeHost) {}
  links(): Promise<LinkInfo[]> {
    // A copy, so selection cannot change the fixture (structuredClone would drop the IP classes).
    return Promise.resolve(
      this.host.links.map((l) => ({ ...l, flags: [...l.flags], addrs: l.addrs.map((a) => ({ ...a })) })),
    );
  }
  defaultRouteLink(family: 4 | 6): Promise<string[]> {
    return Promise.resolve((family === 4 ? this.host.default4 : this.host.default6) ?? []);
  }
  routeGet(dst: IP4 | IP6): Promise<{ link: string; src?: IP4 | IP6 } | undefined> {
    this.routeGets.push(dst.toString());
    const r = this.host.routes?.[dst.toString()];
    if (typeof r === "string") return Promise.reject(new Error(r));
    if (!r) return Promise.resolve(undefined);
    return Promise.resolve(r.src ? { link: r.link, src: parseIP(r.src) } : { link: r.link });
  }
}

const LO = link("lo", 1, ["127.0.0.1/8", "::1/128"], { flags: ["loopback", "up"], mtu: 65536 });
const ETH0 = link("eth0", 2, ["192.0.2.2/24", "fd00::2/64", "fe80::2/64"]);
const DUMMY0 = link("dummy0", 3, [
  "1.10.100.1/24",
  "192.168.200.128/24",
  "172.16.30.18/24",
  "172.16.31.200/24",
  "172.16.32.100/24",
  "2001:db8::1/64",
]);

/** The ipmatch test host: the machine's own links plus dummy0 and a route via it. */
const IPMATCH: FakeHost = {
  links: [LO, ETH0, DUMMY0],
  default4: ["eth0"],
  default6: ["eth0"],
  routes: { "172.16.32.254": { link: "dummy0", src: "172.16.32.100" } },
};

function options(o: Partial<SelectOptions> = {}): SelectOptions {
  return {
    iface: [],
    ifaceRegex: [],
    ifaceCanReach: "",
    publicIp: "",
    publicIpv6: "",
    enableIPv4: true,
    enableIPv6: false,
    ...o,
  };
}

async function select(host: FakeHost, o: Partial<SelectOptions> = {}, log = new MemoryLogger()) {
  return await selectExternalInterface(options(o), new FakeNet(host), log);
}

/** The result with addresses as strings, for deepEqual. */
function show(e: ExtIface): Record<string, string | number | undefined> {
  const out: Record<string, string | number | undefined> = { name: e.name, index: e.index, mtu: e.mtu };
  for (const k of ["ifaceAddr", "ifaceV6Addr", "extAddr", "extV6Addr"] as const) {
    if (e[k]) out[k] = e[k].toString();
  }
  return out;
}

async function selectionError(host: FakeHost, o: Partial<SelectOptions>, log = new MemoryLogger()) {
  const err = await select(host, o, log).then(
    () => assert.fail("selection should have failed"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof InterfaceSelectionError, String(err));
  assert.equal(err.name, "InterfaceSelectionError");
  assert.ok(!err.message.includes("\n"), "one-line message");
  return err;
}

// ---------------------------------------------------------------------------------------------
// pkg/ipmatch (reference §10.1)

Deno.test("ipmatch: regex over IPv4 addresses picks dummy0 with the matching address", async () => {
  const ext = await select(IPMATCH, { ifaceRegex: ["192\\.168\\.200\\.\\d+"] });
  assert.deepEqual(show(ext), {
    name: "dummy0",
    index: 3,
    mtu: 1500,
    ifaceAddr: "192.168.200.128",
    extAddr: "192.168.200.128",
  });
});

Deno.test("ipmatch: regex over names picks dummy0 with its first address", async () => {
  const ext = await select(IPMATCH, { ifaceRegex: ["dummy\\d+"] });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceAddr?.toString(), "1.10.100.1");
});

Deno.test("ipmatch: by name", async () => {
  const ext = await select(IPMATCH, { iface: ["dummy0"] });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceAddr?.toString(), "1.10.100.1");
});

Deno.test("ipmatch: by IPv4 address", async () => {
  const ext = await select(IPMATCH, { iface: ["172.16.30.18"] });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceAddr?.toString(), "172.16.30.18");
});

Deno.test("ipmatch: by IPv4 address, dual stack takes the IPv6 address from the same link", async () => {
  const ext = await select(IPMATCH, { iface: ["172.16.30.18"], enableIPv6: true });
  assert.deepEqual(show(ext), {
    name: "dummy0",
    index: 3,
    mtu: 1500,
    ifaceAddr: "172.16.30.18",
    ifaceV6Addr: "2001:db8::1",
    extAddr: "172.16.30.18",
    extV6Addr: "2001:db8::1",
  });
});

Deno.test("ipmatch: regex with a public IP keeps the matched address and advertises the public one", async () => {
  const ext = await select(IPMATCH, { ifaceRegex: ["172\\.16\\.30\\.\\d+"], publicIp: "172.16.31.200" });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceAddr?.toString(), "172.16.30.18");
  assert.equal(ext.extAddr?.toString(), "172.16.31.200");
});

Deno.test("ipmatch: can-reach uses the route's link and source", async () => {
  const net = new FakeNet(IPMATCH);
  const ext = await selectExternalInterface(
    options({ ifaceCanReach: "172.16.32.254" }),
    net,
    new MemoryLogger(),
  );
  assert.deepEqual(net.routeGets, ["172.16.32.254"]);
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceAddr?.toString(), "172.16.32.100");
});

// ---------------------------------------------------------------------------------------------
// Rule 1: no selection flags

Deno.test("no flags: the default-route link, logged as upstream does", async () => {
  const log = new MemoryLogger();
  const ext = await select(IPMATCH, {}, log);
  assert.deepEqual(show(ext), {
    name: "eth0",
    index: 2,
    mtu: 1500,
    ifaceAddr: "192.0.2.2",
    extAddr: "192.0.2.2",
  });
  assert.deepEqual(log.messages("info"), ["Using interface with name eth0 and address 192.0.2.2"]);
});

Deno.test("no flags: the first default route wins", async () => {
  const ext = await select({ ...IPMATCH, default4: ["dummy0", "eth0"] });
  assert.equal(ext.name, "dummy0");
});

Deno.test("no flags, dual stack: both default routes on one link; both addresses logged", async () => {
  const log = new MemoryLogger();
  const ext = await select(IPMATCH, { enableIPv6: true }, log);
  assert.equal(ext.ifaceV6Addr?.toString(), "fd00::2", "global before link-local fe80::2");
  assert.equal(ext.extV6Addr?.toString(), "fd00::2");
  assert.deepEqual(log.messages("info"), [
    "Using interface with name eth0 and address 192.0.2.2",
    "Using interface with name eth0 and v6 address fd00::2",
  ]);
});

Deno.test("no flags, dual stack: default routes on different links fail", async () => {
  const err = await selectionError({ ...IPMATCH, default6: ["dummy0"] }, { enableIPv6: true });
  assert.match(
    err.message,
    /^Failed to find any valid interface to use: v6 default route interface dummy0 must be the same with v4 default route interface eth0; pass --iface/,
  );
});

Deno.test("no flags: no default route fails and says which flags choose one", async () => {
  const err = await selectionError({ links: [LO, ETH0] }, {});
  assert.equal(
    err.message,
    "Failed to find any valid interface to use: no IPv4 default route in the main table; " +
      "pass --iface, --iface-regex or --iface-can-reach to choose one",
  );
});

Deno.test("no flags, IPv6 only: the IPv6 default-route link", async () => {
  const ext = await select({ ...IPMATCH, default4: [], default6: ["dummy0"] }, {
    enableIPv4: false,
    enableIPv6: true,
  });
  assert.deepEqual(show(ext), {
    name: "dummy0",
    index: 3,
    mtu: 1500,
    ifaceV6Addr: "2001:db8::1",
    extV6Addr: "2001:db8::1",
  });
});

Deno.test("no flags with --public-ip: the link owning the public IP, not the default route", async () => {
  const ext = await select(IPMATCH, { publicIp: "172.16.31.200" });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceAddr?.toString(), "172.16.31.200");
  assert.equal(ext.extAddr?.toString(), "172.16.31.200");
});

Deno.test("no flags with --public-ip nobody owns fails", async () => {
  const err = await selectionError(IPMATCH, { publicIp: "203.0.113.9" });
  assert.match(
    err.message,
    /^Failed to find any valid interface to use: no interface has the address 203\.0\.113\.9 \(from --public-ip\)/,
  );
});

Deno.test("no flags, dual stack: --public-ip is preferred and --public-ipv6 must be on the same link", async () => {
  const ok = await select(IPMATCH, {
    enableIPv6: true,
    publicIp: "172.16.31.200",
    publicIpv6: "2001:db8::1",
  });
  assert.equal(ok.name, "dummy0");
  assert.equal(ok.ifaceV6Addr?.toString(), "2001:db8::1");
  const err = await selectionError(IPMATCH, {
    enableIPv6: true,
    publicIp: "172.16.31.200",
    publicIpv6: "fd00::2",
  });
  assert.match(err.message, /v6 interface eth0 must be the same with v4 interface dummy0/);
});

Deno.test("no flags with only --public-ipv6: the link owning it", async () => {
  const ext = await select(IPMATCH, { enableIPv4: false, enableIPv6: true, publicIpv6: "2001:db8::1" });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceV6Addr?.toString(), "2001:db8::1");
});

// ---------------------------------------------------------------------------------------------
// Rule 2: --iface, --iface-regex, --iface-can-reach

Deno.test("--iface values are tried in order; failures are logged", async () => {
  const log = new MemoryLogger();
  const ext = await select(IPMATCH, { iface: ["eth9", "10.9.9.9", "dummy0", "eth0"] }, log);
  assert.equal(ext.name, "dummy0");
  assert.deepEqual(log.messages("warn"), [
    'Could not find valid interface matching eth9: no interface named "eth9"',
    "Could not find valid interface matching 10.9.9.9: no interface has the address 10.9.9.9 (from --iface)",
  ]);
});

Deno.test("--iface before --iface-regex before --iface-can-reach", async () => {
  const log = new MemoryLogger();
  const ext = await select(IPMATCH, {
    iface: ["eth9"],
    ifaceRegex: ["nomatch"],
    ifaceCanReach: "172.16.32.254",
  }, log);
  assert.equal(ext.name, "dummy0");
  const warns = log.messages("warn");
  assert.equal(warns.length, 2);
  assert.match(warns[0]!, /^Could not find valid interface matching eth9:/);
  assert.match(warns[1]!, /^Could not find valid interface matching nomatch:/);

  const early = await select(IPMATCH, { iface: ["eth0"], ifaceCanReach: "172.16.32.254" });
  assert.equal(early.name, "eth0", "can-reach is not consulted once --iface matched");
});

Deno.test("nothing matches: one-line error naming every value tried", async () => {
  const log = new MemoryLogger();
  const err = await selectionError(IPMATCH, {
    iface: ["eth9"],
    ifaceRegex: ["^wlan"],
    ifaceCanReach: "198.51.100.1",
  }, log);
  assert.equal(
    err.message,
    "Failed to find interface to use that matches the interfaces and/or regexes provided " +
      "(tried --iface eth9, --iface-regex ^wlan, --iface-can-reach 198.51.100.1; each failure is logged above): " +
      'check the values against "ip addr", or pass none of them to use the default-route interface',
  );
  assert.equal(log.messages("warn").length, 3);
  assert.equal(
    log.messages("warn")[2],
    "Could not find valid interface matching 198.51.100.1: no route to 198.51.100.1",
  );
});

Deno.test("--iface by IPv6 address in an IPv6-only stack", async () => {
  const ext = await select(IPMATCH, { iface: ["2001:db8::1"], enableIPv4: false, enableIPv6: true });
  assert.equal(ext.name, "dummy0");
  assert.equal(ext.ifaceV6Addr?.toString(), "2001:db8::1");
  assert.equal(ext.ifaceAddr, undefined);
  assert.equal(ext.extAddr, undefined);
});

Deno.test("--iface by IP of a family the network config disables", async () => {
  const log = new MemoryLogger();
  await selectionError(IPMATCH, { iface: ["2001:db8::1"] }, log);
  assert.deepEqual(log.messages("warn"), [
    "Could not find valid interface matching 2001:db8::1: --iface 2001:db8::1 is IPv6 but the network config disables IPv6",
  ]);
});

Deno.test("--iface by IPv4, dual stack: --public-ipv6 must be on the same link and becomes the v6 address", async () => {
  const dual = { enableIPv6: true, iface: ["172.16.30.18"] };
  const ok = await select(IPMATCH, { ...dual, publicIpv6: "2001:db8::1" });
  assert.equal(ok.ifaceV6Addr?.toString(), "2001:db8::1");
  assert.equal(ok.extV6Addr?.toString(), "2001:db8::1");

  const log = new MemoryLogger();
  await selectionError(IPMATCH, { ...dual, publicIpv6: "fd00::2" }, log);
  assert.deepEqual(log.messages("warn"), [
    "Could not find valid interface matching 172.16.30.18: v6 interface eth0 must be the same with v4 interface dummy0",
  ]);
});

Deno.test("--iface-regex: addresses are tried before names", async () => {
  const host: FakeHost = {
    links: [LO, link("net1", 2, ["192.0.2.2/24"]), link("eth0", 3, ["172.16.0.7/16"])],
  };
  const ext = await select(host, { ifaceRegex: ["net1|172\\.16"] });
  assert.equal(ext.name, "eth0");
  assert.equal(ext.ifaceAddr?.toString(), "172.16.0.7");
});

Deno.test("--iface-regex, dual stack: needs an IPv4 and an IPv6 match on the same link", async () => {
  const host: FakeHost = {
    links: [LO, link("a", 2, ["10.0.0.2/24", "fd01::2/64"]), link("b", 3, ["10.0.0.1/24", "fd00::1/64"])],
  };
  const ext = await select(host, { ifaceRegex: ["10\\.0\\.0\\.\\d|fd00::1"], enableIPv6: true });
  assert.equal(ext.name, "b");
  assert.equal(ext.ifaceAddr?.toString(), "10.0.0.1");
  assert.equal(ext.ifaceV6Addr?.toString(), "fd00::1");
});

Deno.test("--iface-regex: unusable (loopback, deprecated) addresses are not matched", async () => {
  const host: FakeHost = {
    links: [LO, link("eth0", 2, ["10.0.0.9/24 dynamic deprecated", "10.0.0.1/24"])],
  };
  const log = new MemoryLogger();
  await selectionError(host, { ifaceRegex: ["127\\.0\\.0\\.1|10\\.0\\.0\\.9"] }, log);
  assert.deepEqual(log.messages("warn"), [
    "Could not find valid interface matching 127\\.0\\.0\\.1|10\\.0\\.0\\.9: no interface name or address matches; " +
    "interfaces are lo:[127.0.0.1 ::1] eth0:[10.0.0.9 10.0.0.1]",
  ]);
});

Deno.test("--iface-regex: an invalid regex is a logged failure, not a crash", async () => {
  const log = new MemoryLogger();
  const ext = await select(IPMATCH, { ifaceRegex: ["(", "eth"] }, log);
  assert.equal(ext.name, "eth0");
  assert.match(log.messages("warn")[0]!, /^Could not find valid interface matching \(: invalid regex: /);
});

Deno.test("--iface-can-reach: without a route source the link's preferred address is used", async () => {
  const ext = await select({ ...IPMATCH, routes: { "198.51.100.1": { link: "dummy0" } } }, {
    ifaceCanReach: "198.51.100.1",
  });
  assert.equal(ext.ifaceAddr?.toString(), "1.10.100.1");
});

Deno.test("--iface-can-reach: IPv6 destination sets the v6 address; dual stack picks v4 from the link", async () => {
  const host = { ...IPMATCH, routes: { "2001:db8::fe": { link: "dummy0", src: "2001:db8::1" } } };
  const ext = await select(host, { ifaceCanReach: "2001:db8::fe", enableIPv6: true });
  assert.equal(ext.ifaceV6Addr?.toString(), "2001:db8::1");
  assert.equal(ext.ifaceAddr?.toString(), "1.10.100.1");
});

Deno.test("--iface-can-reach failures: bad IP, lookup error, unknown link, disabled family", async () => {
  const cases: [NonNullable<FakeHost["routes"]>, string, string][] = [
    [{}, "not-an-ip", '--iface-can-reach "not-an-ip" is not an IP address'],
    [
      { "10.0.0.1": "Network is unreachable" },
      "10.0.0.1",
      "route lookup for 10.0.0.1 failed: Network is unreachable",
    ],
    [
      { "10.0.0.1": { link: "gone0" } },
      "10.0.0.1",
      "route to 10.0.0.1 uses interface gone0, which was not found",
    ],
    [{}, "fd00::9", "--iface-can-reach fd00::9 is IPv6 but the network config disables IPv6"],
  ];
  for (const [routes, dst, why] of cases) {
    const log = new MemoryLogger();
    await selectionError({ ...IPMATCH, routes }, { ifaceCanReach: dst }, log);
    assert.deepEqual(log.messages("warn"), [`Could not find valid interface matching ${dst}: ${why}`]);
  }
});

// ---------------------------------------------------------------------------------------------
// Address choice, MTU, public IPs, families

Deno.test("address order: global, then permanent, then non-temporary; deprecated never", () => {
  const addrs = [
    "fe80::1/64",
    "2001:db8::7/64 dynamic temporary",
    "2001:db8::6/64 dynamic",
    "2001:db8::5/64 deprecated",
    "2001:db8::4/64 temporary",
    "2001:db8::3/64",
  ];
  const pick = (specs: string[]) => preferredAddress(link("x", 9, specs), 6)?.toString();
  assert.equal(pick(addrs), "2001:db8::3");
  assert.equal(pick(addrs.slice(0, 5)), "2001:db8::4", "permanent temporary before dynamic");
  assert.equal(pick(addrs.slice(0, 4)), "2001:db8::6", "dynamic before dynamic temporary");
  assert.equal(pick(addrs.slice(0, 2)), "2001:db8::7", "global before link-local");
  assert.equal(pick(["fe80::1/64", "2001:db8::5/64 deprecated"]), "fe80::1");
  assert.equal(pick(["2001:db8::5/64 deprecated", "::1/128"]), undefined);
  assert.equal(pick(["2001:db8::a/64", "2001:db8::b/64"]), "2001:db8::a", "ties keep kernel order");
  const v4 = link("y", 9, ["127.0.0.2/8", "169.254.1.1/16", "10.0.0.1/8 dynamic", "10.0.0.2/8"]);
  assert.equal(preferredAddress(v4, 4)?.toString(), "10.0.0.2");
  assert.equal(preferredAddress(v4, 6), undefined);
});

Deno.test("a link without a usable address of an enabled family fails", async () => {
  const log = new MemoryLogger();
  await selectionError(IPMATCH, { iface: ["lo"] }, log);
  assert.deepEqual(log.messages("warn"), [
    "Could not find valid interface matching lo: failed to find IPv4 address for interface lo",
  ]);
  const log6 = new MemoryLogger();
  await selectionError({ links: [link("v4only", 2, ["10.0.0.1/8"])] }, {
    iface: ["v4only"],
    enableIPv6: true,
  }, log6);
  assert.deepEqual(log6.messages("warn"), [
    "Could not find valid interface matching v4only: failed to find IPv6 address for interface v4only",
  ]);
});

Deno.test("MTU 0 fails", async () => {
  const log = new MemoryLogger();
  await selectionError({ links: [link("eth0", 2, ["10.0.0.1/8"], { mtu: 0 })] }, { iface: ["eth0"] }, log);
  assert.deepEqual(log.messages("warn"), [
    "Could not find valid interface matching eth0: failed to determine MTU for eth0 interface",
  ]);
  const err = await selectionError({
    links: [link("eth0", 2, ["10.0.0.1/8"], { mtu: 0 })],
    default4: ["eth0"],
  }, {});
  assert.match(
    err.message,
    /^Failed to find any valid interface to use: failed to determine MTU for eth0 interface/,
  );
});

Deno.test("public IPs: advertised instead of the link's, and must parse in their family", async () => {
  const ext = await select(IPMATCH, {
    iface: ["eth0"],
    enableIPv6: true,
    publicIp: "203.0.113.1",
    publicIpv6: "2001:db8:ffff::1",
  });
  assert.equal(ext.ifaceAddr?.toString(), "192.0.2.2");
  assert.equal(ext.extAddr?.toString(), "203.0.113.1");
  assert.equal(ext.ifaceV6Addr?.toString(), "fd00::2");
  assert.equal(ext.extV6Addr?.toString(), "2001:db8:ffff::1");

  for (
    const [o, msg] of [
      [{ publicIp: "1.2.3" }, "invalid public IP address: 1.2.3: --public-ip must be an IPv4 address"],
      [{ publicIp: "fd00::1" }, "invalid public IP address: fd00::1: --public-ip must be an IPv4 address"],
      [
        { publicIpv6: "10.0.0.1" },
        "invalid public IP address: 10.0.0.1: --public-ipv6 must be an IPv6 address",
      ],
    ] as const
  ) {
    const err = await selectionError(IPMATCH, { iface: ["eth0"], ...o });
    assert.equal(err.message, msg);
  }
});

Deno.test("no IP family enabled fails before looking at the host", async () => {
  const err = await selectionError(IPMATCH, { enableIPv4: false });
  assert.match(err.message, /^No IP family enabled: set "EnableIPv4" or "EnableIPv6"/);
});

Deno.test("a NetInfo that cannot list links gives a selection error with the cause", async () => {
  const net: NetInfo = {
    links: () => Promise.reject(new Error('spawn "ip": not found')),
    defaultRouteLink: () => Promise.resolve([]),
    routeGet: () => Promise.resolve(undefined),
  };
  const err = await selectExternalInterface(options(), net, new MemoryLogger()).catch((e: unknown) => e);
  assert.ok(err instanceof InterfaceSelectionError);
  assert.equal(
    err.message,
    'Failed to find any valid interface to use: cannot list the network interfaces: spawn "ip": not found',
  );
  assert.ok(err.cause instanceof Error);
});

// ---------------------------------------------------------------------------------------------
// `ip -j` NetInfo against output captured from iproute2 6.1 (a veth in a namespace)

const ADDR_SHOW = JSON.stringify([
  {
    ifindex: 1,
    ifname: "lo",
    flags: ["LOOPBACK", "UP", "LOWER_UP"],
    mtu: 65536,
    addr_info: [
      { family: "inet", local: "127.0.0.1", prefixlen: 8, scope: "host", label: "lo" },
      { family: "inet6", local: "::1", prefixlen: 128, scope: "host" },
    ],
  },
  {
    ifindex: 3,
    link: "vb",
    ifname: "va",
    flags: ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
    mtu: 1500,
    addr_info: [
      { family: "inet", local: "10.1.0.1", prefixlen: 24, scope: "global", label: "va" },
      {
        family: "inet",
        local: "10.1.0.9",
        prefixlen: 24,
        scope: "global",
        secondary: true,
        deprecated: true,
        dynamic: true,
        label: "va",
      },
      { family: "inet6", local: "2001:db8::6", prefixlen: 64, scope: "global", nodad: true },
      { family: "inet6", local: "2001:db8::5", prefixlen: 64, scope: "global", nodad: true, dynamic: true },
      { family: "inet6", local: "fe80::acf7:26ff:feb3:f844", prefixlen: 64, scope: "link", tentative: true },
    ],
  },
]);

function fakeRunner(outputs: Record<string, Partial<CommandResult>>) {
  const calls: string[] = [];
  const run = (argv: string[]): Promise<CommandResult> => {
    const cmd = argv.join(" ");
    calls.push(cmd);
    const out = outputs[cmd];
    if (!out) return Promise.resolve({ code: 1, stdout: "", stderr: `unexpected command ${cmd}` });
    return Promise.resolve({ code: 0, stdout: "", stderr: "", ...out });
  };
  return { run, calls };
}

Deno.test("ip -j NetInfo: links, flags and address flags", async () => {
  const { run, calls } = fakeRunner({ "ip -n ns1 -j addr show": { stdout: ADDR_SHOW } });
  const links = await ipCommandNetInfo({ run, netns: "ns1" }).links();
  assert.deepEqual(calls, ["ip -n ns1 -j addr show"]);
  assert.deepEqual(links.map((l) => [l.name, l.index, l.mtu, l.flags]), [
    ["lo", 1, 65536, ["loopback", "up", "lower_up"]],
    ["va", 3, 1500, ["broadcast", "multicast", "up", "lower_up"]],
  ]);
  const va = links[1]!;
  assert.deepEqual(
    va.addrs.map((a) => [a.ip.toString(), a.prefixLen, a.scope, a.dynamic, a.temporary, a.deprecated]),
    [
      ["10.1.0.1", 24, "global", false, false, false],
      ["10.1.0.9", 24, "global", true, false, true],
      ["2001:db8::6", 64, "global", false, false, false],
      ["2001:db8::5", 64, "global", true, false, false],
      ["fe80::acf7:26ff:feb3:f844", 64, "link", false, false, false],
    ],
  );
});

Deno.test("ip -j NetInfo: default routes (plain and multipath) and route get", async () => {
  const { run, calls } = fakeRunner({
    "ip -4 -j route show default": {
      stdout: '[{"dst":"default","gateway":"10.1.0.254","dev":"va","flags":[]},' +
        '{"dst":"default","nexthops":[{"gateway":"10.2.0.1","dev":"vc"},{"gateway":"10.3.0.1","dev":"va"}]}]',
    },
    "ip -6 -j route show default": { stdout: "[]" },
    "ip -j route get 10.9.9.9": {
      stdout:
        '[{"dst":"10.9.9.9","gateway":"10.1.0.254","dev":"va","prefsrc":"10.1.0.1","flags":[],"cache":[]}]',
    },
    "ip -j route get 2001:db8::9": {
      stdout: '[{"dst":"2001:db8::9","from":"::","dev":"va","prefsrc":"2001:db8::6","metric":256}]',
    },
  });
  const net = ipCommandNetInfo({ run });
  assert.deepEqual(await net.defaultRouteLink(4), ["va", "vc"]);
  assert.deepEqual(await net.defaultRouteLink(6), []);
  const r4 = await net.routeGet(parseIP("10.9.9.9"));
  assert.equal(r4?.link, "va");
  assert.equal(r4?.src?.toString(), "10.1.0.1");
  const r6 = await net.routeGet(parseIP("2001:db8::9"));
  assert.equal(r6?.src?.toString(), "2001:db8::6");
  assert.equal(calls.length, 4);
});

Deno.test("ip -j NetInfo: a failing command throws with its stderr; selection logs it", async () => {
  const { run } = fakeRunner({
    "ip -j addr show": { stdout: ADDR_SHOW },
    "ip -j route get 10.8.8.8": { code: 2, stderr: "RTNETLINK answers: Network is unreachable\n" },
  });
  const net = ipCommandNetInfo({ run });
  await assert.rejects(
    net.routeGet(parseIP("10.8.8.8")),
    {
      message:
        'Command "ip -j route get 10.8.8.8" failed with exit code 2: RTNETLINK answers: Network is unreachable',
    },
  );
  const log = new MemoryLogger();
  await assert.rejects(
    selectExternalInterface(options({ ifaceCanReach: "10.8.8.8" }), net, log),
    InterfaceSelectionError,
  );
  assert.deepEqual(log.messages("warn"), [
    "Could not find valid interface matching 10.8.8.8: route lookup for 10.8.8.8 failed: " +
    'Command "ip -j route get 10.8.8.8" failed with exit code 2: RTNETLINK answers: Network is unreachable',
  ]);
  const ext = await selectExternalInterface(options({ iface: ["va"] }), net, log);
  assert.deepEqual(show(ext), {
    name: "va",
    index: 3,
    mtu: 1500,
    ifaceAddr: "10.1.0.1",
    extAddr: "10.1.0.1",
  });
});

/**
 * Link kinds (IFLA_INFO_KIND / IFLA_INFO_DATA) against bytes captured from real kernels: this
 * machine's for vxlan, veth, bridge and tun; the kernel lab's Debian 6.1 for ipip and wireguard
 * (this kernel has neither). Plus the registry's rules.
 */
import assert from "node:assert/strict";
import { AttrEncoder, NetlinkDecodeError } from "../../src/netlink/codec/mod.ts";
import { IP4, IP6 } from "../../src/ip/mod.ts";
import * as route from "../../src/netlink/route/mod.ts";
import {
  ARPHRD_TUNNEL,
  decodeLinkMessage,
  encodeLinkMessage,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  type Link,
  parseMac,
} from "../../src/netlink/route/mod.ts";
import * as kinds from "../../src/netlink/link_kinds/mod.ts";
import {
  IFF_TUN,
  LINK_KIND_DRIVERS,
  LINK_KINDS,
  linkData,
  LinkKindRegistry,
  MAX_LINK_NESTING,
  VXLAN_DF_SET,
  vxlanKind,
} from "../../src/netlink/link_kinds/mod.ts";
import { message, toHex } from "../fixtures/netlink/route/load.ts";

const ip4 = IP4.parse;
const hdr = { family: 0, type: 0, index: 0, flags: 0, change: 0 };

interface CreateCase {
  fixture: string;
  index: number;
  want: Link;
}

const CREATES: CreateCase[] = [
  // flannel's IPv4 device: ip link add flannel.1 address 0a:58:0a:05:22:00 mtu 1450 type vxlan id 1
  //   dev veth0 local 10.0.0.1 dstport 8472 nolearning
  {
    fixture: "link_new_vxlan",
    index: 4,
    want: {
      ...hdr,
      address: parseMac("0a:58:0a:05:22:00"),
      mtu: 1450,
      name: "flannel.1",
      linkinfo: {
        kind: "vxlan",
        data: { link: 3, id: 1, local: ip4("10.0.0.1"), learning: false, port: 8472 },
      },
    },
  },
  // flannel's IPv6 device with GBP
  {
    fixture: "link_new_vxlan6",
    index: 4,
    want: {
      ...hdr,
      address: parseMac("0a:58:0a:05:22:01"),
      mtu: 1430,
      name: "flannel-v6.1",
      linkinfo: {
        kind: "vxlan",
        data: { link: 3, gbp: true, id: 1, local6: IP6.parse("fd00::1"), learning: false, port: 8472 },
      },
    },
  },
  // ip link add vxall type vxlan id 4096 group 239.1.1.1 dev veth0 ttl 64 tos inherit learning
  //   ageing 300 maxaddress 100 srcport 1000 2000 dstport 4789 proxy rsc l2miss l3miss udpcsum df set
  {
    fixture: "link_new_vxlan_all",
    index: 4,
    want: {
      ...hdr,
      name: "vxall",
      linkinfo: {
        kind: "vxlan",
        data: {
          link: 3,
          ttl: 64,
          tos: 1,
          ageing: 300,
          limit: 100,
          portRange: { low: 1000, high: 2000 },
          proxy: true,
          rsc: true,
          l2miss: true,
          l3miss: true,
          udpCsum: true,
          df: VXLAN_DF_SET,
          id: 4096,
          group: ip4("239.1.1.1"),
          learning: true,
          port: 4789,
        },
      },
    },
  },
  // ip link add vethA type veth peer name vethB
  {
    fixture: "link_new_veth",
    index: 2,
    want: { ...hdr, name: "vethA", linkinfo: { kind: "veth", data: { peer: { ...hdr, name: "vethB" } } } },
  },
  // ip link add br0 type bridge
  { fixture: "link_new_bridge", index: 2, want: { ...hdr, name: "br0", linkinfo: { kind: "bridge" } } },
  // (kernel lab) ip link add flannel.ipip type ipip local 10.0.0.1 ttl 64 pmtudisc dev veth0
  {
    fixture: "link_new_ipip",
    index: 4,
    want: {
      ...hdr,
      name: "flannel.ipip",
      linkinfo: {
        kind: "ipip",
        data: {
          proto: 0,
          local: ip4("10.0.0.1"),
          pmtudisc: true,
          tos: 0,
          ttl: 64,
          link: 4,
          fwmark: 0,
          encapType: 0,
          encapFlags: 0,
          encapSport: 0,
          encapDport: 0,
        },
      },
    },
  },
  // (kernel lab) ip link add flannel-wg mtu 1420 type wireguard
  {
    fixture: "link_new_wireguard",
    index: 2,
    want: { ...hdr, mtu: 1420, name: "flannel-wg", linkinfo: { kind: "wireguard" } },
  },
];

for (const c of CREATES) {
  Deno.test(`link create request ${c.fixture} decodes to the object and encodes to the same bytes`, () => {
    const m = message(c.fixture, c.index);
    assert.equal(m.type, route.RTM_NEWLINK);
    assert.equal(m.flags, 0x605); // NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
    assert.deepEqual(decodeLinkMessage(m.payload), c.want);
    assert.equal(toHex(encodeLinkMessage(c.want)), toHex(m.payload));
  });
}

Deno.test("vxlan reply: the kernel reports every attribute, port big-endian, TTL_INHERIT as u8", () => {
  const l = decodeLinkMessage(message("link_get_vxlan", 5).payload);
  const vx = linkData(l, "vxlan")!;
  assert.equal(vx.id, 1);
  assert.equal(vx.link, 3);
  assert.deepEqual(vx.local, ip4("10.0.0.1"));
  assert.equal(vx.port, 8472);
  assert.equal(vx.learning, false);
  assert.equal(vx.gbp, undefined);
  assert.equal(vx.ttl, 0);
  assert.equal(vx.ttlInherit, false);
  assert.equal(vx.l2miss, false);
  assert.equal(vx.l3miss, false);
  assert.equal(vx.ageing, 300);
  assert.equal(vx.limit, 0);
  assert.equal(vx.udpCsum, true);
  assert.equal(vx.localbypass, true);
  assert.deepEqual(vx.portRange, { low: 0, high: 0 });
  assert.equal(vx.reservedBits?.length, 8);
  assert.equal(vx.unknown, undefined);

  const v6 = linkData(decodeLinkMessage(message("link_get_vxlan6", 5).payload), "vxlan")!;
  assert.deepEqual(v6.local6, IP6.parse("fd00::1"));
  assert.equal(v6.local, undefined);
  assert.equal(v6.gbp, true);

  const all = linkData(decodeLinkMessage(message("link_get_vxlan_all", 5).payload), "vxlan")!;
  assert.deepEqual(all.group, ip4("239.1.1.1"));
  assert.deepEqual(all.portRange, { low: 1000, high: 2000 });
  assert.equal(all.port, 4789);
  assert.equal(all.df, VXLAN_DF_SET);
  assert.equal(all.tos, 1);
  assert.equal(all.limit, 100);
  assert.equal([all.proxy, all.rsc, all.l2miss, all.l3miss, all.learning].every(Boolean), true);
});

Deno.test("IFLA_VXLAN_TTL_INHERIT: sent as a flag, read as a flag or a u8, false not sent", () => {
  const ctx = { family: 0, depth: 0 };
  const on = new AttrEncoder();
  vxlanKind.encode(on, { ttlInherit: true }, ctx);
  assert.equal(toHex(on.encode()), "04001c00");
  const off = new AttrEncoder();
  vxlanKind.encode(off, { ttlInherit: false }, ctx);
  assert.equal(off.encode().length, 0);
});

Deno.test("veth reply: no info data, the bridge port's slave kind and data kept raw", () => {
  const l = decodeLinkMessage(message("link_get_veth", 5).payload);
  assert.equal(l.name, "vethA");
  assert.equal(l.master, 9);
  assert.equal(l.link, 4);
  assert.equal(l.linkinfo?.kind, "veth");
  assert.equal(l.linkinfo?.data, undefined);
  assert.equal(l.linkinfo?.slaveKind, "bridge");
  assert.equal(l.linkinfo?.slaveData?.length, 332);
});

Deno.test("bridge reply decodes IFLA_BR_* (times in 1/100 s, timers as u64)", () => {
  const br = linkData(decodeLinkMessage(message("link_get_bridge", 5).payload), "bridge")!;
  assert.equal(br.forwardDelay, 1500);
  assert.equal(br.helloTime, 200);
  assert.equal(br.maxAge, 2000);
  assert.equal(br.ageingTime, 30000);
  assert.equal(br.stpState, 0);
  assert.equal(br.priority, 0x8000);
  assert.equal(br.vlanFiltering, false);
  assert.equal(br.gcTimer, 0n);
  assert.equal(br.mcastQueryIntvl, 12500n);
  assert.equal(route.formatMac(br.groupAddr!), "01:80:c2:00:00:00");
  assert.equal(br.multiBoolopt?.length, 8);
  assert.equal(br.unknown, undefined);
});

Deno.test("tun reply decodes IFLA_TUN_* (a persistent tun made with TUNSETIFF)", () => {
  const l = decodeLinkMessage(message("link_get_tun", 5).payload);
  assert.equal(l.type, route.ARPHRD_NONE);
  assert.deepEqual(linkData(l, "tun"), {
    type: IFF_TUN,
    pi: false,
    vnetHdr: false,
    persist: true,
    multiQueue: false,
  });
});

Deno.test("ipip and wireguard replies (kernel lab, Debian 6.1)", () => {
  const ipip = decodeLinkMessage(message("link_get_ipip", 5).payload);
  assert.equal(ipip.type, ARPHRD_TUNNEL);
  assert.equal(ipip.name, "flannel.ipip");
  const d = linkData(ipip, "ipip")!;
  assert.deepEqual(d.local, ip4("10.0.0.1"));
  assert.deepEqual(d.remote, ip4("0.0.0.0"));
  assert.equal(d.ttl, 64);
  assert.equal(d.pmtudisc, true);
  assert.equal(d.link, 4);
  assert.equal(d.collectMetadata, undefined);
  const wg = decodeLinkMessage(message("link_get_wireguard", 5).payload);
  assert.deepEqual(wg.linkinfo, { kind: "wireguard" });
  assert.equal(wg.name, "flannel-wg");
});

// --- The registry ---------------------------------------------------------------------------------

Deno.test("the registry lists every driver once and refuses a duplicate kind, naming the known kinds", () => {
  assert.deepEqual(LINK_KINDS.kinds, ["vxlan", "veth", "bridge", "tun", "wireguard", "ipip"]);
  assert.equal(LINK_KIND_DRIVERS.length, LINK_KINDS.kinds.length);
  assert.throws(() => new LinkKindRegistry([vxlanKind, kinds.vethKind, vxlanKind]), {
    name: "TypeError",
    message: 'Cannot register link kind "vxlan" twice: known kinds are vxlan, veth, vxlan',
  });
});

Deno.test("a kind without a driver keeps its info data as raw bytes, and writes them back", () => {
  const data = new AttrEncoder().u32(1, 42).encode();
  const p = new AttrEncoder()
    .nested(
      IFLA_LINKINFO,
      (li) => li.bytes(IFLA_INFO_KIND, new TextEncoder().encode("macvlan")).bytes(IFLA_INFO_DATA, data),
    )
    .encode();
  const payload = new Uint8Array(16 + p.length);
  payload.set(p, 16);
  const l = decodeLinkMessage(payload);
  assert.deepEqual(l.linkinfo, { kind: "macvlan", data: { raw: data } });
  assert.equal(toHex(encodeLinkMessage(l)), toHex(payload));
});

Deno.test("a registry of our own: vxlan without its driver stays raw and re-encodes byte for byte", () => {
  const only = new LinkKindRegistry([kinds.bridgeKind]);
  const m = message("link_new_vxlan", 4);
  const l = decodeLinkMessage(m.payload, { kinds: only });
  assert.equal(linkData(l, "vxlan"), undefined);
  assert(l.linkinfo?.data && kinds.isRawLinkData(l.linkinfo.data));
  assert.equal(toHex(encodeLinkMessage(l, { kinds: only })), toHex(m.payload));
  assert.throws(() => encodeLinkMessage(decodeLinkMessage(m.payload), { kinds: only }), {
    name: "TypeError",
    message: 'Cannot encode IFLA_INFO_DATA for link kind "vxlan": no driver; known kinds are bridge',
  });
});

Deno.test("veth peers nest link messages; nesting deeper than the limit is a decode error", () => {
  let link: Link = { ...hdr, name: "leaf" };
  for (let i = 0; i < MAX_LINK_NESTING; i++) {
    link = { ...hdr, name: `v${i}`, linkinfo: { kind: "veth", data: { peer: link } } };
  }
  assert.deepEqual(decodeLinkMessage(encodeLinkMessage(link)), link);
  const deeper: Link = { ...hdr, name: "top", linkinfo: { kind: "veth", data: { peer: link } } };
  assert.throws(() => decodeLinkMessage(encodeLinkMessage(deeper)), NetlinkDecodeError);
});

Deno.test("attribute tables keep the kernel's names: every row's name is the constant with its number", () => {
  const constants: Record<string, unknown> = { ...route, ...kinds };
  const schemas = [
    route.LINK_SCHEMA,
    route.ADDR_SCHEMA,
    route.ROUTE_SCHEMA,
    route.NEXTHOP_SCHEMA,
    route.NEIGH_SCHEMA,
    route.FDB_SCHEMA,
    ...LINK_KIND_DRIVERS.map((d) => d.schema!),
  ];
  for (const s of schemas) {
    for (const row of s.fields) assert.equal(constants[row.name], row.type, `${s.name}: ${row.name}`);
  }
});

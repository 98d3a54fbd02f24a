/**
 * The `vxlan` link kind: IFLA_VXLAN_* attributes of IFLA_INFO_DATA, following
 * include/uapi/linux/if_link.h (Linux 6.18; LOCALBYPASS, LABEL_POLICY and RESERVED_BITS are newer
 * than linux-libc-dev 6.1).
 *
 * flannel's vxlan backend sets id, link, local/local6, port, learning and gbp. Quirks of the wire
 * format: IFLA_VXLAN_PORT and IFLA_VXLAN_PORT_RANGE are big-endian, IFLA_VXLAN_LABEL is a be32;
 * IFLA_VXLAN_GBP, GPE and REMCSUM_NOPARTIAL are flags (present = on), and IFLA_VXLAN_TTL_INHERIT
 * is accepted only as a flag but reported by the kernel as a u8.
 *
 * @module
 */
import type { IP4, IP6 } from "../../ip/mod.ts";
import {
  bool,
  bytes,
  type Codec,
  defineSchema,
  fail,
  flag,
  flagOrU8,
  ip4,
  ip6,
  type RawAttr,
  type Schema,
  u16be,
  u32,
  u32be,
  u8,
} from "../route/schema.ts";
import { type LinkKindDriver, schemaDriver } from "./driver.ts";

export const IFLA_VXLAN_UNSPEC = 0;
export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_GROUP = 2;
export const IFLA_VXLAN_LINK = 3;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_TTL = 5;
export const IFLA_VXLAN_TOS = 6;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_AGEING = 8;
export const IFLA_VXLAN_LIMIT = 9;
export const IFLA_VXLAN_PORT_RANGE = 10;
export const IFLA_VXLAN_PROXY = 11;
export const IFLA_VXLAN_RSC = 12;
export const IFLA_VXLAN_L2MISS = 13;
export const IFLA_VXLAN_L3MISS = 14;
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_GROUP6 = 16;
export const IFLA_VXLAN_LOCAL6 = 17;
export const IFLA_VXLAN_UDP_CSUM = 18;
export const IFLA_VXLAN_UDP_ZERO_CSUM6_TX = 19;
export const IFLA_VXLAN_UDP_ZERO_CSUM6_RX = 20;
export const IFLA_VXLAN_REMCSUM_TX = 21;
export const IFLA_VXLAN_REMCSUM_RX = 22;
export const IFLA_VXLAN_GBP = 23;
export const IFLA_VXLAN_REMCSUM_NOPARTIAL = 24;
export const IFLA_VXLAN_COLLECT_METADATA = 25;
export const IFLA_VXLAN_LABEL = 26;
export const IFLA_VXLAN_GPE = 27;
export const IFLA_VXLAN_TTL_INHERIT = 28;
export const IFLA_VXLAN_DF = 29;
export const IFLA_VXLAN_VNIFILTER = 30;
export const IFLA_VXLAN_LOCALBYPASS = 31;
export const IFLA_VXLAN_LABEL_POLICY = 32;
export const IFLA_VXLAN_RESERVED_BITS = 33;

/** IFLA_VXLAN_DF values (enum ifla_vxlan_df). */
export const VXLAN_DF_UNSET = 0;
export const VXLAN_DF_SET = 1;
export const VXLAN_DF_INHERIT = 2;

/** struct ifla_vxlan_port_range: the UDP source port range, host numbers. */
export interface VxlanPortRange {
  low: number;
  high: number;
}

/** vxlan IFLA_INFO_DATA. Every field is optional: absent means "not sent" / "not reported". */
export interface VxlanData {
  /** VNI (IFLA_VXLAN_ID), 24 bits. */
  id?: number;
  /** Remote or multicast group, IPv4 (IFLA_VXLAN_GROUP). */
  group?: IP4;
  /** Remote or multicast group, IPv6 (IFLA_VXLAN_GROUP6). */
  group6?: IP6;
  /** Underlay device index (IFLA_VXLAN_LINK). */
  link?: number;
  /** Source address, IPv4 (IFLA_VXLAN_LOCAL). */
  local?: IP4;
  /** Source address, IPv6 (IFLA_VXLAN_LOCAL6). */
  local6?: IP6;
  ttl?: number;
  /** Flag on the way in, u8 in the kernel's reports; `false` is not sent. */
  ttlInherit?: boolean;
  /** 1 means "inherit". */
  tos?: number;
  /** IFLA_VXLAN_DF: VXLAN_DF_UNSET, VXLAN_DF_SET or VXLAN_DF_INHERIT. */
  df?: number;
  /** IPv6 flow label (be32 on the wire). */
  label?: number;
  labelPolicy?: number;
  learning?: boolean;
  /** FDB entry lifetime, seconds. */
  ageing?: number;
  /** Maximum FDB entries, 0 = unlimited. */
  limit?: number;
  portRange?: VxlanPortRange;
  proxy?: boolean;
  rsc?: boolean;
  l2miss?: boolean;
  l3miss?: boolean;
  collectMetadata?: boolean;
  /** UDP destination port (big-endian on the wire). The kernel default is 8472. */
  port?: number;
  udpCsum?: boolean;
  udpZeroCsum6Tx?: boolean;
  udpZeroCsum6Rx?: boolean;
  remcsumTx?: boolean;
  remcsumRx?: boolean;
  /** Flag: `false` is not sent. */
  remcsumNopartial?: boolean;
  /** Group Based Policy extension. Flag: `false` is not sent. */
  gbp?: boolean;
  /** Generic Protocol Extension. Flag: `false` is not sent. */
  gpe?: boolean;
  vnifilter?: boolean;
  localbypass?: boolean;
  /** The VXLAN header bits the device accepts as reserved (struct vxlanhdr, 8 bytes). */
  reservedBits?: Uint8Array;
  unknown?: RawAttr[];
}

/** IFLA_VXLAN_PORT_RANGE: two be16. */
const portRange: Codec<VxlanPortRange> = {
  name: "vxlanPortRange",
  encode(ae, spec, v) {
    const b = new Uint8Array(4);
    const dv = new DataView(b.buffer);
    dv.setUint16(0, v.low, false);
    dv.setUint16(2, v.high, false);
    ae.bytes(spec.type, b);
  },
  decode(ad) {
    const d = ad.data;
    if (d.length < 4) return fail(ad, `IFLA_VXLAN_PORT_RANGE has ${d.length} bytes, needs 4`);
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    return { low: dv.getUint16(0, false), high: dv.getUint16(2, false) };
  },
};

/**
 * The IFLA_VXLAN_* table. The order is the encoding order, chosen to match iproute2's requests
 * byte for byte: the underlay link, then the options by number, then id, group, local, learning and
 * port last (the kernel does not care about order).
 */
export const VXLAN_SCHEMA: Schema = defineSchema<VxlanData>("IFLA_VXLAN_* (linux/if_link.h)", (f) => [
  f(IFLA_VXLAN_LINK, "IFLA_VXLAN_LINK", "link", u32),
  f(IFLA_VXLAN_TTL, "IFLA_VXLAN_TTL", "ttl", u8),
  f(IFLA_VXLAN_TOS, "IFLA_VXLAN_TOS", "tos", u8),
  f(IFLA_VXLAN_AGEING, "IFLA_VXLAN_AGEING", "ageing", u32),
  f(IFLA_VXLAN_LIMIT, "IFLA_VXLAN_LIMIT", "limit", u32),
  f(IFLA_VXLAN_PORT_RANGE, "IFLA_VXLAN_PORT_RANGE", "portRange", portRange),
  f(IFLA_VXLAN_PROXY, "IFLA_VXLAN_PROXY", "proxy", bool),
  f(IFLA_VXLAN_RSC, "IFLA_VXLAN_RSC", "rsc", bool),
  f(IFLA_VXLAN_L2MISS, "IFLA_VXLAN_L2MISS", "l2miss", bool),
  f(IFLA_VXLAN_L3MISS, "IFLA_VXLAN_L3MISS", "l3miss", bool),
  f(IFLA_VXLAN_UDP_CSUM, "IFLA_VXLAN_UDP_CSUM", "udpCsum", bool),
  f(IFLA_VXLAN_UDP_ZERO_CSUM6_TX, "IFLA_VXLAN_UDP_ZERO_CSUM6_TX", "udpZeroCsum6Tx", bool),
  f(IFLA_VXLAN_UDP_ZERO_CSUM6_RX, "IFLA_VXLAN_UDP_ZERO_CSUM6_RX", "udpZeroCsum6Rx", bool),
  f(IFLA_VXLAN_REMCSUM_TX, "IFLA_VXLAN_REMCSUM_TX", "remcsumTx", bool),
  f(IFLA_VXLAN_REMCSUM_RX, "IFLA_VXLAN_REMCSUM_RX", "remcsumRx", bool),
  f(IFLA_VXLAN_GBP, "IFLA_VXLAN_GBP", "gbp", flag),
  f(IFLA_VXLAN_REMCSUM_NOPARTIAL, "IFLA_VXLAN_REMCSUM_NOPARTIAL", "remcsumNopartial", flag),
  f(IFLA_VXLAN_COLLECT_METADATA, "IFLA_VXLAN_COLLECT_METADATA", "collectMetadata", bool),
  f(IFLA_VXLAN_LABEL, "IFLA_VXLAN_LABEL", "label", u32be),
  f(IFLA_VXLAN_GPE, "IFLA_VXLAN_GPE", "gpe", flag),
  f(IFLA_VXLAN_TTL_INHERIT, "IFLA_VXLAN_TTL_INHERIT", "ttlInherit", flagOrU8),
  f(IFLA_VXLAN_DF, "IFLA_VXLAN_DF", "df", u8),
  f(IFLA_VXLAN_VNIFILTER, "IFLA_VXLAN_VNIFILTER", "vnifilter", bool),
  f(IFLA_VXLAN_LOCALBYPASS, "IFLA_VXLAN_LOCALBYPASS", "localbypass", bool),
  f(IFLA_VXLAN_LABEL_POLICY, "IFLA_VXLAN_LABEL_POLICY", "labelPolicy", u32),
  f(IFLA_VXLAN_RESERVED_BITS, "IFLA_VXLAN_RESERVED_BITS", "reservedBits", bytes),
  f(IFLA_VXLAN_ID, "IFLA_VXLAN_ID", "id", u32),
  f(IFLA_VXLAN_GROUP, "IFLA_VXLAN_GROUP", "group", ip4),
  f(IFLA_VXLAN_GROUP6, "IFLA_VXLAN_GROUP6", "group6", ip6),
  f(IFLA_VXLAN_LOCAL, "IFLA_VXLAN_LOCAL", "local", ip4),
  f(IFLA_VXLAN_LOCAL6, "IFLA_VXLAN_LOCAL6", "local6", ip6),
  f(IFLA_VXLAN_LEARNING, "IFLA_VXLAN_LEARNING", "learning", bool),
  f(IFLA_VXLAN_PORT, "IFLA_VXLAN_PORT", "port", u16be),
]);

/**
 * The vxlan driver.
 *
 * @example
 * ```ts
 * import { AttrEncoder } from "../codec/mod.ts";
 * import { IP4 } from "../../ip/mod.ts";
 * import { AF_INET } from "../route/constants.ts";
 * import { vxlanKind } from "./vxlan.ts";
 * const ae = new AttrEncoder();
 * vxlanKind.encode(ae, { id: 1, local: IP4.parse("10.0.0.1"), port: 8472, learning: false }, { family: AF_INET, depth: 0 });
 * console.assert(ae.encode().length === 32);
 * ```
 */
export const vxlanKind: LinkKindDriver<VxlanData> = schemaDriver<VxlanData>("vxlan", VXLAN_SCHEMA);

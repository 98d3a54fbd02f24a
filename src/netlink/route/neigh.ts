/**
 * Neighbour messages (RTM_NEWNEIGH/DELNEIGH/GETNEIGH): struct ndmsg and NDA_* attributes,
 * following include/uapi/linux/neighbour.h. The same message carries ARP/NDP entries (AF_INET,
 * AF_INET6) and bridge FDB entries (AF_BRIDGE).
 *
 * flannel's vxlan backend writes, per peer, an ARP entry `10.5.35.0 lladdr <VtepMAC> dev flannel.1
 * nud permanent` and an FDB entry `<VtepMAC> dev flannel.1 self dst <PublicIP> permanent`: family
 * AF_BRIDGE, NTF_SELF (the vxlan device's own table, not a bridge's), NUD_PERMANENT, NDA_LLADDR
 * and NDA_DST (the remote VTEP, IPv4 or IPv6 whatever the message family).
 *
 * @module
 */
import { AttrDecoder, AttrEncoder } from "../codec/mod.ts";
import type { IP } from "./addresses.ts";
import {
  AF_BRIDGE,
  NDA_CACHEINFO,
  NDA_DST,
  NDA_FLAGS_EXT,
  NDA_IFINDEX,
  NDA_LINK_NETNSID,
  NDA_LLADDR,
  NDA_MASTER,
  NDA_NDM_FLAGS_MASK,
  NDA_NDM_STATE_MASK,
  NDA_NH_ID,
  NDA_PORT,
  NDA_PROBES,
  NDA_PROTOCOL,
  NDA_SRC_VNI,
  NDA_VLAN,
  NDA_VNI,
  NDMSG_LEN,
} from "./constants.ts";
import {
  type AttrSpec,
  bytes,
  decodeFields,
  defineSchema,
  encodeFields,
  type FieldFn,
  headerView,
  ip,
  type RawAttr,
  s32,
  type Schema,
  u16,
  u16be,
  u32,
  u32Struct,
  u8,
} from "./schema.ts";

/** struct nda_cacheinfo: ages in clock ticks converted to 1/100 s. */
export interface NdaCacheinfo {
  confirmed: number;
  used: number;
  updated: number;
  refcnt: number;
}

/** A neighbour message: struct ndmsg and attributes. */
export interface Neigh {
  /** ndm_family: AF_INET, AF_INET6, or AF_BRIDGE for FDB entries. */
  family: number;
  /** ndm_ifindex: the device. */
  index: number;
  /** ndm_state: NUD_* bits. */
  state: number;
  /** ndm_flags: NTF_* bits. */
  flags: number;
  /** ndm_type: RTN_* of the address (RTN_UNICAST, RTN_MULTICAST…). */
  type: number;
  /** NDA_DST: the protocol address; for a vxlan FDB entry the remote VTEP. */
  dst?: IP;
  /** NDA_LLADDR: the link-layer address. */
  lladdr?: Uint8Array;
  cacheinfo?: NdaCacheinfo;
  probes?: number;
  vlan?: number;
  /** NDA_PORT: vxlan FDB remote UDP port (big-endian on the wire). */
  port?: number;
  /** NDA_VNI: vxlan FDB remote VNI. */
  vni?: number;
  /** NDA_IFINDEX: vxlan FDB device to reach the remote through (`bridge fdb … via DEV`). */
  remoteIfindex?: number;
  /** NDA_MASTER: the bridge, for FDB entries with NTF_MASTER. */
  master?: number;
  linkNetnsid?: number;
  srcVni?: number;
  /** NDA_PROTOCOL: who added the entry. */
  protocol?: number;
  nhId?: number;
  /** NDA_FLAGS_EXT: NTF_EXT_* bits. */
  flagsExt?: number;
  ndmStateMask?: number;
  ndmFlagsMask?: number;
  unknown?: RawAttr[];
}

const cacheinfo = u32Struct<keyof NdaCacheinfo>("nda_cacheinfo", ["confirmed", "used", "updated", "refcnt"]);

function rest(f: FieldFn<Neigh>): AttrSpec[] {
  return [
    f(NDA_PORT, "NDA_PORT", "port", u16be),
    f(NDA_VNI, "NDA_VNI", "vni", u32),
    f(NDA_IFINDEX, "NDA_IFINDEX", "remoteIfindex", u32),
    f(NDA_MASTER, "NDA_MASTER", "master", u32),
    f(NDA_VLAN, "NDA_VLAN", "vlan", u16),
    f(NDA_SRC_VNI, "NDA_SRC_VNI", "srcVni", u32),
    f(NDA_LINK_NETNSID, "NDA_LINK_NETNSID", "linkNetnsid", s32),
    f(NDA_PROBES, "NDA_PROBES", "probes", u32),
    f(NDA_CACHEINFO, "NDA_CACHEINFO", "cacheinfo", cacheinfo),
    f(NDA_PROTOCOL, "NDA_PROTOCOL", "protocol", u8),
    f(NDA_NH_ID, "NDA_NH_ID", "nhId", u32),
    f(NDA_FLAGS_EXT, "NDA_FLAGS_EXT", "flagsExt", u32),
    f(NDA_NDM_STATE_MASK, "NDA_NDM_STATE_MASK", "ndmStateMask", u16),
    f(NDA_NDM_FLAGS_MASK, "NDA_NDM_FLAGS_MASK", "ndmFlagsMask", u8),
  ];
}

/** The NDA_* table for ARP/NDP entries: `ip neigh` sends NDA_DST, then NDA_LLADDR. */
export const NEIGH_SCHEMA: Schema = defineSchema<Neigh>("NDA_* (linux/neighbour.h)", (f) => [
  f(NDA_DST, "NDA_DST", "dst", ip),
  f(NDA_LLADDR, "NDA_LLADDR", "lladdr", bytes),
  ...rest(f),
]);

/** The NDA_* table for FDB entries (AF_BRIDGE): `bridge fdb` sends NDA_LLADDR, then NDA_DST. */
export const FDB_SCHEMA: Schema = defineSchema<Neigh>("NDA_* for AF_BRIDGE (linux/neighbour.h)", (f) => [
  f(NDA_LLADDR, "NDA_LLADDR", "lladdr", bytes),
  f(NDA_DST, "NDA_DST", "dst", ip),
  ...rest(f),
]);

/**
 * Encodes a neighbour message payload (ndmsg + attributes). The attribute order follows
 * iproute2 (`ip neigh` for ARP/NDP, `bridge fdb` for AF_BRIDGE), so requests compare byte for byte.
 *
 * @throws {RangeError} when a number does not fit its attribute.
 *
 * @example
 * ```ts
 * import { IP4 } from "../../ip/mod.ts";
 * import { AF_BRIDGE, NTF_SELF, NUD_NOARP, NUD_PERMANENT } from "./constants.ts";
 * import { parseMac } from "./addresses.ts";
 * import { encodeNeighMessage } from "./neigh.ts";
 * const p = encodeNeighMessage({
 *   family: AF_BRIDGE, index: 6, state: NUD_PERMANENT | NUD_NOARP, flags: NTF_SELF, type: 0,
 *   lladdr: parseMac("0a:58:0a:05:23:00"), dst: IP4.parse("10.0.0.2"),
 * });
 * console.assert(p.length === 12 + 12 + 8);
 * ```
 */
export function encodeNeighMessage(neigh: Neigh): Uint8Array {
  const ae = new AttrEncoder();
  const schema = neigh.family === AF_BRIDGE ? FDB_SCHEMA : NEIGH_SCHEMA;
  encodeFields(ae, schema, neigh, { family: neigh.family, depth: 0 });
  const attrs = ae.encode();
  const out = new Uint8Array(NDMSG_LEN + attrs.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, neigh.family);
  dv.setInt32(4, neigh.index, true);
  dv.setUint16(8, neigh.state, true);
  dv.setUint8(10, neigh.flags);
  dv.setUint8(11, neigh.type);
  out.set(attrs, NDMSG_LEN);
  return out;
}

/**
 * Decodes a neighbour message payload (ndmsg + attributes).
 *
 * @throws {NetlinkDecodeError} on malformed bytes.
 */
export function decodeNeighMessage(payload: Uint8Array): Neigh {
  const dv = headerView(payload, NDMSG_LEN, "Neighbour message (struct ndmsg)");
  const neigh: Neigh = {
    family: dv.getUint8(0),
    index: dv.getInt32(4, true),
    state: dv.getUint16(8, true),
    flags: dv.getUint8(10),
    type: dv.getUint8(11),
  };
  const ad = new AttrDecoder(payload.subarray(NDMSG_LEN));
  decodeFields(ad, NEIGH_SCHEMA, neigh, { family: neigh.family, depth: 0 });
  if (ad.err) throw ad.err;
  return neigh;
}

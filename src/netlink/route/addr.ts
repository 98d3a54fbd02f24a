/**
 * Address messages (RTM_NEWADDR/DELADDR/GETADDR): struct ifaddrmsg and IFA_* attributes,
 * following include/uapi/linux/if_addr.h. Addresses are sized by `family` (4 bytes for AF_INET,
 * 16 for AF_INET6).
 *
 * @module
 */
import { AttrDecoder, AttrEncoder } from "../codec/mod.ts";
import type { IP } from "./addresses.ts";
import {
  IFA_ADDRESS,
  IFA_ANYCAST,
  IFA_BROADCAST,
  IFA_CACHEINFO,
  IFA_FLAGS,
  IFA_LABEL,
  IFA_LOCAL,
  IFA_MULTICAST,
  IFA_PROTO,
  IFA_RT_PRIORITY,
  IFA_TARGET_NETNSID,
  IFADDRMSG_LEN,
} from "./constants.ts";
import {
  type CodecContext,
  decodeFields,
  defineSchema,
  encodeFields,
  headerView,
  ip,
  type RawAttr,
  s32,
  type Schema,
  str,
  u32,
  u32Struct,
  u8,
} from "./schema.ts";

/** struct ifa_cacheinfo: lifetimes in seconds (0xffffffff = forever), timestamps in 1/100 s. */
export interface IfaCacheinfo {
  preferred: number;
  valid: number;
  cstamp: number;
  tstamp: number;
}

/** An address message: struct ifaddrmsg and attributes. */
export interface Addr {
  /** ifa_family: AF_INET or AF_INET6. */
  family: number;
  /** ifa_prefixlen. */
  prefixLen: number;
  /** ifa_flags: the low 8 IFA_F_* bits (see `extFlags`). */
  flags: number;
  /** ifa_scope: RT_SCOPE_*. */
  scope: number;
  /** ifa_index: the link. */
  index: number;
  /** IFA_ADDRESS: the prefix address; the peer on point-to-point links. */
  address?: IP;
  /** IFA_LOCAL: the local address (IPv4; equal to `address` except on point-to-point links). */
  local?: IP;
  /** IFA_LABEL: the IPv4 label (`eth0:1`). */
  label?: string;
  broadcast?: IP;
  anycast?: IP;
  multicast?: IP;
  /** IFA_FLAGS: all IFA_F_* bits as a u32; when present the kernel ignores `flags`. */
  extFlags?: number;
  cacheinfo?: IfaCacheinfo;
  /** IFA_RT_PRIORITY: the metric of the prefix route. */
  rtPriority?: number;
  targetNetnsid?: number;
  /** IFA_PROTO: IFAPROT_* (who added it). */
  proto?: number;
  unknown?: RawAttr[];
}

const cacheinfo = u32Struct<keyof IfaCacheinfo>("ifa_cacheinfo", ["preferred", "valid", "cstamp", "tstamp"]);

/** The IFA_* table, in the order iproute2 sends them (local, label, address, broadcast, …). */
export const ADDR_SCHEMA: Schema = defineSchema<Addr>("IFA_* (linux/if_addr.h)", (f) => [
  f(IFA_LOCAL, "IFA_LOCAL", "local", ip),
  f(IFA_LABEL, "IFA_LABEL", "label", str),
  f(IFA_ADDRESS, "IFA_ADDRESS", "address", ip),
  f(IFA_BROADCAST, "IFA_BROADCAST", "broadcast", ip),
  f(IFA_ANYCAST, "IFA_ANYCAST", "anycast", ip),
  f(IFA_MULTICAST, "IFA_MULTICAST", "multicast", ip),
  f(IFA_FLAGS, "IFA_FLAGS", "extFlags", u32),
  f(IFA_CACHEINFO, "IFA_CACHEINFO", "cacheinfo", cacheinfo),
  f(IFA_RT_PRIORITY, "IFA_RT_PRIORITY", "rtPriority", u32),
  f(IFA_TARGET_NETNSID, "IFA_TARGET_NETNSID", "targetNetnsid", s32),
  f(IFA_PROTO, "IFA_PROTO", "proto", u8),
]);

/**
 * Encodes an address message payload (ifaddrmsg + attributes).
 *
 * @throws {RangeError} when a number does not fit its attribute.
 *
 * @example
 * ```ts
 * import { IP4 } from "../../ip/mod.ts";
 * import { AF_INET } from "./constants.ts";
 * import { encodeAddrMessage } from "./addr.ts";
 * const a = IP4.parse("10.5.34.0");
 * const p = encodeAddrMessage({ family: AF_INET, prefixLen: 32, flags: 0, scope: 0, index: 6, local: a, address: a });
 * console.assert(p.length === 8 + 8 + 8);
 * ```
 */
export function encodeAddrMessage(addr: Addr): Uint8Array {
  const ae = new AttrEncoder();
  const ctx: CodecContext = { family: addr.family, depth: 0 };
  encodeFields(ae, ADDR_SCHEMA, addr, ctx);
  const attrs = ae.encode();
  const out = new Uint8Array(IFADDRMSG_LEN + attrs.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, addr.family);
  dv.setUint8(1, addr.prefixLen);
  dv.setUint8(2, addr.flags);
  dv.setUint8(3, addr.scope);
  dv.setUint32(4, addr.index >>> 0, true);
  out.set(attrs, IFADDRMSG_LEN);
  return out;
}

/**
 * Decodes an address message payload (ifaddrmsg + attributes).
 *
 * @throws {NetlinkDecodeError} on malformed bytes.
 */
export function decodeAddrMessage(payload: Uint8Array): Addr {
  const dv = headerView(payload, IFADDRMSG_LEN, "Address message (struct ifaddrmsg)");
  const addr: Addr = {
    family: dv.getUint8(0),
    prefixLen: dv.getUint8(1),
    flags: dv.getUint8(2),
    scope: dv.getUint8(3),
    index: dv.getUint32(4, true),
  };
  const ad = new AttrDecoder(payload.subarray(IFADDRMSG_LEN));
  decodeFields(ad, ADDR_SCHEMA, addr, { family: addr.family, depth: 0 });
  if (ad.err) throw ad.err;
  return addr;
}

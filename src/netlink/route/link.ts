/**
 * Link messages (RTM_NEWLINK/DELLINK/GETLINK/SETLINK): struct ifinfomsg and IFLA_* attributes,
 * following include/uapi/linux/rtnetlink.h and if_link.h. IFLA_LINKINFO carries the kind
 * (`vxlan`, `veth`, …) and its IFLA_INFO_DATA, decoded by the link-kind driver registered for it.
 *
 * Attributes without a field here (statistics, IFLA_AF_SPEC, IFLA_PROP_LIST, …) are kept raw in
 * `unknown` and written back unchanged. A decoded reply carries read-only attributes the kernel
 * refuses in a request (counters, IFLA_MIN_MTU, …): build requests from scratch rather than
 * echoing a reply.
 *
 * @module
 */
import { AttrDecoder, AttrEncoder } from "../codec/mod.ts";
import {
  IFINFOMSG_LEN,
  IFLA_ADDRESS,
  IFLA_ALLMULTI,
  IFLA_BROADCAST,
  IFLA_CARRIER,
  IFLA_CARRIER_CHANGES,
  IFLA_CARRIER_DOWN_COUNT,
  IFLA_CARRIER_UP_COUNT,
  IFLA_EXT_MASK,
  IFLA_GRO_MAX_SIZE,
  IFLA_GROUP,
  IFLA_GSO_MAX_SEGS,
  IFLA_GSO_MAX_SIZE,
  IFLA_IFALIAS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_DATA,
  IFLA_INFO_SLAVE_KIND,
  IFLA_INFO_XSTATS,
  IFLA_LINK,
  IFLA_LINK_NETNSID,
  IFLA_LINKINFO,
  IFLA_LINKMODE,
  IFLA_MASTER,
  IFLA_MAX_MTU,
  IFLA_MIN_MTU,
  IFLA_MTU,
  IFLA_NET_NS_FD,
  IFLA_NET_NS_PID,
  IFLA_NEW_IFINDEX,
  IFLA_NUM_RX_QUEUES,
  IFLA_NUM_TX_QUEUES,
  IFLA_OPERSTATE,
  IFLA_PARENT_DEV_BUS_NAME,
  IFLA_PARENT_DEV_NAME,
  IFLA_PERM_ADDRESS,
  IFLA_PROMISCUITY,
  IFLA_PROTO_DOWN,
  IFLA_QDISC,
  IFLA_TARGET_NETNSID,
  IFLA_TSO_MAX_SEGS,
  IFLA_TSO_MAX_SIZE,
  IFLA_TXQLEN,
} from "./constants.ts";
import {
  bool,
  bytes,
  type Codec,
  type CodecContext,
  decodeFields,
  defineSchema,
  encodeFields,
  headerView,
  type RawAttr,
  rawAttr,
  s32,
  type Schema,
  str,
  u32,
  u8,
} from "./schema.ts";
import { isRawLinkData } from "../link_kinds/driver.ts";
import { LINK_KINDS, type LinkData, type LinkKindRegistry } from "../link_kinds/registry.ts";

/** IFLA_LINKINFO. */
export interface LinkInfo {
  /** IFLA_INFO_KIND. Absent for links without rtnl_link_ops (physical NICs) that are bridge ports. */
  kind?: string;
  /** IFLA_INFO_DATA, decoded by the kind's driver; `{ raw }` when the kind has none. */
  data?: LinkData;
  /** IFLA_INFO_XSTATS, raw. */
  xstats?: Uint8Array;
  /** IFLA_INFO_SLAVE_KIND: the master's kind for a port (`bridge`). */
  slaveKind?: string;
  /** IFLA_INFO_SLAVE_DATA, raw (IFLA_BRPORT_* for a bridge port). */
  slaveData?: Uint8Array;
  unknown?: RawAttr[];
}

/**
 * A link message: struct ifinfomsg and attributes. Optional fields are attributes; absent means
 * "not sent" (in a request) or "not reported" (in a reply).
 */
export interface Link {
  /** ifi_family: AF_UNSPEC for most requests. */
  family: number;
  /** ifi_type: ARPHRD_*. */
  type: number;
  /** ifi_index: 0 to create, or to select by `name`. */
  index: number;
  /** ifi_flags: IFF_*. */
  flags: number;
  /** ifi_change: which IFF_* bits of `flags` to change. */
  change: number;
  /** IFLA_ADDRESS: the link-layer address (MAC for ethernet-like links). */
  address?: Uint8Array;
  broadcast?: Uint8Array;
  mtu?: number;
  /** IFLA_LINK: the lower device's index. */
  link?: number;
  /** IFLA_MASTER: the bridge (or bond…) index; 0 to release. */
  master?: number;
  txqlen?: number;
  /** IFLA_OPERSTATE: IF_OPER_*. */
  operstate?: number;
  linkmode?: number;
  group?: number;
  /** IFLA_NET_NS_PID: move to the network namespace of this process. */
  netnsPid?: number;
  /** IFLA_NET_NS_FD: move to the network namespace open at this file descriptor. */
  netnsFd?: number;
  targetNetnsid?: number;
  linkNetnsid?: number;
  promiscuity?: number;
  allmulti?: number;
  numTxQueues?: number;
  numRxQueues?: number;
  carrier?: boolean;
  carrierChanges?: number;
  carrierUpCount?: number;
  carrierDownCount?: number;
  protoDown?: boolean;
  gsoMaxSegs?: number;
  gsoMaxSize?: number;
  groMaxSize?: number;
  tsoMaxSize?: number;
  tsoMaxSegs?: number;
  minMtu?: number;
  maxMtu?: number;
  newIfindex?: number;
  permAddress?: Uint8Array;
  qdisc?: string;
  /** IFLA_IFALIAS. */
  alias?: string;
  parentDevName?: string;
  parentDevBusName?: string;
  /** IFLA_IFNAME. */
  name?: string;
  linkinfo?: LinkInfo;
  /** IFLA_EXT_MASK (requests): RTEXT_FILTER_* bits. */
  extMask?: number;
  unknown?: RawAttr[];
}

/** Options of the link codec. */
export interface LinkCodecOptions {
  /** The link kinds to use; default {@linkcode LINK_KINDS}. */
  kinds?: LinkKindRegistry;
}

function kindDriver(ctx: CodecContext, kind: string | undefined) {
  return kind === undefined ? undefined : ctx.link?.kinds.get(kind);
}

const utf8 = new TextEncoder();

/**
 * IFLA_LINKINFO, read in two passes because IFLA_INFO_DATA needs IFLA_INFO_KIND. The kind
 * strings are sent without their NUL, as iproute2 sends them (NLA_STRING accepts both).
 */
const linkinfo: Codec<LinkInfo> = {
  name: "linkinfo",
  encode(ae, spec, info, ctx) {
    ae.nested(spec.type, (n) => {
      if (info.kind !== undefined) n.bytes(IFLA_INFO_KIND, utf8.encode(info.kind));
      const data = info.data;
      if (data !== undefined) {
        if (isRawLinkData(data)) n.bytes(IFLA_INFO_DATA, data.raw);
        else {
          const driver = kindDriver(ctx, info.kind);
          if (!driver) {
            throw new TypeError(
              `Cannot encode IFLA_INFO_DATA for link kind ${
                JSON.stringify(info.kind)
              }: no driver; known kinds are ${ctx.link?.kinds.kinds.join(", ")}`,
            );
          }
          n.nested(IFLA_INFO_DATA, (d) => driver.encode(d, data, ctx));
        }
      }
      if (info.xstats !== undefined) n.bytes(IFLA_INFO_XSTATS, info.xstats);
      if (info.slaveKind !== undefined) n.bytes(IFLA_INFO_SLAVE_KIND, utf8.encode(info.slaveKind));
      if (info.slaveData !== undefined) n.bytes(IFLA_INFO_SLAVE_DATA, info.slaveData);
      for (const u of info.unknown ?? []) n.bytes(u.type, u.data);
    });
  },
  decode(ad, ctx) {
    const info: LinkInfo = {};
    let data: Uint8Array | undefined;
    ad.nested((n) => {
      const unknown: RawAttr[] = [];
      while (n.next()) {
        if (n.type === IFLA_INFO_KIND) info.kind = n.string();
        else if (n.type === IFLA_INFO_DATA) data = n.data;
        else if (n.type === IFLA_INFO_XSTATS) info.xstats = n.bytes();
        else if (n.type === IFLA_INFO_SLAVE_KIND) info.slaveKind = n.string();
        else if (n.type === IFLA_INFO_SLAVE_DATA) info.slaveData = n.bytes();
        else unknown.push(rawAttr(n));
      }
      if (unknown.length > 0) info.unknown = unknown;
      if (data === undefined || n.err) return;
      const driver = kindDriver(ctx, info.kind);
      if (!driver) {
        info.data = { raw: data.slice() };
        return;
      }
      const dd = new AttrDecoder(data);
      info.data = driver.decode(dd, ctx);
      if (dd.err) n.err ??= dd.err;
    });
    return info;
  },
};

/**
 * The IFLA_* table. The order is the encoding order: iproute2's requests (address, mtu, …, then
 * the name, the link info and the extension mask) compare byte for byte.
 */
export const LINK_SCHEMA: Schema = defineSchema<Link>("IFLA_* (linux/if_link.h)", (f) => [
  f(IFLA_ADDRESS, "IFLA_ADDRESS", "address", bytes),
  f(IFLA_BROADCAST, "IFLA_BROADCAST", "broadcast", bytes),
  f(IFLA_MTU, "IFLA_MTU", "mtu", u32),
  f(IFLA_LINK, "IFLA_LINK", "link", u32),
  f(IFLA_MASTER, "IFLA_MASTER", "master", u32),
  f(IFLA_TXQLEN, "IFLA_TXQLEN", "txqlen", u32),
  f(IFLA_OPERSTATE, "IFLA_OPERSTATE", "operstate", u8),
  f(IFLA_LINKMODE, "IFLA_LINKMODE", "linkmode", u8),
  f(IFLA_GROUP, "IFLA_GROUP", "group", u32),
  f(IFLA_NET_NS_PID, "IFLA_NET_NS_PID", "netnsPid", u32),
  f(IFLA_NET_NS_FD, "IFLA_NET_NS_FD", "netnsFd", u32),
  f(IFLA_TARGET_NETNSID, "IFLA_TARGET_NETNSID", "targetNetnsid", s32),
  f(IFLA_LINK_NETNSID, "IFLA_LINK_NETNSID", "linkNetnsid", s32),
  f(IFLA_PROMISCUITY, "IFLA_PROMISCUITY", "promiscuity", u32),
  f(IFLA_ALLMULTI, "IFLA_ALLMULTI", "allmulti", u32),
  f(IFLA_NUM_TX_QUEUES, "IFLA_NUM_TX_QUEUES", "numTxQueues", u32),
  f(IFLA_NUM_RX_QUEUES, "IFLA_NUM_RX_QUEUES", "numRxQueues", u32),
  f(IFLA_CARRIER, "IFLA_CARRIER", "carrier", bool),
  f(IFLA_CARRIER_CHANGES, "IFLA_CARRIER_CHANGES", "carrierChanges", u32),
  f(IFLA_CARRIER_UP_COUNT, "IFLA_CARRIER_UP_COUNT", "carrierUpCount", u32),
  f(IFLA_CARRIER_DOWN_COUNT, "IFLA_CARRIER_DOWN_COUNT", "carrierDownCount", u32),
  f(IFLA_PROTO_DOWN, "IFLA_PROTO_DOWN", "protoDown", bool),
  f(IFLA_GSO_MAX_SEGS, "IFLA_GSO_MAX_SEGS", "gsoMaxSegs", u32),
  f(IFLA_GSO_MAX_SIZE, "IFLA_GSO_MAX_SIZE", "gsoMaxSize", u32),
  f(IFLA_GRO_MAX_SIZE, "IFLA_GRO_MAX_SIZE", "groMaxSize", u32),
  f(IFLA_TSO_MAX_SIZE, "IFLA_TSO_MAX_SIZE", "tsoMaxSize", u32),
  f(IFLA_TSO_MAX_SEGS, "IFLA_TSO_MAX_SEGS", "tsoMaxSegs", u32),
  f(IFLA_MIN_MTU, "IFLA_MIN_MTU", "minMtu", u32),
  f(IFLA_MAX_MTU, "IFLA_MAX_MTU", "maxMtu", u32),
  f(IFLA_NEW_IFINDEX, "IFLA_NEW_IFINDEX", "newIfindex", s32),
  f(IFLA_PERM_ADDRESS, "IFLA_PERM_ADDRESS", "permAddress", bytes),
  f(IFLA_QDISC, "IFLA_QDISC", "qdisc", str),
  f(IFLA_IFALIAS, "IFLA_IFALIAS", "alias", str),
  f(IFLA_PARENT_DEV_NAME, "IFLA_PARENT_DEV_NAME", "parentDevName", str),
  f(IFLA_PARENT_DEV_BUS_NAME, "IFLA_PARENT_DEV_BUS_NAME", "parentDevBusName", str),
  f(IFLA_IFNAME, "IFLA_IFNAME", "name", str),
  f(IFLA_LINKINFO, "IFLA_LINKINFO", "linkinfo", linkinfo),
  f(IFLA_EXT_MASK, "IFLA_EXT_MASK", "extMask", u32),
]);

function encodeLink(link: Link, ctx: CodecContext): Uint8Array {
  const ae = new AttrEncoder();
  encodeFields(ae, LINK_SCHEMA, link, ctx);
  const attrs = ae.encode();
  const out = new Uint8Array(IFINFOMSG_LEN + attrs.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, link.family);
  dv.setUint16(2, link.type, true);
  dv.setInt32(4, link.index, true);
  dv.setUint32(8, link.flags >>> 0, true);
  dv.setUint32(12, link.change >>> 0, true);
  out.set(attrs, IFINFOMSG_LEN);
  return out;
}

function decodeLink(payload: Uint8Array, ctx: CodecContext): Link {
  const dv = headerView(payload, IFINFOMSG_LEN, "Link message (struct ifinfomsg)");
  const link: Link = {
    family: dv.getUint8(0),
    type: dv.getUint16(2, true),
    index: dv.getInt32(4, true),
    flags: dv.getUint32(8, true),
    change: dv.getUint32(12, true),
  };
  const ad = new AttrDecoder(payload.subarray(IFINFOMSG_LEN));
  decodeFields(ad, LINK_SCHEMA, link, { ...ctx, family: link.family });
  if (ad.err) throw ad.err;
  return link;
}

/** The codec context of a link message: the link kinds in use and the link codec, for nested links. */
export function linkCodecContext(opts: LinkCodecOptions = {}): CodecContext {
  return {
    family: 0,
    depth: 0,
    link: { kinds: opts.kinds ?? LINK_KINDS, encode: encodeLink, decode: decodeLink },
  };
}

/**
 * Encodes a link message payload (ifinfomsg + attributes), for RTM_NEWLINK/DELLINK/GETLINK/SETLINK.
 *
 * @throws {RangeError} when a number does not fit its attribute.
 * @throws {TypeError} when `linkinfo.data` is a driver object for a kind with no driver.
 *
 * @example
 * ```ts
 * import { encodeLinkMessage } from "./link.ts";
 * const p = encodeLinkMessage({ family: 0, type: 0, index: 0, flags: 0, change: 0, name: "flannel.1", linkinfo: { kind: "vxlan", data: { id: 1 } } });
 * console.assert(p.length === 16 + 16 + 28);
 * ```
 */
export function encodeLinkMessage(link: Link, opts: LinkCodecOptions = {}): Uint8Array {
  return encodeLink(link, linkCodecContext(opts));
}

/**
 * Decodes a link message payload (ifinfomsg + attributes).
 *
 * @throws {NetlinkDecodeError} on malformed bytes.
 */
export function decodeLinkMessage(payload: Uint8Array, opts: LinkCodecOptions = {}): Link {
  return decodeLink(payload, linkCodecContext(opts));
}

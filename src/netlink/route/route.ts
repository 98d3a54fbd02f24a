/**
 * Route messages (RTM_NEWROUTE/DELROUTE/GETROUTE): struct rtmsg and RTA_* attributes, following
 * include/uapi/linux/rtnetlink.h. Addresses are sized by `family`. RTA_MULTIPATH is a list of
 * struct rtnexthop, each followed by its own attributes; RTA_VIA is a struct rtvia (family +
 * address) for a gateway of the other family.
 *
 * flannel's routes: vxlan `10.5.35.0/24 via 10.5.35.0 dev flannel.1 onlink` (RTNH_F_ONLINK in
 * `flags`), host-gw `via <peer> dev <ext>`, and `blackhole <lease>` (`type` RTN_BLACKHOLE).
 *
 * @module
 */
import { AttrDecoder, AttrEncoder } from "../codec/mod.ts";
import { IP4, IP6 } from "../../ip/mod.ts";
import { familyOf, type IP } from "./addresses.ts";
import {
  AF_INET,
  AF_INET6,
  RTA_DPORT,
  RTA_DST,
  RTA_EXPIRES,
  RTA_FLOW,
  RTA_GATEWAY,
  RTA_IIF,
  RTA_IP_PROTO,
  RTA_MARK,
  RTA_MULTIPATH,
  RTA_NH_ID,
  RTA_OIF,
  RTA_PREF,
  RTA_PREFSRC,
  RTA_PRIORITY,
  RTA_SPORT,
  RTA_SRC,
  RTA_TABLE,
  RTA_UID,
  RTA_VIA,
  RTM_F_FIB_MATCH,
  RTM_F_LOOKUP_TABLE,
  RTMSG_LEN,
  RTNEXTHOP_LEN,
} from "./constants.ts";
import {
  type Codec,
  type CodecContext,
  decodeFields,
  defineSchema,
  encodeFields,
  fail,
  headerView,
  ip,
  type RawAttr,
  type Schema,
  u16be,
  u32,
  u8,
} from "./schema.ts";

/** One path of a multipath route (struct rtnexthop and its attributes). */
export interface NextHop {
  /** rtnh_flags: RTNH_F_*. */
  flags: number;
  /** rtnh_hops: the weight minus one. */
  hops: number;
  /** rtnh_ifindex: the device. */
  ifindex: number;
  gateway?: IP;
  via?: IP;
  flow?: number;
  unknown?: RawAttr[];
}

/** A route message: struct rtmsg and attributes. */
export interface Route {
  /** rtm_family: AF_INET or AF_INET6. */
  family: number;
  /** rtm_dst_len: the destination prefix length (0 with no `dst`: the default route). */
  dstLen: number;
  srcLen: number;
  tos: number;
  /** rtm_table: the table id when it fits in 8 bits (see `tableId`). */
  table: number;
  /** rtm_protocol: RTPROT_*; ours to choose for routes we own. */
  protocol: number;
  /** rtm_scope: RT_SCOPE_*. */
  scope: number;
  /** rtm_type: RTN_UNICAST, RTN_BLACKHOLE, … */
  type: number;
  /** rtm_flags: RTNH_F_* (e.g. RTNH_F_ONLINK) and RTM_F_* bits. */
  flags: number;
  /** RTA_TABLE: the full 32-bit table id; the kernel prefers it over `table`. */
  tableId?: number;
  dst?: IP;
  src?: IP;
  /** RTA_IIF: input device (lookups, multicast routes). */
  iif?: number;
  gateway?: IP;
  /** RTA_VIA: a gateway of the other family (`via inet6 fe80::1` on an IPv4 route). */
  via?: IP;
  /** RTA_PRIORITY: the metric. */
  priority?: number;
  /** RTA_PREFSRC: the preferred source address. */
  prefsrc?: IP;
  mark?: number;
  flow?: number;
  uid?: number;
  /** RTA_PREF: IPv6 router preference. */
  pref?: number;
  /** RTA_EXPIRES: seconds left (IPv6). */
  expires?: number;
  /** RTA_IP_PROTO, RTA_SPORT, RTA_DPORT: lookup keys for `ip route get … ipproto/sport/dport`. */
  ipProto?: number;
  sport?: number;
  dport?: number;
  /** RTA_NH_ID: a nexthop object instead of inline nexthops. */
  nhId?: number;
  multipath?: NextHop[];
  /** RTA_OIF: the output device. */
  oif?: number;
  unknown?: RawAttr[];
}

/** RTA_VIA: struct rtvia, a u16 family (host order) and the address. */
const via: Codec<IP> = {
  name: "rtvia",
  encode(ae, spec, v) {
    const a = v.toBytes();
    const b = new Uint8Array(2 + a.length);
    new DataView(b.buffer).setUint16(0, familyOf(v), true);
    b.set(a, 2);
    ae.bytes(spec.type, b);
  },
  decode(ad) {
    const d = ad.data;
    if (d.length < 2) return fail(ad, `RTA_VIA has ${d.length} bytes, struct rtvia needs 2 or more`);
    const family = new DataView(d.buffer, d.byteOffset, d.byteLength).getUint16(0, true);
    const a = d.subarray(2);
    if (family === AF_INET && a.length === 4) return IP4.fromBytes(a);
    if (family === AF_INET6 && a.length === 16) return IP6.fromBytes(a);
    return undefined; // another family (AF_PACKET for MPLS): kept raw
  },
};

/** The attributes inside one struct rtnexthop. */
export const NEXTHOP_SCHEMA: Schema = defineSchema<NextHop>(
  "RTA_* in struct rtnexthop (linux/rtnetlink.h)",
  (f) => [
    f(RTA_GATEWAY, "RTA_GATEWAY", "gateway", ip),
    f(RTA_VIA, "RTA_VIA", "via", via),
    f(RTA_FLOW, "RTA_FLOW", "flow", u32),
  ],
);

/** RTA_MULTIPATH: struct rtnexthop entries, each 4-byte aligned. */
const multipath: Codec<NextHop[]> = {
  name: "multipath",
  encode(ae, spec, hops, ctx) {
    const parts = hops.map((nh) => {
      const inner = new AttrEncoder();
      encodeFields(inner, NEXTHOP_SCHEMA, nh, ctx);
      const attrs = inner.encode();
      const b = new Uint8Array(RTNEXTHOP_LEN + attrs.length);
      const dv = new DataView(b.buffer);
      dv.setUint16(0, b.length, true);
      dv.setUint8(2, nh.flags);
      dv.setUint8(3, nh.hops);
      dv.setInt32(4, nh.ifindex, true);
      b.set(attrs, RTNEXTHOP_LEN);
      return b;
    });
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(p, off);
      off += p.length;
    }
    ae.bytes(spec.type, out);
  },
  decode(ad, ctx) {
    const d = ad.data;
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    const out: NextHop[] = [];
    for (let off = 0; off + RTNEXTHOP_LEN <= d.length;) {
      const len = dv.getUint16(off, true);
      if (len < RTNEXTHOP_LEN || off + len > d.length) {
        return fail(
          ad,
          `RTA_MULTIPATH nexthop at offset ${off} has length ${len}, ${d.length - off} bytes left`,
        );
      }
      const nh: NextHop = {
        flags: dv.getUint8(off + 2),
        hops: dv.getUint8(off + 3),
        ifindex: dv.getInt32(off + 4, true),
      };
      const inner = new AttrDecoder(d.subarray(off + RTNEXTHOP_LEN, off + len));
      decodeFields(inner, NEXTHOP_SCHEMA, nh, ctx);
      if (inner.err) return fail(ad, `RTA_MULTIPATH nexthop at offset ${off}: ${inner.err.message}`);
      out.push(nh);
      off += (len + 3) & ~3;
    }
    return out;
  },
};

/**
 * The RTA_* table. The order is the encoding order: the table first (as the kernel reports it),
 * then as iproute2 sends a route (destination, gateway, metric, source, …, the device last), so
 * requests compare byte for byte. RTA_METRICS, RTA_CACHEINFO and RTA_ENCAP stay raw.
 */
export const ROUTE_SCHEMA: Schema = defineSchema<Route>("RTA_* (linux/rtnetlink.h)", (f) => [
  f(RTA_TABLE, "RTA_TABLE", "tableId", u32),
  f(RTA_DST, "RTA_DST", "dst", ip),
  f(RTA_SRC, "RTA_SRC", "src", ip),
  f(RTA_IIF, "RTA_IIF", "iif", u32),
  f(RTA_GATEWAY, "RTA_GATEWAY", "gateway", ip),
  f(RTA_VIA, "RTA_VIA", "via", via),
  f(RTA_PRIORITY, "RTA_PRIORITY", "priority", u32),
  f(RTA_PREFSRC, "RTA_PREFSRC", "prefsrc", ip),
  f(RTA_MARK, "RTA_MARK", "mark", u32),
  f(RTA_FLOW, "RTA_FLOW", "flow", u32),
  f(RTA_UID, "RTA_UID", "uid", u32),
  f(RTA_PREF, "RTA_PREF", "pref", u8),
  f(RTA_EXPIRES, "RTA_EXPIRES", "expires", u32),
  f(RTA_IP_PROTO, "RTA_IP_PROTO", "ipProto", u8),
  f(RTA_SPORT, "RTA_SPORT", "sport", u16be),
  f(RTA_DPORT, "RTA_DPORT", "dport", u16be),
  f(RTA_NH_ID, "RTA_NH_ID", "nhId", u32),
  f(RTA_MULTIPATH, "RTA_MULTIPATH", "multipath", multipath),
  f(RTA_OIF, "RTA_OIF", "oif", u32),
]);

/**
 * Encodes a route message payload (rtmsg + attributes).
 *
 * @throws {RangeError} when a number does not fit its attribute.
 *
 * @example
 * ```ts
 * import { IP4 } from "../../ip/mod.ts";
 * import { AF_INET, RT_TABLE_MAIN, RTN_BLACKHOLE, RTPROT_BOOT } from "./constants.ts";
 * import { encodeRouteMessage } from "./route.ts";
 * const p = encodeRouteMessage({
 *   family: AF_INET, dstLen: 24, srcLen: 0, tos: 0, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT,
 *   scope: 0, type: RTN_BLACKHOLE, flags: 0, dst: IP4.parse("10.5.72.0"),
 * });
 * console.assert(p.length === 12 + 8);
 * ```
 */
export function encodeRouteMessage(route: Route): Uint8Array {
  const ae = new AttrEncoder();
  const ctx: CodecContext = { family: route.family, depth: 0 };
  encodeFields(ae, ROUTE_SCHEMA, route, ctx);
  const attrs = ae.encode();
  const out = new Uint8Array(RTMSG_LEN + attrs.length);
  const dv = new DataView(out.buffer);
  [route.family, route.dstLen, route.srcLen, route.tos, route.table, route.protocol, route.scope, route.type]
    .forEach((v, i) => dv.setUint8(i, v));
  dv.setUint32(8, route.flags >>> 0, true);
  out.set(attrs, RTMSG_LEN);
  return out;
}

/**
 * Decodes a route message payload (rtmsg + attributes).
 *
 * @throws {NetlinkDecodeError} on malformed bytes.
 */
export function decodeRouteMessage(payload: Uint8Array): Route {
  const dv = headerView(payload, RTMSG_LEN, "Route message (struct rtmsg)");
  const route: Route = {
    family: dv.getUint8(0),
    dstLen: dv.getUint8(1),
    srcLen: dv.getUint8(2),
    tos: dv.getUint8(3),
    table: dv.getUint8(4),
    protocol: dv.getUint8(5),
    scope: dv.getUint8(6),
    type: dv.getUint8(7),
    flags: dv.getUint32(8, true),
  };
  const ad = new AttrDecoder(payload.subarray(RTMSG_LEN));
  decodeFields(ad, ROUTE_SCHEMA, route, { family: route.family, depth: 0 });
  if (ad.err) throw ad.err;
  return route;
}

/** What to look up with {@linkcode routeLookupRequest}, in `ip route get` terms. */
export interface RouteLookup {
  /** The destination address (`ip route get ADDR`). */
  dst: IP;
  /** `from ADDR`. */
  src?: IP;
  /** `iif DEV`, as an index. */
  iif?: number;
  /** `oif DEV`, as an index. */
  oif?: number;
  /** `mark N`. */
  mark?: number;
  /** `uid N`. */
  uid?: number;
  /** `fibmatch`: answer with the matching FIB entry instead of the resolved route. */
  fibMatch?: boolean;
}

/**
 * The RTM_GETROUTE request `ip route get` sends: a full-length destination and (IPv4 only)
 * RTM_F_LOOKUP_TABLE, so the kernel resolves the route and reports the table it came from. Send it
 * with NLM_F_REQUEST (no NLM_F_DUMP); the answer is one RTM_NEWROUTE.
 *
 * @example
 * ```ts
 * import { IP4 } from "../../ip/mod.ts";
 * import { encodeRouteMessage, routeLookupRequest } from "./route.ts";
 * const req = routeLookupRequest({ dst: IP4.parse("10.0.0.2") });
 * console.assert(req.dstLen === 32 && encodeRouteMessage(req).length === 20);
 * ```
 */
export function routeLookupRequest(q: RouteLookup): Route {
  const family = familyOf(q.dst);
  const full = family === AF_INET ? 32 : 128;
  const r: Route = {
    family,
    dstLen: full,
    srcLen: q.src ? full : 0,
    tos: 0,
    table: 0,
    protocol: 0,
    scope: 0,
    type: 0,
    // IPv6 refuses RTM_F_LOOKUP_TABLE under strict checking ("Invalid flags for get route
    // request"); iproute2 sets it for IPv4 only.
    flags: (family === AF_INET ? RTM_F_LOOKUP_TABLE : 0) | (q.fibMatch ? RTM_F_FIB_MATCH : 0),
    dst: q.dst,
  };
  if (q.src) r.src = q.src;
  if (q.iif !== undefined) r.iif = q.iif;
  if (q.oif !== undefined) r.oif = q.oif;
  if (q.mark !== undefined) r.mark = q.mark;
  if (q.uid !== undefined) r.uid = q.uid;
  return r;
}

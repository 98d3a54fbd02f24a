/**
 * rtnetlink messages as pure encode/decode functions over message payloads (the part after the
 * 16-byte nlmsghdr): links, addresses, routes and neighbours (including bridge FDB entries), with
 * the kernel's constants. Framing is in `../codec/`; sockets are elsewhere.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP4 } from "../../ip/mod.ts";
 * import {
 *   AF_INET, decodeRouteMessage, encodeRouteMessage, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTN_UNICAST,
 *   RTNH_F_ONLINK, RTPROT_BOOT,
 * } from "./mod.ts";
 * // ip route replace 10.5.35.0/24 via 10.5.35.0 dev flannel.1 onlink
 * const route = {
 *   family: AF_INET, dstLen: 24, srcLen: 0, tos: 0, table: RT_TABLE_MAIN, protocol: RTPROT_BOOT,
 *   scope: RT_SCOPE_UNIVERSE, type: RTN_UNICAST, flags: RTNH_F_ONLINK,
 *   dst: IP4.parse("10.5.35.0"), gateway: IP4.parse("10.5.35.0"), oif: 6,
 * };
 * assert.deepEqual(decodeRouteMessage(encodeRouteMessage(route)), route);
 * ```
 *
 * @module
 */
export * from "./constants.ts";
export { familyOf, formatMac, type IP, ipBytes, ipFromBytes, parseMac } from "./addresses.ts";
export type { RawAttr } from "./schema.ts";
/** The attribute-table engine and codecs, for writing link-kind drivers of one's own. */
export * as schema from "./schema.ts";
export {
  decodeLinkMessage,
  encodeLinkMessage,
  type Link,
  LINK_SCHEMA,
  linkCodecContext,
  type LinkCodecOptions,
  type LinkInfo,
} from "./link.ts";
export { type Addr, ADDR_SCHEMA, decodeAddrMessage, encodeAddrMessage, type IfaCacheinfo } from "./addr.ts";
export {
  decodeRouteMessage,
  encodeRouteMessage,
  type NextHop,
  NEXTHOP_SCHEMA,
  type Route,
  ROUTE_SCHEMA,
  type RouteLookup,
  routeLookupRequest,
} from "./route.ts";
export {
  decodeNeighMessage,
  encodeNeighMessage,
  FDB_SCHEMA,
  type NdaCacheinfo,
  type Neigh,
  NEIGH_SCHEMA,
} from "./neigh.ts";

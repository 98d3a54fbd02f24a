/**
 * Link kinds (IFLA_INFO_KIND) as drivers for their IFLA_INFO_DATA, in one explicit registry:
 * vxlan, veth, bridge, tun, wireguard and ipip. Kinds without a driver keep their data as raw bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeLinkMessage, encodeLinkMessage } from "../route/mod.ts";
 * import { IP4 } from "../../ip/mod.ts";
 * import { linkData } from "./mod.ts";
 * // ip link add flannel.1 type vxlan id 1 local 10.0.0.1 dstport 8472 nolearning
 * const link = {
 *   family: 0, type: 0, index: 0, flags: 0, change: 0, name: "flannel.1",
 *   linkinfo: { kind: "vxlan", data: { id: 1, local: IP4.parse("10.0.0.1"), port: 8472, learning: false } },
 * };
 * const back = decodeLinkMessage(encodeLinkMessage(link));
 * assert.equal(linkData(back, "vxlan")?.port, 8472);
 * ```
 *
 * @module
 */
export { isRawLinkData, type LinkKindDriver, type RawLinkData, schemaDriver } from "./driver.ts";
export {
  LINK_KIND_DRIVERS,
  LINK_KINDS,
  type LinkData,
  linkData,
  type LinkDataByKind,
  LinkKindRegistry,
} from "./registry.ts";
export * from "./vxlan.ts";
export * from "./veth.ts";
export * from "./bridge.ts";
export * from "./tun.ts";
export * from "./ipip.ts";
export * from "./wireguard.ts";

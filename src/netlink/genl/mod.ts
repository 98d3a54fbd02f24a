/**
 * Generic netlink: the controller (family lookup) and the `wireguard` family. Pure encode and
 * decode functions over the codec core; the transport sends and receives.
 *
 * @example
 * ```ts
 * import { decodeWgDevice, getFamilyRequest, WG_GENL_NAME, wgGetDeviceRequest } from "./mod.ts";
 * const lookup = getFamilyRequest(WG_GENL_NAME); // send; decodeFamily(reply.payload).id is the type
 * const get = wgGetDeviceRequest(0x20, { ifname: "flannel-wg" });
 * console.assert(lookup.payload.length > 0 && get.type === 0x20 && typeof decodeWgDevice === "function");
 * ```
 *
 * @module
 */
export * from "./controller.ts";
export * from "./wireguard_uapi.ts";
export * from "./wireguard_attrs.ts";
export * from "./wireguard.ts";

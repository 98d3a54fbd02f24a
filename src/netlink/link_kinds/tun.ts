/**
 * The `tun` link kind: IFLA_TUN_* attributes of IFLA_INFO_DATA, following
 * include/uapi/linux/if_link.h. TUN/TAP devices are created with the TUNSETIFF ioctl on
 * /dev/net/tun (the kernel refuses RTM_NEWLINK for them); netlink only reports them, so this
 * driver exists to decode `ip -d link show` of the udp backend's `flannel0`.
 *
 * @module
 */
import { bool, defineSchema, type RawAttr, type Schema, u32, u8 } from "../route/schema.ts";
import { type LinkKindDriver, schemaDriver } from "./driver.ts";

export const IFLA_TUN_UNSPEC = 0;
export const IFLA_TUN_OWNER = 1;
export const IFLA_TUN_GROUP = 2;
export const IFLA_TUN_TYPE = 3;
export const IFLA_TUN_PI = 4;
export const IFLA_TUN_VNET_HDR = 5;
export const IFLA_TUN_PERSIST = 6;
export const IFLA_TUN_MULTI_QUEUE = 7;
export const IFLA_TUN_NUM_QUEUES = 8;
export const IFLA_TUN_NUM_DISABLED_QUEUES = 9;

/** IFLA_TUN_TYPE values (linux/if_tun.h). */
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;

/** tun IFLA_INFO_DATA. */
export interface TunData {
  /** Owning uid; absent when the device has no owner. */
  owner?: number;
  /** Owning gid; absent when the device has no group. */
  group?: number;
  /** IFF_TUN or IFF_TAP. */
  type?: number;
  /** Packet information header (the absence of IFF_NO_PI). */
  pi?: boolean;
  vnetHdr?: boolean;
  persist?: boolean;
  multiQueue?: boolean;
  numQueues?: number;
  numDisabledQueues?: number;
  unknown?: RawAttr[];
}

/** The IFLA_TUN_* table, in attribute-number order. */
export const TUN_SCHEMA: Schema = defineSchema<TunData>("IFLA_TUN_* (linux/if_link.h)", (f) => [
  f(IFLA_TUN_OWNER, "IFLA_TUN_OWNER", "owner", u32),
  f(IFLA_TUN_GROUP, "IFLA_TUN_GROUP", "group", u32),
  f(IFLA_TUN_TYPE, "IFLA_TUN_TYPE", "type", u8),
  f(IFLA_TUN_PI, "IFLA_TUN_PI", "pi", bool),
  f(IFLA_TUN_VNET_HDR, "IFLA_TUN_VNET_HDR", "vnetHdr", bool),
  f(IFLA_TUN_PERSIST, "IFLA_TUN_PERSIST", "persist", bool),
  f(IFLA_TUN_MULTI_QUEUE, "IFLA_TUN_MULTI_QUEUE", "multiQueue", bool),
  f(IFLA_TUN_NUM_QUEUES, "IFLA_TUN_NUM_QUEUES", "numQueues", u32),
  f(IFLA_TUN_NUM_DISABLED_QUEUES, "IFLA_TUN_NUM_DISABLED_QUEUES", "numDisabledQueues", u32),
]);

/** The tun driver. */
export const tunKind: LinkKindDriver<TunData> = schemaDriver<TunData>("tun", TUN_SCHEMA);

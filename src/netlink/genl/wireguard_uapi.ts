/**
 * Constants and types of the `wireguard` generic netlink family, with the names of
 * include/uapi/linux/wireguard.h, whose header comment specifies WG_CMD_GET_DEVICE and
 * WG_CMD_SET_DEVICE.
 *
 * One {@linkcode WgDevice} type serves both commands: on SET, only fields that are present are
 * applied (absent means "leave as is"); on GET, the kernel reports what the device has.
 *
 * @module
 */
import type { IP4, IP4Net, IP6, IP6Net } from "../../ip/mod.ts";
import type { Attr } from "../codec/mod.ts";

/** The family name to resolve through the controller (wireguard.h WG_GENL_NAME). */
export const WG_GENL_NAME = "wireguard";
/** wireguard.h WG_GENL_VERSION. */
export const WG_GENL_VERSION = 1;
/** Length of public, private and preshared keys (wireguard.h WG_KEY_LEN). */
export const WG_KEY_LEN = 32;

/** Commands (wireguard.h enum wg_cmd). */
export const WG_CMD_GET_DEVICE = 0;
export const WG_CMD_SET_DEVICE = 1;

/** Device flags in WGDEVICE_A_FLAGS (wireguard.h enum wgdevice_flag). */
export const WGDEVICE_F_REPLACE_PEERS = 1 << 0;

/** Device attributes (wireguard.h enum wgdevice_attribute). */
export const WGDEVICE_A_IFINDEX = 1;
export const WGDEVICE_A_IFNAME = 2;
export const WGDEVICE_A_PRIVATE_KEY = 3;
export const WGDEVICE_A_PUBLIC_KEY = 4;
export const WGDEVICE_A_FLAGS = 5;
export const WGDEVICE_A_LISTEN_PORT = 6;
export const WGDEVICE_A_FWMARK = 7;
export const WGDEVICE_A_PEERS = 8;

/** Peer flags in WGPEER_A_FLAGS (wireguard.h enum wgpeer_flag). */
export const WGPEER_F_REMOVE_ME = 1 << 0;
export const WGPEER_F_REPLACE_ALLOWEDIPS = 1 << 1;
export const WGPEER_F_UPDATE_ONLY = 1 << 2;

/** Peer attributes (wireguard.h enum wgpeer_attribute). */
export const WGPEER_A_PUBLIC_KEY = 1;
export const WGPEER_A_PRESHARED_KEY = 2;
export const WGPEER_A_FLAGS = 3;
export const WGPEER_A_ENDPOINT = 4;
export const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5;
export const WGPEER_A_LAST_HANDSHAKE_TIME = 6;
export const WGPEER_A_RX_BYTES = 7;
export const WGPEER_A_TX_BYTES = 8;
export const WGPEER_A_ALLOWEDIPS = 9;
export const WGPEER_A_PROTOCOL_VERSION = 10;

/** Allowed-IP attributes (wireguard.h enum wgallowedip_attribute). */
export const WGALLOWEDIP_A_FAMILY = 1;
export const WGALLOWEDIP_A_IPADDR = 2;
export const WGALLOWEDIP_A_CIDR_MASK = 3;

/**
 * A peer's UDP endpoint, carried as struct sockaddr_in or sockaddr_in6. `flowInfo` and
 * `scopeId` are IPv6 only and present when non-zero.
 */
export interface WgEndpoint {
  ip: IP4 | IP6;
  port: number;
  flowInfo?: number;
  scopeId?: number;
}

/** struct __kernel_timespec (WGPEER_A_LAST_HANDSHAKE_TIME); zero means "never". */
export interface WgTimespec {
  sec: bigint;
  nsec: bigint;
}

/** A peer (one entry of WGDEVICE_A_PEERS). */
export interface WgPeer {
  publicKey: Uint8Array;
  /** SET: all zeros removes the key. */
  presharedKey?: Uint8Array;
  /** SET only: WGPEER_F_REMOVE_ME, WGPEER_F_REPLACE_ALLOWEDIPS, WGPEER_F_UPDATE_ONLY. */
  flags?: number;
  endpoint?: WgEndpoint;
  /** Seconds; 0 disables. */
  persistentKeepaliveInterval?: number;
  /** GET only. */
  lastHandshakeTime?: WgTimespec;
  /** GET only. */
  rxBytes?: bigint;
  /** GET only. */
  txBytes?: bigint;
  allowedIps?: (IP4Net | IP6Net)[];
  protocolVersion?: number;
  /** Attributes this codec does not model, in order; encoded after the modelled ones. */
  unknown?: Attr[];
}

/** A device: what SET_DEVICE applies (present fields only) or what GET_DEVICE reports. */
export interface WgDevice {
  /** SET and GET requests name the device by one of ifindex and ifname, not both. */
  ifindex?: number;
  ifname?: string;
  /** SET: all zeros removes the key. */
  privateKey?: Uint8Array;
  /** GET only. */
  publicKey?: Uint8Array;
  /** SET only: WGDEVICE_F_REPLACE_PEERS. */
  flags?: number;
  /** SET: 0 picks a random port. */
  listenPort?: number;
  /** SET: 0 disables. */
  fwmark?: number;
  peers?: WgPeer[];
  /** Attributes this codec does not model, in order; encoded after the modelled ones. */
  unknown?: Attr[];
}

/** How a GET_DEVICE request names the device. */
export type WgDeviceRef = { ifindex: number } | { ifname: string };

/**
 * Attribute order: `"set"` is how wg(8) writes WG_CMD_SET_DEVICE, `"get"` how the kernel writes
 * a WG_CMD_GET_DEVICE reply (both as captured; see tests/fixtures/netlink/genl/).
 */
export type WgLayout = "set" | "get";

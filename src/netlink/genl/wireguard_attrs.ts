/**
 * WireGuard attribute encoding and decoding (wireguard.h): devices, peers, allowed IPs, and the
 * sockaddr_in / sockaddr_in6 and __kernel_timespec payloads.
 *
 * Attributes are written in one of two layouts, the order wg(8) writes a SET_DEVICE and the order
 * the kernel writes a GET_DEVICE reply, so that both captured byte streams re-encode exactly. The
 * kernel itself accepts attributes in any order.
 *
 * @module
 */
import { IP4, IP4Net, IP6, IP6Net } from "../../ip/mod.ts";
import { type Attr, AttrDecoder, AttrEncoder, NetlinkDecodeError, NLA_F_NESTED } from "../codec/mod.ts";
import { rawType } from "./controller.ts";
import {
  WG_KEY_LEN,
  WGALLOWEDIP_A_CIDR_MASK,
  WGALLOWEDIP_A_FAMILY,
  WGALLOWEDIP_A_IPADDR,
  type WgDevice,
  WGDEVICE_A_FLAGS,
  WGDEVICE_A_FWMARK,
  WGDEVICE_A_IFINDEX,
  WGDEVICE_A_IFNAME,
  WGDEVICE_A_LISTEN_PORT,
  WGDEVICE_A_PEERS,
  WGDEVICE_A_PRIVATE_KEY,
  WGDEVICE_A_PUBLIC_KEY,
  type WgEndpoint,
  type WgLayout,
  type WgPeer,
  WGPEER_A_ALLOWEDIPS,
  WGPEER_A_ENDPOINT,
  WGPEER_A_FLAGS,
  WGPEER_A_LAST_HANDSHAKE_TIME,
  WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
  WGPEER_A_PRESHARED_KEY,
  WGPEER_A_PROTOCOL_VERSION,
  WGPEER_A_PUBLIC_KEY,
  WGPEER_A_RX_BYTES,
  WGPEER_A_TX_BYTES,
} from "./wireguard_uapi.ts";

// linux/socket.h address families; not exported, the rtnetlink modules own these names.
const AF_INET = 2;
const AF_INET6 = 10;
/** sizeof(struct sockaddr_in) and sizeof(struct sockaddr_in6) on Linux. */
const SOCKADDR_IN_LEN = 16;
const SOCKADDR_IN6_LEN = 28;
/** sizeof(struct __kernel_timespec): s64 tv_sec, long long tv_nsec. */
const KERNEL_TIMESPEC_LEN = 16;

const DEVICE_ORDER: Record<WgLayout, number[]> = {
  set: [
    WGDEVICE_A_IFINDEX,
    WGDEVICE_A_IFNAME,
    WGDEVICE_A_PRIVATE_KEY,
    WGDEVICE_A_PUBLIC_KEY,
    WGDEVICE_A_LISTEN_PORT,
    WGDEVICE_A_FWMARK,
    WGDEVICE_A_FLAGS,
    WGDEVICE_A_PEERS,
  ],
  get: [
    WGDEVICE_A_LISTEN_PORT,
    WGDEVICE_A_FWMARK,
    WGDEVICE_A_IFINDEX,
    WGDEVICE_A_IFNAME,
    WGDEVICE_A_PRIVATE_KEY,
    WGDEVICE_A_PUBLIC_KEY,
    WGDEVICE_A_FLAGS,
    WGDEVICE_A_PEERS,
  ],
};
const PEER_ORDER: Record<WgLayout, number[]> = {
  set: [
    WGPEER_A_PUBLIC_KEY,
    WGPEER_A_PRESHARED_KEY,
    WGPEER_A_ENDPOINT,
    WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
    WGPEER_A_FLAGS,
    WGPEER_A_ALLOWEDIPS,
    WGPEER_A_PROTOCOL_VERSION,
    WGPEER_A_LAST_HANDSHAKE_TIME,
    WGPEER_A_RX_BYTES,
    WGPEER_A_TX_BYTES,
  ],
  get: [
    WGPEER_A_PUBLIC_KEY,
    WGPEER_A_PRESHARED_KEY,
    WGPEER_A_LAST_HANDSHAKE_TIME,
    WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
    WGPEER_A_TX_BYTES,
    WGPEER_A_RX_BYTES,
    WGPEER_A_PROTOCOL_VERSION,
    WGPEER_A_ENDPOINT,
    WGPEER_A_FLAGS,
    WGPEER_A_ALLOWEDIPS,
  ],
};

function checkKey(what: string, k: Uint8Array): Uint8Array {
  if (k.length !== WG_KEY_LEN) {
    throw new RangeError(`WireGuard ${what} has ${k.length} bytes, must be ${WG_KEY_LEN}`);
  }
  return k;
}

/** Encodes an endpoint as struct sockaddr_in or sockaddr_in6 (port and flow info big-endian). */
export function encodeSockaddr(ep: WgEndpoint): Uint8Array {
  const v6 = ep.ip instanceof IP6;
  const out = new Uint8Array(v6 ? SOCKADDR_IN6_LEN : SOCKADDR_IN_LEN);
  const dv = new DataView(out.buffer);
  dv.setUint16(0, v6 ? AF_INET6 : AF_INET, true);
  dv.setUint16(2, ep.port, false);
  if (v6) {
    dv.setUint32(4, ep.flowInfo ?? 0, false);
    out.set(ep.ip.toBytes(), 8);
    dv.setUint32(24, ep.scopeId ?? 0, true);
  } else {
    out.set(ep.ip.toBytes(), 4);
  }
  return out;
}

/**
 * Decodes struct sockaddr_in / sockaddr_in6 by its family field.
 *
 * @throws {NetlinkDecodeError} on another family or a short buffer.
 */
export function decodeSockaddr(b: Uint8Array): WgEndpoint {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = b.length >= 2 ? dv.getUint16(0, true) : -1;
  if (family === AF_INET && b.length >= SOCKADDR_IN_LEN) {
    return { ip: IP4.fromBytes(b.slice(4, 8)), port: dv.getUint16(2, false) };
  }
  if (family === AF_INET6 && b.length >= SOCKADDR_IN6_LEN) {
    const ep: WgEndpoint = { ip: IP6.fromBytes(b.slice(8, 24)), port: dv.getUint16(2, false) };
    const flowInfo = dv.getUint32(4, false);
    const scopeId = dv.getUint32(24, true);
    if (flowInfo) ep.flowInfo = flowInfo;
    if (scopeId) ep.scopeId = scopeId;
    return ep;
  }
  throw new NetlinkDecodeError(
    `WireGuard endpoint of ${b.length} bytes with family ${family} is not a sockaddr_in or sockaddr_in6`,
  );
}

function putAllowedIp(ae: AttrEncoder, net: IP4Net | IP6Net, layout: WgLayout): void {
  const family = () => ae.u16(WGALLOWEDIP_A_FAMILY, net instanceof IP6Net ? AF_INET6 : AF_INET);
  const addr = () => ae.bytes(WGALLOWEDIP_A_IPADDR, net.ip.toBytes());
  const cidr = () => ae.u8(WGALLOWEDIP_A_CIDR_MASK, net.prefixLen);
  if (layout === "set") {
    family();
    addr();
    cidr();
  } else {
    cidr();
    family();
    addr();
  }
}

function putPeerAttr(ae: AttrEncoder, type: number, p: WgPeer, layout: WgLayout): void {
  switch (type) {
    case WGPEER_A_PUBLIC_KEY:
      ae.bytes(type, checkKey("peer public key", p.publicKey));
      break;
    case WGPEER_A_PRESHARED_KEY:
      if (p.presharedKey) ae.bytes(type, checkKey("preshared key", p.presharedKey));
      break;
    case WGPEER_A_FLAGS:
      if (p.flags !== undefined) ae.u32(type, p.flags);
      break;
    case WGPEER_A_ENDPOINT:
      if (p.endpoint) ae.bytes(type, encodeSockaddr(p.endpoint));
      break;
    case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
      if (p.persistentKeepaliveInterval !== undefined) ae.u16(type, p.persistentKeepaliveInterval);
      break;
    case WGPEER_A_LAST_HANDSHAKE_TIME:
      if (p.lastHandshakeTime) {
        const b = new Uint8Array(KERNEL_TIMESPEC_LEN);
        const dv = new DataView(b.buffer);
        dv.setBigInt64(0, p.lastHandshakeTime.sec, true);
        dv.setBigInt64(8, p.lastHandshakeTime.nsec, true);
        ae.bytes(type, b);
      }
      break;
    case WGPEER_A_RX_BYTES:
      if (p.rxBytes !== undefined) ae.u64(type, p.rxBytes);
      break;
    case WGPEER_A_TX_BYTES:
      if (p.txBytes !== undefined) ae.u64(type, p.txBytes);
      break;
    case WGPEER_A_ALLOWEDIPS:
      if (p.allowedIps) {
        const ips = p.allowedIps;
        ae.nested(
          type,
          (l) => ips.forEach((n) => l.nested(0, (e) => putAllowedIp(e, n, layout), true)),
          true,
        );
      }
      break;
    case WGPEER_A_PROTOCOL_VERSION:
      if (p.protocolVersion !== undefined) ae.u32(type, p.protocolVersion);
      break;
  }
}

/** Encodes one peer's attributes (the payload of one WGDEVICE_A_PEERS entry). */
export function encodePeerAttrs(p: WgPeer, layout: WgLayout): Uint8Array {
  const ae = new AttrEncoder();
  for (const t of PEER_ORDER[layout]) putPeerAttr(ae, t, p, layout);
  for (const a of p.unknown ?? []) ae.bytes(rawType(a), a.data);
  return ae.encode();
}

function putDeviceAttr(ae: AttrEncoder, type: number, d: WgDevice, layout: WgLayout): void {
  switch (type) {
    case WGDEVICE_A_IFINDEX:
      if (d.ifindex !== undefined) ae.u32(type, d.ifindex);
      break;
    case WGDEVICE_A_IFNAME:
      if (d.ifname !== undefined) ae.string(type, d.ifname);
      break;
    case WGDEVICE_A_PRIVATE_KEY:
      if (d.privateKey) ae.bytes(type, checkKey("private key", d.privateKey));
      break;
    case WGDEVICE_A_PUBLIC_KEY:
      if (d.publicKey) ae.bytes(type, checkKey("public key", d.publicKey));
      break;
    case WGDEVICE_A_FLAGS:
      if (d.flags !== undefined) ae.u32(type, d.flags);
      break;
    case WGDEVICE_A_LISTEN_PORT:
      if (d.listenPort !== undefined) ae.u16(type, d.listenPort);
      break;
    case WGDEVICE_A_FWMARK:
      if (d.fwmark !== undefined) ae.u32(type, d.fwmark);
      break;
    case WGDEVICE_A_PEERS:
      if (d.peers) {
        const peers = d.peers;
        ae.nested(type, (l) => peers.forEach((p) => l.bytes(NLA_F_NESTED, encodePeerAttrs(p, layout))), true);
      }
      break;
  }
}

/** Encodes a device's attributes (the payload after genlmsghdr) in the given layout. */
export function encodeDeviceAttrs(d: WgDevice, layout: WgLayout): Uint8Array {
  const ae = new AttrEncoder();
  for (const t of DEVICE_ORDER[layout]) putDeviceAttr(ae, t, d, layout);
  for (const a of d.unknown ?? []) ae.bytes(rawType(a), a.data);
  return ae.encode();
}

function u8s(ad: AttrDecoder, len: number, what: string): Uint8Array {
  if (ad.data.length < len) {
    throw new NetlinkDecodeError(`WireGuard ${what} has ${ad.data.length} bytes, needs ${len}`);
  }
  return ad.data.slice(0, len);
}

function decodeAllowedIp(ad: AttrDecoder): IP4Net | IP6Net {
  let family: number | undefined;
  let addr: Uint8Array | undefined;
  let cidr: number | undefined;
  while (ad.next()) {
    if (ad.type === WGALLOWEDIP_A_FAMILY) family = ad.u16();
    else if (ad.type === WGALLOWEDIP_A_IPADDR) addr = ad.bytes();
    else if (ad.type === WGALLOWEDIP_A_CIDR_MASK) cidr = ad.u8();
  }
  if (ad.err) throw ad.err;
  if (family === AF_INET && addr?.length === 4 && cidr !== undefined && cidr <= 32) {
    return new IP4Net(IP4.fromBytes(addr), cidr);
  }
  if (family === AF_INET6 && addr?.length === 16 && cidr !== undefined && cidr <= 128) {
    return new IP6Net(IP6.fromBytes(addr), cidr);
  }
  throw new NetlinkDecodeError(
    `WireGuard allowed IP is not a valid network: family ${family}, ${addr?.length} address bytes, cidr ${cidr}`,
  );
}

function decodePeer(ad: AttrDecoder): WgPeer {
  const p: Partial<WgPeer> = {};
  const unknown: Attr[] = [];
  while (ad.next()) {
    switch (ad.type) {
      case WGPEER_A_PUBLIC_KEY:
        p.publicKey = ad.bytes();
        break;
      case WGPEER_A_PRESHARED_KEY:
        p.presharedKey = ad.bytes();
        break;
      case WGPEER_A_FLAGS:
        p.flags = ad.u32();
        break;
      case WGPEER_A_ENDPOINT:
        p.endpoint = decodeSockaddr(ad.data);
        break;
      case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
        p.persistentKeepaliveInterval = ad.u16();
        break;
      case WGPEER_A_LAST_HANDSHAKE_TIME: {
        const b = u8s(ad, KERNEL_TIMESPEC_LEN, "last handshake time");
        const dv = new DataView(b.buffer);
        p.lastHandshakeTime = { sec: dv.getBigInt64(0, true), nsec: dv.getBigInt64(8, true) };
        break;
      }
      case WGPEER_A_RX_BYTES:
        p.rxBytes = ad.u64();
        break;
      case WGPEER_A_TX_BYTES:
        p.txBytes = ad.u64();
        break;
      case WGPEER_A_ALLOWEDIPS: {
        const ips: (IP4Net | IP6Net)[] = (p.allowedIps = []);
        ad.nested((l) => {
          while (l.next()) l.nested((e) => ips.push(decodeAllowedIp(e)));
        });
        break;
      }
      case WGPEER_A_PROTOCOL_VERSION:
        p.protocolVersion = ad.u32();
        break;
      default:
        unknown.push({ ...ad.attr, data: ad.bytes() });
    }
  }
  if (ad.err) throw ad.err;
  if (!p.publicKey) throw new NetlinkDecodeError("WireGuard peer has no WGPEER_A_PUBLIC_KEY");
  if (unknown.length) p.unknown = unknown;
  return p as WgPeer;
}

/**
 * Decodes a device's attributes (one message; see {@linkcode decodeWgDevice} for a dump).
 *
 * @throws {NetlinkDecodeError} on malformed attributes.
 */
export function decodeDeviceAttrs(attrs: Uint8Array): WgDevice {
  const ad = new AttrDecoder(attrs);
  const d: WgDevice = {};
  const unknown: Attr[] = [];
  while (ad.next()) {
    switch (ad.type) {
      case WGDEVICE_A_IFINDEX:
        d.ifindex = ad.u32();
        break;
      case WGDEVICE_A_IFNAME:
        d.ifname = ad.string();
        break;
      case WGDEVICE_A_PRIVATE_KEY:
        d.privateKey = ad.bytes();
        break;
      case WGDEVICE_A_PUBLIC_KEY:
        d.publicKey = ad.bytes();
        break;
      case WGDEVICE_A_FLAGS:
        d.flags = ad.u32();
        break;
      case WGDEVICE_A_LISTEN_PORT:
        d.listenPort = ad.u16();
        break;
      case WGDEVICE_A_FWMARK:
        d.fwmark = ad.u32();
        break;
      case WGDEVICE_A_PEERS: {
        const peers: WgPeer[] = (d.peers = []);
        ad.nested((l) => {
          while (l.next()) l.nested((e) => peers.push(decodePeer(e)));
        });
        break;
      }
      default:
        unknown.push({ ...ad.attr, data: ad.bytes() });
    }
  }
  if (ad.err) throw ad.err;
  if (unknown.length) d.unknown = unknown;
  return d;
}

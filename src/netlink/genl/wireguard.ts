/**
 * The `wireguard` generic netlink family as messages: the WG_CMD_GET_DEVICE dump request and the
 * decoding of its (possibly multi-message) reply, and WG_CMD_SET_DEVICE requests, split into
 * several messages when a configuration is large. Constants and types are in wireguard_uapi.ts,
 * attribute layouts in wireguard_attrs.ts.
 *
 * @module
 */
import {
  NetlinkDecodeError,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_MULTI,
  NLM_F_REQUEST,
  type NlMsg,
  NLMSG_DONE,
} from "../codec/mod.ts";
import { decodeGenl, encodeGenl } from "./controller.ts";
import { type IP4Net, IP6Net } from "../../ip/mod.ts";
import { decodeDeviceAttrs, encodeDeviceAttrs, encodePeerAttrs } from "./wireguard_attrs.ts";
import {
  WG_CMD_GET_DEVICE,
  WG_CMD_SET_DEVICE,
  WG_GENL_VERSION,
  type WgDevice,
  type WgDeviceRef,
  type WgLayout,
  type WgPeer,
  WGPEER_F_REPLACE_ALLOWEDIPS,
} from "./wireguard_uapi.ts";

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Fills `into`'s absent fields from `part` and appends list fields. */
function absorb<T extends object>(into: T, part: T, lists: (keyof T)[]): void {
  for (const k of Object.keys(part) as (keyof T)[]) {
    if (lists.includes(k)) continue;
    if (into[k] === undefined) into[k] = part[k];
  }
}

/**
 * Decodes a GET_DEVICE dump (or a single GET/SET message, or the messages of a split SET) into
 * one device. The kernel splits a large device over several messages: later messages carry more
 * peers (wireguard.h says with the device's name; Linux 6.1 sends only WGDEVICE_A_PEERS), and a
 * peer whose allowed IPs did not fit is repeated in the next message with only its public key
 * and the rest of its allowed IPs. Adjacent entries with the same public key are therefore one
 * peer; fields a later part repeats do not override the first. NLMSG_DONE messages are skipped.
 *
 * @throws {NetlinkDecodeError} on malformed bytes or when there is no message to decode.
 */
export function decodeWgDevice(msgs: NlMsg | readonly NlMsg[]): WgDevice {
  const list = (Array.isArray(msgs) ? msgs : [msgs]) as readonly NlMsg[];
  let dev: WgDevice | undefined;
  for (const m of list) {
    if (m.type === NLMSG_DONE) continue;
    const part = decodeDeviceAttrs(decodeGenl(m.payload).attrs);
    if (!dev) {
      dev = part;
      continue;
    }
    absorb(dev, part, ["peers", "unknown"]);
    if (part.unknown) dev.unknown = [...(dev.unknown ?? []), ...part.unknown];
    if (!part.peers) continue;
    const peers: WgPeer[] = (dev.peers ??= []);
    for (const p of part.peers) {
      const last = peers.at(-1);
      if (!last || !sameKey(last.publicKey, p.publicKey)) {
        peers.push(p);
        continue;
      }
      absorb(last, p, ["allowedIps", "unknown"]);
      if (p.allowedIps) last.allowedIps = [...(last.allowedIps ?? []), ...p.allowedIps];
      if (p.unknown) last.unknown = [...(last.unknown ?? []), ...p.unknown];
    }
  }
  if (!dev) throw new NetlinkDecodeError("WireGuard device dump has no messages");
  return dev;
}

/**
 * The WG_CMD_GET_DEVICE request (a dump, as the kernel requires) for one device. Resolve
 * `familyId` first with the controller (`getFamilyRequest(WG_GENL_NAME)`).
 */
export function wgGetDeviceRequest(familyId: number, ref: WgDeviceRef): NlMsg {
  return {
    type: familyId,
    flags: NLM_F_REQUEST | NLM_F_ACK | NLM_F_DUMP,
    seq: 0,
    pid: 0,
    payload: encodeGenl(WG_CMD_GET_DEVICE, WG_GENL_VERSION, encodeDeviceAttrs(ref, "set")),
  };
}

/**
 * One WireGuard message for `dev`, unsplit: `cmd` WG_CMD_SET_DEVICE uses the "set" layout (a
 * request, REQUEST|ACK), WG_CMD_GET_DEVICE the "get" layout (a dump reply part, NLM_F_MULTI),
 * as a fake kernel would send it. To send a SET, use `wgSetDeviceRequests`, which splits.
 */
export function encodeWgDevice(familyId: number, dev: WgDevice, cmd: number): NlMsg {
  const layout: WgLayout = cmd === WG_CMD_SET_DEVICE ? "set" : "get";
  return {
    type: familyId,
    flags: layout === "set" ? NLM_F_REQUEST | NLM_F_ACK : NLM_F_MULTI,
    seq: 0,
    pid: 0,
    payload: encodeGenl(cmd, WG_GENL_VERSION, encodeDeviceAttrs(dev, layout)),
  };
}

/**
 * Largest WG_CMD_SET_DEVICE message {@linkcode wgSetDeviceRequests} builds, header included.
 *
 * The kernel takes a request up to its socket's send buffer less 32 bytes (net.core.wmem_default,
 * 208 KiB unless lowered), so this is not the kernel's limit but ours: when the kernel refuses a
 * request, its error reply echoes the whole request (unless NETLINK_CAP_ACK is set), and that
 * reply must fit the buffer a reader posts. 16 KiB keeps the echo inside a 32 KiB read (what
 * iproute2 posts first) and still carries about a hundred peers with one allowed IP each; wg(8)
 * itself splits at its socket buffer size, a page.
 */
export const WG_SET_DEVICE_MAX_BYTES = 16 * 1024;

const MSG_OVERHEAD = 16 + 4; // nlmsghdr + genlmsghdr
const NEST = 4; // one attribute header

/** One encoded allowed-IP entry: nest header, family (u16, padded), address, cidr (u8, padded). */
function allowedIpSize(n: IP4Net | IP6Net): number {
  return NEST + 8 + NEST + (n instanceof IP6Net ? 16 : 4) + 8;
}

/** One encoded peer entry without its WGPEER_A_ALLOWEDIPS. */
function peerHeadSize(p: WgPeer): number {
  const { allowedIps: _, ...head } = p;
  return NEST + encodePeerAttrs(head, "set").length;
}

/**
 * The WG_CMD_SET_DEVICE requests that apply `dev`, in order: one message unless the peers and
 * their allowed IPs exceed `maxBytes`. As wireguard.h describes for large configurations, every
 * later message names the device again and carries more peers; a peer whose allowed IPs do not
 * fit continues in the next message with only its public key, its flags without
 * WGPEER_F_REPLACE_ALLOWEDIPS (which would drop the IPs just sent), and the rest of its allowed
 * IPs. WGDEVICE_F_REPLACE_PEERS, the keys, listen port and fwmark go in the first message only.
 * Send the messages in order and stop at the first error; `decodeWgDevice` of them gives `dev`.
 *
 * @throws {RangeError} when a key is not 32 bytes, or `maxBytes` cannot hold the device
 * attributes, or one peer with one allowed IP.
 */
export function wgSetDeviceRequests(
  familyId: number,
  dev: WgDevice,
  maxBytes: number = WG_SET_DEVICE_MAX_BYTES,
): NlMsg[] {
  const { peers, ...first } = dev;
  if (!peers) return [encodeWgDevice(familyId, dev, WG_CMD_SET_DEVICE)];
  const ref: WgDevice = {};
  if (dev.ifindex !== undefined) ref.ifindex = dev.ifindex;
  if (dev.ifname !== undefined) ref.ifname = dev.ifname;
  const baseSize = (d: WgDevice) => MSG_OVERHEAD + encodeDeviceAttrs(d, "set").length + NEST;
  const freshRoom = maxBytes - baseSize(ref);
  const tooSmall = (what: string) => new RangeError(`WireGuard maxBytes ${maxBytes} cannot hold ${what}`);

  const chunks: WgDevice[] = [];
  let cur: WgPeer[] = [];
  let used = baseSize(first);
  if (used > maxBytes) throw tooSmall(`the device attributes (${used} bytes)`);
  const flush = () => {
    chunks.push({ ...(chunks.length ? ref : first), peers: cur });
    cur = [];
    used = baseSize(ref);
  };

  for (const p of peers) {
    const ips = p.allowedIps ?? [];
    const ipSizes = ips.map(allowedIpSize);
    const head = peerHeadSize(p);
    const whole = head + (p.allowedIps ? NEST + ipSizes.reduce((a, b) => a + b, 0) : 0);
    if (used + whole > maxBytes && whole <= freshRoom) flush();
    if (used + whole <= maxBytes) {
      cur.push(p);
      used += whole;
      continue;
    }
    if (!ips.length) throw tooSmall("one peer");
    // Split this peer's allowed IPs over as many messages as it takes.
    const cont: WgPeer = { publicKey: p.publicKey };
    const contFlags = (p.flags ?? 0) & ~WGPEER_F_REPLACE_ALLOWEDIPS;
    if (contFlags) cont.flags = contFlags;
    let fragment = p;
    let fragmentHead = head + NEST;
    for (let i = 0; i < ips.length;) {
      let n = 0;
      let size = fragmentHead;
      while (i + n < ips.length && used + size + ipSizes[i + n]! <= maxBytes) size += ipSizes[i + n++]!;
      if (n === 0) {
        if (!cur.length && chunks.length) throw tooSmall("one peer with one allowed IP");
        flush();
        continue;
      }
      cur.push({ ...fragment, allowedIps: ips.slice(i, i + n) });
      used += size;
      i += n;
      fragment = cont;
      fragmentHead = peerHeadSize(cont) + NEST;
    }
  }
  flush();
  return chunks.map((d) => encodeWgDevice(familyId, d, WG_CMD_SET_DEVICE));
}

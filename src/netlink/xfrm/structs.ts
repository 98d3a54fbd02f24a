/**
 * The fixed structs of include/uapi/linux/xfrm.h that states and policies share, as plain
 * objects with the kernel's field names in camelCase, and their byte layouts (x86_64; offsets
 * checked with offsetof). Padding is written as zeros and ignored when read.
 *
 * Addresses (xfrm_address_t) are 16 bytes whose meaning depends on a family field next to them:
 * AF_INET uses the first 4 bytes and decodes to {@linkcode IP4}; any other family, AF_INET6 and
 * AF_UNSPEC (an unset selector) included, decodes all 16 bytes to {@linkcode IP6}, so nothing is
 * lost.
 *
 * @module
 */
import { IP4, IP4Net, IP6, type IP6Net } from "../../ip/mod.ts";
import { type Attr, NetlinkDecodeError, NLA_F_NESTED, NLA_F_NET_BYTEORDER } from "../codec/mod.ts";
import {
  IPPROTO_ESP,
  XFRM_ADDRESS_LEN,
  XFRM_INF,
  XFRM_MODE_TUNNEL,
  XFRM_SHARE_ANY,
  XFRM_USER_TMPL_LEN,
} from "./constants.ts";

// linux/socket.h address families; not exported, the rtnetlink modules own these names.
const AF_INET = 2;
const AF_INET6 = 10;

/** An xfrm_address_t, interpreted by its family. */
export type XfrmAddress = IP4 | IP6;

/** struct xfrm_selector: which packets a policy or state applies to. */
export interface XfrmSelector {
  daddr: XfrmAddress;
  saddr: XfrmAddress;
  dport: number;
  dportMask: number;
  sport: number;
  sportMask: number;
  family: number;
  prefixlenD: number;
  prefixlenS: number;
  /** IP protocol; 0 for any. */
  proto: number;
  ifindex: number;
  user: number;
}

/** struct xfrm_id: destination, SPI and protocol of a state. */
export interface XfrmId {
  daddr: XfrmAddress;
  spi: number;
  proto: number;
}

/** struct xfrm_lifetime_cfg: soft and hard limits; XFRM_INF for none. */
export interface XfrmLifetimeCfg {
  softByteLimit: bigint;
  hardByteLimit: bigint;
  softPacketLimit: bigint;
  hardPacketLimit: bigint;
  softAddExpiresSeconds: bigint;
  hardAddExpiresSeconds: bigint;
  softUseExpiresSeconds: bigint;
  hardUseExpiresSeconds: bigint;
}

/** struct xfrm_lifetime_cur: usage so far (output; zeros on input). */
export interface XfrmLifetimeCur {
  bytes: bigint;
  packets: bigint;
  addTime: bigint;
  useTime: bigint;
}

/** struct xfrm_user_tmpl: one transform a policy requires (XFRMA_TMPL holds an array). */
export interface XfrmUserTmpl {
  /** Tunnel destination, SPI (0: any) and protocol (IPPROTO_ESP). */
  id: XfrmId;
  family: number;
  /** Tunnel source. */
  saddr: XfrmAddress;
  reqid: number;
  mode: number;
  share: number;
  optional: number;
  aalgos: number;
  ealgos: number;
  calgos: number;
}

/** struct xfrm_mark (XFRMA_MARK). */
export interface XfrmMark {
  v: number;
  m: number;
}

/** A little-endian view over a whole buffer; byte-order-dependent fields pass `false`. */
export function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Checks that `b` holds at least `len` bytes of struct `what`.
 *
 * @throws {NetlinkDecodeError} when it does not.
 */
export function need(b: Uint8Array, len: number, what: string): void {
  if (b.length < len) throw new NetlinkDecodeError(`${what} has ${b.length} bytes, needs ${len}`);
}

/** Writes an xfrm_address_t at `off` (IPv4 in the first 4 bytes, the rest zero). */
export function putAddress(out: Uint8Array, off: number, a: XfrmAddress): void {
  out.set(a.toBytes(), off);
}

/** Reads an xfrm_address_t at `off` by `family` (see the module note). */
export function getAddress(b: Uint8Array, off: number, family: number): XfrmAddress {
  return family === AF_INET
    ? IP4.fromBytes(b.slice(off, off + 4))
    : IP6.fromBytes(b.slice(off, off + XFRM_ADDRESS_LEN));
}

/** Writes struct xfrm_selector at `off`. */
export function putSelector(out: Uint8Array, off: number, s: XfrmSelector): void {
  const dv = view(out);
  putAddress(out, off, s.daddr);
  putAddress(out, off + 16, s.saddr);
  dv.setUint16(off + 32, s.dport, false);
  dv.setUint16(off + 34, s.dportMask, false);
  dv.setUint16(off + 36, s.sport, false);
  dv.setUint16(off + 38, s.sportMask, false);
  dv.setUint16(off + 40, s.family, true);
  dv.setUint8(off + 42, s.prefixlenD);
  dv.setUint8(off + 43, s.prefixlenS);
  dv.setUint8(off + 44, s.proto);
  dv.setInt32(off + 48, s.ifindex, true);
  dv.setUint32(off + 52, s.user, true);
}

/** Reads struct xfrm_selector at `off`; the caller checked the length. */
export function getSelector(b: Uint8Array, off: number): XfrmSelector {
  const dv = view(b);
  const family = dv.getUint16(off + 40, true);
  return {
    daddr: getAddress(b, off, family),
    saddr: getAddress(b, off + 16, family),
    dport: dv.getUint16(off + 32, false),
    dportMask: dv.getUint16(off + 34, false),
    sport: dv.getUint16(off + 36, false),
    sportMask: dv.getUint16(off + 38, false),
    family,
    prefixlenD: dv.getUint8(off + 42),
    prefixlenS: dv.getUint8(off + 43),
    proto: dv.getUint8(off + 44),
    ifindex: dv.getInt32(off + 48, true),
    user: dv.getUint32(off + 52, true),
  };
}

/** Writes struct xfrm_id at `off`. */
export function putId(out: Uint8Array, off: number, id: XfrmId): void {
  putAddress(out, off, id.daddr);
  view(out).setUint32(off + 16, id.spi, false);
  out[off + 20] = id.proto;
}

/** Reads struct xfrm_id at `off`, its address by `family`. */
export function getId(b: Uint8Array, off: number, family: number): XfrmId {
  return { daddr: getAddress(b, off, family), spi: view(b).getUint32(off + 16, false), proto: b[off + 20]! };
}

const LFT_CFG_KEYS = [
  "softByteLimit",
  "hardByteLimit",
  "softPacketLimit",
  "hardPacketLimit",
  "softAddExpiresSeconds",
  "hardAddExpiresSeconds",
  "softUseExpiresSeconds",
  "hardUseExpiresSeconds",
] as const;
const LFT_CUR_KEYS = ["bytes", "packets", "addTime", "useTime"] as const;

/** Writes struct xfrm_lifetime_cfg at `off`. */
export function putLifetimeCfg(out: Uint8Array, off: number, l: XfrmLifetimeCfg): void {
  LFT_CFG_KEYS.forEach((k, i) => view(out).setBigUint64(off + 8 * i, l[k], true));
}

/** Reads struct xfrm_lifetime_cfg at `off`. */
export function getLifetimeCfg(b: Uint8Array, off: number): XfrmLifetimeCfg {
  const dv = view(b);
  const l = {} as XfrmLifetimeCfg;
  LFT_CFG_KEYS.forEach((k, i) => l[k] = dv.getBigUint64(off + 8 * i, true));
  return l;
}

/** Writes struct xfrm_lifetime_cur at `off`. */
export function putLifetimeCur(out: Uint8Array, off: number, l: XfrmLifetimeCur): void {
  LFT_CUR_KEYS.forEach((k, i) => view(out).setBigUint64(off + 8 * i, l[k], true));
}

/** Reads struct xfrm_lifetime_cur at `off`. */
export function getLifetimeCur(b: Uint8Array, off: number): XfrmLifetimeCur {
  const dv = view(b);
  const l = {} as XfrmLifetimeCur;
  LFT_CUR_KEYS.forEach((k, i) => l[k] = dv.getBigUint64(off + 8 * i, true));
  return l;
}

/** Encodes an array of struct xfrm_user_tmpl (the XFRMA_TMPL payload). */
export function encodeTmpls(ts: readonly XfrmUserTmpl[]): Uint8Array {
  const out = new Uint8Array(ts.length * XFRM_USER_TMPL_LEN);
  const dv = view(out);
  ts.forEach((t, i) => {
    const o = i * XFRM_USER_TMPL_LEN;
    putId(out, o, t.id);
    dv.setUint16(o + 24, t.family, true);
    putAddress(out, o + 28, t.saddr);
    dv.setUint32(o + 44, t.reqid, true);
    dv.setUint8(o + 48, t.mode);
    dv.setUint8(o + 49, t.share);
    dv.setUint8(o + 50, t.optional);
    dv.setUint32(o + 52, t.aalgos, true);
    dv.setUint32(o + 56, t.ealgos, true);
    dv.setUint32(o + 60, t.calgos, true);
  });
  return out;
}

/**
 * Decodes the XFRMA_TMPL payload.
 *
 * @throws {NetlinkDecodeError} when its length is not a multiple of the struct size.
 */
export function decodeTmpls(b: Uint8Array): XfrmUserTmpl[] {
  if (b.length % XFRM_USER_TMPL_LEN) {
    throw new NetlinkDecodeError(`XFRMA_TMPL has ${b.length} bytes, not a multiple of ${XFRM_USER_TMPL_LEN}`);
  }
  const dv = view(b);
  const out: XfrmUserTmpl[] = [];
  for (let o = 0; o < b.length; o += XFRM_USER_TMPL_LEN) {
    const family = dv.getUint16(o + 24, true);
    out.push({
      id: getId(b, o, family),
      family,
      saddr: getAddress(b, o + 28, family),
      reqid: dv.getUint32(o + 44, true),
      mode: b[o + 48]!,
      share: b[o + 49]!,
      optional: b[o + 50]!,
      aalgos: dv.getUint32(o + 52, true),
      ealgos: dv.getUint32(o + 56, true),
      calgos: dv.getUint32(o + 60, true),
    });
  }
  return out;
}

/** Encodes struct xfrm_mark. */
export function encodeMark(m: XfrmMark): Uint8Array {
  const out = new Uint8Array(8);
  view(out).setUint32(0, m.v, true);
  view(out).setUint32(4, m.m, true);
  return out;
}

/** Decodes struct xfrm_mark. */
export function decodeMark(b: Uint8Array): XfrmMark {
  need(b, 8, "XFRMA_MARK");
  return { v: view(b).getUint32(0, true), m: view(b).getUint32(4, true) };
}

/** The on-wire type of a decoded attribute, with its NLA_F_NESTED / NLA_F_NET_BYTEORDER bits. */
export function rawType(a: Attr): number {
  return a.type | (a.nested ? NLA_F_NESTED : 0) | (a.netByteOrder ? NLA_F_NET_BYTEORDER : 0);
}

/** No limits: what `ip xfrm` sends when none are given (byte and packet limits XFRM_INF). */
export function xfrmLifetimeInfinite(): XfrmLifetimeCfg {
  return {
    softByteLimit: XFRM_INF,
    hardByteLimit: XFRM_INF,
    softPacketLimit: XFRM_INF,
    hardPacketLimit: XFRM_INF,
    softAddExpiresSeconds: 0n,
    hardAddExpiresSeconds: 0n,
    softUseExpiresSeconds: 0n,
    hardUseExpiresSeconds: 0n,
  };
}

/** Zero usage, what a request carries in struct xfrm_lifetime_cur. */
export function xfrmLifetimeZero(): XfrmLifetimeCur {
  return { bytes: 0n, packets: 0n, addTime: 0n, useTime: 0n };
}

/**
 * A selector for traffic from `src` to `dst` (any protocol and port), as
 * `ip xfrm policy … src 10.1.1.0/24 dst 10.1.2.0/24` builds it.
 *
 * @throws {TypeError} when the networks are of different families.
 */
export function xfrmSelector(src: IP4Net | IP6Net, dst: IP4Net | IP6Net): XfrmSelector {
  if ((src instanceof IP4Net) !== (dst instanceof IP4Net)) {
    throw new TypeError(`Cannot make an xfrm selector from ${src} to ${dst}: families differ`);
  }
  return {
    daddr: dst.ip,
    saddr: src.ip,
    dport: 0,
    dportMask: 0,
    sport: 0,
    sportMask: 0,
    family: src instanceof IP4Net ? AF_INET : AF_INET6,
    prefixlenD: dst.prefixLen,
    prefixlenS: src.prefixLen,
    proto: 0,
    ifindex: 0,
    user: 0,
  };
}

/**
 * An ESP tunnel-mode template from `src` to `dst` with `reqid`, any SPI and any algorithm, as
 * `ip xfrm policy … tmpl src A dst B proto esp reqid N mode tunnel` builds it.
 */
export function espTunnelTmpl(src: XfrmAddress, dst: XfrmAddress, reqid: number): XfrmUserTmpl {
  return {
    id: { daddr: dst, spi: 0, proto: IPPROTO_ESP },
    family: src instanceof IP4 ? AF_INET : AF_INET6,
    saddr: src,
    reqid,
    mode: XFRM_MODE_TUNNEL,
    share: XFRM_SHARE_ANY,
    optional: 0,
    aalgos: 0xffffffff,
    ealgos: 0xffffffff,
    calgos: 0xffffffff,
  };
}

/**
 * The netlink message header (struct nlmsghdr, netlink.h) and message framing, as pure
 * functions. All multi-byte fields are host byte order (little-endian on every architecture Deno
 * ships for except none: x86_64 and aarch64 are both little-endian).
 *
 * @module
 */
import {
  align,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from "./constants.ts";
import { decodeAttrs } from "./attrs.ts";
import { NetlinkDecodeError } from "./errors.ts";

/** One netlink message. `payload` excludes the 16-byte header and trailing padding. */
export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  payload: Uint8Array;
}

/** Encodes one message: header, payload, padding to 4 bytes. */
export function encodeMessage(m: NlMsg): Uint8Array {
  const len = NLMSG_HDRLEN + m.payload.length;
  const out = new Uint8Array(align(len));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, len, true);
  dv.setUint16(4, m.type, true);
  dv.setUint16(6, m.flags, true);
  dv.setUint32(8, m.seq >>> 0, true);
  dv.setUint32(12, m.pid >>> 0, true);
  out.set(m.payload, NLMSG_HDRLEN);
  return out;
}

/** Concatenates encoded messages into one buffer (a batch for one send). */
export function encodeMessages(ms: NlMsg[]): Uint8Array {
  const parts = ms.map(encodeMessage);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/**
 * Splits a received buffer into messages.
 *
 * @throws {NetlinkDecodeError} when a length field is out of bounds.
 */
export function decodeMessages(buf: Uint8Array): NlMsg[] {
  const out: NlMsg[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(
        `Netlink message at offset ${off} has length ${len}, buffer has ${buf.length - off} bytes`,
      );
    }
    out.push({
      type: dv.getUint16(off + 4, true),
      flags: dv.getUint16(off + 6, true),
      seq: dv.getUint32(off + 8, true),
      pid: dv.getUint32(off + 12, true),
      payload: buf.slice(off + NLMSG_HDRLEN, off + len),
    });
    off += align(len);
  }
  if (off < buf.length && buf.length - off >= NLMSG_HDRLEN) {
    throw new NetlinkDecodeError(`Trailing ${buf.length - off} bytes after the last netlink message`);
  }
  return out;
}

/** A decoded NLMSG_ERROR: errno 0 is an ACK. */
export interface NlError {
  /** Positive errno; 0 for an ACK. */
  errno: number;
  /** The header of the request it answers. */
  request: { type: number; flags: number; seq: number; pid: number };
  /** Extended ACK message and offset, when the kernel sent them. */
  message?: string;
  offset?: number;
}

/**
 * Decodes an NLMSG_ERROR payload (struct nlmsgerr), with extended-ACK TLVs when present.
 *
 * @throws {NetlinkDecodeError} on a short payload.
 */
export function decodeError(m: NlMsg): NlError {
  if (m.type !== NLMSG_ERROR) throw new NetlinkDecodeError(`Message type ${m.type} is not NLMSG_ERROR`);
  const p = m.payload;
  if (p.length < 4 + NLMSG_HDRLEN) {
    throw new NetlinkDecodeError(`NLMSG_ERROR payload of ${p.length} bytes is too short`);
  }
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const err = dv.getInt32(0, true);
  const reqLen = dv.getUint32(4, true);
  const out: NlError = {
    errno: err === 0 ? 0 : -err,
    request: {
      type: dv.getUint16(8, true),
      flags: dv.getUint16(10, true),
      seq: dv.getUint32(12, true),
      pid: dv.getUint32(16, true),
    },
  };
  if (m.flags & NLM_F_ACK_TLVS) {
    // The original request follows in full unless the ACK is capped (or it is a plain ACK).
    const skip = err === 0 || (m.flags & NLM_F_CAPPED) ? NLMSG_HDRLEN : align(reqLen);
    const tlvs = 4 + skip;
    if (tlvs <= p.length) {
      for (const a of decodeAttrs(p.subarray(tlvs))) {
        if (a.type === NLMSGERR_ATTR_MSG) out.message = new TextDecoder().decode(a.data).replace(/\0+$/, "");
        if (a.type === NLMSGERR_ATTR_OFFS && a.data.length >= 4) {
          out.offset = new DataView(a.data.buffer, a.data.byteOffset).getUint32(0, true);
        }
      }
    }
  }
  return out;
}

/** True for the message that ends a dump. */
export function isDone(m: NlMsg): boolean {
  return m.type === NLMSG_DONE;
}

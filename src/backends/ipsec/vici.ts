/**
 * strongSwan's VICI protocol (the charon control socket), as pure encode/decode functions.
 *
 * Transport: each segment is a 32-bit big-endian length and that many bytes. Packet: one type
 * byte, then for named types (CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT) an 8-bit
 * length and the name, then the message. Message: a sequence of elements, each a type byte —
 * SECTION_START(name), SECTION_END, KEY_VALUE(name, value), LIST_START(name), LIST_ITEM(value),
 * LIST_END — where names have an 8-bit length and values a 16-bit big-endian length.
 *
 * @module
 */

/** Packet types. */
export const CMD_REQUEST = 0;
export const CMD_RESPONSE = 1;
export const CMD_UNKNOWN = 2;
export const EVENT_REGISTER = 3;
export const EVENT_UNREGISTER = 4;
export const EVENT_CONFIRM = 5;
export const EVENT_UNKNOWN = 6;
export const EVENT = 7;

/** Message element types. */
export const SECTION_START = 1;
export const SECTION_END = 2;
export const KEY_VALUE = 3;
export const LIST_START = 4;
export const LIST_ITEM = 5;
export const LIST_END = 6;

/** A VICI message: ordered keys; values are strings, lists of strings, or sections. */
export type ViciMessage = Map<string, ViciValue>;
export type ViciValue = string | string[] | ViciMessage;

/** A packet. */
export interface ViciPacket {
  type: number;
  name?: string;
  message: ViciMessage;
}

/** Bytes that are not a valid VICI packet. */
export class ViciDecodeError extends RangeError {
  override name = "ViciDecodeError";
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const NAMED = new Set([CMD_REQUEST, EVENT_REGISTER, EVENT_UNREGISTER, EVENT]);

/** Builds a message from a plain object (insertion order kept). */
export function viciMessage(obj: Record<string, ViciInput>): ViciMessage {
  const m: ViciMessage = new Map();
  for (const [k, v] of Object.entries(obj)) {
    m.set(k, typeof v === "string" || Array.isArray(v) ? v : v instanceof Map ? v : viciMessage(v));
  }
  return m;
}
/** What {@linkcode viciMessage} accepts. */
export type ViciInput = string | string[] | ViciMessage | { [k: string]: ViciInput };

class Writer {
  parts: number[] = [];
  u8(v: number) {
    this.parts.push(v & 0xff);
  }
  name(s: string) {
    const b = enc.encode(s);
    if (b.length > 255) throw new RangeError(`VICI name ${JSON.stringify(s)} is longer than 255 bytes`);
    this.u8(b.length);
    for (const x of b) this.parts.push(x);
  }
  value(s: string) {
    const b = enc.encode(s);
    if (b.length > 65535) throw new RangeError(`VICI value of ${b.length} bytes is longer than 65535`);
    this.u8(b.length >> 8);
    this.u8(b.length);
    for (const x of b) this.parts.push(x);
  }
}

function writeMessage(w: Writer, m: ViciMessage): void {
  for (const [k, v] of m) {
    if (typeof v === "string") {
      w.u8(KEY_VALUE);
      w.name(k);
      w.value(v);
    } else if (Array.isArray(v)) {
      w.u8(LIST_START);
      w.name(k);
      for (const item of v) {
        w.u8(LIST_ITEM);
        w.value(item);
      }
      w.u8(LIST_END);
    } else {
      w.u8(SECTION_START);
      w.name(k);
      writeMessage(w, v);
      w.u8(SECTION_END);
    }
  }
}

/** Encodes a packet with its 4-byte length prefix, ready to send. */
export function encodeViciPacket(p: ViciPacket): Uint8Array {
  const w = new Writer();
  w.u8(p.type);
  if (NAMED.has(p.type)) w.name(p.name ?? "");
  writeMessage(w, p.message);
  const body = Uint8Array.from(w.parts);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

/** The length of the first complete segment in `buf` (prefix included), or undefined. */
export function viciSegmentLength(buf: Uint8Array): number | undefined {
  if (buf.length < 4) return undefined;
  const len = new DataView(buf.buffer, buf.byteOffset, 4).getUint32(0, false);
  return buf.length >= 4 + len ? 4 + len : undefined;
}

/** Decodes one length-prefixed packet. */
export function decodeViciPacket(buf: Uint8Array): ViciPacket {
  const total = viciSegmentLength(buf);
  if (total === undefined) throw new ViciDecodeError(`VICI segment is incomplete (${buf.length} bytes)`);
  let off = 4;
  const need = (n: number) => {
    if (off + n > total) throw new ViciDecodeError(`VICI packet truncated at byte ${off}, needs ${n} more`);
  };
  const u8 = () => {
    need(1);
    return buf[off++]!;
  };
  const name = () => {
    const n = u8();
    need(n);
    const s = dec.decode(buf.subarray(off, off + n));
    off += n;
    return s;
  };
  const value = () => {
    need(2);
    const n = (buf[off]! << 8) | buf[off + 1]!;
    off += 2;
    need(n);
    const s = dec.decode(buf.subarray(off, off + n));
    off += n;
    return s;
  };
  const type = u8();
  if (type > EVENT) throw new ViciDecodeError(`Unknown VICI packet type ${type}`);
  const packet: ViciPacket = { type, message: new Map() };
  if (NAMED.has(type)) packet.name = name();
  const stack: ViciMessage[] = [packet.message];
  while (off < total) {
    const el = u8();
    const top = stack[stack.length - 1]!;
    switch (el) {
      case SECTION_START: {
        const m: ViciMessage = new Map();
        top.set(name(), m);
        stack.push(m);
        break;
      }
      case SECTION_END:
        if (stack.length === 1) throw new ViciDecodeError(`Unbalanced VICI SECTION_END at byte ${off - 1}`);
        stack.pop();
        break;
      case KEY_VALUE: {
        const k = name();
        top.set(k, value());
        break;
      }
      case LIST_START: {
        const k = name();
        const items: string[] = [];
        for (;;) {
          const t = u8();
          if (t === LIST_END) break;
          if (t !== LIST_ITEM) {
            throw new ViciDecodeError(`VICI element ${t} inside list ${JSON.stringify(k)}`);
          }
          items.push(value());
        }
        top.set(k, items);
        break;
      }
      default:
        throw new ViciDecodeError(`Unknown VICI element type ${el} at byte ${off - 1}`);
    }
  }
  if (stack.length !== 1) throw new ViciDecodeError("VICI message ends inside a section");
  return packet;
}

/**
 * Netlink attributes (struct nlattr, netlink.h): a 4-byte header (length, type) and a payload
 * padded to 4 bytes, nestable. An encoder that builds them and a decoder with a sticky error,
 * in the shape of mdlayher/netlink's AttributeEncoder/AttributeDecoder.
 *
 * Numbers are host byte order (little-endian) unless a method says `be` (network byte order,
 * e.g. IFLA_VXLAN_PORT).
 *
 * @module
 */
import { align, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_HDRLEN, NLA_TYPE_MASK } from "./constants.ts";
import { NetlinkDecodeError } from "./errors.ts";

/** One attribute as decoded: its type (flags removed), flags, and payload. */
export interface Attr {
  type: number;
  nested: boolean;
  netByteOrder: boolean;
  data: Uint8Array;
}

/**
 * Splits a buffer into attributes.
 *
 * @throws {NetlinkDecodeError} when a length is out of bounds.
 */
export function decodeAttrs(buf: Uint8Array): Attr[] {
  const out: Attr[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = dv.getUint16(off, true);
    const rawType = dv.getUint16(off + 2, true);
    if (len < NLA_HDRLEN || off + len > buf.length) {
      throw new NetlinkDecodeError(
        `Netlink attribute at offset ${off} has length ${len}, ${buf.length - off} bytes left`,
      );
    }
    out.push({
      type: rawType & NLA_TYPE_MASK,
      nested: (rawType & NLA_F_NESTED) !== 0,
      netByteOrder: (rawType & NLA_F_NET_BYTEORDER) !== 0,
      data: buf.subarray(off + NLA_HDRLEN, off + len),
    });
    off += align(len);
  }
  return out;
}

const enc = new TextEncoder();

/**
 * Builds a run of attributes.
 *
 * @example
 * ```ts
 * const ae = new AttrEncoder();
 * ae.u32(1, 42);
 * ae.nested(2, (n) => n.string(1, "vxlan"));
 * console.assert(ae.encode().length === 8 + 16);
 * ```
 */
export class AttrEncoder {
  #parts: Uint8Array[] = [];
  #len = 0;

  #push(type: number, data: Uint8Array): this {
    const len = NLA_HDRLEN + data.length;
    if (len > 0xffff) {
      throw new RangeError(
        `Netlink attribute ${type & NLA_TYPE_MASK} of ${data.length} bytes does not fit a 16-bit length`,
      );
    }
    const out = new Uint8Array(align(len));
    const dv = new DataView(out.buffer);
    dv.setUint16(0, len, true);
    dv.setUint16(2, type, true);
    out.set(data, NLA_HDRLEN);
    this.#parts.push(out);
    this.#len += out.length;
    return this;
  }

  #num(type: number, size: number, set: (dv: DataView) => void): this {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    return this.#push(type, b);
  }

  u8(type: number, v: number): this {
    return this.#num(type, 1, (dv) => dv.setUint8(0, v));
  }
  u16(type: number, v: number): this {
    return this.#num(type, 2, (dv) => dv.setUint16(0, v, true));
  }
  u16be(type: number, v: number): this {
    return this.#num(type, 2, (dv) => dv.setUint16(0, v, false));
  }
  u32(type: number, v: number): this {
    return this.#num(type, 4, (dv) => dv.setUint32(0, v >>> 0, true));
  }
  u32be(type: number, v: number): this {
    return this.#num(type, 4, (dv) => dv.setUint32(0, v >>> 0, false));
  }
  s32(type: number, v: number): this {
    return this.#num(type, 4, (dv) => dv.setInt32(0, v, true));
  }
  u64(type: number, v: bigint): this {
    return this.#num(type, 8, (dv) => dv.setBigUint64(0, v, true));
  }
  /** A NUL-terminated string. */
  string(type: number, s: string): this {
    const b = enc.encode(s);
    const out = new Uint8Array(b.length + 1);
    out.set(b);
    return this.#push(type, out);
  }
  bytes(type: number, b: Uint8Array): this {
    return this.#push(type, b);
  }
  /** A flag attribute (no payload). */
  flag(type: number): this {
    return this.#push(type, new Uint8Array(0));
  }
  /** A nested attribute; `fn` fills it. Sets NLA_F_NESTED when `setFlag` (genetlink wants it). */
  nested(type: number, fn: (ae: AttrEncoder) => void, setFlag = false): this {
    const inner = new AttrEncoder();
    fn(inner);
    return this.#push(setFlag ? type | NLA_F_NESTED : type, inner.encode());
  }

  /** The encoded attributes. */
  encode(): Uint8Array {
    const out = new Uint8Array(this.#len);
    let off = 0;
    for (const p of this.#parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

const dec = new TextDecoder();

/**
 * Reads a run of attributes. Accessors on a payload of the wrong size set a sticky error
 * instead of throwing; check {@linkcode AttrDecoder.err} at the end.
 *
 * @example
 * ```ts
 * const ad = new AttrDecoder(new AttrEncoder().u32(1, 7).string(3, "eth0").encode());
 * const got: Record<number, unknown> = {};
 * while (ad.next()) got[ad.type] = ad.type === 1 ? ad.u32() : ad.string();
 * console.assert(ad.err === undefined && got[1] === 7 && got[3] === "eth0");
 * ```
 */
export class AttrDecoder {
  readonly #attrs: Attr[];
  #i = -1;
  err: NetlinkDecodeError | undefined;

  constructor(buf: Uint8Array) {
    try {
      this.#attrs = decodeAttrs(buf);
    } catch (e) {
      this.#attrs = [];
      this.err = e as NetlinkDecodeError;
    }
  }

  /** Advances to the next attribute; false at the end or after an error. */
  next(): boolean {
    if (this.err) return false;
    this.#i++;
    return this.#i < this.#attrs.length;
  }

  #cur(): Attr {
    return this.#attrs[this.#i]!;
  }

  get type(): number {
    return this.#cur().type;
  }
  get data(): Uint8Array {
    return this.#cur().data;
  }
  get attr(): Attr {
    return this.#cur();
  }

  #view(size: number, what: string): DataView | undefined {
    const d = this.#cur().data;
    if (d.length < size) {
      this.err ??= new NetlinkDecodeError(
        `Attribute ${this.type} has ${d.length} bytes, ${what} needs ${size}`,
      );
      return undefined;
    }
    return new DataView(d.buffer, d.byteOffset, d.byteLength);
  }

  u8(): number {
    return this.#view(1, "u8")?.getUint8(0) ?? 0;
  }
  u16(): number {
    return this.#view(2, "u16")?.getUint16(0, true) ?? 0;
  }
  u16be(): number {
    return this.#view(2, "u16")?.getUint16(0, false) ?? 0;
  }
  u32(): number {
    return this.#view(4, "u32")?.getUint32(0, true) ?? 0;
  }
  u32be(): number {
    return this.#view(4, "u32")?.getUint32(0, false) ?? 0;
  }
  s32(): number {
    return this.#view(4, "s32")?.getInt32(0, true) ?? 0;
  }
  u64(): bigint {
    return this.#view(8, "u64")?.getBigUint64(0, true) ?? 0n;
  }
  /** A string, without the trailing NULs. */
  string(): string {
    return dec.decode(this.#cur().data).replace(/\0+$/, "");
  }
  /** A copy of the payload. */
  bytes(): Uint8Array {
    return this.#cur().data.slice();
  }
  /** Decodes the payload as nested attributes with `fn`; its error becomes ours. */
  nested(fn: (ad: AttrDecoder) => void): void {
    const inner = new AttrDecoder(this.#cur().data);
    fn(inner);
    if (inner.err) this.err ??= inner.err;
  }
}

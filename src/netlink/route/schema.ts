/**
 * Attribute schemas as data: a table of `{type, name, field, codec}` rows per attribute space,
 * with the kernel's names, and one engine that encodes an object by the table and decodes
 * attributes into an object. The table order is the encoding order. Attributes a table does not
 * name, or that a codec declines (an address of a family we do not model), are kept as raw bytes
 * in the object's `unknown` list and written back unchanged, so nothing is lost.
 *
 * @module
 */
import {
  type AttrDecoder,
  type AttrEncoder,
  NetlinkDecodeError,
  NLA_F_NESTED,
  NLA_F_NET_BYTEORDER,
} from "../codec/mod.ts";
import { IP4, IP6 } from "../../ip/mod.ts";
import { AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC } from "./constants.ts";
import { type IP, ipFromBytes } from "./addresses.ts";
import type { Link } from "./link.ts";
import type { LinkKindRegistry } from "../link_kinds/registry.ts";

/** An attribute kept as bytes. `type` includes the NLA_F_NESTED/NLA_F_NET_BYTEORDER bits as received. */
export interface RawAttr {
  type: number;
  data: Uint8Array;
}

/** What link messages add to a codec's context: the link kinds in use and the link codec itself. */
export interface LinkContext {
  kinds: LinkKindRegistry;
  /** Encodes a nested link message (ifinfomsg + attributes), e.g. a veth peer. */
  encode(link: Link, ctx: CodecContext): Uint8Array;
  /** Decodes a nested link message. */
  decode(payload: Uint8Array, ctx: CodecContext): Link;
}

/** What codecs may need beyond the attribute itself. */
export interface CodecContext {
  /** The message's address family, for addresses whose size depends on it. */
  family: number;
  /** Nesting depth of link messages inside link messages (veth peers), to bound recursion. */
  depth: number;
  /** Set for link messages. */
  link?: LinkContext;
}

/**
 * How one attribute's payload maps to a value. `decode` returns `undefined` to keep the
 * attribute raw (in `unknown`); on malformed bytes it sets the decoder's sticky error.
 */
export interface Codec<V> {
  readonly name: string;
  encode(ae: AttrEncoder, spec: AttrSpec, v: V, ctx: CodecContext): void;
  decode(ad: AttrDecoder, ctx: CodecContext): V | undefined;
}

/** One row of an attribute table. */
export interface AttrSpec {
  /** The attribute type number. */
  readonly type: number;
  /** The kernel's name, e.g. `IFLA_VXLAN_ID`. */
  readonly name: string;
  /** The object field it maps to. */
  readonly field: string;
  readonly codec: Codec<unknown>;
}

/** An attribute table. */
export interface Schema {
  /** The attribute space and the header it follows, e.g. `IFLA_VXLAN_* (linux/if_link.h)`. */
  readonly name: string;
  readonly fields: readonly AttrSpec[];
  readonly byType: ReadonlyMap<number, AttrSpec>;
}

/** A typed row builder: the codec's value type must match the field's type. */
export type FieldFn<T> = <K extends keyof T & string>(
  type: number,
  name: string,
  field: K,
  codec: Codec<NonNullable<T[K]>>,
) => AttrSpec;

/**
 * Builds an attribute table for objects of type `T`.
 *
 * @throws {TypeError} when two rows share a type or a field (a programming error).
 */
export function defineSchema<T>(name: string, rows: (f: FieldFn<T>) => AttrSpec[]): Schema {
  const fields = rows((type, name, field, codec) => ({ type, name, field, codec: codec as Codec<unknown> }));
  const byType = new Map<number, AttrSpec>();
  const names = new Set<string>();
  for (const s of fields) {
    if (byType.has(s.type) || names.has(s.field)) {
      throw new TypeError(`Schema ${name} lists attribute ${s.name} (${s.type}) or field ${s.field} twice`);
    }
    byType.set(s.type, s);
    names.add(s.field);
  }
  return { name, fields, byType };
}

/** Writes the fields of `obj` that are set, in table order, then its `unknown` attributes. */
export function encodeFields(ae: AttrEncoder, schema: Schema, obj: object, ctx: CodecContext): void {
  const o = obj as Record<string, unknown>;
  for (const s of schema.fields) {
    const v = o[s.field];
    if (v !== undefined) s.codec.encode(ae, s, v, ctx);
  }
  for (const u of (o.unknown as RawAttr[] | undefined) ?? []) ae.bytes(u.type, u.data);
}

/**
 * Reads attributes into `into` by the table; the rest go to `into.unknown` (set only when there
 * are any). Check `ad.err` afterwards.
 */
export function decodeFields<T extends object>(
  ad: AttrDecoder,
  schema: Schema,
  into: T,
  ctx: CodecContext,
): T {
  const o = into as Record<string, unknown>;
  const unknown: RawAttr[] = [];
  while (ad.next()) {
    const s = schema.byType.get(ad.type);
    const v = s?.codec.decode(ad, ctx);
    if (s && v !== undefined) o[s.field] = v;
    else unknown.push(rawAttr(ad));
  }
  if (unknown.length > 0) o.unknown = unknown;
  return into;
}

/** The decoder's current attribute as a {@linkcode RawAttr}, with its flag bits. */
export function rawAttr(ad: AttrDecoder): RawAttr {
  const a = ad.attr;
  const flags = (a.nested ? NLA_F_NESTED : 0) | (a.netByteOrder ? NLA_F_NET_BYTEORDER : 0);
  return { type: a.type | flags, data: ad.bytes() };
}

/** Sets the decoder's sticky error (keeping the first). */
export function fail(ad: AttrDecoder, message: string): undefined {
  ad.err ??= new NetlinkDecodeError(message);
  return undefined;
}

/**
 * Checks that a payload holds a fixed header and returns a view of it.
 *
 * @throws {NetlinkDecodeError} when it is too short.
 */
export function headerView(payload: Uint8Array, len: number, what: string): DataView {
  if (payload.length < len) {
    throw new NetlinkDecodeError(`${what} payload has ${payload.length} bytes, the header needs ${len}`);
  }
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
}

function intCodec(
  name: string,
  min: number,
  max: number,
  put: (ae: AttrEncoder, type: number, v: number) => void,
  get: (ad: AttrDecoder) => number,
): Codec<number> {
  return {
    name,
    encode(ae, spec, v) {
      if (!Number.isInteger(v) || v < min || v > max) {
        throw new RangeError(
          `Cannot encode ${spec.name} (${name}): ${v} is not an integer in ${min}..${max}`,
        );
      }
      put(ae, spec.type, v);
    },
    decode: get,
  };
}

/** Unsigned 8-bit integer. */
export const u8: Codec<number> = intCodec("u8", 0, 0xff, (ae, t, v) => ae.u8(t, v), (ad) => ad.u8());
/** Unsigned 16-bit integer, host byte order. */
export const u16: Codec<number> = intCodec("u16", 0, 0xffff, (ae, t, v) => ae.u16(t, v), (ad) => ad.u16());
/** Unsigned 16-bit integer, network byte order (ports). */
export const u16be: Codec<number> = intCodec(
  "u16be",
  0,
  0xffff,
  (ae, t, v) => ae.u16be(t, v),
  (ad) => ad.u16be(),
);
/** Unsigned 32-bit integer, host byte order. */
export const u32: Codec<number> = intCodec(
  "u32",
  0,
  0xffffffff,
  (ae, t, v) => ae.u32(t, v),
  (ad) => ad.u32(),
);
/** Unsigned 32-bit integer, network byte order. */
export const u32be: Codec<number> = intCodec(
  "u32be",
  0,
  0xffffffff,
  (ae, t, v) => ae.u32be(t, v),
  (ad) => ad.u32be(),
);
/** Signed 32-bit integer, host byte order. */
export const s32: Codec<number> = intCodec(
  "s32",
  -0x80000000,
  0x7fffffff,
  (ae, t, v) => ae.s32(t, v),
  (ad) => ad.s32(),
);

/** Unsigned 64-bit integer, host byte order. */
export const u64: Codec<bigint> = {
  name: "u64",
  encode(ae, spec, v) {
    if (v < 0n || v >= 1n << 64n) {
      throw new RangeError(`Cannot encode ${spec.name} (u64): ${v} is out of range`);
    }
    ae.u64(spec.type, v);
  },
  decode: (ad) => ad.u64(),
};

/** A NUL-terminated string (NLA_NUL_STRING); trailing NULs are dropped on decode. */
export const str: Codec<string> = {
  name: "string",
  encode: (ae, spec, v) => void ae.string(spec.type, v),
  decode: (ad) => ad.string(),
};

/** Raw bytes (MAC addresses, opaque structs). */
export const bytes: Codec<Uint8Array> = {
  name: "bytes",
  encode: (ae, spec, v) => void ae.bytes(spec.type, v),
  decode: (ad) => ad.bytes(),
};

/** A flag attribute (NLA_FLAG): present means true; `false` is not sent. */
export const flag: Codec<boolean> = {
  name: "flag",
  encode: (ae, spec, v) => void (v && ae.flag(spec.type)),
  decode: () => true,
};

/** A u8 holding 0 or 1. */
export const bool: Codec<boolean> = {
  name: "bool",
  encode: (ae, spec, v) => void ae.u8(spec.type, v ? 1 : 0),
  decode: (ad) => ad.u8() !== 0,
};

/**
 * An attribute the kernel accepts only as a flag but reports as a u8 (IFLA_VXLAN_TTL_INHERIT):
 * decodes either form; encodes `true` as the flag and does not send `false`.
 */
export const flagOrU8: Codec<boolean> = {
  name: "flagOrU8",
  encode: (ae, spec, v) => void (v && ae.flag(spec.type)),
  decode: (ad) => ad.data.length === 0 || ad.u8() !== 0,
};

/** An IPv4 address (4 bytes, network order). */
export const ip4: Codec<IP4> = {
  name: "ip4",
  encode: (ae, spec, v) => void ae.bytes(spec.type, v.toBytes()),
  decode: (ad) =>
    ad.data.length === 4
      ? IP4.fromBytes(ad.data)
      : fail(ad, `Attribute ${ad.type} has ${ad.data.length} bytes, an IPv4 address needs 4`),
};

/** An IPv6 address (16 bytes). */
export const ip6: Codec<IP6> = {
  name: "ip6",
  encode: (ae, spec, v) => void ae.bytes(spec.type, v.toBytes()),
  decode: (ad) =>
    ad.data.length === 16
      ? IP6.fromBytes(ad.data)
      : fail(ad, `Attribute ${ad.type} has ${ad.data.length} bytes, an IPv6 address needs 16`),
};

/**
 * An address sized by the message's family: 4 bytes for AF_INET, 16 for AF_INET6; by length
 * (4 or 16) for AF_BRIDGE and AF_UNSPEC (a vxlan FDB entry's NDA_DST). Other families (AF_MPLS…)
 * stay raw.
 */
export const ip: Codec<IP> = {
  name: "ip",
  encode: (ae, spec, v) => void ae.bytes(spec.type, v.toBytes()),
  decode(ad, ctx) {
    const n = ad.data.length;
    if (ctx.family === AF_INET) return n === 4 ? IP4.fromBytes(ad.data) : ip4.decode(ad, ctx);
    if (ctx.family === AF_INET6) return n === 16 ? IP6.fromBytes(ad.data) : ip6.decode(ad, ctx);
    if (ctx.family === AF_BRIDGE || ctx.family === AF_UNSPEC) return ipFromBytes(ad.data);
    return undefined;
  },
};

/** A fixed-size struct of u32 fields in host byte order (cacheinfo structs). */
export function u32Struct<K extends string>(name: string, keys: readonly K[]): Codec<Record<K, number>> {
  return {
    name,
    encode(ae, spec, v) {
      const b = new Uint8Array(4 * keys.length);
      const dv = new DataView(b.buffer);
      keys.forEach((k, i) => dv.setUint32(4 * i, v[k] >>> 0, true));
      ae.bytes(spec.type, b);
    },
    decode(ad) {
      const d = ad.data;
      if (d.length < 4 * keys.length) {
        return fail(ad, `Attribute ${ad.type} has ${d.length} bytes, ${name} needs ${4 * keys.length}`);
      }
      const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
      const out = {} as Record<K, number>;
      keys.forEach((k, i) => (out[k] = dv.getUint32(4 * i, true)));
      return out;
    },
  };
}

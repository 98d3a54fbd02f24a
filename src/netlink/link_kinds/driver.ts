/**
 * The link-kind driver interface: how one `IFLA_INFO_KIND` encodes and decodes its
 * `IFLA_INFO_DATA` attributes.
 *
 * @module
 */
import type { AttrDecoder, AttrEncoder } from "../codec/mod.ts";
import { type CodecContext, decodeFields, encodeFields, type Schema } from "../route/schema.ts";

/** A driver for one link kind (`vxlan`, `veth`, …). */
export interface LinkKindDriver<T extends object = object> {
  /** The IFLA_INFO_KIND string. */
  readonly kind: string;
  /** The IFLA_INFO_DATA attribute table, when the driver is table-driven. */
  readonly schema?: Schema;
  /** Writes `data` as the attributes inside IFLA_INFO_DATA. */
  encode(ae: AttrEncoder, data: T, ctx: CodecContext): void;
  /** Reads the attributes inside IFLA_INFO_DATA; sets `ad.err` on malformed bytes. */
  decode(ad: AttrDecoder, ctx: CodecContext): T;
}

/** IFLA_INFO_DATA of a kind without a driver, kept as bytes so nothing is lost. */
export interface RawLinkData {
  raw: Uint8Array;
}

/** Whether link data is {@linkcode RawLinkData}. */
export function isRawLinkData(d: object): d is RawLinkData {
  return "raw" in d && d.raw instanceof Uint8Array;
}

/** A driver whose IFLA_INFO_DATA is exactly the attribute table `schema`. */
export function schemaDriver<T extends object>(kind: string, schema: Schema): LinkKindDriver<T> {
  return {
    kind,
    schema,
    encode: (ae, data, ctx) => encodeFields(ae, schema, data, ctx),
    decode: (ad, ctx) => decodeFields(ad, schema, {} as T, ctx),
  };
}

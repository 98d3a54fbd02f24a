/**
 * The `veth` link kind, following include/uapi/linux/veth.h: IFLA_INFO_DATA holds VETH_INFO_PEER,
 * whose payload is a whole nested link message (struct ifinfomsg and IFLA_* attributes) describing
 * the other end. The kernel only reads it on creation; it never reports veth info data.
 *
 * @module
 */
import { NetlinkDecodeError } from "../codec/mod.ts";
import type { Link } from "../route/link.ts";
import {
  type Codec,
  type CodecContext,
  defineSchema,
  fail,
  type RawAttr,
  type Schema,
} from "../route/schema.ts";
import { type LinkKindDriver, schemaDriver } from "./driver.ts";

export const VETH_INFO_UNSPEC = 0;
export const VETH_INFO_PEER = 1;

/** How deep veth peers may nest inside veth peers when decoding (the kernel nests once). */
export const MAX_LINK_NESTING = 4;

/** veth IFLA_INFO_DATA. */
export interface VethData {
  /** The peer end: its ifinfomsg header and attributes (`peer name vethB`, netns, address…). */
  peer?: Link;
  unknown?: RawAttr[];
}

function linkContext(ctx: CodecContext) {
  if (!ctx.link) throw new TypeError("VETH_INFO_PEER needs a link message context");
  return ctx.link;
}

/** VETH_INFO_PEER: a nested ifinfomsg + attributes. */
const peer: Codec<Link> = {
  name: "vethPeer",
  encode(ae, spec, v, ctx) {
    ae.bytes(spec.type, linkContext(ctx).encode(v, { ...ctx, depth: ctx.depth + 1 }));
  },
  decode(ad, ctx) {
    if (ctx.depth >= MAX_LINK_NESTING) {
      return fail(ad, `VETH_INFO_PEER nests link messages more than ${MAX_LINK_NESTING} deep`);
    }
    try {
      return linkContext(ctx).decode(ad.data, { ...ctx, depth: ctx.depth + 1 });
    } catch (e) {
      if (e instanceof NetlinkDecodeError) return fail(ad, `VETH_INFO_PEER: ${e.message}`);
      throw e;
    }
  },
};

/** The VETH_INFO_* table. */
export const VETH_SCHEMA: Schema = defineSchema<VethData>("VETH_INFO_* (linux/veth.h)", (f) => [
  f(VETH_INFO_PEER, "VETH_INFO_PEER", "peer", peer),
]);

/** The veth driver. */
export const vethKind: LinkKindDriver<VethData> = schemaDriver<VethData>("veth", VETH_SCHEMA);

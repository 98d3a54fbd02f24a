/**
 * Generic netlink: the message header (struct genlmsghdr) and the controller family `nlctrl`,
 * which maps a family name (`wireguard`) to the message type the kernel assigned it at
 * registration. Constants follow include/uapi/linux/genetlink.h.
 *
 * A generic netlink message is a netlink message whose type is the family id and whose payload
 * is a 4-byte genlmsghdr (command, version, two reserved bytes) followed by attributes.
 *
 * @module
 */
import {
  type Attr,
  AttrDecoder,
  AttrEncoder,
  NetlinkDecodeError,
  NLA_F_NESTED,
  NLA_F_NET_BYTEORDER,
  NLM_F_ACK,
  NLM_F_REQUEST,
  type NlMsg,
} from "../codec/mod.ts";

/** Size of struct genlmsghdr (genetlink.h GENL_HDRLEN). */
export const GENL_HDRLEN = 4;
/** Longest family name including the NUL (genetlink.h). */
export const GENL_NAMSIZ = 16;
/** The controller's fixed family id (GENL_ID_CTRL = NLMSG_MIN_TYPE). */
export const GENL_ID_CTRL = 0x10;

/** Operation flags in CTRL_ATTR_OP_FLAGS (genetlink.h). */
export const GENL_ADMIN_PERM = 0x01;
export const GENL_CMD_CAP_DO = 0x02;
export const GENL_CMD_CAP_DUMP = 0x04;
export const GENL_CMD_CAP_HASPOL = 0x08;
export const GENL_UNS_ADMIN_PERM = 0x10;

/** Controller commands (genetlink.h). */
export const CTRL_CMD_UNSPEC = 0;
export const CTRL_CMD_NEWFAMILY = 1;
export const CTRL_CMD_DELFAMILY = 2;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_CMD_NEWOPS = 4;
export const CTRL_CMD_DELOPS = 5;
export const CTRL_CMD_GETOPS = 6;
export const CTRL_CMD_NEWMCAST_GRP = 7;
export const CTRL_CMD_DELMCAST_GRP = 8;
export const CTRL_CMD_GETMCAST_GRP = 9;
export const CTRL_CMD_GETPOLICY = 10;

/** Controller attributes (genetlink.h). */
export const CTRL_ATTR_UNSPEC = 0;
export const CTRL_ATTR_FAMILY_ID = 1;
export const CTRL_ATTR_FAMILY_NAME = 2;
export const CTRL_ATTR_VERSION = 3;
export const CTRL_ATTR_HDRSIZE = 4;
export const CTRL_ATTR_MAXATTR = 5;
export const CTRL_ATTR_OPS = 6;
export const CTRL_ATTR_MCAST_GROUPS = 7;
export const CTRL_ATTR_POLICY = 8;
export const CTRL_ATTR_OP_POLICY = 9;
export const CTRL_ATTR_OP = 10;

/** Attributes of one entry in CTRL_ATTR_OPS (genetlink.h). */
export const CTRL_ATTR_OP_ID = 1;
export const CTRL_ATTR_OP_FLAGS = 2;

/** Attributes of one entry in CTRL_ATTR_MCAST_GROUPS (genetlink.h). */
export const CTRL_ATTR_MCAST_GRP_NAME = 1;
export const CTRL_ATTR_MCAST_GRP_ID = 2;

/**
 * The version the kernel's controller reports in its own replies. Requests may carry any
 * version; {@linkcode getFamilyRequest} sends 1, as wg(8) and libmnl do.
 */
export const GENL_CTRL_VERSION = 2;

/** A decoded generic netlink payload: the genlmsghdr fields and the attribute bytes after it. */
export interface GenlPayload {
  cmd: number;
  version: number;
  attrs: Uint8Array;
}

/** Builds a generic netlink payload: genlmsghdr (reserved bytes zero), then `attrs`. */
export function encodeGenl(cmd: number, version: number, attrs: Uint8Array): Uint8Array {
  const out = new Uint8Array(GENL_HDRLEN + attrs.length);
  out[0] = cmd;
  out[1] = version;
  out.set(attrs, GENL_HDRLEN);
  return out;
}

/**
 * Splits a generic netlink payload into its header and attributes.
 *
 * @throws {NetlinkDecodeError} when the payload is shorter than a genlmsghdr.
 */
export function decodeGenl(payload: Uint8Array): GenlPayload {
  if (payload.length < GENL_HDRLEN) {
    throw new NetlinkDecodeError(
      `Generic netlink payload has ${payload.length} bytes, genlmsghdr needs ${GENL_HDRLEN}`,
    );
  }
  return { cmd: payload[0]!, version: payload[1]!, attrs: payload.subarray(GENL_HDRLEN) };
}

/** One command a family supports (an entry of CTRL_ATTR_OPS). */
export interface GenlOp {
  id: number;
  /** GENL_ADMIN_PERM, GENL_CMD_CAP_DO, … */
  flags: number;
}

/** A multicast group of a family (an entry of CTRL_ATTR_MCAST_GROUPS). */
export interface GenlMcastGroup {
  name: string;
  id: number;
}

/** A family as the controller describes it (CTRL_CMD_NEWFAMILY). */
export interface GenlFamily {
  /** The netlink message type to use for this family. */
  id: number;
  name: string;
  version: number;
  /** Size of the family's own fixed header after genlmsghdr (0 for most). */
  hdrSize: number;
  maxAttr: number;
  ops: GenlOp[];
  mcastGroups: GenlMcastGroup[];
  /** Attributes this codec does not model, in order; encoded after the modelled ones. */
  unknown?: Attr[];
}

/**
 * The CTRL_CMD_GETFAMILY request for a family by name; the kernel answers with one
 * CTRL_CMD_NEWFAMILY message, or ENOENT when the family is not registered (the module is
 * missing or not loaded).
 *
 * @example
 * ```ts
 * const m = getFamilyRequest("wireguard");
 * console.assert(m.type === GENL_ID_CTRL && m.payload[0] === CTRL_CMD_GETFAMILY);
 * ```
 */
export function getFamilyRequest(name: string): NlMsg {
  const attrs = new AttrEncoder().string(CTRL_ATTR_FAMILY_NAME, name).encode();
  return {
    type: GENL_ID_CTRL,
    flags: NLM_F_REQUEST | NLM_F_ACK,
    seq: 0,
    pid: 0,
    payload: encodeGenl(CTRL_CMD_GETFAMILY, 1, attrs),
  };
}

/**
 * Decodes the payload of a controller message describing a family (the reply to
 * {@linkcode getFamilyRequest}, or a CTRL_CMD_NEWFAMILY notification).
 *
 * @throws {NetlinkDecodeError} on malformed bytes or a reply without a family id or name.
 */
export function decodeFamily(payload: Uint8Array): GenlFamily {
  const { attrs } = decodeGenl(payload);
  const ad = new AttrDecoder(attrs);
  let id: number | undefined;
  let name: string | undefined;
  const f: Omit<GenlFamily, "id" | "name"> = {
    version: 0,
    hdrSize: 0,
    maxAttr: 0,
    ops: [],
    mcastGroups: [],
  };
  const unknown: Attr[] = [];
  while (ad.next()) {
    switch (ad.type) {
      case CTRL_ATTR_FAMILY_ID:
        id = ad.u16();
        break;
      case CTRL_ATTR_FAMILY_NAME:
        name = ad.string();
        break;
      case CTRL_ATTR_VERSION:
        f.version = ad.u32();
        break;
      case CTRL_ATTR_HDRSIZE:
        f.hdrSize = ad.u32();
        break;
      case CTRL_ATTR_MAXATTR:
        f.maxAttr = ad.u32();
        break;
      case CTRL_ATTR_OPS:
        ad.nested((list) => {
          while (list.next()) {
            const op: GenlOp = { id: 0, flags: 0 };
            list.nested((e) => {
              while (e.next()) {
                if (e.type === CTRL_ATTR_OP_ID) op.id = e.u32();
                else if (e.type === CTRL_ATTR_OP_FLAGS) op.flags = e.u32();
              }
            });
            f.ops.push(op);
          }
        });
        break;
      case CTRL_ATTR_MCAST_GROUPS:
        ad.nested((list) => {
          while (list.next()) {
            const g: GenlMcastGroup = { name: "", id: 0 };
            list.nested((e) => {
              while (e.next()) {
                if (e.type === CTRL_ATTR_MCAST_GRP_NAME) g.name = e.string();
                else if (e.type === CTRL_ATTR_MCAST_GRP_ID) g.id = e.u32();
              }
            });
            f.mcastGroups.push(g);
          }
        });
        break;
      default:
        unknown.push({ ...ad.attr, data: ad.bytes() });
    }
  }
  if (ad.err) throw ad.err;
  if (id === undefined || name === undefined) {
    throw new NetlinkDecodeError("Controller message has no CTRL_ATTR_FAMILY_ID or CTRL_ATTR_FAMILY_NAME");
  }
  return unknown.length ? { id, name, ...f, unknown } : { id, name, ...f };
}

/**
 * Encodes a family description as the payload of the kernel controller's answer (CTRL_CMD_NEWFAMILY
 * in a message of type GENL_ID_CTRL; attributes in its order, list entries numbered from 1), for
 * fakes and round-trip tests.
 */
export function encodeFamily(f: GenlFamily): Uint8Array {
  const ae = new AttrEncoder()
    .string(CTRL_ATTR_FAMILY_NAME, f.name)
    .u16(CTRL_ATTR_FAMILY_ID, f.id)
    .u32(CTRL_ATTR_VERSION, f.version)
    .u32(CTRL_ATTR_HDRSIZE, f.hdrSize)
    .u32(CTRL_ATTR_MAXATTR, f.maxAttr);
  if (f.ops.length) {
    ae.nested(CTRL_ATTR_OPS, (list) => {
      f.ops.forEach((op, i) =>
        list.nested(i + 1, (e) => e.u32(CTRL_ATTR_OP_ID, op.id).u32(CTRL_ATTR_OP_FLAGS, op.flags))
      );
    });
  }
  if (f.mcastGroups.length) {
    ae.nested(CTRL_ATTR_MCAST_GROUPS, (list) => {
      f.mcastGroups.forEach((g, i) =>
        list.nested(
          i + 1,
          (e) => e.u32(CTRL_ATTR_MCAST_GRP_ID, g.id).string(CTRL_ATTR_MCAST_GRP_NAME, g.name),
        )
      );
    });
  }
  for (const a of f.unknown ?? []) ae.bytes(rawType(a), a.data);
  return encodeGenl(CTRL_CMD_NEWFAMILY, GENL_CTRL_VERSION, ae.encode());
}

/** The on-wire type of a decoded attribute, with its NLA_F_NESTED / NLA_F_NET_BYTEORDER bits. */
export function rawType(a: Attr): number {
  return a.type | (a.nested ? NLA_F_NESTED : 0) | (a.netByteOrder ? NLA_F_NET_BYTEORDER : 0);
}

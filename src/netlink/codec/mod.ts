/**
 * The netlink codec core: message framing, attributes, errors. Pure functions, no I/O.
 *
 * @module
 */
export * from "./constants.ts";
export { type Attr, AttrDecoder, AttrEncoder, decodeAttrs } from "./attrs.ts";
export {
  decodeError,
  decodeMessages,
  encodeMessage,
  encodeMessages,
  isDone,
  type NlError,
  type NlMsg,
} from "./header.ts";
export { isErrno, NetlinkDecodeError, NetlinkError, type NetlinkErrorInit } from "./errors.ts";
export { errnoName, errnoOf } from "./errno.ts";

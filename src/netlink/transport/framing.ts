/**
 * The transport's hot-path framing: splitting received datagrams, framing a batch chunk into one
 * send buffer, settling its ACKs in place; and the two control messages the codec leaves to us
 * (an NLMSG_DONE's error, the events-lost marker).
 *
 * Why not just `encodeMessage`/`decodeMessages` here: under Deno every typed array is allocated
 * off the V8 heap, about 0.5 µs each (Node: ~30 ns), and those functions make one or two per
 * message. A batch of 10 000 routes or a dump of 10 000 routes then spends more time allocating
 * than the kernel spends on the routes. The layout written and read is the codec's (nlmsghdr);
 * malformed framing is handed to `decodeMessages` so its typed error is what callers see.
 *
 * @module
 */
import {
  align,
  decodeAttrs,
  decodeError,
  decodeMessages,
  NetlinkError,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_REQUEST,
  type NlMsg,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_OVERRUN,
  NLMSGERR_ATTR_MSG,
  NLMSGERR_ATTR_OFFS,
} from "../codec/mod.ts";
import type { Logger } from "../../log/logger.ts";
import type { BatchFailure, BatchRequest } from "./types.ts";
import { ENOBUFS } from "./syscalls.ts";

/**
 * The messages of one received datagram, which the caller has copied out of its receive buffer:
 * each payload is a view into that copy (one allocation per datagram, not per message).
 *
 * @throws {NetlinkDecodeError} on malformed framing.
 */
export function splitDatagram(copy: Uint8Array): NlMsg[] {
  const dv = new DataView(copy.buffer, copy.byteOffset, copy.byteLength);
  const out: NlMsg[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= copy.length) {
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > copy.length) return decodeMessages(copy);
    out.push({
      type: dv.getUint16(off + 4, true),
      flags: dv.getUint16(off + 6, true),
      seq: dv.getUint32(off + 8, true),
      pid: dv.getUint32(off + 12, true),
      payload: copy.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align(len);
  }
  return out;
}

/**
 * Frames msgs[from, to) into one send buffer of `bytes` bytes, each with NLM_F_REQUEST | NLM_F_ACK
 * and the next sequence number. Returns the buffer and seq → message index for the ACKs.
 */
export function frameBatch(
  msgs: readonly BatchRequest[],
  from: number,
  to: number,
  bytes: number,
  nextSeq: () => number,
  pid: number,
): { buf: Uint8Array; pending: Map<number, number> } {
  const buf = new Uint8Array(bytes);
  const dv = new DataView(buf.buffer);
  const pending = new Map<number, number>();
  let off = 0;
  for (let k = from; k < to; k++) {
    const m = msgs[k]!;
    const seq = nextSeq();
    dv.setUint32(off, NLMSG_HDRLEN + m.payload.length, true);
    dv.setUint16(off + 4, m.type, true);
    dv.setUint16(off + 6, (m.flags ?? 0) | NLM_F_REQUEST | NLM_F_ACK, true);
    dv.setUint32(off + 8, seq, true);
    dv.setUint32(off + 12, pid, true);
    buf.set(m.payload, off + NLMSG_HDRLEN);
    pending.set(seq, k);
    off += align(NLMSG_HDRLEN + m.payload.length);
  }
  return { buf, pending };
}

/**
 * Settles the ACKs in `buf[0, n)` (the receive buffer, read through `dv`) against `pending`,
 * reading headers in place: a plain ACK costs no allocation. Error ACKs are decoded in full into
 * `failed`; messages for other seqs are dropped with a v(2) line. Returns the number of successes.
 *
 * @throws {NetlinkDecodeError} on malformed framing.
 */
export function takeAcks(
  buf: Uint8Array,
  dv: DataView,
  n: number,
  pending: Map<number, number>,
  msgs: readonly BatchRequest[],
  failed: BatchFailure[],
  log: Logger,
): number {
  let ok = 0;
  for (let off = 0; off + NLMSG_HDRLEN <= n;) {
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > n) {
      decodeMessages(buf.subarray(0, n)); // throws the codec's error for this framing
      throw new Error("unreachable: decodeMessages accepted framing the fast path refused");
    }
    const type = dv.getUint16(off + 4, true);
    const seq = dv.getUint32(off + 8, true);
    const index = pending.get(seq);
    if (index === undefined) {
      log.v(2, `netlink: dropping message type ${type} seq ${seq} in a batch`);
    } else if (type === NLMSG_ERROR) {
      pending.delete(seq);
      if (len >= NLMSG_HDRLEN + 4 && dv.getInt32(off + NLMSG_HDRLEN, true) === 0) ok++;
      else {
        const e = decodeError(decodeMessages(buf.subarray(off, off + len))[0]!);
        const op = msgs[index]!.op;
        failed.push({
          index,
          error: new NetlinkError({ op, errno: e.errno, kernelMessage: e.message, offset: e.offset }),
        });
      }
    }
    off += align(len);
  }
  return ok;
}

/** The error an NLMSG_DONE carries (an int, then extended-ACK attributes), if any. */
export function doneError(m: NlMsg, op: string): NetlinkError | undefined {
  if (m.payload.length < 4) return undefined;
  const dv = new DataView(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
  const errno = -dv.getInt32(0, true);
  if (errno <= 0) return undefined;
  let kernelMessage: string | undefined;
  let offset: number | undefined;
  if (m.flags & NLM_F_ACK_TLVS) {
    for (const a of decodeAttrs(m.payload.subarray(4))) {
      if (a.type === NLMSGERR_ATTR_MSG) kernelMessage = new TextDecoder().decode(a.data).replace(/\0+$/, "");
      if (a.type === NLMSGERR_ATTR_OFFS && a.data.length >= 4) {
        offset = new DataView(a.data.buffer, a.data.byteOffset).getUint32(0, true);
      }
    }
  }
  return new NetlinkError({ op, errno, kernelMessage, offset });
}

/** The synthetic message a subscription yields when the kernel dropped events. */
export function eventsLost(): NlMsg {
  const payload = new Uint8Array(4);
  new DataView(payload.buffer).setInt32(0, -ENOBUFS, true);
  return { type: NLMSG_OVERRUN, flags: 0, seq: 0, pid: 0, payload };
}

/**
 * True for the batch a subscription yields when the kernel dropped events (ENOBUFS): a single
 * NLMSG_OVERRUN message. The subscriber should resync from a dump; the stream goes on.
 *
 * @example
 * ```ts
 * import { NLMSG_OVERRUN } from "../codec/mod.ts";
 * const lost = [{ type: NLMSG_OVERRUN, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(4) }];
 * console.assert(isEventsLost(lost) && !isEventsLost([]));
 * ```
 */
export function isEventsLost(batch: readonly NlMsg[]): boolean {
  return batch.length === 1 && batch[0]!.type === NLMSG_OVERRUN;
}

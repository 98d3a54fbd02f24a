/**
 * The FLANNEL_NETLINK_DEBUG=1 switch: every netlink message sent and received, as a header summary
 * and a hex dump, written to the injected logger. The runtime modules read the variable once when
 * a socket opens; this module only formats.
 *
 * @module
 */
import type { Logger } from "../../log/logger.ts";
import { NLMSG_HDRLEN } from "../codec/mod.ts";

/** The environment variable that turns the dump on. */
export const NETLINK_DEBUG_ENV = "FLANNEL_NETLINK_DEBUG";

/**
 * Whether the debug switch is on, given the variable's value (`1` or `true`).
 *
 * @example
 * ```ts
 * console.assert(debugSwitch("1") && !debugSwitch(undefined) && !debugSwitch("0"));
 * ```
 */
export function debugSwitch(value: string | undefined): boolean {
  return value === "1" || value?.toLowerCase() === "true";
}

const CONTROL: Readonly<Record<number, string>> = {
  1: "NLMSG_NOOP",
  2: "NLMSG_ERROR",
  3: "NLMSG_DONE",
  4: "NLMSG_OVERRUN",
};

/**
 * Formats bytes as `offset  16 hex bytes  |ascii|` lines.
 *
 * @example
 * ```ts
 * const lines = hexdump(new Uint8Array([0x14, 0, 0, 0, 0x6c, 0x6f]));
 * console.assert(lines[0] === "0000  14 00 00 00 6c 6f" + " ".repeat(31) + "|....lo|");
 * ```
 */
export function hexdump(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, off + 16);
    let hex = "";
    let text = "";
    for (let i = 0; i < 16; i++) {
      if (i === 8) hex += " ";
      const b = row[i];
      hex += b === undefined ? "   " : b.toString(16).padStart(2, "0") + " ";
      if (b !== undefined) text += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".";
    }
    out.push(`${off.toString(16).padStart(4, "0")}  ${hex}|${text}|`);
  }
  return out;
}

/**
 * Logs one datagram: a summary line per message (`type`, `flags`, `seq`, `pid`, length), then its
 * bytes. Malformed framing is dumped whole.
 */
export function logDatagram(log: Logger, direction: "send" | "recv", buf: Uint8Array): void {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > buf.length) break;
    const type = dv.getUint16(off + 4, true);
    const flags = dv.getUint16(off + 6, true);
    log.info(
      `netlink ${direction} len=${len} type=${CONTROL[type] ?? type} flags=0x${flags.toString(16)} seq=${
        dv.getUint32(off + 8, true)
      } pid=${dv.getUint32(off + 12, true)}`,
    );
    for (const line of hexdump(buf.subarray(off, off + len))) log.info(`  ${line}`);
    off += (len + 3) & ~3;
  }
  if (off < buf.length) {
    log.info(`netlink ${direction} ${buf.length - off} unframed bytes`);
    for (const line of hexdump(buf.subarray(off))) log.info(`  ${line}`);
  }
}

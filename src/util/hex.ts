/**
 * Bytes as lower-case hex, two digits each (WireGuard keys over UAPI, cloud request signatures).
 *
 * @example
 * ```ts
 * import { hex } from "./hex.ts";
 * console.assert(hex(new Uint8Array([0, 171])) === "00ab");
 * ```
 *
 * @module
 */

/** `bytes` as lower-case hex. */
export function hex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

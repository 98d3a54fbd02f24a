/**
 * Netlink errors: one structured error for what the kernel refused, one for bytes we could not
 * decode.
 *
 * @module
 */
import { ERRNO_TEXT, errnoName } from "./errno.ts";

/** What {@linkcode NetlinkError} carries. */
export interface NetlinkErrorInit {
  /** What we asked for, in `ip`-like words: `add route 10.244.1.0/24 dev flannel.1`. */
  op: string;
  /** Positive errno. */
  errno: number;
  /** The kernel's extended-ACK message, when it sent one. */
  kernelMessage?: string | undefined;
  /** The extended-ACK offset of the offending attribute in our request, when sent. */
  offset?: number | undefined;
  /** A hint for the operator (e.g. which kernel module is missing). */
  hint?: string | undefined;
  cause?: unknown;
}

/**
 * The kernel refused an operation.
 *
 * `Cannot add route 10.244.1.0/24 dev flannel.1: File exists (EEXIST)`; with an extended ACK the
 * kernel's text follows: `…: Invalid argument (EINVAL): Nexthop has invalid gateway`.
 */
export class NetlinkError extends Error {
  override name = "NetlinkError";
  readonly op: string;
  readonly errno: number;
  readonly errnoName: string;
  readonly kernelMessage: string | undefined;
  readonly offset: number | undefined;

  constructor(init: NetlinkErrorInit) {
    const name = errnoName(init.errno);
    const text = ERRNO_TEXT[name];
    let msg = `Cannot ${init.op}: ${text ? `${text} (${name})` : name}`;
    if (init.kernelMessage) msg += `: ${init.kernelMessage}`;
    if (init.hint) msg += `; ${init.hint}`;
    super(msg, init.cause === undefined ? undefined : { cause: init.cause });
    this.op = init.op;
    this.errno = init.errno;
    this.errnoName = name;
    this.kernelMessage = init.kernelMessage;
    this.offset = init.offset;
  }
}

/** True when `e` is a {@linkcode NetlinkError} with one of the given errno names. */
export function isErrno(e: unknown, ...names: string[]): e is NetlinkError {
  return e instanceof NetlinkError && names.includes(e.errnoName);
}

/** Bytes that are not a valid netlink message or attribute. */
export class NetlinkDecodeError extends RangeError {
  override name = "NetlinkDecodeError";
}

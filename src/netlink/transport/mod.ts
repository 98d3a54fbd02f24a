/**
 * The netlink transport: a socket that sends requests, collects ACKs and dumps, batches, and
 * subscribes to multicast events, the same under every runtime.
 *
 * This module is the runtime-independent surface. `openNetlink` lives in the runtime modules,
 * imported by whoever picks the runtime: `./deno_ffi.ts` (Deno, `--allow-ffi`) or `./node_koffi.ts`
 * (Node, npm `koffi`). Both satisfy {@linkcode OpenNetlink}.
 *
 * @module
 */
export type {
  BatchFailure,
  BatchRequest,
  BatchResult,
  NetlinkSocket,
  NlRequest,
  OpenNetlink,
  OpenOptions,
  RequestOptions,
  SubscribeOptions,
} from "./types.ts";
export {
  ACK_TRUESIZE,
  createNetlinkSocket,
  DEFAULT_EVENT_RCVBUF,
  DEFAULT_RCVBUF,
  DEFAULT_SNDBUF,
  DUMP_INTR_RETRIES,
  type SocketOptions,
} from "./socket.ts";
export { inNetns, type Syscalls } from "./syscalls.ts";
export { isEventsLost } from "./framing.ts";
export { debugSwitch, hexdump, logDatagram, NETLINK_DEBUG_ENV } from "./hexdump.ts";

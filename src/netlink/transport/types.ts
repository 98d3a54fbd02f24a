/**
 * The netlink transport interface: one socket API that every runtime implements (Deno FFI in
 * `deno_ffi.ts`, Node koffi in `node_koffi.ts`), over the runtime-independent logic in `socket.ts`.
 *
 * @module
 */
import type { NetlinkError, NlMsg } from "../codec/mod.ts";
import type { Logger } from "../../log/logger.ts";

/** A request to send: the transport fills in seq, pid and the request/ACK/dump flags. */
export interface NlRequest {
  /** Message type, e.g. RTM_NEWROUTE. */
  type: number;
  /** Extra flags such as NLM_F_CREATE | NLM_F_EXCL; NLM_F_REQUEST (and ACK or DUMP) are added. */
  flags?: number;
  /** Everything after the 16-byte header (family header and attributes). */
  payload: Uint8Array;
}

/** How a request is named in errors. */
export interface RequestOptions {
  /** What we asked for, in `ip`-like words (`add route 10.244.1.0/24 dev flannel.1`). */
  op: string;
}

/** One message of a {@linkcode NetlinkSocket.batch}. */
export interface BatchRequest extends NlRequest {
  /** What this message asks for, for its error. */
  op: string;
}

/** One refused message of a batch. */
export interface BatchFailure {
  /** Index of the message in the batch. */
  index: number;
  /** The kernel's answer; ENOBUFS when its ACK was lost (its outcome is then unknown). */
  error: NetlinkError;
}

/** What {@linkcode NetlinkSocket.batch} returns: every message was tried. */
export interface BatchResult {
  /** How many messages the kernel acknowledged without error. */
  ok: number;
  /** The messages it refused, in batch order. */
  failed: BatchFailure[];
  /** How many sends the batch took (it is cut so that the ACKs fit the receive buffer). */
  chunks: number;
}

/** Options of {@linkcode NetlinkSocket.subscribe}. */
export interface SubscribeOptions {
  /** Ends the subscription. */
  signal?: AbortSignal;
}

/**
 * A netlink socket for one protocol (NETLINK_ROUTE, NETLINK_GENERIC, NETLINK_XFRM).
 *
 * Calls are serialised: a request, dump or batch runs to its end before the next one starts. Nothing
 * blocks the event loop: the kernel answers rtnetlink requests while we send them, so replies are
 * read with MSG_DONTWAIT, and only when nothing is there yet does the socket wait (poll on another
 * thread under Deno, a libuv poll handle under Node).
 *
 * The payloads of received messages are views into one copy of their datagram: read them through
 * `byteOffset`/`byteLength` (as the codec does), never from `payload.buffer` at offset 0.
 */
export interface NetlinkSocket {
  /** The port id the kernel assigned to this socket (nl_pid). */
  readonly portId: number;
  /**
   * Sends one request with NLM_F_REQUEST | NLM_F_ACK and collects its replies until the ACK (or
   * NLMSG_DONE).
   *
   * @throws {NetlinkError} with the errno, the kernel's extended-ACK text and `opts.op`.
   */
  request(msg: NlRequest, opts?: RequestOptions): Promise<NlMsg[]>;
  /**
   * Dumps (NLM_F_REQUEST | NLM_F_DUMP): collects the multipart reply until NLMSG_DONE. A dump the
   * kernel marks NLM_F_DUMP_INTR (the table changed under it) is retried.
   *
   * @throws {NetlinkError} when the kernel refuses, or the dump stays inconsistent (EINTR).
   */
  dump(msg: NlRequest, opts?: RequestOptions): Promise<NlMsg[]>;
  /**
   * Sends many requests, each with NLM_F_ACK, in as few sends as the receive buffer allows for
   * their ACKs. A refused message does not stop the others; replies other than ACKs are dropped.
   */
  batch(msgs: BatchRequest[]): Promise<BatchResult>;
  /**
   * Joins multicast groups (RTNLGRP_LINK, …) on a socket of its own, opened now, so no event after
   * this call is missed. Yields the messages of each datagram. When the kernel dropped events
   * (ENOBUFS) it yields one synthetic NLMSG_OVERRUN message instead ({@linkcode isEventsLost}):
   * events were lost, resync from a dump. Ends on {@linkcode close} or `opts.signal`.
   */
  subscribe(groups: number[], opts?: SubscribeOptions): AsyncIterable<NlMsg[]>;
  /** Closes the socket and ends its subscriptions. Pending calls fail. */
  close(): void;
}

/** Options of `openNetlink` in every runtime. */
export interface OpenOptions {
  /** Open the socket inside the named network namespace (`/var/run/netns/<name>`). */
  netns?: string;
  /** Verbose lines (`v(2)`: dropped replies, retried dumps) and the hex dump go here. */
  log?: Logger;
  /**
   * Receive buffer to ask for, in bytes (SO_RCVBUFFORCE as root, else SO_RCVBUF, which the kernel
   * caps at net.core.rmem_max). Default 1 MiB for requests, 4 MiB for subscriptions.
   */
  rcvbuf?: number;
  /**
   * NETLINK_GET_STRICT_CHK (NETLINK_ROUTE only): the kernel checks dump request headers and
   * filters by their fields instead of ignoring them. Default true, as iproute2 does.
   */
  strictCheck?: boolean;
  /** Hex-dump every message sent and received. Default: the FLANNEL_NETLINK_DEBUG=1 switch. */
  debug?: boolean;
}

/** Opens a netlink socket; each runtime module exports one. */
export type OpenNetlink = (proto: number, opts?: OpenOptions) => NetlinkSocket;

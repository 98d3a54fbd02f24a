/**
 * The netlink socket logic both runtimes share: sequence numbers, request/ACK, dumps, chunked
 * batches and multicast subscriptions, over the handful of libc calls in {@linkcode Syscalls}.
 * `deno_ffi.ts` and `node_koffi.ts` only bind those calls.
 *
 * Why receiving never blocks the event loop: rtnetlink, genetlink and xfrm handle a request inside
 * the sender's sendmsg() call, so its ACK (or the first part of a dump) is already queued when
 * sendto() returns, and a dump's next part is produced inside the recvmsg() that drains the previous
 * one. Replies are therefore read with MSG_DONTWAIT on the JS thread, without a thread hop; only
 * when nothing is queued (multicast events, a slow family) does the socket wait for readability,
 * which each runtime does off the JS thread. Measured (tests/bench/netlink_bench.ts): a request
 * round trip takes 5–11 µs this way, 15–40 µs with every receive on a worker thread.
 *
 * @module
 */
import {
  align,
  decodeError,
  encodeMessage,
  NETLINK_ROUTE,
  NetlinkError,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_INTR,
  NLM_F_REQUEST,
  type NlMsg,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_HDRLEN,
  NLMSG_NOOP,
} from "../codec/mod.ts";
import { type Logger, nullLogger } from "../../log/logger.ts";
import { logDatagram } from "./hexdump.ts";
import { doneError, eventsLost, frameBatch, splitDatagram, takeAcks } from "./framing.ts";
import {
  EAGAIN,
  EINTR,
  EMSGSIZE,
  Endpoint,
  ENOBUFS,
  MSG_DONTWAIT,
  MSG_TRUNC,
  openFd,
  sockaddrNl,
  type Syscalls,
  sysError,
} from "./syscalls.ts";
import type {
  BatchFailure,
  BatchRequest,
  BatchResult,
  NetlinkSocket,
  NlRequest,
  OpenOptions,
  RequestOptions,
  SubscribeOptions,
} from "./types.ts";

/** Options of {@linkcode createNetlinkSocket} beyond the public ones. */
export interface SocketOptions extends OpenOptions {
  /** The first sequence number (tests use one near 2³² to see it wrap). Default 1. */
  firstSeq?: number;
  /**
   * How replies are received: `dontwait` (default) reads with MSG_DONTWAIT on the JS thread and
   * polls on another thread only when nothing is queued; `thread` does every receive as a blocking
   * recvfrom on another thread. Kept to measure the difference (see tests/bench/netlink_bench.ts).
   */
  recvMode?: "dontwait" | "thread";
}

/** Receive buffer of a request socket; iproute2 asks for the same. */
export const DEFAULT_RCVBUF = 1 << 20;
/** Receive buffer of a subscription: a burst of events must not overflow it (ENOBUFS → resync). */
export const DEFAULT_EVENT_RCVBUF = 4 << 20;
/** Send buffer: the kernel refuses (EMSGSIZE) one send larger than it, so it bounds a batch chunk. */
export const DEFAULT_SNDBUF = 1 << 20;
/**
 * What one queued ACK costs the receive buffer (its skb truesize), with headroom. Measured on this
 * kernel (6.18) by sending N NLMSG_NOOP|NLM_F_ACK in one send: 2520 ACKs fill a 2 MiB buffer, 832
 * bytes each, the same for error ACKs with NETLINK_CAP_ACK and a short extended-ACK message; 1024
 * leaves room for longer extended ACKs. The kernel handles every message of one send before we read
 * anything, so a batch chunk carries at most rcvbuf / ACK_TRUESIZE messages, or the ACKs beyond are
 * dropped and the socket reports ENOBUFS (10 000 messages in one send do exactly that).
 */
export const ACK_TRUESIZE = 1024;
/** How often a dump the kernel marked NLM_F_DUMP_INTR is retried before giving up. */
export const DUMP_INTR_RETRIES = 10;
/** The largest datagram we read: dump parts are at most 32 KiB, except huge links (many VFs). */
const RECV_BUFFER = 256 << 10;
/** The kernel refuses a send longer than sk_sndbuf minus this (netlink_sendmsg). */
const SNDBUF_SLACK = 32;
const KERNEL = sockaddrNl(0, 0);

const AGAIN = Symbol("again");
const LOST = Symbol("lost");

/**
 * Opens a netlink socket over the given syscalls: the shared implementation behind each runtime's
 * `openNetlink`.
 *
 * @throws {NetlinkError} when the socket cannot be created, bound or configured.
 */
export function createNetlinkSocket(sys: Syscalls, proto: number, opts: SocketOptions = {}): NetlinkSocket {
  return new Socket(sys, proto, opts);
}

class Socket implements NetlinkSocket {
  readonly #sys: Syscalls;
  readonly #proto: number;
  readonly #opts: SocketOptions;
  readonly #log: Logger;
  readonly #debug: boolean;
  readonly #main: Endpoint;
  readonly #subs = new Set<Endpoint>();
  /** Messages per batch chunk, so that their ACKs fit the receive buffer. */
  #acksPerChunk: number;
  /** Bytes per batch chunk, below the send buffer. */
  readonly #sendBudget: number;
  #seq: number;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(sys: Syscalls, proto: number, opts: SocketOptions) {
    this.#sys = sys;
    this.#proto = proto;
    this.#opts = opts;
    this.#log = opts.log ?? nullLogger;
    this.#debug = opts.debug ?? false;
    this.#seq = ((opts.firstSeq ?? 1) - 1) >>> 0;
    const { fd, portId, rcvbuf, sndbuf } = openFd(sys, proto, {
      netns: opts.netns,
      groups: [],
      rcvbuf: opts.rcvbuf ?? DEFAULT_RCVBUF,
      sndbuf: DEFAULT_SNDBUF,
      strictCheck: proto === NETLINK_ROUTE && (opts.strictCheck ?? true),
    });
    this.#main = new Endpoint(sys, fd, portId, RECV_BUFFER);
    this.#acksPerChunk = Math.max(1, Math.floor(rcvbuf / ACK_TRUESIZE));
    this.#sendBudget = sndbuf - SNDBUF_SLACK;
  }

  get portId(): number {
    return this.#main.portId;
  }

  #nextSeq = (): number => {
    this.#seq = (this.#seq + 1) >>> 0;
    if (this.#seq === 0) this.#seq = 1; // 0 is what multicast events carry
    return this.#seq;
  };

  /** Runs calls one after another: replies of two interleaved requests would be ours to sort. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("Netlink socket is closed"));
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  #send(ep: Endpoint, bytes: Uint8Array, op: string): void {
    if (this.#debug) logDatagram(this.#log, "send", bytes);
    for (;;) {
      const n = this.#sys.sendto(ep.fd, bytes, 0, KERNEL);
      if (n === -EINTR) continue;
      if (n < 0) throw sysError(op, n);
      return;
    }
  }

  /** Checks a received length against the buffer and dumps the datagram when debugging. */
  #received(ep: Endpoint, n: number, op: string): number {
    if (n > ep.buf.length) {
      const hint = `a ${n}-byte netlink datagram did not fit the ${ep.buf.length}-byte receive buffer`;
      throw new NetlinkError({ op, errno: EMSGSIZE, hint });
    }
    if (this.#debug) logDatagram(this.#log, "recv", ep.buf.subarray(0, n));
    return n;
  }

  /**
   * One datagram into `ep.buf` if one is queued: its length. Any failure but ENOBUFS and EINTR
   * counts as "nothing queued": under Deno, errno is read from JS after the call and the runtime may
   * rarely overwrite it first, so an unexpected errno must not be taken at its word; waiting for
   * readability sorts it out.
   */
  #recvNow(ep: Endpoint, op: string): number | typeof AGAIN | typeof LOST {
    for (;;) {
      const n = this.#sys.recvfrom(ep.fd, ep.buf, MSG_DONTWAIT | MSG_TRUNC);
      if (n >= 0) return this.#received(ep, n, op);
      if (n === -EINTR) continue;
      return n === -ENOBUFS ? LOST : AGAIN;
    }
  }

  /** The next datagram's length, waiting for one without blocking the event loop; LOST on ENOBUFS. */
  async #recv(ep: Endpoint, op: string): Promise<number | typeof LOST> {
    for (let idle = 0;; idle++) {
      if (ep.ac.signal.aborted) throw new Error(`Cannot ${op}: netlink socket closed`);
      if (this.#opts.recvMode === "thread" && this.#sys.recvfromAsync) {
        ep.waiting = true;
        const n = await this.#sys.recvfromAsync(ep.fd, ep.buf, MSG_TRUNC).finally(() => ep.waiting = false);
        if (n >= 0) return this.#received(ep, n, op);
      }
      const got = this.#recvNow(ep, op);
      if (got !== AGAIN) return got;
      if (idle > 1000) {
        throw new NetlinkError({ op, errno: EAGAIN, hint: "the socket stays readable but empty" });
      }
      await this.#wait(ep);
    }
  }

  async #wait(ep: Endpoint): Promise<void> {
    ep.waiting = true;
    try {
      await this.#sys.waitReadable(ep.fd, ep.ac.signal);
    } finally {
      ep.waiting = false;
      if (ep.ac.signal.aborted) ep.release();
    }
  }

  /**
   * Sends one message and hands the replies with its seq to `take` until it returns true (the
   * answer is complete). Messages for other seqs are dropped with a v(2) line.
   */
  async #exchange(msg: NlRequest, flags: number, op: string, take: (m: NlMsg) => boolean): Promise<void> {
    const ep = this.#main;
    const seq = this.#nextSeq();
    const m = { type: msg.type, flags: (msg.flags ?? 0) | flags, seq, pid: ep.portId, payload: msg.payload };
    this.#send(ep, encodeMessage(m), op);
    for (;;) {
      const n = await this.#recv(ep, op);
      if (n === LOST) {
        throw new NetlinkError({ op, errno: ENOBUFS, hint: "the reply overflowed the receive buffer" });
      }
      let done = false;
      for (const r of splitDatagram(ep.buf.slice(0, n))) {
        if (r.seq !== seq) {
          this.#log.v(2, `netlink: dropping message type ${r.type} seq ${r.seq}, waiting for seq ${seq}`);
        } else if (!done && r.type !== NLMSG_NOOP) {
          done = take(r);
        }
      }
      if (done) return;
    }
  }

  request(msg: NlRequest, opts?: RequestOptions): Promise<NlMsg[]> {
    const op = opts?.op ?? `send netlink message type ${msg.type}`;
    return this.#exclusive(async () => {
      const replies: NlMsg[] = [];
      await this.#exchange(msg, NLM_F_REQUEST | NLM_F_ACK, op, (m) => {
        if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE) return settle(m, op);
        replies.push(m);
        return false;
      });
      return replies;
    });
  }

  dump(msg: NlRequest, opts?: RequestOptions): Promise<NlMsg[]> {
    const op = opts?.op ?? `dump netlink message type ${msg.type}`;
    return this.#exclusive(async () => {
      for (let attempt = 1; attempt <= DUMP_INTR_RETRIES; attempt++) {
        const parts: NlMsg[] = [];
        let intr = false;
        await this.#exchange(msg, NLM_F_REQUEST | NLM_F_DUMP, op, (m) => {
          if (m.flags & NLM_F_DUMP_INTR) intr = true;
          if (m.type === NLMSG_ERROR || m.type === NLMSG_DONE) return settle(m, op);
          parts.push(m);
          return false;
        });
        if (!intr) return parts;
        this.#log.v(2, `netlink: ${op}: interrupted by a concurrent change (attempt ${attempt}), retrying`);
      }
      const hint = `the dump was interrupted ${DUMP_INTR_RETRIES} times in a row`;
      throw new NetlinkError({ op, errno: EINTR, hint });
    });
  }

  batch(msgs: BatchRequest[]): Promise<BatchResult> {
    return this.#exclusive(async () => {
      const ep = this.#main;
      const failed: BatchFailure[] = [];
      let ok = 0;
      let chunks = 0;
      let i = 0;
      while (i < msgs.length) {
        // Cut the chunk: at most #acksPerChunk messages, at most #sendBudget bytes (at least one).
        const first = i;
        let bytes = 0;
        while (i < msgs.length && i - first < this.#acksPerChunk) {
          const len = align(NLMSG_HDRLEN + msgs[i]!.payload.length);
          if (i > first && bytes + len > this.#sendBudget) break;
          bytes += len;
          i++;
        }
        const { buf, pending } = frameBatch(msgs, first, i, bytes, this.#nextSeq, ep.portId);
        chunks++;
        try {
          this.#send(ep, buf, `${msgs[first]!.op} (batch of ${i - first})`);
        } catch (e) {
          if (!(e instanceof NetlinkError)) throw e;
          for (const index of pending.values()) {
            failed.push({
              index,
              error: new NetlinkError({ op: msgs[index]!.op, errno: e.errno, cause: e }),
            });
          }
          continue;
        }
        let lost = false;
        while (pending.size > 0) {
          // After an overflow the ACKs that made it are all queued already: drain without waiting.
          const n = lost ? this.#recvNow(ep, "read batch ACKs") : await this.#recv(ep, "read batch ACKs");
          if (n === AGAIN) break;
          if (n === LOST) lost = true;
          else ok += takeAcks(ep.buf, ep.view, n, pending, msgs, failed, this.#log);
        }
        for (const index of pending.values()) {
          const hint = "its ACK was lost to a receive buffer overflow, so its outcome is unknown";
          failed.push({ index, error: new NetlinkError({ op: msgs[index]!.op, errno: ENOBUFS, hint }) });
        }
        if (lost) {
          this.#acksPerChunk = Math.max(1, this.#acksPerChunk >> 1);
          this.#log.warn(
            `netlink: batch ACKs overflowed the receive buffer; chunks now ${this.#acksPerChunk} messages`,
          );
        }
      }
      failed.sort((a, b) => a.index - b.index);
      return { ok, failed, chunks };
    });
  }

  subscribe(groups: number[], opts?: SubscribeOptions): AsyncIterable<NlMsg[]> {
    if (this.#closed) throw new Error("Netlink socket is closed");
    const { fd, portId } = openFd(this.#sys, this.#proto, {
      netns: this.#opts.netns,
      groups,
      rcvbuf: this.#opts.rcvbuf ?? DEFAULT_EVENT_RCVBUF,
      strictCheck: false,
    });
    const ep = new Endpoint(this.#sys, fd, portId, RECV_BUFFER);
    this.#subs.add(ep);
    const signal = opts?.signal;
    const onAbort = () => ep.shutdown();
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) ep.shutdown();
    const op = `receive netlink events (groups ${groups.join(",")})`;
    const events = async function* (self: Socket): AsyncGenerator<NlMsg[]> {
      try {
        while (!ep.ac.signal.aborted) {
          const n = self.#recvNow(ep, op);
          if (n === AGAIN) await self.#wait(ep);
          else if (n === LOST) yield [eventsLost()];
          else {
            const msgs = splitDatagram(ep.buf.slice(0, n)).filter((m) => m.type !== NLMSG_NOOP);
            if (msgs.length > 0) yield msgs;
          }
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        self.#subs.delete(ep);
        ep.shutdown();
      }
    };
    return events(this);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#main.shutdown();
    for (const ep of this.#subs) ep.shutdown();
    this.#subs.clear();
  }
}

/** Ends an exchange on NLMSG_ERROR or NLMSG_DONE: true for an ACK or a clean DONE, else throws. */
function settle(m: NlMsg, op: string): true {
  if (m.type === NLMSG_DONE) {
    const err = doneError(m, op);
    if (err) throw err;
    return true;
  }
  const e = decodeError(m);
  if (e.errno !== 0) {
    throw new NetlinkError({ op, errno: e.errno, kernelMessage: e.message, offset: e.offset });
  }
  return true;
}

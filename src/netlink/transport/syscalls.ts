/**
 * The libc calls a netlink socket needs ({@linkcode Syscalls}, bound by each runtime), and what the
 * shared socket does with them before any message flows: create the socket inside a network
 * namespace, bind it, size its buffers, set the netlink options; and close it only when no wait on
 * it is in flight.
 *
 * @module
 */
import {
  NETLINK_ADD_MEMBERSHIP,
  NETLINK_CAP_ACK,
  NETLINK_EXT_ACK,
  NETLINK_GET_STRICT_CHK,
  NetlinkError,
  SOL_NETLINK,
} from "../codec/mod.ts";

/**
 * The libc calls the socket needs. Each returns its result, or `-errno` on failure (the adapter
 * reads errno right after the call), so the shared logic sees raw syscall semantics.
 */
export interface Syscalls {
  socket(domain: number, type: number, protocol: number): number;
  /** bind(2) with a 12-byte sockaddr_nl. */
  bind(fd: number, addr: Uint8Array): number;
  /** getsockname(2) into a 12-byte sockaddr_nl. */
  getsockname(fd: number, addr: Uint8Array): number;
  /** setsockopt(2) with an int value. */
  setsockopt(fd: number, level: number, name: number, value: number): number;
  /** getsockopt(2) of an int value: the value, or -errno. */
  getsockopt(fd: number, level: number, name: number): number;
  /** sendto(2) with a 12-byte sockaddr_nl. */
  sendto(fd: number, buf: Uint8Array, flags: number, addr: Uint8Array): number;
  /** recvfrom(2) without an address. */
  recvfrom(fd: number, buf: Uint8Array, flags: number): number;
  /**
   * recvfrom(2) on another thread (Deno `nonblocking` FFI), for the `recvMode: "thread"` variant
   * the benchmark compares. errno is not available there: it returns -1 on any failure.
   */
  recvfromAsync?(fd: number, buf: Uint8Array, flags: number): Promise<number>;
  /** open(2) of a path. */
  open(path: string, flags: number): number;
  setns(fd: number, nstype: number): number;
  close(fd: number): number;
  /**
   * Resolves when `fd` is readable (or has an error pending), or as soon as `signal` aborts. Must
   * not block the JS thread: poll on another thread, or an event-loop watcher.
   */
  waitReadable(fd: number, signal: AbortSignal): Promise<void>;
}

// Linux values (x86_64 and aarch64 agree): socket.h, fcntl.h, sched.h, asm-generic/errno*.h.
export const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const CLONE_NEWNET = 0x40000000;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SO_RCVBUF = 8;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
const EPERM = 1;
export const EINTR = 4;
export const EAGAIN = 11;
export const EMSGSIZE = 90;
const ENOPROTOOPT = 92;
export const ENOBUFS = 105;

/** sockaddr_nl (netlink.h): family, pad, nl_pid, nl_groups. */
export function sockaddrNl(pid: number, groups: number): Uint8Array {
  const b = new Uint8Array(12);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF_NETLINK, true);
  dv.setUint32(4, pid, true);
  dv.setUint32(8, groups, true);
  return b;
}

/** A NetlinkError from a failed syscall's `-errno` result. */
export function sysError(op: string, result: number, hint?: string): NetlinkError {
  return new NetlinkError({ op, errno: -result, hint });
}

/**
 * Runs `fn` (which creates a socket and returns its fd) inside the named network namespace, on this
 * thread, and returns to the original namespace even when `fn` throws. A socket keeps the namespace
 * it was created in, so only the creation needs to happen there. Without a name, just runs `fn`.
 *
 * @throws {NetlinkError} when the namespace cannot be opened or entered.
 * @throws {RangeError} for a name that is not a plain file name.
 */
export function inNetns(sys: Syscalls, name: string | undefined, fn: () => number): number {
  if (name === undefined) return fn();
  if (name === "" || name === "." || name === ".." || /[/\0]/.test(name)) {
    throw new RangeError(
      `Network namespace name "${name}" is invalid: must be a file name in /var/run/netns`,
    );
  }
  const target = sys.open(`/var/run/netns/${name}`, O_RDONLY | O_CLOEXEC);
  if (target < 0) throw sysError(`open network namespace ${name}`, target);
  const self = sys.open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    sys.close(target);
    throw sysError("open the current network namespace", self);
  }
  try {
    const r = sys.setns(target, CLONE_NEWNET);
    if (r < 0) throw sysError(`enter network namespace ${name}`, r);
    let fd = -1;
    try {
      fd = fn();
      return fd;
    } finally {
      const back = sys.setns(self, CLONE_NEWNET);
      if (back < 0) {
        if (fd >= 0) sys.close(fd);
        // deno-lint-ignore no-unsafe-finally -- the thread is in the wrong namespace: nothing may go on.
        throw new Error(`Cannot return from network namespace ${name} to the original one: errno ${-back}`);
      }
    }
  } finally {
    sys.close(self);
    sys.close(target);
  }
}

/** What {@linkcode openFd} sets up. */
export interface FdOptions {
  netns: string | undefined;
  /** Multicast groups to join (NETLINK_ADD_MEMBERSHIP). */
  groups: number[];
  rcvbuf: number;
  /** Send buffer, and the request options (extended ACKs, capped ACKs); absent for event sockets. */
  sndbuf?: number;
  /** NETLINK_GET_STRICT_CHK (requests only). */
  strictCheck: boolean;
}

/**
 * Creates, binds and configures one netlink socket. Returns it with its port id and the effective
 * buffer sizes (the kernel doubles what it is asked for, to account for its own overhead).
 *
 * @throws {NetlinkError} when any step fails; the fd is closed then.
 */
export function openFd(sys: Syscalls, proto: number, o: FdOptions) {
  const where = o.netns === undefined ? "" : ` in network namespace ${o.netns}`;
  const fd = inNetns(sys, o.netns, () => {
    const fd = sys.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
    if (fd < 0) throw sysError(`open netlink socket (protocol ${proto})${where}`, fd);
    return fd;
  });
  try {
    const addr = sockaddrNl(0, 0);
    let r = sys.bind(fd, addr);
    if (r < 0) throw sysError("bind netlink socket", r);
    r = sys.getsockname(fd, addr);
    if (r < 0) throw sysError("read netlink socket address", r);
    const portId = new DataView(addr.buffer).getUint32(4, true);
    const setInt = (level: number, name: number, value: number, what: string, optional = false) => {
      const r = sys.setsockopt(fd, level, name, value);
      if (r < 0 && !(optional && r === -ENOPROTOOPT)) throw sysError(`set ${what} on netlink socket`, r);
    };
    const setBuf = (force: number, plain: number, bytes: number, what: string): number => {
      // The FORCE variants ignore net.core.rmem_max/wmem_max but need CAP_NET_ADMIN.
      if (sys.setsockopt(fd, SOL_SOCKET, force, bytes) === -EPERM) setInt(SOL_SOCKET, plain, bytes, what);
      const got = sys.getsockopt(fd, SOL_SOCKET, plain);
      if (got < 0) throw sysError(`read ${what} of netlink socket`, got);
      return got;
    };
    const rcvbuf = setBuf(SO_RCVBUFFORCE, SO_RCVBUF, o.rcvbuf, "SO_RCVBUF");
    let sndbuf = 0;
    if (o.sndbuf !== undefined) {
      sndbuf = setBuf(SO_SNDBUFFORCE, SO_SNDBUF, o.sndbuf, "SO_SNDBUF");
      // Optional: kernels before 4.12 lack extended ACKs; the errors are then plain errnos.
      setInt(SOL_NETLINK, NETLINK_EXT_ACK, 1, "NETLINK_EXT_ACK", true);
      setInt(SOL_NETLINK, NETLINK_CAP_ACK, 1, "NETLINK_CAP_ACK", true);
      if (o.strictCheck) setInt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1, "NETLINK_GET_STRICT_CHK", true);
    }
    for (const g of o.groups) setInt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g, `multicast group ${g}`);
    return { fd, portId, rcvbuf, sndbuf };
  } catch (e) {
    sys.close(fd);
    throw e;
  }
}

/** One open fd with its receive buffer; closed only when no wait on it is in flight. */
export class Endpoint {
  readonly ac = new AbortController();
  readonly buf: Uint8Array;
  readonly view: DataView;
  waiting = false;
  #released = false;

  constructor(readonly sys: Syscalls, readonly fd: number, readonly portId: number, bufSize: number) {
    this.buf = new Uint8Array(bufSize);
    this.view = new DataView(this.buf.buffer);
  }

  /** Ends the fd's use: wakes a wait in flight, which then closes it; otherwise closes it now. */
  shutdown(): void {
    this.ac.abort();
    if (!this.waiting) this.release();
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.sys.close(this.fd);
  }
}

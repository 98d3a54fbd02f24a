/**
 * What the udp data path needs from the C library, independent of the runtime that binds it:
 * the struct layouts (computed from the pointer size and byte order, never hard-coded for amd64),
 * the Linux constants, and the two interfaces the runtime adapters implement
 * ({@linkcode LoopSys} for the forwarding loop, {@linkcode DataPath} for the backend).
 *
 * Layouts, from the kernel's uapi headers and glibc's bits/socket.h (musl agrees byte for byte on
 * little-endian targets, where its `int` + padding equals the low half of a `size_t`):
 *
 *   struct iovec   { void *iov_base; size_t iov_len; }                       2P
 *   struct msghdr  { void *name; socklen_t namelen; struct iovec *iov; size_t iovlen;
 *                    void *control; size_t controllen; int flags; }          align(6P + 4, P)
 *   struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; }           align(msghdr + 4, P)
 *   struct ifreq   { char name[16]; union { …, struct ifmap (2 longs + 5 bytes) } }
 *   struct pollfd  { int fd; short events; short revents; }                  8
 *
 * With P = 8 (x86_64, aarch64, riscv64): iovec 16, msghdr 56, mmsghdr 64, ifreq 40. With P = 4:
 * 8, 28, 32, 32.
 *
 * @module
 */
import { ERRNO_TEXT, errnoName } from "../../netlink/codec/errno.ts";
import type { PeerRoute } from "./packet.ts";

/** Linux constants shared by every architecture Deno runs on (asm-generic and x86 agree). */
export const AF_INET = 2;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const O_RDWR = 2;
export const O_WRONLY = 1;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const POLLIN = 0x1;
export const POLLOUT = 0x4;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EPERM = 1;
export const EINTR = 4;
export const EAGAIN = 11;
export const EADDRINUSE = 98;
export const IFF_TUN = 0x0001;
export const IFF_NO_PI = 0x1000;
/** Each TUN read and write starts with a `struct virtio_net_hdr` (linux/virtio_net.h). */
export const IFF_VNET_HDR = 0x4000;
export const IFNAMSIZ = 16;
/** TUNSETOFFLOAD flags (linux/if_tun.h): what the kernel may hand us unsegmented. */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
/** `struct virtio_net_hdr` (10 bytes, host byte order for a TUN device): flags, gso_type, … */
export const VIRTIO_NET_HDR_LEN = 10;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const SOL_UDP = 17;
/** UDP GSO (Linux 4.18): one send, segmented by the kernel at the cmsg's u16 size. */
export const UDP_SEGMENT = 103;
/** UDP GRO (Linux 5.0): one receive of coalesced datagrams, the segment size in an int cmsg. */
export const UDP_GRO = 104;
export const ENOPROTOOPT = 92;

/** The ioctl direction bits: asm-generic (x86, arm64, riscv, loongarch, s390) vs powerpc/mips/sparc. */
const IOC_GENERIC = { write: 1, dirShift: 30, sizeBits: 14 };
const IOC_OTHER = { write: 4, dirShift: 29, sizeBits: 13 };
const OTHER_IOC_ARCHES = new Set(["powerpc", "powerpc64", "ppc64", "ppc64le", "mips", "mips64", "sparc64"]);

/** `_IOW(type, nr, size)` for the architecture (Deno's `Deno.build.arch` names or uname's). */
export function ioctlWrite(type: number, nr: number, size: number, arch: string): number {
  const d = OTHER_IOC_ARCHES.has(arch) ? IOC_OTHER : IOC_GENERIC;
  if (size >= 1 << d.sizeBits) {
    throw new RangeError(`ioctl argument size ${size} does not fit ${d.sizeBits} bits`);
  }
  return ((d.write << d.dirShift) | (size << 16) | (type << 8) | nr) >>> 0;
}

/** `TUNSETIFF = _IOW('T', 202, int)` (linux/if_tun.h): 0x400454ca on x86_64 and aarch64. */
export function tunSetIff(arch: string): number {
  return ioctlWrite("T".charCodeAt(0), 202, 4, arch);
}

/** `TUNSETOFFLOAD = _IOW('T', 208, unsigned int)`: 0x400454d0 on x86_64 and aarch64. */
export function tunSetOffload(arch: string): number {
  return ioctlWrite("T".charCodeAt(0), 208, 4, arch);
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/** Byte offsets and sizes of the structs the loop fills, for a pointer size. */
export interface StructLayout {
  ptrSize: number;
  littleEndian: boolean;
  iovec: number;
  /** Offsets inside struct msghdr. */
  name: number;
  namelen: number;
  iov: number;
  iovlen: number;
  control: number;
  controllen: number;
  flags: number;
  msghdr: number;
  /** Offset of `msg_len` inside struct mmsghdr, and the size of one. */
  msgLen: number;
  mmsghdr: number;
  /** struct ifreq: the flags field follows the 16-byte name. */
  ifreq: number;
  ifrFlags: number;
  /** struct sockaddr_in. */
  sockaddrIn: number;
  /** struct cmsghdr { size_t len; int level; int type; }: where the data starts. */
  cmsgData: number;
  /** CMSG_SPACE of a 4-byte payload: what one int-sized control message takes. */
  cmsgSpace4: number;
}

/** The host's byte order. */
export function hostLittleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** The layouts for pointers of `ptrSize` bytes (8 on every 64-bit Linux). */
export function structLayout(ptrSize: number, littleEndian = hostLittleEndian()): StructLayout {
  if (ptrSize !== 4 && ptrSize !== 8) throw new RangeError(`Pointer size ${ptrSize} is not 4 or 8`);
  const P = ptrSize;
  const msghdr = align(6 * P + 4, P);
  const ifmap = align(2 * P + 5, P); // unsigned long mem_start, mem_end; u16 base_addr; u8 irq, dma, port
  return {
    ptrSize,
    littleEndian,
    iovec: 2 * P,
    name: 0,
    namelen: P,
    iov: 2 * P,
    iovlen: 3 * P,
    control: 4 * P,
    controllen: 5 * P,
    flags: 6 * P,
    msghdr,
    msgLen: msghdr,
    mmsghdr: align(msghdr + 4, P),
    ifreq: IFNAMSIZ + Math.max(16, ifmap, P),
    ifrFlags: IFNAMSIZ,
    sockaddrIn: 16,
    cmsgData: align(P + 8, P),
    cmsgSpace4: align(P + 8, P) + align(4, P),
  };
}

/** A `struct ifreq` asking for a TUN device named `pattern` (`flannel%d`: the kernel picks the number). */
export function encodeIfreq(pattern: string, flags: number, layout: StructLayout): Uint8Array {
  const name = new TextEncoder().encode(pattern);
  if (name.length >= IFNAMSIZ) {
    throw new RangeError(`Device name "${pattern}" is ${name.length} bytes, must be at most ${IFNAMSIZ - 1}`);
  }
  const b = new Uint8Array(layout.ifreq);
  b.set(name);
  new DataView(b.buffer).setUint16(layout.ifrFlags, flags, layout.littleEndian);
  return b;
}

/** The device name the kernel wrote back into a `struct ifreq`. */
export function decodeIfreqName(b: Uint8Array): string {
  const end = b.subarray(0, IFNAMSIZ).indexOf(0);
  return new TextDecoder().decode(b.subarray(0, end < 0 ? IFNAMSIZ : end));
}

/** A `struct sockaddr_in` for `addr` (uint32) and `port`. */
export function encodeSockaddrIn(addr: number, port: number, layout: StructLayout): Uint8Array {
  const b = new Uint8Array(layout.sockaddrIn);
  const dv = new DataView(b.buffer);
  dv.setUint16(0, AF_INET, layout.littleEndian); // sin_family: host order
  dv.setUint16(2, port, false); // sin_port, sin_addr: network order
  dv.setUint32(4, addr >>> 0, false);
  return b;
}

/**
 * The calls the forwarding loop makes, per packet or per batch. Each returns its result or
 * `-errno`. Bound once per thread (errno is thread-local), allocation-free: lengths travel in the
 * iovecs, never as arguments, so no 64-bit integer is boxed per packet.
 */
export interface LoopSys {
  readv(fd: number, iov: Uint8Array, count: number): number;
  writev(fd: number, iov: Uint8Array, count: number): number;
  sendmmsg(fd: number, hdrs: Uint8Array, count: number, flags: number): number;
  recvmmsg(fd: number, hdrs: Uint8Array, count: number, flags: number): number;
  /** sendmsg(2) of one msghdr (UDP GSO sends: many iovecs and a UDP_SEGMENT control message). */
  sendmsg(fd: number, hdr: Uint8Array, flags: number): number;
  /** Blocks (on this thread) until one of the pollfds is ready or `timeoutMs` passes (-1: forever). */
  poll(fds: Uint8Array, count: number, timeoutMs: number): number;
  /** The address of the buffer's first byte; stable, since ArrayBuffers here never move or resize. */
  address(buf: Uint8Array): bigint;
}

/** Packet counters of the data path, summed over its threads. */
export interface DataPathStats {
  /** Packets read from the TUN device. */
  tunRx: number;
  /** Packets sent to peers over UDP. */
  udpTx: number;
  /** Datagrams received over UDP. */
  udpRx: number;
  /** Packets written into the TUN device (received from peers, plus ICMP errors). */
  tunTx: number;
  /** Write calls that carried them: fewer when consecutive TCP segments went in as one. */
  tunWrites: number;
  /** TUN packets to no known subnet. */
  noRoute: number;
  /** ICMP net-unreachable replies written back into the TUN device. */
  icmpSent: number;
  /** Packets dropped because their TTL ran out. */
  ttlExpired: number;
  /** Packets dropped as malformed (not IPv4, truncated). */
  malformed: number;
  /** Failed syscalls (other than "would block"); `lastErrno` tells which. */
  errors: number;
  lastErrno: number;
  /** Times the loop blocked waiting for packets. */
  waits: number;
}

/** Every counter at zero. */
export function zeroStats(): DataPathStats {
  return {
    tunRx: 0,
    udpTx: 0,
    udpRx: 0,
    tunTx: 0,
    tunWrites: 0,
    noRoute: 0,
    icmpSent: 0,
    ttlExpired: 0,
    malformed: 0,
    errors: 0,
    lastErrno: 0,
    waits: 0,
  };
}

/** How a data path is opened. */
export interface DataPathOptions {
  /** The TUN name to ask for; `flannel%d` lets the kernel pick the number, as upstream. */
  tunName: string;
  /** The TUN address (our lease's subnet IP, uint32): the source of ICMP errors. */
  tunAddr: number;
  /** The address and port the UDP socket binds (the interface address, Port). */
  bindAddr: number;
  port: number;
  /** The largest packet: the TUN device's MTU. */
  mtu: number;
  /** The largest number of peers the table must hold (the subnets that fit the Network). */
  maxPeers: number;
  /** Open the devices inside this named network namespace (tests); the current one when absent. */
  netns?: string;
  /**
   * Where the loop runs: `"workers"` (default) one Worker thread per direction, so the ACKs
   * coming back never wait behind a 64 KiB send; `"worker"` one thread polling both
   * directions; `"main"` the JS thread, waiting through a pool thread.
   */
  threads?: "worker" | "workers" | "main";
  /** Messages per recvmmsg/sendmmsg; default {@linkcode DEFAULT_BATCH}. */
  batch?: number;
  /**
   * Let the kernel hand over and take whole TCP segments of up to 64 KiB (TUN offloads, UDP GSO
   * and GRO), segmenting and coalescing in the loop; default true. False: one packet per call.
   */
  offload?: boolean;
}

/** Packets per recvmmsg/sendmmsg call: past 64 the gain per call is under 1 % here. */
export const DEFAULT_BATCH = 64;

/** A running data path: the TUN device, the UDP socket and the loop between them. */
export interface DataPath {
  /** The name the kernel gave the TUN device (`flannel0`). */
  readonly tunName: string;
  /** The UDP port actually bound. */
  readonly port: number;
  /** What the data path could enable, for the log: `tso4`, `udp-gso`, `udp-gro`, `loop:worker`, … */
  readonly features: readonly string[];
  /**
   * Settles with the error when a loop thread stopped on its own (a bug, a crash): the TUN device
   * is still up but nothing moves, so the owner must close and reopen. Never settles otherwise.
   */
  readonly failed: Promise<Error>;
  /** Replaces the peer table; takes effect before the next packet each thread handles. */
  setPeers(peers: readonly PeerRoute[]): void;
  stats(): DataPathStats;
  /** Writes a sysctl of the TUN device (`net/ipv4/conf/<tun>/<name>`) in the data path's namespace. */
  setDeviceSysctl(name: string, value: string): void;
  /** Stops the loop, closes the socket and the TUN device (which removes it). Idempotent. */
  close(): Promise<void>;
}

/** Opens a data path (the runtime adapter: `openDenoDataPath` in sys_deno.ts). */
export type OpenDataPath = (opts: DataPathOptions) => Promise<DataPath>;

const MORE_ERRNO_TEXT: Readonly<Record<string, string>> = {
  EADDRINUSE: "Address already in use",
  EBADF: "Bad file descriptor",
  EIO: "Input/output error",
  EMFILE: "Too many open files",
};

/**
 * A system call failed: `Cannot bind the UDP socket to 192.0.2.11:8285: Address already in use
 * (EADDRINUSE)`. Classify by `errnoName`, never by the text.
 */
export class SyscallError extends Error {
  override name = "SyscallError";
  readonly op: string;
  readonly errno: number;
  readonly errnoName: string;

  constructor(op: string, errno: number, hint?: string) {
    const name = errnoName(errno);
    const text = ERRNO_TEXT[name] ?? MORE_ERRNO_TEXT[name];
    super(`Cannot ${op}: ${text ? `${text} (${name})` : name}${hint ? `; ${hint}` : ""}`);
    this.op = op;
    this.errno = errno;
    this.errnoName = name;
  }
}

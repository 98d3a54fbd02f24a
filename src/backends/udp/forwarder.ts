/**
 * The udp backend's forwarding loop: packets from the TUN device to peers over UDP, and back.
 *
 * TUN → UDP: `readv` one packet per call (a TUN device has no batch read) into the next slot of
 * a ring, look its destination up in the peer table (a miss answers ICMP net unreachable into the
 * TUN device), decrement the TTL, aim the slot's `sockaddr_in` at the peer, and when the TUN
 * device is drained or the ring is full send the whole ring with one `sendmmsg`.
 * UDP → TUN: one `recvmmsg` fills up to a ring of datagrams; each is TTL-checked and written into
 * the TUN device with `writev`. Nothing is allocated per packet: slots, iovecs, message headers
 * and addresses live in one ArrayBuffer per direction, set up once, and lengths travel in the
 * iovecs so no 64-bit integer is boxed.
 *
 * This is the path without offloads; with them (the default) offload.ts builds both pumps, and
 * this file supplies the shared table, the counters and the loop around them.
 *
 * The peer table and the counters live in SharedArrayBuffers, so the loop may run on a Worker
 * thread: the backend rewrites the table (a seqlock: the sequence is odd while it writes) and the
 * loop picks it up before its next batch.
 *
 * Everything listed in {@linkcode LOOP_FUNCTIONS} also runs inside a Worker built from the
 * functions' source text (a bundled binary has no second module file to start a Worker from):
 * those functions may use only globals, their parameters, and each other. The unit tests run the
 * loop from that text, so a stray reference to a module-level name fails there.
 *
 * @module
 */
import {
  csumFold,
  decrementTTL,
  icmpNetUnreachable,
  ipv4Dst,
  ipv4HeaderChecksum,
  isIPv4,
  onesSum,
  type PeerRoute,
  PeerTable,
} from "./packet.ts";
import type { DataPathStats, LoopSys, StructLayout } from "./sys.ts";
import { checksumWasmBytes, wasmChecksum } from "./csum_wasm.ts";

/** Counters of one direction; each direction owns a 128-byte block (no false sharing). */
export const STAT_BLOCK = 16;
/** Index of a counter inside a block. */
export const STAT = {
  /** Packets taken in (TUN reads, or UDP datagrams). */
  rx: 0,
  /** Packets passed on (UDP sends, or TUN writes). */
  tx: 1,
  noRoute: 2,
  icmpSent: 3,
  ttlExpired: 4,
  malformed: 5,
  errors: 6,
  lastErrno: 7,
  waits: 8,
  /** Write calls into the TUN device (fewer than packets when segments were coalesced). */
  writes: 9,
} as const;
/** Block 0: TUN → UDP. Block 1: UDP → TUN. */
export const STAT_BLOCKS = 2;

/** What one forwarder needs; plain data, so it can be posted to a Worker. */
export interface ForwarderConfig {
  tunFd: number;
  udpFd: number;
  /** The TUN address (uint32), the source of ICMP errors. */
  tunAddr: number;
  /** Packets per ring (per sendmmsg/recvmmsg). */
  batch: number;
  /** Bytes per slot; at least the MTU. */
  slotSize: number;
  layout: StructLayout;
  /** The shared peer table ({@linkcode writeSharedPeers}). */
  peers: Int32Array;
  /** The shared counters, {@linkcode STAT_BLOCKS} blocks of {@linkcode STAT_BLOCK}. */
  stats: Float64Array;
  /**
   * Present when the TUN device was opened with IFF_VNET_HDR and TSO (offload.ts runs the loop):
   * whether the socket can send with UDP_SEGMENT and receives with UDP_GRO.
   */
  offload?: { udpSegment: boolean; udpGro: boolean };
}

/** The two pumps and the table refresh; see {@linkcode createForwarder}. */
export interface Forwarder {
  /** Moves up to one ring of packets TUN → UDP. Returns packets read, or -1 after a hard error. */
  pumpTun(): number;
  /** Moves up to one ring of datagrams UDP → TUN. Returns datagrams received, or -1 after a hard error. */
  pumpUdp(): number;
  /** Adopts a new peer table if the backend wrote one. */
  syncPeers(): void;
  /** Counts one blocking wait. */
  waited(): void;
  readonly table: PeerTable;
}

/** Int32 slots of the shared peer table: sequence, count, then (net, mask, addr, port) per peer. */
export function sharedPeersLength(maxPeers: number): number {
  return 2 + 4 * maxPeers;
}

/**
 * Writes the peer table for the loop to pick up. Single writer (the backend).
 *
 * @throws {RangeError} when there are more peers than the table holds.
 */
export function writeSharedPeers(shared: Int32Array, routes: readonly PeerRoute[]): void {
  const cap = (shared.length - 2) / 4;
  if (routes.length > cap) {
    throw new RangeError(`Cannot hold ${routes.length} peers in the udp peer table: it has room for ${cap}`);
  }
  Atomics.add(shared, 0, 1); // odd: being written
  shared[1] = routes.length;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    shared[2 + 4 * i] = r.net | 0;
    shared[3 + 4 * i] = r.mask | 0;
    shared[4 + 4 * i] = r.addr | 0;
    shared[5 + 4 * i] = r.port | 0;
  }
  Atomics.add(shared, 0, 1); // even: complete
}

/**
 * Loads the shared peer table into `table` when it changed since sequence `seen` and is not being
 * written; returns the sequence now held. Runs in the loop's thread.
 */
export function readSharedPeers(shared: Int32Array, seen: number, table: PeerTable): number {
  const seq = Atomics.load(shared, 0);
  if (seq === seen || (seq & 1) !== 0) return seen;
  const count = shared[1]!;
  const routes: PeerRoute[] = [];
  for (let i = 0; i < count; i++) {
    routes.push({
      net: shared[2 + 4 * i]! >>> 0,
      mask: shared[3 + 4 * i]! >>> 0,
      addr: shared[4 + 4 * i]! >>> 0,
      port: shared[5 + 4 * i]! >>> 0,
    });
  }
  if (Atomics.load(shared, 0) !== seq) return seen; // rewritten meanwhile: take it next time
  table.set(routes);
  return seq;
}

/** Sums the shared counters into the stats the backend reports. */
export function readStats(stats: Float64Array): DataPathStats {
  const t = (k: number) => stats[k]!;
  const u = (k: number) => stats[STAT_BLOCK + k]!;
  return {
    tunRx: t(STAT.rx),
    udpTx: t(STAT.tx),
    udpRx: u(STAT.rx),
    tunTx: u(STAT.tx) + t(STAT.icmpSent),
    tunWrites: u(STAT.writes) + t(STAT.icmpSent),
    noRoute: t(STAT.noRoute),
    icmpSent: t(STAT.icmpSent),
    ttlExpired: t(STAT.ttlExpired) + u(STAT.ttlExpired),
    malformed: t(STAT.malformed) + u(STAT.malformed),
    errors: t(STAT.errors) + u(STAT.errors),
    lastErrno: u(STAT.lastErrno) || t(STAT.lastErrno),
    waits: t(STAT.waits) + u(STAT.waits),
  };
}

/** Builds the two rings over `sys` (which must be bound on the calling thread). */
export function createForwarder(sys: LoopSys, cfg: ForwarderConfig): Forwarder {
  // Linux values (asm-generic and x86 agree); repeated here because this text runs in a Worker.
  const EINTR = 4, EAGAIN = 11, MSG_DONTWAIT = 0x40, MSG_TRUNC = 0x20, AF_INET = 2;
  // The counter indexes of the module's STAT table and its block size, for the same reason.
  const RX = 0, TX = 1, NO_ROUTE = 2, ICMP_SENT = 3, TTL_EXPIRED = 4, MALFORMED = 5, ERRORS = 6;
  const LAST_ERRNO = 7, WAITS = 8, WRITES = 9, T = 0, U = 16;
  const { batch: B, slotSize: S, layout: L, tunFd, udpFd, tunAddr, stats } = cfg;
  const P = L.ptrSize, le = L.littleEndian;
  const table = new PeerTable();
  let seenSeq = -1;
  const syncPeers = () => void (seenSeq = readSharedPeers(cfg.peers, seenSeq, table));

  /** One direction's ArrayBuffer: slots, then message headers, iovecs and sockaddrs. */
  function ring(withNames: boolean) {
    const hdrBase = B * S;
    const iovBase = hdrBase + B * L.mmsghdr;
    const nameBase = iovBase + B * L.iovec;
    const buf = new ArrayBuffer(nameBase + B * L.sockaddrIn);
    const dv = new DataView(buf);
    const base = sys.address(new Uint8Array(buf));
    const putPtr = (off: number, v: bigint) =>
      P === 8 ? dv.setBigUint64(off, v, le) : dv.setUint32(off, Number(v), le);
    /** Offset of the low 32 bits of a size_t (its high half stays 0). */
    const sizeAt = (off: number) => off + (P === 8 && !le ? 4 : 0);
    const slots: Uint8Array[] = [];
    const iovs: Uint8Array[] = [];
    const iovLen: number[] = [];
    const hdrFrom: Uint8Array[] = [];
    for (let i = 0; i < B; i++) {
      slots.push(new Uint8Array(buf, i * S, S));
      const iov = iovBase + i * L.iovec;
      putPtr(iov, base + BigInt(i * S));
      iovLen.push(sizeAt(iov + P));
      dv.setUint32(iovLen[i]!, S, le);
      iovs.push(new Uint8Array(buf, iov, L.iovec));
      const h = hdrBase + i * L.mmsghdr;
      if (withNames) {
        const name = nameBase + i * L.sockaddrIn;
        dv.setUint16(name, AF_INET, le);
        putPtr(h + L.name, base + BigInt(name));
        dv.setUint32(h + L.namelen, L.sockaddrIn, le);
      }
      putPtr(h + L.iov, base + BigInt(iov));
      dv.setUint32(sizeAt(h + L.iovlen), 1, le);
      hdrFrom.push(new Uint8Array(buf, h, (B - i) * L.mmsghdr));
    }
    return { dv, slots, iovs, iovLen, hdrFrom, hdrBase, nameBase };
  }
  const tx = ring(true);
  const rx = ring(false);
  const icmpBuf = new ArrayBuffer(128 + L.iovec);
  const icmp = new Uint8Array(icmpBuf, 0, 128);
  const icmpIov = new Uint8Array(icmpBuf, 128, L.iovec);
  {
    const dv = new DataView(icmpBuf);
    const base = sys.address(new Uint8Array(icmpBuf));
    if (P === 8) dv.setBigUint64(128, base, le);
    else dv.setUint32(128, Number(base), le);
  }
  const icmpDv = new DataView(icmpBuf);
  const icmpLenAt = 128 + P + (P === 8 && !le ? 4 : 0);

  const fail = (block: number, errno: number) => {
    stats[block + ERRORS]!++;
    stats[block + LAST_ERRNO] = errno;
  };

  /** Sends ring slots [0, n) with as few sendmmsg calls as the kernel allows. */
  function flush(n: number): number {
    let off = 0, sent = 0;
    while (off < n) {
      const r = sys.sendmmsg(udpFd, tx.hdrFrom[off]!, n - off, 0);
      if (r > 0) {
        off += r;
        sent += r;
      } else if (r !== -EINTR) {
        fail(T, -r);
        off++; // the kernel refused the message at `off` (sendmmsg reports it on the next call): skip it
      }
    }
    return sent;
  }

  function pumpTun(): number {
    let n = 0, seen = 0, noRoute = 0, icmpSent = 0, ttl = 0, bad = 0, hard = false;
    while (n < B) {
      tx.dv.setUint32(tx.iovLen[n]!, S, le);
      const len = sys.readv(tunFd, tx.iovs[n]!, 1);
      if (len < 0) {
        if (len === -EINTR) continue;
        if (len !== -EAGAIN) {
          fail(T, -len);
          hard = true;
        }
        break;
      }
      seen++;
      const p = tx.slots[n]!;
      if (!isIPv4(p, len)) {
        bad++;
        continue;
      }
      // A miss may be a peer added since this ring began: look at the shared table once more.
      const r = table.lookup(ipv4Dst(p)) ?? (syncPeers(), table.lookup(ipv4Dst(p)));
      if (r === undefined) {
        noRoute++;
        const m = icmpNetUnreachable(p, len, tunAddr, icmp);
        if (m > 0) {
          icmpDv.setUint32(icmpLenAt, m, le);
          const w = sys.writev(tunFd, icmpIov, 1);
          if (w < 0) fail(T, -w);
          else icmpSent++;
        }
        continue;
      }
      if (!decrementTTL(p)) {
        ttl++;
        continue;
      }
      const name = tx.nameBase + n * L.sockaddrIn;
      tx.dv.setUint16(name + 2, r.port, false);
      tx.dv.setUint32(name + 4, r.addr, false);
      tx.dv.setUint32(tx.iovLen[n]!, len, le);
      n++;
    }
    const sent = n > 0 ? flush(n) : 0;
    stats[T + RX]! += seen;
    stats[T + TX]! += sent;
    if (noRoute) stats[T + NO_ROUTE]! += noRoute;
    if (icmpSent) stats[T + ICMP_SENT]! += icmpSent;
    if (ttl) stats[T + TTL_EXPIRED]! += ttl;
    if (bad) stats[T + MALFORMED]! += bad;
    return hard && seen === 0 ? -1 : seen;
  }

  function pumpUdp(): number {
    const n = sys.recvmmsg(udpFd, rx.hdrFrom[0]!, B, MSG_DONTWAIT);
    if (n <= 0) {
      if (n === -EAGAIN || n === -EINTR || n === 0) return 0;
      fail(U, -n);
      return -1;
    }
    let written = 0, ttl = 0, bad = 0;
    for (let i = 0; i < n; i++) {
      const h = rx.hdrBase + i * L.mmsghdr;
      const len = rx.dv.getUint32(h + L.msgLen, le);
      const p = rx.slots[i]!;
      if ((rx.dv.getInt32(h + L.flags, le) & MSG_TRUNC) !== 0 || !isIPv4(p, len)) {
        bad++;
        continue;
      }
      if (!decrementTTL(p)) {
        ttl++;
        continue;
      }
      rx.dv.setUint32(rx.iovLen[i]!, len, le);
      const w = sys.writev(tunFd, rx.iovs[i]!, 1);
      rx.dv.setUint32(rx.iovLen[i]!, S, le);
      if (w < 0) fail(U, -w);
      else written++;
    }
    stats[U + RX]! += n;
    stats[U + TX]! += written;
    stats[U + WRITES]! += written;
    if (ttl) stats[U + TTL_EXPIRED]! += ttl;
    if (bad) stats[U + MALFORMED]! += bad;
    return n;
  }

  return {
    pumpTun,
    pumpUdp,
    syncPeers,
    waited: () => void stats[T + WAITS]!++,
    table,
  };
}

/** Which pumps a loop runs, what it waits on, and where it is told to stop. */
export interface LoopOptions {
  tun: boolean;
  udp: boolean;
  /** pollfds: the fds of the pumps (POLLIN), then the stop eventfd. */
  pollFds: Uint8Array;
  pollCount: number;
  /** Index 0: 0 run, 1 stop, 2 throw (as a bug would: tests of crash handling). */
  control: Int32Array;
}

/**
 * Runs the pumps until told to stop, blocking in poll(2) whenever a whole round moved nothing.
 * After a hard error (a deleted device, say) it waits 100 ms instead of spinning.
 */
export function runLoop(sys: LoopSys, fwd: Forwarder, o: LoopOptions): void {
  for (;;) {
    const c = Atomics.load(o.control, 0);
    if (c === 1) return;
    if (c === 2) throw new Error("the loop was told to fail (a test of crash handling)");
    fwd.syncPeers();
    const a = o.tun ? fwd.pumpTun() : 0;
    const b = o.udp ? fwd.pumpUdp() : 0;
    if (a > 0 || b > 0) continue;
    fwd.waited();
    sys.poll(o.pollFds, o.pollCount, a < 0 || b < 0 ? 100 : -1);
  }
}

/**
 * Writes `struct pollfd` entries (fd, POLLIN) for `fds` into a new buffer.
 */
export function pollFds(fds: readonly number[]): Uint8Array {
  const POLLIN = 1;
  const b = new Uint8Array(new ArrayBuffer(8 * fds.length));
  const dv = new DataView(b.buffer);
  const le = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  fds.forEach((fd, i) => {
    dv.setInt32(8 * i, fd, le);
    dv.setInt16(8 * i + 4, POLLIN, le);
  });
  return b;
}

/**
 * The functions a Worker needs to run the loop, in dependency order; their source text is the
 * Worker's program (see the module notes). `ipv4HeaderChecksum` and `onesSum` are used by
 * `icmpNetUnreachable`.
 */
export const LOOP_FUNCTIONS: readonly ((...args: never[]) => unknown)[] = [
  onesSum,
  csumFold,
  checksumWasmBytes,
  wasmChecksum,
  ipv4HeaderChecksum,
  isIPv4,
  ipv4Dst,
  decrementTTL,
  icmpNetUnreachable,
  readSharedPeers,
  createForwarder,
  runLoop,
  pollFds,
];

/** The classes a Worker needs (listed apart: a class is not callable). */
export const LOOP_CLASSES: readonly (abstract new (...args: never[]) => unknown)[] = [PeerTable];

/**
 * The Worker program text: the loop's classes and functions, then `extra`, each bound to its own
 * name (`const PeerTable = class … ;`, which also works when a bundler made a declaration an
 * anonymous expression), then `tail`.
 */
export function loopSource(extra: readonly { name: string; toString(): string }[], tail: string): string {
  return [...LOOP_CLASSES, ...LOOP_FUNCTIONS, ...extra].map((f) => `const ${f.name} = ${f.toString()};`)
    .join("\n\n") + "\n" + tail;
}

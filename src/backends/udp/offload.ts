/**
 * The forwarding loop with offloads: the kernel hands us TCP segments of up to 64 KiB and takes
 * them back, so a 64 KiB burst costs the kernel one trip through the stack instead of 45.
 *
 * TUN → UDP. The TUN device is opened with IFF_VNET_HDR and TUNSETOFFLOAD(CSUM | TSO4): every
 * read starts with a `struct virtio_net_hdr`. A TCPv4 GSO read is cut here into MSS-sized IPv4
 * packets, as the kernel's own TSO would (IP id + 1 and TCP seq + MSS per segment, FIN/PSH only
 * on the last, CWR only on the first, both checksums computed): every datagram on the wire is
 * still one plain IPv4 packet of at most the MTU, so upstream nodes understand it. The segments
 * leave in one sendmsg with UDP_SEGMENT (the kernel splits the datagram at the segment size, all
 * equal but the last): the headers are built in a small area and the payloads are sent straight
 * from the read buffer through iovecs, never copied. A packet with a partial checksum
 * (NEEDS_CSUM) gets it completed; other packets go out as in forwarder.ts, a ring per sendmmsg.
 *
 * UDP → TUN. The socket has UDP_GRO: one receive may hold many datagrams of one peer, with the
 * segment size in a control message. Consecutive in-order segments of one TCP flow (same
 * addresses, ports, ack, options; ACK or ACK|PSH only) are written as one TCP packet with a
 * TCPV4 GSO virtio header and a partial checksum, so the pod's stack sees one 64 KiB segment
 * (the payloads again go from the receive buffer through iovecs). The outer UDP checksum, which
 * the kernel verified, covers the bytes. Everything else is written one packet at a time.
 *
 * Like forwarder.ts, this runs from its source text inside a Worker: only globals, parameters
 * and the functions listed in forwarder.ts's LOOP_FUNCTIONS may be used.
 *
 * @module
 */
import { csumFold, decrementTTL, icmpNetUnreachable, ipv4Dst, isIPv4, PeerTable } from "./packet.ts";
import { type Forwarder, type ForwarderConfig, readSharedPeers } from "./forwarder.ts";
import { wasmChecksum } from "./csum_wasm.ts";
import type { LoopSys } from "./sys.ts";

/** Builds both directions over `sys` (bound on the calling thread); see the module notes. */
export function createOffloadForwarder(sys: LoopSys, cfg: ForwarderConfig): Forwarder {
  // Linux values, repeated because this text runs in a Worker (see forwarder.ts).
  const EINTR = 4, EAGAIN = 11, EIO = 5, MSG_DONTWAIT = 0x40, MSG_TRUNC = 0x20, AF_INET = 2;
  const SOL_UDP = 17, UDP_SEGMENT = 103, UDP_GRO = 104;
  const NEEDS_CSUM = 1, GSO_TCPV4 = 1, VNET = 10;
  const RX = 0, TX = 1, NO_ROUTE = 2, ICMP_SENT = 3, TTL_EXPIRED = 4, MALFORMED = 5, ERRORS = 6;
  const LAST_ERRNO = 7, WAITS = 8, WRITES = 9, T = 0, U = 16;
  /** A slot: 2 bytes of padding, the virtio header, then the packet at PKT (4-aligned). */
  const SLOT = 65552, PKT = 12;
  /** Segments per UDP GSO send (UDP_MAX_SEGMENTS was 64 before Linux 6.x), and header room. */
  const SEGS = 64, HDR = 128;
  /** Segments merged into one TUN write; the largest UDP payload over IPv4. */
  const MERGE = 64, UDP_MAX = 65507;
  const { layout: L, tunFd, udpFd, tunAddr, stats } = cfg;
  const P = L.ptrSize, le = L.littleEndian, B = cfg.batch;
  const hostLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  let udpSegment = cfg.offload?.udpSegment ?? false;
  const table = new PeerTable();
  let seenSeq = -1;
  const syncPeers = () => void (seenSeq = readSharedPeers(cfg.peers, seenSeq, table));
  const cmsgSpace2 = L.cmsgData + P; // CMSG_SPACE(sizeof(u16))

  /**
   * One buffer with its address split in two 32-bit halves, for allocation-free pointers. With
   * `wasm`, the buffer is a WebAssembly memory of fixed size (never grown, so never moved) that
   * the SIMD checksum reads in place.
   */
  function arena(size: number, wasm = false) {
    const pages = Math.ceil(size / 65536);
    let memory: WebAssembly.Memory | undefined;
    try {
      // V8 reserves address space for a memory; under a tight `ulimit -v` that can fail: sum in JS.
      memory = wasm ? new WebAssembly.Memory({ initial: pages, maximum: pages }) : undefined;
    } catch {
      memory = undefined;
    }
    const buf = memory ? memory.buffer : new ArrayBuffer(size);
    const u8 = new Uint8Array(buf);
    const base = sys.address(u8);
    return {
      buf,
      memory,
      u8,
      w: new Uint32Array(buf),
      dv: new DataView(buf),
      hi: Number(base >> 32n),
      lo: Number(base & 0xffffffffn),
    };
  }
  type Arena = ReturnType<typeof arena>;
  /** Stores the address of `a` + `off` at byte `at` of `a`. */
  function ptr(a: Arena, at: number, off: number): void {
    const v = a.lo + off;
    const lo = v % 0x100000000, hi = a.hi + Math.floor(v / 0x100000000);
    if (P === 4) a.dv.setUint32(at, lo, le);
    else if (le) {
      a.dv.setUint32(at, lo, true);
      a.dv.setUint32(at + 4, hi, true);
    } else {
      a.dv.setUint32(at, hi, false);
      a.dv.setUint32(at + 4, lo, false);
    }
  }
  /** Stores a size_t at byte `at` of `a`. */
  function size(a: Arena, at: number, v: number): void {
    if (P === 4) a.dv.setUint32(at, v, le);
    else {
      a.dv.setUint32(at + (le ? 0 : 4), v, le);
      a.dv.setUint32(at + (le ? 4 : 0), 0, le);
    }
  }
  /** The low 32 bits of a size_t at byte `at`. */
  const sizeAt = (a: Arena, at: number) => a.dv.getUint32(P === 8 && !le ? at + 4 : at, le);
  const fold = (s: number) => {
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  };
  /** Unfolded sum of big-endian 16-bit words (short headers). */
  const sumBE = (b: Uint8Array, off: number, len: number) => {
    let s = 0;
    for (let i = 0; i < len; i += 2) s += (b[off + i]! << 8) | b[off + i + 1]!;
    return s;
  };
  /** The TCP pseudo-header of the IPv4 packet at `ip`, for a TCP length. */
  const pseudo = (b: Uint8Array, ip: number, tcpLen: number) => sumBE(b, ip + 12, 8) + 6 + tcpLen;
  const fail = (block: number, errno: number) => {
    stats[block + ERRORS]!++;
    stats[block + LAST_ERRNO] = errno;
  };
  /** `count` views of `a` from `at`, `stride` apart, the i-th `len(i)` bytes long. */
  const views = (a: Arena, at: number, stride: number, count: number, len: (i: number) => number) => {
    const out: Uint8Array[] = [];
    for (let i = 0; i < count; i++) out.push(new Uint8Array(a.buf, at + i * stride, len(i)));
    return out;
  };

  // ---- TUN → UDP ------------------------------------------------------------------------------
  const tHdrs = B * SLOT;
  const tSegIov = tHdrs + SEGS * HDR;
  const tReadIov = tSegIov + 2 * SEGS * L.iovec;
  const tSendIov = tReadIov + B * L.iovec;
  const tMsgs = tSendIov + B * L.iovec;
  const tSegMsgs = tMsgs + B * L.mmsghdr;
  const tNames = tSegMsgs + SEGS * L.mmsghdr;
  const tGsoName = tNames + B * L.sockaddrIn;
  const tGsoMsg = tGsoName + L.sockaddrIn;
  const tCmsg = tGsoMsg + Math.ceil(L.msghdr / 8) * 8;
  const tIcmp = tCmsg + L.cmsgSpace4;
  const tZero = tIcmp + 128;
  const tIcmpIov = tZero + 16;
  const tx = arena(tIcmpIov + 2 * L.iovec, typeof WebAssembly !== "undefined");
  const tu8 = tx.u8;
  /** The sum of `len` bytes at `off` of the arena: SIMD where there is WebAssembly SIMD. */
  const txSum = (tx.memory && wasmChecksum(tx.memory)) ||
    ((off: number, len: number) => csumFold(tu8, tx.w, off, len, hostLE));
  for (let i = 0; i < B; i++) {
    ptr(tx, tReadIov + i * L.iovec, i * SLOT + 2);
    size(tx, tReadIov + i * L.iovec + P, SLOT - 2);
    ptr(tx, tSendIov + i * L.iovec, i * SLOT + PKT);
    const m = tMsgs + i * L.mmsghdr, name = tNames + i * L.sockaddrIn;
    tx.dv.setUint16(name, AF_INET, le);
    ptr(tx, m + L.name, name);
    tx.dv.setUint32(m + L.namelen, L.sockaddrIn, le);
    ptr(tx, m + L.iov, tSendIov + i * L.iovec);
    size(tx, m + L.iovlen, 1);
  }
  tx.dv.setUint16(tGsoName, AF_INET, le);
  for (let j = 0; j < SEGS; j++) {
    ptr(tx, tSegIov + 2 * j * L.iovec, tHdrs + j * HDR);
    const m = tSegMsgs + j * L.mmsghdr;
    ptr(tx, m + L.name, tGsoName);
    tx.dv.setUint32(m + L.namelen, L.sockaddrIn, le);
    ptr(tx, m + L.iov, tSegIov + 2 * j * L.iovec);
    size(tx, m + L.iovlen, 2);
  }
  ptr(tx, tGsoMsg + L.name, tGsoName);
  tx.dv.setUint32(tGsoMsg + L.namelen, L.sockaddrIn, le);
  ptr(tx, tGsoMsg + L.iov, tSegIov);
  ptr(tx, tGsoMsg + L.control, tCmsg);
  size(tx, tCmsg, L.cmsgData + 2); // cmsg_len = CMSG_LEN(sizeof(u16))
  tx.dv.setInt32(tCmsg + P, SOL_UDP, le);
  tx.dv.setInt32(tCmsg + P + 4, UDP_SEGMENT, le);
  ptr(tx, tIcmpIov, tZero);
  size(tx, tIcmpIov + P, VNET);
  ptr(tx, tIcmpIov + L.iovec, tIcmp);
  const readIovs = views(tx, tReadIov, L.iovec, B, () => L.iovec);
  const msgsFrom = views(tx, tMsgs, L.mmsghdr, B, (i) => (B - i) * L.mmsghdr);
  const segMsgsFrom = views(tx, tSegMsgs, L.mmsghdr, SEGS, (i) => (SEGS - i) * L.mmsghdr);
  const gsoMsg = new Uint8Array(tx.buf, tGsoMsg, L.msghdr);
  const icmpOut = new Uint8Array(tx.buf, tIcmp, 128);
  const icmpIov = new Uint8Array(tx.buf, tIcmpIov, 2 * L.iovec);

  /** Sends single packets in ring slots [0, n). */
  function flushSingles(n: number): number {
    let off = 0, sent = 0;
    while (off < n) {
      const r = sys.sendmmsg(udpFd, msgsFrom[off]!, n - off, 0);
      if (r > 0) {
        off += r;
        sent += r;
      } else if (r !== -EINTR) {
        fail(T, -r);
        off++;
      }
    }
    return sent;
  }

  /** Sends the `k` segments whose iovecs are built, `segSize` bytes each but the last. */
  function sendSegments(k: number, segSize: number): number {
    if (udpSegment) {
      size(tx, tGsoMsg + L.iovlen, 2 * k);
      tx.dv.setUint16(tCmsg + L.cmsgData, segSize, le);
      size(tx, tGsoMsg + L.controllen, k > 1 ? cmsgSpace2 : 0);
      for (;;) {
        const r = sys.sendmsg(udpFd, gsoMsg, 0);
        if (r >= 0) return k;
        if (r === -EINTR) continue;
        fail(T, -r);
        if (r !== -EIO) return 0;
        udpSegment = false; // no UDP GSO on this path after all: one datagram per message from now
        break;
      }
    }
    let off = 0, sent = 0;
    while (off < k) {
      const r = sys.sendmmsg(udpFd, segMsgsFrom[off]!, k - off, 0);
      if (r > 0) {
        off += r;
        sent += r;
      } else if (r !== -EINTR) {
        fail(T, -r);
        off++;
      }
    }
    return sent;
  }

  /** Cuts the TCPv4 GSO packet at `p` into MSS-sized packets and sends them to `port`/`addr`. */
  function sendTcpGso(p: number, plen: number, mss: number, addr: number, port: number): number {
    const ihl = (tu8[p]! & 0x0f) * 4;
    const t = p + ihl;
    const thl = (tu8[t + 12]! >> 4) * 4;
    const hlen = ihl + thl;
    const payload = plen - hlen;
    if (thl < 20 || payload < 0 || mss === 0) return -1;
    tx.dv.setUint16(tGsoName + 2, port, false);
    tx.dv.setUint32(tGsoName + 4, addr, false);
    const count = Math.max(1, Math.ceil(payload / mss));
    const id0 = (tu8[p + 4]! << 8) | tu8[p + 5]!;
    const seq0 = tx.dv.getUint32(t + 4, false);
    const flags0 = tu8[t + 13]!;
    const perSend = udpSegment ? Math.min(SEGS, Math.floor(UDP_MAX / (hlen + mss))) : SEGS;
    let sent = 0;
    for (let first = 0; first < count; first += perSend) {
      const k = Math.min(perSend, count - first);
      for (let j = 0; j < k; j++) {
        const seg = first + j;
        const h = tHdrs + j * HDR;
        for (let q = 0; q < hlen; q += 4) tx.w[(h + q) >> 2] = tx.w[(p + q) >> 2]!;
        const segLen = Math.min(mss, payload - seg * mss);
        const tot = hlen + segLen, id = (id0 + seg) & 0xffff;
        tu8[h + 2] = tot >> 8;
        tu8[h + 3] = tot & 0xff;
        tu8[h + 4] = id >> 8;
        tu8[h + 5] = id & 0xff;
        tu8[h + 10] = 0;
        tu8[h + 11] = 0;
        const ipc = ~fold(sumBE(tu8, h, ihl)) & 0xffff;
        tu8[h + 10] = ipc >> 8;
        tu8[h + 11] = ipc & 0xff;
        const th = h + ihl;
        tx.dv.setUint32(th + 4, (seq0 + seg * mss) >>> 0, false);
        let fl = flags0;
        if (seg < count - 1) fl &= ~0x09; // FIN, PSH: last segment only
        if (seg > 0) fl &= ~0x80; // CWR: first segment only
        tu8[th + 13] = fl;
        tu8[th + 16] = 0;
        tu8[th + 17] = 0;
        const data = p + hlen + seg * mss;
        const s = pseudo(tu8, h, thl + segLen) + sumBE(tu8, th, thl) +
          txSum(data, segLen);
        const c = ~fold(s) & 0xffff;
        tu8[th + 16] = c >> 8;
        tu8[th + 17] = c & 0xff;
        const iov = tSegIov + 2 * j * L.iovec;
        size(tx, iov + P, hlen);
        ptr(tx, iov + L.iovec, data);
        size(tx, iov + L.iovec + P, segLen);
      }
      sent += sendSegments(k, hlen + mss);
    }
    return sent;
  }

  function pumpTun(): number {
    let n = 0, seen = 0, sent = 0, noRoute = 0, icmp = 0, ttl = 0, bad = 0, hard = false;
    for (let reads = 0; reads < B;) {
      const len = sys.readv(tunFd, readIovs[n]!, 1);
      if (len < 0) {
        if (len === -EINTR) continue;
        if (len !== -EAGAIN) {
          fail(T, -len);
          hard = true;
        }
        break;
      }
      reads++;
      seen++;
      const v = n * SLOT + 2, p = n * SLOT + PKT, plen = len - VNET;
      if (plen < 20 || !isIPv4(tu8, plen, p)) {
        bad++;
        continue;
      }
      // A miss may be a peer added since this ring began: look at the shared table once more.
      const r = table.lookup(ipv4Dst(tu8, p)) ?? (syncPeers(), table.lookup(ipv4Dst(tu8, p)));
      if (r === undefined) {
        noRoute++;
        const m = icmpNetUnreachable(tu8, plen, tunAddr, icmpOut, p);
        if (m > 0) {
          size(tx, tIcmpIov + L.iovec + P, m);
          const w = sys.writev(tunFd, icmpIov, 2);
          if (w < 0) fail(T, -w);
          else icmp++;
        }
        continue;
      }
      if (!decrementTTL(tu8, p)) {
        ttl++;
        continue;
      }
      const gso = tu8[v + 1]! & 0x7f; // without the ECN bit
      if (gso !== 0) {
        // Keep the order: what was read before goes first.
        if (n > 0) sent += flushSingles(n);
        const got = gso === GSO_TCPV4 && tu8[p + 9] === 6
          ? sendTcpGso(p, plen, tx.dv.getUint16(v + 4, le), r.addr, r.port)
          : -1;
        if (got < 0) bad++;
        else sent += got;
        n = 0;
        continue;
      }
      if ((tu8[v]! & NEEDS_CSUM) !== 0) {
        const start = tx.dv.getUint16(v + 6, le), at = start + tx.dv.getUint16(v + 8, le);
        if (at + 2 > plen) {
          bad++;
          continue;
        }
        const c = ~txSum(p + start, plen - start) & 0xffff;
        tu8[p + at] = c >> 8;
        tu8[p + at + 1] = c & 0xff;
      }
      const name = tNames + n * L.sockaddrIn;
      tx.dv.setUint16(name + 2, r.port, false);
      tx.dv.setUint32(name + 4, r.addr, false);
      size(tx, tSendIov + n * L.iovec + P, plen);
      n++;
    }
    if (n > 0) sent += flushSingles(n);
    stats[T + RX]! += seen;
    stats[T + TX]! += sent;
    if (noRoute) stats[T + NO_ROUTE]! += noRoute;
    if (icmp) stats[T + ICMP_SENT]! += icmp;
    if (ttl) stats[T + TTL_EXPIRED]! += ttl;
    if (bad) stats[T + MALFORMED]! += bad;
    return hard && seen === 0 ? -1 : seen;
  }

  // ---- UDP → TUN ------------------------------------------------------------------------------
  const uMsgs = B * SLOT;
  const uIov = uMsgs + B * L.mmsghdr;
  const uCmsg = uIov + B * L.iovec;
  const uWIov = uCmsg + B * L.cmsgSpace4;
  const uSIov = uWIov + (1 + MERGE) * L.iovec;
  const uHdr = uSIov + 2 * L.iovec;
  const uZero = uHdr + 136;
  const rx = arena(uZero + 16);
  const ru8 = rx.u8;
  for (let i = 0; i < B; i++) {
    const m = uMsgs + i * L.mmsghdr;
    ptr(rx, uIov + i * L.iovec, i * SLOT);
    size(rx, uIov + i * L.iovec + P, SLOT);
    ptr(rx, m + L.iov, uIov + i * L.iovec);
    size(rx, m + L.iovlen, 1);
    ptr(rx, m + L.control, uCmsg + i * L.cmsgSpace4);
  }
  ptr(rx, uWIov, uHdr);
  ptr(rx, uSIov, uZero);
  size(rx, uSIov + P, VNET);
  const recvMsgs = new Uint8Array(rx.buf, uMsgs, B * L.mmsghdr);
  const mergedIov = new Uint8Array(rx.buf, uWIov, (1 + MERGE) * L.iovec);
  const singleIov = new Uint8Array(rx.buf, uSIov, 2 * L.iovec);

  // The TCP flow being coalesced: its first segment, shape, and what may follow.
  let gStart = 0, gIhl = 0, gThl = 0, gMss = 0, gCount = 0, gTotal = 0, gNext = 0;
  let gPsh = false, gClosed = false, written = 0, writes = 0;

  function writeSingle(o: number, len: number): void {
    ptr(rx, uSIov + L.iovec, o);
    size(rx, uSIov + L.iovec + P, len);
    const w = sys.writev(tunFd, singleIov, 2);
    if (w < 0) fail(U, -w);
    else {
      written++;
      writes++;
    }
  }

  function flushGroup(): void {
    if (gCount === 0) return;
    const hlen = gIhl + gThl;
    if (gCount === 1) writeSingle(gStart, hlen + gTotal);
    else {
      const ip = uHdr + VNET, th = ip + gIhl, tot = hlen + gTotal;
      ru8[uHdr] = NEEDS_CSUM;
      ru8[uHdr + 1] = GSO_TCPV4;
      rx.dv.setUint16(uHdr + 2, hlen, le);
      rx.dv.setUint16(uHdr + 4, gMss, le);
      rx.dv.setUint16(uHdr + 6, gIhl, le); // csum_start: the TCP header
      rx.dv.setUint16(uHdr + 8, 16, le); // csum_offset: TCP's checksum field
      for (let q = 0; q < hlen; q++) ru8[ip + q] = ru8[gStart + q]!;
      ru8[ip + 2] = tot >> 8;
      ru8[ip + 3] = tot & 0xff;
      ru8[ip + 10] = 0;
      ru8[ip + 11] = 0;
      const ipc = ~fold(sumBE(ru8, ip, gIhl)) & 0xffff;
      ru8[ip + 10] = ipc >> 8;
      ru8[ip + 11] = ipc & 0xff;
      if (gPsh) ru8[th + 13] = ru8[th + 13]! | 0x08;
      const ps = fold(pseudo(ru8, ip, gThl + gTotal)); // partial: the kernel finishes it
      ru8[th + 16] = ps >> 8;
      ru8[th + 17] = ps & 0xff;
      size(rx, uWIov + P, VNET + hlen);
      const w = sys.writev(tunFd, mergedIov, 1 + gCount);
      if (w < 0) fail(U, -w);
      else {
        written += gCount;
        writes++;
      }
    }
    gCount = 0;
  }

  const same = (a: number, b: number, n: number) => {
    for (let i = 0; i < n; i++) if (ru8[a + i] !== ru8[b + i]) return false;
    return true;
  };

  /** Writes the packet at `o` into the TUN device, coalescing it with the flow before it if it can. */
  function deliver(o: number, len: number): void {
    const ihl = (ru8[o]! & 0x0f) * 4;
    if (ru8[o + 9] === 6 && len >= ihl + 20) {
      const t = o + ihl, thl = (ru8[t + 12]! >> 4) * 4, hlen = ihl + thl, fl = ru8[t + 13]!;
      const pay = len - hlen;
      // ACK or ACK|PSH only, no IP fragment, some payload.
      if (thl >= 20 && pay > 0 && (fl & ~0x08) === 0x10 && (ru8[o + 6]! & 0x3f) === 0 && ru8[o + 7] === 0) {
        const seq = rx.dv.getUint32(t + 4, false);
        const g = gStart, gt = g + gIhl;
        if (
          gCount > 0 && !gClosed && gCount < MERGE && ihl === gIhl && thl === gThl && pay <= gMss &&
          hlen + gTotal + pay <= 65535 && seq === gNext && same(g + 12, o + 12, 8) && same(gt, t, 4) &&
          ru8[g + 1] === ru8[o + 1] && ru8[g + 8] === ru8[o + 8] &&
          (ru8[g + 6]! & 0x40) === (ru8[o + 6]! & 0x40) &&
          same(gt + 8, t + 8, 4) && same(gt + 20, t + 20, thl - 20)
        ) {
          ptr(rx, uWIov + (1 + gCount) * L.iovec, o + hlen);
          size(rx, uWIov + (1 + gCount) * L.iovec + P, pay);
          gCount++;
          gTotal += pay;
          gNext = (gNext + pay) >>> 0;
          if (pay < gMss || (fl & 0x08) !== 0) {
            gPsh = (fl & 0x08) !== 0;
            gClosed = true;
          }
          return;
        }
        flushGroup();
        gStart = o;
        gIhl = ihl;
        gThl = thl;
        gMss = pay;
        gCount = 1;
        gTotal = pay;
        gNext = (seq + pay) >>> 0;
        gPsh = false;
        gClosed = (fl & 0x08) !== 0;
        ptr(rx, uWIov + L.iovec, o + hlen);
        size(rx, uWIov + L.iovec + P, pay);
        return;
      }
    }
    flushGroup();
    writeSingle(o, len);
  }

  function pumpUdp(): number {
    for (let i = 0; i < B; i++) size(rx, uMsgs + i * L.mmsghdr + L.controllen, L.cmsgSpace4);
    const n = sys.recvmmsg(udpFd, recvMsgs, B, MSG_DONTWAIT);
    if (n <= 0) {
      if (n === -EAGAIN || n === -EINTR || n === 0) return 0;
      fail(U, -n);
      return -1;
    }
    let segs = 0, ttl = 0, bad = 0;
    written = 0;
    writes = 0;
    for (let m = 0; m < n; m++) {
      const h = uMsgs + m * L.mmsghdr;
      const len = rx.dv.getUint32(h + L.msgLen, le);
      if ((rx.dv.getInt32(h + L.flags, le) & MSG_TRUNC) !== 0) {
        segs++;
        bad++;
        continue;
      }
      let gso = len;
      const c = uCmsg + m * L.cmsgSpace4;
      if (
        sizeAt(rx, h + L.controllen) >= L.cmsgData + 4 && rx.dv.getInt32(c + P, le) === SOL_UDP &&
        rx.dv.getInt32(c + P + 4, le) === UDP_GRO
      ) {
        gso = rx.dv.getInt32(c + L.cmsgData, le);
        if (gso <= 0) gso = len;
      }
      for (let off = 0; off < len; off += gso) {
        segs++;
        const o = m * SLOT + off;
        const sl = Math.min(gso, len - off);
        const tot = (ru8[o + 2]! << 8) | ru8[o + 3]!;
        if (!isIPv4(ru8, sl, o) || tot > sl || tot < 20) {
          bad++;
          continue;
        }
        if (!decrementTTL(ru8, o)) {
          ttl++;
          continue;
        }
        deliver(o, tot);
      }
    }
    flushGroup();
    stats[U + RX]! += segs;
    stats[U + TX]! += written;
    stats[U + WRITES]! += writes;
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

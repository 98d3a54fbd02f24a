/**
 * The udp backend's forwarding core, on raw IPv4 packets, allocation-free: the peer table
 * lookup, the TTL decrement with an incremental checksum update (RFC 1624), and the ICMP
 * "destination net unreachable" reply for packets to no known subnet.
 *
 * @module
 */

/** RFC 1071 one's-complement sum of `len` bytes at `off`, folded, not inverted. */
export function onesSum(b: Uint8Array, off: number, len: number, initial = 0): number {
  let sum = initial;
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * The RFC 1071 sum of `len` bytes at `off`, folded to 16 bits, in network order, not inverted.
 * `w` views the same ArrayBuffer as `b` (both at byte 0) in host order (`hostLE`): at an even
 * offset the sum runs over 32-bit words (a 64 KiB payload in 16 Ki additions, exact in a double)
 * and is byte-swapped at the end on little-endian hosts, which is the RFC's byte-order trick.
 */
export function csumFold(b: Uint8Array, w: Uint32Array, off: number, len: number, hostLE: boolean): number {
  let s = 0;
  let i = off;
  const end = off + len;
  if ((i & 1) !== 0) {
    for (; i + 1 < end; i += 2) s += (b[i]! << 8) | b[i + 1]!;
    if (i < end) s += b[i]! << 8;
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    return s;
  }
  if ((i & 2) !== 0 && i + 2 <= end) {
    s += hostLE ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!;
    i += 2;
  }
  const kEnd = end >> 2;
  let k = i >> 2;
  for (; k < kEnd; k++) s += w[k]!;
  if (k > i >> 2) i = k << 2;
  if (i + 2 <= end) {
    s += hostLE ? b[i]! | (b[i + 1]! << 8) : (b[i]! << 8) | b[i + 1]!;
    i += 2;
  }
  if (i < end) s += hostLE ? b[i]! : b[i]! << 8;
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return hostLE ? ((s & 0xff) << 8) | (s >> 8) : s;
}

/** The IPv4 header checksum of the header at `off`, as it should be stored. */
export function ipv4HeaderChecksum(b: Uint8Array, off = 0): number {
  const ihl = (b[off]! & 0x0f) * 4;
  const saved = (b[off + 10]! << 8) | b[off + 11]!;
  b[off + 10] = 0;
  b[off + 11] = 0;
  const c = ~onesSum(b, off, ihl) & 0xffff;
  b[off + 10] = saved >> 8;
  b[off + 11] = saved & 0xff;
  return c;
}

/** True when the `len` bytes at `off` start with a plausible IPv4 header. */
export function isIPv4(b: Uint8Array, len: number, off = 0): boolean {
  const v = b[off]!;
  return len >= 20 && (v >> 4) === 4 && (v & 0x0f) >= 5 && (v & 0x0f) * 4 <= len;
}

/** The destination address of the packet at `off`, as an unsigned 32-bit number. */
export function ipv4Dst(b: Uint8Array, off = 0): number {
  return ((b[off + 16]! << 24) | (b[off + 17]! << 16) | (b[off + 18]! << 8) | b[off + 19]!) >>> 0;
}

/** The source address of the packet at `off`, as an unsigned 32-bit number. */
export function ipv4Src(b: Uint8Array, off = 0): number {
  return ((b[off + 12]! << 24) | (b[off + 13]! << 16) | (b[off + 14]! << 8) | b[off + 15]!) >>> 0;
}

/**
 * Decrements the TTL of the packet at `off` in place and fixes the checksum incrementally.
 * Returns false (drop) when the TTL would reach 0.
 */
export function decrementTTL(b: Uint8Array, off = 0): boolean {
  const ttl = b[off + 8]!;
  if (ttl <= 1) return false;
  // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m = the 16-bit word holding TTL and protocol.
  const proto = b[off + 9]!;
  const old = (ttl << 8) | proto;
  const neu = ((ttl - 1) << 8) | proto;
  let sum = (~((b[off + 10]! << 8) | b[off + 11]!) & 0xffff) + (~old & 0xffff) + neu;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const hc = ~sum & 0xffff;
  b[off + 8] = ttl - 1;
  b[off + 10] = hc >> 8;
  b[off + 11] = hc & 0xff;
  return true;
}

/** A peer subnet and where its packets go. */
export interface PeerRoute {
  net: number;
  mask: number;
  /** The peer's underlay address (u32) and UDP port. */
  addr: number;
  port: number;
}

/**
 * The remote subnets, searched front to back with a hit moved to the front (flows are bursty,
 * so the next packet usually finds its peer at index 0).
 */
export class PeerTable {
  #routes: PeerRoute[] = [];

  set(routes: PeerRoute[]): void {
    this.#routes = routes.slice();
  }

  get size(): number {
    return this.#routes.length;
  }

  /** The first route containing `dst`, moved to the front; allocation-free. */
  lookup(dst: number): PeerRoute | undefined {
    const rs = this.#routes;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (((dst & r.mask) >>> 0) === r.net) {
        // Shift the ones before it back by one (splice/unshift would allocate an array per hit).
        for (let j = i; j > 0; j--) rs[j] = rs[j - 1]!;
        rs[0] = r;
        return r;
      }
    }
    return undefined;
  }

  /** The routes in their current search order. */
  routes(): readonly PeerRoute[] {
    return this.#routes;
  }
}

/**
 * Writes into `out` an ICMP destination-unreachable (type 3, code 0: net unreachable) for the
 * packet `pkt`, from `src` (our TUN address), TTL 8, quoting the original header and 8 bytes.
 * Returns its length, or 0 when none may be sent (RFC 1122 3.2.2): the packet is an ICMP error
 * message, a non-first fragment, to a multicast or broadcast address, or from an address that is
 * not one host (0/8, 127/8, multicast, class E).
 *
 * Upstream's C proxy answers no ICMP at all, so `ping` to an unknown destination saw nothing; an
 * echo request is a query, not an error, and RFC 1122 only forbids errors about errors, so it
 * gets "Destination Net Unreachable" here.
 */
export function icmpNetUnreachable(
  pkt: Uint8Array,
  len: number,
  src: number,
  out: Uint8Array,
  off = 0,
): number {
  const ihl = (pkt[off]! & 0x0f) * 4;
  if (pkt[off + 9] === 1) {
    if (len <= ihl) return 0;
    const type = pkt[off + ihl]!;
    // Destination unreachable, source quench, redirect, time exceeded, parameter problem.
    if (type === 3 || type === 4 || type === 5 || type === 11 || type === 12) return 0;
  }
  const fragOffset = ((pkt[off + 6]! & 0x1f) << 8) | pkt[off + 7]!;
  if (fragOffset !== 0) return 0;
  if (pkt[off + 16]! >= 224) return 0; // multicast, class E, limited broadcast
  const s0 = pkt[off + 12]!;
  if (s0 === 0 || s0 === 127 || s0 >= 224) return 0;
  const quote = Math.min(len, ihl + 8);
  const total = 20 + 8 + quote;
  if (out.length < total) return 0;
  out.fill(0, 0, 28);
  out[0] = 0x45;
  out[2] = total >> 8;
  out[3] = total & 0xff;
  out[8] = 8; // TTL
  out[9] = 1; // ICMP
  out[12] = src >>> 24;
  out[13] = (src >>> 16) & 0xff;
  out[14] = (src >>> 8) & 0xff;
  out[15] = src & 0xff;
  for (let i = 0; i < 4; i++) out[16 + i] = pkt[off + 12 + i]!; // to the original sender
  const hc = ipv4HeaderChecksum(out, 0);
  out[10] = hc >> 8;
  out[11] = hc & 0xff;
  out[20] = 3; // destination unreachable
  out[21] = 0; // net unreachable
  for (let i = 0; i < quote; i++) out[28 + i] = pkt[off + i]!;
  const ic = ~onesSum(out, 20, 8 + quote) & 0xffff;
  out[22] = ic >> 8;
  out[23] = ic & 0xff;
  return total;
}

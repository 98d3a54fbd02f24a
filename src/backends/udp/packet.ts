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

/** True when `b[0..len)` starts with a plausible IPv4 header. */
export function isIPv4(b: Uint8Array, len: number): boolean {
  return len >= 20 && (b[0]! >> 4) === 4 && (b[0]! & 0x0f) >= 5 && (b[0]! & 0x0f) * 4 <= len;
}

/** The destination address as an unsigned 32-bit number. */
export function ipv4Dst(b: Uint8Array): number {
  return ((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0;
}

/** The source address as an unsigned 32-bit number. */
export function ipv4Src(b: Uint8Array): number {
  return ((b[12]! << 24) | (b[13]! << 16) | (b[14]! << 8) | b[15]!) >>> 0;
}

/**
 * Decrements the TTL in place and fixes the checksum incrementally. Returns false (drop) when
 * the TTL would reach 0.
 */
export function decrementTTL(b: Uint8Array): boolean {
  const ttl = b[8]!;
  if (ttl <= 1) return false;
  // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), m = the 16-bit word holding TTL and protocol.
  const old = (ttl << 8) | b[9]!;
  const neu = ((ttl - 1) << 8) | b[9]!;
  let sum = (~((b[10]! << 8) | b[11]!) & 0xffff) + (~old & 0xffff) + neu;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const hc = ~sum & 0xffff;
  b[8] = ttl - 1;
  b[10] = hc >> 8;
  b[11] = hc & 0xff;
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

  lookup(dst: number): PeerRoute | undefined {
    const rs = this.#routes;
    for (let i = 0; i < rs.length; i++) {
      const r = rs[i]!;
      if (((dst & r.mask) >>> 0) === r.net) {
        if (i > 0) {
          rs.splice(i, 1);
          rs.unshift(r);
        }
        return r;
      }
    }
    return undefined;
  }
}

/**
 * Writes into `out` an ICMP destination-unreachable (type 3, code 0: net unreachable) for the
 * packet `pkt`, from `src` (our TUN address), TTL 8, quoting the original header and 8 bytes.
 * Returns its length, or 0 when none may be sent (the packet is ICMP or a non-first fragment).
 */
export function icmpNetUnreachable(pkt: Uint8Array, len: number, src: number, out: Uint8Array): number {
  if (pkt[9] === 1) return 0; // never answer ICMP with ICMP
  const fragOffset = ((pkt[6]! & 0x1f) << 8) | pkt[7]!;
  if (fragOffset !== 0) return 0;
  const ihl = (pkt[0]! & 0x0f) * 4;
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
  out.set(pkt.subarray(12, 16), 16); // to the original sender
  const hc = ipv4HeaderChecksum(out, 0);
  out[10] = hc >> 8;
  out[11] = hc & 0xff;
  out[20] = 3; // destination unreachable
  out[21] = 0; // net unreachable
  out.set(pkt.subarray(0, quote), 28);
  const ic = ~onesSum(out, 20, 8 + quote) & 0xffff;
  out[22] = ic >> 8;
  out[23] = ic & 0xff;
  return total;
}

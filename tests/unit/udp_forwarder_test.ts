/**
 * The udp forwarding loop against a fake libc that reads and writes the structs the loop builds
 * (iovecs, msghdrs, sockaddr_in) through fake addresses: struct layouts for 64- and 32-bit and
 * both byte orders, the TUN → UDP and UDP → TUN paths, ICMP, TTL, the shared peer table. The
 * loop is built from the Worker program text (loopSource), so a function that reaches for a
 * module-level name fails here.
 */
import assert from "node:assert/strict";
import {
  type Forwarder,
  type ForwarderConfig,
  loopSource,
  readStats,
  sharedPeersLength,
  STAT_BLOCK,
  STAT_BLOCKS,
  writeSharedPeers,
} from "../../src/backends/udp/forwarder.ts";
import { createOffloadForwarder } from "../../src/backends/udp/offload.ts";
import type { wasmChecksum } from "../../src/backends/udp/csum_wasm.ts";
import { type csumFold, ipv4HeaderChecksum, onesSum, type PeerRoute } from "../../src/backends/udp/packet.ts";
import fc from "fast-check";
import {
  decodeIfreqName,
  encodeIfreq,
  encodeSockaddrIn,
  IFF_NO_PI,
  IFF_TUN,
  ioctlWrite,
  type LoopSys,
  MSG_TRUNC,
  type StructLayout,
  structLayout,
  tunSetIff,
} from "../../src/backends/udp/sys.ts";
import { IP4 } from "../../src/ip/mod.ts";

const ip = (s: string) => IP4.parse(s).value;
const EAGAIN = 11;

/** An IPv4/UDP packet with a valid header checksum and `payload` bytes of payload. */
function packet(src: string, dst: string, ttl = 64, payload = 12, proto = 17): Uint8Array {
  const p = new Uint8Array(28 + payload);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  dv.setUint16(4, 0x1234);
  p[8] = ttl;
  p[9] = proto;
  dv.setUint32(12, ip(src));
  dv.setUint32(16, ip(dst));
  dv.setUint16(20, 40000);
  dv.setUint16(22, 5201);
  dv.setUint16(24, 8 + payload);
  for (let i = 0; i < payload; i++) p[28 + i] = i & 0xff;
  dv.setUint16(10, ipv4HeaderChecksum(p));
  return p;
}

/**
 * A fake libc over fake addresses: every buffer the loop asks the address of becomes a region,
 * and the calls follow the pointers in the structs the loop wrote, as the kernel would.
 */
class FakeLibc implements LoopSys {
  /** Frames the "TUN device" gives (with a virtio header in offload mode) and takes. */
  readonly tunIn: Uint8Array[] = [];
  readonly tunOut: Uint8Array[] = [];
  /** Datagrams to receive; `gso` makes one a UDP GRO buffer (the size in a control message). */
  readonly udpIn: { bytes: Uint8Array; gso?: number }[] = [];
  readonly udpOut: { addr: number; port: number; bytes: Uint8Array }[] = [];
  /** Messages per sendmmsg call, and `gso:<size>x<n>` per sendmsg. */
  readonly sendCalls: (number | string)[] = [];
  readonly writeIovs: number[] = [];
  #regions: { base: bigint; bytes: Uint8Array }[] = [];
  #next = 0x1000n;

  constructor(readonly L: StructLayout) {}

  address(buf: Uint8Array): bigint {
    const base = this.#next;
    this.#next += BigInt(buf.byteLength + 0x1000);
    this.#regions.push({ base, bytes: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) });
    return base;
  }

  #deref(ptr: bigint, len: number): Uint8Array {
    const r = this.#regions.find((r) =>
      ptr >= r.base && ptr + BigInt(len) <= r.base + BigInt(r.bytes.length)
    );
    assert.ok(r, `pointer 0x${ptr.toString(16)} (+${len}) is outside every buffer`);
    const off = Number(ptr - r.base);
    return r.bytes.subarray(off, off + len);
  }

  #dv(b: Uint8Array) {
    return new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  #ptr(dv: DataView, off: number): bigint {
    return this.L.ptrSize === 8
      ? dv.getBigUint64(off, this.L.littleEndian)
      : BigInt(dv.getUint32(off, this.L.littleEndian));
  }

  #size(dv: DataView, off: number): number {
    if (this.L.ptrSize === 4) return dv.getUint32(off, this.L.littleEndian);
    return Number(dv.getBigUint64(off, this.L.littleEndian));
  }

  /** The buffers of `n` iovecs starting at `iovs`. */
  #iovecs(iovs: Uint8Array, n: number): Uint8Array[] {
    const dv = this.#dv(iovs), out: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const at = i * this.L.iovec;
      out.push(this.#deref(this.#ptr(dv, at), this.#size(dv, at + this.L.ptrSize)));
    }
    return out;
  }

  #concat(parts: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }

  /** What one msghdr at `h` of `dv` sends: its address, and its datagrams (split at UDP_SEGMENT). */
  #send(dv: DataView, h: number): void {
    const L = this.L;
    assert.equal(dv.getUint32(h + L.namelen, L.littleEndian), 16);
    const name = this.#dv(this.#deref(this.#ptr(dv, h + L.name), 16));
    assert.equal(name.getUint16(0, L.littleEndian), 2, "sin_family AF_INET in host order");
    const iovlen = this.#size(dv, h + L.iovlen);
    const bytes = this.#concat(this.#iovecs(this.#deref(this.#ptr(dv, h + L.iov), iovlen * L.iovec), iovlen));
    let seg = bytes.length;
    const clen = this.#size(dv, h + L.controllen);
    if (clen > 0) {
      const c = this.#dv(this.#deref(this.#ptr(dv, h + L.control), clen));
      assert.equal(this.#size(c, 0), L.cmsgData + 2, "cmsg_len = CMSG_LEN(sizeof(u16))");
      assert.deepEqual([c.getInt32(L.ptrSize, L.littleEndian), c.getInt32(L.ptrSize + 4, L.littleEndian)], [
        17,
        103,
      ]);
      seg = c.getUint16(L.cmsgData, L.littleEndian);
      this.sendCalls.push(`gso:${seg}x${Math.ceil(bytes.length / seg)}`);
    }
    for (let o = 0; o < bytes.length; o += seg) {
      this.udpOut.push({
        port: name.getUint16(2, false),
        addr: name.getUint32(4, false),
        bytes: bytes.slice(o, Math.min(bytes.length, o + seg)),
      });
    }
  }

  readv(_fd: number, iov: Uint8Array, n: number): number {
    assert.equal(n, 1);
    const p = this.tunIn.shift();
    if (!p) return -EAGAIN;
    const [dst] = this.#iovecs(iov, 1) as [Uint8Array];
    const len = Math.min(p.length, dst.length);
    dst.set(p.subarray(0, len));
    return len;
  }

  writev(_fd: number, iov: Uint8Array, n: number): number {
    const frame = this.#concat(this.#iovecs(iov, n));
    this.writeIovs.push(n);
    this.tunOut.push(frame);
    return frame.length;
  }

  sendmsg(_fd: number, hdr: Uint8Array, flags: number): number {
    assert.equal(flags, 0);
    this.#send(this.#dv(hdr), 0);
    return 1;
  }

  sendmmsg(_fd: number, hdrs: Uint8Array, n: number, flags: number): number {
    assert.equal(flags, 0);
    this.sendCalls.push(n);
    const dv = this.#dv(hdrs);
    for (let i = 0; i < n; i++) this.#send(dv, i * this.L.mmsghdr);
    return n;
  }

  recvmmsg(_fd: number, hdrs: Uint8Array, n: number, _flags: number): number {
    if (this.udpIn.length === 0) return -EAGAIN;
    const L = this.L, dv = this.#dv(hdrs);
    let i = 0;
    for (; i < n && this.udpIn.length > 0; i++) {
      const d = this.udpIn.shift()!;
      const h = i * L.mmsghdr;
      assert.equal(this.#ptr(dv, h + L.name), 0n, "no source address wanted");
      assert.equal(this.#size(dv, h + L.iovlen), 1);
      const [buf] = this.#iovecs(this.#deref(this.#ptr(dv, h + L.iov), L.iovec), 1) as [Uint8Array];
      const len = Math.min(d.bytes.length, buf.length);
      buf.set(d.bytes.subarray(0, len));
      dv.setUint32(h + L.msgLen, len, L.littleEndian);
      dv.setInt32(h + L.flags, d.bytes.length > buf.length ? MSG_TRUNC : 0, L.littleEndian);
      const room = this.#size(dv, h + L.controllen);
      if (d.gso !== undefined) {
        assert.ok(room >= L.cmsgSpace4, `room for a UDP_GRO control message: ${room}`);
        const c = this.#dv(this.#deref(this.#ptr(dv, h + L.control), L.cmsgSpace4));
        const le = L.littleEndian;
        if (L.ptrSize === 8) c.setBigUint64(0, BigInt(L.cmsgData + 4), le);
        else c.setUint32(0, L.cmsgData + 4, le);
        c.setInt32(L.ptrSize, 17, le);
        c.setInt32(L.ptrSize + 4, 104, le);
        c.setInt32(L.cmsgData, d.gso, le);
        if (L.ptrSize === 8) dv.setBigUint64(h + L.controllen, BigInt(L.cmsgData + 4), le);
        else dv.setUint32(h + L.controllen, L.cmsgData + 4, le);
      } else if (room > 0) {
        if (L.ptrSize === 8) dv.setBigUint64(h + L.controllen, 0n, L.littleEndian);
        else dv.setUint32(h + L.controllen, 0, L.littleEndian);
      }
    }
    return i;
  }

  poll(): number {
    return 0;
  }
}

/** The loop's functions, from the very text a Worker runs. */
const fromSource = new Function(
  loopSource(
    [createOffloadForwarder],
    "return { createForwarder, createOffloadForwarder, csumFold, wasmChecksum };",
  ),
)() as {
  wasmChecksum: typeof wasmChecksum;
  createForwarder: (sys: LoopSys, cfg: ForwarderConfig) => Forwarder;
  createOffloadForwarder: (sys: LoopSys, cfg: ForwarderConfig) => Forwarder;
  csumFold: typeof csumFold;
};

function rig(layout: StructLayout, batch = 4, offload?: { udpSegment: boolean; udpGro: boolean }) {
  const sys = new FakeLibc(layout);
  const peers = new Int32Array(new SharedArrayBuffer(4 * sharedPeersLength(8)));
  const stats = new Float64Array(new SharedArrayBuffer(8 * STAT_BLOCK * STAT_BLOCKS));
  const cfg: ForwarderConfig = {
    tunFd: 3,
    udpFd: 4,
    tunAddr: ip("10.5.1.0"),
    batch,
    slotSize: 2048,
    layout,
    peers,
    stats,
    ...(offload ? { offload } : {}),
  };
  const fwd = offload ? fromSource.createOffloadForwarder(sys, cfg) : fromSource.createForwarder(sys, cfg);
  const route = (cidr: string, peer: string): PeerRoute => {
    const [net, len] = cidr.split("/");
    return { net: ip(net!), mask: (0xffffffff << (32 - Number(len))) >>> 0, addr: ip(peer), port: 8285 };
  };
  writeSharedPeers(peers, [route("10.5.2.0/24", "192.0.2.12"), route("10.5.3.0/24", "192.0.2.13")]);
  fwd.syncPeers();
  return { sys, fwd, stats: () => readStats(stats), peers, route };
}

const layouts: [string, StructLayout][] = [
  ["64-bit little-endian (x86_64, aarch64)", structLayout(8, true)],
  ["64-bit big-endian (s390x)", structLayout(8, false)],
  ["32-bit little-endian (armv7, i386)", structLayout(4, true)],
];

Deno.test("udp structs: layouts match the C ABI for 64- and 32-bit", () => {
  const l64 = structLayout(8);
  assert.deepEqual(
    [l64.iovec, l64.msghdr, l64.mmsghdr, l64.msgLen, l64.ifreq, l64.iov, l64.iovlen, l64.flags],
    [16, 56, 64, 56, 40, 16, 24, 48],
  );
  const l32 = structLayout(4);
  assert.deepEqual(
    [l32.iovec, l32.msghdr, l32.mmsghdr, l32.msgLen, l32.ifreq, l32.iov, l32.iovlen, l32.flags],
    [8, 28, 32, 28, 32, 8, 12, 24],
  );
  assert.throws(() => structLayout(2), RangeError);
});

Deno.test("udp structs: TUNSETIFF per architecture, ifreq and sockaddr_in bytes", () => {
  assert.equal(tunSetIff("x86_64"), 0x400454ca);
  assert.equal(tunSetIff("aarch64"), 0x400454ca);
  assert.equal(tunSetIff("riscv64"), 0x400454ca);
  assert.equal(tunSetIff("ppc64le"), 0x800454ca, "powerpc: _IOC_WRITE is 4 at bit 29");
  assert.throws(() => ioctlWrite(84, 1, 1 << 14, "x86_64"), RangeError);

  const ifr = encodeIfreq("flannel%d", IFF_TUN | IFF_NO_PI, structLayout(8, true));
  assert.equal(ifr.length, 40);
  assert.deepEqual([...ifr.subarray(0, 10)], [...new TextEncoder().encode("flannel%d"), 0]);
  assert.deepEqual([...ifr.subarray(16, 18)], [0x01, 0x10], "IFF_TUN | IFF_NO_PI, little-endian short");
  ifr.set(new TextEncoder().encode("flannel0\0"));
  assert.equal(decodeIfreqName(ifr), "flannel0");
  assert.throws(() => encodeIfreq("a-very-long-name", 1, structLayout(8)), RangeError);

  assert.deepEqual(
    [...encodeSockaddrIn(ip("192.0.2.11"), 8285, structLayout(8, true))],
    [2, 0, 0x20, 0x5d, 192, 0, 2, 11, 0, 0, 0, 0, 0, 0, 0, 0],
  );
});

for (const [name, layout] of layouts) {
  Deno.test(`udp loop (${name}): TUN → lookup → UDP to the peer's PublicIP:Port, TTL − 1, batched`, () => {
    const { sys, fwd, stats } = rig(layout, 4);
    for (let i = 0; i < 6; i++) {
      sys.tunIn.push(packet("10.5.1.2", i % 2 ? "10.5.3.7" : "10.5.2.9", 64, 100 + i));
    }
    assert.equal(fwd.pumpTun(), 4, "one ring per pump");
    assert.equal(fwd.pumpTun(), 2);
    assert.equal(fwd.pumpTun(), 0);
    assert.deepEqual(sys.sendCalls, [4, 2], "one sendmmsg per ring");
    assert.equal(sys.udpOut.length, 6);
    for (const [i, d] of sys.udpOut.entries()) {
      assert.equal(d.port, 8285);
      assert.equal(IP4.fromNumber(d.addr).toString(), i % 2 ? "192.0.2.13" : "192.0.2.12");
      const want = packet("10.5.1.2", i % 2 ? "10.5.3.7" : "10.5.2.9", 63, 100 + i);
      assert.deepEqual(d.bytes, want, "the unmodified packet but for TTL and checksum");
      assert.equal(onesSum(d.bytes, 0, 20), 0xffff);
    }
    assert.deepEqual(
      { tunRx: stats().tunRx, udpTx: stats().udpTx, noRoute: stats().noRoute },
      { tunRx: 6, udpTx: 6, noRoute: 0 },
    );
  });

  Deno.test(`udp loop (${name}): UDP → TTL − 1 → TUN; truncated, non-IPv4 and TTL 1 dropped`, () => {
    const { sys, fwd, stats } = rig(layout, 4);
    sys.udpIn.push(
      ...[
        packet("10.5.2.9", "10.5.1.2", 64, 1000),
        packet("10.5.2.9", "10.5.1.2", 1),
        Uint8Array.from([0x60, 0, 0, 0, ...new Array(36).fill(0)]), // IPv6
        new Uint8Array(3000), // longer than a slot: MSG_TRUNC
        packet("10.5.3.1", "10.5.1.3", 9, 1),
      ].map((bytes) => ({ bytes })),
    );
    assert.equal(fwd.pumpUdp(), 4);
    assert.equal(fwd.pumpUdp(), 1);
    assert.equal(fwd.pumpUdp(), 0);
    assert.deepEqual(sys.tunOut, [
      packet("10.5.2.9", "10.5.1.2", 63, 1000),
      packet("10.5.3.1", "10.5.1.3", 8, 1),
    ]);
    const s = stats();
    assert.deepEqual([s.udpRx, s.tunTx, s.ttlExpired, s.malformed], [5, 2, 1, 2]);
  });

  Deno.test(`udp loop (${name}): unknown destination → ICMP net unreachable into the TUN`, () => {
    const { sys, fwd, stats } = rig(layout, 4);
    const lost = packet("10.5.1.2", "10.5.200.1", 64, 40);
    const icmpError = packet("10.5.1.2", "10.5.201.1", 64, 0, 1);
    icmpError[20] = 3; // an ICMP error is never answered with one
    sys.tunIn.push(lost, icmpError);
    fwd.pumpTun();
    assert.equal(sys.udpOut.length, 0);
    assert.equal(sys.tunOut.length, 1);
    const icmp = sys.tunOut[0]!;
    assert.equal(icmp.length, 20 + 8 + 28);
    assert.deepEqual(
      [...icmp.subarray(12, 20)],
      [10, 5, 1, 0, 10, 5, 1, 2],
      "from the TUN address to the sender",
    );
    assert.deepEqual([icmp[9], icmp[20], icmp[21]], [1, 3, 0], "ICMP type 3 code 0");
    assert.deepEqual(icmp.subarray(28), lost.subarray(0, 28));
    const s = stats();
    assert.deepEqual([s.noRoute, s.icmpSent, s.tunTx], [2, 1, 1]);
  });
}

Deno.test("udp loop: a rewritten peer table applies before the next packet; a torn write is skipped", () => {
  const { sys, fwd, peers, route } = rig(structLayout(8), 4);
  writeSharedPeers(peers, [route("10.5.2.0/24", "192.0.2.99")]);
  fwd.syncPeers();
  sys.tunIn.push(packet("10.5.1.2", "10.5.2.5"), packet("10.5.1.2", "10.5.3.5"));
  fwd.pumpTun();
  assert.deepEqual(sys.udpOut.map((d) => IP4.fromNumber(d.addr).toString()), ["192.0.2.99"]);
  assert.equal(fwd.table.size, 1);
  // While the writer holds the sequence odd, readers keep the table they have.
  Atomics.add(peers, 0, 1);
  peers[1] = 0;
  fwd.syncPeers();
  assert.equal(fwd.table.size, 1);
  Atomics.add(peers, 0, 1);
  fwd.syncPeers();
  assert.equal(fwd.table.size, 0);
  assert.throws(() => writeSharedPeers(peers, Array(9).fill(route("10.5.2.0/24", "1.1.1.1"))), RangeError);
});

for (const offload of [undefined, { udpSegment: true, udpGro: true }]) {
  Deno.test(`udp loop${offload ? " (offloads)" : ""}: a packet to a peer added after the ring's sync is sent, not refused`, () => {
    const { sys, fwd, peers, route } = rig(structLayout(8), 4, offload);
    fwd.syncPeers(); // the loop read the table…
    writeSharedPeers(peers, [route("10.5.9.0/24", "192.0.2.99")]); // …then the backend added a peer
    const p = packet("10.5.1.2", "10.5.9.5");
    sys.tunIn.push(offload ? new Uint8Array([...new Uint8Array(10), ...p]) : p);
    fwd.pumpTun();
    assert.deepEqual(sys.udpOut.map((d) => IP4.fromNumber(d.addr).toString()), ["192.0.2.99"]);
    assert.equal(sys.tunOut.length, 0, "no ICMP net unreachable");
  });
}

// ---- offloads (offload.ts) -------------------------------------------------------------------

/** A TCP/IPv4 packet with valid checksums; `opt` bytes of options (a timestamp option's size). */
function tcp(o: {
  src?: string;
  dst?: string;
  ttl?: number;
  id?: number;
  seq: number;
  ack?: number;
  flags?: number;
  payload: number;
  sport?: number;
  opt?: number;
  seed?: number;
}): Uint8Array {
  const opt = o.opt ?? 12, thl = 20 + opt, hlen = 20 + thl;
  const p = new Uint8Array(hlen + o.payload);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  dv.setUint16(4, o.id ?? 100);
  p[6] = 0x40; // DF
  p[8] = o.ttl ?? 64;
  p[9] = 6;
  dv.setUint32(12, ip(o.src ?? "10.5.1.2"));
  dv.setUint32(16, ip(o.dst ?? "10.5.2.9"));
  dv.setUint16(20, o.sport ?? 40000);
  dv.setUint16(22, 5201);
  dv.setUint32(24, o.seq >>> 0);
  dv.setUint32(28, o.ack ?? 5000);
  p[32] = (thl / 4) << 4;
  p[33] = o.flags ?? 0x10;
  dv.setUint16(34, 502);
  for (let i = 0; i < opt; i++) p[40 + i] = i === 0 ? 1 : 0x11 * i; // NOPs and stand-in timestamps
  for (let i = 0; i < o.payload; i++) p[hlen + i] = (i * 7 + (o.seed ?? 0)) & 0xff;
  dv.setUint16(10, ipv4HeaderChecksum(p));
  dv.setUint16(36, ~fold(pseudoSum(p, thl + o.payload) + onesSum(p, 20, thl + o.payload)) & 0xffff);
  return p;
}

const fold = (s: number) => {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
};
const pseudoSum = (p: Uint8Array, len: number) => onesSum(p, 12, 8) + p[9]! + len;
/** Is the transport checksum (TCP or UDP) of this IPv4 packet right? */
const l4Valid = (p: Uint8Array) => {
  const ihl = (p[0]! & 0x0f) * 4;
  return fold(pseudoSum(p, p.length - ihl) + onesSum(p, ihl, p.length - ihl)) === 0xffff;
};

/** A virtio_net_hdr in the layout's byte order. */
function vnet(
  L: StructLayout,
  h: { flags?: number; gso?: number; hdrLen?: number; gsoSize?: number; start?: number; off?: number },
) {
  const b = new Uint8Array(10);
  const dv = new DataView(b.buffer);
  b[0] = h.flags ?? 0;
  b[1] = h.gso ?? 0;
  dv.setUint16(2, h.hdrLen ?? 0, L.littleEndian);
  dv.setUint16(4, h.gsoSize ?? 0, L.littleEndian);
  dv.setUint16(6, h.start ?? 0, L.littleEndian);
  dv.setUint16(8, h.off ?? 0, L.littleEndian);
  return b;
}
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
};

Deno.test("udp offload: csumFold equals the RFC 1071 byte-pair sum at every alignment", () => {
  const buf = new ArrayBuffer(4096);
  const b = new Uint8Array(buf), w = new Uint32Array(buf);
  const hostLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
      fc.nat(2000),
      fc.nat(2000),
      (bytes, off, len) => {
        b.set(bytes);
        assert.equal(fromSource.csumFold(b, w, off, len, hostLE), onesSum(b, off, len));
      },
    ),
  );
});

Deno.test("udp offload: the WebAssembly SIMD checksum equals the RFC 1071 byte-pair sum", () => {
  const memory = new WebAssembly.Memory({ initial: 2, maximum: 2 });
  const sum = fromSource.wasmChecksum(memory);
  assert.ok(sum, "this Deno has WebAssembly SIMD");
  const b = new Uint8Array(memory.buffer);
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
      fc.nat(4000),
      fc.nat(4096),
      (bytes, off, len) => {
        b.set(bytes, off);
        assert.equal(sum(off, len), onesSum(b, off, len), `off ${off} len ${len}`);
      },
    ),
  );
  // The largest payload the sender sums (a 64 KiB TSO read), all ones: lanes must not overflow.
  b.fill(0xff);
  assert.equal(sum(0, 65536), onesSum(b, 0, 65536));
  assert.equal(sum(1, 65535), onesSum(b, 1, 65535));
  // Edges: nothing, one byte (the high half of a word), a word.
  b.set([0x12, 0x34, 0x56]);
  assert.equal(sum(0, 0), 0);
  assert.equal(sum(0, 1), 0x1200);
  assert.equal(sum(0, 2), 0x1234);
  assert.equal(sum(0, 3), 0x1234 + 0x5600);
});

for (const [name, layout] of layouts) {
  for (const udpSegment of [true, false]) {
    Deno.test(`udp offload (${name}, UDP GSO ${udpSegment ? "on" : "off"}): a 5000-byte TSO read leaves as 4 packets`, () => {
      const { sys, fwd, stats } = rig(layout, 4, { udpSegment, udpGro: true });
      // What the kernel hands over: one segment, TCP checksum holding only the pseudo-header sum.
      const sp = tcp({ seq: 0xfffff000, flags: 0x18 | 0x80, payload: 5000, id: 0xfffe });
      new DataView(sp.buffer).setUint16(36, fold(pseudoSum(sp, 32 + 5000)));
      sys.tunIn.push(
        cat(vnet(layout, { flags: 1, gso: 1, hdrLen: 52, gsoSize: 1448, start: 20, off: 16 }), sp),
      );
      assert.equal(fwd.pumpTun(), 1);
      assert.deepEqual(sys.sendCalls, udpSegment ? ["gso:1500x4"] : [4]);
      assert.equal(sys.udpOut.length, 4);
      let seq = 0xfffff000, at = 52;
      for (const [i, d] of sys.udpOut.entries()) {
        const p = d.bytes, dv = new DataView(p.buffer);
        const size = i < 3 ? 1448 : 5000 - 3 * 1448;
        assert.equal(IP4.fromNumber(d.addr).toString(), "192.0.2.12");
        assert.equal(p.length, 52 + size);
        assert.equal(dv.getUint16(2), 52 + size, "IP total length");
        assert.equal(dv.getUint16(4), (0xfffe + i) & 0xffff, "IP id counts up, wrapping");
        assert.equal(p[8], 63, "TTL − 1");
        assert.equal(onesSum(p, 0, 20), 0xffff, "IP checksum");
        assert.equal(dv.getUint32(24), seq >>> 0, "TCP seq advances by the MSS, wrapping");
        assert.equal(p[33], i === 0 ? 0x90 : i === 3 ? 0x18 : 0x10, "CWR on the first, PSH on the last");
        assert.deepEqual(p.subarray(40, 52), sp.subarray(40, 52), "options copied");
        assert.deepEqual(p.subarray(52), sp.subarray(at, at + size), "payload slice");
        assert.ok(l4Valid(p), `TCP checksum of segment ${i}`);
        seq += size;
        at += size;
      }
      assert.deepEqual([stats().tunRx, stats().udpTx], [1, 4]);
    });
  }

  Deno.test(`udp offload (${name}): partial checksums are completed; ICMP goes back with a virtio header`, () => {
    const { sys, fwd } = rig(layout, 4, { udpSegment: true, udpGro: true });
    const u = packet("10.5.1.2", "10.5.3.7", 64, 301);
    const dv = new DataView(u.buffer);
    dv.setUint16(26, fold(pseudoSum(u, u.length - 20))); // what CHECKSUM_PARTIAL leaves
    sys.tunIn.push(
      cat(vnet(layout, { flags: 1, start: 20, off: 6 }), u),
      cat(vnet(layout, {}), packet("10.5.1.2", "10.5.200.1", 64, 40)),
    );
    fwd.pumpTun();
    assert.equal(sys.udpOut.length, 1);
    assert.ok(l4Valid(sys.udpOut[0]!.bytes), "UDP checksum completed");
    assert.equal(sys.tunOut.length, 1);
    assert.deepEqual(sys.tunOut[0]!.subarray(0, 10), new Uint8Array(10), "a plain virtio header");
    assert.deepEqual([sys.tunOut[0]![10 + 20], sys.tunOut[0]![10 + 21]], [3, 0]);
  });

  Deno.test(`udp offload (${name}): in-order segments of one flow go into the TUN device as one`, () => {
    const { sys, fwd, stats } = rig(layout, 4, { udpSegment: true, udpGro: true });
    const segs = [0, 1, 2, 3].map((i) =>
      tcp({
        src: "10.5.2.9",
        dst: "10.5.1.2",
        seq: 1000 + i * 1448,
        payload: i < 3 ? 1448 : 500,
        flags: i === 3 ? 0x18 : 0x10,
        seed: i * 1448 * 7,
      })
    );
    const other = tcp({ src: "10.5.3.9", dst: "10.5.1.2", seq: 7, payload: 100 });
    const gap = tcp({ src: "10.5.2.9", dst: "10.5.1.2", seq: 9999, payload: 100 });
    sys.udpIn.push({ bytes: cat(...segs), gso: 1500 }, { bytes: other }, { bytes: gap });
    assert.equal(fwd.pumpUdp(), 3);
    assert.equal(sys.tunOut.length, 3);
    assert.deepEqual(sys.writeIovs, [5, 2, 2], "header + 4 payloads; then two singles");
    const [merged, single, gapped] = sys.tunOut as [Uint8Array, Uint8Array, Uint8Array];
    const vd = new DataView(merged.buffer);
    assert.deepEqual(
      [
        merged[0],
        merged[1],
        vd.getUint16(2, layout.littleEndian),
        vd.getUint16(4, layout.littleEndian),
        vd.getUint16(6, layout.littleEndian),
        vd.getUint16(8, layout.littleEndian),
      ],
      [1, 1, 52, 1448, 20, 16],
      "NEEDS_CSUM, GSO TCPV4, hdr_len, gso_size, csum_start, csum_offset",
    );
    const p = merged.subarray(10);
    const dv = new DataView(p.buffer, p.byteOffset);
    assert.equal(p.length, 52 + 3 * 1448 + 500);
    assert.equal(dv.getUint16(2), p.length);
    assert.equal(p[8], 63);
    assert.equal(onesSum(p, 0, 20), 0xffff);
    assert.equal(dv.getUint32(24), 1000);
    assert.equal(p[33], 0x18, "PSH from the last segment");
    assert.deepEqual(p.subarray(52), cat(...segs.map((s) => s.subarray(52))));
    // The kernel finishes a partial checksum: sum from csum_start with the field as given.
    const done = p.slice();
    new DataView(done.buffer).setUint16(36, ~onesSum(done, 20, done.length - 20) & 0xffff);
    assert.ok(l4Valid(done), "pseudo-header in the checksum field");
    assert.deepEqual(single.subarray(0, 10), new Uint8Array(10));
    assert.equal(single[10 + 8], 63);
    assert.ok(l4Valid(single.subarray(10)), "a single keeps its own checksum, TTL fixed incrementally");
    assert.equal(new DataView(gapped.buffer).getUint32(10 + 24), 9999, "out of order: not merged");
    const s = stats();
    assert.deepEqual([s.udpRx, s.tunTx, s.tunWrites], [6, 6, 3]);
  });
}

/**
 * The udp forwarding loop on real file descriptors, without privileges: one end of an AF_UNIX
 * datagram socketpair stands in for the TUN device (a packet per read/write, as a TUN device
 * gives), and real UDP sockets on 127.0.0.1 carry the encapsulated packets. Runs every thread
 * mode: one Worker, a Worker per direction, and the JS thread.
 */
import assert from "node:assert/strict";
import dgram from "node:dgram";
import { startDenoLoop } from "../../src/backends/udp/sys_deno.ts";
import { ipv4HeaderChecksum, onesSum } from "../../src/backends/udp/packet.ts";
import { IP4 } from "../../src/ip/mod.ts";

const ip = (s: string) => IP4.parse(s).value;

function packet(src: string, dst: string, ttl = 64, payload = 12, proto = 17): Uint8Array {
  const p = new Uint8Array(28 + payload);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  p[8] = ttl;
  p[9] = proto;
  dv.setUint32(12, ip(src));
  dv.setUint32(16, ip(dst));
  dv.setUint16(24, 8 + payload);
  for (let i = 0; i < payload; i++) p[28 + i] = (i * 7) & 0xff;
  dv.setUint16(10, ipv4HeaderChecksum(p));
  return p;
}

/** The remote node: a UDP socket on 127.0.0.1 with a queue of what it received. */
class Peer {
  readonly #queue: [Uint8Array, number][] = [];
  #waiter: (() => void) | undefined;

  private constructor(readonly sock: dgram.Socket, readonly port: number) {
    sock.on("message", (m, rinfo) => {
      this.#queue.push([new Uint8Array(m), rinfo.port]);
      this.#waiter?.();
    });
  }

  static async open(): Promise<Peer> {
    const sock = dgram.createSocket("udp4");
    await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
    return new Peer(sock, sock.address().port);
  }

  async receive(): Promise<[Uint8Array, number]> {
    while (this.#queue.length === 0) await new Promise<void>((r) => (this.#waiter = r));
    return this.#queue.shift()!;
  }

  send(p: Uint8Array, port: number): Promise<void> {
    return new Promise((res, rej) => this.sock.send(p, port, "127.0.0.1", (e) => (e ? rej(e) : res())));
  }

  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

const AF_UNIX = 1, AF_INET = 2, SOCK_DGRAM = 2, SOCK_NONBLOCK = 0o4000, SOCK_CLOEXEC = 0o2000000;

/** The libc calls this test makes for its side of the fds. */
function testLibc() {
  const lib = Deno.dlopen(
    "libc.so.6",
    {
      socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
      socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
      bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
      getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
      setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "i32", nonblocking: true },
      close: { parameters: ["i32"], result: "i32" },
    } as const,
  );
  return lib;
}

async function withLoop(
  threads: "worker" | "workers" | "main",
  offload: boolean,
  fn: (t: {
    tunSend(p: Uint8Array): void;
    tunRecv(): Promise<Uint8Array>;
    peer: Peer;
    loopPort: number;
    loop: Awaited<ReturnType<typeof startDenoLoop>>;
  }) => Promise<void>,
) {
  const lib = testLibc();
  const c = lib.symbols;
  const pair = new Int32Array(2);
  assert.equal(c.socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, new Uint8Array(pair.buffer)), 0);
  const [ours, tunSide] = [pair[0]!, pair[1]!];
  // The loop's end must not block (as the TUN fd, opened O_NONBLOCK): reopen it as such.
  const tunFd = nonblocking(tunSide);
  const udpFd = c.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const sa = new Uint8Array(16);
  new DataView(sa.buffer).setUint16(0, AF_INET, true);
  sa.set([127, 0, 0, 1], 4);
  assert.equal(c.bind(udpFd, sa, 16), 0);
  assert.equal(c.getsockname(udpFd, sa, new Uint8Array(new Uint32Array([16]).buffer)), 0);
  const loopPort = new DataView(sa.buffer).getUint16(2, false);
  const one = new Uint8Array(new Int32Array([1]).buffer);
  const SOL_UDP = 17, UDP_GRO = 104;
  if (offload) assert.equal(c.setsockopt(udpFd, SOL_UDP, UDP_GRO, one, 4), 0);
  const peer = await Peer.open();
  const loop = await startDenoLoop({
    tunFd,
    udpFd,
    tunAddr: ip("10.5.1.0"),
    mtu: 1472,
    maxPeers: 16,
    threads,
    ...(offload ? { offload: { udpSegment: true, udpGro: true } } : {}),
  });
  loop.setPeers([{
    net: ip("10.5.2.0"),
    mask: 0xffffff00,
    addr: ip("127.0.0.1"),
    port: peer.port,
  }]);
  const buf = new Uint8Array(70_000);
  try {
    await fn({
      tunSend: (p) => assert.equal(c.write(ours, p, BigInt(p.length)), p.length),
      tunRecv: async () => {
        const n = await c.read(ours, buf, BigInt(buf.length));
        assert.ok(n > 0);
        return buf.slice(0, n);
      },
      peer,
      loopPort,
      loop,
    });
  } finally {
    await loop.stop();
    await peer.close();
    for (const fd of [ours, tunFd, udpFd]) c.close(fd);
    lib.close();
  }

  /** The fd, duplicated as non-blocking (fcntl is variadic; dup3 + SOCK_NONBLOCK is not available). */
  function nonblocking(fd: number): number {
    const f = Deno.dlopen(
      "libc.so.6",
      {
        fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
      } as const,
    );
    const F_GETFL = 3, F_SETFL = 4;
    f.symbols.fcntl(fd, F_SETFL, f.symbols.fcntl(fd, F_GETFL, 0) | SOCK_NONBLOCK);
    f.close();
    return fd;
  }
}

for (const threads of ["worker", "workers", "main"] as const) {
  Deno.test({
    name: `udp loop on real fds (${threads}): both directions, ICMP, counters`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () =>
      withLoop(threads, false, async ({ tunSend, tunRecv, peer, loopPort, loop }) => {
        // TUN → UDP: the packet arrives at the peer as the UDP payload, TTL one less.
        tunSend(packet("10.5.1.2", "10.5.2.3", 64, 500));
        const [got, fromPort] = await peer.receive();
        assert.deepEqual(got, packet("10.5.1.2", "10.5.2.3", 63, 500));
        assert.equal(fromPort, loopPort);

        // UDP → TUN.
        await peer.send(packet("10.5.2.3", "10.5.1.2", 64, 1400), loopPort);
        assert.deepEqual(await tunRecv(), packet("10.5.2.3", "10.5.1.2", 63, 1400));

        // No peer for 10.5.99.0/24: ICMP net unreachable comes back into the TUN.
        tunSend(packet("10.5.1.2", "10.5.99.1", 64, 20));
        const icmp = await tunRecv();
        assert.deepEqual([icmp[9], icmp[20], icmp[21]], [1, 3, 0]);
        assert.equal(onesSum(icmp, 20, icmp.length - 20), 0xffff);

        // Bursts in each direction, in rounds small enough for the stand-in TUN's queue (an AF_UNIX
        // datagram socket holds 10) and the peer's default receive buffer.
        const ROUNDS = 100, BURST = 8, N = ROUNDS * BURST;
        for (let r = 0; r < ROUNDS; r++) {
          for (let i = 0; i < BURST; i++) tunSend(packet("10.5.1.2", "10.5.2.3", 64, 1000 + i));
          for (let i = 0; i < BURST; i++) assert.equal((await peer.receive())[0].length, 1028 + i);
          for (let i = 0; i < BURST; i++) {
            await peer.send(packet("10.5.2.3", "10.5.1.2", 64, 100 + i), loopPort);
          }
          for (let i = 0; i < BURST; i++) {
            assert.equal((await tunRecv()).length, 128 + i);
          }
        }
        // Counters are added after each ring, so the last ones may trail the packets a little.
        const deadline = Date.now() + 2000;
        while (loop.stats().tunTx < N + 2 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 5));
        }
        const s = loop.stats();
        assert.equal(s.tunRx, N + 2);
        assert.equal(s.udpTx, N + 1);
        assert.equal(s.udpRx, N + 1);
        assert.equal(s.tunTx, N + 2);
        assert.equal(s.noRoute, 1);
        assert.equal(s.errors, 0, `errno ${s.lastErrno}`);
      }),
  });
}

/** A TCP/IPv4 packet with valid checksums and a 12-byte option (header 52 bytes). */
function tcp(src: string, dst: string, seq: number, payload: number, seed = 0, flags = 0x10): Uint8Array {
  const p = new Uint8Array(52 + payload);
  const dv = new DataView(p.buffer);
  p[0] = 0x45;
  dv.setUint16(2, p.length);
  p[6] = 0x40;
  p[8] = 64;
  p[9] = 6;
  dv.setUint32(12, ip(src));
  dv.setUint32(16, ip(dst));
  dv.setUint16(20, 40000);
  dv.setUint16(22, 5201);
  dv.setUint32(24, seq);
  dv.setUint32(28, 1);
  p[32] = 0x80;
  p[33] = flags;
  dv.setUint16(34, 500);
  p.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], 40);
  for (let i = 0; i < payload; i++) p[52 + i] = (seed + i * 13) & 0xff;
  dv.setUint16(10, ipv4HeaderChecksum(p));
  dv.setUint16(36, ~fold(pseudo(p, 32 + payload) + onesSum(p, 20, 32 + payload)) & 0xffff);
  return p;
}
const fold = (s: number) => {
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
};
const pseudo = (p: Uint8Array, len: number) => onesSum(p, 12, 8) + p[9]! + len;
const tcpValid = (p: Uint8Array) => fold(pseudo(p, p.length - 20) + onesSum(p, 20, p.length - 20)) === 0xffff;
const hostLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

for (const threads of ["workers", "worker", "main"] as const) {
  Deno.test({
    name:
      `udp loop with offloads on real fds (${threads}): TSO reads leave as MSS packets, segments come back merged`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () =>
      withLoop(threads, true, async ({ tunSend, tunRecv, peer, loopPort, loop }) => {
        // TUN → UDP: a 20 000-byte TSO segment, as the kernel hands it over with a virtio header.
        const sp = tcp("10.5.1.2", "10.5.2.3", 0x10000, 20_000, 5, 0x18);
        new DataView(sp.buffer).setUint16(36, fold(pseudo(sp, 32 + 20_000)));
        const vh = new Uint8Array(10);
        const vd = new DataView(vh.buffer);
        vh[0] = 1; // NEEDS_CSUM
        vh[1] = 1; // GSO_TCPV4
        vd.setUint16(2, 52, hostLE);
        vd.setUint16(4, 1448, hostLE);
        vd.setUint16(6, 20, hostLE);
        vd.setUint16(8, 16, hostLE);
        const frame = new Uint8Array(10 + sp.length);
        frame.set(vh);
        frame.set(sp, 10);
        tunSend(frame);
        const got: Uint8Array[] = [];
        for (let i = 0; i < Math.ceil(20_000 / 1448); i++) got.push((await peer.receive())[0]);
        for (const [i, p] of got.entries()) {
          assert.ok(tcpValid(p), `segment ${i}: TCP checksum`);
          assert.equal(onesSum(p, 0, 20), 0xffff);
          assert.equal(new DataView(p.buffer).getUint32(24), 0x10000 + i * 1448);
          assert.equal(p[8], 63);
        }
        const stream = new Uint8Array(got.reduce((n, p) => n + p.length - 52, 0));
        got.reduce((o, p) => (stream.set(p.subarray(52), o), o + p.length - 52), 0);
        assert.deepEqual(stream, sp.subarray(52), "the payload, in order, whole");

        // UDP → TUN: ten in-order segments, then a UDP packet; every byte arrives, in few writes.
        const segs = Array.from({ length: 10 }, (_, i) =>
          tcp("10.5.2.3", "10.5.1.2", 777 + i * 1448, 1448, i * 1448 * 13));
        for (const s of segs) {
          await peer.send(s, loopPort);
        }
        await peer.send(packet("10.5.2.3", "10.5.1.2", 64, 30), loopPort);
        const want = new Uint8Array(10 * 1448);
        segs.forEach((s, i) =>
          want.set(s.subarray(52), i * 1448)
        );
        const have: number[] = [];
        let frames = 0;
        while (have.length < want.length) {
          const f = await tunRecv();
          frames++;
          const p = f.subarray(10);
          assert.equal(p[8], 63);
          assert.equal(onesSum(p, 0, 20), 0xffff, "IP checksum");
          if (f[1] === 1) {
            assert.equal(new DataView(f.buffer).getUint16(4, hostLE), 1448, "gso_size is the MSS");
          } else assert.ok(tcpValid(p));
          have.push(...p.subarray(52));
        }
        assert.deepEqual(new Uint8Array(have), want);
        const last = await tunRecv();
        assert.deepEqual(last.subarray(0, 10), new Uint8Array(10));
        assert.equal(last[10 + 9], 17);
        // The loop adds its counters after the ring's last write, so they may trail the packets.
        const deadline = Date.now() + 2000;
        while (loop.stats().udpRx < 11 && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 5));
        }
        const s = loop.stats();
        assert.equal(s.udpRx, 11);
        assert.ok(s.tunWrites <= 11 && frames <= 10, `${frames} frames`);
        assert.equal(s.errors, 0, `errno ${s.lastErrno}`);
      }),
  });
}

for (const threads of ["worker", "workers", "main"] as const) {
  Deno.test({
    name: `udp loop (${threads}): a thread that throws settles failed with its error; stop still works`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () =>
      withLoop(threads, true, async ({ tunSend, peer, loop }) => {
        let settled: Error | undefined;
        void loop.failed.then((e) => (settled = e));
        // Alive: a packet goes through, and nothing has failed.
        tunSend(vnet(64));
        await peer.receive();
        assert.equal(settled, undefined);
        loop.crash();
        const e = await loop.failed;
        assert.match(e.message, /udp forwarding (thread udp-\w+|loop) failed: .*told to fail/);
        assert.doesNotMatch(e.message, /\n/, "one line: no stack");
      }),
  });
}

/** A plain IPv4 packet behind an empty virtio header (the TUN fd of a loop with offloads). */
function vnet(payload: number): Uint8Array {
  const p = packet("10.5.1.2", "10.5.2.3", 64, payload);
  const f = new Uint8Array(10 + p.length);
  f.set(p, 10);
  return f;
}

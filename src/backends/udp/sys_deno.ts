/**
 * The udp data path under Deno: the TUN device and the UDP socket opened through libc
 * (`Deno.dlopen`, needs `--allow-ffi`), and the forwarding loop on a Worker thread.
 *
 * Why a Worker: waiting for a packet on the JS thread needs a `nonblocking` FFI poll, which Deno
 * runs on a pool thread and resolves as a promise: about 60 µs per wake-up here, against about
 * 1 µs for a blocking poll(2) on a thread of our own. The loop is synchronous, so on a Worker it
 * blocks in poll(2) when idle and never competes with the daemon's event loop. `threads: "main"`
 * keeps the JS-thread variant for the benchmark to compare.
 *
 * A bundled binary has no second module file to start a Worker from, so the Worker's program is
 * the source text of the loop's functions (forwarder.ts, offload.ts, packet.ts, and
 * {@linkcode bindLoopSys} and {@linkcode udpWorkerMain} here), served from a Blob URL. (The bundler
 * turns `class PeerTable` into `var PeerTable = class {…}`: loopSource binds every piece by name.)
 *
 * The TUN device is opened with IFF_VNET_HDR and TSO, and the socket gets UDP_GRO and, when the
 * kernel has it, UDP_SEGMENT (offload.ts); `offload: false` gives one packet per syscall
 * (forwarder.ts). The sender's TCP checksums run in WebAssembly SIMD (csum_wasm.ts). Measured on
 * a 2-CPU VM (tests/bench/udp_bench.ts, 2026-11-22): a Worker per direction 5.7–6.6 Gbit/s, one
 * Worker for both 5.2, the JS thread 5.0, without offloads 1.1; a Worker per direction is the
 * default (the ACKs of a stream never queue behind its 64 KiB sends).
 *
 * FFI notes. Results that are `ssize_t` are declared `i32`: x86_64 and aarch64 return them in a
 * 64-bit register whose low half is the value (every count here is below 2^31, and -1 stays -1),
 * and an `isize` result would come back as a BigInt, allocated per call. Lengths travel in iovecs
 * for the same reason. errno is read through `__errno_location()` right after the call, on the
 * thread that made it (each Worker binds its own).
 *
 * @module
 */
import { denoSyscalls } from "../../netlink/transport/deno_ffi.ts";
import { inNetns } from "../../netlink/transport/syscalls.ts";
import {
  type ForwarderConfig,
  loopSource,
  pollFds,
  readStats,
  STAT_BLOCK,
  STAT_BLOCKS,
} from "./forwarder.ts";
import { createForwarder, runLoop, sharedPeersLength, writeSharedPeers } from "./forwarder.ts";
import { createOffloadForwarder } from "./offload.ts";
import { wasmChecksum } from "./csum_wasm.ts";
import type { PeerRoute } from "./packet.ts";
import {
  AF_INET,
  type DataPath,
  type DataPathOptions,
  type DataPathStats,
  decodeIfreqName,
  DEFAULT_BATCH,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  encodeIfreq,
  encodeSockaddrIn,
  EPERM,
  IFF_NO_PI,
  IFF_TUN,
  IFF_VNET_HDR,
  type LoopSys,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  O_WRONLY,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
  SOL_UDP,
  structLayout,
  SyscallError,
  TUN_F_CSUM,
  TUN_F_TSO4,
  tunSetIff,
  tunSetOffload,
  UDP_GRO,
  UDP_SEGMENT,
} from "./sys.ts";

/** Socket buffers: room for bursts of a few thousand full-size packets (the kernel doubles it). */
const SOCKET_BUFFER = 4 << 20;
/** Slots per ring with offloads: each holds up to 64 KiB, so 16 is 1 MiB per direction. */
const OFFLOAD_BATCH = 16;
/** Values of the loop's control word (see runLoop in forwarder.ts): run, stop, throw (tests). */
const STOP = 1, FAIL = 2;
/** The first line of a thread's error text (its stack follows). */
const firstLine = (text: string) => text.split("\n", 1)[0]!;
/** Where the loop runs unless told otherwise (see DataPathOptions.threads and the module notes). */
const DEFAULT_THREADS = "workers";
/** How long close() waits for a loop thread to notice the stop request. */
const STOP_DEADLINE_MS = 2_000;

/**
 * Binds the loop's calls on the calling thread. Self-contained: it also runs inside the Worker.
 */
export function bindLoopSys(): LoopSys {
  const lib = Deno.dlopen(
    "libc.so.6",
    {
      readv: { parameters: ["i32", "buffer", "i32"], result: "i32" },
      writev: { parameters: ["i32", "buffer", "i32"], result: "i32" },
      sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
      recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
      sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
      poll: { parameters: ["buffer", "usize", "i32"], result: "i32" },
      __errno_location: { parameters: [], result: "pointer" },
    } as const,
  );
  const c = lib.symbols;
  const errno = new Deno.UnsafePointerView(c.__errno_location()!);
  const counts = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n];
  return {
    readv: (fd, iov, n) => {
      const r = c.readv(fd, iov, n);
      return r < 0 ? -errno.getInt32() : r;
    },
    writev: (fd, iov, n) => {
      const r = c.writev(fd, iov, n);
      return r < 0 ? -errno.getInt32() : r;
    },
    sendmmsg: (fd, hdrs, n, flags) => {
      const r = c.sendmmsg(fd, hdrs, n, flags);
      return r < 0 ? -errno.getInt32() : r;
    },
    recvmmsg: (fd, hdrs, n, flags) => {
      const r = c.recvmmsg(fd, hdrs, n, flags, null);
      return r < 0 ? -errno.getInt32() : r;
    },
    sendmsg: (fd, hdr, flags) => {
      const r = c.sendmsg(fd, hdr, flags);
      return r < 0 ? -errno.getInt32() : r;
    },
    poll: (fds, n, timeout) => {
      const r = c.poll(fds, counts[n] ?? BigInt(n), timeout);
      return r < 0 ? -errno.getInt32() : r;
    },
    address: (buf) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf))),
  };
}

/** What a loop Worker is started with. */
export interface WorkerStart {
  forwarder: ForwarderConfig;
  tun: boolean;
  udp: boolean;
  stopFd: number;
  control: Int32Array;
}

/**
 * A loop Worker's program: bind libc, build the forwarder, say so, loop until told to stop.
 * Self-contained (runs from its source text).
 */
export function udpWorkerMain(start: WorkerStart, post: (msg: unknown) => void): void {
  const sys = bindLoopSys();
  const fwd = start.forwarder.offload
    ? createOffloadForwarder(sys, start.forwarder)
    : createForwarder(sys, start.forwarder);
  const fds = [
    ...(start.tun ? [start.forwarder.tunFd] : []),
    ...(start.udp ? [start.forwarder.udpFd] : []),
    start.stopFd,
  ];
  post({ ready: true });
  runLoop(sys, fwd, {
    tun: start.tun,
    udp: start.udp,
    pollFds: pollFds(fds),
    pollCount: fds.length,
    control: start.control,
  });
}

/** The Worker program text. */
export function workerSource(): string {
  const main = udpWorkerMain.name;
  return loopSource(
    [createOffloadForwarder, bindLoopSys, udpWorkerMain],
    `self.onmessage = (e) => {
  self.onmessage = null;
  try {
    ${main}(e.data, (m) => self.postMessage(m));
    self.postMessage({ stopped: true });
  } catch (err) {
    self.postMessage({ error: String((err && err.stack) || err) });
  }
};`,
  );
}

/** A loop thread, as the data path holds it. */
interface LoopThread {
  /** Settles when the thread has left its loop: told to stop, or failed (then `died` says why). */
  stopped: Promise<void>;
  terminate(): void;
}

/**
 * Starts one loop Worker; resolves once it has bound libc and built its rings. After that, `died`
 * hears of the thread leaving its loop when no one asked it to (an exception, a crash).
 */
async function startWorker(
  url: string,
  start: WorkerStart,
  name: string,
  died: (e: Error) => void,
): Promise<LoopThread> {
  const w = new Worker(url, { type: "module", name });
  let ready!: () => void, failed!: (e: Error) => void, stopped!: () => void;
  const isReady = new Promise<void>((res, rej) => {
    ready = res;
    failed = rej;
  });
  const isStopped = new Promise<void>((res) => (stopped = res));
  const end = (err?: Error) => {
    if (err) failed(err);
    if (Atomics.load(start.control, 0) !== STOP) {
      died(err ?? new Error(`The udp forwarding thread ${name} left its loop without being asked to`));
    }
    stopped();
  };
  w.onmessage = (e: MessageEvent) => {
    const m = e.data as { ready?: boolean; stopped?: boolean; error?: string };
    if (m.ready) ready();
    if (m.stopped) end();
    if (m.error) end(new Error(`The udp forwarding thread ${name} failed: ${firstLine(m.error)}`));
  };
  w.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    end(new Error(`The udp forwarding thread ${name} failed: ${e.message}`));
  };
  w.postMessage(start);
  try {
    await isReady;
  } catch (e) {
    w.terminate();
    throw e;
  }
  return { stopped: isStopped, terminate: () => w.terminate() };
}

/** The loop on the JS thread, waiting through a `nonblocking` poll (for comparison). */
function startMainLoop(start: WorkerStart, signal: AbortSignal, died: (e: Error) => void): LoopThread {
  const lib = Deno.dlopen(
    "libc.so.6",
    {
      poll: { parameters: ["buffer", "usize", "i32"], result: "i32", nonblocking: true },
    } as const,
  );
  const sys = bindLoopSys();
  const fwd = start.forwarder.offload
    ? createOffloadForwarder(sys, start.forwarder)
    : createForwarder(sys, start.forwarder);
  const fds = pollFds([start.forwarder.tunFd, start.forwarder.udpFd, start.stopFd]);
  const stopped = (async () => {
    let rounds = 0;
    for (;;) {
      const c = Atomics.load(start.control, 0);
      if (signal.aborted || c === STOP) break;
      if (c === FAIL) throw new Error("the loop was told to fail (a test of crash handling)");
      fwd.syncPeers();
      const a = fwd.pumpTun();
      const b = fwd.pumpUdp();
      if (a > 0 || b > 0) {
        // Busy: still let the daemon's own work run now and then.
        if (++rounds % 16 === 0) await lib.symbols.poll(fds, 0n, 0);
        continue;
      }
      fwd.waited();
      await lib.symbols.poll(fds, 3n, a < 0 || b < 0 ? 100 : -1);
    }
  })().catch((e) => died(new Error(`The udp forwarding loop failed: ${(e as Error).message}`)))
    .finally(() => lib.close());
  return { stopped, terminate: () => {} };
}

/** The libc calls of setting up and tearing down, on the JS thread; opened once per process. */
let setup: ReturnType<typeof openSetupLib> | undefined;
function setupLib() {
  return (setup ??= openSetupLib());
}

function openSetupLib() {
  const { symbols: c } = Deno.dlopen(
    "libc.so.6",
    {
      open: { parameters: ["buffer", "i32"], result: "i32" },
      ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
      ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
      socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
      bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
      getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
      eventfd: { parameters: ["u32", "i32"], result: "i32" },
      write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
      __errno_location: { parameters: [], result: "pointer" },
    } as const,
  );
  const errno = new Deno.UnsafePointerView(c.__errno_location()!);
  const check = (r: number, op: string): number => {
    if (r < 0) throw new SyscallError(op, errno.getInt32());
    return r;
  };
  return { c, check };
}

const enc = new TextEncoder();
const ipText = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");

/** What {@linkcode startDenoLoop} needs: open fds and the loop's settings. */
export interface LoopStart
  extends Pick<DataPathOptions, "tunAddr" | "mtu" | "maxPeers" | "threads" | "batch"> {
  /** A packet fd: the TUN device (tests may use one end of a datagram socketpair). */
  tunFd: number;
  udpFd: number;
  /** The TUN fd carries virtio headers (IFF_VNET_HDR); what the socket can do (offload.ts). */
  offload?: { udpSegment: boolean; udpGro: boolean };
}

/** A running loop: the peer table to fill, the counters, and the stop. */
export interface LoopHandle {
  setPeers(routes: readonly PeerRoute[]): void;
  stats(): DataPathStats;
  /** Settles with the first error of a loop thread that stopped on its own; never settles otherwise. */
  readonly failed: Promise<Error>;
  /** Makes every loop thread throw, as a bug would (tests of crash handling). */
  crash(): void;
  /** Stops the loop threads; the fds stay open (they belong to the caller). Idempotent. */
  stop(): Promise<void>;
}

/** Starts the forwarding loop between two open fds. */
export async function startDenoLoop(o: LoopStart): Promise<LoopHandle> {
  const { c, check } = setupLib();
  const stopFd = check(c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), "create an eventfd");
  const peers = new Int32Array(new SharedArrayBuffer(4 * sharedPeersLength(o.maxPeers)));
  const stats = new Float64Array(new SharedArrayBuffer(8 * STAT_BLOCK * STAT_BLOCKS));
  const control = new Int32Array(new SharedArrayBuffer(4));
  const forwarder: ForwarderConfig = {
    tunFd: o.tunFd,
    udpFd: o.udpFd,
    tunAddr: o.tunAddr,
    batch: o.batch ?? (o.offload ? OFFLOAD_BATCH : DEFAULT_BATCH),
    slotSize: Math.max(2048, Math.ceil(o.mtu / 64) * 64),
    layout: structLayout(8), // every Deno target is 64-bit
    peers,
    stats,
    ...(o.offload ? { offload: o.offload } : {}),
  };
  const threads: LoopThread[] = [];
  const mainStop = new AbortController();
  let died!: (e: Error) => void;
  const failed = new Promise<Error>((res) => (died = res));
  const stop = async () => {
    await stopThreads(threads, control, () => wake(c, stopFd), mainStop);
    c.close(stopFd);
  };
  const mode = o.threads ?? DEFAULT_THREADS;
  try {
    if (mode === "main") {
      threads.push(
        startMainLoop({ forwarder, tun: true, udp: true, stopFd, control }, mainStop.signal, died),
      );
    } else {
      const url = URL.createObjectURL(new Blob([workerSource()], { type: "text/javascript" }));
      try {
        const parts = mode === "workers" ? [[true, false], [false, true]] : [[true, true]];
        for (const [tun, udp] of parts) {
          const name = `udp-${tun ? "tun" : ""}${udp ? "udp" : ""}`;
          const start = { forwarder, tun: tun!, udp: udp!, stopFd, control };
          threads.push(await startWorker(url, start, name, died));
        }
      } finally {
        URL.revokeObjectURL(url);
      }
    }
  } catch (e) {
    await stop();
    throw e;
  }
  let stopping: Promise<void> | undefined;
  return {
    setPeers: (routes) => writeSharedPeers(peers, routes),
    stats: () => readStats(stats),
    failed,
    crash() {
      Atomics.store(control, 0, FAIL);
      wake(c, stopFd);
    },
    stop: () => (stopping ??= stop()),
  };
}

/**
 * Opens the TUN device and the UDP socket and starts the loop.
 *
 * @throws {SyscallError} when a device or the socket cannot be opened (no /dev/net/tun, the port
 * in use, no privileges).
 */
export async function openDenoDataPath(o: DataPathOptions): Promise<DataPath> {
  const { c, check } = setupLib();
  const layout = structLayout(8); // every Deno target is 64-bit
  const netlinkSys = denoSyscalls();
  const where = o.netns === undefined ? "" : ` in network namespace ${o.netns}`;
  const fds: number[] = [];
  try {
    const tunFd = inNetns(
      netlinkSys,
      o.netns,
      () =>
        check(
          c.open(enc.encode("/dev/net/tun\0"), O_RDWR | O_CLOEXEC | O_NONBLOCK),
          `open /dev/net/tun${where}`,
        ),
    );
    fds.push(tunFd);
    const offload = o.offload ?? true;
    const flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    const ifr = encodeIfreq(o.tunName, flags, layout);
    check(c.ioctl(tunFd, BigInt(tunSetIff(Deno.build.arch)), ifr), `create TUN device ${o.tunName}`);
    const tunName = decodeIfreqName(ifr);
    // Without TSO the kernel segments before the TUN device; the virtio headers still work.
    const tso = offload &&
      c.ioctl_int(tunFd, BigInt(tunSetOffload(Deno.build.arch)), BigInt(TUN_F_CSUM | TUN_F_TSO4)) === 0;

    // The socket blocks on send (backpressure when its buffer is full); receives never block.
    const udpFd = inNetns(
      netlinkSys,
      o.netns,
      () => check(c.socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), `open a UDP socket${where}`),
    );
    fds.push(udpFd);
    const int = new Int32Array(1);
    const intBytes = new Uint8Array(int.buffer);
    const setInt = (name: number, value: number, level = SOL_SOCKET) => {
      int[0] = value;
      return c.setsockopt(udpFd, level, name, intBytes, 4);
    };
    for (const [force, plain] of [[SO_RCVBUFFORCE, SO_RCVBUF], [SO_SNDBUFFORCE, SO_SNDBUF]] as const) {
      // The FORCE variants pass net.core.[rw]mem_max but need CAP_NET_ADMIN.
      if (setInt(force, SOCKET_BUFFER) < 0 && errnoIs(EPERM)) setInt(plain, SOCKET_BUFFER);
    }
    // UDP GSO (4.18) and GRO (5.0): setting a default segment size of 0 probes the first.
    const udpSegment = offload && setInt(UDP_SEGMENT, 0, SOL_UDP) === 0;
    const udpGro = offload && setInt(UDP_GRO, 1, SOL_UDP) === 0;
    const addr = encodeSockaddrIn(o.bindAddr, o.port, layout);
    check(c.bind(udpFd, addr, addr.length), `bind the UDP socket to ${ipText(o.bindAddr)}:${o.port}`);
    const len = new Uint32Array([addr.length]);
    check(c.getsockname(udpFd, addr, new Uint8Array(len.buffer)), "read the UDP socket's address");
    const port = new DataView(addr.buffer).getUint16(2, false);

    const { offload: _, ...rest } = o;
    const loop = await startDenoLoop({
      ...rest,
      tunFd,
      udpFd,
      ...(offload ? { offload: { udpSegment, udpGro } } : {}),
    });
    let closing: Promise<void> | undefined;
    const features = [
      offload ? "vnet-hdr" : "",
      tso ? "tso4" : "",
      offload && udpSegment ? "udp-gso" : "",
      offload && udpGro ? "udp-gro" : "",
      tso && wasmChecksum(new WebAssembly.Memory({ initial: 1 })) ? "csum-simd" : "",
      `loop:${o.threads ?? DEFAULT_THREADS}`,
    ].filter(Boolean);
    return {
      tunName,
      port,
      features,
      failed: loop.failed,
      setPeers: (routes) => loop.setPeers(routes),
      stats: () => loop.stats(),
      setDeviceSysctl(name: string, value: string) {
        const path = `/proc/sys/net/ipv4/conf/${tunName}/${name}`;
        const fd = inNetns(
          netlinkSys,
          o.netns,
          () => check(c.open(enc.encode(`${path}\0`), O_WRONLY | O_CLOEXEC), `open ${path}`),
        );
        try {
          const b = enc.encode(value);
          check(c.write(fd, b, BigInt(b.length)), `write ${path}`);
        } finally {
          c.close(fd);
        }
      },
      close(): Promise<void> {
        closing ??= (async () => {
          await loop.stop();
          for (const fd of fds) c.close(fd); // closing the TUN fd removes the device
        })();
        return closing;
      },
    };
  } catch (e) {
    for (const fd of fds) c.close(fd);
    throw e;
  }

  function errnoIs(n: number): boolean {
    return new Deno.UnsafePointerView(c.__errno_location()!).getInt32() === n;
  }
}

/** Wakes every loop blocked in poll(2): the eventfd stays readable from then on. */
function wake(c: ReturnType<typeof setupLib>["c"], fd: number): void {
  c.write(fd, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
}

async function stopThreads(
  threads: LoopThread[],
  control: Int32Array,
  wakeAll: () => void,
  mainStop: AbortController,
): Promise<void> {
  Atomics.store(control, 0, STOP);
  mainStop.abort();
  wakeAll();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((r) => (timer = setTimeout(r, STOP_DEADLINE_MS)));
  try {
    await Promise.race([Promise.all(threads.map((t) => t.stopped)), late]);
  } finally {
    clearTimeout(timer);
    for (const t of threads) t.terminate();
  }
}

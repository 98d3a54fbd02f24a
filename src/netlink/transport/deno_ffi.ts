/**
 * The netlink transport under Deno: libc's socket calls through `Deno.dlopen` (needs `--allow-ffi`).
 *
 * Every call but two is a synchronous FFI call on the JS thread, so `setns` and the `socket` that
 * follows it run on the same thread. `poll` (waiting for events) and the `recvMode: "thread"`
 * variant of `recvfrom` are `nonblocking` symbols: Deno runs them on a worker thread and returns a
 * promise. A wait is woken early through an eventfd in the same poll set.
 *
 * errno is read through `__errno_location()` right after the call. Deno may, very rarely (seen once
 * in ~10⁵ calls, while V8 tiers a function up), overwrite it in between; the shared socket logic
 * therefore never trusts an unexpected receive errno (see socket.ts).
 *
 * @module
 */
import { createNetlinkSocket, type SocketOptions } from "./socket.ts";
import type { Syscalls } from "./syscalls.ts";
import { debugSwitch, NETLINK_DEBUG_ENV } from "./hexdump.ts";
import type { NetlinkSocket } from "./types.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  recvfrom: { parameters: ["i32", "buffer", "usize", "i32", "pointer", "pointer"], result: "isize" },
  recvfrom_thread: {
    name: "recvfrom",
    parameters: ["i32", "buffer", "usize", "i32", "pointer", "pointer"],
    result: "isize",
    nonblocking: true,
  },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  setns: { parameters: ["i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

const POLLIN = 0x1;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const ONE = new Uint8Array(new BigUint64Array([1n]).buffer);
const enc = new TextEncoder();

/** libc, opened on first use: one handle per process, like the C library itself. */
let cached: Syscalls | undefined;

/**
 * The libc calls of {@linkcode Syscalls} through Deno FFI. Opened once per process.
 *
 * @throws {Deno.errors.NotCapable} without `--allow-ffi`.
 */
export function denoSyscalls(): Syscalls {
  if (cached) return cached;
  const { symbols: c } = Deno.dlopen("libc.so.6", SYMBOLS);
  const errnoView = new Deno.UnsafePointerView(c.__errno_location()!);
  /** The result, or -errno when the call returned -1. */
  const ret = (r: number | bigint): number => {
    const n = Number(r);
    return n < 0 ? -errnoView.getInt32() : n;
  };
  const intBuf = new Int32Array(1);
  const intBytes = new Uint8Array(intBuf.buffer);
  const lenBuf = new Uint32Array(1);
  const lenBytes = new Uint8Array(lenBuf.buffer);
  cached = {
    socket: (domain, type, proto) => ret(c.socket(domain, type, proto)),
    bind: (fd, addr) => ret(c.bind(fd, addr, addr.length)),
    getsockname: (fd, addr) => {
      lenBuf[0] = addr.length;
      return ret(c.getsockname(fd, addr, lenBytes));
    },
    setsockopt: (fd, level, name, value) => {
      intBuf[0] = value;
      return ret(c.setsockopt(fd, level, name, intBytes, 4));
    },
    getsockopt: (fd, level, name) => {
      lenBuf[0] = 4;
      const r = ret(c.getsockopt(fd, level, name, intBytes, lenBytes));
      return r < 0 ? r : intBuf[0]!;
    },
    sendto: (fd, buf, flags, addr) => ret(c.sendto(fd, buf, BigInt(buf.length), flags, addr, addr.length)),
    recvfrom: (fd, buf, flags) => ret(c.recvfrom(fd, buf, BigInt(buf.length), flags, null, null)),
    recvfromAsync: async (fd, buf, flags) =>
      Number(await c.recvfrom_thread(fd, buf, BigInt(buf.length), flags, null, null)),
    open: (path, flags) => ret(c.open(enc.encode(`${path}\0`), flags)),
    setns: (fd, nstype) => ret(c.setns(fd, nstype)),
    close: (fd) => ret(c.close(fd)),
    waitReadable: async (fd, signal) => {
      if (signal.aborted) return;
      const efd = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (efd < 0) {
        throw new Error(
          `Cannot create an eventfd to wait on netlink socket ${fd}: errno ${errnoView.getInt32()}`,
        );
      }
      // struct pollfd { int fd; short events; short revents; } × 2: the socket, and the wake-up.
      const fds = new Uint8Array(16);
      const dv = new DataView(fds.buffer);
      dv.setInt32(0, fd, true);
      dv.setInt16(4, POLLIN, true);
      dv.setInt32(8, efd, true);
      dv.setInt16(12, POLLIN, true);
      const wake = () => void c.write(efd, ONE, 8n);
      signal.addEventListener("abort", wake, { once: true });
      try {
        await c.poll(fds, 2n, -1);
      } finally {
        signal.removeEventListener("abort", wake);
        c.close(efd);
      }
    },
  };
  return cached;
}

/** Options of the Deno {@linkcode openNetlink}: the common ones, and the receive mode to measure. */
export interface DenoOpenOptions extends Omit<SocketOptions, "firstSeq"> {}

/**
 * Opens a netlink socket through Deno FFI. FLANNEL_NETLINK_DEBUG=1 turns on the hex dump unless
 * `opts.debug` says otherwise.
 *
 * @example
 * ```ts ignore
 * import { NETLINK_ROUTE } from "../codec/mod.ts";
 * const nl = openNetlink(NETLINK_ROUTE, { netns: "test" });
 * try {
 *   const links = await nl.dump({ type: 18 /* RTM_GETLINK *\/, payload: new Uint8Array(16) });
 *   console.log(links.length);
 * } finally {
 *   nl.close();
 * }
 * ```
 * @throws {NetlinkError} when the socket cannot be opened (no such namespace, no permission).
 */
export function openNetlink(proto: number, opts: DenoOpenOptions = {}): NetlinkSocket {
  let debug = opts.debug;
  if (debug === undefined) {
    try {
      debug = debugSwitch(Deno.env.get(NETLINK_DEBUG_ENV));
    } catch {
      debug = false; // no --allow-env: the switch is off
    }
  }
  return createNetlinkSocket(denoSyscalls(), proto, { ...opts, debug });
}

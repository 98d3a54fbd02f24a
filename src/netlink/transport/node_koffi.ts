/**
 * The netlink transport under Node: the same libc calls as `deno_ffi.ts`, through koffi (npm
 * `koffi`, which ships prebuilt binaries for linux x64/arm64 as optional dependencies, so installing
 * it builds nothing).
 *
 * Synchronous calls run on the JS thread, so `setns` and the `socket` after it share a thread.
 * koffi saves errno inside the native call, so `koffi.errno()` is exact. Waiting for readability is a
 * libuv poll handle (`koffi.node.poll`) on the event loop: no thread, no wake-up fd.
 *
 * @module
 */
import koffi from "koffi";
import process from "node:process";
import { createNetlinkSocket, type SocketOptions } from "./socket.ts";
import type { Syscalls } from "./syscalls.ts";
import { debugSwitch, NETLINK_DEBUG_ENV } from "./hexdump.ts";
import type { NetlinkSocket, OpenOptions } from "./types.ts";

/** libc, loaded on first use: one handle per process, like the C library itself. */
let cached: Syscalls | undefined;

/** The libc calls of {@linkcode Syscalls} through koffi. Loaded once per process. */
export function koffiSyscalls(): Syscalls {
  if (cached) return cached;
  const lib = koffi.load("libc.so.6");
  const f = {
    socket: lib.func("int socket(int, int, int)"),
    bind: lib.func("int bind(int, const void *, uint32_t)"),
    getsockname: lib.func("int getsockname(int, void *, void *)"),
    setsockopt: lib.func("int setsockopt(int, int, int, const void *, uint32_t)"),
    getsockopt: lib.func("int getsockopt(int, int, int, void *, void *)"),
    sendto: lib.func("intptr_t sendto(int, const void *, size_t, int, const void *, uint32_t)"),
    recvfrom: lib.func("intptr_t recvfrom(int, void *, size_t, int, void *, void *)"),
    open: lib.func("int open(const char *, int)"),
    setns: lib.func("int setns(int, int)"),
    close: lib.func("int close(int)"),
  };
  /** The result, or -errno when the call returned -1. */
  const ret = (r: number | bigint): number => {
    const n = Number(r);
    return n < 0 ? -koffi.errno() : n;
  };
  const intBuf = new Int32Array(1);
  const lenBuf = new Uint32Array(1);
  cached = {
    socket: (domain, type, proto) => ret(f.socket(domain, type, proto)),
    bind: (fd, addr) => ret(f.bind(fd, addr, addr.length)),
    getsockname: (fd, addr) => {
      lenBuf[0] = addr.length;
      return ret(f.getsockname(fd, addr, lenBuf));
    },
    setsockopt: (fd, level, name, value) => {
      intBuf[0] = value;
      return ret(f.setsockopt(fd, level, name, intBuf, 4));
    },
    getsockopt: (fd, level, name) => {
      lenBuf[0] = 4;
      const r = ret(f.getsockopt(fd, level, name, intBuf, lenBuf));
      return r < 0 ? r : intBuf[0]!;
    },
    sendto: (fd, buf, flags, addr) => ret(f.sendto(fd, buf, buf.length, flags, addr, addr.length)),
    recvfrom: (fd, buf, flags) => ret(f.recvfrom(fd, buf, buf.length, flags, null, null)),
    open: (path, flags) => ret(f.open(path, flags)),
    setns: (fd, nstype) => ret(f.setns(fd, nstype)),
    close: (fd) => ret(f.close(fd)),
    waitReadable: (fd, signal) =>
      new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        const done = () => {
          signal.removeEventListener("abort", done);
          handle.close();
          resolve();
        };
        // An error pending on the socket (ENOBUFS) wakes it too: the next recvfrom reports it.
        const handle = koffi.node.poll(fd, { readable: true }, done);
        signal.addEventListener("abort", done, { once: true });
      }),
  };
  return cached;
}

/**
 * Opens a netlink socket through koffi. FLANNEL_NETLINK_DEBUG=1 turns on the hex dump unless
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
export function openNetlink(proto: number, opts: OpenOptions = {}): NetlinkSocket {
  const socketOpts: SocketOptions = {
    ...opts,
    debug: opts.debug ?? debugSwitch(process.env[NETLINK_DEBUG_ENV]),
  };
  return createNetlinkSocket(koffiSyscalls(), proto, socketOpts);
}

/**
 * systemd's readiness notification (`sd_notify(READY=1)`): one datagram to the unix socket named
 * by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace). A no-op without it, as
 * upstream (start-up step 21). libc through Deno FFI, since Deno's unix datagram sockets are
 * unstable.
 *
 * @module
 */

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
/** sizeof(struct sockaddr_un): a 2-byte family and a 108-byte path. */
const SOCKADDR_UN_LEN = 110;

/**
 * Sends `state` (e.g. `READY=1`) to `socketPath`. Returns undefined on success, or why it could
 * not (the caller logs it; a failed notification never stops the daemon).
 */
export function sdNotify(socketPath: string | undefined, state: string): string | undefined {
  if (!socketPath) return undefined;
  const path = new TextEncoder().encode(socketPath.startsWith("@") ? `\0${socketPath.slice(1)}` : socketPath);
  if (path.length >= SOCKADDR_UN_LEN - 2) {
    return `NOTIFY_SOCKET ${socketPath} is longer than a unix socket path may be`;
  }
  let lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
      sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
    });
  } catch (e) {
    return `cannot load libc: ${(e as Error).message}`;
  }
  try {
    const fd = lib.symbols.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "socket(AF_UNIX, SOCK_DGRAM) failed";
    try {
      const addr = new Uint8Array(SOCKADDR_UN_LEN);
      new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
      addr.set(path, 2);
      // Abstract addresses are exactly as long as their name; paths are NUL-terminated.
      const len = socketPath.startsWith("@") ? 2 + path.length : 2 + path.length + 1;
      const msg = new TextEncoder().encode(state);
      const n = lib.symbols.sendto(fd, msg, BigInt(msg.length), 0, addr, len);
      return Number(n) === msg.length ? undefined : `sendto ${socketPath} failed`;
    } finally {
      lib.symbols.close(fd);
    }
  } finally {
    lib.close();
  }
}

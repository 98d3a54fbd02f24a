import assert from "node:assert/strict";
import { sdNotify } from "../../src/runtime/sd_notify.ts";

/** A unix datagram socket bound at `path` (libc through FFI; Deno's own are unstable). */
function listen(path: string) {
  const lib = Deno.dlopen("libc.so.6", {
    socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
    bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
    recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
    close: { parameters: ["i32"], result: "i32" },
  });
  const fd = lib.symbols.socket(1, 2, 0);
  const addr = new Uint8Array(110);
  new DataView(addr.buffer).setUint16(0, 1, true);
  const p = new TextEncoder().encode(path);
  addr.set(p, 2);
  assert.equal(lib.symbols.bind(fd, addr, 2 + p.length + 1), 0, "bind");
  return {
    recv(): string {
      const buf = new Uint8Array(256);
      const n = Number(lib.symbols.recv(fd, buf, 256n, 0x40 /* MSG_DONTWAIT */));
      return n > 0 ? new TextDecoder().decode(buf.subarray(0, n)) : "";
    },
    close() {
      lib.symbols.close(fd);
      lib.close();
    },
  };
}

Deno.test("sd_notify: READY=1 reaches the NOTIFY_SOCKET datagram socket; no socket is a no-op", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/notify`;
  const l = listen(path);
  try {
    assert.equal(sdNotify(path, "READY=1"), undefined);
    assert.equal(l.recv(), "READY=1");
    assert.equal(sdNotify(undefined, "READY=1"), undefined);
    assert.match(sdNotify(`${dir}/missing`, "READY=1") ?? "", /sendto .* failed/);
  } finally {
    l.close();
    await Deno.remove(dir, { recursive: true });
  }
});

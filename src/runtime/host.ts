/**
 * {@linkcode HostOps} on Deno.
 *
 * @module
 */
import type { Child, HostOps } from "../backends/host.ts";
import { writeFileAtomic } from "./fs.ts";
import { openDenoDataPath } from "../backends/udp/sys_deno.ts";

const dec = new TextDecoder();

async function pump(stream: ReadableStream<Uint8Array>, log: (line: string) => void): Promise<void> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      log(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  }
  if (buf) log(buf);
}

/** The real host. */
export const denoHost: HostOps = {
  env: (name) => Deno.env.get(name),
  async readFile(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  },
  async fileMode(path) {
    try {
      return ((await Deno.stat(path)).mode ?? 0) & 0o7777;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  },
  writeFile: (path, data, mode, dirMode) => writeFileAtomic(path, data, mode, dirMode),
  async which(cmd, extraDirs = []) {
    const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...extraDirs];
    for (const d of dirs) {
      try {
        const st = await Deno.stat(`${d}/${cmd}`);
        if (st.isFile && ((st.mode ?? 0) & 0o111)) return `${d}/${cmd}`;
      } catch { /* next */ }
    }
    return undefined;
  },
  spawn(argv, opts): Child {
    const [cmd, ...args] = argv;
    const child = new Deno.Command(cmd!, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      ...(opts.env ? { env: opts.env } : {}),
    }).spawn();
    const pumps = Promise.all([pump(child.stdout, opts.log), pump(child.stderr, opts.log)]);
    return {
      pid: child.pid,
      exited: child.status.then(async (s) => {
        await pumps.catch(() => {});
        return s.code;
      }),
      kill(signal = "SIGTERM") {
        try {
          child.kill(signal);
        } catch { /* already exited */ }
      },
    };
  },
  async run(argv, opts = {}) {
    const [cmd, ...args] = argv;
    const child = new Deno.Command(cmd!, {
      args,
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(opts.env ? { env: opts.env } : {}),
    }).spawn();
    if (opts.stdin !== undefined) {
      // A command that exits without reading its input is fine: ignore the broken pipe.
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    const out = await child.output();
    return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
  },
  async unixRequest(path, request, done) {
    const conn = await Deno.connect({ transport: "unix", path });
    try {
      await conn.write(request);
      let response = new Uint8Array(0);
      const buf = new Uint8Array(65536);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        const next = new Uint8Array(response.length + n);
        next.set(response);
        next.set(buf.subarray(0, n), response.length);
        response = next;
        if (done(response)) break;
      }
      return response;
    } finally {
      conn.close();
    }
  },
  openUdpDataPath: openDenoDataPath,
  async exists(path) {
    try {
      await Deno.stat(path);
      return true;
    } catch {
      return false;
    }
  },
};

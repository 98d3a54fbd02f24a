/**
 * A fake {@linkcode HostOps}: files with modes in memory, an env map, no processes unless a test
 * supplies them.
 */
import type { Child, HostOps } from "../../src/backends/host.ts";

export class FakeHost implements HostOps {
  readonly files = new Map<string, { data: string; mode: number }>();
  readonly dirs = new Map<string, number>();
  readonly envs: Record<string, string> = {};
  readonly binaries = new Set<string>();
  readonly ran: string[][] = [];
  runResult: (argv: string[], stdin?: string) => { code: number; output: string } = () => ({
    code: 0,
    output: "",
  });

  env(name: string) {
    return this.envs[name];
  }
  readFile(path: string) {
    return Promise.resolve(this.files.get(path)?.data);
  }
  fileMode(path: string) {
    return Promise.resolve(this.files.get(path)?.mode);
  }
  writeFile(path: string, data: string, mode: number, dirMode: number) {
    this.dirs.set(path.slice(0, path.lastIndexOf("/")), dirMode);
    this.files.set(path, { data, mode });
    return Promise.resolve();
  }
  which(cmd: string) {
    return Promise.resolve(this.binaries.has(cmd) ? `/usr/bin/${cmd}` : undefined);
  }
  /** Set to let `spawn` succeed: returns a child that exits when killed. */
  spawnable = false;
  readonly spawned: string[][] = [];
  spawn(argv: string[]): Child {
    if (!this.spawnable) throw new Error(`FakeHost cannot spawn ${argv.join(" ")}`);
    this.spawned.push(argv);
    let exit: (code: number) => void = () => {};
    const exited = new Promise<number>((r) => (exit = r));
    return { pid: 4242, exited, kill: () => exit(0) };
  }
  run(argv: string[], opts: { stdin?: string } = {}) {
    this.ran.push(argv);
    return Promise.resolve(this.runResult(argv, opts.stdin));
  }
  /** Answers unix-socket requests when set. */
  unixHandler: ((path: string, request: Uint8Array) => Uint8Array) | undefined;
  unixRequest(path: string, request: Uint8Array): Promise<Uint8Array> {
    if (!this.unixHandler) return Promise.reject(new Error(`FakeHost has no socket ${path}`));
    try {
      return Promise.resolve(this.unixHandler(path, request));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  exists(path: string) {
    return Promise.resolve(this.files.has(path));
  }
}

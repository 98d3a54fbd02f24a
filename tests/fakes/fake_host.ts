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
  spawn(argv: string[]): Child {
    throw new Error(`FakeHost cannot spawn ${argv.join(" ")}`);
  }
  run(argv: string[], opts: { stdin?: string } = {}) {
    this.ran.push(argv);
    return Promise.resolve(this.runResult(argv, opts.stdin));
  }
  unixRequest(path: string): Promise<string> {
    return Promise.reject(new Error(`FakeHost has no socket ${path}`));
  }
  exists(path: string) {
    return Promise.resolve(this.files.has(path));
  }
}

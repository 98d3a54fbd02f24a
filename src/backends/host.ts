/**
 * What backends may do on the host besides netlink: files with modes, environment variables,
 * child processes, unix-socket requests. Injected (the Deno implementation is
 * `src/runtime/host.ts`), so backend tests run against a fake.
 *
 * @module
 */
import type { OpenDataPath } from "./udp/sys.ts";

/** A child process a backend started (wireguard-go, charon, an extension command). */
export interface Child {
  readonly pid: number;
  /** Resolves with the exit code. */
  readonly exited: Promise<number>;
  kill(signal?: "SIGTERM" | "SIGKILL"): void;
}

/** The host operations. */
export interface HostOps {
  env(name: string): string | undefined;
  /** The file's text, or undefined when it does not exist. */
  readFile(path: string): Promise<string | undefined>;
  /** Permission bits of a file, or undefined when it does not exist. */
  fileMode(path: string): Promise<number | undefined>;
  /** Creates parent directories (mode `dirMode`) and writes the file with exactly `mode`. */
  writeFile(path: string, data: string, mode: number, dirMode: number): Promise<void>;
  /** The absolute path of an executable found in PATH or the given extra directories. */
  which(cmd: string, extraDirs?: string[]): Promise<string | undefined>;
  /** Starts a long-running child; its output goes to `log` line by line. */
  spawn(argv: string[], opts: { env?: Record<string, string>; log: (line: string) => void }): Child;
  /** Runs a command to completion with optional stdin; combined output. */
  run(
    argv: string[],
    opts?: { env?: Record<string, string>; stdin?: string },
  ): Promise<{ code: number; output: string }>;
  /** Sends `request` on a unix stream socket and reads until `done(response)` or EOF. */
  unixRequest(
    path: string,
    request: Uint8Array,
    done: (response: Uint8Array) => boolean,
  ): Promise<Uint8Array>;
  /** Does the path exist? */
  exists(path: string): Promise<boolean>;
  /** Opens the udp backend's TUN device and UDP socket (the runtime's FFI data path). */
  openUdpDataPath?: OpenDataPath;
}

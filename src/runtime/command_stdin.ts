/**
 * Running external programs that read a payload on standard input (`iptables-restore`,
 * `nft -f -`): argv only, never a shell.
 *
 * A program that is not installed is reported as exit code 127 with an empty output, the
 * convention of POSIX shells, so that callers outside `src/runtime/` can tell "not installed" from
 * "failed" without touching runtime error classes.
 *
 * @module
 */
import type { CommandResult } from "../iface/mod.ts";

/** One program run: its argv, and optionally the text to write to its standard input. */
export interface StdinCommand {
  /** `argv[0]` is the program, looked up in `PATH`. */
  argv: string[];
  /** Written to standard input, which is then closed; without it standard input is empty. */
  stdin?: string;
}

/** Runs a program (no shell) and waits for it; exit code 127 means "not installed". */
export type StdinCommandRunner = (cmd: StdinCommand) => Promise<CommandResult>;

/** The exit code a {@linkcode StdinCommandRunner} reports for a program that does not exist. */
export const EXIT_NOT_FOUND = 127;

/**
 * Runs `argv[0]` with the rest as arguments on Deno, feeding `stdin` when given.
 *
 * @example
 * ```ts ignore
 * const res = await denoRunStdinCommand({ argv: ["nft", "-f", "-"], stdin: "list tables\n" });
 * if (res.code === EXIT_NOT_FOUND) console.log("nft is not installed");
 * ```
 */
export const denoRunStdinCommand: StdinCommandRunner = async (cmd) => {
  const [prog, ...args] = cmd.argv;
  if (!prog) throw new TypeError("Cannot run an empty command");
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(prog, {
      args,
      stdin: cmd.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return { code: EXIT_NOT_FOUND, stdout: "", stderr: `${prog}: command not found` };
    }
    throw e;
  }
  if (cmd.stdin !== undefined) {
    const w = child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(cmd.stdin));
      await w.close();
    } catch {
      // The program exited without reading all of its input; its exit code tells why.
    }
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
};

/**
 * A runner that runs every program inside the named network namespace (`ip netns exec`), through
 * `env` so that a missing program still reports exit code 127. For tests and tools that must
 * never touch the caller's own namespace.
 */
export function netnsRunner(
  netns: string,
  inner: StdinCommandRunner = denoRunStdinCommand,
): StdinCommandRunner {
  return (cmd) => inner({ ...cmd, argv: ["ip", "netns", "exec", netns, "env", "--", ...cmd.argv] });
}

/**
 * Running external programs on Deno (`ip`, later `iptables-restore`, `nft`): argv only, never a
 * shell.
 *
 * @module
 */
import type { CommandResult, CommandRunner } from "../iface/mod.ts";

/** Runs `argv[0]` with the rest as arguments and collects its output. */
export const denoRunCommand: CommandRunner = async (argv: string[]): Promise<CommandResult> => {
  const [cmd, ...args] = argv;
  if (!cmd) throw new TypeError("Cannot run an empty command");
  let out;
  try {
    out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Cannot run ${cmd}: not installed (on Debian: apt-get install iproute2)`, { cause: e });
    }
    throw e;
  }
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
};

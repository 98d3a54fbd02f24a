#!/usr/bin/env -S deno run --allow-read --allow-write
/**
 * `install-conf <src> <dest>`: copies a CNI configuration atomically, as upstream's
 * `cmd/install_conf` does for the DaemonSet's init container: the text goes to `.<name>.tmp` in the
 * destination's directory with the source's mode, and is then renamed over `<dest>`, so the
 * container runtime never reads a half-written `10-flannel.conflist`. No imports: the file itself
 * is `/opt/bin/install-conf` in the image.
 *
 * @module
 */

/** Copies `src` to `dest` atomically, keeping the source's permission bits. */
export async function installConf(src: string, dest: string): Promise<void> {
  const slash = dest.lastIndexOf("/");
  const dir = slash > 0 ? dest.slice(0, slash) : slash === 0 ? "/" : ".";
  const tmp = `${dir}/.${dest.slice(slash + 1)}.tmp`;
  let data: Uint8Array;
  let mode: number;
  try {
    data = await Deno.readFile(src);
    mode = ((await Deno.stat(src)).mode ?? 0o644) & 0o7777;
  } catch (e) {
    throw new Error(`Cannot read ${src}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await Deno.writeFile(tmp, data, { mode });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, dest);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`Cannot install ${dest}: ${(e as Error).message}; is its directory mounted?`, {
      cause: e,
    });
  }
}

if (import.meta.main) {
  if (Deno.args.length !== 2) {
    console.error("usage: install-conf <src> <dest>");
    Deno.exit(2);
  }
  try {
    await installConf(Deno.args[0]!, Deno.args[1]!);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}

/**
 * File access for the daemon, at the runtime edge. Everything else takes an {@linkcode Files}.
 *
 * @module
 */

/** The few file operations the daemon needs. */
export interface Files {
  /** The file's text, or undefined when it does not exist. */
  readText(path: string): Promise<string | undefined>;
  /**
   * Writes `data` atomically: a temporary file in the same directory, then rename, with `mode`
   * set explicitly (independent of the umask). Parent directories are created with 0755.
   */
  writeAtomic(path: string, data: string, mode: number): Promise<void>;
  /** Deletes a file; false when it did not exist. */
  remove(path: string): Promise<boolean>;
}

/**
 * Writes a file atomically (temporary file in the same directory, then rename) with exactly
 * `mode`, creating missing parent directories with `dirMode`.
 */
export async function writeFileAtomic(
  path: string,
  data: string,
  mode: number,
  dirMode = 0o755,
): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = slash > 0 ? path.slice(0, slash) : slash === 0 ? "/" : ".";
  const base = path.slice(slash + 1);
  await Deno.mkdir(dir, { recursive: true, mode: dirMode });
  const tmp = `${dir}/.${base}.${Deno.pid}.tmp`;
  try {
    await Deno.writeTextFile(tmp, data, { mode });
    await Deno.chmod(tmp, mode);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** {@linkcode Files} on Deno. */
export const denoFiles: Files = {
  async readText(path) {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
  },
  writeAtomic: (path, data, mode) => writeFileAtomic(path, data, mode),
  async remove(path) {
    try {
      await Deno.remove(path);
      return true;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return false;
      throw e;
    }
  },
};

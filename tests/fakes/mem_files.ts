/**
 * {@linkcode Files} in memory, for daemon and cleanup tests.
 *
 * @module
 */
import type { Files } from "../../src/runtime/fs.ts";

export class MemFiles implements Files {
  files = new Map<string, { data: string; mode: number }>();
  constructor(init: Record<string, string> = {}) {
    for (const [k, v] of Object.entries(init)) this.files.set(k, { data: v, mode: 0o644 });
  }
  readText(path: string): Promise<string | undefined> {
    return Promise.resolve(this.files.get(path)?.data);
  }
  writeAtomic(path: string, data: string, mode: number): Promise<void> {
    this.files.set(path, { data, mode });
    return Promise.resolve();
  }
  remove(path: string): Promise<boolean> {
    return Promise.resolve(this.files.delete(path));
  }
}

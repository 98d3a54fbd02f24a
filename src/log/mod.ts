/**
 * Logging: the injected {@linkcode Logger} and the one place that makes real ones.
 *
 * This is a small direct implementation, not a @logtape/logtape setup. LogTape routes loggers through
 * a process-wide `configure()` (sinks and categories held in module state, `getLogger(category)`
 * looking them up), which is the global we keep out of `src/`: two loggers with different formats or
 * verbosities in one test process, and tests that never reset a global, are exactly what injection
 * buys. Neither of our two formats is one of its formatters, so all it would add is that global.
 *
 * @module
 */

import type { Logger } from "./logger.ts";
import { formatKlogLine, type LogLine, parseVmodule, vmoduleLevel, type VmoduleRule } from "./klog.ts";
import { formatJsonLine } from "./json.ts";

export type { LogRecord } from "./logger.ts";
export type { Logger };
export { MemoryLogger, nullLogger } from "./logger.ts";
export {
  escapeNewlines,
  formatKlogLine,
  type LogLine,
  parseVmodule,
  vmoduleLevel,
  type VmoduleRule,
} from "./klog.ts";
export { formatJsonLine } from "./json.ts";

/** How {@linkcode createLogger} writes. */
export interface LoggerOptions {
  /** `-v`: `v(n, …)` lines print when `n` is at most this. */
  verbosity: number;
  /** Line format. */
  format: "klog" | "json";
  /** `-vmodule`: `pattern=N,…`, raising the verbosity of matching components. Throws if malformed. */
  vmodule?: string;
  /** Receives each line without its newline. Default: `console.error` (stderr, like klog). */
  write?: (line: string) => void;
  /** Clock. Default: `new Date()`. */
  now?: () => Date;
  /** Pid shown in klog lines. Default: the process's pid, or 0 where there is none. */
  pid?: number;
  /** Component of the root logger. Default: `main.ts`. */
  component?: string;
}

interface Shared {
  format: (line: LogLine) => string;
  write: (line: string) => void;
  now: () => Date;
  pid: number;
  verbosity: number;
  rules: readonly VmoduleRule[];
}

class LineLogger implements Logger {
  readonly #shared: Shared;
  readonly #component: string;
  /** Highest `v` level printed for this component: `-v`, raised by a matching `-vmodule` rule. */
  readonly #maxV: number;

  constructor(shared: Shared, component: string) {
    this.#shared = shared;
    this.#component = component;
    this.#maxV = Math.max(shared.verbosity, vmoduleLevel(shared.rules, component) ?? shared.verbosity);
  }

  info(msg: string): void {
    this.#emit("info", msg, undefined);
  }
  warn(msg: string): void {
    this.#emit("warn", msg, undefined);
  }
  error(msg: string): void {
    this.#emit("error", msg, undefined);
  }
  v(level: number, msg: string): void {
    if (level <= this.#maxV) this.#emit("info", msg, level);
  }
  child(name: string): Logger {
    return new LineLogger(this.#shared, name);
  }

  #emit(level: LogLine["level"], msg: string, verbosity: number | undefined): void {
    const s = this.#shared;
    const line: LogLine = { time: s.now(), level, component: this.#component, msg, pid: s.pid };
    if (verbosity !== undefined) line.verbosity = verbosity;
    s.write(s.format(line));
  }
}

function processPid(): number {
  const proc = (globalThis as { process?: { pid?: unknown } }).process;
  return typeof proc?.pid === "number" ? proc.pid : 0;
}

/**
 * Makes the daemon's logger. Everything it needs is passed in, so tests get their own with a fixed
 * clock and pid and a `write` that collects lines.
 *
 * @example
 * ```ts
 * const lines: string[] = [];
 * const log = createLogger({
 *   verbosity: 1,
 *   format: "klog",
 *   write: (l) => lines.push(l),
 *   now: () => new Date(2024, 10, 21, 14, 28, 35, 866),
 *   pid: 5522,
 * });
 * log.child("etcd.ts").v(2, "not shown");
 * log.child("etcd.ts").warn("shown");
 * console.assert(lines[0] === "W1121 14:28:35.866000    5522 etcd.ts:0] shown");
 * ```
 */
export function createLogger(opts: LoggerOptions): Logger {
  const shared: Shared = {
    format: opts.format === "json" ? formatJsonLine : formatKlogLine,
    write: opts.write ?? ((line) => console.error(line)),
    now: opts.now ?? (() => new Date()),
    pid: opts.pid ?? processPid(),
    verbosity: opts.verbosity,
    rules: parseVmodule(opts.vmodule ?? ""),
  };
  return new LineLogger(shared, opts.component ?? "main.ts");
}

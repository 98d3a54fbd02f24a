/**
 * The logger every component receives by injection. Nothing in src/ logs through a global.
 *
 * Levels follow klog, because operators grep upstream flanneld's lines: `info`, `warn`, `error`,
 * and `v(n, …)` for verbose lines printed only when `-v` is at least `n`.
 *
 * @module
 */

/** A structured-enough logger: a message, and the component that wrote it. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  /** A verbose line, printed when the configured verbosity is at least `level`. */
  v(level: number, msg: string): void;
  /** A logger for a sub-component; `name` is shown in place of the source file (e.g. `etcd.ts`). */
  child(name: string): Logger;
}

/** One recorded log line, as {@linkcode MemoryLogger} keeps it. */
export interface LogRecord {
  level: "info" | "warn" | "error" | "v";
  verbosity: number;
  component: string;
  msg: string;
}

/** A logger that drops everything. */
export const nullLogger: Logger = {
  info() {},
  warn() {},
  error() {},
  v() {},
  child() {
    return nullLogger;
  },
};

/**
 * A logger that keeps lines in memory, for tests.
 *
 * @example
 * ```ts
 * const log = new MemoryLogger();
 * log.child("etcd").warn("slow");
 * console.assert(log.records[0]?.msg === "slow");
 * ```
 */
export class MemoryLogger implements Logger {
  readonly records: LogRecord[];
  readonly #component: string;

  constructor(component = "", records: LogRecord[] = []) {
    this.#component = component;
    this.records = records;
  }

  info(msg: string): void {
    this.records.push({ level: "info", verbosity: 0, component: this.#component, msg });
  }
  warn(msg: string): void {
    this.records.push({ level: "warn", verbosity: 0, component: this.#component, msg });
  }
  error(msg: string): void {
    this.records.push({ level: "error", verbosity: 0, component: this.#component, msg });
  }
  v(level: number, msg: string): void {
    this.records.push({ level: "v", verbosity: level, component: this.#component, msg });
  }
  child(name: string): Logger {
    return new MemoryLogger(name, this.records);
  }

  /** The messages of the given level, in order. */
  messages(level?: LogRecord["level"]): string[] {
    return this.records.filter((r) => level === undefined || r.level === level).map((r) => r.msg);
  }
}

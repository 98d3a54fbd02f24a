/**
 * klog's text format and its two flag syntaxes (`-vmodule`, `-log_backtrace_at`).
 *
 * A klog line is `Lmmdd hh:mm:ss.uuuuuu <pid> <file>:<line>] <msg>`: L is `I`, `W` or `E`; the time
 * is local; the pid is right-aligned in 7 columns (upstream in a pod prints `      1`). Operators and
 * log pipelines grep upstream flanneld's output in this shape, so it is our default.
 *
 * `<file>` is the component name a logger was given with `child(name)` (e.g. `etcd.ts`), and
 * `<line>` is always `0`. Taking the line from a stack trace would be wrong where it matters: the
 * shipped binary is one bundled file, so its stack lines point into the bundle, not our sources, and
 * the component is often not the file that called. `0` is never a real line, so nobody goes looking
 * for it, and parsers that expect `file:digits]` still match.
 *
 * @module
 */

/** One line to format, as the logger hands it to a formatter. */
export interface LogLine {
  /** When it was logged. */
  time: Date;
  /** `v(n, …)` lines are `info` with `verbosity` set. */
  level: "info" | "warn" | "error";
  /** Set for `v(n, …)` lines: the `n`. */
  verbosity?: number;
  /** Component name, shown where klog shows the source file. */
  component: string;
  /** The message, possibly with newlines (formatters escape them). */
  msg: string;
  /** Process id. */
  pid: number;
}

const LETTER = { info: "I", warn: "W", error: "E" } as const;

/**
 * Makes a message one line: drops one trailing newline (klog adds its own), then writes the
 * remaining CR and LF as the two-character escapes `\r` and `\n`.
 *
 * @example
 * ```ts
 * console.assert(escapeNewlines("a\nb\n") === "a\\nb");
 * ```
 */
export function escapeNewlines(msg: string): string {
  const body = msg.endsWith("\n") ? msg.slice(0, -1) : msg;
  return body.replaceAll("\r", "\\r").replaceAll("\n", "\\n");
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/**
 * Formats one klog line, without the trailing newline.
 *
 * @example
 * ```ts
 * const line = formatKlogLine({
 *   time: new Date(2024, 10, 21, 14, 28, 35, 866),
 *   level: "info",
 *   component: "main.ts",
 *   msg: "hello",
 *   pid: 1,
 * });
 * console.assert(line === "I1121 14:28:35.866000       1 main.ts:0] hello");
 * ```
 */
export function formatKlogLine(line: LogLine): string {
  const t = line.time;
  const stamp = `${pad(t.getMonth() + 1, 2)}${pad(t.getDate(), 2)} ` +
    `${pad(t.getHours(), 2)}:${pad(t.getMinutes(), 2)}:${pad(t.getSeconds(), 2)}.${
      pad(t.getMilliseconds() * 1000, 6)
    }`;
  const pid = String(line.pid).padStart(7, " ");
  return `${LETTER[line.level]}${stamp} ${pid} ${line.component}:0] ${escapeNewlines(line.msg)}`;
}

/** One `pattern=N` entry of `-vmodule`. */
export interface VmoduleRule {
  /** The glob as written (`*` any run of characters, `?` one character). */
  pattern: string;
  /** Verbosity for components the pattern matches. */
  level: number;
  /** The compiled glob. */
  regexp: RegExp;
}

function globToRegExp(glob: string): RegExp {
  let src = "";
  for (const ch of glob) {
    if (ch === "*") src += ".*";
    else if (ch === "?") src += ".";
    else src += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${src}$`);
}

/**
 * Parses a `-vmodule` value, `pattern=N[,pattern=N…]`, as klog does: empty entries are skipped, N is
 * a base-10 integer and must not be negative. Throws an `Error` whose message is the reason.
 *
 * @example
 * ```ts
 * console.assert(parseVmodule("etcd=3,kube*=2").length === 2);
 * ```
 */
export function parseVmodule(spec: string): VmoduleRule[] {
  const rules: VmoduleRule[] = [];
  for (const entry of spec.split(",")) {
    if (entry === "") continue;
    const parts = entry.split("=");
    if (parts.length !== 2 || parts[0] === "" || !/^[+-]?[0-9]+$/.test(parts[1]!)) {
      throw new Error("must be a comma-separated list of pattern=N");
    }
    const level = Number(parts[1]);
    if (level < 0) throw new Error(`level of ${parts[0]} must not be negative`);
    rules.push({ pattern: parts[0]!, level, regexp: globToRegExp(parts[0]!) });
  }
  return rules;
}

/**
 * The verbosity `-vmodule` gives a component, or `undefined` when no pattern matches. Like klog,
 * which matches file names without `.go`, a pattern is tried against the component without its
 * extension (`etcd` for `etcd.ts`) and against the whole name; the first matching rule wins.
 *
 * @example
 * ```ts
 * console.assert(vmoduleLevel(parseVmodule("etcd=3"), "etcd.ts") === 3);
 * ```
 */
export function vmoduleLevel(rules: readonly VmoduleRule[], component: string): number | undefined {
  const base = component.replace(/\.[^./]*$/, "");
  for (const r of rules) {
    if (r.regexp.test(base) || r.regexp.test(component)) return r.level;
  }
  return undefined;
}

/**
 * Checks a `-log_backtrace_at` value as klog does: empty, or `file:N` where the file name has a dot
 * and N is a positive integer. Throws an `Error` whose message is the reason. (The location is
 * accepted for compatibility; our loggers print no backtraces.)
 *
 * @example
 * ```ts
 * parseBacktraceAt("main.go:215");
 * ```
 */
export function parseBacktraceAt(value: string): void {
  if (value === "") return;
  const parts = value.split(":");
  if (parts.length !== 2 || !parts[0]!.includes(".") || !/^[+-]?[0-9]+$/.test(parts[1]!)) {
    throw new Error("must be file:N, e.g. main.go:215");
  }
  if (Number(parts[1]) <= 0) throw new Error("line must be positive");
}

/**
 * The `-h`/`--help` text, laid out like Go's `flag.PrintDefaults` so that operators who know
 * upstream's help see the same shape: flags sorted by name, the type after the name, the usage on
 * the next line indented by a tab, and `(default …)` when the default is not the zero value.
 *
 * @module
 */

/** One flag as the help listing shows it. */
export interface UsageEntry {
  /** The flag name without dashes, e.g. `etcd-endpoints`. */
  name: string;
  /** The value placeholder after the name: `string`, `int`, `value`, or `""` for booleans. */
  typeName: string;
  /** One-line description. */
  usage: string;
  /** Rendered default (already quoted for strings), or `undefined` when it is the zero value. */
  defaultText?: string;
}

/**
 * Renders `Usage: <argv0> [OPTION]...` and the flag listing. The result ends with a newline.
 *
 * @example
 * ```ts
 * const text = formatUsage("flanneld", [
 *   { name: "ip-masq", typeName: "", usage: "setup IP masquerade" },
 *   { name: "etcd-prefix", typeName: "string", usage: "etcd prefix", defaultText: '"/coreos.com/network"' },
 * ]);
 * console.assert(text.startsWith("Usage: flanneld [OPTION]...\n  -etcd-prefix string\n"));
 * ```
 */
export function formatUsage(argv0: string, entries: readonly UsageEntry[]): string {
  const lines = [`Usage: ${argv0} [OPTION]...`];
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of sorted) {
    let head = `  -${e.name}`;
    if (e.typeName !== "") head += ` ${e.typeName}`;
    // Go puts the usage on the same line only for a one-letter flag without a type (`  -x\t…`).
    const sep = head.length <= 4 ? "\t" : "\n    \t";
    const usage = e.usage.replaceAll("\n", "\n    \t");
    const dflt = e.defaultText === undefined ? "" : ` (default ${e.defaultText})`;
    lines.push(`${head}${sep}${usage}${dflt}`);
  }
  return lines.join("\n") + "\n";
}

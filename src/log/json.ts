/**
 * `--log-format=json`: one JSON object per line, for log pipelines that parse fields rather than
 * grep klog text.
 *
 * @module
 */

import type { LogLine } from "./klog.ts";

/**
 * Formats one line as `{"ts":…,"level":…,"component":…,"msg":…}`; verbose lines also carry
 * `"v":n` after the level. `ts` is ISO 8601 in UTC. JSON string escaping keeps it on one line.
 *
 * @example
 * ```ts
 * const line = formatJsonLine({
 *   time: new Date(Date.UTC(2024, 10, 21, 14, 28, 35, 866)),
 *   level: "warn",
 *   component: "etcd.ts",
 *   msg: "slow",
 *   pid: 1,
 * });
 * console.assert(line === '{"ts":"2024-11-21T14:28:35.866Z","level":"warn","component":"etcd.ts","msg":"slow"}');
 * ```
 */
export function formatJsonLine(line: LogLine): string {
  const obj: Record<string, string | number> = { ts: line.time.toISOString(), level: line.level };
  if (line.verbosity !== undefined) obj.v = line.verbosity;
  obj.component = line.component;
  obj.msg = line.msg;
  return JSON.stringify(obj);
}

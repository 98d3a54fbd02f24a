/**
 * flannel's iptables rules as text, and the planning that turns what the kernel has into one
 * `iptables-restore --noflush` payload. Pure: no processes here.
 *
 * Rule lines are kept in the exact form `iptables -S` and `iptables-save` print them (checked
 * against iptables 1.8.9, nf_tables and legacy backends, and upstream's e2e golden output), so
 * comparing the kernel's rules with ours is string equality, and each line can be fed back to
 * `iptables-restore` as is (`-A`), or with `-A` turned into `-D` to delete it.
 *
 * What is ours: our chain (`FLANNEL-POSTRTG` in nat, `FLANNEL-FWD` in filter), whole; and, in the
 * built-in chain it hangs from (`POSTROUTING`, `FORWARD`), every rule that carries our comment or
 * jumps to our chain. The desired built-in chain holds exactly one of those, the jump, as its last
 * rule (where upstream's append puts it, after kube-proxy's jumps). Older flannel versions put
 * masquerade rules with the same comment straight into `POSTROUTING`; those count as stale.
 *
 * @module
 */
import type { IP4Net, IP6Net } from "../ip/mod.ts";
import type { Family } from "./types.ts";

/** The iptables tables flannel writes to. */
export type IptTable = "nat" | "filter";

/** One of flannel's chains: where it lives, the built-in chain that jumps to it, its comment. */
export interface ChainSpec {
  readonly table: IptTable;
  readonly builtin: string;
  readonly chain: string;
  readonly comment: string;
}

/** The masquerade chain (`--ip-masq`). */
export const MASQ_CHAIN: ChainSpec = {
  table: "nat",
  builtin: "POSTROUTING",
  chain: "FLANNEL-POSTRTG",
  comment: "flanneld masq",
};

/** The forward-accept chain (`--iptables-forward-rules`). */
export const FORWARD_CHAIN: ChainSpec = {
  table: "filter",
  builtin: "FORWARD",
  chain: "FLANNEL-FWD",
  comment: "flanneld forward",
};

/** Both chains, in the order flannel installs them. */
export const CHAINS: readonly ChainSpec[] = [MASQ_CHAIN, FORWARD_CHAIN];

/** kube-proxy's masquerade mark: packets carrying it are left to kube-proxy. */
export const KUBE_PROXY_MARK = "0x4000/0x4000";

/** Multicast ranges, never masqueraded. */
export const MULTICAST: Record<Family, string> = { ipv4: "224.0.0.0/4", ipv6: "ff00::/8" };

/** `-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG` and its FORWARD twin. */
export function jumpRule(spec: ChainSpec): string {
  return `-A ${spec.builtin} -m comment --comment "${spec.comment}" -j ${spec.chain}`;
}

/**
 * The rules of `FLANNEL-POSTRTG` (§6.1), in order, as `-A` lines.
 *
 * @example
 * ```ts
 * import { IP4Net } from "../ip/mod.ts";
 * const rules = masqRules("ipv4", IP4Net.parse("10.5.0.0/16"), IP4Net.parse("10.5.72.0/24"), true);
 * console.assert(rules.length === 6 && rules[5]!.endsWith("-j MASQUERADE --random-fully"));
 * ```
 */
export function masqRules(
  family: Family,
  network: IP4Net | IP6Net,
  subnet: IP4Net | IP6Net,
  randomFully: boolean,
): string[] {
  const n = network.network().toString();
  const p = subnet.network().toString();
  const c = `-m comment --comment "${MASQ_CHAIN.comment}"`;
  const masq = `-j MASQUERADE${randomFully ? " --random-fully" : ""}`;
  const a = `-A ${MASQ_CHAIN.chain}`;
  return [
    `${a} -m mark --mark ${KUBE_PROXY_MARK} ${c} -j RETURN`,
    `${a} -s ${p} -d ${n} ${c} -j RETURN`,
    `${a} -s ${n} -d ${p} ${c} -j RETURN`,
    `${a} ! -s ${n} -d ${p} ${c} -j RETURN`,
    `${a} -s ${n} ! -d ${MULTICAST[family]} ${c} ${masq}`,
    `${a} ! -s ${n} -d ${n} ${c} ${masq}`,
  ];
}

/** The rules of `FLANNEL-FWD` (§6.1), in order, as `-A` lines. */
export function forwardRules(network: IP4Net | IP6Net): string[] {
  const n = network.network().toString();
  const c = `-m comment --comment "${FORWARD_CHAIN.comment}"`;
  return [
    `-A ${FORWARD_CHAIN.chain} -s ${n} ${c} -j ACCEPT`,
    `-A ${FORWARD_CHAIN.chain} -d ${n} ${c} -j ACCEPT`,
  ];
}

/**
 * What upstream's e2e suite compares: the flannel lines of `iptables -t <table> -S <builtin>`
 * followed by `iptables -t <table> -S <chain>`, joined by newlines.
 */
export function goldenListing(spec: ChainSpec, rules: readonly string[]): string {
  return [jumpRule(spec), `-N ${spec.chain}`, ...rules].join("\n");
}

/** The rules of the built-in chain and of our chain, as the kernel has them. */
export interface ObservedChains {
  /** The `-A` lines of the built-in chain, in order. */
  builtin: string[];
  /** The `-A` lines of our chain, in order; `undefined` when the chain does not exist. */
  chain: string[] | undefined;
}

/**
 * Reads one table's view of `spec` from `iptables-save -t <table>` output. Lines of other tables,
 * comments and counters are ignored; a missing table reads as empty.
 */
export function parseSave(text: string, spec: ChainSpec): ObservedChains {
  const out: ObservedChains = { builtin: [], chain: undefined };
  let inTable = false;
  for (const raw of text.split("\n")) {
    const line = raw.trimEnd();
    if (line.startsWith("*")) inTable = line === `*${spec.table}`;
    else if (!inTable || line === "" || line.startsWith("#")) continue;
    else if (line.startsWith(`:${spec.chain} `)) out.chain ??= [];
    else if (line.startsWith(`-A ${spec.builtin} `)) out.builtin.push(line);
    else if (line.startsWith(`-A ${spec.chain} `)) (out.chain ??= []).push(line);
  }
  return out;
}

/** The `-A` lines of one chain from `iptables -S <chain>` output (`-P`/`-N` lines dropped). */
export function parseChainListing(text: string): string[] {
  return text.split("\n").map((l) => l.trimEnd()).filter((l) => l.startsWith("-A "));
}

/** True when a built-in chain's rule is ours: it carries our comment or jumps to our chain. */
export function isOurBuiltinRule(rule: string, spec: ChainSpec): boolean {
  return rule.includes(`--comment "${spec.comment}"`) || rule.endsWith(` -j ${spec.chain}`) ||
    rule.includes(` -j ${spec.chain} `) || rule.includes(` -g ${spec.chain}`);
}

/** A table's share of a restore payload, and why. */
export interface TablePlan {
  /** Lines for the `*<table>` block; empty when nothing differs. */
  lines: string[];
  /** One human-readable line per difference, e.g. `nat/POSTROUTING: jump not last`. */
  repairs: string[];
}

const toDelete = (rule: string) => `-D ${rule.slice(3)}`;

/**
 * Plans the lines that bring `observed` to `desired` (our chain's rules), or remove our chain and
 * every rule of ours from the built-in chain when `desired` is `null`.
 *
 * A differing chain is redeclared (`:CHAIN - [0:0]`, which with `--noflush` creates or flushes it)
 * and refilled, so missing, extra, duplicated and reordered rules all get one fix. Rules of ours in
 * the built-in chain are deleted by their text, never by number, so a concurrent change by another
 * program cannot make us delete its rule. The jump is then appended.
 */
export function planChain(
  spec: ChainSpec,
  desired: readonly string[] | null,
  observed: ObservedChains,
): TablePlan {
  const where = `${spec.table}/`;
  const ours = observed.builtin.filter((r) => isOurBuiltinRule(r, spec));
  const lines: string[] = [];
  const repairs: string[] = [];
  if (desired === null) {
    if (observed.chain !== undefined) lines.push(`:${spec.chain} - [0:0]`);
    for (const r of ours) lines.push(toDelete(r));
    if (ours.length > 0) repairs.push(`${where}${spec.builtin}: ${ours.length} rule(s) of ours removed`);
    if (observed.chain !== undefined) {
      lines.push(`-X ${spec.chain}`);
      repairs.push(`${where}${spec.chain}: removed`);
    }
    return { lines, repairs };
  }

  const chainDiff = describeDiff(desired, observed.chain);
  if (chainDiff !== undefined) {
    lines.push(`:${spec.chain} - [0:0]`);
    repairs.push(`${where}${spec.chain}: ${chainDiff}`);
  }
  const jump = jumpRule(spec);
  const jumps = ours.filter((r) => r === jump).length;
  const stale = ours.filter((r) => r !== jump);
  const last = observed.builtin[observed.builtin.length - 1];
  if (jumps !== 1 || stale.length > 0 || last !== jump) {
    for (const r of ours) lines.push(toDelete(r));
    lines.push(jump);
    const why = jumps === 0 ? "jump missing" : jumps > 1 ? `jump duplicated (${jumps})` : "jump not last";
    repairs.push(`${where}${spec.builtin}: ${why}`);
    for (const r of stale) repairs.push(`${where}${spec.builtin}: stale rule removed: ${r}`);
  }
  if (chainDiff !== undefined) lines.push(...desired);
  return { lines, repairs };
}

/** Why `observed` is not `desired`, or `undefined` when they are equal. */
export function describeDiff(
  desired: readonly string[],
  observed: readonly string[] | undefined,
): string | undefined {
  if (observed === undefined) return "missing";
  if (desired.length === observed.length && desired.every((r, i) => r === observed[i])) return undefined;
  const counts = new Map<string, number>();
  for (const r of observed) counts.set(r, (counts.get(r) ?? 0) + 1);
  let missing = 0;
  for (const r of desired) {
    const n = counts.get(r) ?? 0;
    if (n === 0) missing++;
    else counts.set(r, n - 1);
  }
  const extra = [...counts.values()].reduce((a, b) => a + b, 0);
  const parts: string[] = [];
  if (missing > 0) parts.push(`${missing} missing`);
  if (extra > 0) parts.push(`${extra} extra or duplicated`);
  if (parts.length === 0) parts.push("out of order");
  return parts.join(", ");
}

/**
 * An `iptables-restore` payload: `*<table>`, the lines, `COMMIT`, per table that has lines.
 * Empty when no table has lines.
 */
export function restorePayload(tables: ReadonlyArray<{ table: IptTable; lines: readonly string[] }>): string {
  let out = "";
  for (const t of tables) {
    if (t.lines.length === 0) continue;
    out += `*${t.table}\n${t.lines.join("\n")}\nCOMMIT\n`;
  }
  return out;
}

/** What `iptables --version` says. */
export interface IptablesVersion {
  major: number;
  minor: number;
  patch: number;
  /** `nf_tables` or `legacy` from iptables ≥ 1.8; `undefined` before (always legacy then). */
  backend: "nf_tables" | "legacy" | undefined;
  /** The version line as printed. */
  text: string;
}

/** Parses `iptables v1.8.9 (nf_tables)`; `undefined` when the text has no version. */
export function parseIptablesVersion(out: string): IptablesVersion | undefined {
  const m = /v(\d+)\.(\d+)\.(\d+)(?:\s+\(([\w-]+)\))?/.exec(out);
  if (!m) return undefined;
  const b = m[4];
  return {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
    backend: b === "nf_tables" || b === "legacy" ? b : undefined,
    text: out.trim().split("\n")[0] ?? "",
  };
}

/** True when `v` is at least `major.minor.patch`. */
export function versionAtLeast(v: IptablesVersion, major: number, minor: number, patch: number): boolean {
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

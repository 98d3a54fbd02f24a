/**
 * flannel's nftables tables and chains as text: the `nft -f -` scripts that build them, and the
 * `nft list table` / `nft list chain` text the kernel gives back (§6.2, pinned by upstream's e2e
 * golden output; checked against nft 1.0.6). Pure: no processes here.
 *
 * Rule lines are written in the form nft lists them (`meta mark 0x00004000`, prefixes of full
 * length without `/32` or `/128`), so one string serves both the script and the expected listing.
 *
 * @module
 */
import { type IP4Net, IP6Net } from "../ip/mod.ts";
import type { Family } from "./types.ts";

/** One of flannel's two nft tables. */
export interface NftTable {
  /** nft address family. */
  readonly family: "ip" | "ip6";
  readonly name: string;
  readonly comment: string;
}

/** flannel's tables: both are created at start, whatever families are enabled (as upstream). */
export const NFT_TABLES: Record<Family, NftTable> = {
  ipv4: { family: "ip", name: "flannel-ipv4", comment: "rules for flannel-ipv4" },
  ipv6: { family: "ip6", name: "flannel-ipv6", comment: "rules for flannel-ipv6" },
};

/** A base chain of ours, with its rules in listing form. */
export interface NftChain {
  readonly name: string;
  readonly comment: string;
  /** `type … hook … priority …; policy …;` as nft lists it. */
  readonly hook: string;
  readonly rules: readonly string[];
}

/** Multicast ranges, never masqueraded. */
const MULTICAST: Record<Family, string> = { ipv4: "224.0.0.0/4", ipv6: "ff00::/8" };

/** A prefix as nft prints it: a full-length prefix is shown as the bare address. */
export function nftPrefix(net: IP4Net | IP6Net): string {
  const n = net.network();
  return n.prefixLen === (n instanceof IP6Net ? 128 : 32) ? n.ip.toString() : n.toString();
}

/**
 * The `postrtg` chain (§6.2). Note rule 4 tests `saddr != P` where iptables tests `! -s N`:
 * upstream's difference, kept because its e2e suite pins it.
 *
 * @example
 * ```ts
 * import { IP4Net } from "../ip/mod.ts";
 * const c = masqChain("ipv4", IP4Net.parse("10.5.0.0/16"), IP4Net.parse("10.5.72.0/24"), true);
 * console.assert(c.rules[0] === "meta mark 0x00004000 return");
 * ```
 */
export function masqChain(
  family: Family,
  network: IP4Net | IP6Net,
  subnet: IP4Net | IP6Net,
  fullyRandom: boolean,
): NftChain {
  const f = NFT_TABLES[family].family;
  const n = nftPrefix(network);
  const p = nftPrefix(subnet);
  const masq = `masquerade${fullyRandom ? " fully-random" : ""}`;
  return {
    name: "postrtg",
    comment: "chain to manage traffic masquerading by flannel",
    hook: "type nat hook postrouting priority srcnat; policy accept;",
    rules: [
      "meta mark 0x00004000 return",
      `${f} saddr ${p} ${f} daddr ${n} return`,
      `${f} saddr ${n} ${f} daddr ${p} return`,
      `${f} saddr != ${p} ${f} daddr ${n} return`,
      `${f} saddr ${n} ${f} daddr != ${MULTICAST[family]} ${masq}`,
      `${f} saddr != ${n} ${f} daddr ${n} ${masq}`,
    ],
  };
}

/** The `forward` chain (§6.2). */
export function forwardChain(family: Family, network: IP4Net | IP6Net): NftChain {
  const f = NFT_TABLES[family].family;
  const n = nftPrefix(network);
  return {
    name: "forward",
    comment: "chain to accept flannel traffic",
    hook: "type filter hook forward priority filter; policy accept;",
    rules: [`${f} saddr ${n} accept`, `${f} daddr ${n} accept`],
  };
}

function chainBody(c: NftChain): string[] {
  return [
    `\tchain ${c.name} {`,
    `\t\tcomment "${c.comment}"`,
    `\t\t${c.hook}`,
    ...c.rules.map((r) => `\t\t${r}`),
    "\t}",
  ];
}

/** What `nft list chain <family> <table> <chain>` prints, with its final newline. */
export function renderChainListing(t: NftTable, c: NftChain): string {
  return [`table ${t.family} ${t.name} {`, ...chainBody(c), "}", ""].join("\n");
}

/** What `nft list table <family> <table>` prints for our table holding `chains`, in that order. */
export function renderTableListing(t: NftTable, chains: readonly NftChain[]): string {
  const lines = [`table ${t.family} ${t.name} {`, `\tcomment "${t.comment}"`];
  chains.forEach((c, i) => {
    if (i > 0) lines.push("");
    lines.push(...chainBody(c));
  });
  lines.push("}", "");
  return lines.join("\n");
}

/** `{ comment "…" ; }` as the script gives it. */
const tableDecl = (t: NftTable) => `table ${t.family} ${t.name} { comment "${t.comment}" ; }`;

/** An `nft -f -` script that creates both tables if missing (and leaves existing ones alone). */
export function createTablesScript(): string {
  return `add ${tableDecl(NFT_TABLES.ipv4)}\nadd ${tableDecl(NFT_TABLES.ipv6)}\n`;
}

/**
 * An `nft -f -` script that replaces our table with one holding exactly `chains`: whatever else
 * the table had (stale chains, rules of a previous network, things added by hand) goes, in the
 * same transaction, so packets see either the old or the new rules.
 */
export function rebuildTableScript(t: NftTable, chains: readonly NftChain[]): string {
  const id = `${t.family} ${t.name}`;
  const lines = [`add table ${id}`, `delete table ${id}`, `add ${tableDecl(t)}`];
  for (const c of chains) {
    const hook = c.hook.replaceAll(";", " ;");
    lines.push(`add chain ${id} ${c.name} { comment "${c.comment}" ; ${hook} }`);
    for (const r of c.rules) lines.push(`add rule ${id} ${c.name} ${r}`);
  }
  return lines.join("\n") + "\n";
}

/** An `nft -f -` script that deletes the given tables whether or not they exist. */
export function deleteTablesScript(tables: readonly NftTable[]): string {
  return tables.map((t) => `add table ${t.family} ${t.name}\ndelete table ${t.family} ${t.name}\n`).join("");
}

/**
 * The script upstream checks with `nft --check` to learn whether `masquerade fully-random` works
 * here: a throw-away chain `masqueradeTest` in `flannel-ipv4`. `--check` never commits it.
 */
export function fullyRandomProbeScript(): string {
  const id = `${NFT_TABLES.ipv4.family} ${NFT_TABLES.ipv4.name}`;
  return [
    `add table ${id}`,
    `add chain ${id} masqueradeTest { type nat hook postrouting priority srcnat ; policy accept ; }`,
    `add rule ${id} masqueradeTest ip saddr != 127.0.0.1 masquerade fully-random`,
    "",
  ].join("\n");
}

/** The first line where two listings differ, 1-based, for a log line; `undefined` when equal. */
export function firstDifference(
  want: string,
  got: string,
): { line: number; want: string; got: string } | undefined {
  if (want === got) return undefined;
  const a = want.split("\n");
  const b = got.split("\n");
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (a[i] !== b[i]) return { line: i + 1, want: a[i] ?? "", got: b[i] ?? "" };
  }
  return undefined;
}

/**
 * The iptables traffic manager (§6.1): `FLANNEL-POSTRTG` in nat and `FLANNEL-FWD` in filter, per
 * family through `iptables` / `ip6tables`.
 *
 * Reads and writes:
 * - every change is one `iptables-restore --noflush [--wait]` per family, carrying both tables;
 * - a reconcile reads only the tables we manage and writes nothing when nothing differs. How it
 *   reads depends on the backend: with nf_tables, `iptables -t <table> -S <chain>` of the built-in
 *   chain and of ours (iptables-nft fetches just that chain, ~4 ms even beside kube-proxy's 18 000
 *   rules, where `iptables-nft-save -t nat` takes ~300 ms of CPU); with legacy, one
 *   `iptables-save -t <table>` (legacy reads the whole table blob for any listing, and `save`
 *   takes no xtables lock).
 * Upstream instead checks each rule with its own `iptables -C` process every resync period, and
 * misses duplicated and reordered rules; see docs/rules.md.
 *
 * @module
 */
import { failure, familyName, ManagerBase, type ManagerDeps, runTool, ToolMissingError } from "./common.ts";
import {
  CHAINS,
  type ChainSpec,
  FORWARD_CHAIN,
  forwardRules,
  type IptablesVersion,
  MASQ_CHAIN,
  masqRules,
  type ObservedChains,
  parseChainListing,
  parseIptablesVersion,
  parseSave,
  planChain,
  restorePayload,
  versionAtLeast,
} from "./iptables_rules.ts";
import type { Family, PreviousNetworks, ReconcileReport, RulesLease, RulesNetworkConfig } from "./types.ts";

/** The three programs of one family, e.g. `ip6tables-legacy`, `ip6tables-legacy-save`, …. */
export interface IptablesTools {
  iptables: string;
  save: string;
  restore: string;
}

/**
 * The program names for a family: `iptables`, `iptables-save`, `iptables-restore` (whatever the
 * system's alternatives point to), or a backend's own (`iptables-nft…`, `iptables-legacy…`).
 */
export function iptablesTools(family: Family, variant?: "nft" | "legacy"): IptablesTools {
  const base = `${family === "ipv4" ? "iptables" : "ip6tables"}${variant ? `-${variant}` : ""}`;
  return { iptables: base, save: `${base}-save`, restore: `${base}-restore` };
}

/** How a reconcile reads the kernel's rules; see the module notes. */
export type ListingStrategy = "save" | "chains";

/** Options of {@linkcode IptablesManager}. */
export interface IptablesManagerOptions extends ManagerDeps {
  /** Program names per family; default {@linkcode iptablesTools} without a variant. */
  tools?: Partial<Record<Family, IptablesTools>>;
  /** Force a listing strategy; default: `chains` with nf_tables, `save` with legacy. */
  listing?: ListingStrategy;
  /** Removes the nftables mode's state; called by {@linkcode IptablesManager.cleanupOtherMode}. */
  otherModeCleanup?: () => Promise<void>;
}

interface Probe {
  version: IptablesVersion;
  wait: boolean;
  randomFully: boolean;
  listing: ListingStrategy;
}

interface FamilyState {
  readonly family: Family;
  readonly tools: IptablesTools;
  probe: Promise<Probe> | undefined;
  /** Our chain's desired rules per spec; `null`: must not exist; absent: not managed. */
  readonly desired: Map<ChainSpec, string[] | null>;
}

const DEB = "iptables";

/** True when a previous value exists and differs from the current one (both in network form). */
const changed = (prev: { network(): object } | undefined, cur: { network(): object }) =>
  prev !== undefined && String(prev.network()) !== String(cur.network());

/** Masquerade and forward rules through iptables-restore transactions. */
export class IptablesManager extends ManagerBase {
  readonly mode = "iptables" as const;
  readonly #fams: Record<Family, FamilyState>;
  readonly #opts: IptablesManagerOptions;

  constructor(opts: IptablesManagerOptions) {
    super(opts);
    this.#opts = opts;
    const fam = (family: Family): FamilyState => ({
      family,
      tools: opts.tools?.[family] ?? iptablesTools(family),
      probe: undefined,
      desired: new Map(),
    });
    this.#fams = { ipv4: fam("ipv4"), ipv6: fam("ipv6") };
  }

  async cleanupOtherMode(): Promise<void> {
    try {
      await this.#opts.otherModeCleanup?.();
    } catch (e) {
      this.log.v(2, `Could not remove nftables rules of a previous run: ${(e as Error).message}`);
    }
  }

  init(): Promise<void> {
    return this.serial(async () => {
      for (const f of this.#enabledFamilies()) await this.#probe(this.#fams[f]);
    });
  }

  setupMasq(config: RulesNetworkConfig, lease: RulesLease, previous: PreviousNetworks = {}): Promise<void> {
    return this.serial(async () => {
      for (const family of ["ipv4", "ipv6"] as const) {
        const v4 = family === "ipv4";
        const st = this.#fams[family];
        const net = v4 ? config.network : config.ipv6Network;
        const subnet = v4 ? lease.subnet : lease.ipv6Subnet;
        const prevNet = v4 ? previous.network : previous.ipv6Network;
        const prevSubnet = v4 ? previous.subnet : previous.ipv6Subnet;
        const name = familyName(family);
        if ((v4 ? config.enableIPv4 : config.enableIPv6) && net) {
          if (!subnet) {
            this.log.warn(`No ${name} subnet in our lease: no ${name} masquerade rules`);
            continue;
          }
          const p = await this.#probe(st);
          if (changed(prevNet, net) || changed(prevSubnet, subnet)) {
            const was = `${prevNet ?? "none"}, ${prevSubnet ?? "none"}`;
            this.log.info(
              `Network or subnet changed since the previous run (was ${was}): replacing the rules`,
            );
          }
          this.log.info(`Setting up ${name} masquerade rules for ${net} (subnet ${subnet})`);
          st.desired.set(MASQ_CHAIN, masqRules(family, net, subnet, p.randomFully));
          await this.#sync(st, "setup");
        } else if (prevNet) await this.#removeStale(st, MASQ_CHAIN, `masquerade rules for ${prevNet}`);
      }
    });
  }

  setupForward(config: RulesNetworkConfig, previous: PreviousNetworks = {}): Promise<void> {
    return this.serial(async () => {
      for (const family of ["ipv4", "ipv6"] as const) {
        const v4 = family === "ipv4";
        const st = this.#fams[family];
        const net = v4 ? config.network : config.ipv6Network;
        const prevNet = v4 ? previous.network : previous.ipv6Network;
        if ((v4 ? config.enableIPv4 : config.enableIPv6) && net) {
          await this.#probe(st);
          this.log.info(`Setting up ${familyName(family)} forward rules for ${net}`);
          st.desired.set(FORWARD_CHAIN, forwardRules(net));
          await this.#sync(st, "setup");
        } else if (prevNet) await this.#removeStale(st, FORWARD_CHAIN, `forward rules for ${prevNet}`);
      }
    });
  }

  /** Removes a now-disabled family's chain; a failure only warns, it must not stop the daemon. */
  async #removeStale(st: FamilyState, spec: ChainSpec, what: string): Promise<void> {
    this.log.info(`${familyName(st.family)} is no longer enabled: removing its ${what}`);
    st.desired.set(spec, null);
    try {
      await this.#sync(st, "setup");
    } catch (e) {
      st.desired.delete(spec);
      this.log.warn(`Cannot remove ${familyName(st.family)} ${what}: ${(e as Error).message}`);
    }
  }

  protected async reconcileNow(): Promise<ReconcileReport> {
    const report: ReconcileReport = { changed: false, repairs: [] };
    const errors: string[] = [];
    for (const st of Object.values(this.#fams)) {
      if (st.desired.size === 0) continue;
      try {
        const r = await this.#sync(st, "resync");
        report.changed ||= r.changed;
        report.repairs.push(...r.repairs);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    if (errors.length > 0) throw new Error(errors.join("; "));
    return report;
  }

  cleanup(): Promise<void> {
    return this.serial(async () => {
      const errors: Error[] = [];
      for (const st of Object.values(this.#fams)) {
        st.desired.clear();
        for (const spec of CHAINS) st.desired.set(spec, null);
        try {
          const r = await this.#sync(st, "cleanup");
          if (r.changed) {
            this.log.info(`Removed ${familyName(st.family)} iptables rules: ${r.repairs.join("; ")}`);
          }
        } catch (e) {
          errors.push(e as Error);
        } finally {
          st.desired.clear();
        }
      }
      // Both families fail alike when the tool is missing: report that once, keeping its class.
      if (errors.length > 0 && errors.every((e) => e instanceof ToolMissingError)) throw errors[0];
      if (errors.length > 0) throw new Error(errors.map((e) => e.message).join("; "), { cause: errors[0] });
    });
  }

  #enabledFamilies(): Family[] {
    return [
      ...(this.deps.enableIPv4 ? ["ipv4" as const] : []),
      ...(this.deps.enableIPv6 ? ["ipv6" as const] : []),
    ];
  }

  /** Learns the version once per family: `--wait` and `--random-fully` need ≥ 1.6.2, as upstream. */
  #probe(st: FamilyState): Promise<Probe> {
    st.probe ??= (async () => {
      const argv = [st.tools.iptables, "--version"];
      const res = await runTool(this.deps.run, argv, DEB);
      if (res.code !== 0) throw failure(`Cannot probe ${familyName(st.family)} iptables`, argv, res);
      const version = parseIptablesVersion(res.stdout + res.stderr);
      if (!version) {
        throw new Error(`Cannot read the version of ${argv[0]}: ${JSON.stringify(res.stdout.trim())}`);
      }
      const modern = versionAtLeast(version, 1, 6, 2);
      const p: Probe = {
        version,
        wait: modern,
        randomFully: modern && !this.deps.fullyRandomDisable,
        listing: this.#opts.listing ?? (version.backend === "nf_tables" ? "chains" : "save"),
      };
      this.log.info(
        `Using ${version.text} for ${familyName(st.family)}: --wait ${p.wait ? "yes" : "no"}, ` +
          `--random-fully ${p.randomFully ? "yes" : "no"}, resync reads ${
            p.listing === "save" ? `${st.tools.save} -t <table>` : `${st.tools.iptables} -S <chain>`
          }`,
      );
      return p;
    })();
    st.probe.catch(() => st.probe = undefined);
    return st.probe;
  }

  /** Reads, plans and, when something differs, applies one transaction for the family. */
  async #sync(st: FamilyState, why: "setup" | "resync" | "cleanup"): Promise<ReconcileReport> {
    const p = await this.#probe(st);
    const tables = [];
    const repairs: string[] = [];
    for (const [spec, want] of st.desired) {
      const plan = planChain(spec, want, await this.#observe(st, p, spec));
      tables.push({ table: spec.table, lines: plan.lines });
      repairs.push(...plan.repairs.map((r) => `${familyName(st.family)} ${r}`));
    }
    const payload = restorePayload(tables);
    if (payload !== "") {
      if (why === "resync") {
        this.log.info(`Some iptables rules are missing or out of place; repairing: ${repairs.join("; ")}`);
      } else this.log.v(1, `iptables ${why} (${familyName(st.family)}): ${repairs.join("; ")}`);
      this.log.v(4, `${st.tools.restore} payload:\n${payload}`);
      const argv = [st.tools.restore, "--noflush", ...(p.wait ? ["--wait"] : [])];
      const res = await runTool(this.deps.run, argv, DEB, payload);
      if (res.code !== 0) throw failure(`Cannot apply ${familyName(st.family)} iptables rules`, argv, res);
    }
    for (const [spec, want] of st.desired) if (want === null) st.desired.delete(spec);
    return { changed: payload !== "", repairs };
  }

  async #observe(st: FamilyState, p: Probe, spec: ChainSpec): Promise<ObservedChains> {
    const what = `Cannot read ${familyName(st.family)} iptables table ${spec.table}`;
    const hint = ` (does the kernel support it? legacy needs ${
      st.family === "ipv4" ? "ip" : "ip6"
    }table_${spec.table}, nf_tables needs nft_compat${spec.table === "nat" ? " and nft_chain_nat" : ""})`;
    if (p.listing === "save") {
      const argv = [st.tools.save, "-t", spec.table];
      const res = await runTool(this.deps.run, argv, DEB);
      if (res.code !== 0) throw new Error(failure(what, argv, res).message + hint);
      return parseSave(res.stdout, spec);
    }
    const base = [st.tools.iptables, ...(p.wait ? ["-w"] : []), "-t", spec.table, "-S"];
    const b = await runTool(this.deps.run, [...base, spec.builtin], DEB);
    if (b.code !== 0) throw new Error(failure(what, [...base, spec.builtin], b).message + hint);
    const c = await runTool(this.deps.run, [...base, spec.chain], DEB);
    // Exit code 1 is iptables' "other problem": for a listing that just worked on the built-in
    // chain, the chain does not exist. 2 (bad parameter) and 4 (resource, e.g. lock) are errors.
    if (c.code !== 0 && c.code !== 1) throw failure(what, [...base, spec.chain], c);
    return {
      builtin: parseChainListing(b.stdout),
      chain: c.code === 0 ? parseChainListing(c.stdout) : undefined,
    };
  }
}

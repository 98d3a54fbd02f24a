/**
 * The nftables traffic manager (§6.2): tables `ip flannel-ipv4` and `ip6 flannel-ipv6`, each with
 * a `postrtg` (masquerade) and a `forward` chain.
 *
 * We own those tables whole, so every change rebuilds the family's table in one `nft -f -`
 * transaction (delete and re-create), and a reconcile is one `nft list table` per managed family
 * compared with the text we expect. Upstream has no resync in this mode at all.
 *
 * The expected text is rendered by {@linkcode renderTableListing} (nft 1.0.6's format, which
 * upstream's e2e golden output pins). Another nft version may print the same rules differently
 * (`priority 100` for `srcnat`, say); after each rebuild we list the table once more, and when the
 * text differs from ours we take what nft printed as the reference, with one warning, instead of
 * rebuilding every period.
 *
 * @module
 */
import { failure, familyName, ManagerBase, type ManagerDeps, runTool, ToolMissingError } from "./common.ts";
import {
  createTablesScript,
  deleteTablesScript,
  firstDifference,
  forwardChain,
  fullyRandomProbeScript,
  masqChain,
  NFT_TABLES,
  type NftChain,
  type NftTable,
  rebuildTableScript,
  renderTableListing,
} from "./nftables_rules.ts";
import type { Family, PreviousNetworks, ReconcileReport, RulesLease, RulesNetworkConfig } from "./types.ts";

/** Options of {@linkcode NftablesManager}. */
export interface NftablesManagerOptions extends ManagerDeps {
  /** The nft program; default `nft`. */
  nft?: string;
  /** Removes the iptables mode's state; called by {@linkcode NftablesManager.cleanupOtherMode}. */
  otherModeCleanup?: () => Promise<void>;
}

interface FamilyState {
  readonly family: Family;
  readonly table: NftTable;
  masq: NftChain | undefined;
  forward: NftChain | undefined;
  /** True once setup has said what this table must hold (possibly nothing). */
  managed: boolean;
  /** What nft lists for the desired table, when it differs from our rendering. */
  baseline: string | undefined;
}

const DEB = "nftables";

/** Masquerade and forward rules through `nft -f -` transactions. */
export class NftablesManager extends ManagerBase {
  readonly mode = "nftables" as const;
  readonly #opts: NftablesManagerOptions;
  readonly #nft: string;
  readonly #fams: Record<Family, FamilyState>;
  #fullyRandom: Promise<boolean> | undefined;
  #warnedFormat = false;

  constructor(opts: NftablesManagerOptions) {
    super(opts);
    this.#opts = opts;
    this.#nft = opts.nft ?? "nft";
    const fam = (family: Family): FamilyState => ({
      family,
      table: NFT_TABLES[family],
      masq: undefined,
      forward: undefined,
      managed: false,
      baseline: undefined,
    });
    this.#fams = { ipv4: fam("ipv4"), ipv6: fam("ipv6") };
  }

  async cleanupOtherMode(): Promise<void> {
    try {
      await this.#opts.otherModeCleanup?.();
    } catch (e) {
      if (e instanceof ToolMissingError) {
        this.log.info(`${e.tool} is not installed, so no iptables rules of a previous run to remove`);
      } else this.log.error(`Failed to remove iptables rules of a previous run: ${(e as Error).message}`);
    }
  }

  /** Creates both tables (as upstream, whatever families are enabled) and probes fully-random. */
  init(): Promise<void> {
    return this.serial(async () => {
      const argv = [this.#nft, "-f", "-"];
      const res = await runTool(this.deps.run, argv, DEB, createTablesScript());
      if (res.code !== 0) {
        throw new Error(
          failure("Cannot create nftables tables ip flannel-ipv4 and ip6 flannel-ipv6", argv, res).message +
            " (does the kernel have nf_tables? needs nf_tables, nft_chain_nat and nft_masq)",
        );
      }
      await this.#probeFullyRandom();
    });
  }

  setupMasq(config: RulesNetworkConfig, lease: RulesLease, previous: PreviousNetworks = {}): Promise<void> {
    return this.serial(async () => {
      for (const st of Object.values(this.#fams)) {
        const v4 = st.family === "ipv4";
        const net = v4 ? config.network : config.ipv6Network;
        const subnet = v4 ? lease.subnet : lease.ipv6Subnet;
        const prevNet = v4 ? previous.network : previous.ipv6Network;
        const name = familyName(st.family);
        if ((v4 ? config.enableIPv4 : config.enableIPv6) && net) {
          if (!subnet) {
            this.log.warn(`No ${name} subnet in our lease: no ${name} masquerade rules`);
            continue;
          }
          this.log.info(`Setting up ${name} masquerade rules for ${net} (subnet ${subnet})`);
          st.masq = masqChain(st.family, net, subnet, await this.#probeFullyRandom());
          st.managed = true;
          await this.#rebuild(st);
        } else if (prevNet || st.masq) {
          st.masq = undefined;
          await this.#removeStale(st, "masquerade rules");
        }
      }
    });
  }

  setupForward(config: RulesNetworkConfig, previous: PreviousNetworks = {}): Promise<void> {
    return this.serial(async () => {
      for (const st of Object.values(this.#fams)) {
        const v4 = st.family === "ipv4";
        const net = v4 ? config.network : config.ipv6Network;
        const prevNet = v4 ? previous.network : previous.ipv6Network;
        if ((v4 ? config.enableIPv4 : config.enableIPv6) && net) {
          this.log.info(`Setting up ${familyName(st.family)} forward rules for ${net}`);
          st.forward = forwardChain(st.family, net);
          st.managed = true;
          await this.#rebuild(st);
        } else if (prevNet || st.forward) {
          st.forward = undefined;
          await this.#removeStale(st, "forward rules");
        }
      }
    });
  }

  /** Rebuilds a now-disabled family's table without a chain; a failure only warns. */
  async #removeStale(st: FamilyState, what: string): Promise<void> {
    this.log.info(`${familyName(st.family)} is no longer enabled: removing its ${what}`);
    st.managed = true;
    try {
      await this.#rebuild(st);
    } catch (e) {
      st.managed = st.masq !== undefined || st.forward !== undefined;
      this.log.warn(`Cannot remove ${familyName(st.family)} ${what}: ${(e as Error).message}`);
    }
  }

  protected async reconcileNow(): Promise<ReconcileReport> {
    const report: ReconcileReport = { changed: false, repairs: [] };
    const errors: string[] = [];
    for (const st of Object.values(this.#fams)) {
      if (!st.managed) continue;
      try {
        const got = await this.#list(st);
        const want = st.baseline ?? this.#render(st);
        if (got === want) continue;
        const d = got === undefined ? undefined : firstDifference(want, got);
        const why = got === undefined
          ? `table ${st.table.family} ${st.table.name} missing`
          : `table ${st.table.family} ${st.table.name} differs at line ${d?.line}: ${JSON.stringify(d?.got)}`;
        this.log.info(`Some nftables rules are missing or changed; rebuilding the table: ${why}`);
        await this.#rebuild(st);
        report.changed = true;
        report.repairs.push(`${familyName(st.family)} ${why}`);
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    if (errors.length > 0) throw new Error(errors.join("; "));
    return report;
  }

  /** Deletes both tables in one transaction, whether or not they exist. */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      for (const st of Object.values(this.#fams)) {
        Object.assign(st, { masq: undefined, forward: undefined, managed: false, baseline: undefined });
      }
      const argv = [this.#nft, "-f", "-"];
      const all = Object.values(NFT_TABLES);
      const res = await runTool(this.deps.run, argv, DEB, deleteTablesScript(all));
      if (res.code === 0) return;
      // One family may be unusable (a kernel without IPv6 nf_tables): try each table alone.
      const errors: string[] = [];
      for (const t of all) {
        const r = await runTool(this.deps.run, argv, DEB, deleteTablesScript([t]));
        if (r.code !== 0) {
          errors.push(failure(`Cannot delete nftables table ${t.family} ${t.name}`, argv, r).message);
        }
      }
      if (errors.length > 0) throw new Error(errors.join("; "));
    });
  }

  /** Upstream's probe: `nft --check` of a masquerade fully-random rule in a throw-away chain. */
  #probeFullyRandom(): Promise<boolean> {
    this.#fullyRandom ??= (async () => {
      if (this.deps.fullyRandomDisable) return false;
      const res = await runTool(
        this.deps.run,
        [this.#nft, "--check", "-f", "-"],
        DEB,
        fullyRandomProbeScript(),
      );
      const ok = res.code === 0;
      this.log.info(`nftables masquerade fully-random is ${ok ? "supported" : "not supported"}`);
      return ok;
    })();
    this.#fullyRandom.catch(() => this.#fullyRandom = undefined);
    return this.#fullyRandom;
  }

  #chains(st: FamilyState): NftChain[] {
    return [st.masq, st.forward].filter((c) => c !== undefined);
  }

  #render(st: FamilyState): string {
    return renderTableListing(st.table, this.#chains(st));
  }

  /** `nft list table`, or `undefined` when it fails (the table is missing). */
  async #list(st: FamilyState): Promise<string | undefined> {
    const res = await runTool(
      this.deps.run,
      [this.#nft, "list", "table", st.table.family, st.table.name],
      DEB,
    );
    return res.code === 0 ? res.stdout : undefined;
  }

  /** Replaces the family's table with the desired one, then learns how nft lists it. */
  async #rebuild(st: FamilyState): Promise<void> {
    const argv = [this.#nft, "-f", "-"];
    const script = rebuildTableScript(st.table, this.#chains(st));
    this.log.v(4, `nft script:\n${script}`);
    const res = await runTool(this.deps.run, argv, DEB, script);
    if (res.code !== 0) throw failure(`Cannot apply ${familyName(st.family)} nftables rules`, argv, res);
    const want = this.#render(st);
    const got = await this.#list(st);
    st.baseline = undefined;
    if (got !== undefined && got !== want) {
      const d = firstDifference(want, got);
      const warnOnce = this.#warnedFormat ? (m: string) => this.log.v(2, m) : (m: string) => this.log.warn(m);
      this.#warnedFormat = true;
      warnOnce(
        `nft lists table ${st.table.family} ${st.table.name} differently than expected at line ${d?.line} ` +
          `(${JSON.stringify(d?.got)}, expected ${
            JSON.stringify(d?.want)
          }); resync compares against nft's text`,
      );
      st.baseline = got;
    }
  }
}

/**
 * What the iptables and nftables managers share: running the tools with clear errors, the
 * serialised queue, the resync loop and the blackhole-route check.
 *
 * @module
 */
import type { CommandResult } from "../iface/mod.ts";
import type { IP4Net, IP6Net } from "../ip/mod.ts";
import type { Logger } from "../log/logger.ts";
import { EXIT_NOT_FOUND, type StdinCommandRunner } from "../runtime/command_stdin.ts";
import type { Clock } from "../util/clock.ts";
import { blackholeSubnets } from "./blackhole.ts";
import type {
  EnsureBlackhole,
  Family,
  PreviousNetworks,
  ReconcileReport,
  RulesLease,
  RulesMode,
  RulesNetworkConfig,
  TrafficManager,
} from "./types.ts";

/** A tool the rules need is not installed; names the Debian package that provides it. */
export class ToolMissingError extends Error {
  override readonly name = "ToolMissingError";
  /** The program that could not be run. */
  readonly tool: string;
  /** The Debian package that provides it. */
  readonly debianPackage: string;

  constructor(tool: string, debianPackage: string) {
    super(`Cannot run ${tool}: not installed (on Debian: apt-get install ${debianPackage})`);
    this.tool = tool;
    this.debianPackage = debianPackage;
  }
}

/** A tool's error output on one line, shortened: what a log line or an error message can carry. */
export function oneLine(text: string, max = 300): string {
  const s = text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("# Warning:")).join(
    "; ",
  );
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** `"IPv4"` / `"IPv6"`, for messages. */
export const familyName = (f: Family): string => f === "ipv4" ? "IPv4" : "IPv6";

/**
 * Runs a tool; a missing program becomes a {@linkcode ToolMissingError} naming `debianPackage`.
 * Other failures are returned, for the caller to word.
 */
export async function runTool(
  run: StdinCommandRunner,
  argv: string[],
  debianPackage: string,
  stdin?: string,
): Promise<CommandResult> {
  const res = await run(stdin === undefined ? { argv } : { argv, stdin });
  if (res.code === EXIT_NOT_FOUND) throw new ToolMissingError(argv[0] ?? "", debianPackage);
  return res;
}

/** `<what>: <tool> exited with <code>: <stderr>`, one line. */
export function failure(what: string, argv: readonly string[], res: CommandResult): Error {
  const detail = oneLine(res.stderr) || oneLine(res.stdout) || "no output";
  return new Error(`${what}: ${argv[0]} exited with ${res.code}: ${detail}`);
}

/** Dependencies and settings both managers take. */
export interface ManagerDeps {
  /** Runs iptables/nft; stdin carries restore payloads and nft scripts. */
  run: StdinCommandRunner;
  log: Logger;
  clock: Clock;
  /** `--iptables-resync`, in seconds: the reconcile (and blackhole check) period. */
  resyncSeconds: number;
  /** `--ip-masq-fully-random-disable`. */
  fullyRandomDisable: boolean;
  /** Families enabled in the network config: only those are probed at init. */
  enableIPv4: boolean;
  enableIPv6: boolean;
}

/** Consecutive repairs after which a warning says that something keeps undoing ours. */
const CHURN_WARN_AFTER = 3;

/**
 * The shared half of a traffic manager: serialisation, the periodic loop, blackhole routes.
 * Subclasses implement the mode-specific methods.
 */
export abstract class ManagerBase implements TrafficManager {
  abstract readonly mode: RulesMode;
  protected readonly deps: ManagerDeps;
  protected readonly log: Logger;
  #queue: Promise<unknown> = Promise.resolve();
  #blackholes: { subnets: Array<IP4Net | IP6Net>; ensure: EnsureBlackhole } | undefined;
  #repairStreak = 0;

  constructor(deps: ManagerDeps) {
    this.deps = deps;
    this.log = deps.log;
  }

  abstract cleanupOtherMode(): Promise<void>;
  abstract init(): Promise<void>;
  abstract setupMasq(
    config: RulesNetworkConfig,
    lease: RulesLease,
    previous?: PreviousNetworks,
  ): Promise<void>;
  abstract setupForward(config: RulesNetworkConfig, previous?: PreviousNetworks): Promise<void>;
  abstract cleanup(): Promise<void>;
  /** One reconcile pass, already serialised by {@linkcode reconcile}. */
  protected abstract reconcileNow(): Promise<ReconcileReport>;

  /** Runs `fn` after everything queued before it; a failure does not block what follows. */
  protected serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => {});
    return next;
  }

  reconcile(): Promise<ReconcileReport> {
    return this.serial(async () => {
      const report = await this.reconcileNow();
      if (!report.changed) {
        this.#repairStreak = 0;
        return report;
      }
      this.#repairStreak++;
      if (this.#repairStreak === CHURN_WARN_AFTER) {
        this.log.warn(
          `Rules needed repair ${CHURN_WARN_AFTER} resyncs in a row: another program keeps changing them ` +
            `(or a second flanneld on this node manages the same chains)`,
        );
      }
      return report;
    });
  }

  setupBlackhole(config: RulesNetworkConfig, lease: RulesLease, ensureBlackhole: EnsureBlackhole): void {
    this.#blackholes = { subnets: blackholeSubnets(config, lease), ensure: ensureBlackhole };
  }

  async run(signal: AbortSignal): Promise<void> {
    const periodMs = Math.max(1, this.deps.resyncSeconds) * 1000;
    while (!signal.aborted) {
      await this.#checkBlackholes();
      try {
        await this.deps.clock.sleep(periodMs, signal);
      } catch {
        return;
      }
      if (signal.aborted) return;
      try {
        await this.reconcile();
      } catch (e) {
        this.log.error(`Failed to resync ${this.mode} rules: ${(e as Error).message}`);
      }
    }
  }

  async #checkBlackholes(): Promise<void> {
    const b = this.#blackholes;
    if (!b) return;
    for (const subnet of b.subnets) {
      try {
        await b.ensure(subnet);
      } catch (e) {
        this.log.error(`Failed to add blackhole route for ${subnet}: ${(e as Error).message}`);
      }
    }
  }
}

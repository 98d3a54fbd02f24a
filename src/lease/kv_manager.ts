/**
 * The subnet manager over a {@linkcode KV} store: upstream's etcd "local manager", with every
 * write fenced.
 *
 * Keys: `<prefix>/config` holds net-conf.json; `<prefix>/subnets/<subnet key>` holds each node's
 * lease (JSON in lease_json.ts), bound to a 24 h TTL. Acquisition follows upstream's order (reuse
 * the lease that carries our public IP, then the subnet from the previous subnet.env, then a
 * random free one), but creation is create-if-absent and every renewal is compare-and-swap on the
 * revision we last wrote. A lost race tries another subnet instead of exiting (upstream QUIRK),
 * and a lease overwritten by another writer is reported as lost instead of being fought over.
 *
 * @module
 */
import { checkNetworkConfig, type NetworkConfig, parseNetworkConfig } from "../config/network_config.ts";
import { IP4, type IP4Net, type IP6Net, makeSubnetKey, parseSubnetKey } from "../ip/mod.ts";
import type { Logger } from "../log/logger.ts";
import type { Clock } from "../util/clock.ts";
import type { KV, KVEntry } from "./kv.ts";
import { decodeLeaseAttrs, encodeLeaseAttrs } from "./lease_json.ts";
import { listWatch } from "./informer.ts";
import {
  ConfigNotFoundError,
  type LeaseOutcome,
  OutOfSubnetsError,
  type ReleaseTarget,
  type SubnetManager,
} from "./manager.ts";
import type { Lease, LeaseAttrs, LeaseBatch, LeaseEvent } from "./types.ts";
import { LeaseWatcher } from "./watcher.ts";
import { allocateSubnet, compatibleWithConfig, overlapsAny } from "./allocate.ts";

/** Upstream's lease TTL: 24 hours. */
export const SUBNET_TTL_SECONDS = 24 * 60 * 60;
/** Upstream retries a failed renewal after one minute. */
export const RENEW_RETRY_MS = 60_000;

export interface KVSubnetManagerOptions {
  kv: KV;
  /** Key prefix, `--etcd-prefix` (default `/coreos.com/network`). */
  prefix: string;
  log: Logger;
  clock: Clock;
  /** Subnets from the previous subnet.env, reused when still free. */
  previousSubnet?: IP4Net;
  previousIPv6Subnet?: IP6Net;
  /** `--subnet-lease-renew-margin`, minutes before expiry to renew. Default 60. */
  renewMarginMinutes?: number;
  /** Random source in [0,1) for the subnet choice. Default Math.random. */
  random?: () => number;
  /** A label for `Created subnet manager: …` (default says etcd). */
  storeName?: string;
  /** Lease TTL in seconds; upstream's 24 h unless a test shortens it. */
  ttlSeconds?: number;
}

/** A lease read from the store, with the entry it came from. */
interface StoredLease {
  lease: Lease;
  entry: KVEntry;
}

/** The KV-backed subnet manager. */
export class KVSubnetManager implements SubnetManager {
  readonly #kv: KV;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #opts: KVSubnetManagerOptions;
  readonly #badSeen = new Set<string>();
  #config: NetworkConfig | undefined;

  constructor(opts: KVSubnetManagerOptions) {
    this.#kv = opts.kv;
    this.#prefix = opts.prefix.replace(/\/+$/, "");
    this.#log = opts.log;
    this.#clock = opts.clock;
    this.#opts = opts;
  }

  get name(): string {
    const prev = this.#opts.previousSubnet?.toString() ?? "None";
    return `${this.#opts.storeName ?? "Etcd Local Manager"} with Previous Subnet: ${prev}`;
  }

  get #ttl(): number {
    return this.#opts.ttlSeconds ?? SUBNET_TTL_SECONDS;
  }

  get #subnetsPrefix(): string {
    return `${this.#prefix}/subnets/`;
  }

  async releaseLease(t: ReleaseTarget, signal?: AbortSignal): Promise<string> {
    if (!t.subnet) return "No IPv4 subnet in the subnet file: no lease to release";
    const key = this.#subnetsPrefix + makeSubnetKey(t.subnet, t.ipv6Subnet);
    const { entry } = await this.#kv.get(key, signal);
    if (!entry) return `No lease ${key} in the store: nothing to release`;
    let attrs: LeaseAttrs;
    try {
      attrs = decodeLeaseAttrs(entry.value);
    } catch (e) {
      return `Kept lease ${key}: its value is not lease JSON (${(e as Error).message})`;
    }
    const publics = [attrs.publicIP.toString(), attrs.publicIPv6?.toString()].filter((a) => a !== undefined);
    if (!publics.some((a) => t.ownAddresses.has(a))) {
      return `Kept lease ${key}: its PublicIP ${
        publics.join(", ")
      } is not an address of this host, so another node holds it`;
    }
    if (entry.leaseId === 0n) {
      return `Kept lease ${key}: it is a reservation (no TTL), which only an admin removes`;
    }
    if (!(await this.#kv.delete(key, entry.modRevision, signal))) {
      return `Kept lease ${key}: it changed while we looked (renewed by a running flanneld?)`;
    }
    return `Released lease ${key}`;
  }

  async getNetworkConfig(signal?: AbortSignal): Promise<NetworkConfig> {
    const { entry } = await this.#kv.get(`${this.#prefix}/config`, signal);
    if (!entry) {
      throw new ConfigNotFoundError(
        `flannel config not found in etcd store. Did you create your config using etcdv3 API? ` +
          `(expected key ${this.#prefix}/config; write it with: etcdctl put ${this.#prefix}/config '<net-conf.json>')`,
      );
    }
    this.#config = checkNetworkConfig(parseNetworkConfig(entry.value));
    return this.#config;
  }

  async acquireLease(attrs: LeaseAttrs, signal?: AbortSignal): Promise<Lease> {
    const cfg = await this.getNetworkConfig(signal);
    const value = encodeLeaseAttrs(attrs);
    let lost = 0;
    for (;;) {
      signal?.throwIfAborted();
      const leases = await this.#listLeases(signal);

      // 1. The lease that carries our public IP (a restart, or an operator's reservation).
      if (!attrs.publicIP.isUnspecified()) {
        const mine = leases.find((l) => l.lease.attrs.publicIP.equals(attrs.publicIP));
        if (mine) {
          if (compatibleWithConfig(mine.lease, cfg)) {
            // Keep a reservation (a key without TTL) a reservation; renew a normal lease.
            const ttl = mine.entry.leaseId === 0n ? 0 : this.#ttl;
            const entry = await this.#kv.update(mine.entry.key, value, ttl, mine.entry.modRevision, signal);
            // A lease we kept from a start that was cut short between creating it and checking
            // its IPv6 subnet (see the create path) must pass that check now.
            const v6 = mine.lease.ipv6Subnet;
            if (
              entry && v6 &&
              (await this.#ipv6Taken({ ...entry, createRevision: mine.entry.createRevision }, v6, signal))
            ) {
              this.#log.warn(`Subnet ${v6} of our lease is also another, older node's; allocating again`);
              await this.#kv.delete(entry.key, entry.modRevision, signal);
              continue;
            }
            if (entry) {
              this.#log.info(
                `Found lease (ip: ${mine.lease.subnet} ipv6: ${
                  mine.lease.ipv6Subnet ?? ""
                }) for current IP ` +
                  `(${attrs.publicIP}), reusing`,
              );
              return this.#toLease(mine.lease, attrs, entry, ttl);
            }
            lost++;
            await this.#afterLostRace(lost, mine.lease.subnet, signal);
            continue;
          }
          this.#log.warn(
            `Found lease (ip: ${mine.lease.subnet} ipv6: ${mine.lease.ipv6Subnet ?? ""}) for current IP ` +
              `(${attrs.publicIP}), but not compatible with current config, deleting`,
          );
          await this.#kv.delete(mine.entry.key, mine.entry.modRevision, signal);
          continue;
        }
      }

      // 2. The subnet of our previous run, if it is still free.
      const prev = this.#previousCandidate(cfg, leases);
      let sn: IP4Net | undefined;
      let sn6: IP6Net | undefined;
      if (prev && lost === 0) {
        this.#log.info(`Found previously leased subnet (${prev.sn}), reusing`);
        ({ sn, sn6 } = prev);
      } else {
        // 3. A random free subnet among the first 100.
        const got = allocateSubnet(cfg, leases.map((l) => l.lease), this.#opts.random ?? Math.random);
        if (!got) {
          throw new OutOfSubnetsError(
            `out of subnets: every /${cfg.subnetLen} between ${cfg.subnetMin} and ${cfg.subnetMax} is leased ` +
              `(${leases.length} leases); widen Network or SubnetMin/SubnetMax, or delete stale leases under ` +
              `${this.#subnetsPrefix}`,
          );
        }
        ({ sn, sn6 } = got);
      }
      const ttl = this.#ttl;
      const entry = await this.#kv.create(this.#key(sn, sn6), value, ttl, signal);
      // The key's compare-and-swap fences the whole key, so two nodes can never hold one IPv4
      // subnet; but two keys with different IPv4 and the same IPv6 subnet both get created when
      // two nodes allocate at once (seen: 1 start in 20 of a 3-node dual-stack cluster). The
      // older key (lower create revision, unique in the store) keeps the IPv6 subnet; the younger
      // deletes itself and allocates again. Every interleaving ends with exactly one holder.
      if (entry && sn6 && (await this.#ipv6Taken(entry, sn6, signal))) {
        this.#log.warn(`Subnet ${sn6} was leased by another node at the same time; allocating again`);
        await this.#kv.delete(entry.key, entry.modRevision, signal);
        lost++;
        await this.#afterLostRace(lost, sn, signal);
        continue;
      }
      if (entry) {
        this.#log.info(
          `Allocated lease (ip: ${sn} ipv6: ${sn6 ?? ""}) to current node (${attrs.publicIP})`,
        );
        const lease: Lease = {
          enableIPv4: true,
          enableIPv6: sn6 !== undefined,
          subnet: sn,
          attrs,
          expiration: 0,
        };
        if (sn6) lease.ipv6Subnet = sn6;
        return this.#toLease(lease, attrs, entry, ttl);
      }
      lost++;
      await this.#afterLostRace(lost, sn, signal);
    }
  }

  async *watchLeases(ownLease: Lease, signal: AbortSignal): AsyncGenerator<LeaseBatch> {
    const watcher = new LeaseWatcher({ ownLease, log: this.#log });
    const stream = listWatch(
      {
        kv: this.#kv,
        prefix: this.#subnetsPrefix,
        log: this.#log,
        clock: this.#clock,
        what: "subnet leases",
      },
      signal,
    );
    for await (const item of stream) {
      if (item.kind === "snapshot") {
        const leases = item.entries.map((e) => this.#decode(e)).filter((l) => l !== undefined);
        yield watcher.apply({ kind: "snapshot", leases: leases.map((l) => l.lease) });
        continue;
      }
      const events: LeaseEvent[] = [];
      for (const ev of item.events) {
        const parsed = parseSubnetKey(ev.key.slice(this.#subnetsPrefix.length));
        if (!parsed) continue;
        if (ev.type === "delete") {
          const lease: Lease = {
            enableIPv4: true,
            enableIPv6: parsed.ip6 !== undefined,
            subnet: parsed.ip4,
            attrs: { publicIP: ZERO_ATTRS.publicIP },
            expiration: 0,
          };
          if (parsed.ip6) lease.ipv6Subnet = parsed.ip6;
          events.push({ type: "removed", lease });
          continue;
        }
        const stored = this.#decode({ ...ev, createRevision: 0n });
        if (stored) events.push({ type: "added", lease: stored.lease });
      }
      if (events.length > 0) yield watcher.apply({ kind: "events", events });
    }
  }

  async completeLease(lease: Lease, signal: AbortSignal): Promise<LeaseOutcome> {
    const key = this.#key(lease.subnet, lease.ipv6Subnet);
    const value = encodeLeaseAttrs(lease.attrs);
    const margin = (this.#opts.renewMarginMinutes ?? 60) * 60_000;
    let revision = lease.revision;
    let expiration = lease.expiration;
    let renewFailed = false;
    let announced = 0;

    const inner = new AbortController();
    const stop = () => inner.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    const stream = listWatch(
      { kv: this.#kv, prefix: key, log: this.#log, clock: this.#clock, what: `own lease ${lease.subnet}` },
      inner.signal,
    );
    let pending = stream.next();
    try {
      for (;;) {
        const renewIn = expiration === 0
          ? Infinity
          : renewFailed
          ? RENEW_RETRY_MS
          : expiration - margin - this.#clock.now();
        const timer = new AbortController();
        const wake = Number.isFinite(renewIn)
          ? this.#clock.sleep(Math.max(0, renewIn), timer.signal).then(
            () => "renew" as const,
            () => "none" as const,
          )
          : new Promise<"none">(() => {});
        if (Number.isFinite(renewIn) && !renewFailed && announced !== expiration) {
          announced = expiration;
          this.#log.info(`Waiting for ${formatDuration(renewIn)} to renew lease`);
        }
        const got = await Promise.race([pending.then((r) => ({ r })), wake]);
        timer.abort();
        if (signal.aborted) return "cancelled";
        if (got === "none") continue;
        if (got === "renew") {
          if (revision === undefined) return "lost";
          try {
            const entry = await this.#kv.update(key, value, this.#ttl, revision, signal);
            if (!entry) {
              const { entry: now } = await this.#kv.get(key, signal);
              if (!now) return this.#revoked();
              if (now.value !== value) return this.#lost(lease, now);
              // Our own value (a write whose reply we lost, or an operator's re-put): adopt it.
              revision = now.modRevision;
              const ttl = now.leaseId === 0n ? -1 : await this.#kv.ttl(now.leaseId, signal).catch(() => -1);
              expiration = ttl > 0
                ? this.#clock.now() + ttl * 1000
                : this.#clock.now() + RENEW_RETRY_MS + margin;
              renewFailed = false;
              continue;
            }
            revision = entry.modRevision;
            expiration = this.#clock.now() + this.#ttl * 1000;
            renewFailed = false;
            this.#log.info(`Lease renewed, new expiration: ${new Date(expiration).toISOString()}`);
          } catch (e) {
            if (signal.aborted) return "cancelled";
            renewFailed = true;
            this.#log.error(`Error renewing lease (trying again in 1 min): ${(e as Error).message}`);
          }
          continue;
        }
        const { r } = got;
        if (r.done) return "cancelled";
        pending = stream.next();
        const item = r.value;
        const entries = item.kind === "snapshot"
          ? item.entries.filter((e) => e.key === key)
          : item.events.filter((e) => e.key === key);
        if (item.kind === "snapshot" && entries.length === 0) return this.#revoked();
        for (const e of entries) {
          if ("type" in e && e.type === "delete") return this.#revoked();
          if (revision !== undefined && e.modRevision === revision) continue;
          if (revision === undefined || e.modRevision > revision) {
            // Somebody else wrote our key. If it still carries exactly our value it is a
            // harmless re-put (an operator, or our own write whose reply we lost): adopt it.
            if (e.value === value) {
              revision = e.modRevision;
              if (e.leaseId !== 0n) {
                const ttl = await this.#kv.ttl(e.leaseId, signal).catch(() => -1);
                if (ttl > 0) expiration = this.#clock.now() + ttl * 1000;
              }
              continue;
            }
            return this.#lost(lease, { key, value: e.value, modRevision: e.modRevision });
          }
        }
      }
    } finally {
      signal.removeEventListener("abort", stop);
      inner.abort();
      await stream.return(undefined).catch(() => {});
    }
  }

  #revoked(): LeaseOutcome {
    this.#log.info("Lease has been revoked. Shutting down daemon.");
    return "revoked";
  }

  #lost(lease: Lease, now: { key: string; value: string; modRevision: bigint }): LeaseOutcome {
    let who = "another writer";
    try {
      who = `a node with PublicIP ${decodeLeaseAttrs(now.value).publicIP}`;
    } catch { /* keep the generic text */ }
    this.#log.error(
      `Lease ${lease.subnet} was taken over by ${who} (key ${now.key}, revision ${now.modRevision}); ` +
        `two nodes must never share a subnet, so this daemon stops. If both nodes have the same public IP, ` +
        `give each a distinct --public-ip`,
    );
    return "lost";
  }

  /** Does an older lease than `ours` hold IPv6 subnet `sn6`? */
  async #ipv6Taken(ours: KVEntry, sn6: IP6Net, signal?: AbortSignal): Promise<boolean> {
    const text = sn6.toString();
    return (await this.#listLeases(signal)).some((l) =>
      l.entry.key !== ours.key && l.lease.ipv6Subnet?.toString() === text &&
      l.entry.createRevision < ours.createRevision
    );
  }

  async #listLeases(signal?: AbortSignal): Promise<StoredLease[]> {
    const { entries } = await this.#kv.list(this.#subnetsPrefix, signal);
    return entries.map((e) => this.#decode(e)).filter((l) => l !== undefined);
  }

  #decode(entry: KVEntry): StoredLease | undefined {
    const parsed = parseSubnetKey(entry.key.slice(this.#subnetsPrefix.length));
    if (!parsed || !entry.key.startsWith(this.#subnetsPrefix)) return undefined;
    let attrs: LeaseAttrs;
    try {
      attrs = decodeLeaseAttrs(entry.value);
    } catch (e) {
      const seen = `${entry.key}\0${entry.value}`;
      if (!this.#badSeen.has(seen)) {
        this.#badSeen.add(seen);
        if (this.#badSeen.size > 10_000) this.#badSeen.clear();
        this.#log.warn(`Ignoring bad subnet node: ${entry.key}: ${(e as Error).message}`);
      }
      return undefined;
    }
    const lease: Lease = {
      enableIPv4: true,
      enableIPv6: parsed.ip6 !== undefined,
      subnet: parsed.ip4,
      attrs,
      expiration: 0,
      revision: entry.modRevision,
    };
    if (parsed.ip6) lease.ipv6Subnet = parsed.ip6;
    return { lease, entry };
  }

  #previousCandidate(cfg: NetworkConfig, leases: StoredLease[]): { sn: IP4Net; sn6?: IP6Net } | undefined {
    const prev = this.#opts.previousSubnet;
    if (!prev) return undefined;
    const prev6 = cfg.enableIPv6 ? this.#opts.previousIPv6Subnet : undefined;
    const candidate: Lease = {
      enableIPv4: true,
      enableIPv6: prev6 !== undefined,
      subnet: prev,
      attrs: ZERO_ATTRS,
      expiration: 0,
    };
    if (prev6) candidate.ipv6Subnet = prev6;
    if (!compatibleWithConfig(candidate, cfg)) {
      this.#log.error(
        `Previous subnet ${prev} is not compatible with the current config (Network ${cfg.network}), ignoring it`,
      );
      return undefined;
    }
    if (overlapsAny(candidate, leases.map((l) => l.lease))) return undefined;
    return prev6 ? { sn: prev, sn6: prev6 } : { sn: prev };
  }

  #key(sn: IP4Net, sn6: IP6Net | undefined): string {
    return `${this.#subnetsPrefix}${makeSubnetKey(sn, sn6)}`;
  }

  #toLease(base: Lease, attrs: LeaseAttrs, entry: KVEntry, ttl: number): Lease {
    return {
      ...base,
      attrs,
      revision: entry.modRevision,
      expiration: ttl > 0 ? this.#clock.now() + ttl * 1000 : 0,
    };
  }

  async #afterLostRace(lost: number, sn: IP4Net, signal?: AbortSignal): Promise<void> {
    this.#log.info(`Subnet ${sn} was taken by another node meanwhile; trying another (attempt ${lost})`);
    // Spread contending nodes apart: no pause for the first retries, then up to 1 s.
    if (lost > 2) await this.#clock.sleep(Math.min(1000, 50 * lost) * (0.5 + Math.random()), signal);
  }
}

const ZERO_ATTRS: LeaseAttrs = { publicIP: IP4.fromNumber(0) };

function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${sec}s`;
}

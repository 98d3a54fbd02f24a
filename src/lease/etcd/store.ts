/**
 * The etcd lease store: {@linkcode KV} over our etcd client, and the subnet manager built on it.
 *
 * Creation and renewal are transactions: a new etcd lease (TTL) is granted, then
 * `If(Version(key) == 0)` resp. `If(ModRevision(key) == seen)` puts the value bound to it; when
 * the guard fails the fresh etcd lease is revoked so nothing leaks. Each write grants a new
 * lease, as upstream does, so mixed clusters see the same TTLs.
 *
 * @module
 */
import type { Logger } from "../../log/logger.ts";
import type { Clock } from "../../util/clock.ts";
import { type KV, KVCompactedError, type KVEntry, type KVEvent, KVUnavailableError } from "../kv.ts";
import { KVSubnetManager } from "../kv_manager.ts";
import type { IP4Net, IP6Net } from "../../ip/mod.ts";
import {
  type EtcdAttempt,
  EtcdClient,
  EtcdCompactedError,
  EtcdUnavailableError,
  type KeyValue,
} from "./client.ts";

function entry(kv: KeyValue): KVEntry {
  return {
    key: kv.key,
    value: kv.value,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    leaseId: kv.lease,
  };
}

/** {@linkcode KV} on etcd. */
export class EtcdKV implements KV {
  readonly #etcd: EtcdClient;

  constructor(etcd: EtcdClient) {
    this.#etcd = etcd;
  }

  async get(key: string, signal?: AbortSignal): Promise<{ entry: KVEntry | undefined; revision: bigint }> {
    const r = await this.#etcd.range(key, {}, signal);
    const kv = r.kvs.find((k) => k.key === key);
    return { entry: kv && entry(kv), revision: r.revision };
  }

  async list(prefix: string, signal?: AbortSignal): Promise<{ entries: KVEntry[]; revision: bigint }> {
    const r = await this.#etcd.range(prefix, { prefix: true }, signal);
    return { entries: r.kvs.map(entry), revision: r.revision };
  }

  create(key: string, value: string, ttlSeconds: number, signal?: AbortSignal): Promise<KVEntry | undefined> {
    return this.#guardedPut(
      key,
      value,
      ttlSeconds,
      { key, target: "VERSION", result: "EQUAL", value: 0n },
      signal,
    );
  }

  update(
    key: string,
    value: string,
    ttlSeconds: number,
    expectRevision: bigint,
    signal?: AbortSignal,
  ): Promise<KVEntry | undefined> {
    return this.#guardedPut(
      key,
      value,
      ttlSeconds,
      { key, target: "MOD", result: "EQUAL", value: expectRevision },
      signal,
    );
  }

  async delete(key: string, expectRevision?: bigint, signal?: AbortSignal): Promise<boolean> {
    if (expectRevision === undefined) {
      const r = await this.#etcd.delete(key, {}, signal);
      return r.deleted > 0;
    }
    const r = await this.#etcd.txn({
      compare: [{ key, target: "MOD", result: "EQUAL", value: expectRevision }],
      success: [{ op: "delete", key }],
    }, signal);
    return r.succeeded;
  }

  ttl(leaseId: bigint, signal?: AbortSignal): Promise<number> {
    if (leaseId === 0n) return Promise.resolve(-1);
    return this.#etcd.timeToLive(leaseId, signal);
  }

  async *watch(prefix: string, fromRevision: bigint, signal: AbortSignal): AsyncIterable<KVEvent[]> {
    try {
      for await (
        const batch of this.#etcd.watch(prefix, { prefix: true, startRevision: fromRevision }, signal)
      ) {
        yield batch.events.map((e) => ({
          type: e.type,
          key: e.kv.key,
          value: e.type === "put" ? e.kv.value : "",
          modRevision: e.kv.modRevision,
          leaseId: e.type === "put" ? e.kv.lease : 0n,
        }));
      }
    } catch (e) {
      if (e instanceof EtcdCompactedError) throw new KVCompactedError(e.compactRevision, { cause: e });
      if (e instanceof EtcdUnavailableError) throw new KVUnavailableError(e.message, { cause: e });
      throw e;
    }
  }

  async #guardedPut(
    key: string,
    value: string,
    ttlSeconds: number,
    guard: Parameters<EtcdClient["txn"]>[0]["compare"][number],
    signal?: AbortSignal,
  ): Promise<KVEntry | undefined> {
    const lease = ttlSeconds > 0 ? (await this.#etcd.grant(ttlSeconds, signal)).id : 0n;
    let r;
    try {
      r = await this.#etcd.txn({
        compare: [guard],
        success: [{ op: "put", key, value, lease: lease === 0n ? undefined : lease }],
      }, signal);
    } catch (e) {
      // The transaction may have been applied before its reply was lost (a timeout, a reset,
      // failover to another endpoint). Revoking the lease then would delete our own key; look.
      const applied = await this.#boundTo(key, lease, value).catch(() => undefined);
      if (applied) return applied;
      if (applied === undefined) throw e; // cannot tell: keep the lease, it expires by itself
      if (lease !== 0n) await this.#etcd.revoke(lease).catch(() => {});
      throw e;
    }
    if (r.succeeded) {
      // A key this transaction created was created at its revision; an update's creation is
      // older and unknown here (0n: callers that need it read the key).
      const created = guard.target === "VERSION" ? r.revision : 0n;
      return { key, value, createRevision: created, modRevision: r.revision, leaseId: lease };
    }
    // A retried request can fail its guard because its first attempt already wrote.
    const applied = await this.#boundTo(key, lease, value).catch(() => undefined);
    if (applied) return applied;
    if (applied === false && lease !== 0n) await this.#etcd.revoke(lease).catch(() => {});
    return undefined;
  }

  /** The key's entry when it holds `value` bound to `lease` (our write landed), else false. */
  async #boundTo(key: string, lease: bigint, value: string): Promise<KVEntry | false> {
    const { entry: now } = await this.get(key);
    return now && now.value === value && now.leaseId === lease ? now : false;
  }
}

/** What {@linkcode createEtcdManager} needs from the flags. */
export interface EtcdManagerOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  etcdUsername: string;
  etcdPassword: string;
  subnetLeaseRenewMargin: number;
}

/** The etcd subnet manager for the daemon, with `close()` for the client. */
export function createEtcdManager(opts: {
  options: EtcdManagerOptions;
  previousSubnet?: IP4Net | undefined;
  previousIPv6Subnet?: IP6Net | undefined;
  fetch?: typeof fetch;
  log: Logger;
  clock: Clock;
  /** Told of every request attempt (datastore metrics). */
  observe?: (attempt: EtcdAttempt) => void;
}): KVSubnetManager & { close(): Promise<void> } {
  const o = opts.options;
  const client = new EtcdClient({
    endpoints: o.etcdEndpoints,
    username: o.etcdUsername || undefined,
    password: o.etcdPassword || undefined,
    fetch: opts.fetch,
    log: opts.log,
    observe: opts.observe,
  });
  const manager = new KVSubnetManager({
    kv: new EtcdKV(client),
    prefix: o.etcdPrefix,
    log: opts.log,
    clock: opts.clock,
    renewMarginMinutes: o.subnetLeaseRenewMargin,
    ...(opts.previousSubnet ? { previousSubnet: opts.previousSubnet } : {}),
    ...(opts.previousIPv6Subnet ? { previousIPv6Subnet: opts.previousIPv6Subnet } : {}),
  });
  return Object.assign(manager, { close: () => Promise.resolve(client.close()) });
}

/**
 * One suite that every lease store passes (hono's common.case.test pattern): each store's test
 * file supplies a fixture and calls {@linkcode leaseStoreSuite} (KV stores: memory, etcd) or
 * {@linkcode managerSuite} (any subnet manager, e.g. kube against the fake API server).
 *
 * The manager-level tests run for every store through a {@linkcode PeerStore}; the KV stores add
 * the tests of what only they have: upstream's key and value, allocation, reservations, TTLs,
 * renewal, revocation and fencing (a kube node's subnet is assigned by Kubernetes, never expires,
 * is never renewed and cannot be revoked).
 */
import assert from "node:assert/strict";
import type { SubnetManager } from "../../src/lease/manager.ts";
import { OutOfSubnetsError } from "../../src/lease/manager.ts";
import type { KV } from "../../src/lease/kv.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import type { LeaseAttrs, LeaseBatch } from "../../src/lease/types.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";

const PREFIX = "/coreos.com/network";
export const CONFIG =
  `{ "Network": "10.3.0.0/16", "SubnetMin": "10.3.1.0", "SubnetMax": "10.3.25.0", "Backend": {"Type": "alloc"} }`;

/** A fresh store for one test. */
export interface StoreHandle {
  kv: KV;
  /** Writes a key as another tool would (`etcdctl put`), optionally with a TTL. */
  put(key: string, value: string, ttlSeconds?: number): Promise<void>;
  del(key: string): Promise<void>;
  /** Compacts the store at its current revision. */
  compact(): Promise<void>;
  /** Restarts the store process keeping its data; undefined when not applicable. */
  restart?: () => Promise<void>;
  close(): Promise<void>;
}

export interface StoreFixture {
  name: string;
  /** Why the suite cannot run here, or undefined. */
  skip?: string;
  open(): Promise<StoreHandle>;
}

/**
 * A store seen from the managers: other nodes' leases written as another flannel node would,
 * and the store faults a watch must survive.
 */
export interface PeerStore {
  /** A subnet manager for the node `node` (the public IP it will acquire with). */
  manager(node: string): { m: SubnetManager; log: MemoryLogger };
  /** Replaces the network configuration (net-conf.json) for managers made after this. */
  setConfig(text: string): Promise<void>;
  /** Publishes another node's lease of `subnet` (`10.3.120.0/24`) with `publicIP`. */
  putPeer(subnet: string, publicIP: string): Promise<void>;
  /**
   * Publishes another node's lease whose public IP is `not-an-ip`; returns a text that the one
   * warning contains and the pattern it matches.
   */
  putBadPeer(subnet: string): Promise<{ mark: string; pattern: RegExp }>;
  deletePeer(subnet: string): Promise<void>;
  /** Makes the store forget its history (etcd compaction; kube: the watch cache). */
  compact(): Promise<void>;
  /** Restarts the store keeping its data; absent when not applicable. */
  restart?: () => Promise<void>;
  /** Breaks every open watch stream mid-way; absent when not applicable. */
  cutWatches?: () => Promise<void>;
  close(): Promise<void>;
}

/** A store for the manager-level suite. */
export interface ManagerFixture {
  name: string;
  /** Why the suite cannot run here, or undefined. */
  skip?: string;
  /** A fresh store, configured with {@linkcode CONFIG}. */
  open(): Promise<PeerStore>;
  /** What the store can be put through beyond the common tests. */
  capabilities?: { restart?: boolean; cutWatches?: boolean };
}

function attrs(ip: string): LeaseAttrs {
  return { publicIP: IP4.parse(ip), backendType: "alloc" };
}

function manager(h: StoreHandle, extra: Partial<ConstructorParameters<typeof KVSubnetManager>[0]> = {}) {
  const log = new MemoryLogger();
  const m = new KVSubnetManager({ kv: h.kv, prefix: PREFIX, log, clock: systemClock, ...extra });
  return { m, log };
}

/** Pulls batches until `pred` holds for the accumulated state, with a deadline. */
export async function until(
  it: AsyncIterator<LeaseBatch>,
  pred: (b: LeaseBatch, seen: LeaseBatch[]) => boolean,
  ms = 15_000,
): Promise<LeaseBatch[]> {
  const seen: LeaseBatch[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`condition not met within ${ms} ms; batches: ${describe(seen)}`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<"timeout">((res) => (timer = setTimeout(() => res("timeout"), left))),
    ]);
    clearTimeout(timer);
    if (r === "timeout") throw new Error(`condition not met within ${ms} ms; batches: ${describe(seen)}`);
    if (r.done) throw new Error("stream ended");
    seen.push(r.value);
    if (pred(r.value, seen)) return seen;
  }
}

function describe(bs: LeaseBatch[]): string {
  return JSON.stringify(bs.map((b) => b.events.map((e) => `${e.type} ${e.lease.subnet}`)));
}

/** Whether any batch has an event of `type` for `subnet`. */
export const hasEvent = (seen: LeaseBatch[], type: string, subnet: string) =>
  seen.some((b) => b.events.some((e) => e.type === type && e.lease.subnet.toString() === subnet));

/** Registers the manager-level tests for one store. */
export function managerSuite(fx: ManagerFixture): void {
  const test = (name: string, fn: (h: PeerStore) => Promise<void>) =>
    Deno.test({
      name: `${fx.name}: ${name}`,
      ignore: fx.skip !== undefined,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const h = await fx.open();
        try {
          await fn(h);
        } finally {
          await h.close();
        }
      },
    });
  if (fx.skip) console.log(`skip ${fx.name} lease store suite: ${fx.skip}`);

  test("a lease acquired by one node is seen by another node's watch", async (h) => {
    const a = await h.manager("1.2.3.4").m.acquireLease(attrs("1.2.3.4"));
    assert.ok(IP4Net.parse("10.3.0.0/16").contains(a.subnet), `${a.subnet} not in the network`);
    const { m } = h.manager("1.2.3.5");
    const b = await m.acquireLease(attrs("1.2.3.5"));
    assert.notEqual(b.subnet.toString(), a.subnet.toString());
    const ctl = new AbortController();
    const it = m.watchLeases(b, ctl.signal)[Symbol.asyncIterator]();
    try {
      const [first] = await until(it, () => true);
      const leases = [...first!.leases.values()];
      assert.deepEqual(leases.map((l) => l.subnet.toString()), [a.subnet.toString()]);
      assert.equal(leases[0]!.attrs.publicIP.toString(), "1.2.3.4");
      assert.equal(leases[0]!.attrs.backendType, "alloc");
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });

  test("watch reports other nodes' leases added and removed, never our own", async (h) => {
    const { m } = h.manager("1.2.3.4");
    const own = await m.acquireLease(attrs("1.2.3.4"));
    await h.putPeer("10.3.120.0/24", "5.5.5.5");
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      const first = await until(it, () => true);
      assert.deepEqual(first[0]!.events.map((e) => `${e.type} ${e.lease.subnet}`), ["added 10.3.120.0/24"]);
      assert.equal(first[0]!.leases.size, 1);
      await h.putPeer("10.3.130.0/24", "6.6.6.6");
      await until(it, (_b, seen) => hasEvent(seen, "added", "10.3.130.0/24"));
      await h.deletePeer("10.3.120.0/24");
      const seen = await until(it, (_b, seen) => hasEvent(seen, "removed", "10.3.120.0/24"));
      const removed = seen.flatMap((b) => b.events).find((e) => e.type === "removed")!;
      assert.equal(
        removed.lease.attrs.publicIP.toString(),
        "5.5.5.5",
        "removal carries the last known attrs",
      );
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });

  test("a malformed peer lease is skipped with one warning", async (h) => {
    const { m, log } = h.manager("1.2.3.4");
    const own = await m.acquireLease(attrs("1.2.3.4"));
    const bad = await h.putBadPeer("10.3.121.0/24");
    await h.putPeer("10.3.122.0/24", "7.7.7.7");
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      const [first] = await until(it, () => true);
      assert.deepEqual([...first!.leases.values()].map((l) => l.subnet.toString()), ["10.3.122.0/24"]);
      const warnings = log.messages("warn").filter((s) => s.includes(bad.mark));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, bad.pattern);
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });

  test("a watch behind the compaction horizon recovers by listing again", async (h) => {
    const { m } = h.manager("1.2.3.4");
    const own = await m.acquireLease(attrs("1.2.3.4"));
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      await until(it, () => true); // the snapshot; the watch starts on the next pull
      await h.putPeer("10.3.124.0/24", "9.9.9.1");
      await h.putPeer("10.3.125.0/24", "9.9.9.2");
      await h.compact();
      await until(
        it,
        (_b, seen) => hasEvent(seen, "added", "10.3.124.0/24") && hasEvent(seen, "added", "10.3.125.0/24"),
      );
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });

  if (fx.capabilities?.restart) {
    test("a watch survives a store restart", async (h) => {
      const { m } = h.manager("1.2.3.4");
      const own = await m.acquireLease(attrs("1.2.3.4"));
      const ctl = new AbortController();
      const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
      try {
        await until(it, () => true);
        const next = it.next(); // the watch is running when the store goes away
        await h.restart!();
        await h.putPeer("10.3.119.0/24", "9.9.9.3");
        const r = await next;
        const seen = r.done ? [] : [r.value];
        if (!hasEvent(seen, "added", "10.3.119.0/24")) {
          await until(it, (_b, s) => hasEvent([...seen, ...s], "added", "10.3.119.0/24"), 30_000);
        }
      } finally {
        ctl.abort();
        await it.return?.(undefined);
      }
    });
  }

  if (fx.capabilities?.cutWatches) {
    test("a watch stream cut mid-way recovers without losing a lease", async (h) => {
      const { m } = h.manager("1.2.3.4");
      const own = await m.acquireLease(attrs("1.2.3.4"));
      await h.putPeer("10.3.126.0/24", "9.9.9.4");
      const ctl = new AbortController();
      const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
      try {
        await until(it, () => true);
        await h.cutWatches!();
        await h.putPeer("10.3.127.0/24", "9.9.9.5");
        await h.deletePeer("10.3.126.0/24");
        const seen = await until(
          it,
          (_b, s) => hasEvent(s, "added", "10.3.127.0/24") && hasEvent(s, "removed", "10.3.126.0/24"),
        );
        assert.deepEqual([...seen.at(-1)!.leases.values()].map((l) => l.subnet.toString()), [
          "10.3.127.0/24",
        ]);
      } finally {
        ctl.abort();
        await it.return?.(undefined);
      }
    });
  }

  test("watches end promptly on abort, with 1000 leases in the store", async (h) => {
    // Regression: with a large listing in flight, an aborted fetch left the own-lease watch's
    // body read pending forever, and the daemon never exited after SIGTERM.
    await h.setConfig(`{"Network":"10.0.0.0/8"}`);
    for (let b = 0; b < 1000; b += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => {
        const i = b + j;
        return h.putPeer(`10.${1 + (i >> 8)}.${i & 255}.0/24`, `172.16.${i >> 8}.${i & 255}`);
      }));
    }
    const { m } = h.manager("1.2.3.4");
    const own = await m.acquireLease(attrs("1.2.3.4"));
    for (const delayMs of [0, 20, 100]) {
      const ctl = new AbortController();
      const watching = (async () => {
        for await (const _ of m.watchLeases(own, ctl.signal)) { /* drain */ }
      })();
      const keeping = m.completeLease(own, ctl.signal);
      await new Promise((r) => setTimeout(r, delayMs));
      ctl.abort();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        Promise.all([watching, keeping]).then(([, k]) => k),
        new Promise((r) => (timer = setTimeout(() => r("still running after 5 s"), 5000))),
      ]);
      clearTimeout(timer);
      assert.equal(outcome, "cancelled", `abort after ${delayMs} ms`);
    }
  });
}

/** The manager-level view of a KV store. */
function kvPeerStore(h: StoreHandle): PeerStore {
  const key = (subnet: string) => `${PREFIX}/subnets/${subnet.replace("/", "-")}`;
  return {
    manager: () => manager(h),
    setConfig: (text) => h.put(`${PREFIX}/config`, text),
    putPeer: (subnet, ip) => h.put(key(subnet), `{"PublicIP":"${ip}","PublicIPv6":null}`),
    async putBadPeer(subnet) {
      await h.put(key(subnet), `{"PublicIP":"not-an-ip"}`);
      return {
        mark: subnet.replace("/", "-"),
        pattern: /Ignoring bad subnet node: .*"PublicIP" is "not-an-ip"/,
      };
    },
    deletePeer: (subnet) => h.del(key(subnet)),
    compact: () => h.compact(),
    ...(h.restart ? { restart: h.restart } : {}),
    close: () => h.close(),
  };
}

/** Registers the suite's tests for one KV store: the manager-level tests, then the KV ones. */
export function leaseStoreSuite(fx: StoreFixture): void {
  managerSuite({
    name: fx.name,
    ...(fx.skip === undefined ? {} : { skip: fx.skip }),
    capabilities: { restart: fx.name === "etcd" },
    async open() {
      const h = await fx.open();
      await h.put(`${PREFIX}/config`, CONFIG);
      return kvPeerStore(h);
    },
  });

  const test = (name: string, fn: (h: StoreHandle) => Promise<void>) =>
    Deno.test({
      name: `${fx.name}: ${name}`,
      ignore: fx.skip !== undefined,
      sanitizeOps: false,
      sanitizeResources: false,
      async fn() {
        const h = await fx.open();
        try {
          await h.put(`${PREFIX}/config`, CONFIG);
          await fn(h);
        } finally {
          await h.close();
        }
      },
    });

  test("acquire stores the lease with upstream's key and value", async (h) => {
    const { m } = manager(h);
    const lease = await m.acquireLease(attrs("1.2.3.4"));
    assert.equal(lease.subnet.prefixLen, 24);
    assert.ok(lease.subnet.ip.value >= IP4.parse("10.3.1.0").value);
    assert.ok(lease.subnet.ip.value <= IP4.parse("10.3.25.0").value);
    const key = `${PREFIX}/subnets/${lease.subnet.ip}-24`;
    const { entry } = await h.kv.get(key);
    assert.equal(entry?.value, `{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"alloc"}`);
    assert.ok(lease.expiration > Date.now() + 23 * 3600_000);
  });

  test("a second acquire with the same PublicIP reuses the lease", async (h) => {
    const a = await manager(h).m.acquireLease(attrs("1.2.3.4"));
    const { m, log } = manager(h);
    const b = await m.acquireLease(attrs("1.2.3.4"));
    assert.equal(b.subnet.toString(), a.subnet.toString());
    assert.ok(log.messages("info").some((s) => s.includes("for current IP (1.2.3.4), reusing")));
    const { entries } = await h.kv.list(`${PREFIX}/subnets/`);
    assert.equal(entries.length, 1);
  });

  test("the previous subnet from subnet.env is reused when free, ignored when incompatible", async (h) => {
    const prev = IP4Net.parse("10.3.6.0/24");
    const a = await manager(h, { previousSubnet: prev }).m.acquireLease(attrs("1.2.3.4"));
    assert.equal(a.subnet.toString(), "10.3.6.0/24");
    const { m, log } = manager(h, { previousSubnet: IP4Net.parse("10.4.1.0/24") });
    const b = await m.acquireLease(attrs("1.2.3.5"));
    assert.notEqual(b.subnet.toString(), "10.4.1.0/24");
    assert.ok(log.messages("error").some((s) => s.includes("10.4.1.0/24")));
  });

  test("out of subnets is an error that says how to fix it", async (h) => {
    await h.put(
      `${PREFIX}/config`,
      `{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.2.0"}`,
    );
    await manager(h).m.acquireLease(attrs("1.1.1.1"));
    await manager(h).m.acquireLease(attrs("1.1.1.2"));
    await assert.rejects(manager(h).m.acquireLease(attrs("1.1.1.3")), (e) => {
      assert.ok(e instanceof OutOfSubnetsError);
      assert.match(e.message, /^out of subnets: .*widen Network or SubnetMin\/SubnetMax/);
      return true;
    });
  });

  test("a reservation (a key without TTL) is reused by its PublicIP and stays a reservation", async (h) => {
    await h.put(`${PREFIX}/subnets/10.3.9.0-24`, `{"PublicIP":"1.2.3.9","PublicIPv6":null}`);
    const { m } = manager(h);
    const lease = await m.acquireLease(attrs("1.2.3.9"));
    assert.equal(lease.subnet.toString(), "10.3.9.0/24");
    assert.equal(lease.expiration, 0);
    const { entry } = await h.kv.get(`${PREFIX}/subnets/10.3.9.0-24`);
    assert.equal(entry?.leaseId, 0n);
  });

  test("renewal keeps the attributes and moves the expiry", async (h) => {
    // TTL 61 s with a 1 minute margin: the first renewal is due after about a second.
    const { m, log } = manager(h, { ttlSeconds: 61, renewMarginMinutes: 1 });
    const lease = await m.acquireLease({ ...attrs("1.2.3.4"), backendData: `{"Dummy":"test string"}` });
    const ctl = new AbortController();
    const done = m.completeLease(lease, ctl.signal);
    const deadline = Date.now() + 15_000;
    while (!log.messages("info").some((s) => s.startsWith("Lease renewed"))) {
      assert.ok(Date.now() < deadline, "no renewal within 15 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    ctl.abort();
    assert.equal(await done, "cancelled");
    const { entry } = await h.kv.get(`${PREFIX}/subnets/${lease.subnet.ip}-24`);
    assert.equal(
      entry?.value,
      `{"PublicIP":"1.2.3.4","PublicIPv6":null,"BackendType":"alloc","BackendData":{"Dummy":"test string"}}`,
    );
    assert.ok(entry!.modRevision > lease.revision!);
    const ttl = await h.kv.ttl(entry!.leaseId);
    assert.ok(ttl > 50 && ttl <= 61, `ttl ${ttl}`);
  });

  test("a lease whose TTL expires is reported removed", async (h) => {
    const { m } = manager(h);
    const own = await m.acquireLease(attrs("1.2.3.4"));
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      await until(it, () => true);
      await h.put(`${PREFIX}/subnets/10.3.123.0-24`, `{"PublicIP":"8.8.8.8","PublicIPv6":null}`, 2);
      await until(it, (_b, seen) => hasEvent(seen, "added", "10.3.123.0/24"));
      await until(it, (_b, seen) => hasEvent(seen, "removed", "10.3.123.0/24"), 20_000);
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });

  test("our lease deleted from the store means revoked", async (h) => {
    const { m, log } = manager(h);
    const lease = await m.acquireLease(attrs("1.2.3.4"));
    const ctl = new AbortController();
    const done = m.completeLease(lease, ctl.signal);
    await h.del(`${PREFIX}/subnets/${lease.subnet.ip}-24`);
    assert.equal(await done, "revoked");
    assert.ok(log.messages("info").includes("Lease has been revoked. Shutting down daemon."));
    ctl.abort();
  });

  test("our lease overwritten by another node means lost, not a fight", async (h) => {
    const { m, log } = manager(h);
    const lease = await m.acquireLease(attrs("1.2.3.4"));
    const ctl = new AbortController();
    const done = m.completeLease(lease, ctl.signal);
    await h.put(`${PREFIX}/subnets/${lease.subnet.ip}-24`, `{"PublicIP":"4.4.4.4","PublicIPv6":null}`);
    assert.equal(await done, "lost");
    assert.ok(log.messages("error").some((s) => s.includes("taken over by a node with PublicIP 4.4.4.4")));
    ctl.abort();
  });

  test("concurrent acquirers never get the same subnet", async (h) => {
    // 5 free subnets, 8 nodes that all prefer the same first candidate: the races are certain.
    await h.put(
      `${PREFIX}/config`,
      `{"Network":"10.3.0.0/16","SubnetMin":"10.3.1.0","SubnetMax":"10.3.5.0"}`,
    );
    const managers: SubnetManager[] = Array.from({ length: 8 }, () => manager(h, { random: () => 0 }).m);
    const results = await Promise.allSettled(managers.map((m, i) => m.acquireLease(attrs(`1.1.1.${i + 1}`))));
    const got = results.flatMap((r) => (r.status === "fulfilled" ? [r.value.subnet.toString()] : []));
    assert.equal(
      got.length,
      5,
      JSON.stringify(results.map((r) => r.status === "rejected" ? String(r.reason) : "ok")),
    );
    assert.equal(new Set(got).size, 5, `duplicates: ${got}`);
    for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof OutOfSubnetsError);
    const { entries } = await h.kv.list(`${PREFIX}/subnets/`);
    assert.equal(entries.length, 5);
  });
}

/**
 * One suite that every lease store passes (hono's common.case.test pattern): each store's test
 * file supplies a fixture and calls {@linkcode leaseStoreSuite}.
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

function attrs(ip: string): LeaseAttrs {
  return { publicIP: IP4.parse(ip), backendType: "alloc" };
}

function manager(h: StoreHandle, extra: Partial<ConstructorParameters<typeof KVSubnetManager>[0]> = {}) {
  const log = new MemoryLogger();
  const m = new KVSubnetManager({ kv: h.kv, prefix: PREFIX, log, clock: systemClock, ...extra });
  return { m, log };
}

/** Pulls batches until `pred` holds for the accumulated state, with a deadline. */
async function until(
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

const hasEvent = (seen: LeaseBatch[], type: string, subnet: string) =>
  seen.some((b) => b.events.some((e) => e.type === type && e.lease.subnet.toString() === subnet));

/** Registers the suite's tests for one fixture. */
export function leaseStoreSuite(fx: StoreFixture): void {
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
  if (fx.skip) console.log(`skip ${fx.name} lease store suite: ${fx.skip}`);

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

  test("watch reports other nodes' leases added and removed, never our own", async (h) => {
    const { m } = manager(h);
    const own = await m.acquireLease(attrs("1.2.3.4"));
    await h.put(`${PREFIX}/subnets/10.3.120.0-24`, `{"PublicIP":"5.5.5.5","PublicIPv6":null}`);
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      const first = await until(it, () => true);
      assert.deepEqual(first[0]!.events.map((e) => `${e.type} ${e.lease.subnet}`), ["added 10.3.120.0/24"]);
      assert.equal(first[0]!.leases.size, 1);
      await h.put(`${PREFIX}/subnets/10.3.130.0-24`, `{"PublicIP":"6.6.6.6","PublicIPv6":null}`);
      await until(it, (_b, seen) => hasEvent(seen, "added", "10.3.130.0/24"));
      await h.del(`${PREFIX}/subnets/10.3.120.0-24`);
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
    const { m, log } = manager(h);
    const own = await m.acquireLease(attrs("1.2.3.4"));
    await h.put(`${PREFIX}/subnets/10.3.121.0-24`, `{"PublicIP":"not-an-ip"}`);
    await h.put(`${PREFIX}/subnets/10.3.122.0-24`, `{"PublicIP":"7.7.7.7","PublicIPv6":null}`);
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      const [first] = await until(it, () => true);
      assert.deepEqual([...first!.leases.values()].map((l) => l.subnet.toString()), ["10.3.122.0/24"]);
      const warnings = log.messages("warn").filter((s) => s.includes("10.3.121.0-24"));
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /Ignoring bad subnet node: .*"PublicIP" is "not-an-ip"/);
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
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

  test("a watch behind the compaction horizon recovers by listing again", async (h) => {
    const { m } = manager(h);
    const own = await m.acquireLease(attrs("1.2.3.4"));
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      await until(it, () => true); // the snapshot; the watch starts on the next pull
      await h.put(`${PREFIX}/subnets/10.3.124.0-24`, `{"PublicIP":"9.9.9.1","PublicIPv6":null}`);
      await h.put(`${PREFIX}/subnets/10.3.125.0-24`, `{"PublicIP":"9.9.9.2","PublicIPv6":null}`);
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

  if (fx.name === "etcd") {
    test("a watch survives a store restart", async (h) => {
      const { m } = manager(h);
      const own = await m.acquireLease(attrs("1.2.3.4"));
      const ctl = new AbortController();
      const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
      try {
        await until(it, () => true);
        const next = it.next(); // the watch is running when the store goes away
        await h.restart!();
        await h.put(`${PREFIX}/subnets/10.3.119.0-24`, `{"PublicIP":"9.9.9.3","PublicIPv6":null}`);
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

  test("watches end promptly on abort, with 1000 leases in the store", async (h) => {
    // Regression: with a large listing in flight, an aborted fetch left the own-lease watch's
    // body read pending forever, and the daemon never exited after SIGTERM.
    await h.put(`${PREFIX}/config`, `{"Network":"10.0.0.0/8"}`);
    for (let b = 0; b < 1000; b += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => {
        const i = b + j;
        return h.put(
          `${PREFIX}/subnets/10.${1 + (i >> 8)}.${i & 255}.0-24`,
          `{"PublicIP":"172.16.${i >> 8}.${i & 255}","PublicIPv6":null}`,
        );
      }));
    }
    const { m } = manager(h);
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

import assert from "node:assert/strict";
import { LeaseWatcher } from "../../src/lease/watcher.ts";
import type { Lease, LeaseBatch } from "../../src/lease/types.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";

function lease(subnet: string, ip = "1.1.1.1"): Lease {
  return {
    enableIPv4: true,
    enableIPv6: false,
    subnet: IP4Net.parse(subnet),
    attrs: { publicIP: IP4.parse(ip) },
    expiration: 0,
  };
}
const show = (b: LeaseBatch) => b.events.map((e) => `${e.type} ${e.lease.subnet} ${e.lease.attrs.publicIP}`);

Deno.test("watcher: the first snapshot adds every other node and skips our own", () => {
  const w = new LeaseWatcher({ ownLease: lease("10.0.1.0/24"), log: new MemoryLogger() });
  const b = w.apply({
    kind: "snapshot",
    leases: [lease("10.0.1.0/24"), lease("10.0.2.0/24"), lease("10.0.3.0/24")],
  });
  assert.deepEqual(show(b), ["added 10.0.2.0/24 1.1.1.1", "added 10.0.3.0/24 1.1.1.1"]);
  assert.deepEqual([...b.leases.keys()], ["10.0.2.0/24", "10.0.3.0/24"]);
});

Deno.test("watcher: a later snapshot emits only changes and removals", () => {
  const w = new LeaseWatcher({ log: new MemoryLogger() });
  w.apply({ kind: "snapshot", leases: [lease("10.0.2.0/24"), lease("10.0.3.0/24"), lease("10.0.4.0/24")] });
  const b = w.apply({ kind: "snapshot", leases: [lease("10.0.2.0/24"), lease("10.0.3.0/24", "2.2.2.2")] });
  assert.deepEqual(show(b), ["added 10.0.3.0/24 2.2.2.2", "removed 10.0.4.0/24 1.1.1.1"]);
  assert.equal(b.leases.size, 2);
});

Deno.test("watcher: a removal carries the stored attributes; an unknown one is passed on and logged", () => {
  const log = new MemoryLogger();
  const w = new LeaseWatcher({ log });
  w.apply({ kind: "events", events: [{ type: "added", lease: lease("10.0.2.0/24", "3.3.3.3") }] });
  const b = w.apply({
    kind: "events",
    events: [{ type: "removed", lease: lease("10.0.2.0/24", "0.0.0.0") }, {
      type: "removed",
      lease: lease("10.0.9.0/24", "0.0.0.0"),
    }],
  });
  assert.deepEqual(show(b), ["removed 10.0.2.0/24 3.3.3.3", "removed 10.0.9.0/24 0.0.0.0"]);
  assert.ok(
    log.messages().some((m) => m === "Removed subnet (10.0.9.0/24) and ipv6 subnet () were not found"),
  );
  assert.equal(b.leases.size, 0);
});

Deno.test("watcher: events for our own subnet are dropped", () => {
  const w = new LeaseWatcher({ ownLease: lease("10.0.1.0/24"), log: new MemoryLogger() });
  const b = w.apply({ kind: "events", events: [{ type: "added", lease: lease("10.0.1.0/24", "9.9.9.9") }] });
  assert.deepEqual(b.events, []);
});

/**
 * The client-side view of other nodes' leases, shared by the etcd and Kubernetes stores.
 *
 * It turns snapshots and single events into {@linkcode LeaseBatch}es: our own subnet is never
 * reported; a snapshot emits `added` only for leases that are new or changed and `removed` for
 * known leases that are gone; a removal carries the lease as last known, so backends know its
 * attributes (upstream's LeaseWatcher semantics, §3.6 of the behaviour reference).
 *
 * @module
 */
import type { Lease, LeaseBatch, LeaseEvent } from "./types.ts";
import { sameAttrs } from "./lease_json.ts";
import type { Logger } from "../log/logger.ts";

/** What the stores feed in: a full listing, or changes. */
export type LeaseInput =
  | { kind: "snapshot"; leases: Lease[] }
  | { kind: "events"; events: LeaseEvent[] };

/**
 * The identity of a lease for "same subnet" comparisons: IPv4-only leases compare their IPv4
 * subnet, IPv6-only their IPv6 subnet, dual-stack both (and neither flag means IPv4).
 */
export function leaseIdentity(lease: Lease): string {
  const v4 = lease.subnet.toString();
  const v6 = lease.ipv6Subnet?.toString() ?? "";
  if (lease.enableIPv6 && !lease.enableIPv4) return v6;
  if (lease.enableIPv4 && lease.enableIPv6) return `${v4}&${v6}`;
  return v4;
}

/** Keeps the set of other nodes' leases and computes the batches backends receive. */
export class LeaseWatcher {
  #own: string | undefined;
  #known = new Map<string, Lease>();
  #log: Logger;

  constructor(opts: { ownLease?: Lease; log: Logger }) {
    this.#own = opts.ownLease && leaseIdentity(opts.ownLease);
    this.#log = opts.log;
  }

  /** The other nodes' leases as currently known. */
  get leases(): ReadonlyMap<string, Lease> {
    return this.#known;
  }

  /** Applies one input and returns the batch to deliver (possibly with no events). */
  apply(input: LeaseInput): LeaseBatch {
    const events = input.kind === "snapshot" ? this.#snapshot(input.leases) : this.#events(input.events);
    return { events, leases: new Map(this.#known) };
  }

  #snapshot(leases: Lease[]): LeaseEvent[] {
    const next = new Map<string, Lease>();
    const events: LeaseEvent[] = [];
    for (const lease of leases) {
      const id = leaseIdentity(lease);
      if (id === this.#own) continue;
      next.set(id, lease);
      const old = this.#known.get(id);
      if (!old || !sameLease(old, lease)) events.push({ type: "added", lease });
    }
    for (const [id, old] of this.#known) {
      if (!next.has(id)) events.push({ type: "removed", lease: old });
    }
    this.#known = next;
    return events;
  }

  #events(input: LeaseEvent[]): LeaseEvent[] {
    const events: LeaseEvent[] = [];
    for (const ev of input) {
      const id = leaseIdentity(ev.lease);
      if (id === this.#own) continue;
      if (ev.type === "added") {
        this.#known.set(id, ev.lease);
        events.push(ev);
        continue;
      }
      const old = this.#known.get(id);
      if (old) {
        this.#known.delete(id);
        events.push({ type: "removed", lease: old });
      } else {
        this.#log.v(
          1,
          `Removed subnet (${ev.lease.subnet}) and ipv6 subnet (${ev.lease.ipv6Subnet ?? ""}) were not found`,
        );
        events.push(ev);
      }
    }
    return events;
  }
}

function sameLease(a: Lease, b: Lease): boolean {
  return a.subnet.equals(b.subnet) &&
    (a.ipv6Subnet?.toString() ?? "") === (b.ipv6Subnet?.toString() ?? "") &&
    sameAttrs(a.attrs, b.attrs);
}

/**
 * The lease model shared by every lease store and every backend.
 *
 * A lease gives one node one subnet of the cluster Network (and optionally one of the IPv6Network).
 * Its attributes say how other nodes reach that subnet: the node's public address and the
 * backend's data (a VXLAN MAC, a WireGuard key, …), kept as raw JSON so that a backend of a newer
 * flannel version can put fields in it that we pass on untouched.
 *
 * @module
 */
import type { IP4, IP4Net, IP6, IP6Net } from "../ip/mod.ts";

/** What a node publishes about itself in its lease (upstream `LeaseAttrs`). */
export interface LeaseAttrs {
  /** IPv4 address other nodes send to; `0.0.0.0` when the node has none. */
  publicIP: IP4;
  publicIPv6?: IP6;
  /** Empty for backends that publish no type (udp, alloc). */
  backendType?: string;
  /** Raw, compact JSON text of the backend's IPv4 data. */
  backendData?: string;
  /** Raw, compact JSON text of the backend's IPv6 data. */
  backendV6Data?: string;
}

/** One node's lease. */
export interface Lease {
  enableIPv4: boolean;
  enableIPv6: boolean;
  subnet: IP4Net;
  ipv6Subnet?: IP6Net;
  attrs: LeaseAttrs;
  /** When the lease expires, in ms since the epoch; 0 when unknown or never. */
  expiration: number;
  /**
   * The store's version of this lease (etcd mod_revision), used to fence renewals: a renewal
   * succeeds only while the stored value is still the one we wrote. Undefined when unknown.
   */
  revision?: bigint;
}

/** A change to the set of other nodes' leases. */
export type LeaseEvent =
  | { type: "added"; lease: Lease }
  | { type: "removed"; lease: Lease };

/**
 * One batch of changes, as backends receive it: the events since the previous batch, and the
 * full set of other nodes' leases after them (keyed by subnet key), so that a backend can
 * reconcile the whole desired state instead of replaying deltas.
 */
export interface LeaseBatch {
  events: LeaseEvent[];
  leases: ReadonlyMap<string, Lease>;
}

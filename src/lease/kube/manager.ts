/**
 * The Kubernetes subnet manager (`--kube-subnet-mgr`, §4 of the behaviour reference). Each node's
 * subnet is its `spec.podCIDR(s)`, assigned by Kubernetes; flannel only publishes how to reach it,
 * as annotations on its own Node (strategic-merge patch of `nodes/<name>/status`), and reads the
 * other nodes' annotations through a node informer.
 *
 * Better than upstream:
 * - it serves as soon as our own node is known: no wait of up to 10 minutes for a full sync;
 * - node changes are never dropped or queued without bound: a busy consumer later sees each changed
 *   node once, in its latest state (see `informer.ts`);
 * - a node without a pod CIDR (or the API being down) makes {@linkcode KubeSubnetManager.acquireLease}
 *   log upstream's error and wait, instead of exiting after 30 s;
 * - a node with a bad annotation is skipped with one warning, keeping its last good lease;
 * - a change of either family's annotations is an event (upstream, in dual stack, needed both).
 *
 * @module
 */
import type { NetworkConfig } from "../../config/network_config.ts";
import type { Logger } from "../../log/logger.ts";
import type { Clock } from "../../util/clock.ts";
import type { LeaseOutcome, ReleaseTarget, SubnetManager } from "../manager.ts";
import type { Lease, LeaseAttrs, LeaseBatch, LeaseEvent } from "../types.ts";
import { leaseIdentity, LeaseWatcher } from "../watcher.ts";
import { type AnnotationNames, annotationNames } from "./annotations.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import { NodeInformer } from "./informer.ts";
import {
  annotationsPatch,
  isFlannelNode,
  networkUnavailablePatch,
  nodeToLease,
  planOwnLease,
  sameLease,
  storedMacs,
} from "./node_lease.ts";

/** Upstream polls its own node every 3 s while acquiring. */
export const ACQUIRE_POLL_MS = 3000;

/** Options of a {@linkcode KubeSubnetManager}. */
export interface KubeSubnetManagerOptions {
  client: Pick<KubeClient, "getNode" | "listNodes" | "watchNodes" | "patchNodeStatus">;
  /** This node's name (NODE_NAME, or the pod's spec.nodeName). */
  nodeName: string;
  /** net-conf.json, parsed without validation (kube mode). */
  config: NetworkConfig;
  /** `--kube-annotation-prefix`, before normalisation. */
  annotationPrefix: string;
  /** `--set-node-network-unavailable`. */
  setNodeNetworkUnavailable: boolean;
  log: Logger;
  clock: Clock;
  /** How often our node is looked at while acquiring or patching fails. Default 3000. */
  pollMs?: number;
  /** Server-side timeout of each node watch, in seconds (default random 300–600). */
  watchTimeoutSeconds?: number;
  /** Called by `close()` after the informer stopped (e.g. to close the HTTP client). */
  onClose?: () => void;
}

/** The node annotations that override `--public-ip` / `--public-ipv6` (§0 step 12). */
export interface StoredPublicIPs {
  publicIp?: string;
  publicIpv6?: string;
}

const BAD = Symbol("bad node");

/** The subnet manager over the Kubernetes API. */
export class KubeSubnetManager implements SubnetManager {
  readonly #opts: KubeSubnetManagerOptions;
  readonly #names: AnnotationNames;
  readonly #log: Logger;
  readonly #badSeen = new Map<string, string>();
  #informer: NodeInformer | undefined;

  /** @throws {AnnotationPrefixError} for a prefix upstream refuses. */
  constructor(opts: KubeSubnetManagerOptions) {
    this.#opts = opts;
    this.#names = annotationNames(opts.annotationPrefix);
    this.#log = opts.log;
  }

  /** `Kubernetes Subnet Manager - <node>`, as upstream. */
  get name(): string {
    return `Kubernetes Subnet Manager - ${this.#opts.nodeName}`;
  }

  /** This node's name. */
  get nodeName(): string {
    return this.#opts.nodeName;
  }

  /** The annotation keys in use. */
  get annotations(): AnnotationNames {
    return this.#names;
  }

  /** The resourceVersion the node cache is at (undefined before the first list). */
  get cacheVersion(): string | undefined {
    return this.#informer?.resourceVersion;
  }

  /** The net-conf.json read at start-up. */
  getNetworkConfig(): Promise<NetworkConfig> {
    return Promise.resolve(this.#opts.config);
  }

  /**
   * Publishes `attrs` on our node and returns the lease of its pod CIDR(s). Waits (looking again
   * every 3 s) while the node is missing, has no pod CIDR, or the API fails.
   *
   * @throws {NodeLeaseError} when the pod CIDRs can never make a lease (outside Network, > 2).
   */
  async acquireLease(attrs: LeaseAttrs, signal?: AbortSignal): Promise<Lease> {
    const { client, nodeName, clock, config } = this.#opts;
    const pollMs = this.#opts.pollMs ?? ACQUIRE_POLL_MS;
    let said = "";
    const say = (level: "warn" | "error", msg: string) => {
      if (msg === said) this.#log.v(2, msg);
      else this.#log[level](msg);
      said = msg;
    };
    for (;;) {
      signal?.throwIfAborted();
      try {
        const node = await client.getNode(nodeName, signal);
        const plan = planOwnLease(node, attrs, this.#names, config, clock.now(), this.#log);
        if (!plan) {
          say("error", `node "${nodeName}" pod cidr not assigned; waiting for Kubernetes to assign one`);
        } else {
          if (plan.annotations) {
            await client.patchNodeStatus(nodeName, annotationsPatch(plan.annotations), signal);
            this.#log.info(
              `Annotated node ${nodeName}: ${Object.keys(plan.annotations).sort().join(", ")}`,
            );
          }
          return plan.lease;
        }
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        if (!(e instanceof KubeApiError)) throw e;
        say(
          "warn",
          e.status === 404
            ? `Waiting for node "${nodeName}" to be registered: ${e.message}`
            : `timeout contacting kube-api, failed to patch node "${nodeName}", retrying: ${e.message}`,
        );
      }
      await clock.sleep(pollMs, signal);
    }
  }

  /** The other flannel nodes' leases: all of them first, then changes, until `signal` aborts. */
  async *watchLeases(ownLease: Lease, signal: AbortSignal): AsyncGenerator<LeaseBatch> {
    const informer = this.#startInformer();
    const sub = informer.subscribe();
    try {
      await informer.waitSynced(signal);
      const watcher = new LeaseWatcher({ ownLease, log: this.#log });
      const emitted = new Map<string, Lease>();
      sub.take();
      const leases: Lease[] = [];
      for (const name of informer.names()) {
        const lease = this.#leaseOf(name);
        if (lease === undefined || lease === BAD) continue;
        emitted.set(name, lease);
        leases.push(lease);
      }
      yield watcher.apply({ kind: "snapshot", leases });
      for (;;) {
        await sub.wait(signal);
        const events: LeaseEvent[] = [];
        for (const name of sub.take()) this.#diff(name, emitted, events);
        if (events.length > 0) yield watcher.apply({ kind: "events", events });
      }
    } catch (e) {
      if (!signal.aborted) throw e;
    } finally {
      sub.close();
    }
  }

  /**
   * Sets the node condition `NetworkUnavailable=False` when `--set-node-network-unavailable`
   * (retrying until it succeeds), then waits for `signal`: kube leases are never renewed or revoked.
   */
  async completeLease(_lease: Lease, signal: AbortSignal): Promise<LeaseOutcome> {
    const { client, nodeName, clock } = this.#opts;
    if (this.#opts.setNodeNetworkUnavailable) {
      let backoff = this.#opts.pollMs ?? ACQUIRE_POLL_MS;
      for (;;) {
        try {
          await client.patchNodeStatus(nodeName, networkUnavailablePatch(clock.now()), signal);
          this.#log.info(`Set condition NetworkUnavailable=False (FlannelIsUp) on node ${nodeName}`);
          break;
        } catch (e) {
          if (signal.aborted) return "cancelled";
          this.#log.error(
            `Failed to set NetworkUnavailable=False on node ${nodeName}, retrying: ${(e as Error).message}`,
          );
        }
        await clock.sleep(backoff, signal).catch(() => {});
        if (signal.aborted) return "cancelled";
        backoff = Math.min(backoff * 2, 60_000);
      }
    }
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    return "cancelled";
  }

  /**
   * Uninstall: removes the annotations flanneld wrote on our Node (kube-subnet-manager,
   * backend-*, public-ip*), so that the other nodes drop it as a peer now. Only when the Node's
   * published public-ip is an address of this host (a wrong NODE_NAME must not unpublish another
   * node). The pod CIDR is the controller-manager's and stays; so do the admins' node-public-ip
   * and *-overwrite annotations.
   */
  async releaseLease(t: ReleaseTarget, signal?: AbortSignal): Promise<string> {
    const { client, nodeName } = this.#opts;
    let node;
    try {
      node = await client.getNode(nodeName, signal);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) {
        return `Node "${nodeName}" does not exist: nothing to release`;
      }
      throw e;
    }
    const ann = node.metadata.annotations ?? {};
    const n = this.#names;
    const written = [
      n.kubeSubnetManager,
      n.backendType,
      n.backendData,
      n.backendV6Data,
      n.publicIP,
      n.publicIPv6,
    ]
      .filter((k) => k in ann);
    if (written.length === 0) return `Node "${nodeName}" has no flannel annotations: nothing to release`;
    const publics = [ann[n.publicIP], ann[n.publicIPv6]].filter((a): a is string => Boolean(a));
    if (!publics.some((a) => t.ownAddresses.has(a))) {
      return `Kept the annotations of node "${nodeName}": its public-ip ${publics.join(", ") || "(none)"} ` +
        `is not an address of this host (is NODE_NAME right?)`;
    }
    await client.patchNodeStatus(
      nodeName,
      { metadata: { annotations: Object.fromEntries(written.map((k) => [k, null])) } },
      signal,
    );
    return `Removed the flannel annotations of node "${nodeName}": ${written.join(", ")}`;
  }

  /** The `node-public-ip(v6)` annotations of our node, which override `--public-ip(v6)`. */
  async storedPublicIPs(signal?: AbortSignal): Promise<StoredPublicIPs> {
    const node = await this.#opts.client.getNode(this.#opts.nodeName, signal);
    const ann = node.metadata.annotations ?? {};
    const out: StoredPublicIPs = {};
    const v4 = ann[this.#names.nodePublicIP];
    const v6 = ann[this.#names.nodePublicIPv6];
    if (v4) out.publicIp = v4;
    if (v6) out.publicIpv6 = v6;
    return out;
  }

  /** The VTEP MACs our node published before (empty when none, or the node is not found). */
  async storedMacs(signal?: AbortSignal): Promise<{ mac?: string; macV6?: string }> {
    try {
      return storedMacs(await this.#opts.client.getNode(this.#opts.nodeName, signal), this.#names);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return {};
      throw e;
    }
  }

  /** Stops the node informer. */
  async close(): Promise<void> {
    await this.#informer?.close();
    this.#opts.onClose?.();
  }

  #startInformer(): NodeInformer {
    if (!this.#informer) {
      const { client, log, clock, watchTimeoutSeconds } = this.#opts;
      this.#informer = new NodeInformer({
        client,
        log,
        clock,
        ...(watchTimeoutSeconds === undefined ? {} : { watchTimeoutSeconds }),
      });
      this.#informer.start();
    }
    return this.#informer;
  }

  /** The lease of a cached node: undefined for no lease, BAD for one that cannot be read. */
  #leaseOf(name: string): Lease | undefined | typeof BAD {
    const node = this.#informer?.get(name);
    if (!node || !isFlannelNode(node, this.#names)) {
      this.#badSeen.delete(name);
      return undefined;
    }
    try {
      const lease = nodeToLease(node, this.#names, this.#opts.config);
      this.#badSeen.delete(name);
      return lease;
    } catch (e) {
      const msg = (e as Error).message;
      if (this.#badSeen.get(name) !== msg) {
        this.#badSeen.set(name, msg);
        this.#log.warn(`Error turning node "${name}" to lease, skipping it: ${msg}`);
      }
      return BAD;
    }
  }

  /** Appends the events that bring `emitted` up to date for one node. */
  #diff(name: string, emitted: Map<string, Lease>, events: LeaseEvent[]): void {
    const cur = this.#leaseOf(name);
    if (cur === BAD) return; // keep the last good lease
    const prev = emitted.get(name);
    if (cur === undefined) {
      if (prev) events.push({ type: "removed", lease: prev });
      emitted.delete(name);
      return;
    }
    if (prev && sameLease(prev, cur)) return;
    if (prev && leaseIdentity(prev) !== leaseIdentity(cur)) events.push({ type: "removed", lease: prev });
    events.push({ type: "added", lease: cur });
    emitted.set(name, cur);
  }
}

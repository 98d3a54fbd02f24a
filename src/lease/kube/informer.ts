/**
 * A node cache kept by list+watch (client-go's reflector, in small): list all nodes, watch from the
 * list's resourceVersion with bookmarks, follow every event's resourceVersion, list again when the
 * server says 410 (the version left its watch window), and reconnect with capped exponential
 * backoff when the server goes away. A watch that ends normally (its timeout) is reopened from the
 * last version at once.
 *
 * Consumers do not receive a queue of events: each {@linkcode NodeSubscription} gets the set of
 * node names that changed since it last looked, so a slow consumer never makes the informer drop
 * or block, and ten updates of one node while it was busy cost one look (upstream's bounded
 * 5000-event channel could fill up and needed async senders).
 *
 * @module
 */
import type { Logger } from "../../log/logger.ts";
import type { Clock } from "../../util/clock.ts";
import { OutageLog, WATCH_BACKOFF_MAX_MS, WATCH_BACKOFF_MIN_MS } from "../informer.ts";
import { KubeApiError, type KubeClient } from "./client.ts";
import type { KubeNode } from "./types.ts";

/** Options of a {@linkcode NodeInformer}. */
export interface NodeInformerOptions {
  client: Pick<KubeClient, "listNodes" | "watchNodes">;
  log: Logger;
  clock: Clock;
  /** Server-side timeout of each watch; default random in [300, 600) s like client-go. */
  watchTimeoutSeconds?: number;
}

/** The names of nodes that changed since the subscriber last took them. */
export class NodeSubscription {
  #dirty = new Set<string>();
  #wake: (() => void) | undefined;
  readonly #onClose: (s: NodeSubscription) => void;

  /** @internal Created by {@linkcode NodeInformer.subscribe}. */
  constructor(onClose: (s: NodeSubscription) => void) {
    this.#onClose = onClose;
  }

  /** @internal */
  mark(name: string): void {
    this.#dirty.add(name);
    this.#wake?.();
  }

  /** Takes the changed names, leaving the set empty. */
  take(): Set<string> {
    const out = this.#dirty;
    this.#dirty = new Set();
    return out;
  }

  /** Resolves when some node changed (at once if one already did); rejects when `signal` aborts. */
  wait(signal: AbortSignal): Promise<void> {
    if (this.#dirty.size > 0) return Promise.resolve();
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#wake = undefined;
        reject(signal.reason);
      };
      this.#wake = () => {
        this.#wake = undefined;
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Stops marking. */
  close(): void {
    this.#onClose(this);
  }
}

/** The cache of all nodes, slimmed to what flannel reads. */
export class NodeInformer {
  readonly #opts: NodeInformerOptions;
  readonly #log: Logger;
  readonly #nodes = new Map<string, KubeNode>();
  readonly #subs = new Set<NodeSubscription>();
  readonly #ctl = new AbortController();
  #syncWaiters: (() => void)[] = [];
  #synced = false;
  #loop: Promise<void> | undefined;
  #resourceVersion: string | undefined;

  constructor(opts: NodeInformerOptions) {
    this.#opts = opts;
    this.#log = opts.log;
  }

  /** Starts list+watch in the background (idempotent). */
  start(): void {
    this.#loop ??= this.#run(this.#ctl.signal).catch((e) => {
      if (!this.#ctl.signal.aborted) this.#log.error(`Node informer stopped: ${(e as Error).message}`);
    });
  }

  /** True once the first list arrived. */
  get synced(): boolean {
    return this.#synced;
  }

  /** The resourceVersion the cache is at. */
  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  /** Resolves once the first list arrived. */
  waitSynced(signal: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    signal.throwIfAborted();
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      this.#syncWaiters.push(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      });
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** One cached node. */
  get(name: string): KubeNode | undefined {
    return this.#nodes.get(name);
  }

  /** The cached nodes' names. */
  names(): string[] {
    return [...this.#nodes.keys()];
  }

  /** A subscriber that learns which nodes change from now on. */
  subscribe(): NodeSubscription {
    const sub = new NodeSubscription((s) => this.#subs.delete(s));
    this.#subs.add(sub);
    return sub;
  }

  /** Stops list+watch and waits for it to end. */
  async close(): Promise<void> {
    this.#ctl.abort();
    await this.#loop;
  }

  async #run(signal: AbortSignal): Promise<void> {
    const { client, clock } = this.#opts;
    const outage = new OutageLog(this.#log, "nodes");
    let backoff = WATCH_BACKOFF_MIN_MS;
    const pause = async () => {
      await clock.sleep(backoff, signal).catch(() => {});
      backoff = Math.min(backoff * 2, WATCH_BACKOFF_MAX_MS);
    };
    let rv: string | undefined;
    while (!signal.aborted) {
      if (rv === undefined) {
        try {
          const list = await client.listNodes(signal);
          outage.ok();
          backoff = WATCH_BACKOFF_MIN_MS;
          rv = list.metadata.resourceVersion ?? "";
          this.#replace(list.items);
          this.#resourceVersion = rv;
          this.#markSynced();
        } catch (e) {
          if (signal.aborted) return;
          outage.failed(e);
          await pause();
        }
        continue;
      }
      const started = clock.now();
      let events = 0;
      try {
        const timeoutSeconds = this.#opts.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
        const stream = client.watchNodes(
          { resourceVersion: rv, allowWatchBookmarks: true, timeoutSeconds },
          signal,
        );
        for await (const ev of stream) {
          if (events++ === 0) {
            outage.ok();
            backoff = WATCH_BACKOFF_MIN_MS;
          }
          rv = ev.object.metadata.resourceVersion || rv;
          this.#resourceVersion = rv;
          if (ev.type === "BOOKMARK") continue;
          const name = ev.object.metadata.name;
          if (!name) continue;
          if (ev.type === "DELETED") this.#nodes.delete(name);
          else this.#nodes.set(name, slim(ev.object as KubeNode));
          this.#notify(name);
        }
        // The server ended the watch (its timeout, or a restart): reopen from rv, pausing only when
        // it keeps ending at once.
        if (events === 0 && clock.now() - started < 1000) await pause();
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof KubeApiError && e.gone) {
          this.#log.info(
            `Watch of nodes at resourceVersion ${rv} expired (${e.statusMessage}); listing again`,
          );
          rv = undefined;
          continue;
        }
        outage.failed(e);
        await pause();
      }
    }
  }

  #replace(items: KubeNode[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      const name = item.metadata.name;
      if (!name) continue;
      seen.add(name);
      const old = this.#nodes.get(name);
      if (old && old.metadata.resourceVersion === item.metadata.resourceVersion) continue;
      this.#nodes.set(name, slim(item));
      this.#notify(name);
    }
    for (const name of [...this.#nodes.keys()]) {
      if (seen.has(name)) continue;
      this.#nodes.delete(name);
      this.#notify(name);
    }
  }

  #notify(name: string): void {
    for (const sub of this.#subs) sub.mark(name);
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    for (const w of this.#syncWaiters) w();
    this.#syncWaiters = [];
  }
}

/** Keeps name, resourceVersion, annotations and pod CIDRs: a node's status can be kilobytes. */
function slim(node: KubeNode): KubeNode {
  const m = node.metadata;
  const out: KubeNode = { metadata: {} };
  if (m.name !== undefined) out.metadata.name = m.name;
  if (m.resourceVersion !== undefined) out.metadata.resourceVersion = m.resourceVersion;
  if (m.annotations !== undefined) out.metadata.annotations = m.annotations;
  const spec: NonNullable<KubeNode["spec"]> = {};
  if (node.spec?.podCIDR !== undefined) spec.podCIDR = node.spec.podCIDR;
  if (node.spec?.podCIDRs !== undefined) spec.podCIDRs = node.spec.podCIDRs;
  out.spec = spec;
  return out;
}

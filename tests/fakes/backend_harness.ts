/**
 * Runs a backend against the fake kernel and an in-memory lease store, for table tests of
 * {leases in, kernel state out}.
 */
import type { BackendFactory, Network } from "../../src/backends/types.ts";
import { parseAndCheckNetworkConfig } from "../../src/config/mod.ts";
import type { ExtIface } from "../../src/iface/mod.ts";
import { IP4, IP4Net, IP6, IP6Net } from "../../src/ip/mod.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import { MemoryKV } from "../../src/lease/memory/kv.ts";
import type { Lease, LeaseAttrs, LeaseBatch } from "../../src/lease/types.ts";
import { leaseIdentity } from "../../src/lease/watcher.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { FakeKernel } from "./fake_kernel.ts";
import { FakeHost } from "./fake_host.ts";

/** A peer lease in test shorthand. */
export function peer(
  subnet: string,
  publicIP: string,
  attrs: Partial<LeaseAttrs> = {},
  ipv6Subnet?: string,
): Lease {
  const lease: Lease = {
    enableIPv4: true,
    enableIPv6: ipv6Subnet !== undefined,
    subnet: IP4Net.parse(subnet),
    attrs: { publicIP: IP4.parse(publicIP), ...attrs },
    expiration: 0,
  };
  if (ipv6Subnet) lease.ipv6Subnet = IP6Net.parse(ipv6Subnet);
  return lease;
}

/** A backend under test. */
export class BackendRig {
  readonly kernel: FakeKernel;
  readonly log = new MemoryLogger();
  readonly kv = new MemoryKV();
  readonly ctl = new AbortController();
  readonly host = new FakeHost();
  network!: Network;
  #push: ((b: LeaseBatch) => void) | undefined;
  #queue: LeaseBatch[] = [];
  #running: Promise<void> | undefined;
  #passWaiters: (() => void)[] = [];
  /** The result of every reconcile pass so far. */
  readonly passes: import("../../src/backends/reconcile.ts").ReconcileResult[] = [];

  /** Resolves after the next reconcile pass completes. */
  nextPass(ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reconcile pass within ${ms} ms`)), ms);
      this.#passWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  constructor(kernel?: FakeKernel) {
    this.kernel = kernel ?? new FakeKernel();
  }

  /** Seeds eth0 (192.168.1.10/24, fd00:1::10/64) with a default route; returns the ExtIface. */
  seedHost(opts: { publicIp?: string } = {}): ExtIface {
    const index = this.kernel.seedLink("eth0", 1500, "192.168.1.10/24", "fd00:1::10/64");
    this.kernel.seedRoute({ dst: IP4Net.parse("0.0.0.0/0"), gateway: IP4.parse("192.168.1.1"), dev: "eth0" });
    this.kernel.seedRoute({ dst: IP6Net.parse("::/0"), gateway: IP6.parse("fd00:1::1"), dev: "eth0" });
    return {
      name: "eth0",
      index,
      mtu: 1500,
      ifaceAddr: IP4.parse("192.168.1.10"),
      ifaceV6Addr: IP6.parse("fd00:1::10"),
      extAddr: IP4.parse(opts.publicIp ?? "192.168.1.10"),
      extV6Addr: IP6.parse("fd00:1::10"),
    };
  }

  /** Registers the backend with a net-conf and starts its loop. */
  async start(factory: BackendFactory, netConf: string, ext: ExtIface, previous?: string): Promise<Network> {
    this.kv.put("/coreos.com/network/config", netConf);
    const config = parseAndCheckNetworkConfig(netConf);
    const manager = new KVSubnetManager({
      kv: this.kv,
      prefix: "/coreos.com/network",
      log: this.log,
      clock: systemClock,
      random: () => 0,
      ...(previous ? { previousSubnet: IP4Net.parse(previous) } : {}),
    });
    this.network = await factory.register({
      ext,
      config,
      manager,
      log: this.log,
      clock: systemClock,
      signal: this.ctl.signal,
      kernel: this.kernel,
      host: this.host,
      onReconcile: (r) => {
        this.passes.push(r);
        for (const w of this.#passWaiters.splice(0)) w();
      },
    });
    const next = async (): Promise<IteratorResult<LeaseBatch>> => {
      while (!this.ctl.signal.aborted) {
        const b = this.#queue.shift();
        if (b) return { done: false, value: b };
        await new Promise<void>((r) => {
          this.#push = () => r();
          this.ctl.signal.addEventListener("abort", () => r(), { once: true });
        });
      }
      return { done: true, value: undefined };
    };
    const batches: AsyncIterable<LeaseBatch> = { [Symbol.asyncIterator]: () => ({ next }) };
    this.#running = this.network.run(batches, this.ctl.signal);
    return this.network;
  }

  /** Delivers the full set of peer leases (a snapshot batch). */
  leases(...leases: Lease[]): void {
    const map = new Map(leases.map((l) => [leaseIdentity(l), l]));
    this.#queue.push({ events: leases.map((lease) => ({ type: "added" as const, lease })), leases: map });
    this.#push?.({ events: [], leases: map });
  }

  /** Waits until `render()` satisfies `pred` (polling, with a deadline). */
  async until(pred: (text: string) => boolean, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const text = this.kernel.render();
      if (pred(text)) return text;
      if (Date.now() > deadline) {
        throw new Error(
          `kernel state did not converge within ${ms} ms:\n${text}\nlog: ${this.log.messages().join("\n")}`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async stop(): Promise<void> {
    this.ctl.abort();
    await this.#running;
    await this.network?.close();
    this.kv.close();
  }
}

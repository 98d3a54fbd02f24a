/**
 * A virtual cluster for end-to-end tests, built only from network namespaces this process creates:
 *
 * - `flt-<run>-infra`: the underlay switch, a bridge `br0` with 192.0.2.1/24 (and 2001:db8:1::1/64
 *   when dual-stack), and a real etcd listening on `http://192.0.2.1:2379`. It does not forward,
 *   so pod traffic sent to the default route dies there instead of faking connectivity. (A node
 *   added with `routed` sits on a second segment, and the switch then routes between the two
 *   underlay segments only: see cluster_net.ts.)
 * - `flt-<run>-n<i>`: node i, a veth `eth0` into `br0` with 192.0.2.(10+i)/24 (2001:db8:1::(10+i)),
 *   a default route via the switch (the daemon's default-route interface selection finds `eth0`),
 *   forwarding on, and the bundled `dist/flanneld` running under `ip netns exec`.
 * - `flt-<run>-n<i>p<j>`: pod j of node i, made by the CNI `bridge` + `host-local` plugins from the
 *   node's subnet.env (see cni.ts).
 *
 * The host's own namespace is never touched. Every namespace, process and file goes away in
 * {@linkcode Cluster.down} (also `await using`), even after a failed start; {@linkcode cleanupLeftovers}
 * removes what killed runs left.
 *
 * ```ts ignore
 * await using c = await Cluster.start({ nodes: 3, backend: "vxlan" });
 * const m = await c.pingMatrix();
 * console.log(m.text);
 * ```
 *
 * @module
 */
import { etcdAvailable, type EtcdHandle, startEtcd } from "./etcd.ts";
import { Flanneld, flanneldMissing, pollUntil } from "./daemon.ts";
import { IP4Net, IP6Net } from "../../src/ip/mod.ts";
import {
  bridgeConfig,
  cniAdd,
  cniDel,
  cniMissing,
  createNetns,
  deleteNetns,
  type ExecResult,
  exists,
  inNetns,
  ip,
  iperf,
  type IperfResult,
  killProc,
  listNetns,
  parseSubnetEnv,
  pingFrom,
  type PingMatrix,
  pingMatrix,
  type Pod,
  run,
  setNetSysctls,
  type SubnetEnv,
} from "./cni.ts";
import { addRoutedSegment, SWITCH_MACS, underlayOf } from "./cluster_net.ts";

export type { ExecResult, IperfResult, PingMatrix, Pod, SubnetEnv };

/** The etcd prefix the daemons use (upstream's default). */
export const ETCD_PREFIX = "/coreos.com/network";
/** The switch's addresses; nodes are .10+i / ::(10+i) (cluster_net.ts has the routed segment). */
const UNDERLAY4 = "192.0.2.";
const UNDERLAY6 = "2001:db8:1::";
/** The health server port inside every node (each namespace has its own loopback). */
const HEALTH_PORT = 8471;
const STOP_DEADLINE_MS = 5_000;

/** Options of {@linkcode Cluster.start}. */
export interface ClusterOptions {
  /** Nodes to start; default 3. */
  nodes?: number;
  /** `Backend.Type` (e.g. `"vxlan"`), or the whole Backend object; default `"alloc"`. */
  backend?: string | Record<string, unknown>;
  /** `Network`; default `10.5.0.0/16`. */
  network?: string;
  /** Dual-stack: IPv6 underlay, `EnableIPv6` and `IPv6Network` (default `2001:db8:5::/48`). */
  ipv6?: boolean;
  /** `IPv6Network` when `ipv6`. */
  ipv6Network?: string;
  /** More net-conf keys, merged over the generated ones. */
  netConf?: Record<string, unknown>;
  /** Pods per node made at start and by {@linkcode Cluster.addNode}; default 1. */
  podsPerNode?: number;
  /** More flanneld flags, for every node or per node index. */
  daemonArgs?: string[] | ((node: number) => string[]);
  /** Extra environment for each node's daemon (e.g. NODE_NAME in kube mode). */
  daemonEnv?: Record<string, string> | ((node: number) => Record<string, string>);
  /** Deadline for each daemon to become ready; default 30 s. */
  readyTimeoutMs?: number;
  /**
   * Give each node's daemons one /run/flannel directory (`<node dir>/run`), kept across daemon
   * restarts as on a real node, instead of a fresh tmpfs per daemon start.
   */
  keepRunDir?: boolean;
  /** Progress lines (the demo prints them). */
  log?: (line: string) => void;
  /** Aborts a start in progress: it stops at the next step, tears down and throws. */
  signal?: AbortSignal;
}

/** A node: its namespace, underlay addresses, daemon and pods. */
export interface ClusterNode {
  /** 1-based, stable: a removed node's index is not reused. */
  readonly index: number;
  /** The network namespace name. */
  readonly ns: string;
  /** Underlay IPv4 address (the lease's PublicIP). */
  readonly ip: string;
  /** Underlay IPv6 address when dual-stack. */
  readonly ip6: string | undefined;
  /** The node's directory (subnet.env, host-local data). */
  readonly dir: string;
  readonly subnetFile: string;
  /** The current daemon process (after a kill it has an exit code until {@linkcode Cluster.restartDaemon}). */
  daemon: Flanneld;
  /** subnet.env as read when the daemon last became ready. */
  env: SubnetEnv;
  /** The leased IPv4 subnet (network address), e.g. `10.5.3.0/24`, from subnet.env. */
  subnet: string;
  /** The leased IPv6 subnet when dual-stack. */
  subnet6: string | undefined;
  readonly pods: Pod[];
}

/** A lease as stored in etcd. */
export interface StoredLease {
  key: string;
  /** The IPv4 subnet from the key, e.g. `10.5.3.0/24`. */
  subnet: string;
  /** The IPv6 subnet from a dual-stack key (`10.5.3.0-24&2001:db8:5:3::-64`). */
  subnet6: string | undefined;
  value: Record<string, unknown>;
}

/** Why the cluster cannot run here (one line), or undefined. */
export async function clusterUnavailable(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "not running as root";
  const missing = etcdAvailable() ?? flanneldMissing() ?? cniMissing();
  if (missing) return missing;
  for (const bin of ["/usr/bin/ping", "/usr/bin/curl"]) {
    if (!exists(bin)) return `${bin} is not installed: run "bash scripts/cluster_setup.sh"`;
  }
  const probe = `flt-${Deno.pid}-probe${Math.floor(Math.random() * 1e6)}`;
  const add = await run(["ip", "netns", "add", probe]);
  if (add.code !== 0) return `"ip netns add" is unusable: ${add.stderr.trim()}`;
  await run(["ip", "netns", "del", probe]);
  return undefined;
}

/**
 * Deletes `flt-*` namespaces (killing what runs in them) and `flt-cluster-*` temp dirs left by runs
 * whose process is gone. A name is a leftover only when it has all-digit fields (pids) and none of
 * them is a live process: that covers this harness (`flt-<pid>-…`) and the privileged tests
 * (`flt-<tag>-<pid>-…`), and leaves alone names without a pid, whose owner we cannot know.
 * Returns what was deleted.
 */
export async function cleanupLeftovers(): Promise<string[]> {
  const dead = (name: string) => {
    const pids = name.split("-").filter((f) => /^\d+$/.test(f));
    return pids.length > 0 && !pids.some((pid) => exists(`/proc/${pid}`));
  };
  const gone: string[] = [];
  for (const ns of await listNetns()) {
    if (!ns.startsWith("flt-") || !dead(ns)) continue;
    await deleteNetns(ns);
    gone.push(ns);
  }
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  for await (const e of Deno.readDir(tmp)) {
    if (!e.isDirectory || !e.name.startsWith("flt-cluster-") || !dead(e.name)) continue;
    await Deno.remove(`${tmp}/${e.name}`, { recursive: true }).catch(() => {});
    gone.push(`${tmp}/${e.name}`);
  }
  return gone;
}

/** A running virtual cluster. Start with {@linkcode Cluster.start}; end with `await using` or {@linkcode down}. */
export class Cluster {
  /** `<pid>-<random>`: every namespace is `flt-<runId>-…`. */
  readonly runId: string;
  /** The run's temp dir. */
  readonly dir: string;
  /** The switch namespace (bridge and etcd). */
  readonly infra: string;
  /** The net-conf written to `<ETCD_PREFIX>/config`. */
  readonly netConf: Record<string, unknown>;
  /** Live nodes, by index. */
  readonly nodes: ClusterNode[] = [];
  /** Milliseconds from start to every node ready with its pods; and of the last {@linkcode down}. */
  readonly timings = { upMs: 0, downMs: 0 };
  #etcd: EtcdHandle | undefined;
  readonly #opts: ClusterOptions;
  readonly #namespaces = new Set<string>();
  readonly #daemons = new Set<Flanneld>();
  readonly #procs = new Set<Deno.ChildProcess>();
  readonly #podSeq = new Map<number, number>();
  #nextIndex = 1;
  #routed: Promise<void> | undefined;
  #down: Promise<void> | undefined;

  private constructor(dir: string, runId: string, opts: ClusterOptions) {
    this.dir = dir;
    this.runId = runId;
    this.infra = `flt-${runId}-infra`;
    this.#opts = opts;
    const b = opts.backend ?? "alloc";
    this.netConf = {
      Network: opts.network ?? "10.5.0.0/16",
      ...(opts.ipv6 ? { EnableIPv6: true, IPv6Network: opts.ipv6Network ?? "2001:db8:5::/48" } : {}),
      Backend: typeof b === "string" ? { Type: b } : b,
      ...opts.netConf,
    };
  }

  /** Builds the switch, etcd and the nodes with their pods; on any failure tears down what exists. */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const t0 = performance.now();
    const runId = `${Deno.pid}-${Math.random().toString(36).slice(2, 7)}`;
    const dir = await Deno.makeTempDir({ prefix: `flt-cluster-${runId}-` });
    const c = new Cluster(dir, runId, opts);
    try {
      await c.#startInfra();
      const n = opts.nodes ?? 3;
      // Let every node finish (or fail) before tearing down, so no step runs after the teardown.
      const res = await Promise.allSettled(Array.from({ length: n }, () => c.addNode()));
      for (const r of res) if (r.status === "rejected") throw r.reason;
      c.timings.upMs = performance.now() - t0;
      return c;
    } catch (err) {
      await c.down().catch(() => {});
      throw err;
    }
  }

  /** The etcd in the switch namespace (etcdctl runs there too). */
  get etcd(): EtcdHandle {
    if (!this.#etcd) throw new Error("etcd is not running");
    return this.#etcd;
  }

  /** Every pod of every live node. */
  get pods(): Pod[] {
    return this.nodes.flatMap((n) => n.pods);
  }

  /** The live node with this index. */
  node(index: number): ClusterNode {
    const n = this.nodes.find((x) => x.index === index);
    if (!n) throw new RangeError(`Cluster has no node ${index}: nodes are ${this.nodes.map((x) => x.index)}`);
    return n;
  }

  /** Throws when the start was aborted or the cluster is going down, so nothing new is created. */
  #check(): void {
    this.#opts.signal?.throwIfAborted();
    if (this.#down) throw new Error("Cluster is shutting down");
  }

  async #startInfra(): Promise<void> {
    const ns = this.infra;
    await this.#addNetns(ns);
    // A set MAC: a bridge without one takes its ports' lowest, and changing it when a node leaves
    // would leave the other nodes' ARP entries for the switch (and etcd) stale for half a minute.
    await ip("-n", ns, "link", "add", "br0", "address", SWITCH_MACS[0], "type", "bridge");
    await ip("-n", ns, "addr", "add", `${UNDERLAY4}1/24`, "dev", "br0");
    if (this.#opts.ipv6) await ip("-n", ns, "addr", "add", `${UNDERLAY6}1/64`, "dev", "br0", "nodad");
    await ip("-n", ns, "link", "set", "br0", "up");
    this.#etcd = await startEtcd({
      prefix: ["ip", "netns", "exec", ns],
      host: `${UNDERLAY4}1`,
      dir: this.dir,
    });
    await this.#etcd.etcdctl(["put", `${ETCD_PREFIX}/config`, JSON.stringify(this.netConf)]);
    this.#log(`switch ${ns}: br0 ${UNDERLAY4}1/24, etcd ${this.#etcd.endpoint}`);
  }

  /**
   * Adds a node: namespace, veth into the switch, daemon (ready, subnet.env written) and its pods.
   * With `routed`, the node sits on the second underlay segment, reached through the switch
   * (see cluster_net.ts).
   */
  async addNode(opts: { routed?: boolean } = {}): Promise<ClusterNode> {
    this.#check();
    const index = this.#nextIndex++;
    if (index > 240) throw new RangeError("Cluster supports at most 240 nodes");
    const ns = `flt-${this.runId}-n${index}`;
    const u = underlayOf(index, opts.routed ?? false, this.#opts.ipv6 ?? false);
    const [addr4, addr6] = [u.addr4, u.addr6];
    if (opts.routed) await (this.#routed ??= addRoutedSegment(this.infra, this.#opts.ipv6 ?? false));
    const dir = `${this.dir}/n${index}`;
    await Deno.mkdir(dir, { recursive: true });
    await this.#addNetns(ns);
    const veth = ["link", "add", `n${index}`, "type", "veth", "peer", "name", "eth0", "netns", ns];
    await ip("-n", this.infra, ...veth);
    await ip("-n", this.infra, "link", "set", `n${index}`, "master", u.bridge, "up");
    await setNetSysctls(ns, { "ipv4/ip_forward": 1, "ipv6/conf/all/forwarding": 1 });
    await ip("-n", ns, "link", "set", "eth0", "up");
    await ip("-n", ns, "addr", "add", `${addr4}/24`, "dev", "eth0");
    await ip("-n", ns, "route", "add", "default", "via", u.gw4);
    if (addr6) {
      await ip("-n", ns, "addr", "add", `${addr6}/64`, "dev", "eth0", "nodad");
      await ip("-n", ns, "-6", "route", "add", "default", "via", u.gw6);
    }
    const subnetFile = `${dir}/subnet.env`;
    const node = { index, ns, ip: addr4, ip6: addr6, dir, subnetFile, pods: [] as Pod[] } as Omit<
      ClusterNode,
      "daemon" | "env" | "subnet" | "subnet6"
    > as ClusterNode;
    node.daemon = await this.#startDaemon(node);
    this.nodes.push(node);
    this.nodes.sort((a, b) => a.index - b.index);
    this.#log(`node ${index} (${ns}, ${addr4}): ${node.env.vars.FLANNEL_SUBNET}`);
    for (let j = 0; j < (this.#opts.podsPerNode ?? 1); j++) await this.addPod(index);
    return node;
  }

  async #startDaemon(node: ClusterNode): Promise<Flanneld> {
    this.#check();
    const extra = this.#opts.daemonArgs;
    const args = [
      `--etcd-endpoints=${this.etcd.endpoint}`,
      `--subnet-file=${node.subnetFile}`,
      "--healthz-ip=127.0.0.1",
      `--healthz-port=${HEALTH_PORT}`,
      ...(typeof extra === "function" ? extra(node.index) : extra ?? []),
    ];
    const runDir = this.#opts.keepRunDir ? `${node.dir}/run` : undefined;
    if (runDir) await Deno.mkdir(runDir, { recursive: true, mode: 0o755 });
    const envOpt = this.#opts.daemonEnv;
    const env = typeof envOpt === "function" ? envOpt(node.index) : envOpt ?? {};
    const d = await Flanneld.start(args, env, { prefix: daemonPrefix(node.ns, runDir) });
    this.#daemons.add(d);
    const timeout = this.#opts.readyTimeoutMs ?? 30_000;
    await abortable(d.ready(timeout), this.#opts.signal);
    await pollUntil(
      () => exists(node.subnetFile),
      timeout,
      () => `${node.subnetFile} not written\n${d.log()}`,
    );
    node.env = parseSubnetEnv(await Deno.readTextFile(node.subnetFile));
    node.subnet = node.env.subnet ? IP4Net.parse(node.env.subnet).network().toString() : "";
    node.subnet6 = node.env.ipv6Subnet ? IP6Net.parse(node.env.ipv6Subnet).network().toString() : undefined;
    return d;
  }

  /** Adds a pod to node `index` through CNI ADD. */
  async addPod(index: number): Promise<Pod> {
    this.#check();
    const node = this.node(index);
    const seq = (this.#podSeq.get(index) ?? 0) + 1; // never reused, even after removePod
    this.#podSeq.set(index, seq);
    const name = `n${index}p${seq}`;
    const ns = `flt-${this.runId}-${name}`;
    await this.#addNetns(ns);
    const res = await cniAdd({
      prefix: ["ip", "netns", "exec", node.ns],
      netns: ns,
      containerId: ns,
      config: bridgeConfig(node.env, { dataDir: `${node.dir}/ipam` }),
    });
    if (res.ip4 === undefined || res.gateway4 === undefined) {
      throw new Error(`Pod ${name} got no IPv4 address: ${JSON.stringify(res.raw)}`);
    }
    const pod: Pod = {
      name,
      ns,
      node: index,
      ip: res.ip4,
      ip6: res.ip6,
      gateway: res.gateway4,
      gateway6: res.gateway6,
    };
    node.pods.push(pod);
    this.#log(`  pod ${name}: ${[pod.ip, pod.ip6].filter(Boolean).join(", ")} via ${pod.gateway}`);
    return pod;
  }

  /** Removes a pod through CNI DEL and deletes its namespace. */
  async removePod(pod: Pod): Promise<void> {
    const node = this.node(pod.node);
    await cniDel({
      prefix: ["ip", "netns", "exec", node.ns],
      netns: pod.ns,
      containerId: pod.ns,
      config: bridgeConfig(node.env, { dataDir: `${node.dir}/ipam` }),
    });
    await deleteNetns(pod.ns);
    this.#namespaces.delete(pod.ns);
    node.pods.splice(node.pods.indexOf(pod), 1);
  }

  /**
   * A node leaves: its daemon stops (SIGTERM), its pods and namespace go, and its lease is deleted
   * from etcd (as a node deleted from the cluster), unless `keepLease`.
   */
  async removeNode(index: number, opts: { keepLease?: boolean } = {}): Promise<void> {
    const node = this.node(index);
    await stopDaemon(node.daemon);
    for (const ns of [...node.pods.map((p) => p.ns), node.ns]) {
      await deleteNetns(ns);
      this.#namespaces.delete(ns);
    }
    this.nodes.splice(this.nodes.indexOf(node), 1);
    if (!opts.keepLease) {
      for (const l of await this.leases()) {
        if (l.value.PublicIP === node.ip) await this.etcd.etcdctl(["del", l.key]);
      }
    }
  }

  /** Signals node `index`'s daemon (default SIGKILL) and resolves with its exit code. */
  async killDaemon(index: number, signal: Deno.Signal = "SIGKILL"): Promise<number> {
    return await this.node(index).daemon.stop(signal);
  }

  /** Stops node `index`'s daemon if it runs (SIGTERM), starts a new one, waits until ready. */
  async restartDaemon(index: number): Promise<Flanneld> {
    const node = this.node(index);
    await stopDaemon(node.daemon);
    node.daemon = await this.#startDaemon(node);
    return node.daemon;
  }

  /** Whether `from` (a pod or a namespace name) gets an echo reply from `toIp` within `timeoutMs` (2 s). */
  ping(from: Pod | string, toIp: string, opts: { timeoutMs?: number } = {}): Promise<boolean> {
    return pingFrom(typeof from === "string" ? from : from.ns, toIp, opts.timeoutMs);
  }

  /** Pings every ordered pair of pods in parallel (their IPv6 addresses with `ipv6`). */
  pingMatrix(opts: { ipv6?: boolean; timeoutMs?: number } = {}): Promise<PingMatrix> {
    return pingMatrix(this.pods, opts);
  }

  /** iperf3 from one pod to another for `seconds` (default 2); needs `iperf3`. */
  iperf(from: Pod, to: Pod, opts: { seconds?: number; ipv6?: boolean } = {}): Promise<IperfResult> {
    return iperf(from, to, { ...opts, track: this.#procs });
  }

  /** Runs `argv` in a node (by index), a pod, or any namespace of this run (by name). */
  async exec(
    target: number | Pod | string,
    argv: string[],
    opts: { timeoutMs?: number } = {},
  ): Promise<ExecResult> {
    const ns = typeof target === "number"
      ? this.node(target).ns
      : typeof target === "string"
      ? target
      : target.ns;
    return await run(["ip", "netns", "exec", ns, ...argv], opts.timeoutMs ?? 30_000);
  }

  /** The leases under `<ETCD_PREFIX>/subnets/`. */
  async leases(): Promise<StoredLease[]> {
    const out = await this.etcd.etcdctl(["get", "--prefix", `${ETCD_PREFIX}/subnets/`]);
    const lines = out.split("\n").filter((l) => l !== "");
    const leases: StoredLease[] = [];
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const key = lines[i]!;
      const [v4 = "", v6] = key.slice(key.lastIndexOf("/") + 1).split("&").map((p) =>
        p.replace(/-(\d+)$/, "/$1")
      );
      leases.push({ key, subnet: v4, subnet6: v6, value: JSON.parse(lines[i + 1]!) });
    }
    return leases;
  }

  /** Waits until every live daemon reports the other live nodes as peers (`flannel_peer_leases`). */
  async waitPeers(timeoutMs = 20_000): Promise<void> {
    const want = this.nodes.length - 1;
    await pollUntil(
      async () =>
        (await Promise.all(this.nodes.map((n) => n.daemon.metric("flannel_peer_leases").catch(() => -1))))
          .every((v) => v === want),
      timeoutMs,
      () => `daemons do not all see ${want} peers within ${timeoutMs} ms`,
    );
  }

  /** Every node's daemon log, for failure messages. */
  logs(): string {
    return this.nodes.map((n) => `node ${n.index} (${n.ns}):\n${n.daemon.log()}`).join("\n");
  }

  /**
   * Tears everything down: iperf3, daemons (SIGTERM, SIGKILL after 5 s), etcd, every namespace of
   * this run (killing anything left inside) and the temp dir. Idempotent; never throws.
   */
  down(): Promise<void> {
    this.#down ??= (async () => {
      const t0 = performance.now();
      await Promise.all([...this.#procs].map(killProc));
      await Promise.all([...this.#daemons].map(stopDaemon));
      await this.#etcd?.[Symbol.asyncDispose]().catch(() => {});
      const ours = new Set([
        ...this.#namespaces,
        ...(await listNetns()).filter((n) => n.startsWith(`flt-${this.runId}-`)),
      ]);
      await Promise.all([...ours].map(deleteNetns));
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
      this.timings.downMs = performance.now() - t0;
    })();
    return this.#down;
  }

  /** Same as {@linkcode down}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.down();
  }

  async #addNetns(ns: string): Promise<void> {
    this.#check();
    this.#namespaces.add(ns);
    await createNetns(ns);
  }

  #log(line: string): void {
    this.#opts.log?.(line);
  }
}

async function stopDaemon(d: Flanneld): Promise<void> {
  if (d.exitCode !== undefined) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((r) => timer = setTimeout(() => r("late"), STOP_DEADLINE_MS));
  const stopped = d.stop("SIGTERM").catch(() => -1);
  try {
    if (await Promise.race([stopped, late]) === "late") await d.stop("SIGKILL").catch(() => {});
  } finally {
    clearTimeout(timer);
  }
}

/** `p`, or a rejection as soon as `signal` aborts. */
async function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return await p;
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    signal.throwIfAborted();
    return await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * How a node's daemon is started: in the node's network namespace, and in a mount namespace of
 * its own with private tmpfs on /run/wireguard (wireguard-go's control sockets) and /run/flannel
 * (the WireGuard key file), which network namespaces would otherwise share, as real nodes don't.
 * With `runDir`, /run/flannel is that directory (bind-mounted) instead of a fresh tmpfs.
 */
export function daemonPrefix(ns: string, runDir?: string): string[] {
  const [first, ...rest] = inNetns(ns);
  const netns = first === "ip" ? [first, ...rest] : rest.slice(rest.indexOf("ip"));
  const setpriv = first === "ip" ? [] : [first!, ...rest.slice(0, rest.indexOf("ip"))];
  return [
    ...setpriv,
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    "for d in /run/wireguard /run/flannel; do mkdir -p $d && mount -t tmpfs flt $d || exit 1; done; " +
    (runDir ? `mount --bind '${runDir}' /run/flannel || exit 1; ` : "") + 'exec "$0" "$@"',
    ...netns,
  ];
}

/**
 * The virtual cluster's (cluster.ts) extras for the data-path tests:
 *
 * - a second, **routed** underlay segment: `br1` in the switch namespace with 198.51.100.1/24
 *   (2001:db8:2::1/64); a node put there (`addNode({ routed: true })`) reaches the nodes of
 *   192.0.2.0/24 only through the switch, which then forwards between its two bridges (and still
 *   has no route to any pod network, so pod traffic sent to it dies there);
 * - an **outside** address (203.0.113.1, 2001:db8:ff::1) on the switch's loopback: not in the
 *   cluster network, reached by the nodes through their default route, and able to answer only
 *   underlay addresses (so a reply proves the request was masqueraded);
 * - kernel state as JSON (`ip -j`, `bridge -j`), packet captures (`tcpdump`), pings polled until a
 *   deadline, and a watch on the leases in etcd that timestamps each new lease;
 * - the checks the backend tests share (join, kill -9, leave, stale state, healing, idle passes),
 *   and the daemon bugs they found ({@linkcode KNOWN_BUGS}).
 *
 * Everything acts inside the run's namespaces only.
 *
 * ```ts ignore
 * await using c = await Cluster.start({ nodes: 2, backend: "vxlan" });
 * const n3 = await c.addNode({ routed: true }); // 198.51.100.13, via the switch
 * const ms = await reachAll(pairsWith(c.pods, n3.pods[0]!)); // until all answer both ways
 * ```
 *
 * @module
 */
import type { Cluster, ClusterNode } from "./cluster.ts";
import { ETCD_PREFIX } from "./cluster.ts";
import { ETCDCTL_BIN } from "./etcd.ts";
import { pollUntil } from "./daemon.ts";
import { inNetns, ip, killProc, type Pod, run, setNetSysctls } from "./cni.ts";

/**
 * Daemon bugs the e2e tests found, by name: the tests (or steps) they make fail are ignored with
 * this text printed, until they are fixed; `FLT_E2E_KNOWN_BUGS=run` runs them anyway.
 */
export const KNOWN_BUGS = {
  ipv6RouteGet: "src/netlink/route/route.ts routeLookupRequest sets RTM_F_LOOKUP_TABLE for IPv6 too; with " +
    "NETLINK_GET_STRICT_CHK the kernel refuses it (EINVAL: ipv6: Invalid flags for get route request), so " +
    "vxlan DirectRouting's route lookup of every IPv6 peer fails, every reconcile pass fails and the daemon " +
    "never becomes ready",
  ipv6RouteMetric:
    "src/backends/reconcile.ts routeKey keys routes by metric (r.metric ?? 0), but the kernel " +
    "stores an IPv6 route added with metric 0 as metric 1024: every pass deletes each of our IPv6 routes " +
    "and adds it again, and the deletion's event triggers the next pass, so IPv6 routes flap about every " +
    "100 ms for as long as the daemon runs; while a route is gone, pod traffic takes the default route (with " +
    "wireguard, IPv6 pod packets leave on the underlay in plaintext)",
} as const;

/** The reason to ignore a test of a known bug, or undefined to run it. */
export function knownBug(bug: keyof typeof KNOWN_BUGS | undefined): string | undefined {
  if (bug === undefined || FIXED.has(bug) || Deno.env.get("FLT_E2E_KNOWN_BUGS") === "run") return undefined;
  return KNOWN_BUGS[bug];
}

/** Bugs fixed since (their tests run again; the texts stay as the record of what they were). */
const FIXED = new Set<keyof typeof KNOWN_BUGS>(["ipv6RouteGet", "ipv6RouteMetric"]);

/** The first underlay segment (br0) and the routed one (br1): prefix and switch address. */
export const SEGMENTS = [
  { bridge: "br0", v4: "192.0.2.", v6: "2001:db8:1::" },
  { bridge: "br1", v4: "198.51.100.", v6: "2001:db8:2::" },
] as const;
/** The switch's bridges' MACs, set so that they do not follow their ports' (see cluster.ts). */
export const SWITCH_MACS = ["02:00:c0:00:02:01", "02:00:c6:33:64:01"] as const;
/** The outside addresses on the switch (see the module doc). */
export const OUTSIDE4 = "203.0.113.1";
export const OUTSIDE6 = "2001:db8:ff::1";

/** A node's underlay: its switch port's bridge, its addresses and its default gateways. */
export interface Underlay {
  bridge: string;
  addr4: string;
  gw4: string;
  addr6: string | undefined;
  gw6: string;
}

/** Node `index`'s underlay on the first segment, or on the routed one. */
export function underlayOf(index: number, routed: boolean, ipv6: boolean): Underlay {
  const s = SEGMENTS[routed ? 1 : 0];
  return {
    bridge: s.bridge,
    addr4: `${s.v4}${10 + index}`,
    gw4: `${s.v4}1`,
    addr6: ipv6 ? `${s.v6}${10 + index}` : undefined,
    gw6: `${s.v6}1`,
  };
}

/** Creates the routed segment's bridge in the switch and turns forwarding on there. */
export async function addRoutedSegment(infra: string, ipv6: boolean): Promise<void> {
  const s = SEGMENTS[1];
  await ip("-n", infra, "link", "add", s.bridge, "address", SWITCH_MACS[1], "type", "bridge");
  await ip("-n", infra, "addr", "add", `${s.v4}1/24`, "dev", s.bridge);
  if (ipv6) await ip("-n", infra, "addr", "add", `${s.v6}1/64`, "dev", s.bridge, "nodad");
  await ip("-n", infra, "link", "set", s.bridge, "up");
  await setNetSysctls(infra, { "ipv4/ip_forward": 1, ...(ipv6 ? { "ipv6/conf/all/forwarding": 1 } : {}) });
}

/** Puts the outside addresses on the switch's loopback (idempotent). */
export async function addOutside(c: Cluster): Promise<{ ip4: string; ip6: string }> {
  for (const a of [`${OUTSIDE4}/32`, `${OUTSIDE6}/128`]) {
    const r = await c.exec(c.infra, ["ip", "addr", "replace", a, "dev", "lo"]);
    if (r.code !== 0) throw new Error(`Cannot add ${a} to the switch: ${r.stderr.trim()}`);
  }
  return { ip4: OUTSIDE4, ip6: OUTSIDE6 };
}

// ---------------------------------------------------------------------------------------------
// Kernel state

/** One line of `ip -j route` (the fields the tests read). */
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  scope?: string;
  type?: string;
  flags?: string[];
}

/** One line of `ip -j neigh`. */
export interface IpNeigh {
  dst: string;
  dev: string;
  lladdr?: string;
  state?: string[];
}

/** One line of `bridge -j fdb`. */
export interface FdbEntry {
  mac: string;
  ifname: string;
  dst?: string;
  flags?: string[];
  state?: string;
}

/** One line of `ip -j link`. */
export interface IpLink {
  ifname: string;
  address?: string;
  mtu: number;
  flags: string[];
}

/** Runs a `-j` command in node `index` (or any namespace of the run) and parses its JSON. */
export async function json<T>(c: Cluster, target: number | string, argv: string[]): Promise<T[]> {
  const r = await c.exec(target, argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed in ${target}: ${r.stderr.trim()}`);
  const text = r.stdout.trim();
  return text === "" ? [] : JSON.parse(text);
}

/** A link of node `index`, or undefined when it does not exist. */
export async function linkOf(c: Cluster, index: number, name: string): Promise<IpLink | undefined> {
  const r = await c.exec(index, ["ip", "-j", "link", "show", "dev", name]);
  return r.code === 0 ? (JSON.parse(r.stdout) as IpLink[])[0] : undefined;
}

/** A node's routes (both families, main table), neighbours and FDB entries. */
export interface KernelView {
  routes: IpRoute[];
  neighs: IpNeigh[];
  fdb: FdbEntry[];
}

/** Reads node `index`'s routes, neighbours and FDB. */
export async function kernelView(c: Cluster, index: number): Promise<KernelView> {
  const [r4, r6, n4, n6, fdb] = await Promise.all([
    json<IpRoute>(c, index, ["ip", "-j", "-4", "route", "show"]),
    json<IpRoute>(c, index, ["ip", "-j", "-6", "route", "show"]),
    json<IpNeigh>(c, index, ["ip", "-j", "-4", "neigh", "show"]),
    json<IpNeigh>(c, index, ["ip", "-j", "-6", "neigh", "show"]),
    json<FdbEntry>(c, index, ["bridge", "-j", "fdb", "show"]),
  ]);
  return { routes: [...r4, ...r6], neighs: [...n4, ...n6], fdb };
}

/** What identifies a node in its peers' kernels. */
export interface NodeMarks {
  subnet: string;
  subnet6: string | undefined;
  ip: string;
  ip6: string | undefined;
  /** VTEP MACs (vxlan), lower case. */
  macs: string[];
}

/** The marks of a node as it is now (MACs from its lease's BackendData). */
export async function marksOf(c: Cluster, node: ClusterNode): Promise<NodeMarks> {
  const lease = (await c.leases()).find((l) => l.subnet === node.subnet);
  // BackendData is stored as a JSON object (a string from some writers).
  const macs = [lease?.value.BackendData, lease?.value.BackendV6Data]
    .map((d) => (typeof d === "string" ? JSON.parse(d) : d) as { VtepMAC?: string } | undefined)
    .map((d) => String(d?.VtepMAC ?? "").toLowerCase())
    .filter((m) => m !== "");
  return { subnet: node.subnet, subnet6: node.subnet6, ip: node.ip, ip6: node.ip6, macs };
}

/**
 * The entries of a kernel that point at a node: routes to its subnets or via its addresses,
 * neighbours of its subnets' gateway addresses or with its VTEP MACs, FDB entries with its MACs
 * or its addresses as destination. (Neighbours of its underlay address on eth0 are the kernel's,
 * not ours, and not listed.)
 */
export function tracesOf(view: KernelView, m: NodeMarks): string[] {
  const nets = [m.subnet, m.subnet6].filter((s): s is string => s !== undefined);
  const gws = nets.map((s) => s.split("/")[0]!);
  const addrs = [m.ip, m.ip6].filter((s): s is string => s !== undefined);
  const out: string[] = [];
  for (const r of view.routes) {
    if (nets.includes(r.dst) || (r.gateway !== undefined && [...addrs, ...gws].includes(r.gateway))) {
      out.push(`route ${JSON.stringify(r)}`);
    }
  }
  for (const n of view.neighs) {
    if (gws.includes(n.dst) || (n.lladdr !== undefined && m.macs.includes(n.lladdr.toLowerCase()))) {
      out.push(`neigh ${JSON.stringify(n)}`);
    }
  }
  for (const f of view.fdb) {
    if (m.macs.includes(f.mac.toLowerCase()) || (f.dst !== undefined && addrs.includes(f.dst))) {
      out.push(`fdb ${JSON.stringify(f)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pings

/** A directed ping: from a pod to an address. */
export interface PingPair {
  from: Pod;
  to: Pod;
  ipv6: boolean;
}

/** Every ordered pair of `pods` (IPv6 addresses too when `ipv6` and every pod has one). */
export function allPairs(pods: Pod[], opts: { ipv6?: boolean } = {}): PingPair[] {
  const fams = [false, ...(opts.ipv6 ? [true] : [])];
  return fams.flatMap((ipv6) =>
    pods.flatMap((from) => pods.filter((to) => to !== from).map((to) => ({ from, to, ipv6 })))
  );
}

/** The pairs between `pod` and every other pod of the cluster, both ways. */
export function pairsWith(pods: Pod[], pod: Pod, opts: { ipv6?: boolean } = {}): PingPair[] {
  return allPairs(pods, opts).filter((p) => p.from === pod || p.to === pod);
}

/** `"n1p1 -> n2p1 (10.5.7.2)"`. */
export function describePair(p: PingPair): string {
  return `${p.from.name} -> ${p.to.name} (${p.ipv6 ? p.to.ip6 : p.to.ip})`;
}

/**
 * One echo request every 50 ms from a pod until the first reply, for at most `waitMs` (1 s):
 * resolves true on a reply.
 */
export async function pingFast(from: Pod, toIp: string, waitMs = 1_000): Promise<boolean> {
  const secs = String(Math.max(1, Math.ceil(waitMs / 1000)));
  const ping = ["ping", "-n", "-q", "-c", "1", "-i", "0.05", "-w", secs, toIp];
  const r = await run(["ip", "netns", "exec", from.ns, ...ping]);
  return r.code === 0;
}

/**
 * Pings every pair, again and again for the ones that fail, until all have answered: resolves
 * with the milliseconds that took; throws with the failing pairs after `deadlineMs` (10 s).
 */
export async function reachAll(
  pairs: PingPair[],
  opts: { deadlineMs?: number; t0?: number } = {},
): Promise<number> {
  const t0 = opts.t0 ?? performance.now();
  const deadline = performance.now() + (opts.deadlineMs ?? 10_000);
  let left = pairs;
  while (left.length > 0) {
    const ok = await Promise.all(left.map((p) => pingFast(p.from, (p.ipv6 ? p.to.ip6 : p.to.ip) ?? "")));
    left = left.filter((_, i) => !ok[i]);
    if (left.length > 0 && performance.now() > deadline) {
      throw new Error(
        `No echo reply within ${opts.deadlineMs ?? 10_000} ms: ${left.map(describePair).join(", ")}`,
      );
    }
  }
  return performance.now() - t0;
}

/** Polls `cond` every 20 ms; resolves with the milliseconds since `t0` when it holds. */
export async function msUntil(
  cond: () => boolean | Promise<boolean>,
  opts: { t0: number; timeoutMs: number; why: () => string | Promise<string> },
): Promise<number> {
  const deadline = performance.now() + opts.timeoutMs;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(await opts.why());
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - opts.t0;
}

// ---------------------------------------------------------------------------------------------
// Packet capture

/** A running `tcpdump -n -l` in a namespace; {@linkcode stop} returns its lines. */
export class Capture {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #done: Promise<void>;
  #listening = false;
  #stderr = "";

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    const dec = new TextDecoderStream();
    const out = (async () => {
      let buf = "";
      for await (const chunk of child.stdout.pipeThrough(dec)) {
        buf += chunk;
        const parts = buf.split("\n");
        buf = parts.pop()!;
        this.#lines.push(...parts);
      }
      if (buf) this.#lines.push(buf);
    })();
    const err = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        this.#stderr += chunk;
        if (/listening on/.test(this.#stderr)) this.#listening = true;
      }
    })();
    this.#done = Promise.all([out, err]).then(() => {});
  }

  /** Starts `tcpdump -n -l --immediate-mode -i <iface> <filter…>` in `ns`; resolves once it listens. */
  /** The lines captured so far (the capture goes on). */
  get lines(): string[] {
    return this.#lines.filter((l) => l !== "");
  }

  static async start(ns: string, iface: string, filter: string[] = []): Promise<Capture> {
    const argv = [...inNetns(ns), "tcpdump", "-n", "-l", "--immediate-mode", "-i", iface, ...filter];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const cap = new Capture(child);
    let exited = false;
    child.status.then(() => exited = true);
    try {
      await pollUntil(
        () => cap.#listening || exited,
        10_000,
        () => `tcpdump in ${ns} did not start listening: ${cap.#stderr}`,
      );
    } catch (e) {
      await killProc(child);
      throw e;
    }
    if (exited) throw new Error(`tcpdump in ${ns} exited at start: ${cap.#stderr.trim()}`);
    return cap;
  }

  /** Stops tcpdump (SIGINT, so it flushes) and returns every line. */
  async stop(): Promise<string[]> {
    try {
      this.#child.kill("SIGINT");
    } catch { /* exited */ }
    const timer = setTimeout(() => killProc(this.#child), 5_000);
    await this.#child.status.catch(() => {});
    clearTimeout(timer);
    await this.#done.catch(() => {});
    return this.#lines.filter((l) => l !== "");
  }
}

// ---------------------------------------------------------------------------------------------
// Lease watch

/**
 * `etcdctl watch --prefix <prefix>/subnets` in the switch, timestamping (performance.now()) the
 * first PUT of each key as it arrives. {@linkcode LeaseWatch.start} returns once the watch is
 * proven live: a sentinel key `<prefix>/subnets-e2e-watch` (outside the daemons' `subnets/`
 * prefix) has been seen.
 */
export class LeaseWatch {
  readonly #child: Deno.ChildProcess;
  readonly #seen = new Map<string, number>();
  readonly #done: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#done = (async () => {
      let buf = "";
      let op = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        const at = performance.now();
        buf += chunk;
        const parts = buf.split("\n");
        buf = parts.pop()!;
        for (const line of parts) {
          if (line === "PUT" || line === "DELETE") op = line;
          else if (op !== "") {
            if (op === "PUT" && !this.#seen.has(line)) this.#seen.set(line, at);
            op = "";
          }
        }
      }
    })();
  }

  static async start(c: Cluster): Promise<LeaseWatch> {
    const argv = [
      ...inNetns(c.infra),
      ETCDCTL_BIN,
      `--endpoints=${c.etcd.endpoint}`,
      "watch",
      "--prefix",
      `${ETCD_PREFIX}/subnets`,
    ];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: { ETCDCTL_API: "3" },
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const w = new LeaseWatch(child);
    const sentinel = `${ETCD_PREFIX}/subnets-e2e-watch`;
    try {
      let n = 0;
      await pollUntil(
        async () => {
          if (w.#seen.has(sentinel)) return true;
          if (n++ % 4 === 0) await c.etcd.etcdctl(["put", sentinel, String(n)]);
          return false;
        },
        10_000,
        () => "etcdctl watch saw no event within 10 s",
      );
      await c.etcd.etcdctl(["del", sentinel]);
    } catch (e) {
      await w.stop();
      throw e;
    }
    return w;
  }

  /** Waits for the first PUT of a key matching `pred`: the key and when it arrived. */
  async next(pred: (key: string) => boolean, timeoutMs = 20_000): Promise<{ key: string; at: number }> {
    let hit: [string, number] | undefined;
    await pollUntil(
      () => (hit = [...this.#seen].find(([k]) => pred(k))) !== undefined,
      timeoutMs,
      () => `no lease PUT matching within ${timeoutMs} ms; seen ${[...this.#seen.keys()]}`,
    );
    return { key: hit![0], at: hit![1] };
  }

  async stop(): Promise<void> {
    await killProc(this.#child);
    await this.#done.catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the backend tests (each asserts, and returns what it measured)

/** Every pod pair pings both ways (and over IPv6 with `ipv6`); the milliseconds it took. */
export async function checkMatrix(
  c: Cluster,
  opts: { ipv6?: boolean; deadlineMs?: number } = {},
): Promise<number> {
  try {
    return await reachAll(allPairs(c.pods, opts), opts);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${c.logs()}`);
  }
}

/** Whether node `index` has a route to each of `dsts`. */
async function hasRoutes(c: Cluster, index: number, dsts: string[]): Promise<boolean> {
  for (const d of dsts) {
    if ((await json<IpRoute>(c, index, routeShow(d))).length === 0) return false;
  }
  return true;
}

/** `ip -j route show <dst>` (`ip` does not pick the family from an IPv6 prefix by itself). */
function routeShow(dst: string): string[] {
  return ["ip", "-j", dst.includes(":") ? "-6" : "-4", "route", "show", dst];
}

/** What {@linkcode checkJoin} measured, from the new lease's PUT seen in etcd. */
export interface JoinTimes {
  node: ClusterNode;
  /** Until every other node has a route to the new subnets (the daemons' part). */
  routesMs: number;
  /** Until the harness has made the new node's first pod (CNI ADD after the daemon is ready). */
  podMs: number;
  /** Until the new pod and every other pod ping each other both ways. */
  pingMs: number;
}

/**
 * A node joins (on the routed segment with `routed`): times from its lease's PUT in etcd until
 * every other node routes to it, until its first pod exists, and until every pod pair with that
 * pod pings both ways.
 */
export async function checkJoin(
  c: Cluster,
  opts: { routed?: boolean; ipv6?: boolean; deadlineMs?: number } = {},
): Promise<JoinTimes> {
  const watch = await LeaseWatch.start(c);
  try {
    const before = new Set((await c.leases()).map((l) => l.key));
    const others = [...c.nodes];
    const adding = c.addNode({ routed: opts.routed ?? false });
    let podAt = 0;
    adding.then(() => podAt = performance.now(), () => {}); // awaited below; a failure surfaces there
    const { key, at } = await watch.next((k) => k.startsWith(`${ETCD_PREFIX}/subnets/`) && !before.has(k));
    const [v4, v6] = key.slice(key.lastIndexOf("/") + 1).split("&").map((p) => p.replace(/-(\d+)$/, "/$1"));
    const dsts = [v4!, ...(opts.ipv6 && v6 ? [v6] : [])];
    const routesMs = await msUntil(
      async () => (await Promise.all(others.map((n) => hasRoutes(c, n.index, dsts)))).every(Boolean),
      { t0: at, timeoutMs: 10_000, why: () => `not every node routes to ${dsts} within 10 s\n${c.logs()}` },
    );
    const node = await adding;
    const pingMs = await reachAll(pairsWith(c.pods, node.pods[0]!, opts), {
      t0: at,
      deadlineMs: opts.deadlineMs ?? 10_000,
    });
    return { node, routesMs, podMs: podAt - at, pingMs };
  } finally {
    await watch.stop();
  }
}

/**
 * kill -9 of node `index`'s daemon: its pods keep their connectivity while it is down (the data
 * path outlives the daemon; over IPv6 too unless `ipv6WhileDown` is false); the restarted daemon
 * keeps the subnet (subnet.env byte-identical, same lease key and BackendData) and the
 * connectivity.
 */
export async function checkKillRestart(
  c: Cluster,
  index: number,
  opts: { ipv6?: boolean; ipv6WhileDown?: boolean } = {},
): Promise<void> {
  const node = c.node(index);
  const env = await Deno.readTextFile(node.subnetFile);
  const lease = (await c.leases()).find((l) => l.subnet === node.subnet);
  if (!lease) throw new Error(`node ${index} has no lease`);
  const pairs = (ipv6 = opts.ipv6) => pairsWith(c.pods, node.pods[0]!, { ipv6: ipv6 ?? false });
  const code = await c.killDaemon(index, "SIGKILL");
  if (code !== 137) throw new Error(`kill -9 of node ${index}'s daemon: exit code ${code}, want 137`);
  await reachAll(pairs(opts.ipv6 && (opts.ipv6WhileDown ?? true)), { deadlineMs: 5_000 });
  await c.restartDaemon(index);
  const after = await Deno.readTextFile(node.subnetFile);
  if (after !== env) throw new Error(`subnet.env changed across the restart:\n${env}\n---\n${after}`);
  const lease2 = (await c.leases()).find((l) => l.key === lease.key);
  if (!lease2) throw new Error(`node ${index}'s lease ${lease.key} is gone after the restart`);
  for (const k of ["PublicIP", "PublicIPv6", "BackendType", "BackendData", "BackendV6Data"]) {
    if (JSON.stringify(lease2.value[k]) !== JSON.stringify(lease.value[k])) {
      throw new Error(`lease ${k} changed across the restart: ${lease.value[k]} → ${lease2.value[k]}`);
    }
  }
  await reachAll(pairs(), { deadlineMs: 5_000 });
}

/**
 * Node `index` leaves (removeNode): resolves with the milliseconds until no other node's kernel
 * has a trace of it (there were traces before).
 */
export async function checkLeave(c: Cluster, index: number, timeoutMs = 5_000): Promise<number> {
  const marks = await marksOf(c, c.node(index));
  for (const n of c.nodes.filter((n) => n.index !== index)) {
    if (tracesOf(await kernelView(c, n.index), marks).length === 0) {
      throw new Error(`node ${n.index} has no entry for node ${index} before it leaves`);
    }
  }
  await c.removeNode(index);
  const t0 = performance.now();
  return await msUntil(
    async () =>
      (await Promise.all(c.nodes.map(async (n) => tracesOf(await kernelView(c, n.index), marks))))
        .every((t) => t.length === 0),
    {
      t0,
      timeoutMs,
      why: async () => {
        const left = await Promise.all(
          c.nodes.map(async (n) =>
            `node ${n.index}: ${tracesOf(await kernelView(c, n.index), marks).join("; ")}`
          ),
        );
        return `node ${index} left but is still in kernels after ${timeoutMs} ms:\n${left.join("\n")}`;
      },
    },
  );
}

/**
 * Entries of a node deleted while our daemon was down go at start-up: node `keep`'s daemon stops
 * (SIGTERM), node `remove` leaves (its lease deleted), node `keep`'s kernel still has its entries;
 * once `keep`'s new daemon is ready (its first pass done) none are left.
 */
export async function checkStaleAtStart(c: Cluster, keep: number, remove: number): Promise<void> {
  const marks = await marksOf(c, c.node(remove));
  const code = await c.killDaemon(keep, "SIGTERM");
  if (code !== 0) throw new Error(`node ${keep}'s daemon exited with ${code} on SIGTERM\n${c.logs()}`);
  await c.removeNode(remove);
  const stale = tracesOf(await kernelView(c, keep), marks);
  if (stale.length === 0) {
    throw new Error(`node ${keep} lost node ${remove}'s entries while its daemon was down`);
  }
  await c.restartDaemon(keep);
  const left = tracesOf(await kernelView(c, keep), marks);
  if (left.length > 0) {
    throw new Error(`node ${keep} still has node ${remove}'s entries after start-up: ${left.join("; ")}`);
  }
}

/** What {@linkcode checkDeviceHeal} measured from the `ip link del`. */
export interface HealTimes {
  deviceMs: number;
  pingMs: number;
}

/**
 * `ip link del <dev>` on node `index`: the device comes back with the same MAC, up, with the
 * same neighbours, FDB entries and routes, and the node's pod pings every other pod again.
 */
export async function checkDeviceHeal(
  c: Cluster,
  index: number,
  dev: string,
  opts: { ipv6?: boolean } = {},
): Promise<HealTimes> {
  const before = await linkOf(c, index, dev);
  if (!before) throw new Error(`node ${index} has no ${dev}`);
  const entries = async () => onDevice(await kernelView(c, index), dev);
  const want = await entries();
  const t0 = performance.now();
  const del = await c.exec(index, ["ip", "link", "del", dev]);
  if (del.code !== 0) throw new Error(`ip link del ${dev}: ${del.stderr}`);
  const deviceMs = await msUntil(async () => {
    const l = await linkOf(c, index, dev);
    return l !== undefined && l.address === before.address && l.flags.includes("UP");
  }, { t0, timeoutMs: 10_000, why: () => `${dev} on node ${index} not back within 10 s\n${c.logs()}` });
  const pingMs = await reachAll(pairsWith(c.pods, c.node(index).pods[0]!, opts), { t0, deadlineMs: 10_000 });
  await msUntil(async () => JSON.stringify(await entries()) === JSON.stringify(want), {
    t0,
    timeoutMs: 5_000,
    why: async () => `${dev}'s entries differ after healing:\n${await entries()}\nwant\n${want}`,
  });
  return { deviceMs, pingMs };
}

/** Sorted one-line renderings of a view's entries on `dev` (neighbours, FDB, routes). */
export function onDevice(view: KernelView, dev: string): string[] {
  return [
    ...view.neighs.filter((n) => n.dev === dev && n.state?.includes("PERMANENT"))
      .map((n) => `neigh ${n.dst} ${n.lladdr}`),
    ...view.fdb.filter((f) => f.ifname === dev && f.dst !== undefined).map((f) => `fdb ${f.mac} ${f.dst}`),
    ...view.routes.filter((r) => r.dev === dev && r.protocol === "91")
      .map((r) => `route ${r.dst} via ${r.gateway} ${r.flags?.join(",") ?? ""}`),
  ].sort();
}

/**
 * `ip route del <dst>` of one of our routes on node `index`: resolves with the milliseconds until
 * the same route is back.
 */
export async function checkRouteHeal(
  c: Cluster,
  index: number,
  dst: string,
  timeoutMs = 5_000,
): Promise<number> {
  const show = async () => await json<IpRoute>(c, index, routeShow(dst));
  const [want] = await show();
  if (!want) throw new Error(`node ${index} has no route to ${dst}`);
  const t0 = performance.now();
  const del = await c.exec(index, ["ip", dst.includes(":") ? "-6" : "-4", "route", "del", dst]);
  if (del.code !== 0) throw new Error(`ip route del ${dst}: ${del.stderr}`);
  return await msUntil(async () => JSON.stringify((await show())[0]) === JSON.stringify(want), {
    t0,
    timeoutMs,
    why: async () =>
      `route ${dst} on node ${index} not back within ${timeoutMs} ms: ${JSON.stringify(await show())}`,
  });
}

/**
 * A reconcile pass with nothing to change changes nothing: a lease of another backend type (which
 * every backend ignores) is put in etcd and later deleted; each makes every daemon run a pass
 * (`flannel_reconcile_passes_total` grows), and `flannel_reconcile_changes_total` must not grow.
 * Call it in a steady state (after the matrix), when no real change is in flight.
 */
export async function checkIdlePass(c: Cluster): Promise<void> {
  // A subnet no node holds (nodes get one of the first free ones, counting from the bottom).
  const taken = new Set((await c.leases()).map((l) => l.subnet));
  const third = [254, 253, 252, 251, 250].find((x) => !taken.has(`10.5.${x}.0/24`))!;
  const key = `${ETCD_PREFIX}/subnets/10.5.${third}.0-24`;
  const value = JSON.stringify({ PublicIP: "192.0.2.250", BackendType: "e2e-other" });
  for (const op of [["put", key, value], ["del", key]]) {
    const metric = (n: ClusterNode, name: string) => n.daemon.metric(name).then((v) => v ?? 0);
    const before = await Promise.all(c.nodes.map(async (n) => ({
      passes: await metric(n, "flannel_reconcile_passes_total"),
      changes: await metric(n, "flannel_reconcile_changes_total"),
    })));
    await c.etcd.etcdctl(op);
    await pollUntil(
      async () =>
        (await Promise.all(
          c.nodes.map((n, i) =>
            metric(n, "flannel_reconcile_passes_total").then((p) => p > before[i]!.passes)
          ),
        ))
          .every(Boolean),
      5_000,
      () => `not every daemon ran a pass within 5 s of "${op[0]} ${key}"`,
    );
    for (const [i, n] of c.nodes.entries()) {
      const changes = await metric(n, "flannel_reconcile_changes_total");
      if (changes !== before[i]!.changes) {
        const log = n.daemon.lines.filter((l) => /Deleted route|Set route|neighbour|fdb entry/.test(l)).slice(
          -6,
        );
        throw new Error(
          `node ${n.index}: a pass after "${op[0]}" of a lease of another backend type made ` +
            `${changes - before[i]!.changes} kernel changes, want 0; last changes logged (at -v=2):\n${
              log.join("\n")
            }`,
        );
      }
    }
  }
}

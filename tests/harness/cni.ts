/**
 * "Pods" for the virtual cluster (cluster.ts): made by the real CNI reference plugins (Debian
 * `containernetworking-plugins`), the `bridge` plugin with `host-local` IPAM, configured from a
 * node's subnet.env exactly as flannel's CNI plugin delegates (bridge `cni0`, the node's subnet with
 * its `.1` gateway, the MTU from `FLANNEL_MTU`); and traffic between them (ping, iperf3).
 *
 * The plugin runs in the node's network namespace (it creates `cni0` there) and moves one end of a
 * veth into the pod's namespace (`CNI_NETNS`).
 *
 * ```ts ignore
 * const env = parseSubnetEnv(await Deno.readTextFile(subnetFile));
 * const config = bridgeConfig(env, { dataDir: `${dir}/ipam` });
 * const res = await cniAdd({ prefix: ["ip", "netns", "exec", node], netns: pod, containerId: pod, config });
 * console.log(res.ip4); // "10.5.3.2"
 * ```
 *
 * The namespace and process primitives below (`run`, `createNetns`, `deleteNetns`, …) are what the
 * pods and the cluster (cluster.ts) are made of; they only ever act inside named namespaces.
 *
 * @module
 */
import { IP4Net, IP6Net } from "../../src/ip/mod.ts";

/** Where Debian installs the CNI plugins (`CNI_PATH`). */
export const CNI_PATH = "/usr/lib/cni";
/** The CNI spec version of the configs we build (what flannel's manifests use). */
export const CNI_VERSION = "0.3.1";
const SETPRIV = "/usr/bin/setpriv";
/** How long one plugin call may take. */
const PLUGIN_DEADLINE_MS = 30_000;

/** Why pods cannot be made here (a plugin is missing), or undefined. */
export function cniMissing(): string | undefined {
  const plugin = ["bridge", "host-local"].find((p) => !exists(`${CNI_PATH}/${p}`));
  return plugin && `${CNI_PATH}/${plugin} is missing: run "bash scripts/cluster_setup.sh"`;
}

/** The variables of a subnet.env that pods are configured from. */
export interface SubnetEnv {
  /** `FLANNEL_NETWORK`, e.g. `10.5.0.0/16`. */
  network?: string;
  /** `FLANNEL_SUBNET` as written, e.g. `10.5.3.1/24` (the gateway address and the prefix). */
  subnet?: string;
  /** `FLANNEL_IPV6_NETWORK`. */
  ipv6Network?: string;
  /** `FLANNEL_IPV6_SUBNET` as written. */
  ipv6Subnet?: string;
  /** `FLANNEL_MTU`. */
  mtu: number;
  /** `FLANNEL_IPMASQ`. */
  ipMasq: boolean;
  /** Every variable, verbatim. */
  vars: Record<string, string>;
}

/** Parses subnet.env text (`KEY=value` lines). */
export function parseSubnetEnv(text: string): SubnetEnv {
  const vars: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  const env: SubnetEnv = {
    mtu: Number(vars.FLANNEL_MTU ?? "1500"),
    ipMasq: vars.FLANNEL_IPMASQ === "true",
    vars,
  };
  if (vars.FLANNEL_NETWORK) env.network = vars.FLANNEL_NETWORK;
  if (vars.FLANNEL_SUBNET) env.subnet = vars.FLANNEL_SUBNET;
  if (vars.FLANNEL_IPV6_NETWORK) env.ipv6Network = vars.FLANNEL_IPV6_NETWORK;
  if (vars.FLANNEL_IPV6_SUBNET) env.ipv6Subnet = vars.FLANNEL_IPV6_SUBNET;
  return env;
}

/** Options of {@linkcode bridgeConfig}. */
export interface BridgeConfigOptions {
  /** host-local's `dataDir` (its allocation files); one per node. */
  dataDir: string;
  /** The network name; default `cbr0`, as flannel's manifests. */
  name?: string;
  /** The bridge; default `cni0`. */
  bridge?: string;
  /**
   * The bridge plugin's own masquerading; default false, so pod-to-pod packets keep the pod's source
   * address (what the data-path tests check). Flannel's CNI plugin sets `!FLANNEL_IPMASQ` here; pass
   * `!env.ipMasq` for that, which needs iptables in the node.
   */
  ipMasq?: boolean;
}

/**
 * The `bridge` plugin config flannel's CNI plugin delegates with, from a subnet.env: `isGateway`,
 * `isDefaultGateway`, `hairpinMode`, `ipMasq` (see {@linkcode BridgeConfigOptions.ipMasq}),
 * `mtu` = FLANNEL_MTU, host-local ranges for the node's IPv4 and IPv6 subnets (gateway: the subnet's
 * first address) and routes to the flannel networks.
 */
export function bridgeConfig(env: SubnetEnv, opts: BridgeConfigOptions): Record<string, unknown> {
  const ranges: { subnet: string }[][] = [];
  const routes: { dst: string }[] = [];
  if (env.subnet) {
    ranges.push([{ subnet: IP4Net.parse(env.subnet).network().toString() }]);
    if (env.network) routes.push({ dst: env.network });
  }
  if (env.ipv6Subnet) {
    ranges.push([{ subnet: IP6Net.parse(env.ipv6Subnet).network().toString() }]);
    if (env.ipv6Network) routes.push({ dst: env.ipv6Network });
  }
  if (ranges.length === 0) throw new TypeError("Cannot configure pods: subnet.env has no FLANNEL_SUBNET");
  return {
    cniVersion: CNI_VERSION,
    name: opts.name ?? "cbr0",
    type: "bridge",
    bridge: opts.bridge ?? "cni0",
    isGateway: true,
    isDefaultGateway: true,
    hairpinMode: true,
    ipMasq: opts.ipMasq ?? false,
    mtu: env.mtu,
    ipam: { type: "host-local", dataDir: opts.dataDir, ranges, routes },
  };
}

/** One CNI plugin call. */
export interface CniCall {
  /** The command the plugin runs under: the node's `["ip", "netns", "exec", "<node ns>"]`. */
  prefix: string[];
  /** The pod's network namespace name (under /var/run/netns). */
  netns: string;
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** The network config (stdin). */
  config: Record<string, unknown>;
  /** `CNI_IFNAME`; default `eth0`. */
  ifName?: string;
}

/** The parts of an ADD result the tests use. */
export interface CniResult {
  /** The pod's IPv4 address without prefix, if any. */
  ip4?: string;
  /** The pod's IPv6 address without prefix, if any. */
  ip6?: string;
  /** The IPv4 gateway (the node's cni0 address). */
  gateway4?: string;
  /** The IPv6 gateway. */
  gateway6?: string;
  /** The plugin's JSON result. */
  raw: Record<string, unknown>;
}

/** Runs `bridge` ADD and returns the addresses it gave the pod. */
export async function cniAdd(call: CniCall): Promise<CniResult> {
  const raw = await runPlugin("ADD", call);
  const out: CniResult = { raw };
  const ips = (raw.ips ?? []) as { address?: string; gateway?: string }[];
  for (const ip of ips) {
    const [addr = ""] = (ip.address ?? "").split("/");
    if (addr.includes(":")) {
      out.ip6 ??= addr;
      if (ip.gateway) out.gateway6 ??= ip.gateway;
    } else if (addr) {
      out.ip4 ??= addr;
      if (ip.gateway) out.gateway4 ??= ip.gateway;
    }
  }
  if (out.ip4 === undefined && out.ip6 === undefined) {
    throw new Error(`CNI ADD for ${call.netns} returned no address: ${JSON.stringify(raw)}`);
  }
  return out;
}

/** Runs `bridge` DEL (releases the host-local address and removes the veth). */
export async function cniDel(call: CniCall): Promise<void> {
  await runPlugin("DEL", call);
}

async function runPlugin(command: "ADD" | "DEL", call: CniCall): Promise<Record<string, unknown>> {
  const type = String(call.config.type);
  const argv = [...call.prefix, `${CNI_PATH}/${type}`];
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env: {
      CNI_COMMAND: command,
      CNI_CONTAINERID: call.containerId,
      CNI_NETNS: `/var/run/netns/${call.netns}`,
      CNI_IFNAME: call.ifName ?? "eth0",
      CNI_PATH,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(call.config)));
  await writer.close();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, PLUGIN_DEADLINE_MS);
  const out = await child.output().finally(() => clearTimeout(timer));
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout).trim();
  if (!out.success) {
    // Plugins report errors as a JSON object on stdout: {"code":…,"msg":…,"details":…}.
    let why = dec.decode(out.stderr).trim() || stdout;
    try {
      const e = JSON.parse(stdout);
      why = [e.msg, e.details].filter(Boolean).join(": ");
    } catch { /* not JSON */ }
    throw new Error(`CNI ${type} ${command} for ${call.netns} failed (exit ${out.code}): ${why}`);
  }
  if (command === "DEL" || stdout === "") return {};
  return JSON.parse(stdout);
}

/** A pod: a namespace with `eth0` on its node's `cni0`. */
export interface Pod {
  /** Short name, `n<i>p<j>`. */
  readonly name: string;
  /** The network namespace name. */
  readonly ns: string;
  /** Its node's index. */
  readonly node: number;
  readonly ip: string;
  readonly ip6: string | undefined;
  /** The node's cni0 address. */
  readonly gateway: string;
  readonly gateway6: string | undefined;
}

/** Pod-to-pod reachability; `ok[a][b]` is undefined on the diagonal. */
export interface PingMatrix {
  pods: Pod[];
  ok: (boolean | undefined)[][];
  /** `"n1p1 -> n2p1 (10.5.7.2)"` per failed pair. */
  failures: string[];
  /** A ✓/✗ table. */
  text: string;
}

/** What {@linkcode iperf} measured. */
export interface IperfResult {
  bitsPerSecond: number;
  retransmits: number | undefined;
  seconds: number;
}

/** Whether namespace `ns` gets an echo reply from `toIp` within `timeoutMs` (default 2 s; 5 probes/s). */
export async function pingFrom(ns: string, toIp: string, timeoutMs = 2_000): Promise<boolean> {
  const secs = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  const res = await run([
    "ip",
    "netns",
    "exec",
    ns,
    "ping",
    "-n",
    "-q",
    "-c",
    "1",
    "-i",
    "0.2",
    "-w",
    secs,
    toIp,
  ]);
  return res.code === 0;
}

/** Pings every ordered pair of `pods` in parallel (IPv6 addresses with `ipv6`) and renders a ✓/✗ table. */
export async function pingMatrix(
  pods: Pod[],
  opts: { ipv6?: boolean; timeoutMs?: number } = {},
): Promise<PingMatrix> {
  const addr = (p: Pod) => (opts.ipv6 ? p.ip6 : p.ip) ?? "";
  const ok = await Promise.all(
    pods.map((a) =>
      Promise.all(pods.map((b) => a === b ? undefined : pingFrom(a.ns, addr(b), opts.timeoutMs)))
    ),
  );
  const failures: string[] = [];
  pods.forEach((a, i) =>
    pods.forEach((b, j) => {
      if (ok[i]![j] === false) failures.push(`${a.name} -> ${b.name} (${addr(b)})`);
    })
  );
  const w = Math.max(11, ...pods.map((p) => p.name.length + 2));
  const head = "from \\ to".padEnd(w) + pods.map((p) => p.name.padEnd(w)).join("");
  const rows = pods.map((a, i) =>
    a.name.padEnd(w) + ok[i]!.map((v) => (v === undefined ? "·" : v ? "✓" : "✗").padEnd(w)).join("")
  );
  return { pods, ok, failures, text: [head, ...rows].map((l) => l.trimEnd()).join("\n") };
}

/**
 * iperf3 (TCP, port 5201) from one pod to another for `seconds` (default 2). The server runs while
 * the call does; `track` holds it meanwhile, so a teardown can kill it.
 */
export async function iperf(
  from: Pod,
  to: Pod,
  opts: { seconds?: number; ipv6?: boolean; track?: Set<Deno.ChildProcess> } = {},
): Promise<IperfResult> {
  const seconds = opts.seconds ?? 2;
  const target = (opts.ipv6 ? to.ip6 : to.ip) ?? "";
  const argv = [...inNetns(to.ns), "iperf3", "-s", "-1", "-p", "5201"];
  const server = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  })
    .spawn();
  opts.track?.add(server);
  let exited = false;
  server.status.then(() => exited = true, () => exited = true);
  try {
    // iperf3 buffers its banner in a pipe, so watch for the listening socket instead.
    const deadline = Date.now() + 10_000;
    while (!exited && !/:5201\b/.test((await run(["ip", "netns", "exec", to.ns, "ss", "-Hltn"])).stdout)) {
      if (Date.now() > deadline) throw new Error(`iperf3 server in ${to.name} did not listen within 10 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    if (exited) throw new Error(`iperf3 server in ${to.name} exited at start`);
    const client = ["iperf3", "-c", target, "-p", "5201", "-t", String(seconds), "-J"];
    const res = await run(["ip", "netns", "exec", from.ns, ...client], seconds * 1000 + 20_000);
    const j = JSON.parse(res.stdout || "{}");
    if (res.code !== 0 || !j.end) {
      throw new Error(`iperf3 ${from.name} -> ${to.name} failed: ${j.error ?? res.stderr}`);
    }
    return {
      bitsPerSecond: j.end.sum_received?.bits_per_second ?? 0,
      retransmits: j.end.sum_sent?.retransmits,
      seconds,
    };
  } finally {
    await killProc(server);
    opts.track?.delete(server);
  }
}

/**
 * The command prefix that runs a long-lived process in `ns`: `ip netns exec` (which execs, so the
 * child's pid is the process's), under `setpriv --pdeathsig SIGKILL` when present, so the process
 * dies with this one even when this one is killed (pdeathsig survives exec).
 */
export function inNetns(ns: string): string[] {
  return [...(exists(SETPRIV) ? [SETPRIV, "--pdeathsig", "SIGKILL"] : []), "ip", "netns", "exec", ns];
}

/** SIGKILLs a child (if still running) and waits for it. */
export async function killProc(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* exited */ }
  await child.status.catch(() => {});
}

/** A finished command: exit code and output. */
export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv` to completion (SIGKILL after `timeoutMs`); a non-zero exit is a result, not an error. */
export async function run(argv: string[], timeoutMs = 30_000): Promise<ExecResult> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  const out = await child.output().finally(() => clearTimeout(timer));
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `ip …`; throws with its stderr on failure. Always pass `-n <ns>` for links and addresses. */
export async function ip(...args: string[]): Promise<void> {
  const res = await run(["ip", ...args]);
  if (res.code !== 0) throw new Error(`ip ${args.join(" ")}: ${res.stderr.trim()}`);
}

/** Creates namespace `ns` with `lo` up and IPv6 duplicate address detection off. */
export async function createNetns(ns: string): Promise<void> {
  await ip("netns", "add", ns);
  await ip("-n", ns, "link", "set", "lo", "up");
  // Without DAD, addresses are usable at once (the bridge plugin would otherwise wait for it).
  await setNetSysctls(ns, { "ipv6/conf/all/accept_dad": 0, "ipv6/conf/default/accept_dad": 0 });
}

/**
 * Writes sysctls under /proc/sys/net inside `ns`, e.g. `{ "ipv4/ip_forward": 1 }`: those files
 * belong to the namespace of the process that opens them.
 */
export async function setNetSysctls(ns: string, values: Record<string, number>): Promise<void> {
  const script = Object.entries(values).map(([k, v]) => `echo ${v} > /proc/sys/net/${k}`).join(" && ");
  const res = await run(["ip", "netns", "exec", ns, "sh", "-c", script]);
  if (res.code !== 0) throw new Error(`Cannot set sysctls in ${ns}: ${res.stderr.trim()}`);
}

/** The names `ip netns list` shows (it prints `name (id: N)` for namespaces with an id). */
export async function listNetns(): Promise<string[]> {
  const res = await run(["ip", "netns", "list"]);
  return res.stdout.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n !== "");
}

/** Kills every process inside `ns` (SIGKILL), then deletes it; a missing namespace is fine. */
export async function deleteNetns(ns: string): Promise<void> {
  const pids = (await run(["ip", "netns", "pids", ns])).stdout.split("\n").filter((p) => /^\d+$/.test(p));
  for (const pid of pids) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch { /* exited */ }
  }
  await run(["ip", "netns", "del", ns]);
}

/** Whether `path` exists. */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The udp backend against our vxlan, between the same two pods in one run (needs root; skipped
 * otherwise). Prints numbers, asserts nothing:
 *
 * 1. A two-node virtual cluster with the bundled dist/flanneld on vxlan: iperf3 TCP pod → pod
 *    (median of several runs), and packets/s of 64-byte UDP datagrams (iperf3 -u -b 0).
 * 2. The same namespaces and pods switched to udp (daemons stopped, flannel.1 deleted, net-conf
 *    changed, daemons restarted on the same leases): the same two measurements.
 * 3. The udp data path run in this process in those namespaces, one variant at a time: the
 *    loop on one Worker (the daemon's choice), a Worker per direction, on the JS thread, and
 *    without offloads (one packet per syscall), to show what each choice is worth.
 *
 * Run: `deno run -A tests/bench/udp_bench.ts [seconds per run, default 3] [runs, default 3]`.
 * The numbers move with whatever else the machine runs; vxlan and udp run back to back.
 */
import { Cluster, clusterUnavailable, ETCD_PREFIX, type Pod } from "../harness/cluster.ts";
import { inNetns, killProc, run } from "../harness/cni.ts";
import { openDenoDataPath } from "../../src/backends/udp/sys_deno.ts";
import type { DataPath, DataPathOptions } from "../../src/backends/udp/sys.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";

const SECONDS = Number(Deno.args[0] ?? 3);
const RUNS = Number(Deno.args[1] ?? 3);

const skip = (await clusterUnavailable()) ??
  ((await run(["sh", "-c", "command -v iperf3"])).code !== 0 ? "iperf3 is not installed" : undefined);
if (skip) {
  console.log(`udp bench skipped: ${skip}`);
  Deno.exit(0);
}

/** The parts of iperf3's JSON report read here. */
interface IperfReport {
  end?: {
    sum_received?: { bits_per_second: number };
    sum?: { packets: number; lost_packets: number; seconds: number };
  };
  error?: string;
}

/** iperf3 from `from` to `to` with extra client args; the parsed JSON report. */
async function iperf3(from: Pod, to: Pod, args: string[]): Promise<Required<IperfReport>["end"]> {
  const server = new Deno.Command(inNetns(to.ns)[0]!, {
    args: [...inNetns(to.ns).slice(1), "iperf3", "-s", "-1", "-p", "5201"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const deadline = Date.now() + 10_000;
    while (!/:5201\b/.test((await run(["ip", "netns", "exec", to.ns, "ss", "-Hltn"])).stdout)) {
      if (Date.now() > deadline) throw new Error(`iperf3 server in ${to.name} did not listen`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const res = await run(
      [
        "ip",
        "netns",
        "exec",
        from.ns,
        "iperf3",
        "-c",
        to.ip,
        "-p",
        "5201",
        "-t",
        String(SECONDS),
        "-J",
        ...args,
      ],
      SECONDS * 1000 + 30_000,
    );
    const j = JSON.parse(res.stdout || "{}") as IperfReport;
    if (!j.end) throw new Error(`iperf3 ${from.name} -> ${to.name}: ${j.error ?? res.stderr}`);
    return j.end;
  } finally {
    await killProc(server);
  }
}

interface Result {
  gbits: number[];
  pps: number;
}

/** TCP throughput (RUNS times) and 64-byte UDP packets/s between the two pods. */
async function measure(c: Cluster): Promise<Result> {
  const [a, b] = c.pods as [Pod, Pod];
  const gbits: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const end = await iperf3(a, b, []);
    gbits.push((end.sum_received?.bits_per_second ?? 0) / 1e9);
  }
  const s = (await iperf3(a, b, ["-u", "-b", "0", "-l", "64"])).sum;
  const pps = s ? (s.packets - s.lost_packets) / s.seconds : 0;
  return { gbits, pps };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;
const show = (r: Result) =>
  `${median(r.gbits).toFixed(2)} Gbit/s (runs ${r.gbits.map((g) => g.toFixed(2)).join(", ")}), ` +
  `${(r.pps / 1000).toFixed(0)} kpps of 64-byte UDP`;

await using c = await Cluster.start({ nodes: 2, backend: "vxlan" });
await c.waitPeers();
const subnets = c.nodes.map((n) => n.subnet);
console.log(
  `udp bench: 2 nodes, pods ${c.pods.map((p) => p.ip).join(" → ")}, ${SECONDS} s per run, ${RUNS} runs, ` +
    `${navigator.hardwareConcurrency} CPUs`,
);

const vxlan = await measure(c);
console.log(`vxlan (bundled flanneld):            ${show(vxlan)}`);

// Same namespaces, same pods: switch the cluster to udp.
for (const n of c.nodes) await n.daemon.stop();
for (const n of c.nodes) await c.exec(n.index, ["ip", "link", "del", "flannel.1"]);
await c.etcd.etcdctl([
  "put",
  `${ETCD_PREFIX}/config`,
  JSON.stringify({ ...c.netConf, Backend: { Type: "udp" } }),
]);
for (const n of c.nodes) await c.restartDaemon(n.index);
await c.waitPeers();
if (c.nodes.some((n, i) => n.subnet !== subnets[i])) {
  throw new Error("the nodes got new subnets after the switch");
}
if (!(await c.ping(c.pods[0]!, c.pods[1]!.ip, { timeoutMs: 5_000 }))) {
  throw new Error(`udp: no ping\n${c.logs()}`);
}
const udp = await measure(c);
console.log(`udp (bundled flanneld, Workers):     ${show(udp)}`);
console.log(
  `udp / vxlan: ${(median(udp.gbits) / median(vxlan.gbits)).toFixed(2)}× throughput, ` +
    `${(udp.pps / vxlan.pps).toFixed(2)}× packets/s`,
);

// The data path in this process, in the same namespaces, one variant at a time.
for (const n of c.nodes) await n.daemon.stop();
const variants: [string, Partial<DataPathOptions>][] = [
  ["one Worker, offloads", { threads: "worker" }],
  ["a Worker per direction, offloads", { threads: "workers" }],
  ["the JS thread, offloads", { threads: "main" }],
  ["one Worker, no offloads", { threads: "worker", offload: false }],
];
for (const [name, opts] of variants) {
  const dps: DataPath[] = [];
  try {
    for (const n of c.nodes) {
      const sub = IP4Net.parse(n.subnet);
      const dp = await openDenoDataPath({
        tunName: "flannel%d",
        tunAddr: sub.ip.value,
        bindAddr: IP4.parse(n.ip).value,
        port: 8285,
        mtu: 1472,
        maxPeers: 256,
        netns: n.ns,
        ...opts,
      });
      dps.push(dp);
      for (
        const cmd of [
          ["link", "set", dp.tunName, "mtu", "1472", "up"],
          ["addr", "add", `${sub.ip}/32`, "dev", dp.tunName],
          ["route", "replace", "10.5.0.0/16", "dev", dp.tunName],
        ]
      ) await c.exec(n.index, ["ip", ...cmd]);
      dp.setDeviceSysctl("accept_local", "1");
    }
    for (const [i, n] of c.nodes.entries()) {
      dps[i]!.setPeers(
        c.nodes.filter((p) => p !== n).map((p) => {
          const s = IP4Net.parse(p.subnet);
          return { net: s.ip.value, mask: s.mask(), addr: IP4.parse(p.ip).value, port: 8285 };
        }),
      );
    }
    const r = await measure(c);
    const st = dps[1]!.stats();
    console.log(
      `udp in-process, ${(name + ":").padEnd(34)} ${show(r)}; receiver: ${st.udpRx} datagrams in, ` +
        `${st.tunTx} packets in ${st.tunWrites} TUN writes`,
    );
  } finally {
    for (const dp of dps) await dp.close();
  }
}

/**
 * Data-path numbers on the virtual cluster (printed, never asserted):
 * - iperf3 pod-to-pod over vxlan, host-gw and wireguard vs a plain veth pair (ratios), and our
 *   wireguard vs a hand-configured wireguard-go pair between two namespaces;
 * - convergence: 1000 and 5000 peer leases written to etcd → every route in a node's kernel;
 * - latency from a lease put in etcd to its route appearing in a peer's kernel (p50/p99).
 */
import { Cluster, clusterUnavailable } from "../harness/cluster.ts";
import { createNetns, deleteNetns, iperf, type Pod, run } from "../harness/cni.ts";
import { NetlinkKernel } from "../../src/netlink/kernel.ts";
import { openNetlink } from "../../src/netlink/transport/deno_ffi.ts";
import { nullLogger } from "../../src/log/logger.ts";

const why = await clusterUnavailable();
if (why) {
  console.log(`cluster bench skipped: ${why}`);
  Deno.exit(0);
}
const ROOT = new URL("../..", import.meta.url).pathname;
const DENO = `${ROOT}tools/deno/node_modules/.bin/deno`;
const SECONDS = Number(Deno.env.get("BENCH_IPERF_SECONDS") ?? 3);
const gbit = (bps: number) => `${(bps / 1e9).toFixed(2)} Gbit/s`;

/** iperf3 over a bare veth pair between two fresh namespaces: the ceiling. */
async function vethBaseline(): Promise<number> {
  const id = `flt-bench-${Deno.pid}`;
  const a = `${id}-va`, b = `${id}-vb`;
  await createNetns(a);
  await createNetns(b);
  try {
    for (
      const cmd of [
        ["ip", "-n", a, "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", b],
        ["ip", "-n", a, "addr", "add", "198.18.0.1/24", "dev", "v0"],
        ["ip", "-n", b, "addr", "add", "198.18.0.2/24", "dev", "v1"],
        ["ip", "-n", a, "link", "set", "v0", "up"],
        ["ip", "-n", b, "link", "set", "v1", "up"],
      ]
    ) await run(cmd);
    const pa = { name: "va", ns: a, node: 0, ip: "198.18.0.1", gateway: "" } as Pod;
    const pb = { name: "vb", ns: b, node: 0, ip: "198.18.0.2", gateway: "" } as Pod;
    return (await iperf(pa, pb, { seconds: SECONDS })).bitsPerSecond;
  } finally {
    await deleteNetns(a);
    await deleteNetns(b);
  }
}

/** iperf3 over a wireguard-go pair configured by hand with wg, between two namespaces. */
async function wireguardGoBaseline(): Promise<number | undefined> {
  const id = `flt-bench-${Deno.pid}`;
  const a = `${id}-wa`, b = `${id}-wb`;
  await createNetns(a);
  await createNetns(b);
  const keys = async () => {
    const priv = (await run(["wg", "genkey"])).stdout.trim();
    const child = new Deno.Command("wg", { args: ["pubkey"], stdin: "piped", stdout: "piped" }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(priv + "\n"));
    await w.close();
    return { priv, pub: new TextDecoder().decode((await child.output()).stdout).trim() };
  };
  const ka = await keys(), kb = await keys();
  const dir = await Deno.makeTempDir();
  try {
    await run(["ip", "-n", a, "link", "add", "u0", "type", "veth", "peer", "name", "u1", "netns", b]);
    await run(["ip", "-n", a, "addr", "add", "198.19.0.1/24", "dev", "u0"]);
    await run(["ip", "-n", b, "addr", "add", "198.19.0.2/24", "dev", "u1"]);
    await run(["ip", "-n", a, "link", "set", "u0", "up"]);
    await run(["ip", "-n", b, "link", "set", "u1", "up"]);
    // wireguard-go daemonises; each stays in its namespace with its own socket directory.
    // One wireguard-go node: its own mount namespace (private /run/wireguard), its own key file.
    const startNode = (
      ns: string,
      me: { priv: string },
      peer: { pub: string },
      peerIp: string,
      addr: string,
    ) => {
      const key = `${dir}/${ns}.key`;
      const script = `wireguard-go wg0 && echo ${me.priv} > ${key} && wg set wg0 private-key ${key} ` +
        `listen-port 51820 peer ${peer.pub} endpoint ${peerIp}:51820 allowed-ips 10.99.0.0/24 && ` +
        `ip addr add ${addr} dev wg0 && ip link set wg0 mtu 1420 up && sleep 3600`;
      return new Deno.Command("unshare", {
        args: [
          "--mount",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mkdir -p /run/wireguard && mount -t tmpfs x /run/wireguard && exec ip netns exec ${ns} sh -c '${script}'`,
        ],
        stdout: "null",
        stderr: "null",
      }).spawn();
    };
    const ca = startNode(a, ka, kb, "198.19.0.2", "10.99.0.1/24");
    const cb = startNode(b, kb, ka, "198.19.0.1", "10.99.0.2/24");
    const deadline = Date.now() + 10_000;
    while (
      !(await run(["ip", "netns", "exec", a, "ping", "-c1", "-W1", "10.99.0.2"])).stdout.includes(
        " 0% packet loss",
      )
    ) {
      if (Date.now() > deadline) {
        ca.kill("SIGKILL");
        cb.kill("SIGKILL");
        return undefined;
      }
    }
    const pa = { name: "wa", ns: a, node: 0, ip: "10.99.0.1", gateway: "" } as Pod;
    const pb = { name: "wb", ns: b, node: 0, ip: "10.99.0.2", gateway: "" } as Pod;
    const bps = (await iperf(pa, pb, { seconds: SECONDS })).bitsPerSecond;
    ca.kill("SIGKILL");
    cb.kill("SIGKILL");
    await Promise.allSettled([ca.status, cb.status]);
    return bps;
  } finally {
    await run(["sh", "-c", `for p in $(ip netns pids ${a}) $(ip netns pids ${b}); do kill -9 $p; done`]);
    await deleteNetns(a);
    await deleteNetns(b);
    await Deno.remove(dir, { recursive: true });
  }
}

async function podThroughput(backend: string): Promise<number> {
  await using c = await Cluster.start({ nodes: 2, backend });
  await c.waitPeers();
  const [p1, p2] = c.pods;
  const deadline = Date.now() + 10_000;
  while (!(await c.ping(p1!, p2!.ip))) {
    if (Date.now() > deadline) throw new Error(`${backend}: pods cannot reach each other`);
  }
  return (await c.iperf(p1!, p2!, { seconds: SECONDS })).bitsPerSecond;
}

const veth = await vethBaseline();
console.log(`iperf3 plain veth between two namespaces: ${gbit(veth)}`);
for (const backend of ["vxlan", "host-gw", "wireguard"]) {
  const bps = await podThroughput(backend);
  console.log(`iperf3 pod-to-pod over ${backend}: ${gbit(bps)} (${(bps / veth).toFixed(2)}× plain veth)`);
  if (backend === "wireguard") {
    const wg = await wireguardGoBaseline();
    console.log(
      wg === undefined
        ? "iperf3 hand-configured wireguard-go pair: could not be set up"
        : `iperf3 hand-configured wireguard-go pair: ${gbit(wg)} (ours is ${(bps / wg).toFixed(2)}× that)`,
    );
  }
}

// Convergence and latency: one vxlan node; fake peers written straight into etcd.
{
  await using c = await Cluster.start({
    nodes: 1,
    backend: "vxlan",
    podsPerNode: 0,
    netConf: { Network: "10.0.0.0/8", Backend: { Type: "vxlan" } },
  });
  const node = c.node(1);
  const kernel = new NetlinkKernel({ open: openNetlink, netns: node.ns, log: nullLogger });
  const seen = new Map<string, number>();
  const ctl = new AbortController();
  const watching = (async () => {
    for await (const e of kernel.events(ctl.signal)) {
      if (
        e.kind === "route" && e.op === "new" && e.route.dev === "flannel.1" && !seen.has(String(e.route.dst))
      ) {
        seen.set(String(e.route.dst), Date.now());
      }
    }
  })();
  const writer = (args: string[]) =>
    run([
      "ip",
      "netns",
      "exec",
      c.infra,
      DENO,
      "run",
      "-A",
      `${ROOT}tests/bench/lease_writer.ts`,
      c.etcd.endpoint,
      ...args,
    ], 300_000);
  let written = 0;
  for (const total of [1000, 5000]) {
    const add = total - written;
    const res = JSON.parse((await writer(["bulk", String(add), String(written)])).stdout);
    written = total;
    const deadline = Date.now() + 300_000;
    while (seen.size < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const last = Math.max(...seen.values());
    const routes = (await kernel.routeList()).filter((r) => r.dev === "flannel.1").length;
    console.log(
      `convergence, ${add} new leases (${total} peers in all): etcd writes took ${res.end - res.start} ms; ` +
        `all routes in the kernel ${last - res.start} ms after the first write (${routes} routes present)`,
    );
  }
  const paced = JSON.parse((await writer(["paced", "50", String(written), "40"])).stdout).times as Record<
    string,
    number
  >;
  const deadline = Date.now() + 30_000;
  while (Object.keys(paced).some((k) => !seen.has(k)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const lat = Object.entries(paced).map(([k, t]) => (seen.get(k) ?? NaN) - t).filter(Number.isFinite).sort((
    a,
    b,
  ) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!;
  console.log(
    `lease put in etcd → route in the peer's kernel (${written} peers present): p50 ${q(0.5)} ms, p99 ${
      q(0.99)
    } ms (n=${lat.length})`,
  );
  ctl.abort();
  await watching;
  kernel.close();
}

/**
 * The main demo: a virtual cluster on this machine (tests/harness/cluster.ts), built only from
 * network namespaces it creates. Brings up N nodes (default 3) running the bundled dist/flanneld with
 * the chosen backend (default vxlan), prints each node's lease and subnet.env, a pod-to-pod ping
 * matrix and, when iperf3 is installed, pod-to-pod iperf3 throughput for one pair; then tears
 * everything down, also on Ctrl-C.
 *
 *     deno run -A scripts/cluster_demo.ts [--backend vxlan|host-gw|alloc|…] [--nodes 3] [--ipv6]
 *                                         [--direct-routing] [--iperf-seconds 3]
 *
 * Needs root, `deno task bundle` and `bash scripts/cluster_setup.sh`.
 *
 * @module
 */
import { cleanupLeftovers, Cluster, clusterUnavailable, ETCD_PREFIX } from "../tests/harness/cluster.ts";

const USAGE =
  "usage: cluster_demo.ts [--backend TYPE] [--nodes N] [--ipv6] [--direct-routing] [--iperf-seconds S]";
/** How long the demo waits for full connectivity before printing the matrix as it is. */
const CONVERGE_MS = 5_000;

interface DemoArgs {
  backend: string;
  nodes: number;
  ipv6: boolean;
  directRouting: boolean;
  iperfSeconds: number;
}

function parseArgs(argv: string[]): DemoArgs {
  const out: DemoArgs = { backend: "vxlan", nodes: 3, ipv6: false, directRouting: false, iperfSeconds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const [flag = "", inline] = argv[i]!.split(/=(.*)/s, 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new TypeError(`${flag} needs a value\n${USAGE}`);
      return v;
    };
    switch (flag) {
      case "--backend":
        out.backend = value();
        break;
      case "--nodes":
        out.nodes = Number(value());
        if (!Number.isInteger(out.nodes) || out.nodes < 1 || out.nodes > 50) {
          throw new RangeError(`--nodes is ${out.nodes}, must be 1 to 50`);
        }
        break;
      case "--ipv6":
        out.ipv6 = true;
        break;
      case "--direct-routing":
        out.directRouting = true;
        break;
      case "--iperf-seconds":
        out.iperfSeconds = Number(value());
        break;
      case "-h":
      case "--help":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new TypeError(`Unknown argument ${JSON.stringify(argv[i])}\n${USAGE}`);
    }
  }
  return out;
}

function hasIperf3(): boolean {
  return ["/usr/bin/iperf3", "/usr/local/bin/iperf3"].some((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
}

function rate(bps: number): string {
  return bps >= 1e9 ? `${(bps / 1e9).toFixed(2)} Gbit/s` : `${(bps / 1e6).toFixed(1)} Mbit/s`;
}

async function main(): Promise<number> {
  let args: DemoArgs;
  try {
    args = parseArgs(Deno.args);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const why = await clusterUnavailable();
  if (why) {
    console.error(`cluster demo cannot run: ${why}`);
    return 1;
  }
  const stale = await cleanupLeftovers();
  if (stale.length > 0) console.log(`== removed leftovers of earlier runs: ${stale.join(", ")}`);

  const ac = new AbortController();
  let cluster: Cluster | undefined;
  const onSignal = () => {
    if (ac.signal.aborted) return;
    console.log("\n== interrupted: tearing down");
    ac.abort(new Error("interrupted"));
    // Mid-start, Cluster.start tears down itself and throws; after it, tear down here.
    if (cluster) cluster.down().finally(() => Deno.exit(130));
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  const backend: Record<string, unknown> = { Type: args.backend };
  if (args.directRouting) backend.DirectRouting = true;
  console.log(
    `== starting ${args.nodes} nodes, backend ${JSON.stringify(backend)}${args.ipv6 ? ", dual-stack" : ""}`,
  );
  try {
    cluster = await Cluster.start({
      nodes: args.nodes,
      backend,
      ipv6: args.ipv6,
      signal: ac.signal,
      log: (l) => console.log(`   ${l}`),
    });
  } catch (err) {
    if (ac.signal.aborted) return 130;
    console.error(`== cluster start failed: ${(err as Error).message}`);
    return 1;
  }
  const c = cluster;
  try {
    console.log(`== cluster up in ${c.timings.upMs.toFixed(0)} ms (run ${c.runId})`);
    console.log(`== net-conf (${ETCD_PREFIX}/config): ${JSON.stringify(c.netConf)}`);
    console.log(`== leases in etcd (${ETCD_PREFIX}/subnets/)`);
    for (const l of await c.leases()) {
      const subnets = [l.subnet, l.subnet6].filter(Boolean).join(" ");
      console.log(`   ${subnets.padEnd(18)} ${JSON.stringify(l.value)}`);
    }
    for (const n of c.nodes) {
      console.log(`== node ${n.index} (${n.ns}, ${[n.ip, n.ip6].filter(Boolean).join(", ")}): subnet.env`);
      for (const [k, v] of Object.entries(n.env.vars)) console.log(`   ${k}=${v}`);
    }
    await c.waitPeers().catch((e) => console.log(`   (${(e as Error).message})`));

    // Give the data path a moment to converge; print the matrix as it is at the deadline.
    const deadline = Date.now() + CONVERGE_MS;
    for (const ipv6 of args.ipv6 ? [false, true] : [false]) {
      let m = await c.pingMatrix({ ipv6 });
      while (m.failures.length > 0 && Date.now() < deadline && !ac.signal.aborted) {
        m = await c.pingMatrix({ ipv6, timeoutMs: 1_000 });
      }
      const ok = m.ok.flat().filter((v) => v === true).length;
      const pairs = m.pods.length * (m.pods.length - 1);
      console.log(`== pod-to-pod ping, IPv${ipv6 ? 6 : 4}: ${ok}/${pairs} pairs reachable`);
      console.log(m.text.split("\n").map((l) => `   ${l}`).join("\n"));
      for (const pod of m.pods) console.log(`   ${pod.name}: ${ipv6 ? pod.ip6 : pod.ip} on node ${pod.node}`);
    }

    const [a, b] = c.pods.filter((p, i, all) => all.findIndex((q) => q.node === p.node) === i);
    if (!hasIperf3()) {
      console.log("== iperf3: not installed (bash scripts/cluster_setup.sh installs it)");
    } else if (!a || !b) {
      console.log("== iperf3: needs pods on two nodes");
    } else if (!(await c.ping(a, b.ip))) {
      console.log(`== iperf3 ${a.name} -> ${b.name}: skipped, ${b.ip} is unreachable from ${a.name}`);
    } else {
      const r = await c.iperf(a, b, { seconds: args.iperfSeconds });
      const retr = r.retransmits === undefined ? "" : `, ${r.retransmits} retransmits`;
      console.log(
        `== iperf3 ${a.name} -> ${b.name} (${b.ip}), ${r.seconds} s: ${rate(r.bitsPerSecond)}${retr}`,
      );
    }
    return 0;
  } catch (err) {
    if (ac.signal.aborted) return 130;
    console.error(`== demo failed: ${(err as Error).message}`);
    console.error(c.logs());
    return 1;
  } finally {
    await c.down();
    console.log(`== torn down in ${c.timings.downMs.toFixed(0)} ms`);
  }
}

Deno.exit(await main());

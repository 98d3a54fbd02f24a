/**
 * The virtual cluster proving itself with the alloc backend (leases only, no data path): three
 * node namespaces on a switch with a real etcd, the bundled dist/flanneld in each, a pod per node
 * made by the CNI bridge plugin from the node's subnet.env. Pods reach their own node's cni0; pods
 * on other nodes are not expected to be reachable (alloc programs nothing).
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, clusterUnavailable, ETCD_PREFIX } from "../harness/cluster.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";

const skip = await clusterUnavailable();
if (skip) console.log(`skip e2e cluster/alloc: ${skip}`);
else await cleanupLeftovers();

Deno.test({
  name: "e2e cluster/alloc: 3 nodes get distinct leases, pods get addresses from them and reach cni0",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const c = await Cluster.start({ nodes: 3, backend: "alloc" });
    const runId = c.runId;
    try {
      // Each node wrote a subnet.env with a distinct subnet of the network, and holds that lease.
      const subnets = c.nodes.map((n) => IP4Net.parse(n.subnet));
      assert.equal(new Set(subnets.map(String)).size, 3, c.logs());
      const leases = await c.leases();
      for (const [i, n] of c.nodes.entries()) {
        assert.equal(n.env.network, "10.5.0.0/16");
        assert.equal(n.env.mtu, 1500, "FLANNEL_MTU is eth0's MTU for alloc");
        assert.ok(IP4Net.parse("10.5.0.0/16").contains(subnets[i]!));
        const lease = leases.find((l) => l.subnet === subnets[i]!.toString());
        assert.ok(lease, `no lease for ${subnets[i]} in ${JSON.stringify(leases)}`);
        assert.equal(lease.key, `${ETCD_PREFIX}/subnets/${subnets[i]!.toString().replace("/", "-")}`);
        assert.equal(lease.value.PublicIP, n.ip);
      }
      await c.waitPeers();

      // A pod per node, inside its node's subnet, with the node's .1 as gateway; it pings cni0.
      for (const [i, n] of c.nodes.entries()) {
        assert.equal(n.pods.length, 1);
        const pod = n.pods[0]!;
        assert.ok(subnets[i]!.contains(IP4.parse(pod.ip)), `${pod.ip} not in ${subnets[i]}`);
        assert.equal(pod.gateway, n.env.subnet?.split("/")[0]);
        assert.ok(await c.ping(pod, pod.gateway), `${pod.name} cannot ping its gateway ${pod.gateway}`);
        const cni0 = await c.exec(n.index, ["ip", "-j", "addr", "show", "dev", "cni0"]);
        assert.match(cni0.stdout, new RegExp(`"local":"${pod.gateway}","prefixlen":24`));
      }

      // alloc has no data path: the matrix renders, and cross-node pairs fail.
      const m = await c.pingMatrix({ timeoutMs: 1_000 });
      assert.equal(m.failures.length, 6, m.text);
      assert.match(m.text, /✗/);
    } finally {
      await c.down();
      console.log(`cluster up ${c.timings.upMs.toFixed(0)} ms, down ${c.timings.downMs.toFixed(0)} ms`);
    }
    assert.deepEqual((await netnsNames()).filter((n) => n.includes(runId)), []);
    await assert.rejects(Deno.stat(c.dir));
  },
});

Deno.test({
  name: "e2e cluster/alloc: a node joins, a daemon is killed and restarted, a node leaves",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using c = await Cluster.start({ nodes: 2, backend: "alloc" });
    const n3 = await c.addNode();
    assert.equal(n3.index, 3);
    await c.waitPeers();
    const subnet = n3.env.subnet;
    assert.equal(await c.killDaemon(3), 137);
    await c.restartDaemon(3);
    assert.equal(c.node(3).env.subnet, subnet, "a restarted daemon keeps its subnet");
    assert.ok(await c.ping(n3.pods[0]!, n3.pods[0]!.gateway));
    const ns = (await c.exec(3, ["ip", "-br", "link"])).stdout;
    assert.match(ns, /^eth0@/m);
    // A second pod on node 3, then the first one removed through CNI DEL.
    const p2 = await c.addPod(3);
    assert.equal(p2.name, "n3p2");
    assert.ok(await c.ping(p2, n3.pods[0]!.ip), "pods on one node reach each other over cni0");
    const first = n3.pods[0]!;
    await c.removePod(first);
    assert.deepEqual(c.node(3).pods.map((p) => p.name), ["n3p2"]);
    assert.ok(!(await netnsNames()).includes(first.ns));
    await c.removeNode(2);
    assert.deepEqual(c.nodes.map((n) => n.index), [1, 3]);
    assert.equal((await c.leases()).length, 2);
    await c.waitPeers();
  },
});

Deno.test({
  name: "e2e cluster/alloc: with host-gw routes added by hand, every pod pair pings (IPv4 and IPv6)",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // What host-gw will program, done with `ip route` here: proves the pods, cni0, forwarding and
    // the switch are right, so a failing backend test points at the backend.
    await using c = await Cluster.start({ nodes: 3, backend: "alloc", ipv6: true });
    for (const n of c.nodes) {
      for (const peer of c.nodes.filter((p) => p !== n)) {
        const r4 = await c.exec(n.index, ["ip", "route", "add", peer.subnet, "via", peer.ip]);
        const r6 = await c.exec(n.index, ["ip", "-6", "route", "add", peer.subnet6!, "via", peer.ip6!]);
        assert.equal(
          r4.code + r6.code,
          0,
          `node ${n.index}: ${peer.subnet} via ${peer.ip}: ${r4.stderr}${peer.subnet6} via ${peer.ip6}: ${r6.stderr}` +
            `subnets: ${c.nodes.map((x) => `${x.index}=${x.subnet},${x.subnet6}`).join(" ")}\n` +
            (await c.exec(n.index, ["sh", "-c", "ip route; ip -6 route"])).stdout,
        );
      }
    }
    for (const ipv6 of [false, true]) {
      const m = await c.pingMatrix({ ipv6 });
      assert.deepEqual(m.failures, [], m.text);
    }
    const [a, b] = c.pods;
    if (a && b && hasIperf3()) {
      const r = await c.iperf(a, b, { seconds: 1 });
      assert.ok(r.bitsPerSecond > 1e6, `iperf3 ${a.name} -> ${b.name}: ${r.bitsPerSecond} bit/s`);
    }
  },
});

Deno.test({
  name: "e2e cluster/alloc: an aborted start tears down what it had built",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const ac = new AbortController();
    let runId = "";
    const started = Cluster.start({
      nodes: 3,
      signal: ac.signal,
      log: (l) => {
        runId ||= /flt-(\d+-\w+)-infra/.exec(l)?.[1] ?? "";
        if (l.startsWith("node ")) ac.abort(new Error("stop"));
      },
    });
    await assert.rejects(started, /stop|shutting down/);
    assert.notEqual(runId, "");
    assert.deepEqual((await netnsNames()).filter((n) => n.includes(runId)), []);
  },
});

async function netnsNames(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]!).filter(Boolean);
}

function hasIperf3(): boolean {
  try {
    return Deno.statSync("/usr/bin/iperf3").isFile;
  } catch {
    return false;
  }
}

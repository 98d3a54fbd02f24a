/**
 * The udp backend end to end: three node namespaces on a switch with a real etcd, the bundled
 * dist/flanneld in each (its forwarding loop on a Worker started from the bundle), a pod per node.
 * Every pod pair pings across; a destination inside the Network that no node leases answers
 * "Destination Net Unreachable" from the sender's flannel0; a node that leaves takes its subnet
 * out of the others' tables; a restarted daemon reopens flannel0 and traffic resumes.
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, clusterUnavailable } from "../harness/cluster.ts";
import { IP4Net } from "../../src/ip/mod.ts";

const skip = await clusterUnavailable();
if (skip) console.log(`skip e2e cluster/udp: ${skip}`);
else await cleanupLeftovers();

/** An address inside 10.5.0.0/16 in a /24 that no node holds. */
function unleased(subnets: string[]): string {
  for (let third = 255; third > 0; third--) {
    const candidate = `10.5.${third}.0/24`;
    if (!subnets.includes(candidate)) return `10.5.${third}.9`;
  }
  throw new Error("every /24 is leased");
}

Deno.test({
  name: "e2e cluster/udp: 3 nodes, pods ping across, unknown destinations get net unreachable",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using c = await Cluster.start({ nodes: 3, backend: "udp" });
    await c.waitPeers();

    // Leases carry PublicIP only (upstream's udp publishes no BackendType).
    for (const l of await c.leases()) {
      assert.deepEqual(Object.keys(l.value).sort(), ["PublicIP", "PublicIPv6"], JSON.stringify(l.value));
    }
    for (const n of c.nodes) {
      assert.equal(n.env.mtu, 1472, "FLANNEL_MTU is eth0's MTU − 28");
      const [link] = JSON.parse(
        (await c.exec(n.index, ["ip", "-j", "-d", "link", "show", "flannel0"])).stdout,
      );
      assert.equal(link?.linkinfo?.info_kind, "tun", c.logs());
      assert.equal(link.mtu, 1472);
      const addr = (await c.exec(n.index, ["ip", "-4", "-o", "addr", "show", "dev", "flannel0"])).stdout;
      assert.match(addr, new RegExp(`inet ${IP4Net.parse(n.subnet).ip}/32 `));
      const route = (await c.exec(n.index, ["ip", "route", "show", "10.5.0.0/16"])).stdout;
      assert.match(route, /10\.5\.0\.0\/16 dev flannel0 proto 91/);
      const ss = (await c.exec(n.index, ["ss", "-Hlun"])).stdout;
      assert.match(ss, new RegExp(`${n.ip.replaceAll(".", "\\.")}:8285`));
    }

    const m = await c.pingMatrix({ timeoutMs: 3_000 });
    assert.deepEqual(m.failures, [], `${m.text}\n${c.logs()}`);

    // A /24 of the Network that nobody leases: our flannel0 answers for it.
    const target = unleased(c.nodes.map((n) => n.subnet));
    const pod = c.pods[0]!;
    const r = await c.exec(pod, ["ping", "-n", "-c", "1", "-W", "2", target]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stdout,
      new RegExp(`From ${IP4Net.parse(c.node(pod.node).subnet).ip} icmp_seq=1 Destination Net Unreachable`),
      r.stdout + r.stderr,
    );

    // The loop's counters are in /metrics: the pings went out over UDP and came in, and the
    // unleased /24 was answered from flannel0.
    const [, body] = await c.node(pod.node).daemon.http("/metrics");
    const count = (labels: string) =>
      Number(body.match(new RegExp(`^flannel_udp_[a-z_]+_total\\{${labels}\\} (\\d+)$`, "m"))?.[1] ?? -1);
    assert.ok(count('point="udp_send"') > 0, body);
    assert.ok(count('point="udp_receive"') > 0, body);
    assert.ok(count('reason="no_route"') >= 1, body);
    assert.match(body, /^flannel_udp_icmp_unreachable_total [1-9]\d*$/m);
    // …and the datastore's health: etcd answers.
    assert.match(body, /^flannel_datastore_up 1$/m);
    assert.match(body, /^flannel_datastore_requests_total\{result="answered"\} [1-9]\d*$/m);

    // Traffic moves in bulk too (the numbers are the benchmark's job).
    const [a, b] = c.pods;
    if (a && b && exists("/usr/bin/iperf3")) {
      const res = await c.iperf(a, b, { seconds: 1 });
      assert.ok(res.bitsPerSecond > 10e6, `iperf3 ${a.name} -> ${b.name}: ${res.bitsPerSecond} bit/s`);
    }
  },
});

Deno.test({
  name: "e2e cluster/udp: a node leaves, a daemon restarts; the tables follow",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using c = await Cluster.start({ nodes: 3, backend: "udp" });
    await c.waitPeers();
    const [p1, , p3] = c.pods as [typeof c.pods[0], typeof c.pods[0], typeof c.pods[0]];
    assert.ok(await c.ping(p1!, p3!.ip, { timeoutMs: 3_000 }), c.logs());

    // Node 3 leaves: node 1 no longer has a peer for its subnet and says so.
    const gone = p3!.ip;
    await c.removeNode(3);
    await c.waitPeers();
    const r = await c.exec(p1!, ["ping", "-n", "-c", "1", "-W", "2", gone]);
    assert.match(r.stdout, /Destination Net Unreachable/, r.stdout + c.logs());

    // Node 2's daemon restarts: flannel0 goes with the old process and comes back with the new.
    await c.restartDaemon(2);
    await c.waitPeers();
    const p2 = c.node(2).pods[0]!;
    assert.ok(await c.ping(p1!, p2.ip, { timeoutMs: 5_000 }), c.logs());
    assert.ok(await c.ping(p2, p1!.ip, { timeoutMs: 5_000 }), c.logs());
  },
});

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * `flanneld --cleanup` from the bundled binary on a virtual-cluster node (vxlan, `--ip-masq`,
 * `--ip-blackhole-route`): after the daemon stops, the cleanup removes the device, every proto 91
 * route, the masquerade and forward rules, subnet.env, the flannel CNI config and the node's
 * lease in etcd, so the other node drops its routes to it at once; a second run finds nothing.
 * What flannel does not own (the bridge, a CNI config of another plugin's) stays.
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, clusterUnavailable, daemonPrefix } from "../harness/cluster.ts";
import { exists, run } from "../harness/cni.ts";
import { FLANNELD, FLANNELD_PATH, pollUntil } from "../harness/daemon.ts";

const skip = await clusterUnavailable() ??
  ["/usr/sbin/iptables", "/usr/sbin/nft"]
    .map((b) => exists(b) ? undefined : `${b} is not installed: run "bash scripts/cluster_setup.sh"`)
    .find((r) => r !== undefined);
if (skip) console.log(`skip e2e cluster/cleanup: ${skip}`);
else await cleanupLeftovers();

Deno.test({
  name:
    "e2e cluster/cleanup: --cleanup removes what flanneld made on a node, releases its lease, and is idempotent",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using c = await Cluster.start({
      nodes: 2,
      backend: "vxlan",
      keepRunDir: true,
      daemonArgs: ["--ip-masq", "--ip-blackhole-route"],
    });
    await c.waitPeers();
    const [a, b] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
    const cni = `${b.dir}/10-flannel.conflist`;
    await Deno.writeTextFile(cni, `{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel"}]}`);
    const other = `${b.dir}/20-other.conflist`;
    await Deno.writeTextFile(other, `{"name":"x","plugins":[{"type":"bridge"}]}`);
    const sh = async (i: number, cmd: string) => (await c.exec(i, ["sh", "-c", cmd])).stdout;

    // What the daemon leaves behind when it stops (upstream leaves it all, forever).
    await c.killDaemon(b.index, "SIGTERM");
    assert.match(await sh(b.index, "ip -d link show flannel.1"), /vxlan id 1/);
    assert.match(await sh(b.index, "ip route show proto 91"), /blackhole/);
    assert.match(await sh(b.index, "iptables -t nat -S"), /FLANNEL-POSTRTG/);
    assert.ok(exists(b.subnetFile));
    assert.ok((await c.leases()).some((l) => l.subnet === b.subnet));
    assert.match(await sh(a.index, "ip route"), new RegExp(`${b.subnet.replace(/\./g, "\\.")} via`));

    const cleanup = () =>
      run([
        ...daemonPrefix(b.ns, `${b.dir}/run`),
        "env",
        `PATH=${FLANNELD_PATH()}`,
        FLANNELD,
        "--cleanup",
        `--etcd-endpoints=${c.etcd.endpoint}`,
        `--subnet-file=${b.subnetFile}`,
        `--cni-conf-file=${cni}`,
      ]);
    const first = await cleanup();
    const out = first.stdout + first.stderr;
    assert.equal(first.code, 0, out);
    assert.match(out, /Cleanup: Released lease \/coreos\.com\/network\/subnets\//, out);
    assert.match(out, /Cleanup: deleted vxlan device flannel\.1/, out);
    assert.match(out, /Cleanup done: removed lease, flannel\.1, \d+ routes?, /, out);
    assert.doesNotMatch(out, /^E\d{4}| {4}at /m, "no errors, no stack traces");

    assert.equal(await sh(b.index, "ip link show flannel.1 2>/dev/null"), "");
    assert.equal(await sh(b.index, "ip route show proto 91; ip -6 route show proto 91"), "");
    assert.doesNotMatch(await sh(b.index, "iptables -t nat -S; iptables -t filter -S"), /FLANNEL/);
    assert.doesNotMatch(await sh(b.index, "nft list tables"), /flannel/);
    assert.ok(!exists(b.subnetFile), "subnet.env removed");
    assert.ok(!exists(cni), "flannel's CNI config removed");
    assert.ok(exists(other), "another plugin's CNI config kept");
    assert.match(await sh(b.index, "ip link show cni0"), /cni0/, "the bridge is the CNI plugin's");
    assert.ok(!(await c.leases()).some((l) => l.subnet === b.subnet), "lease released");
    // The peer drops its route to the node at once (the lease is gone, not left to expire).
    let routes = "";
    await pollUntil(
      async () => !(routes = await sh(a.index, "ip route")).includes(`${b.subnet} via`),
      10_000,
      () => `node ${a.index} still routes to ${b.subnet}:\n${routes}`,
    );

    const second = await cleanup();
    assert.equal(second.code, 0, second.stdout + second.stderr);
    assert.match(second.stdout + second.stderr, /Cleanup done: nothing of flannel's was left/);
  },
});

/**
 * Masquerade and forward rules on the virtual cluster (issue 5), with `--ip-masq`: iptables mode
 * (host-gw, dual-stack) and nftables mode (`EnableNFTables`, vxlan, IPv4). On every node the rule
 * text equals upstream's golden output (§6.1 and §6.2 of the behaviour reference, as pinned by
 * upstream's e2e suite); a pod reaching an address outside the cluster network (on the switch,
 * which can answer only underlay addresses) is masqueraded to its node's address, seen with
 * tcpdump at the outside end; pod-to-pod traffic keeps the pods' source addresses, seen with
 * tcpdump in the receiving pod.
 */
import assert from "node:assert/strict";
import {
  cleanupLeftovers,
  Cluster,
  type ClusterNode,
  clusterUnavailable,
  type Pod,
} from "../harness/cluster.ts";
import { exists } from "../harness/cni.ts";
import { addOutside, Capture, checkMatrix, pingFast } from "../harness/cluster_net.ts";

const skip = await clusterUnavailable() ??
  ["/usr/sbin/iptables", "/usr/sbin/ip6tables", "/usr/sbin/nft", "/usr/bin/tcpdump"]
    .map((b) => exists(b) ? undefined : `${b} is not installed: run "bash scripts/cluster_setup.sh"`)
    .find((r) => r !== undefined);
if (skip) console.log(`skip e2e cluster/rules: ${skip}`);
else await cleanupLeftovers();

const NETWORK = "10.5.0.0/16";
const NETWORK6 = "2001:db8:5::/48";

/** `iptables -t nat -S FLANNEL-POSTRTG` as upstream's e2e suite pins it (with --random-fully). */
function goldenPostrtg(n: string, p: string, mc: string): string {
  const c = `-m comment --comment "flanneld masq"`;
  return [
    "-N FLANNEL-POSTRTG",
    `-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${p} -d ${n} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${n} -d ${p} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG ! -s ${n} -d ${p} ${c} -j RETURN`,
    `-A FLANNEL-POSTRTG -s ${n} ! -d ${mc} ${c} -j MASQUERADE --random-fully`,
    `-A FLANNEL-POSTRTG ! -s ${n} -d ${n} ${c} -j MASQUERADE --random-fully`,
  ].join("\n");
}

/** `iptables -S FLANNEL-FWD`. */
function goldenFwd(n: string): string {
  const c = `-m comment --comment "flanneld forward"`;
  return ["-N FLANNEL-FWD", `-A FLANNEL-FWD -s ${n} ${c} -j ACCEPT`, `-A FLANNEL-FWD -d ${n} ${c} -j ACCEPT`]
    .join("\n");
}

/** `nft list chain ip flannel-ipv4 postrtg` (upstream's e2e expectation, with fully-random). */
function goldenNftPostrtg(n: string, p: string): string {
  return `table ip flannel-ipv4 {
	chain postrtg {
		comment "chain to manage traffic masquerading by flannel"
		type nat hook postrouting priority srcnat; policy accept;
		meta mark 0x00004000 return
		ip saddr ${p} ip daddr ${n} return
		ip saddr ${n} ip daddr ${p} return
		ip saddr != ${p} ip daddr ${n} return
		ip saddr ${n} ip daddr != 224.0.0.0/4 masquerade fully-random
		ip saddr != ${n} ip daddr ${n} masquerade fully-random
	}
}`;
}

/** `nft list chain ip flannel-ipv4 forward`. */
function goldenNftForward(n: string): string {
  return `table ip flannel-ipv4 {
	chain forward {
		comment "chain to accept flannel traffic"
		type filter hook forward priority filter; policy accept;
		ip saddr ${n} accept
		ip daddr ${n} accept
	}
}`;
}

/** Runs a rule-listing command in a node; its stdout, trimmed. */
async function sh(c: Cluster, n: ClusterNode, argv: string[]): Promise<string> {
  const r = await c.exec(n.index, argv);
  assert.equal(r.code, 0, `${argv.join(" ")} in node ${n.index}: ${r.stderr}`);
  return r.stdout.trim();
}

/**
 * Pings `to` from `pod` while tcpdump (ICMP/ICMPv6 echo requests to `to`) runs in `ns` on `iface`:
 * the source addresses seen there.
 */
async function sourcesSeen(pod: Pod, to: string, ns: string, iface: string): Promise<string[]> {
  const v6 = to.includes(":");
  const filter = v6 ? ["icmp6", "and", "dst", "host", to] : ["icmp", "and", "dst", "host", to];
  const cap = await Capture.start(ns, iface, filter);
  let lines: string[];
  try {
    assert.ok(await pingFast(pod, to, 3_000), `${pod.name} gets no echo reply from ${to}`);
  } finally {
    lines = await cap.stop();
  }
  const re = v6 ? / IP6 (\S+) > \S+: ICMP6, echo request/ : / IP (\S+) > \S+: ICMP echo request/;
  const srcs = lines.map((l) => re.exec(l)?.[1]).filter((s): s is string => s !== undefined);
  assert.ok(srcs.length > 0, `no echo request to ${to} captured:\n${lines.join("\n")}`);
  return [...new Set(srcs)];
}

/** Outside traffic leaves masqueraded as the node's address; pod-to-pod traffic keeps the pod's. */
async function checkMasquerade(c: Cluster, ipv6: boolean): Promise<void> {
  const out = await addOutside(c);
  const [n1, n2] = [c.node(1), c.node(2)];
  const [a, b] = [n1.pods[0]!, n2.pods[0]!];
  assert.deepEqual(await sourcesSeen(a, out.ip4, c.infra, "br0"), [n1.ip], "outside sees the node's address");
  assert.deepEqual(await sourcesSeen(a, b.ip, b.ns, "eth0"), [a.ip], "pod to pod keeps the pod's address");
  assert.deepEqual(await sourcesSeen(b, a.ip, a.ns, "eth0"), [b.ip]);
  if (ipv6) {
    assert.deepEqual(await sourcesSeen(a, out.ip6, c.infra, "br0"), [n1.ip6]);
    assert.deepEqual(await sourcesSeen(a, b.ip6!, b.ns, "eth0"), [a.ip6]);
  }
}

Deno.test({
  name: "e2e cluster/rules: --ip-masq in iptables mode (host-gw, dual-stack): golden rules, masquerade",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using c = await Cluster.start({
      nodes: 2,
      backend: "host-gw",
      ipv6: true,
      daemonArgs: ["--ip-masq"],
    });
    await c.waitPeers();
    await checkMatrix(c, { ipv6: true });

    await t.step("iptables and ip6tables text equals upstream's on every node", async () => {
      for (const n of c.nodes) {
        assert.equal(n.env.ipMasq, true, "FLANNEL_IPMASQ=true");
        for (
          const [cmd, net, sub, mc] of [
            ["iptables", NETWORK, n.subnet, "224.0.0.0/4"],
            ["ip6tables", NETWORK6, n.subnet6!, "ff00::/8"],
          ] as const
        ) {
          assert.equal(
            await sh(c, n, [cmd, "-t", "nat", "-S", "FLANNEL-POSTRTG"]),
            goldenPostrtg(net, sub, mc),
          );
          assert.equal(
            await sh(c, n, [cmd, "-t", "nat", "-S", "POSTROUTING"]),
            `-P POSTROUTING ACCEPT\n-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG`,
          );
          assert.equal(await sh(c, n, [cmd, "-t", "filter", "-S", "FLANNEL-FWD"]), goldenFwd(net));
          assert.equal(
            await sh(c, n, [cmd, "-t", "filter", "-S", "FORWARD"]),
            `-P FORWARD ACCEPT\n-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD`,
          );
        }
        // No nftables-mode state beside it.
        assert.doesNotMatch(await sh(c, n, ["nft", "list", "tables"]), /flannel-ipv[46]/);
      }
    });

    await t.step("a pod reaching outside is masqueraded; pod to pod keeps pod addresses", async () => {
      await checkMasquerade(c, true);
    });
  },
});

Deno.test({
  name: "e2e cluster/rules: --ip-masq in nftables mode (vxlan, IPv4): golden chains, masquerade",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await using c = await Cluster.start({
      nodes: 2,
      backend: "vxlan",
      netConf: { EnableNFTables: true },
      daemonArgs: ["--ip-masq"],
    });
    await c.waitPeers();
    await checkMatrix(c);

    await t.step("nft chains equal upstream's on every node; no iptables chains", async () => {
      for (const n of c.nodes) {
        assert.equal(
          await sh(c, n, ["nft", "list", "chain", "ip", "flannel-ipv4", "postrtg"]),
          goldenNftPostrtg(NETWORK, n.subnet),
        );
        assert.equal(
          await sh(c, n, ["nft", "list", "chain", "ip", "flannel-ipv4", "forward"]),
          goldenNftForward(NETWORK),
        );
        for (const table of ["nat", "filter"]) {
          assert.doesNotMatch(await sh(c, n, ["iptables", "-t", table, "-S"]), /FLANNEL/);
        }
      }
    });

    await t.step("a pod reaching outside is masqueraded; pod to pod keeps pod addresses", async () => {
      await checkMasquerade(c, false);
    });
  },
});

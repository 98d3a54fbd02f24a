/**
 * The kernel-lab scenarios: the data paths this machine's kernel cannot run (ipip, ipsec's ESP,
 * the kernel WireGuard device), end to end on the bundled `dist/flanneld`, in the virtual cluster
 * of tests/harness/cluster.ts. They run INSIDE the kernel-lab VM (Debian's stock kernel under
 * qemu, see README.md beside this file):
 *
 *   tests/kernel_lab/run.sh deno test -A --no-check tests/kernel_lab/lab_test.ts
 *
 * which is what scripts/kernel_lab.sh does. Outside the VM (no `KLAB_VM` in the environment)
 * every test is ignored with one printed reason.
 *
 * Each scenario prints one `lab-timing:` line; on failure the assertion message carries the ping
 * matrix, the kernel state and every daemon's log. KLAB_VERBOSE=1 prints every daemon's log always.
 */
import assert from "node:assert/strict";
import {
  Cluster,
  type ClusterNode,
  clusterUnavailable,
  ETCD_PREFIX,
  type PingMatrix,
} from "../harness/cluster.ts";

const inVm = Deno.env.get("KLAB_VM") === "1";
const skip = !inVm ? "not inside the kernel-lab VM (run scripts/kernel_lab.sh)" : await clusterUnavailable();
if (skip) console.log(`skip kernel lab: ${skip}`);

/** Under TCG a daemon takes seconds to start; be generous, the data path is what is judged. */
const READY_MS = 120_000;
const PING_DEADLINE_MS = 60_000;
const T0 = performance.now();

function labTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: `kernel lab: ${name}`,
    ignore: skip !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const t = performance.now();
      try {
        await fn();
      } finally {
        const s = ((performance.now() - t) / 1000).toFixed(1);
        console.log(`lab-timing: ${name}: ${s} s (lab at ${((performance.now() - T0) / 1000).toFixed(1)} s)`);
      }
    },
  });
}

/** Pings every pair until all answer (tunnels and SAs come up after the daemons are ready). */
async function pingAll(c: Cluster): Promise<PingMatrix> {
  const deadline = Date.now() + PING_DEADLINE_MS;
  for (;;) {
    const m = await c.pingMatrix({ timeoutMs: 3_000 });
    if (m.failures.length === 0 || Date.now() > deadline) return m;
  }
}

/** Runs a command in a node and returns stdout; throws with stderr when it fails. */
async function sh(c: Cluster, node: ClusterNode, argv: string[]): Promise<string> {
  const r = await c.exec(node.index, argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} in node ${node.index}: ${r.stderr.trim()}`);
  return r.stdout;
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** `ip -d -j link show <dev>` of a node. */
async function link(c: Cluster, node: ClusterNode, dev: string): Promise<Json> {
  return JSON.parse(await sh(c, node, ["ip", "-d", "-j", "link", "show", "dev", dev]))[0];
}

/** The node's IPv4 routes, as `ip -j route` objects. */
async function routes(c: Cluster, node: ClusterNode): Promise<Json[]> {
  return JSON.parse(await sh(c, node, ["ip", "-d", "-j", "-4", "route", "show"]));
}

async function counter(c: Cluster, node: ClusterNode, dev: string, stat: string): Promise<number> {
  return Number((await sh(c, node, ["cat", `/sys/class/net/${dev}/statistics/${stat}`])).trim());
}

/** The kernel state of every node and every daemon's log, for failure messages. */
async function state(c: Cluster, extra: string[][] = []): Promise<string> {
  const parts: string[] = [];
  for (const n of c.nodes) {
    for (const argv of [["ip", "-d", "link"], ["ip", "route"], ...extra]) {
      const r = await c.exec(n.index, argv);
      parts.push(`node ${n.index} $ ${argv.join(" ")}\n${r.stdout}${r.stderr}`);
    }
  }
  return `${parts.join("\n")}\n${c.logs()}`;
}

/** Fails with `why()` plus the cluster's state when `cond` is false (the state is only gathered then). */
async function ensure(c: Cluster, cond: unknown, why: string, extra: string[][] = []): Promise<void> {
  if (!cond) assert.fail(`${why}\n${await state(c, extra)}`);
}

/** Pings every pair until all answer, then asserts they all do. */
async function assertAllPing(c: Cluster, extra: string[][] = []): Promise<void> {
  const t = performance.now();
  const m = await pingAll(c);
  console.log(
    `  ping matrix (${((performance.now() - t) / 1000).toFixed(1)} s):\n${m.text.replace(/^/gm, "    ")}`,
  );
  await ensure(c, m.failures.length === 0, `pods do not all reach each other:\n${m.text}`, extra);
}

async function withCluster(
  opts: Parameters<typeof Cluster.start>[0],
  fn: (c: Cluster) => Promise<void>,
): Promise<void> {
  const t = performance.now();
  // Nodes start one after the other: under TCG, each start's readiness polling (a chain of
  // processes every 50 ms) keeps a vCPU busy, and parallel starts starve the daemons themselves.
  const c = await Cluster.start({ readyTimeoutMs: READY_MS, ...opts, nodes: 1 });
  try {
    while (c.nodes.length < (opts?.nodes ?? 3)) await c.addNode();
    c.timings.upMs = performance.now() - t;
    console.log(`  cluster of ${c.nodes.length} up in ${(c.timings.upMs / 1000).toFixed(1)} s`);
    await c.waitPeers(READY_MS);
    await fn(c);
  } finally {
    if (Deno.env.get("KLAB_VERBOSE")) console.log(c.logs());
    await c.down();
  }
}

/** flannel.ipip as the backend makes it, and a route per peer: via flannel.ipip, or eth0 with DirectRouting. */
async function checkIpip(c: Cluster, directRouting: boolean): Promise<void> {
  for (const n of c.nodes) {
    const l = await link(c, n, "flannel.ipip");
    assert.equal(l.linkinfo?.info_kind, "ipip", `node ${n.index}: ${JSON.stringify(l)}`);
    assert.equal(l.linkinfo?.info_data?.local, n.ip, `flannel.ipip local on node ${n.index}`);
    assert.equal(l.linkinfo?.info_data?.remote ?? "any", "any", `flannel.ipip remote on node ${n.index}`);
    assert.equal(l.mtu, 1480, "flannel.ipip MTU is eth0's minus 20");
    assert.equal(n.env.mtu, 1480, "FLANNEL_MTU");
    const rs = await routes(c, n);
    const mine = rs.filter((r) => c.nodes.some((p) => p.subnet === r.dst && p !== n));
    console.log(
      `  node ${n.index} routes: ${mine.map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`).join("; ")}`,
    );
    for (const p of c.nodes.filter((x) => x !== n)) {
      const r = rs.filter((x) => x.dst === p.subnet);
      const want = directRouting ? "eth0" : "flannel.ipip";
      const desc = `node ${n.index}, route to ${p.subnet} (want via ${p.ip} dev ${want}): ${
        JSON.stringify(r)
      }`;
      await ensure(c, r.length === 1 && r[0].gateway === p.ip && r[0].dev === want, desc);
      if (!directRouting) assert.ok(r[0].flags?.includes("onlink"), desc);
    }
  }
}

labTest("ipip, 3 nodes, without then with DirectRouting: pods ping across", async () => {
  await withCluster({ nodes: 3, backend: { Type: "ipip" } }, async (c) => {
    await checkIpip(c, false);
    const rx0 = await Promise.all(c.nodes.map((n) => counter(c, n, "flannel.ipip", "rx_packets")));
    await assertAllPing(c);
    for (const [i, n] of c.nodes.entries()) {
      const rx = await counter(c, n, "flannel.ipip", "rx_packets") - rx0[i]!;
      await ensure(c, rx > 0, `node ${n.index}: flannel.ipip received nothing while pods pinged across`);
    }

    // The same nodes restarted with DirectRouting: every peer shares eth0's subnet, so every route
    // moves from flannel.ipip to eth0 and nothing is encapsulated any more.
    const t = performance.now();
    const netConf = { ...c.netConf, Backend: { Type: "ipip", DirectRouting: true } };
    await c.etcd.etcdctl(["put", `${ETCD_PREFIX}/config`, JSON.stringify(netConf)]);
    for (const n of c.nodes) await c.restartDaemon(n.index);
    await c.waitPeers(READY_MS);
    console.log(`  restarted with DirectRouting in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    for (const n of c.nodes) {
      await ensure(
        c,
        n.daemon.lines.some((l) => l.includes("DirectRouting=true")),
        `node ${n.index} did not take DirectRouting`,
      );
    }
    await checkIpip(c, true);
    const rx1 = await Promise.all(c.nodes.map((n) => counter(c, n, "flannel.ipip", "rx_packets")));
    await assertAllPing(c);
    for (const [i, n] of c.nodes.entries()) {
      const rx = await counter(c, n, "flannel.ipip", "rx_packets") - rx1[i]!;
      await ensure(
        c,
        rx === 0,
        `node ${n.index}: ${rx} packets came through flannel.ipip with DirectRouting`,
      );
    }
  });
});

/** The SAs of `ip -s xfrm state`: endpoints, protocol, reqid, mode and the packets counted. */
function xfrmStates(text: string) {
  return text.split(/^(?=src )/m).filter((b) => b.startsWith("src ")).map((b) => ({
    src: /^src (\S+)/.exec(b)?.[1],
    dst: /^src \S+ dst (\S+)/.exec(b)?.[1],
    proto: /proto (\S+)/.exec(b)?.[1],
    reqid: Number(/reqid (\d+)/.exec(b)?.[1]),
    mode: /mode (\S+)/.exec(b)?.[1],
    packets: Number(/lifetime current:\s*\n\s*\d+\(bytes\), (\d+)\(packets\)/.exec(b)?.[1] ?? 0),
  }));
}

/**
 * charon keeps its pid file and VICI socket in /run (/run/charon.pid, /run/charon.vici), which the
 * nodes of the virtual cluster share (each daemon has private /run/wireguard and /run/flannel
 * only). A real node has its own /run: this shim, found first in PATH, gives charon and its
 * daemon (whose mount namespace it shares) a private /run before it execs the real charon.
 */
async function charonShim(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "klab-charon-" });
  const charon = ["/usr/lib/ipsec/charon", "/usr/lib/strongswan/charon", "/usr/libexec/strongswan/charon"]
    .find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
  if (!charon) {
    throw new Error("charon is not installed (apt-get install strongswan-charon strongswan-swanctl)");
  }
  await Deno.writeTextFile(
    `${dir}/charon`,
    `#!/bin/sh\nmount -t tmpfs klab-run /run || exit 1\nexec ${charon} "$@"\n`,
    { mode: 0o755 },
  );
  return dir;
}

labTest("ipsec, 2 nodes: pods ping across and ip xfrm state shows ESP SAs", async () => {
  const shim = await charonShim();
  const path = Deno.env.get("PATH") ?? "";
  Deno.env.set("PATH", `${shim}:${path}`);
  try {
    const psk = "0123456789abcdef".repeat(6) + "lab";
    await withCluster({ nodes: 2, backend: { Type: "ipsec", PSK: psk } }, async (c) => {
      await assertAllPing(c, [["ip", "xfrm", "state"], ["ip", "xfrm", "policy"]]);
      for (const n of c.nodes) {
        const peer = c.nodes.find((x) => x !== n)!;
        const text = await sh(c, n, ["ip", "-s", "xfrm", "state"]);
        const sas = xfrmStates(text);
        console.log(`  node ${n.index} $ ip -s xfrm state (summary)`);
        for (const x of sas) {
          console.log(`    ${x.src} -> ${x.dst} ${x.proto} reqid ${x.reqid} ${x.mode}: ${x.packets} packets`);
        }
        for (const [src, dst] of [[n.ip, peer.ip], [peer.ip, n.ip]] as const) {
          const esp = sas.filter((x) =>
            x.src === src && x.dst === dst && x.proto === "esp" && x.reqid === 11
          );
          assert.ok(esp.length > 0, `node ${n.index}: no ESP SA ${src} -> ${dst} with reqid 11\n${text}`);
          assert.ok(
            esp.every((x) => x.mode === "tunnel"),
            `node ${n.index}: ESP SA not in tunnel mode\n${text}`,
          );
          assert.ok(
            esp.some((x) => x.packets > 0),
            `node ${n.index}: no pod packet went through an ESP SA ${src} -> ${dst}\n${text}`,
          );
        }
        const policies = await sh(c, n, ["ip", "xfrm", "policy"]);
        for (const dir of ["out", "in", "fwd"]) {
          assert.match(policies, new RegExp(`dir ${dir} [^]*?reqid 11 mode tunnel`), policies);
        }
      }
    });
  } finally {
    Deno.env.set("PATH", path);
    await Deno.remove(shim, { recursive: true }).catch(() => {});
  }
});

labTest("wireguard kernel device, 2 nodes: pods ping across and wg show lists the peers", async () => {
  await withCluster({ nodes: 2, backend: { Type: "wireguard" } }, async (c) => {
    const leases = await c.leases();
    const keyOf = (n: ClusterNode) => {
      const l = leases.find((x) => x.value.PublicIP === n.ip);
      const data = l?.value.BackendData as { PublicKey?: string } | undefined;
      assert.ok(data?.PublicKey, `lease of node ${n.index} has no PublicKey: ${JSON.stringify(l)}`);
      return data.PublicKey;
    };
    for (const n of c.nodes) {
      assert.ok(
        n.daemon.lines.some((l) => l.includes("Using the kernel's WireGuard")),
        `node ${n.index} did not pick the kernel device\n${n.daemon.log()}`,
      );
      const l = await link(c, n, "flannel-wg");
      assert.equal(l.linkinfo?.info_kind, "wireguard", `node ${n.index}: ${JSON.stringify(l)}`);
      const peers = (await sh(c, n, ["wg", "show", "flannel-wg", "peers"])).trim().split("\n");
      const want = c.nodes.filter((x) => x !== n).map(keyOf);
      assert.deepEqual(peers.sort(), want.sort(), `wg show flannel-wg peers on node ${n.index}`);
      const endpoints = await sh(c, n, ["wg", "show", "flannel-wg", "endpoints"]);
      for (const p of c.nodes.filter((x) => x !== n)) {
        assert.ok(
          endpoints.includes(`${keyOf(p)}\t${p.ip}:51820`),
          `endpoints on node ${n.index}:\n${endpoints}`,
        );
      }
    }
    await assertAllPing(c, [["wg", "show"]]);
    for (const n of c.nodes) {
      const hs = await sh(c, n, ["wg", "show", "flannel-wg", "latest-handshakes"]);
      assert.ok(hs.trim().split("\n").every((l) => Number(l.split("\t")[1]) > 0), `no handshake:\n${hs}`);
      console.log(`  node ${n.index} $ wg show\n${(await sh(c, n, ["wg", "show"])).replace(/^/gm, "    ")}`);
    }
  });
});

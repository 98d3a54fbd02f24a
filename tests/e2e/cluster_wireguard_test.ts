/**
 * wireguard on the virtual cluster (issue 6), through wireguard-go (this kernel has no WireGuard),
 * IPv4 with PersistentKeepaliveInterval 25 and dual-stack without: pods ping across; `wg show` on
 * every node lists exactly the other nodes' keys (from their leases) with their endpoints, allowed
 * IPs and keepalive; the underlay carries only UDP to the listen ports while pods ping (no
 * plaintext pod addresses); a node that leaves is removed as a peer everywhere; a restarted
 * daemon reuses its key file and keeps its public key.
 *
 * The first packets between two nodes may start a handshake from both ends at once, which
 * WireGuard resolves only after its 5 s rekey timeout: pings are therefore polled for up to 20 s.
 */
import assert from "node:assert/strict";
import { pollUntil } from "../harness/daemon.ts";
import { cleanupLeftovers, Cluster, type ClusterNode, clusterUnavailable } from "../harness/cluster.ts";
import { exists, run } from "../harness/cni.ts";
import {
  allPairs,
  Capture,
  checkIdlePass,
  checkMatrix,
  knownBug,
  msUntil,
  reachAll,
} from "../harness/cluster_net.ts";

const skip = await clusterUnavailable() ??
  ["/usr/bin/wireguard-go", "/usr/bin/wg", "/usr/bin/tcpdump", "/usr/bin/nsenter"]
    .map((b) => exists(b) ? undefined : `${b} is not installed: run "bash scripts/cluster_setup.sh"`)
    .find((r) => r !== undefined);
if (skip) console.log(`skip e2e cluster/wireguard: ${skip}`);
else await cleanupLeftovers();

/** Ping deadline: three WireGuard rekey timeouts (5 s) and some. */
const PING_MS = 20_000;

/** One peer of `wg show all dump`. */
interface WgPeerDump {
  device: string;
  publicKey: string;
  endpoint: string;
  allowedIPs: string[];
  keepalive: string;
}

/** One device of `wg show all dump`. */
interface WgDeviceDump {
  device: string;
  publicKey: string;
  listenPort: number;
  peers: WgPeerDump[];
}

/**
 * `wg show all dump` in node `index`, entered through its daemon's namespaces (wireguard-go's
 * sockets are in the daemon's private /run/wireguard); private and preshared keys are dropped.
 */
async function wgDump(c: Cluster, index: number): Promise<WgDeviceDump[]> {
  const pid = String(c.node(index).daemon.pid);
  const r = await run(["nsenter", "-t", pid, "-m", "-n", "wg", "show", "all", "dump"]);
  if (r.code !== 0) throw new Error(`wg show all dump in node ${index} failed: ${r.stderr.trim()}`);
  const devices: WgDeviceDump[] = [];
  for (const line of r.stdout.split("\n").filter((l) => l !== "")) {
    const f = line.split("\t");
    if (f.length === 5) {
      // device, private key, public key, listen port, fwmark
      devices.push({ device: f[0]!, publicKey: f[2]!, listenPort: Number(f[3]), peers: [] });
    } else {
      // device, public key, preshared key, endpoint, allowed ips, handshake, rx, tx, keepalive
      devices.find((d) => d.device === f[0])?.peers.push({
        device: f[0]!,
        publicKey: f[1]!,
        endpoint: f[3]!,
        allowedIPs: f[4] === "(none)" ? [] : f[4]!.split(","),
        keepalive: f[8]!,
      });
    }
  }
  return devices;
}

interface Case {
  name: string;
  ipv6: boolean;
  keepalive: number;
}

const CASES: Case[] = [
  { name: "IPv4, keepalive 25", ipv6: false, keepalive: 25 },
  { name: "dual-stack", ipv6: true, keepalive: 0 },
];

/** A node's public key as its lease publishes it (BackendData, and BackendV6Data when dual-stack). */
async function leaseKeys(c: Cluster, n: ClusterNode): Promise<{ v4: string; v6: string | undefined }> {
  const lease = (await c.leases()).find((l) => l.subnet === n.subnet);
  assert.ok(lease, `node ${n.index} has no lease`);
  assert.equal(lease.value.BackendType, "wireguard");
  const key = (d: unknown) => {
    const o = (typeof d === "string" ? JSON.parse(d) : d) as
      | { PublicKey?: string; Port?: number }
      | undefined;
    return o?.PublicKey;
  };
  const v4 = key(lease.value.BackendData);
  assert.ok(v4, `lease of node ${n.index} has no PublicKey: ${JSON.stringify(lease.value)}`);
  return { v4, v6: key(lease.value.BackendV6Data) };
}

/** What `wg show` on node `n` must list: its devices, and on each exactly the other nodes as peers. */
async function expectedDevices(c: Cluster, n: ClusterNode, k: Case): Promise<WgDeviceDump[]> {
  const keepalive = k.keepalive > 0 ? String(k.keepalive) : "off";
  const others = c.nodes.filter((p) => p !== n);
  const keys = new Map(await Promise.all(c.nodes.map(async (p) => [p, await leaseKeys(c, p)] as const)));
  const sorted = (d: WgDeviceDump) => ({
    ...d,
    peers: d.peers.sort((a, b) => a.publicKey < b.publicKey ? -1 : 1),
  });
  const devices = [sorted({
    device: "flannel-wg",
    publicKey: keys.get(n)!.v4,
    listenPort: 51820,
    peers: others.map((p) => ({
      device: "flannel-wg",
      publicKey: keys.get(p)!.v4,
      endpoint: `${p.ip}:51820`,
      allowedIPs: [p.subnet],
      keepalive,
    })),
  })];
  if (k.ipv6) {
    assert.equal(keys.get(n)!.v6, keys.get(n)!.v4, "one key pair for both families");
    devices.push(sorted({
      device: "flannel-wg-v6",
      publicKey: keys.get(n)!.v4,
      listenPort: 51821,
      peers: others.map((p) => ({
        device: "flannel-wg-v6",
        publicKey: keys.get(p)!.v4,
        endpoint: `[${p.ip6}]:51821`,
        allowedIPs: [p.subnet6!],
        keepalive,
      })),
    }));
  }
  return devices;
}

/** `wg show all dump` of node `n`, devices by name and peers by key. */
async function shownDevices(c: Cluster, n: ClusterNode): Promise<WgDeviceDump[]> {
  return (await wgDump(c, n.index))
    .map((d) => ({ ...d, peers: d.peers.sort((a, b) => a.publicKey < b.publicKey ? -1 : 1) }))
    .sort((a, b) => a.device < b.device ? -1 : 1);
}

/**
 * The packets of an underlay capture between two nodes that are not WireGuard (UDP between the
 * listen ports). Packets between a node and anything else (etcd on the switch, a DNS server) are
 * the node's own, not pod traffic (pod addresses are checked apart); ARP and link-local ICMPv6
 * (neighbour discovery, router solicitations, MLD) are fine.
 */
function notWireGuard(lines: string[], nodes: ClusterNode[]): string[] {
  const addrs = new Set(nodes.flatMap((n) => [n.ip, n.ip6]).filter((a): a is string => a !== undefined));
  // tcpdump writes `192.0.2.11.51820` and `2001:db8:1::11.51821`; ICMP has no port.
  const split = (s: string): [string, string | undefined] => {
    if (s.includes(":")) {
      const m = /^(.*)\.(\d+)$/.exec(s);
      return m ? [m[1]!, m[2]] : [s, undefined];
    }
    const f = s.split(".");
    return [f.slice(0, 4).join("."), f[4]];
  };
  const wgPort = (p: string | undefined) => p === "51820" || p === "51821";
  return lines.filter((line) => {
    const m = / IP6? (\S+) > (\S+): (.*)$/.exec(line);
    if (!m) return !/ ARP, /.test(line);
    const [src, dst, rest] = [split(m[1]!), split(m[2]!), m[3]!];
    if (/^ICMP6, (neighbor|router solicitation|multicast listener)/.test(rest)) return false;
    if (!addrs.has(src[0]) || !addrs.has(dst[0])) return false;
    return !(/^UDP, length \d+/.test(rest) && wgPort(src[1]) && wgPort(dst[1]));
  });
}

for (const k of CASES) {
  const idleBug = knownBug(k.ipv6 ? "ipv6RouteMetric" : undefined);
  if (!skip && idleBug) {
    console.log(`ignore e2e cluster/wireguard (${k.name}) idle pass and underlay steps: ${idleBug}`);
  }
  Deno.test({
    name: `e2e cluster/wireguard (${k.name}): pods ping across; wg show; UDP-only underlay; leave; restart`,
    ignore: skip !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const tag = `wireguard ${k.name}`;
      await using c = await Cluster.start({
        nodes: 3,
        backend: { Type: "wireguard", ...(k.keepalive ? { PersistentKeepaliveInterval: k.keepalive } : {}) },
        ipv6: k.ipv6,
        keepRunDir: true,
      });
      await c.waitPeers();

      await t.step("every pod pair pings both ways", async () => {
        const ms = await checkMatrix(c, { ipv6: k.ipv6, deadlineMs: PING_MS });
        console.log(`${tag}: every pair answered after ${ms.toFixed(0)} ms`);
      });

      await t.step("/metrics counts the peers as recently handshaken after the pings", async () => {
        // The counts are as of the last reconcile pass (every 10 s at the latest).
        const n = c.node(1);
        const want = `flannel_wireguard_peers{device="flannel-wg",handshake="recent"} ${c.nodes.length - 1}`;
        let body = "";
        await pollUntil(
          async () => (body = (await n.daemon.http("/metrics"))[1]).includes(want),
          15_000,
          () => body,
        );
      });

      await t.step({
        name: "a pass with no lease change changes nothing (a lease of another type is ignored)",
        ignore: idleBug !== undefined,
        fn: () => checkIdlePass(c),
      });

      await t.step(
        "wg show lists exactly the other nodes' keys, endpoints, allowed IPs, keepalive",
        async () => {
          for (const n of c.nodes) {
            assert.deepEqual(await shownDevices(c, n), await expectedDevices(c, n, k), `node ${n.index}`);
            // The key file: 0400, and its public key is the lease's.
            const file = `${n.dir}/run/wgkey`;
            assert.equal((await Deno.stat(file)).mode! & 0o777, 0o400, `${file} mode`);
            const pub = await run(["sh", "-c", `wg pubkey < '${file}'`]);
            assert.equal(pub.stdout.trim(), (await leaseKeys(c, n)).v4);
          }
        },
      );

      await t.step({
        name: "the underlay carries only UDP to the listen ports while pods ping",
        ignore: idleBug !== undefined, // the IPv6 route flap lets pod packets out in plaintext
        fn: async () => {
          const n1 = c.node(1);
          const cap = await Capture.start(n1.ns, "eth0", ["not", "(", "tcp", "port", "2379", ")"]);
          let lines: string[];
          try {
            const pairs = allPairs(c.pods, { ipv6: k.ipv6 }).filter((p) =>
              p.from.node === 1 || p.to.node === 1
            );
            await reachAll(pairs, { deadlineMs: PING_MS });
            // Then 20 echo requests per pair over a second, to catch a leak that lasts only a moment.
            await Promise.all(pairs.map((p) =>
              run([
                ..."ip netns exec".split(" "),
                p.from.ns,
                ..."ping -n -q -c 20 -i 0.05 -w 3".split(" "),
                (p.ipv6 ? p.to.ip6 : p.to.ip)!,
              ])
            ));
          } finally {
            lines = await cap.stop();
          }
          const pods = c.pods.flatMap((p) => [p.ip, p.ip6]).filter((a): a is string => a !== undefined);
          assert.deepEqual(
            lines.filter((l) => pods.some((a) => l.includes(` ${a} `) || l.includes(` ${a}.`))),
            [],
          );
          assert.deepEqual(notWireGuard(lines, c.nodes), [], "only WireGuard UDP on eth0");
          for (const port of k.ipv6 ? [51820, 51821] : [51820]) {
            const n = lines.filter((l) => l.includes(`.${port} > `) && / UDP, /.test(l)).length;
            assert.ok(n >= 2, `${n} WireGuard packets on port ${port} while pinging:\n${lines.join("\n")}`);
          }
          console.log(`${tag}: ${lines.length} packets on node 1's eth0, all WireGuard UDP (or ARP/ND)`);
        },
      });

      await t.step("a node that leaves is removed as a peer everywhere", async () => {
        const gone = (await leaseKeys(c, c.node(3))).v4;
        await c.removeNode(3);
        const t0 = performance.now();
        const ms = await msUntil(
          async () =>
            (await Promise.all(c.nodes.map((n) => wgDump(c, n.index))))
              .every((devs) => devs.every((d) => d.peers.every((p) => p.publicKey !== gone))),
          { t0, timeoutMs: 5_000, why: () => `node 3's key ${gone} still a peer after 5 s\n${c.logs()}` },
        );
        console.log(`${tag}: leave: peer gone everywhere ${ms.toFixed(0)} ms after its lease was deleted`);
        for (const n of c.nodes) {
          assert.deepEqual(await shownDevices(c, n), await expectedDevices(c, n, k), `node ${n.index}`);
        }
      });

      await t.step("a restarted daemon reuses its key file and keeps its public key", async () => {
        const n1 = c.node(1);
        const file = `${n1.dir}/run/wgkey`;
        const [key, text] = [(await leaseKeys(c, n1)).v4, await Deno.readTextFile(file)];
        await c.restartDaemon(1);
        assert.equal((await leaseKeys(c, n1)).v4, key, "public key in the lease");
        assert.equal(await Deno.readTextFile(file), text, "key file");
        assert.ok(!c.node(1).daemon.lines.some((l) => /Created a WireGuard private key/.test(l)));
        for (const n of c.nodes) {
          assert.deepEqual(await shownDevices(c, n), await expectedDevices(c, n, k), `node ${n.index}`);
        }
        await checkMatrix(c, { ipv6: k.ipv6, deadlineMs: PING_MS });
      });
    },
  });
}

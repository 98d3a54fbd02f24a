/**
 * host-gw on the virtual cluster (issue 4), IPv4 and dual-stack: three nodes whose pods all ping
 * each other through plain routes via the peers' underlay addresses; a fourth node that joins and
 * is reachable within 2 s of its lease; kill -9 and restart of a daemon; a deleted route of ours
 * back within a second; a node that leaves; and the routes of a node deleted while our daemon was
 * down, removed at start-up.
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, clusterUnavailable } from "../harness/cluster.ts";
import {
  checkIdlePass,
  checkJoin,
  checkKillRestart,
  checkLeave,
  checkMatrix,
  checkRouteHeal,
  checkStaleAtStart,
  type KernelView,
  kernelView,
  knownBug,
  marksOf,
  type NodeMarks,
} from "../harness/cluster_net.ts";

const skip = await clusterUnavailable();
if (skip) console.log(`skip e2e cluster/host-gw: ${skip}`);
else await cleanupLeftovers();

/** Deadlines of the issue: join (acceptance) and a deleted route coming back (scope). */
const JOIN_MS = 2_000;
const ROUTE_HEAL_MS = 1_000;

/** What `view` lacks of a peer's routes: its subnets via its underlay addresses on eth0, proto 91. */
function peerProblems(view: KernelView, m: NodeMarks, ipv6: boolean): string[] {
  const fams = [{ subnet: m.subnet, ip: m.ip }];
  if (ipv6) fams.push({ subnet: m.subnet6!, ip: m.ip6! });
  return fams.flatMap((f) => {
    const r = view.routes.find((r) => r.dst === f.subnet);
    return r?.gateway === f.ip && r.dev === "eth0" && r.protocol === "91" && !r.flags?.includes("onlink")
      ? []
      : [`want ${f.subnet} via ${f.ip} dev eth0 proto 91, have ${JSON.stringify(r)}`];
  });
}

for (const ipv6 of [false, true]) {
  const name = ipv6 ? "dual-stack" : "IPv4";
  const idleBug = knownBug(ipv6 ? "ipv6RouteMetric" : undefined);
  if (!skip && idleBug) {
    console.log(
      `ignore e2e cluster/host-gw (${name}) idle pass step, IPv6 while a killed daemon is down: ${idleBug}`,
    );
  }
  Deno.test({
    name: `e2e cluster/host-gw (${name}): pods ping across; join, kill -9, route loss, leave, stale state`,
    ignore: skip !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async (t) => {
      const tag = `host-gw ${name}`;
      await using c = await Cluster.start({ nodes: 3, backend: "host-gw", ipv6 });
      await c.waitPeers();

      await t.step("every pod pair pings both ways, and each kernel routes to every peer", async () => {
        await checkMatrix(c, { ipv6 });
        const marks = await Promise.all(c.nodes.map((n) => marksOf(c, n)));
        for (const n of c.nodes) {
          const view = await kernelView(c, n.index);
          for (const [i, peer] of c.nodes.entries()) {
            if (peer !== n) assert.deepEqual(peerProblems(view, marks[i]!, ipv6), [], `node ${n.index}`);
          }
          assert.equal(view.fdb.filter((f) => f.ifname?.startsWith("flannel")).length, 0);
        }
      });

      await t.step({
        name: "a pass with no lease change changes nothing (a lease of another type is ignored)",
        ignore: idleBug !== undefined,
        fn: () => checkIdlePass(c),
      });

      await t.step(`a 4th node is reachable from all within ${JOIN_MS} ms of its lease`, async () => {
        const j = await checkJoin(c, { ipv6 });
        console.log(
          `${tag}: join: from its lease in etcd, routes on every node ${j.routesMs.toFixed(0)} ms, ` +
            `its pod made ${j.podMs.toFixed(0)} ms, pods ping both ways ${j.pingMs.toFixed(0)} ms`,
        );
        // The daemons' part is the routes; the pod's creation is the harness's (CNI), and under load
        // can take most of the budget: then the pod must answer at once (1 s) once it exists.
        assert.ok(j.routesMs <= JOIN_MS, `node ${j.node.index} routed after ${j.routesMs.toFixed(0)} ms`);
        assert.ok(
          j.pingMs <= Math.max(JOIN_MS, j.podMs + 1_000),
          `node ${j.node.index}'s pod reachable after ${j.pingMs.toFixed(0)} ms (made ${
            j.podMs.toFixed(0)
          } ms)`,
        );
        const m4 = await marksOf(c, j.node);
        for (const n of c.nodes.filter((n) => n !== j.node)) {
          assert.deepEqual(peerProblems(await kernelView(c, n.index), m4, ipv6), [], `node ${n.index}`);
        }
      });

      await t.step("kill -9 of a daemon: pods keep connectivity; the restart keeps the subnet", async () => {
        // A kill in the middle of the IPv6 route flap (known bug) leaves routes missing until the restart.
        await checkKillRestart(c, 2, { ipv6, ipv6WhileDown: idleBug === undefined });
      });

      await t.step(`a deleted route of ours is back within ${ROUTE_HEAL_MS} ms`, async () => {
        const peer = c.node(2);
        for (const dst of [peer.subnet, ...(ipv6 ? [peer.subnet6!] : [])]) {
          const ms = await checkRouteHeal(c, 1, dst);
          console.log(`${tag}: heal: route ${dst} back ${ms.toFixed(0)} ms after ip route del`);
          assert.ok(ms <= ROUTE_HEAL_MS, `route ${dst} back after ${ms.toFixed(0)} ms`);
        }
        await checkMatrix(c, { ipv6 });
      });

      await t.step("a node that leaves is removed from every kernel", async () => {
        const ms = await checkLeave(c, 4);
        console.log(`${tag}: leave: gone from every kernel ${ms.toFixed(0)} ms after its lease was deleted`);
      });

      await t.step("routes of a node deleted while our daemon was down go at start-up", async () => {
        await checkStaleAtStart(c, 1, 3);
        await checkMatrix(c, { ipv6 });
      });
    },
  });
}

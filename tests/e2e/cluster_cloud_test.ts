/**
 * The cloud route backends from the bundled binary: for each of `tencent-vpc`, `aws-vpc`, `gce`
 * and `ali-vpc`, a virtual cluster whose nodes talk to the fake cloud (metadata service and API,
 * signatures or tokens checked) served from the switch namespace, where the nodes reach it. Each
 * node's route to its own subnet is in the cloud before the node reports ready; a daemon restart
 * keeps it without a second route; `--cleanup` on a stopped node removes its route and no other;
 * bad credentials fail registration with the cloud's own code.
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, type ClusterNode, clusterUnavailable } from "../harness/cluster.ts";
import { FLANNELD, FLANNELD_PATH } from "../harness/daemon.ts";

const skip = await clusterUnavailable();
if (skip) console.log(`skip e2e cluster/cloud: ${skip}`);
else await cleanupLeftovers();

const SERVE = new URL("../fakes/cloud/serve.ts", import.meta.url).pathname;

interface CloudCase {
  /** serve.ts's name for the fake. */
  fake: string;
  type: string;
  /** The fake's route line for a node (the fakes know one instance: every node is it). */
  line(n: ClusterNode): RegExp;
  /**
   * The environment change that makes the credentials wrong, and the code the cloud answers (gce
   * has none: its token comes from the metadata server).
   */
  badCredentials?: [Record<string, string>, RegExp];
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
const CASES: CloudCase[] = [
  {
    fake: "tencent",
    type: "tencent-vpc",
    line: (n) => new RegExp(`^${esc(n.subnet)} -> NORMAL_CVM:${esc(n.ip)}$`),
    badCredentials: [{ ACCESS_KEY_SECRET: "wrong" }, /AuthFailure\.SignatureFailure/],
  },
  {
    fake: "aws",
    type: "aws-vpc",
    line: (n) => new RegExp(`^rtb-\\S+ ${esc(n.subnet)} -> i-\\S+ active$`),
    badCredentials: [{ AWS_SECRET_ACCESS_KEY: "wrong" }, /AuthFailure/],
  },
  {
    fake: "gce",
    type: "gce",
    line: (n) =>
      new RegExp(
        `^flannel-${n.subnet.replace(/[./]/g, "-")} ${
          esc(n.subnet)
        } projects/\\S+ -> projects/\\S+/instances/\\S+$`,
      ),
  },
  {
    fake: "ali",
    type: "ali-vpc",
    line: (n) => new RegExp(`^vtb-\\S+ ${esc(n.subnet)} -> Instance i-\\S+ Available$`),
    badCredentials: [{ ACCESS_KEY_SECRET: "wrong" }, /SignatureDoesNotMatch/],
  },
];

for (const cloud of CASES) {
  Deno.test({
    name: `e2e cluster/cloud: ${cloud.type} routes each node's subnet to it, from the bundled binary`,
    ignore: skip !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      let env: Record<string, string> = {};
      await using c = await Cluster.start({ nodes: 0, backend: cloud.type, daemonEnv: () => env });
      const fake = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          c.infra,
          "env",
          `PATH=${FLANNELD_PATH()}`,
          "deno",
          "run",
          "-A",
          "--quiet",
          SERVE,
          cloud.fake,
          "192.0.2.1",
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      try {
        const reader = fake.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let first = "";
        while (!first.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) throw new Error(`the fake ${cloud.fake} exited before it listened: ${first}`);
          first += value;
        }
        const started = JSON.parse(first.split("\n")[0]!) as { env: Record<string, string>; control: string };
        const routes = async () =>
          JSON.parse((await c.exec(c.infra, ["curl", "-sS", started.control])).stdout) as string[];

        env = started.env;
        const nodes = [await c.addNode(), await c.addNode()];
        // Ready means the route is there: the harness waited for /readyz and subnet.env.
        let lines = await routes();
        for (const n of nodes) {
          assert.equal(
            lines.filter((l) => cloud.line(n).test(l)).length,
            1,
            `${n.subnet} in\n${lines.join("\n")}`,
          );
          assert.match(
            n.daemon.log(),
            new RegExp(`${esc(cloud.type)}: created the route for ${esc(n.subnet)}`),
          );
        }
        const leases = (await c.leases()).map((l) => JSON.stringify(l.value)).sort();
        assert.deepEqual(leases, nodes.map((n) => `{"PublicIP":"${n.ip}","PublicIPv6":null}`).sort());

        // A restart finds the route in place and adds nothing.
        const d = await c.restartDaemon(nodes[0]!.index);
        assert.match(
          d.log(),
          new RegExp(`${esc(cloud.type)}: the route for .* to this instance is in place`),
        );
        lines = await routes();
        assert.equal(
          lines.filter((l) => nodes.some((n) => cloud.line(n).test(l))).length,
          2,
          lines.join("\n"),
        );

        // Uninstall one node: --cleanup (same flags and environment) removes its route from the
        // cloud, and only its own.
        const gone = nodes[1]!;
        await c.killDaemon(gone.index, "SIGTERM");
        const cleanup = await c.exec(gone.index, [
          "env",
          `PATH=${FLANNELD_PATH()}`,
          ...Object.entries(started.env).map(([k, v]) => `${k}=${v}`),
          `WIREGUARD_KEY_FILE=${gone.dir}/wgkey`, // never the host's /run/flannel
          FLANNELD,
          "--cleanup",
          `--etcd-endpoints=${c.etcd.endpoint}`,
          `--subnet-file=${gone.subnetFile}`,
          `--cni-conf-file=${gone.dir}/10-flannel.conflist`,
          `--healthz-port=0`,
        ]);
        const said = cleanup.stdout + cleanup.stderr;
        assert.equal(cleanup.code, 0, said);
        assert.match(
          said,
          new RegExp(`Cleanup: Removed the ${esc(cloud.type)} route for ${esc(gone.subnet)}`),
        );
        lines = await routes();
        assert.ok(
          !lines.some((l) => cloud.line(gone).test(l)),
          `${gone.subnet} still in\n${lines.join("\n")}`,
        );
        assert.ok(lines.some((l) => cloud.line(nodes[0]!).test(l)), "the other node's route stays");

        // Wrong credentials: registration fails with the cloud's code, and the daemon exits 1.
        if (cloud.badCredentials) {
          const [change, code] = cloud.badCredentials;
          env = { ...started.env, ...change };
          await assert.rejects(c.addNode(), (e: Error) => {
            assert.match(e.message, code);
            return true;
          });
        }
      } finally {
        fake.kill("SIGKILL");
        await fake.status;
      }
    },
  });
}

/**
 * The cloud route backends from the bundled binary: a virtual cluster whose nodes run
 * `tencent-vpc` against the fake Tencent Cloud (metadata service and VPC API, signatures checked),
 * served from the switch namespace where the nodes reach it. Each node's route to its own subnet
 * is in the VPC's route table, with the node as gateway, before the node reports ready; a daemon
 * restart keeps it without a second route; bad credentials fail registration with Tencent's code.
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, clusterUnavailable } from "../harness/cluster.ts";
import { FLANNELD_PATH } from "../harness/daemon.ts";

const skip = await clusterUnavailable();
if (skip) console.log(`skip e2e cluster/cloud: ${skip}`);
else await cleanupLeftovers();

const SERVE = new URL("../fakes/cloud/serve.ts", import.meta.url).pathname;

Deno.test({
  name: "e2e cluster/cloud: tencent-vpc routes each node's subnet to it in the VPC, from the bundled binary",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    let env: Record<string, string> = {};
    await using c = await Cluster.start({ nodes: 0, backend: "tencent-vpc", daemonEnv: () => env });
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
        "tencent",
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
        if (done) throw new Error(`the fake cloud exited before it listened: ${first}`);
        first += value;
      }
      const started = JSON.parse(first.split("\n")[0]!) as { url: string; env: Record<string, string> };
      const routes = async () =>
        JSON.parse(
          (await c.exec(c.infra, ["curl", "-sS", `${started.url}/_fake/routes`])).stdout,
        ) as string[];

      env = started.env;
      const [a, b] = [await c.addNode(), await c.addNode()];
      // Ready means the route is there: the harness waited for /readyz and subnet.env.
      assert.deepEqual(
        (await routes()).sort(),
        [
          `${a.subnet} -> NORMAL_CVM:${a.ip}`,
          `${b.subnet} -> NORMAL_CVM:${b.ip}`,
        ].sort(),
      );
      assert.match(a.daemon.log(), /tencent-vpc: routes go to VPC vpc-2at5y1pn in ap-guangzhou/);
      assert.match(a.daemon.log(), /tencent-vpc: created the route for /);
      const leases = (await c.leases()).map((l) => JSON.stringify(l.value)).sort();
      assert.deepEqual(leases, [a.ip, b.ip].sort().map((ip) => `{"PublicIP":"${ip}","PublicIPv6":null}`));

      // A restart finds the route in place and adds nothing.
      const d = await c.restartDaemon(a.index);
      assert.match(d.log(), /tencent-vpc: the route for .* to this instance is in place/);
      assert.equal((await routes()).length, 2);

      // Wrong credentials: registration fails with Tencent's code, and the daemon exits 1.
      env = { ...started.env, ACCESS_KEY_SECRET: "wrong" };
      await assert.rejects(c.addNode(), (e: Error) => {
        assert.match(e.message, /AuthFailure\.SignatureFailure/);
        return true;
      });
    } finally {
      fake.kill("SIGKILL");
      await fake.status;
    }
  },
});

/**
 * The extension backend on the virtual cluster: small scripts set and remove the routes
 * (host-gw done by hand), driven by the bundled daemon's SubnetAddCommand/SubnetRemoveCommand,
 * with PreStartupCommand's output published as BackendData.
 */
import assert from "node:assert/strict";
import { cleanupLeftovers, Cluster, clusterUnavailable } from "../harness/cluster.ts";
import { pollUntil } from "../harness/daemon.ts";

const skip = await clusterUnavailable();
if (skip) console.log(`skip e2e cluster/extension: ${skip}`);
else await cleanupLeftovers();
const FIX = new URL("../fixtures/extension/", import.meta.url).pathname;

Deno.test({
  name: "e2e cluster/extension: scripts route the subnets; pods ping across; a departed node's route goes",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using c = await Cluster.start({
      nodes: 3,
      netConf: {
        Network: "10.5.0.0/16",
        Backend: {
          Type: "extension",
          PreStartupCommand: `${FIX}pre-startup.sh`,
          SubnetAddCommand: `${FIX}subnet-add.sh $SUBNET $PUBLIC_IP`,
          SubnetRemoveCommand: `${FIX}subnet-remove.sh $SUBNET`,
        },
      },
    });
    const leases = await c.leases();
    for (const l of leases) {
      assert.equal(l.value.BackendType, "extension");
      assert.match(
        String(l.value.BackendData),
        /^node-.*-data$/,
        "PreStartupCommand's output, as a JSON string",
      );
    }
    await pollUntil(
      async () => (await c.pingMatrix({ timeoutMs: 1000 })).failures.length === 0,
      15_000,
      () => c.logs(),
    );
    const gone = c.node(3).subnet;
    await c.removeNode(3);
    await pollUntil(
      async () => !(await c.exec(1, ["ip", "route"])).stdout.includes(gone.replace(/\.1\/24$/, ".0/24")),
      10_000,
      () => c.logs(),
    );
  },
});

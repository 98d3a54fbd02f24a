/** The dual-stack allocation race (tests/fakes/dual_stack_race.ts) against a real etcd. */
import { createFetch } from "../../src/runtime/http.ts";
import { EtcdClient } from "../../src/lease/etcd/client.ts";
import { EtcdKV } from "../../src/lease/etcd/store.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { etcdAvailable, startEtcd } from "../harness/etcd.ts";
import { checkDualStackRace, DUAL_CONF, PREFIX } from "../fakes/dual_stack_race.ts";

const skip = etcdAvailable();
if (skip) console.log(`Skipping the dual-stack race on etcd: ${skip}`);

Deno.test({
  name: "kv manager (etcd): two nodes that lease one IPv6 subnet at once: the younger gives it up",
  ignore: skip !== undefined,
  fn: async () => {
    await using etcd = await startEtcd();
    const fetch = createFetch({});
    const client = new EtcdClient({ endpoints: [etcd.endpoint], log: new MemoryLogger(), fetch });
    try {
      await client.put(`${PREFIX}/config`, DUAL_CONF);
      await checkDualStackRace(new EtcdKV(client));
    } finally {
      client.close();
      fetch.close();
    }
  },
});

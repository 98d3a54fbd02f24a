import { EtcdClient } from "../../src/lease/etcd/client.ts";
import { EtcdKV } from "../../src/lease/etcd/store.ts";
import { nullLogger } from "../../src/log/logger.ts";
import { etcdAvailable, type EtcdHandle, startEtcd } from "../harness/etcd.ts";
import { leaseStoreSuite } from "./lease_store_suite.ts";

// One etcd for the file; every test starts from an empty keyspace.
let etcd: EtcdHandle | undefined;
const skip = etcdAvailable();

leaseStoreSuite({
  name: "etcd",
  ...(skip ? { skip } : {}),
  async open() {
    etcd ??= await startEtcd();
    const client = new EtcdClient({ endpoints: [etcd.endpoint], log: nullLogger });
    await client.delete("/", { prefix: true });
    const kv = new EtcdKV(client);
    const e = etcd;
    return {
      kv,
      async put(key: string, value: string, ttl = 0) {
        const lease = ttl > 0 ? (await client.grant(ttl)).id : undefined;
        await client.put(key, value, { lease });
      },
      del: (key: string) => client.delete(key).then(() => {}),
      async compact() {
        const { revision } = await client.range("/", { countOnly: true });
        await client.compact(revision);
      },
      restart: () => e.restart(),
      close: () => Promise.resolve(client.close()),
    };
  },
});

Deno.test({
  name: "etcd: stop the test etcd",
  ignore: skip !== undefined,
  async fn() {
    await etcd?.[Symbol.asyncDispose]();
  },
});

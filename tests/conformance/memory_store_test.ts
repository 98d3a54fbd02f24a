import { MemoryKV } from "../../src/lease/memory/kv.ts";
import { leaseStoreSuite } from "./lease_store_suite.ts";

leaseStoreSuite({
  name: "memory",
  open() {
    const kv = new MemoryKV();
    return Promise.resolve({
      kv,
      put: (key: string, value: string, ttl = 0) => Promise.resolve(void kv.put(key, value, ttl)),
      del: (key: string) => kv.delete(key).then(() => {}),
      compact: () => Promise.resolve(kv.compact(kv.revision)),
      close: () => Promise.resolve(kv.close()),
    });
  },
});

/**
 * Dual-stack allocation under a race: two nodes that pick different IPv4 subnets but the same
 * IPv6 subnet at the same moment both create their keys (the keys differ), so the key's
 * compare-and-swap alone cannot fence the IPv6 subnet. The younger key must give it up. The
 * same check runs against a real etcd in tests/integration/kv_manager_dual_etcd_test.ts.
 */
import { MemoryKV } from "../../src/lease/memory/kv.ts";
import { checkDualStackRace, DUAL_CONF, PREFIX } from "../fakes/dual_stack_race.ts";

Deno.test("kv manager (memory): two nodes that lease one IPv6 subnet at once: the younger gives it up", async () => {
  const kv = new MemoryKV();
  kv.put(`${PREFIX}/config`, DUAL_CONF);
  try {
    await checkDualStackRace(kv);
  } finally {
    kv.close();
  }
});

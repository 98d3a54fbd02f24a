/**
 * Daemon numbers (part of `deno task bench`): start-up, memory, lease acquisition.
 *
 * - start-up: from spawning dist/flanneld (alloc backend) to /readyz answering 200, etcd up
 * - idle RSS of that daemon
 * - lease acquisition with 1000 existing leases (in-process subnet manager over the etcd client)
 * - start-up to ready with those 1000 leases present
 */
import { EtcdClient } from "../../src/lease/etcd/client.ts";
import { EtcdKV } from "../../src/lease/etcd/store.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import { IP4 } from "../../src/ip/mod.ts";
import { nullLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { etcdAvailable, startEtcd } from "../harness/etcd.ts";
import { Flanneld, flanneldMissing } from "../harness/daemon.ts";

const skip = etcdAvailable() ?? flanneldMissing();
if (skip) {
  console.log(`bench skipped: ${skip}`);
  Deno.exit(0);
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms, min ${
    s[0]!.toFixed(1)
  } ms (n=${s.length})`;
};

await using etcd = await startEtcd();
const dir = await Deno.makeTempDir({ prefix: "flannel-bench-" });
const client = new EtcdClient({ endpoints: [etcd.endpoint], log: nullLogger });
const PREFIX = "/coreos.com/network";
await client.put(`${PREFIX}/config`, `{"Network":"10.0.0.0/8","Backend":{"Type":"alloc"}}`);

async function startToReady(label: string, runs: number): Promise<void> {
  const times: number[] = [];
  let rssKiB = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await using d = await Flanneld.start([
      `--etcd-endpoints=${etcd.endpoint}`,
      `--subnet-file=${dir}/bench.env`,
      "--iface-can-reach=127.0.0.1",
      `--public-ip=10.255.0.${i + 1}`,
    ]);
    await d.ready(30_000);
    times.push(performance.now() - t0);
    if (i === runs - 1) {
      // Let start-up garbage settle before reading the resident size of the idle daemon.
      await new Promise((r) => setTimeout(r, 2000));
      const status = await Deno.readTextFile(`/proc/${d.pid}/status`);
      rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    }
    await d.stop();
  }
  console.log(`start to ready (${label}): ${stats(times)}`);
  console.log(`idle RSS (${label}): ${(rssKiB / 1024).toFixed(1)} MiB`);
}

await startToReady("etcd up, no other leases", 5);

// 1000 leases of other nodes.
const t0 = performance.now();
for (let b = 0; b < 1000; b += 100) {
  await Promise.all(Array.from({ length: 100 }, (_, j) => {
    const i = b + j;
    return client.put(
      `${PREFIX}/subnets/10.${1 + (i >> 8)}.${i & 255}.0-24`,
      `{"PublicIP":"172.16.${i >> 8}.${i & 255}","PublicIPv6":null}`,
    );
  }));
}
console.log(`writing 1000 leases to etcd: ${(performance.now() - t0).toFixed(0)} ms`);

const m = new KVSubnetManager({
  kv: new EtcdKV(client),
  prefix: PREFIX,
  log: nullLogger,
  clock: systemClock,
});
const acquire: number[] = [];
for (let i = 0; i < 20; i++) {
  const t = performance.now();
  const lease = await m.acquireLease({ publicIP: IP4.parse(`192.168.0.${i + 1}`) });
  acquire.push(performance.now() - t);
  await client.delete(`${PREFIX}/subnets/${lease.subnet.ip}-${lease.subnet.prefixLen}`);
}
console.log(`lease acquisition with 1000 existing leases: ${stats(acquire)}`);

await startToReady("1000 existing leases", 3);
client.close();
await Deno.remove(dir, { recursive: true });

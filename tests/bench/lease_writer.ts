/**
 * Writes fake peer leases (vxlan) into etcd, for the cluster bench. Runs inside the cluster's
 * infra namespace, where etcd listens. Prints one JSON line per mode.
 *
 *   deno run -A lease_writer.ts <endpoint> bulk <count> <first>      all at once, 100 in flight
 *   deno run -A lease_writer.ts <endpoint> paced <count> <first> <ms> one at a time, a pause between
 */
import { EtcdClient } from "../../src/lease/etcd/client.ts";
import { nullLogger } from "../../src/log/logger.ts";

const [endpoint, mode, countText, firstText, pauseText] = Deno.args;
const count = Number(countText);
const first = Number(firstText ?? 0);
const client = new EtcdClient({ endpoints: [endpoint!], log: nullLogger });
const key = (i: number) => `/coreos.com/network/subnets/10.${1 + (i >> 8)}.${i & 255}.0-24`;
const value = (i: number) => {
  const mac = `02:be:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${
    ((i >> 8) & 255).toString(16).padStart(2, "0")
  }:${(i & 255).toString(16).padStart(2, "0")}:01`;
  return `{"PublicIP":"172.16.${(i >> 8) & 255}.${
    i & 255
  }","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`;
};
if (mode === "bulk") {
  const start = Date.now();
  for (let b = first; b < first + count; b += 100) {
    await Promise.all(
      Array.from(
        { length: Math.min(100, first + count - b) },
        (_, j) => client.put(key(b + j), value(b + j)),
      ),
    );
  }
  console.log(JSON.stringify({ start, end: Date.now() }));
} else {
  const times: Record<string, number> = {};
  for (let i = first; i < first + count; i++) {
    times[`10.${1 + (i >> 8)}.${i & 255}.0/24`] = Date.now();
    await client.put(key(i), value(i));
    await new Promise((r) => setTimeout(r, Number(pauseText ?? 50)));
  }
  console.log(JSON.stringify({ times }));
}
client.close();

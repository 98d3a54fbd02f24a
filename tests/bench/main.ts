/**
 * `deno task bench`: runs every benchmark one after another (each as its own process, so they do
 * not disturb each other) and prints their numbers. Nothing is asserted: targets are read by
 * people, never timed tests. Benchmarks that cannot run here print one line saying why.
 *
 *   deno task bench              all of them
 *   deno task bench daemon rules only those named
 */
const here = new URL(".", import.meta.url).pathname;
const ALL: [string, string][] = [
  ["daemon", "start-up to ready, idle RSS, lease acquisition with 1000 existing leases"],
  ["netlink", "netlink: 1000 routes by our FFI batch vs ip -batch, request round trip"],
  ["rules", "iptables/nftables: install time, CPU per idle resync"],
  [
    "cluster",
    "data path: iperf3 per backend vs plain veth, convergence for 1000/5000 peers, lease-to-route latency",
  ],
  ["udp", "udp backend vs vxlan, packets/s"],
];
const wanted = Deno.args.length ? ALL.filter(([n]) => Deno.args.includes(n)) : ALL;
let failed = 0;
for (const [name, what] of wanted) {
  const file = `${here}${name}_bench.ts`;
  console.log(`\n### ${name}: ${what}`);
  try {
    await Deno.stat(file);
  } catch {
    console.log(`(not available: ${file} does not exist yet)`);
    continue;
  }
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", file],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  console.log(
    `(${name} took ${((performance.now() - t0) / 1000).toFixed(1)} s${
      out.success ? "" : `, exit code ${out.code}`
    })`,
  );
  if (!out.success) failed++;
}
if (failed) Deno.exit(1);

/**
 * End to end on the bundled `dist/flanneld` with the alloc backend and a real etcd: what an
 * operator sees. Daemons run on loopback (`--iface-can-reach=127.0.0.1`) with distinct
 * `--public-ip`s, so no network namespace is needed for this backend.
 */
import assert from "node:assert/strict";
import { etcdAvailable, type EtcdHandle, freePort, startEtcd } from "../harness/etcd.ts";
import { Flanneld, flanneldMissing, pollUntil } from "../harness/daemon.ts";

const skip = etcdAvailable() ?? flanneldMissing();
if (skip) console.log(`skip e2e alloc/etcd: ${skip}`);
let etcd: EtcdHandle | undefined;
let dir = "";
let n = 0;

const CONFIG = `{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`;

/** A fresh prefix with the config written; returns the flag builder for daemons on it. */
async function cluster(config = CONFIG) {
  etcd ??= await startEtcd();
  dir ||= await Deno.makeTempDir({ prefix: "flannel-e2e-" });
  const prefix = `/e2e${++n}/network`;
  if (config) await etcd.etcdctl(["put", `${prefix}/config`, config]);
  const e = etcd;
  return {
    prefix,
    etcd: e,
    args: (node: number, extra: string[] = []) => [
      `--etcd-endpoints=${e.endpoint}`,
      `--etcd-prefix=${prefix}`,
      `--subnet-file=${dir}/${n}-${node}.env`,
      "--iface-can-reach=127.0.0.1",
      `--public-ip=10.10.${n}.${node}`,
      ...extra,
    ],
    subnetFile: (node: number) => `${dir}/${n}-${node}.env`,
  };
}

function e2e(name: string, fn: () => Promise<void>) {
  Deno.test({
    name: `e2e alloc/etcd: ${name}`,
    ignore: skip !== undefined,
    sanitizeOps: false,
    sanitizeResources: false,
    fn,
  });
}

e2e("two daemons get distinct subnets and write exact subnet.env files", async () => {
  const c = await cluster();
  await using a = await Flanneld.start(c.args(1));
  await using b = await Flanneld.start(c.args(2));
  await a.ready();
  await b.ready();
  const envA = await Deno.readTextFile(c.subnetFile(1));
  const envB = await Deno.readTextFile(c.subnetFile(2));
  const re =
    /^FLANNEL_NETWORK=10\.5\.0\.0\/16\nFLANNEL_SUBNET=10\.5\.(\d+)\.1\/24\nFLANNEL_MTU=65536\nFLANNEL_IPMASQ=false\n$/;
  const ma = re.exec(envA), mb = re.exec(envB);
  assert.ok(ma, envA);
  assert.ok(mb, envB);
  assert.notEqual(ma[1], mb[1]);
  assert.equal((await Deno.stat(c.subnetFile(1))).mode! & 0o777, 0o644);
  // The lease in etcd is upstream's exact JSON, under upstream's key.
  const value = await c.etcd.etcdctl(["get", "--print-value-only", `${c.prefix}/subnets/10.5.${ma[1]}.0-24`]);
  assert.equal(value.trim(), `{"PublicIP":"10.10.${n}.1","PublicIPv6":null}`);
  // Each sees the other as a peer.
  await pollUntil(async () => (await a.metric("flannel_peer_leases")) === 1, 10_000, () => a.log());
  assert.equal((await a.http("/healthz"))[1], "flanneld is running");
  assert.equal(await a.stop(), 0);
  assert.ok(a.lines.some((l) => l.endsWith("] Exiting cleanly...")));
});

e2e("a daemon restarted with the same public IP gets its subnet back", async () => {
  const c = await cluster();
  const first = await Flanneld.start(c.args(1));
  await first.ready();
  const subnet = (await Deno.readTextFile(c.subnetFile(1))).match(/FLANNEL_SUBNET=(.*)/)![1];
  assert.equal(await first.stop("SIGINT"), 0);
  await Deno.remove(c.subnetFile(1)); // no help from the previous subnet.env: reuse is by public IP
  await using again = await Flanneld.start(c.args(1));
  await again.ready();
  await again.waitFor(
    /Found lease \(ip: 10\.5\.\d+\.0\/24 ipv6: \) for current IP \(10\.10\.\d+\.1\), reusing/,
  );
  assert.equal((await Deno.readTextFile(c.subnetFile(1))).match(/FLANNEL_SUBNET=(.*)/)![1], subnet);
});

e2e("deleting a daemon's lease in etcd makes it exit 0", async () => {
  const c = await cluster();
  await using a = await Flanneld.start(c.args(1));
  await a.ready();
  await a.waitFor(/Waiting for .* to renew lease/);
  const sn = (await Deno.readTextFile(c.subnetFile(1))).match(/FLANNEL_SUBNET=10\.5\.(\d+)\.1/)![1];
  await c.etcd.etcdctl(["del", `${c.prefix}/subnets/10.5.${sn}.0-24`]);
  assert.equal(await a.exited(), 0);
  assert.ok(a.lines.some((l) => l.includes("Lease has been revoked. Shutting down daemon.")), a.log());
});

e2e("a malformed net-conf makes the daemon wait, logging the error once per change", async () => {
  const c = await cluster(`{"Network":"10.5.0.0/16","SubnetLen":31}`);
  await using a = await Flanneld.start(c.args(1));
  await a.waitFor(/Couldn't fetch network config: .*SubnetLen/);
  await pollUntil(
    async () => ((await a.metric("flannel_config_fetch_failures_total").catch(() => 0)) ?? 0) >= 3,
    15_000,
    () => a.log(),
  );
  assert.equal(a.lines.filter((l) => l.includes("Couldn't fetch network config")).length, 1, a.log());
  await c.etcd.etcdctl(["put", `${c.prefix}/config`, `{"Network":"10.5.0.0/16","SubnetLen":33}`]);
  await a.waitFor(/Couldn't fetch network config: .*33/);
  await c.etcd.etcdctl(["put", `${c.prefix}/config`, CONFIG]);
  await a.ready();
  assert.equal(a.lines.filter((l) => l.includes("Couldn't fetch network config")).length, 2, a.log());
});

e2e("a missing net-conf names the key and the etcdctl command", async () => {
  const c = await cluster("");
  await using a = await Flanneld.start(c.args(1));
  const line = await a.waitFor(/Couldn't fetch network config/);
  assert.match(line, /flannel config not found in etcd store.*etcdctl put \/e2e\d+\/network\/config/);
});

e2e("a malformed peer lease is skipped with one warning", async () => {
  const c = await cluster();
  await c.etcd.etcdctl(["put", `${c.prefix}/subnets/10.5.200.0-24`, `{"PublicIP":"nonsense"}`]);
  await c.etcd.etcdctl([
    "put",
    `${c.prefix}/subnets/10.5.201.0-24`,
    `{"PublicIP":"10.99.0.1","PublicIPv6":null}`,
  ]);
  await using a = await Flanneld.start(c.args(1));
  await a.ready();
  await pollUntil(async () => (await a.metric("flannel_peer_leases")) === 1, 10_000, () => a.log());
  assert.equal(
    a.lines.filter((l) => l.includes("Ignoring bad subnet node") && l.includes("10.5.200.0-24")).length,
    1,
    a.log(),
  );
});

e2e("unreachable etcd: the daemon keeps retrying with a clear message", async () => {
  const c = await cluster();
  const deadPort = await freePort(); // nothing listens there
  const args = c.args(1).map((a) =>
    a.startsWith("--etcd-endpoints=") ? `--etcd-endpoints=http://127.0.0.1:${deadPort}` : a
  );
  await using a = await Flanneld.start(args);
  const line = await a.waitFor(/Couldn't fetch network config/);
  assert.ok(line.includes(`127.0.0.1:${deadPort}`), line);
  assert.match(line, /--etcd-endpoints/);
  await pollUntil(
    async () => ((await a.metric("flannel_config_fetch_failures_total").catch(() => 0)) ?? 0) >= 2,
    15_000,
    () => a.log(),
  );
  assert.equal(a.exitCode, undefined, "still running");
  assert.equal(await a.stop(), 0);
});

e2e("the data path stays up and leases follow while etcd restarts", async () => {
  const c = await cluster();
  await using a = await Flanneld.start(c.args(1));
  await a.ready();
  await c.etcd.restart();
  await c.etcd.etcdctl([
    "put",
    `${c.prefix}/subnets/10.5.202.0-24`,
    `{"PublicIP":"10.99.0.2","PublicIPv6":null}`,
  ]);
  await pollUntil(async () => (await a.metric("flannel_peer_leases")) === 1, 20_000, () => a.log());
  assert.equal((await a.http("/readyz"))[0], 200);
});

e2e("an ipsec PSK shorter than 96 characters fails registration with upstream's message", async () => {
  const c = await cluster(`{"Network":"10.5.0.0/16","Backend":{"Type":"ipsec","PSK":"too-short"}}`);
  await using a = await Flanneld.start(c.args(1));
  assert.equal(await a.exited(), 1);
  const line = a.lines.find((l) => l.includes("Error registering network"));
  assert.ok(line, a.log());
  assert.match(
    line,
    /Error registering network: config error, password is too short: Backend "PSK" has 9 characters/,
  );
  assert.ok(!line.includes("too-short"), "the PSK itself is never logged");
});

e2e("bad flags exit 2 with one line and the usage", async () => {
  await using a = await Flanneld.start(["--no-such-flag"]);
  assert.equal(await a.exited(), 2);
  assert.equal(a.lines[0], "flanneld: flag provided but not defined: -no-such-flag");
  assert.equal(a.lines[1], "Usage: flanneld [OPTION]...");
  await using b = await Flanneld.start([
    "--subnet-lease-renew-margin=1440",
    `--etcd-endpoints=http://127.0.0.1:${await freePort()}`,
  ]);
  assert.equal(await b.exited(), 1);
  assert.ok(
    b.lines.some((l) => l.includes("Invalid subnet-lease-renew-margin option, out of acceptable range")),
    b.log(),
  );
});

e2e("--version prints to stderr and exits 0", async () => {
  await using a = await Flanneld.start(["--version"]);
  assert.equal(await a.exited(), 0);
  assert.match(a.lines[0]!, /^v\d+\.\d+\.\d+/);
});

Deno.test({
  name: "e2e alloc/etcd: clean up",
  ignore: skip !== undefined,
  async fn() {
    await etcd?.[Symbol.asyncDispose]();
    if (dir) await Deno.remove(dir, { recursive: true });
  },
});

/**
 * `flanneld --cleanup` against the fake kernel, a memory store and memory files: what is ours
 * goes, what is not stays, every failure is one line and costs the exit code, not the other steps.
 */
import assert from "node:assert/strict";
import { type CleanupDeps, isFlannelCniConf, isFlannelLink, runCleanup } from "../../src/daemon/cleanup.ts";
import { defaultOptions } from "../../src/cli/flags.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import { MemoryKV } from "../../src/lease/memory/kv.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { ToolMissingError, type TrafficManager } from "../../src/rules/mod.ts";
import { systemClock } from "../../src/util/clock.ts";
import { FakeKernel } from "../fakes/fake_kernel.ts";
import { MemFiles } from "../fakes/mem_files.ts";
import type { CloudRouteProvider } from "../../src/backends/cloud/route_backend.ts";
import { eth0NetInfo } from "../fakes/net_info.ts";

const PREFIX = "/coreos.com/network";
const SUBNET_ENV =
  "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n";
const CNI = "/etc/cni/net.d/10-flannel.conflist";
const FLANNEL_CNI = `{"name":"cbr0","cniVersion":"0.3.1","plugins":[{"type":"flannel"},{"type":"portmap"}]}`;

/** A node as a daemon leaves it: devices, routes, a policy, files, a lease. */
function node() {
  const kernel = new FakeKernel();
  kernel.seedLink("eth0", 1500, "192.168.1.10/24");
  kernel.seedRoute({ dst: IP4Net.parse("0.0.0.0/0"), gateway: IP4.parse("192.168.1.1"), dev: "eth0" });
  return kernel;
}

/** The deps every run shares: default flags, no environment. */
function base(log: MemoryLogger, files: MemFiles, kernel: FakeKernel): CleanupDeps {
  return { options: defaultOptions(), log, clock: systemClock, files, kernel, env: () => undefined };
}

function rulesSpy(calls: string[], fail?: Partial<Record<"iptables" | "nftables", Error>>) {
  return (o: { enableNFTables: boolean }) => {
    const mode = o.enableNFTables ? "nftables" : "iptables";
    return {
      mode,
      cleanup: () => {
        calls.push(`cleanup ${mode}`);
        const e = fail?.[mode];
        return e ? Promise.reject(e) : Promise.resolve();
      },
    } as unknown as TrafficManager;
  };
}

Deno.test("cleanup: ours by name and kind together", () => {
  const yes = [
    { name: "flannel.1", kind: "vxlan" },
    { name: "flannel-v6.4096", kind: "vxlan" },
    { name: "flannel.ipip", kind: "ipip" },
    { name: "flannel-wg", kind: "wireguard" },
    { name: "flannel-wg-v6", kind: "tun" },
    { name: "flannel0", kind: "tun" },
  ];
  const no = [
    { name: "flannel.1", kind: "bridge" },
    { name: "flannel0", kind: "veth" },
    { name: "flannel-wg", kind: "vxlan" },
    { name: "cni0", kind: "bridge" },
    { name: "eth0" },
    { name: "flannel.x", kind: "vxlan" },
  ];
  for (const l of yes) assert.ok(isFlannelLink(l), JSON.stringify(l));
  for (const l of no) assert.ok(!isFlannelLink(l), JSON.stringify(l));
  assert.ok(isFlannelCniConf(FLANNEL_CNI));
  assert.ok(isFlannelCniConf(`{"type":"flannel","delegate":{}}`));
  assert.ok(!isFlannelCniConf(`{"plugins":[{"type":"calico"}]}`));
  assert.ok(!isFlannelCniConf("not json"));
});

Deno.test("cleanup: devices, proto 91 routes, reqid 11 policies, rules, files and our lease go; the rest stays", async () => {
  const kernel = node();
  await kernel.linkAdd({ name: "flannel.1", kind: "vxlan", mtu: 1450 });
  await kernel.linkAdd({ name: "flannel-wg", kind: "wireguard", mtu: 1420 });
  await kernel.linkAdd({ name: "cni0", kind: "bridge", mtu: 1450 });
  await kernel.routeReplace({
    dst: IP4Net.parse("10.5.4.0/24"),
    gateway: IP4.parse("192.168.1.11"),
    dev: "eth0",
    protocol: 91,
  });
  await kernel.routeReplace({ dst: IP4Net.parse("10.5.3.0/24"), type: "blackhole", protocol: 91 });
  await kernel.routeReplace({
    dst: IP4Net.parse("172.16.0.0/16"),
    gateway: IP4.parse("192.168.1.1"),
    dev: "eth0",
  });
  const tmpl = { tmplSrc: IP4.parse("192.168.1.10"), tmplDst: IP4.parse("192.168.1.11") };
  await kernel.xfrmPolicyReplace({
    src: IP4Net.parse("10.5.3.0/24"),
    dst: IP4Net.parse("10.5.4.0/24"),
    dir: "out",
    ...tmpl,
    reqid: 11,
  });
  await kernel.xfrmPolicyReplace({
    src: IP4Net.parse("10.9.0.0/24"),
    dst: IP4Net.parse("10.9.1.0/24"),
    dir: "out",
    ...tmpl,
    reqid: 7,
  });
  const files = new MemFiles({
    "/run/flannel/subnet.env": SUBNET_ENV,
    "/run/flannel/wgkey": "key\n",
    [CNI]: FLANNEL_CNI,
    "/etc/hosts": "keep",
  });
  const kv = new MemoryKV();
  const lease = await kv.create(
    `${PREFIX}/subnets/10.5.3.0-24`,
    `{"PublicIP":"192.168.1.10","PublicIPv6":null}`,
    3600,
  );
  assert.ok(lease);
  await kv.create(`${PREFIX}/subnets/10.5.4.0-24`, `{"PublicIP":"192.168.1.11","PublicIPv6":null}`, 3600);
  const log = new MemoryLogger();
  const calls: string[] = [];
  const code = await runCleanup({
    ...base(log, files, kernel),
    createTrafficManager: rulesSpy(calls),
    createManager: () =>
      Promise.resolve(new KVSubnetManager({ kv, prefix: PREFIX, log, clock: systemClock })),
  });
  const text = log.records.map((r) => `${r.level} ${r.msg}`).join("\n");
  assert.equal(code, 0, text);
  const k = kernel.render();
  assert.doesNotMatch(k, /flannel\.1|flannel-wg|10\.5\.4\.0\/24|blackhole|reqid 11/, k);
  assert.match(k, /cni0/);
  assert.match(k, /172\.16\.0\.0\/16 via 192\.168\.1\.1/);
  assert.match(k, /reqid 7/);
  assert.deepEqual(calls, ["cleanup iptables", "cleanup nftables"]);
  assert.deepEqual([...files.files.keys()], ["/etc/hosts"]);
  const left = (await kv.list(`${PREFIX}/subnets/`)).entries.map((e) => e.key);
  assert.deepEqual(left, [`${PREFIX}/subnets/10.5.4.0-24`], "only our lease was released");
  assert.match(text, /info Cleanup: Released lease \/coreos\.com\/network\/subnets\/10\.5\.3\.0-24/);
  assert.match(text, /info Cleanup done: removed lease, flannel\.1, flannel-wg, 2 routes, 1 xfrm policy/);
  kv.close();

  // A second run finds nothing and says so.
  const again = new MemoryLogger();
  const code2 = await runCleanup(base(again, files, kernel));
  assert.equal(code2, 0);
  assert.equal(again.records.at(-1)?.msg, "Cleanup done: nothing of flannel's was left");
});

Deno.test("cleanup: a lease that is not provably ours stays (another node's address, a reservation)", async () => {
  for (
    const [value, ttl, why] of [
      [
        `{"PublicIP":"192.168.1.99","PublicIPv6":null}`,
        3600,
        /Kept lease .*10\.5\.3\.0-24: its PublicIP 192\.168\.1\.99 is not an address of this host/,
      ],
      [`{"PublicIP":"192.168.1.10","PublicIPv6":null}`, 0, /Kept lease .*: it is a reservation \(no TTL\)/],
      [`{"PublicIP":`, 3600, /Kept lease .*: its value is not lease JSON/],
    ] as const
  ) {
    const kv = new MemoryKV();
    if (ttl) await kv.create(`${PREFIX}/subnets/10.5.3.0-24`, value, ttl);
    else kv.put(`${PREFIX}/subnets/10.5.3.0-24`, value);
    const log = new MemoryLogger();
    const code = await runCleanup({
      ...base(log, new MemFiles({ "/run/flannel/subnet.env": SUBNET_ENV }), node()),
      createManager: () =>
        Promise.resolve(new KVSubnetManager({ kv, prefix: PREFIX, log, clock: systemClock })),
    });
    assert.equal(code, 0);
    assert.match(log.records.map((r) => r.msg).join("\n"), why);
    assert.equal((await kv.list(`${PREFIX}/subnets/`)).entries.length, 1);
    kv.close();
  }
});

Deno.test("cleanup: failures are one line each with the fix, the other steps still run, exit 1", async () => {
  const kernel = node();
  await kernel.linkAdd({ name: "flannel.1", kind: "vxlan", mtu: 1450 });
  const files = new MemFiles({
    "/run/flannel/subnet.env": SUBNET_ENV,
    [CNI]: `{"plugins":[{"type":"calico"}]}`,
  });
  const log = new MemoryLogger();
  const calls: string[] = [];
  const code = await runCleanup({
    ...base(log, files, kernel),
    env: (n) => (n === "WIREGUARD_KEY_FILE" ? "/etc/flannel/wg.key" : undefined),
    createTrafficManager: rulesSpy(calls, {
      iptables: new ToolMissingError("iptables", "iptables"),
      nftables: new Error("nft: Could not process rule: Operation not permitted"),
    }),
    createManager: () => Promise.reject(new Error("etcd: connection refused (127.0.0.1:2379)")),
  });
  const lines = log.records.map((r) => `${r.level} ${r.msg}`);
  assert.equal(code, 1, lines.join("\n"));
  const errors = lines.filter((l) => l.startsWith("error"));
  assert.deepEqual(errors, [
    "error Cleanup: cannot reach the subnet store: etcd: connection refused (127.0.0.1:2379); the lease expires by itself within its TTL (24 h); peers keep routes to this node until then",
    "error Cleanup: cannot remove the nftables rules: nft: Could not process rule: Operation not permitted; see docs/rules.md for what to delete by hand",
    "error Cleanup finished with 2 errors (above)",
  ]);
  // The rest still happened: the device went, a missing iptables is no error, a
  // CNI config that is not flannel's stays.
  assert.doesNotMatch(kernel.render(), /flannel\.1/);
  // subnet.env names the lease that could not be released: it stays for a second --cleanup.
  assert.ok(files.files.has("/run/flannel/subnet.env"));
  assert.ok(
    lines.some((l) =>
      /^warn Cleanup: kept \/run\/flannel\/subnet\.env: it names the lease to release/.test(l)
    ),
  );
  assert.ok(
    lines.some((l) =>
      /info Cleanup: no iptables rules to remove \(Cannot run iptables: not installed/.test(l)
    ),
  );
  assert.ok(files.files.has(CNI));
  assert.ok(lines.includes(`info Cleanup: kept ${CNI}: it is not a flannel CNI config`));
  for (const l of lines) assert.doesNotMatch(l, /\n| {4}at /, "no stack traces");
});

Deno.test("cleanup: with a cloud backend, our route leaves the cloud first, found as the daemon finds its address", async () => {
  const kv = new MemoryKV();
  kv.put(`${PREFIX}/config`, `{"Network":"10.5.0.0/16","Backend":{"Type":"TENCENT-vpc","AccessKeyID":"id"}}`);
  await kv.create(`${PREFIX}/subnets/10.5.3.0-24`, `{"PublicIP":"192.168.1.10","PublicIPv6":null}`, 3600);
  const deleted: string[] = [];
  const opened: { extAddr: string; backend: Record<string, unknown> }[] = [];
  const provider: CloudRouteProvider = {
    type: "tencent-vpc",
    open: (ctx) => {
      opened.push({ extAddr: ctx.extAddr.toString(), backend: ctx.backend });
      return Promise.resolve({
        where: "VPC vpc-1",
        ensureRoute: () => Promise.resolve("kept" as const),
        deleteRoute: (subnet) => {
          deleted.push(subnet.toString());
          return Promise.resolve(true);
        },
      });
    },
  };
  const log = new MemoryLogger();
  const code = await runCleanup({
    ...base(log, new MemFiles({ "/run/flannel/subnet.env": SUBNET_ENV }), node()),
    createManager: () =>
      Promise.resolve(new KVSubnetManager({ kv, prefix: PREFIX, log, clock: systemClock })),
    cloudProviders: [provider],
    netInfo: eth0NetInfo,
  });
  const text = log.records.map((r) => `${r.level} ${r.msg}`).join("\n");
  assert.equal(code, 0, text);
  assert.deepEqual(opened, [{
    extAddr: "192.168.1.10",
    backend: { Type: "TENCENT-vpc", AccessKeyID: "id" },
  }]);
  assert.deepEqual(deleted, ["10.5.3.0/24"]);
  assert.match(
    text,
    /info Cleanup: Removed the tencent-vpc route for 10\.5\.3\.0\/24 \(VPC vpc-1\)\ninfo Cleanup: Released lease/,
  );
  assert.match(text, /Cleanup done: removed cloud route, lease/);
  kv.close();
});

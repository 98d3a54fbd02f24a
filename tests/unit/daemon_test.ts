/**
 * The daemon's start-up order and failure exits, with the in-memory store, a fake host view and
 * in-memory files: no process, no etcd.
 */
import assert from "node:assert/strict";
import { runDaemon } from "../../src/daemon/daemon.ts";
import { BackendRegistry, defaultBackends } from "../../src/backends/registry.ts";
import { defaultOptions } from "../../src/cli/flags.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import { MemoryKV } from "../../src/lease/memory/kv.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { MemFiles } from "../fakes/mem_files.ts";
import { eth0NetInfo } from "../fakes/net_info.ts";
import { systemClock } from "../../src/util/clock.ts";
import { Metrics } from "../../src/daemon/metrics.ts";

const PREFIX = "/coreos.com/network";

const net = eth0NetInfo;

const BRIDGE = {
  "/proc/sys/net/bridge/bridge-nf-call-iptables": "1\n",
  "/proc/sys/net/bridge/bridge-nf-call-ip6tables": "1\n",
};

function setup(
  config: string | undefined,
  files = new MemFiles(BRIDGE),
  extra: Partial<ReturnType<typeof defaultOptions>> = {},
) {
  const kv = new MemoryKV();
  if (config !== undefined) kv.put(`${PREFIX}/config`, config);
  const log = new MemoryLogger();
  const metrics = new Metrics();
  const options = { ...defaultOptions(), subnetFile: "/run/flannel/subnet.env", ...extra };
  let manager: KVSubnetManager | undefined;
  const deps = {
    options,
    log,
    clock: systemClock,
    files,
    netInfo: net,
    registry: new BackendRegistry(defaultBackends),
    metrics,
    createManager: (prev: { subnet?: import("../../src/ip/mod.ts").IP4Net }) => {
      manager = new KVSubnetManager({
        kv,
        prefix: PREFIX,
        log,
        clock: systemClock,
        ...(prev.subnet ? { previousSubnet: prev.subnet } : {}),
      });
      return Promise.resolve(manager);
    },
  };
  return { kv, log, files, deps, metrics, close: () => kv.close() };
}

async function until(cond: () => boolean, what: string, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("daemon: start-up writes subnet.env, becomes ready, and exits 0 on abort", async () => {
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`);
  const ctl = new AbortController();
  const run = runDaemon(s.deps, ctl.signal);
  await until(() => s.metrics.value("flannel_ready") === 1, "ready");
  const env = s.files.files.get("/run/flannel/subnet.env")!;
  assert.match(
    env.data,
    /^FLANNEL_NETWORK=10\.5\.0\.0\/16\nFLANNEL_SUBNET=10\.5\.\d+\.1\/24\nFLANNEL_MTU=1500\nFLANNEL_IPMASQ=false\n$/,
  );
  assert.equal(env.mode, 0o644);
  ctl.abort();
  assert.equal(await run, 0);
  const infos = s.log.messages("info");
  const order = [
    "Created subnet manager:",
    "Found network config - Backend type: alloc",
    "Using interface with name eth0",
    "Allocated lease",
    "Wrote subnet file to /run/flannel/subnet.env",
    "flannel is ready",
    "Exiting cleanly...",
  ];
  let at = -1;
  for (const o of order) {
    const i = infos.findIndex((m, k) => k > at && m.startsWith(o));
    assert.ok(i > at, `"${o}" logged after the previous step: ${JSON.stringify(infos)}`);
    at = i;
  }
  assert.equal(s.metrics.value("flannel_ready"), 0, "not ready after shutdown");
  s.close();
});

Deno.test("daemon: the previous subnet.env's subnet is reused", async () => {
  const files = new MemFiles({
    ...BRIDGE,
    "/run/flannel/subnet.env": "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.77.1/24\n",
  });
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`, files);
  const ctl = new AbortController();
  const run = runDaemon(s.deps, ctl.signal);
  await until(() => s.metrics.value("flannel_ready") === 1, "ready");
  assert.match(files.files.get("/run/flannel/subnet.env")!.data, /FLANNEL_SUBNET=10\.5\.77\.1\/24/);
  assert.ok(s.log.messages().includes("Found previously leased subnet (10.5.77.0/24), reusing"));
  ctl.abort();
  assert.equal(await run, 0);
  s.close();
});

Deno.test("daemon: an unknown backend exits 1 naming the known ones", async () => {
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"VXLAN-ish"}}`);
  assert.equal(await runDaemon(s.deps, new AbortController().signal), 1);
  assert.ok(
    s.log.messages("error").some((m) =>
      m ===
        "Error fetching backend: unknown backend type: vxlan-ish: set Backend.Type in net-conf.json to one of ali-vpc, alloc, aws-vpc, extension, gce, host-gw, ipip, ipsec, tencent-vpc, udp, vxlan, wireguard"
    ),
    JSON.stringify(s.log.messages("error")),
  );
  s.close();
});

Deno.test("daemon: no IP family enabled exits 1", async () => {
  const s = setup(`{"Network":"10.5.0.0/16","EnableIPv4":false,"Backend":{"Type":"alloc"}}`);
  assert.equal(await runDaemon(s.deps, new AbortController().signal), 1);
  assert.ok(s.log.messages("error").some((m) => m.startsWith("none defined stack")));
  s.close();
});

Deno.test("daemon: a missing br_netfilter exits 1 with the modprobe hint, unless nftables mode", async () => {
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`, new MemFiles());
  assert.equal(await runDaemon(s.deps, new AbortController().signal), 1);
  assert.ok(
    s.log.messages("error").some((m) =>
      m.startsWith("Failed to check br_netfilter") && m.endsWith("modprobe br_netfilter")
    ),
  );
  s.close();
  const t = setup(
    `{"Network":"10.5.0.0/16","EnableNFTables":true,"Backend":{"Type":"alloc"}}`,
    new MemFiles(),
  );
  const ctl = new AbortController();
  const run = runDaemon(t.deps, ctl.signal);
  await until(() => t.metrics.value("flannel_ready") === 1, "ready");
  ctl.abort();
  assert.equal(await run, 0);
  t.close();
});

Deno.test("daemon: no usable interface exits 1", async () => {
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`, undefined, {
    iface: ["nonexistent0"],
  });
  assert.equal(await runDaemon(s.deps, new AbortController().signal), 1);
  assert.ok(s.log.messages("error").some((m) => m.startsWith("Failed to find interface to use")));
  s.close();
});

Deno.test("daemon: a revoked lease ends the daemon with exit 0; a lost one with exit 1", async () => {
  for (const [action, code] of [["delete", 0], ["overwrite", 1]] as const) {
    const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`);
    const run = runDaemon(s.deps, new AbortController().signal);
    await until(() => s.metrics.value("flannel_ready") === 1, "ready");
    const { entries } = await s.kv.list(`${PREFIX}/subnets/`);
    const key = entries[0]!.key;
    if (action === "delete") await s.kv.delete(key);
    else s.kv.put(key, `{"PublicIP":"9.9.9.9","PublicIPv6":null}`);
    assert.equal(await run, code, action);
    s.close();
  }
});

Deno.test("daemon: --ip-masq warns that no rules are installed yet", async () => {
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`, undefined, { ipMasq: true });
  const ctl = new AbortController();
  const run = runDaemon(s.deps, ctl.signal);
  await until(() => s.metrics.value("flannel_ready") === 1, "ready");
  assert.match(s.files.files.get("/run/flannel/subnet.env")!.data, /FLANNEL_IPMASQ=true/);
  assert.ok(s.log.messages("warn").some((m) => m.includes("installs no traffic rules")));
  ctl.abort();
  await run;
  s.close();
});

Deno.test("backend registry: duplicates are refused, lookups are case-insensitive", () => {
  const alloc = defaultBackends.find((b) => b.type === "alloc")!;
  assert.throws(() => new BackendRegistry([alloc, alloc]), /registered twice/);
  assert.equal(new BackendRegistry([alloc]).get("ALLOC"), alloc);
});

Deno.test("daemon: with vxlan, ready only after the first reconcile pass; kernel holds the device", async () => {
  const { FakeKernel } = await import("../fakes/fake_kernel.ts");
  const kernel = new FakeKernel();
  kernel.seedLink("eth0", 1500, "192.168.1.10/24");
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`);
  s.kv.put(
    `${PREFIX}/subnets/10.5.200.0-24`,
    `{"PublicIP":"192.168.1.20","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:20"}}`,
  );
  const ctl = new AbortController();
  const run = runDaemon({ ...s.deps, kernel }, ctl.signal);
  await until(() => s.metrics.value("flannel_ready") === 1, "ready");
  assert.match(s.files.files.get("/run/flannel/subnet.env")!.data, /FLANNEL_MTU=1450/);
  assert.ok(
    kernel.render().includes("10.5.200.0/24 via 10.5.200.0 dev flannel.1 proto 91 onlink"),
    kernel.render(),
  );
  assert.ok((s.metrics.value("flannel_reconcile_passes_total") ?? 0) >= 1);
  ctl.abort();
  assert.equal(await run, 0);
  assert.ok(kernel.render().includes("flannel.1 vxlan"), "the data path stays up after the daemon stops");
  s.close();
});

Deno.test("daemon: traffic rules are set up in upstream's order; a failed masquerade setup exits 1", async () => {
  for (const failInit of [false, true]) {
    const calls: string[] = [];
    const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`, undefined, { ipMasq: true });
    const fake = {
      mode: "iptables" as const,
      cleanupOtherMode: () => Promise.resolve(void calls.push("cleanupOtherMode")),
      init: () =>
        failInit
          ? Promise.reject(new Error("iptables-restore is not installed"))
          : Promise.resolve(void calls.push("init")),
      setupMasq: () => Promise.resolve(void calls.push("setupMasq")),
      setupForward: () => Promise.resolve(void calls.push("setupForward")),
      setupBlackhole: () => void calls.push("setupBlackhole"),
      reconcile: () => Promise.resolve({ changed: false, repairs: [] }),
      run: (signal: AbortSignal) =>
        new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true })),
      cleanup: () => Promise.resolve(),
    };
    const ctl = new AbortController();
    const run = runDaemon({ ...s.deps, createTrafficManager: () => fake }, ctl.signal);
    if (failInit) {
      assert.equal(await run, 1);
      assert.ok(
        s.log.messages("error").some((m) =>
          m === "Failed to set up IP Masquerade: iptables-restore is not installed"
        ),
      );
    } else {
      await until(() => s.metrics.value("flannel_ready") === 1, "ready");
      assert.deepEqual(calls, ["cleanupOtherMode", "init", "setupMasq", "setupForward"]);
      ctl.abort();
      assert.equal(await run, 0);
    }
    s.close();
  }
});

Deno.test("daemon: a backend's own numbers are in /metrics at every scrape; a failing collector costs nothing else", async () => {
  const alloc = defaultBackends.find((b) => b.type === "alloc")!;
  let scrapes = 0;
  const counting = {
    type: "alloc",
    async register(ctx: Parameters<typeof alloc.register>[0]) {
      const n = await alloc.register(ctx);
      return {
        ...n,
        run: n.run.bind(n),
        close: n.close.bind(n),
        collectMetrics(sink: import("../../src/daemon/metrics.ts").MetricsSink) {
          scrapes++;
          sink.counter("flannel_test_things_total", "Things", 40 + scrapes);
        },
      };
    },
  };
  const s = setup(`{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}`);
  s.metrics.collect(() => {
    throw new Error("broken collector");
  });
  const ctl = new AbortController();
  const run = runDaemon({ ...s.deps, registry: new BackendRegistry([counting]) }, ctl.signal);
  await until(() => s.metrics.value("flannel_ready") === 1, "ready");
  assert.match(
    s.metrics.render(),
    /# TYPE flannel_test_things_total counter\nflannel_test_things_total 41\n/,
  );
  assert.match(s.metrics.render(), /flannel_test_things_total 42\n/, "collected again at the next scrape");
  assert.match(s.metrics.render(), /flannel_ready 1/);
  ctl.abort();
  assert.equal(await run, 0);
  s.close();
});

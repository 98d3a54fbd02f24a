/**
 * The udp backend against the fake kernel and a fake data path: what goes into the kernel (the
 * TUN device's MTU, /32 address, up, the Network route), what the lease publishes, which peers
 * the forwarding table gets, and the options.
 */
import assert from "node:assert/strict";
import {
  createUdpBackend,
  type DataPath,
  type DataPathOptions,
  type DataPathStats,
  udpBackend,
  type UdpHost,
  zeroStats,
} from "../../src/backends/udp/mod.ts";
import type { PeerRoute } from "../../src/backends/udp/packet.ts";
import { RTPROT_FLANNEL } from "../../src/backends/reconcile.ts";
import { IP4 } from "../../src/ip/mod.ts";
import type { FakeKernel } from "../fakes/fake_kernel.ts";
import { BackendRig, peer } from "../fakes/backend_harness.ts";
import { Metrics } from "../../src/daemon/metrics.ts";

/** A data path that "creates" flannel<n> in the fake kernel, as TUNSETIFF would. */
class FakeDataPaths {
  readonly opened: DataPathOptions[] = [];
  readonly sysctls: string[] = [];
  peers: readonly PeerRoute[] = [];
  closed = 0;
  /** What the data path opened last reports (each open starts again from zero, as a real one). */
  stats: DataPathStats = zeroStats();
  /** Kills the loop of the data path opened last, as a crashed thread would. */
  die: (e: Error) => void = () => {};

  constructor(readonly kernel: FakeKernel) {}

  /** When set, open() waits for it (a reopen in progress, for scrapes meanwhile). */
  gate: Promise<void> | undefined;

  open = async (o: DataPathOptions): Promise<DataPath> => {
    this.opened.push(o);
    await this.gate;
    this.stats = zeroStats();
    const names = (await this.kernel.linkList()).map((l) => l.name);
    let n = 0;
    while (names.includes(`flannel${n}`)) n++;
    const tunName = o.tunName.replace("%d", String(n));
    await this.kernel.linkAdd({ name: tunName, kind: "tun", mtu: 1500 });
    let closed = false;
    return {
      tunName,
      port: o.port,
      features: [],
      failed: new Promise<Error>((res) => (this.die = res)),
      setPeers: (p) => void (this.peers = p),
      stats: () => ({ ...this.stats }),
      setDeviceSysctl: (name, value) => void this.sysctls.push(`${tunName}/${name}=${value}`),
      close: async () => {
        if (closed) return;
        closed = true;
        this.closed++;
        if (await this.kernel.linkGet(tunName)) await this.kernel.linkDel(tunName);
      },
    };
  };
}

/** A started udp backend over the fake data paths, with the default Network. */
async function startUdp(): Promise<{ r: BackendRig; dps: FakeDataPaths }> {
  const r = new BackendRig();
  const ext = r.seedHost();
  const dps = new FakeDataPaths(r.kernel);
  await r.start(
    createUdpBackend({ openDataPath: dps.open }),
    `{"Network":"10.5.0.0/16","Backend":{"Type":"udp"}}`,
    ext,
  );
  return { r, dps };
}

const text = (p: PeerRoute) =>
  `${IP4.fromNumber(p.net)}/${Math.clz32(~p.mask)} -> ${IP4.fromNumber(p.addr)}:${p.port}`;

Deno.test("udp: flannel0 with MTU − 28, the /32, up, the Network route; lease has PublicIP only", async () => {
  const { r, dps } = await startUdp();
  try {
    assert.equal(r.network.mtu, 1472);
    assert.equal(r.network.reconciles, true);
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.equal(
      entries[0]!.value,
      `{"PublicIP":"192.168.1.10","PublicIPv6":null}`,
      "no BackendType, as upstream",
    );
    const o = dps.opened[0]!;
    const subnet = r.network.lease.subnet;
    assert.deepEqual(
      {
        ...o,
        tunAddr: IP4.fromNumber(o.tunAddr).toString(),
        bindAddr: IP4.fromNumber(o.bindAddr).toString(),
      },
      {
        tunName: "flannel%d",
        tunAddr: subnet.ip.toString(),
        bindAddr: "192.168.1.10",
        port: 8285,
        mtu: 1472,
        maxPeers: 256,
      },
    );
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", { backendType: "vxlan" }), // upstream ignores the type
      peer("10.5.3.0/24", "192.168.1.12"),
      peer("10.5.4.0/24", "0.0.0.0"),
    );
    const t = await r.until((t) => t.includes("10.5.0.0/16"));
    assert.ok(t.includes("flannel0 tun mtu 1472"), t);
    assert.match(t, /flannel0 tun mtu 1472 addr \S+ up/);
    assert.ok(t.includes(`${subnet.ip}/32 dev flannel0`), t);
    assert.ok(t.includes(`10.5.0.0/16 dev flannel0 proto ${RTPROT_FLANNEL}`), t);
    assert.deepEqual(dps.peers.map(text), [
      "10.5.2.0/24 -> 192.168.1.11:8285",
      "10.5.3.0/24 -> 192.168.1.12:8285",
    ]);
    assert.deepEqual(dps.sysctls.slice(0, 1), ["flannel0/accept_local=1"]);

    // A peer leaves: the table follows.
    r.leases(peer("10.5.3.0/24", "192.168.1.12"));
    await r.nextPass();
    assert.deepEqual(dps.peers.map(text), ["10.5.3.0/24 -> 192.168.1.12:8285"]);

    // Someone deletes the device: the next pass reopens it and reprograms the route.
    await r.kernel.linkDel("flannel0");
    await r.until((t) => t.includes(`10.5.0.0/16 dev flannel0 proto ${RTPROT_FLANNEL}`));
    assert.equal(dps.opened.length, 2);
    assert.equal(dps.closed, 1);
  } finally {
    await r.stop();
  }
  assert.equal(dps.closed, 2, "close() closes the data path, which removes the device");
  assert.doesNotMatch(r.kernel.render(), /flannel0/);
});

Deno.test("udp: a data path whose loop dies is reopened at once, not at the next resync", async () => {
  const { r, dps } = await startUdp();
  try {
    r.leases(peer("10.5.2.0/24", "192.168.1.11"));
    await r.until((t) => t.includes("10.5.0.0/16 dev flannel0"));
    assert.equal(dps.opened.length, 1);
    dps.die(new Error("The udp forwarding thread udp-tun failed: RangeError: offset is out of bounds"));
    // No lease change and no kernel event: the loop's own death asks for the pass.
    const deadline = Date.now() + 5_000;
    while (dps.opened.length < 2 && Date.now() < deadline) await r.nextPass();
    assert.equal(dps.opened.length, 2, "the data path was reopened");
    assert.equal(dps.closed, 1, "the dead one was closed first");
    assert.deepEqual(dps.peers.map(text), ["10.5.2.0/24 -> 192.168.1.11:8285"], "the new loop has the peers");
    const logs = r.log.records.map((l) => l.msg).join("\n");
    assert.match(logs, /udp-tun failed: RangeError: offset is out of bounds; packets through flannel0 stop/);
    assert.match(logs, /Reopening the udp data path \(TUN device flannel0\) after its loop stopped/);
  } finally {
    await r.stop();
  }
});

Deno.test("udp: Port option; errors name the option; IPv4 only", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  const dps = new FakeDataPaths(r.kernel);
  const udp = createUdpBackend({ openDataPath: dps.open });
  await r.start(udp, `{"Network":"10.5.0.0/16","SubnetLen":28,"Backend":{"Type":"udp","Port":9000}}`, ext);
  await r.stop();
  assert.equal(dps.opened[0]!.port, 9000);
  assert.equal(dps.opened[0]!.maxPeers, 4096);

  for (
    const [conf, msg] of [
      [
        `{"Network":"10.5.0.0/16","Backend":{"Type":"udp","Port":"x"}}`,
        /error decoding UDP backend config: Backend "Port" is "x"/,
      ],
      [`{"Network":"10.5.0.0/16","Backend":{"Type":"udp","Port":70000}}`, /between 0 and 65535/],
      [
        `{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"udp"}}`,
        /supports IPv4 only/,
      ],
    ] as const
  ) {
    const r2 = new BackendRig();
    await assert.rejects(r2.start(udp, conf, r2.seedHost()), msg);
    r2.kv.close();
  }
});

Deno.test("udp: a data path that cannot open fails registration with its error", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  const udp = createUdpBackend({
    openDataPath: () => Promise.reject(new Error("Cannot bind the UDP socket to 192.168.1.10:8285: busy")),
  });
  await assert.rejects(
    r.start(udp, `{"Network":"10.5.0.0/16","Backend":{"Type":"udp"}}`, ext),
    /192\.168\.1\.10:8285/,
  );
  r.kv.close();
});

Deno.test("udp: the registered factory takes its data path from the host, and says when there is none", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  const conf = `{"Network":"10.5.0.0/16","Backend":{"Type":"udp"}}`;
  await assert.rejects(r.start(udpBackend, conf, ext), {
    message: "the udp backend needs a TUN data path (host.openUdpDataPath), which this build lacks",
  });
  const dps = new FakeDataPaths(r.kernel);
  (r.host as UdpHost).openUdpDataPath = dps.open;
  await r.start(udpBackend, conf, ext);
  await r.stop();
  assert.equal(dps.opened.length, 1);
});

Deno.test("udp: /metrics has the loop's counters, and they never go down when the data path is reopened", async () => {
  const { r, dps } = await startUdp();
  try {
    const metrics = new Metrics();
    metrics.collect((sink) => r.network.collectMetrics!(sink));
    Object.assign(dps.stats, {
      tunRx: 10,
      udpTx: 9,
      udpRx: 7,
      tunTx: 8,
      tunWrites: 3,
      noRoute: 1,
      icmpSent: 1,
      errors: 2,
      lastErrno: 105,
    });
    let text = metrics.render();
    for (
      const line of [
        'flannel_udp_packets_total{point="tun_read"} 10',
        'flannel_udp_packets_total{point="udp_send"} 9',
        'flannel_udp_packets_total{point="udp_receive"} 7',
        'flannel_udp_packets_total{point="tun_write"} 8',
        "flannel_udp_tun_writes_total 3",
        'flannel_udp_dropped_packets_total{reason="no_route"} 1',
        "flannel_udp_icmp_unreachable_total 1",
        "flannel_udp_syscall_errors_total 2",
        "flannel_udp_last_errno 105",
        'flannel_udp_datapath_restarts_total{cause="device_gone"} 0',
        "# TYPE flannel_udp_packets_total counter",
      ]
    ) assert.ok(text.includes(line), `${line}\n${text}`);

    // The device is deleted: a new data path counts from zero, the totals carry on, and a scrape
    // while the new one is opening counts the old one once.
    r.leases(peer("10.5.2.0/24", "192.168.1.11"));
    await r.until((t) => t.includes("10.5.0.0/16 dev flannel0"));
    let release!: () => void;
    dps.gate = new Promise((res) => (release = res));
    await r.kernel.linkDel("flannel0");
    const deadline = Date.now() + 5000;
    while (dps.opened.length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    assert.ok(metrics.render().includes('flannel_udp_packets_total{point="tun_read"} 10'), "mid-reopen");
    dps.gate = undefined;
    release();
    await r.until((t) => t.includes("10.5.0.0/16 dev flannel0") && dps.opened.length === 2);
    dps.stats.tunRx = 4;
    text = metrics.render();
    assert.ok(text.includes('flannel_udp_packets_total{point="tun_read"} 14'), text);
    assert.ok(text.includes('flannel_udp_datapath_restarts_total{cause="device_gone"} 1'), text);
  } finally {
    await r.stop();
  }
});

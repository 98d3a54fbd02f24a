/**
 * The vxlan backend against the fake kernel: {leases in, kernel state out}.
 */
import assert from "node:assert/strict";
import { vxlanBackend } from "../../src/backends/vxlan/mod.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { RTPROT_FLANNEL } from "../../src/backends/reconcile.ts";
import { BackendRig, peer } from "../fakes/backend_harness.ts";

const CONF = `{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`;
const MAC_B = "aa:bb:cc:00:00:0b";
const MAC_C = "aa:bb:cc:00:00:0c";
const vx = (mac: string) => ({ backendType: "vxlan", backendData: `{"VNI":1,"VtepMAC":"${mac}"}` });

async function rig(conf = CONF, prepare?: (r: BackendRig) => Promise<void>) {
  const r = new BackendRig();
  const ext = r.seedHost();
  await prepare?.(r);
  await r.start(vxlanBackend, conf, ext);
  return r;
}

/** The kernel state for our own device plus the given peer lines. */
function ownLines(text: string): { mac: string; subnet: string } {
  const m = /flannel\.1 vxlan id 1 local 192\.168\.1\.10 dev eth0 nolearning mtu 1450 addr ([0-9a-f:]+) up/
    .exec(text);
  const a = /(10\.5\.\d+\.0)\/32 dev flannel\.1/.exec(text);
  assert.ok(m && a, text);
  return { mac: m[1]!, subnet: a[1]! };
}

Deno.test("vxlan: the lease publishes upstream's BackendData and the device carries our /32", async () => {
  const r = await rig();
  try {
    const text = r.kernel.render();
    const { mac, subnet } = ownLines(text);
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.equal(entries[0]!.key, `/coreos.com/network/subnets/${subnet}-24`);
    assert.equal(
      entries[0]!.value,
      `{"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"${mac}"}}`,
    );
    assert.equal(r.network.mtu, 1450);
    assert.ok(
      r.log.messages("info").includes(
        "VXLAN config: VNI=1 Port=0 GBP=false Learning=false DirectRouting=false",
      ),
    );
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: peers added, changed and removed", async () => {
  const r = await rig();
  try {
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)), peer("10.5.3.0/24", "10.99.0.3", vx(MAC_C)));
    await r.until((t) => t.includes("10.5.3.0/24 via"));
    const peerLines = (t: string) =>
      t.split("\n").filter((l) => /10\.5\.[23]\.0|aa:bb:cc/.test(l) && !l.includes(" addr "));
    assert.deepEqual(peerLines(r.kernel.render()), [
      `10.5.2.0/24 via 10.5.2.0 dev flannel.1 proto ${RTPROT_FLANNEL} onlink`,
      `10.5.3.0/24 via 10.5.3.0 dev flannel.1 proto ${RTPROT_FLANNEL} onlink`,
      `10.5.2.0 dev flannel.1 lladdr ${MAC_B} PERMANENT`,
      `10.5.3.0 dev flannel.1 lladdr ${MAC_C} PERMANENT`,
      `${MAC_B} dev flannel.1 dst 192.168.1.11 self permanent`,
      `${MAC_C} dev flannel.1 dst 10.99.0.3 self permanent`,
    ]);
    // Node C rebooted with a new VTEP MAC and a new address: its entries move, nothing stale stays.
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)),
      peer("10.5.3.0/24", "10.99.0.33", vx("aa:bb:cc:00:00:cc")),
    );
    await r.until((t) => t.includes("dst 10.99.0.33"));
    const t2 = r.kernel.render();
    assert.ok(!t2.includes(MAC_C), t2);
    assert.ok(t2.includes("10.5.3.0 dev flannel.1 lladdr aa:bb:cc:00:00:cc PERMANENT"), t2);
    // Node B leaves.
    r.leases(peer("10.5.3.0/24", "10.99.0.33", vx("aa:bb:cc:00:00:cc")));
    await r.until((t) => !t.includes("10.5.2.0"));
    assert.ok(!r.kernel.render().includes(MAC_B));
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: a second pass with the same leases changes nothing", async () => {
  const r = await rig();
  try {
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)));
    await r.until((t) => t.includes("10.5.2.0/24 via"));
    const calls = r.kernel.calls.length;
    const pass = r.nextPass();
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)));
    await pass;
    assert.deepEqual(r.kernel.calls.slice(calls), []);
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: DirectRouting routes directly-connected peers without encapsulation", async () => {
  const r = await rig(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","DirectRouting":true}}`);
  try {
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)), peer("10.5.3.0/24", "10.99.0.3", vx(MAC_C)));
    await r.until((t) =>
      t.includes("10.5.2.0/24 via 192.168.1.11") && t.includes("10.5.3.0/24 via 10.5.3.0")
    );
    const t = r.kernel.render();
    assert.ok(t.includes(`10.5.2.0/24 via 192.168.1.11 dev eth0 proto ${RTPROT_FLANNEL}`), t);
    assert.ok(!t.includes(MAC_B), "the direct peer has no neighbour or FDB entry");
    assert.ok(t.includes(`${MAC_C} dev flannel.1 dst 10.99.0.3 self permanent`), t);
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: leases of other backends are ignored; bad BackendData is skipped with one warning", async () => {
  const r = await rig();
  try {
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", { backendType: "host-gw" }),
      peer("10.5.3.0/24", "192.168.1.12", { backendType: "vxlan", backendData: `{"VNI":1,"VtepMAC":"zz"}` }),
      peer("10.5.4.0/24", "192.168.1.13", vx("aa:bb:cc:00:00:0d")),
    );
    await r.until((t) => t.includes("10.5.4.0/24 via"));
    const pass = r.nextPass();
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", { backendType: "host-gw" }),
      peer("10.5.3.0/24", "192.168.1.12", { backendType: "vxlan", backendData: `{"VNI":1,"VtepMAC":"zz"}` }),
      peer("10.5.4.0/24", "192.168.1.13", vx("aa:bb:cc:00:00:0d")),
    );
    await pass;
    const t = r.kernel.render();
    assert.ok(!t.includes("10.5.2.0") && !t.includes("10.5.3.0"), t);
    const warns = r.log.messages("warn").filter((m) => m.includes("10.5.3.0/24"));
    assert.equal(warns.length, 1, JSON.stringify(warns));
    assert.match(warns[0]!, /error decoding subnet lease JSON: Cannot parse MAC address "zz"/);
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: entries of a node that left while we were down are removed at start", async () => {
  const r = await rig(CONF, async (r) => {
    // What a previous run left: a device with a route, neighbour and FDB entry for 10.5.9.0/24.
    await r.kernel.linkAdd({
      name: "flannel.1",
      kind: "vxlan",
      mtu: 1450,
      address: "02:11:22:33:44:55",
      vxlan: { vni: 1, link: 2, local: IP4.parse("192.168.1.10"), learning: false },
    });
    await r.kernel.linkSet("flannel.1", { up: true });
    await r.kernel.routeReplace({
      dst: IP4Net.parse("10.5.9.0/24"),
      gateway: IP4.parse("10.5.9.0"),
      dev: "flannel.1",
      onlink: true,
    });
    await r.kernel.neighReplace({
      dev: "flannel.1",
      ip: IP4.parse("10.5.9.0"),
      mac: "aa:aa:aa:aa:aa:aa",
      permanent: true,
    });
    await r.kernel.fdbReplace({
      dev: "flannel.1",
      mac: "aa:aa:aa:aa:aa:aa",
      dst: IP4.parse("192.168.1.99"),
      self: true,
      permanent: true,
    });
  });
  try {
    assert.ok(
      r.kernel.render().includes("addr 02:11:22:33:44:55"),
      "the existing device and its MAC are kept",
    );
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)));
    await r.until((t) => !t.includes("10.5.9.0") && !t.includes("aa:aa:aa") && t.includes("10.5.2.0/24 via"));
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: a deleted device comes back with the same MAC and every entry", async () => {
  const r = await rig();
  try {
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)));
    const before = await r.until((t) => t.includes("10.5.2.0/24 via"));
    await r.kernel.linkDel("flannel.1");
    const after = await r.until((t) => t.includes("10.5.2.0/24 via") && t.includes("flannel.1 vxlan"));
    assert.equal(after, before);
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: an incompatible existing device is recreated; bad options are one-line errors", async () => {
  const r = await rig(
    `{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":1,"Port":4789}}`,
    async (r) => {
      await r.kernel.linkAdd({
        name: "flannel.1",
        kind: "vxlan",
        mtu: 1450,
        vxlan: { vni: 1, link: 2, port: 8472 },
      });
    },
  );
  try {
    assert.ok(
      r.log.messages("warn").some((m) =>
        m ===
          "flannel.1 already exists with incompatible configuration: port 8472, want 4789; recreating device"
      ),
    );
    assert.ok(r.kernel.render().includes("dstport 4789"));
  } finally {
    await r.stop();
  }
  const bad = new BackendRig();
  const ext = bad.seedHost();
  await assert.rejects(
    bad.start(vxlanBackend, `{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan","VNI":"one"}}`, ext),
    {
      message: `error decoding VXLAN backend config: Backend "VNI" is "one", must be an integer`,
    },
  );
  bad.kv.close();
});

Deno.test("vxlan: dual stack programs flannel-v6.1 from BackendV6Data", async () => {
  const conf =
    `{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd05::/48","Backend":{"Type":"vxlan"}}`;
  const r = await rig(conf);
  try {
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.match(
      entries[0]!.value,
      /"PublicIPv6":"fd00:1::10".*"BackendV6Data":\{"VNI":1,"VtepMAC":"[0-9a-f:]+"\}/,
    );
    const dualPeer = peer("10.5.2.0/24", "192.168.1.11", {
      ...vx(MAC_B),
      publicIPv6: (await import("../../src/ip/mod.ts")).IP6.parse("fd00:1::11"),
      backendV6Data: `{"VNI":1,"VtepMAC":"aa:bb:cc:00:06:0b"}`,
    }, "fd05:0:0:2::/64");
    r.leases(dualPeer);
    const t = await r.until((t) => t.includes("fd05:0:0:2::/64 via"));
    assert.ok(
      t.includes(`fd05:0:0:2::/64 via fd05:0:0:2:: dev flannel-v6.1 proto ${RTPROT_FLANNEL} onlink`),
      t,
    );
    assert.ok(t.includes("aa:bb:cc:00:06:0b dev flannel-v6.1 dst fd00:1::11 self permanent"), t);
    assert.ok(/fd05:0:0:\w+::\/128 dev flannel-v6\.1/.test(t), t);
    // IPv6 routes come back from the kernel at metric 1024: a second pass must still change nothing.
    const calls = r.kernel.calls.length;
    const pass = r.nextPass();
    r.leases(dualPeer);
    await pass;
    assert.deepEqual(r.kernel.calls.slice(calls), []);
  } finally {
    await r.stop();
  }
});

Deno.test("vxlan: our blackhole route (--ip-blackhole-route) is not the backend's to delete", async () => {
  const r = await rig();
  try {
    const own = r.network.lease.subnet;
    await r.kernel.routeReplace({ dst: own, type: "blackhole", protocol: RTPROT_FLANNEL });
    const pass = r.nextPass();
    r.leases(peer("10.5.2.0/24", "192.168.1.11", vx(MAC_B)));
    await pass;
    await r.until((t) => t.includes("10.5.2.0/24 via"));
    assert.ok(r.kernel.render().includes(`blackhole ${own} proto ${RTPROT_FLANNEL}`), r.kernel.render());
  } finally {
    await r.stop();
  }
});

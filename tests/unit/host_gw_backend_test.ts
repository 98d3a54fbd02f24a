import assert from "node:assert/strict";
import { hostGwBackend } from "../../src/backends/host_gw/mod.ts";
import { RTPROT_FLANNEL } from "../../src/backends/reconcile.ts";
import { IP4, IP4Net, IP6 } from "../../src/ip/mod.ts";
import { BackendRig, peer } from "../fakes/backend_harness.ts";

const CONF = `{"Network":"10.5.0.0/16","Backend":{"Type":"host-gw"}}`;
const hg = { backendType: "host-gw" };

Deno.test("host-gw: a route per peer via its public IP; changes and removals follow", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  await r.start(hostGwBackend, CONF, ext);
  try {
    assert.equal(r.network.mtu, 1500);
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.equal(entries[0]!.value, `{"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"host-gw"}`);
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", hg),
      peer("10.5.3.0/24", "192.168.1.12", hg),
      peer("10.5.4.0/24", "192.168.1.13", { backendType: "vxlan" }),
    );
    await r.until((t) => t.includes("10.5.3.0/24"));
    const lines = () => r.kernel.renderRoutes().filter((l) => l.startsWith("10.5."));
    assert.deepEqual(lines(), [
      `10.5.2.0/24 via 192.168.1.11 dev eth0 proto ${RTPROT_FLANNEL}`,
      `10.5.3.0/24 via 192.168.1.12 dev eth0 proto ${RTPROT_FLANNEL}`,
    ]);
    r.leases(peer("10.5.3.0/24", "192.168.1.22", hg));
    await r.until((t) => t.includes("via 192.168.1.22") && !t.includes("10.5.2.0"));
    assert.deepEqual(lines(), [`10.5.3.0/24 via 192.168.1.22 dev eth0 proto ${RTPROT_FLANNEL}`]);
    // A route deleted behind our back comes back.
    await r.kernel.routeDel({ dst: IP4Net.parse("10.5.3.0/24") });
    await r.until((t) => t.includes("10.5.3.0/24 via 192.168.1.22"));
  } finally {
    await r.stop();
  }
});

Deno.test("host-gw: stale cluster routes on the interface are removed; others are left alone", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  // An upstream flanneld's route for a node that is gone (proto boot), and an operator's route.
  r.kernel.seedRoute({
    dst: IP4Net.parse("10.5.77.0/24"),
    gateway: IP4.parse("192.168.1.77"),
    dev: "eth0",
    protocol: 3,
  });
  r.kernel.seedRoute({
    dst: IP4Net.parse("172.20.0.0/16"),
    gateway: IP4.parse("192.168.1.1"),
    dev: "eth0",
    protocol: 3,
  });
  await r.start(hostGwBackend, CONF, ext);
  try {
    r.leases(peer("10.5.2.0/24", "192.168.1.11", hg));
    await r.until((t) => t.includes("10.5.2.0/24") && !t.includes("10.5.77.0"));
    assert.ok(r.kernel.render().includes("172.20.0.0/16 via 192.168.1.1 dev eth0 proto 3"));
  } finally {
    await r.stop();
  }
});

Deno.test("host-gw: dual stack routes IPv6 subnets via PublicIPv6", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  await r.start(
    hostGwBackend,
    `{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd05::/48","Backend":{"Type":"host-gw"}}`,
    ext,
  );
  try {
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", { ...hg, publicIPv6: IP6.parse("fd00:1::11") }, "fd05:0:0:2::/64"),
    );
    const t = await r.until((t) => t.includes("fd05:0:0:2::/64"));
    assert.ok(t.includes(`fd05:0:0:2::/64 via fd00:1::11 dev eth0 proto ${RTPROT_FLANNEL}`), t);
  } finally {
    await r.stop();
  }
});

Deno.test("host-gw: behind NAT it refuses with upstream's message", async () => {
  const r = new BackendRig();
  const ext = r.seedHost({ publicIp: "203.0.113.5" });
  await assert.rejects(
    r.start(hostGwBackend, CONF, ext),
    /^Error: your PublicIP differs from interface IP, meaning that probably you're on a NAT/,
  );
  r.kv.close();
});

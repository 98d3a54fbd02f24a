import assert from "node:assert/strict";
import { FakeKernel } from "../fakes/fake_kernel.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { isErrno } from "../../src/netlink/codec/mod.ts";

Deno.test("fake kernel: vxlan device, onlink route, neighbour and FDB render like ip/bridge", async () => {
  const k = new FakeKernel();
  const eth0 = k.seedLink("eth0", 1500, "192.168.1.10/24");
  await k.linkAdd({
    name: "flannel.1",
    kind: "vxlan",
    mtu: 1450,
    address: "aa:bb:cc:dd:ee:01",
    vxlan: { vni: 1, local: IP4.parse("192.168.1.10"), link: eth0, learning: false },
  });
  await k.linkSet("flannel.1", { up: true });
  await k.addrAdd({ dev: "flannel.1", addr: IP4Net.parse("10.5.1.0/32") });
  await k.routeReplace({
    dst: IP4Net.parse("10.5.2.0/24"),
    gateway: IP4.parse("10.5.2.0"),
    dev: "flannel.1",
    onlink: true,
  });
  await k.neighReplace({
    dev: "flannel.1",
    ip: IP4.parse("10.5.2.0"),
    mac: "aa:bb:cc:dd:ee:02",
    permanent: true,
  });
  await k.fdbReplace({
    dev: "flannel.1",
    mac: "aa:bb:cc:dd:ee:02",
    dst: IP4.parse("192.168.1.11"),
    self: true,
    permanent: true,
  });
  assert.equal(
    k.render(),
    `# link
eth0 mtu 1500 addr 02:00:00:00:00:02 up
flannel.1 vxlan id 1 local 192.168.1.10 dev eth0 nolearning mtu 1450 addr aa:bb:cc:dd:ee:01 up
# addr
10.5.1.0/32 dev flannel.1
192.168.1.10/24 dev eth0
# route
10.5.2.0/24 via 10.5.2.0 dev flannel.1 onlink
# neigh
10.5.2.0 dev flannel.1 lladdr aa:bb:cc:dd:ee:02 PERMANENT
# fdb
aa:bb:cc:dd:ee:02 dev flannel.1 dst 192.168.1.11 self permanent
`,
  );
  assert.deepEqual(await k.routeGet(IP4.parse("10.5.2.7")), {
    dev: "flannel.1",
    gateway: IP4.parse("10.5.2.0"),
  });
  await k.linkDel("flannel.1");
  assert.equal(
    k.renderRoutes().length + k.renderNeigh().length + k.renderFdb().length,
    0,
    "deleting the device drops its entries",
  );
});

Deno.test("fake kernel: the kernel's refusals", async () => {
  const k = new FakeKernel({ missingKinds: ["ipip"] });
  k.seedLink("eth0", 1500, "192.168.1.10/24");
  await assert.rejects(
    k.linkAdd({ name: "flannel.ipip", kind: "ipip" }),
    (e) => isErrno(e, "EOPNOTSUPP") && /ipip/.test(e.message),
  );
  await assert.rejects(
    k.routeReplace({ dst: IP4Net.parse("10.5.2.0/24"), gateway: IP4.parse("10.9.9.9"), dev: "eth0" }),
    (e) => isErrno(e, "ENETUNREACH"),
  );
  await k.routeReplace({ dst: IP4Net.parse("10.5.2.0/24"), gateway: IP4.parse("192.168.1.11"), dev: "eth0" });
  await assert.rejects(k.routeDel({ dst: IP4Net.parse("10.5.3.0/24") }), (e) => isErrno(e, "ESRCH"));
  await assert.rejects(
    k.linkAdd({ name: "eth0", kind: "veth" }),
    (e) => isErrno(e, "EEXIST") && e.message === "Cannot add link eth0 type veth: File exists (EEXIST)",
  );
});

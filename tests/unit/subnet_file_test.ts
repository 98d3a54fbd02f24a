import assert from "node:assert/strict";
import { parseDotenv, readPreviousSubnets, renderSubnetFile } from "../../src/daemon/subnet_file.ts";
import { IP4Net, IP6Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";

Deno.test("subnet.env: IPv4 lines exactly as upstream", () => {
  assert.equal(
    renderSubnetFile({
      network: IP4Net.parse("10.5.0.0/16"),
      subnet: IP4Net.parse("10.5.72.0/24"),
      mtu: 1450,
      ipMasq: false,
    }),
    "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
  );
});

Deno.test("subnet.env: dual stack", () => {
  assert.equal(
    renderSubnetFile({
      network: IP4Net.parse("10.5.0.0/16"),
      subnet: IP4Net.parse("10.5.72.0/24"),
      ipv6Network: IP6Net.parse("2001:cafe:42::/56"),
      ipv6Subnet: IP6Net.parse("2001:cafe:42::/64"),
      mtu: 1450,
      ipMasq: true,
    }),
    "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_IPV6_NETWORK=2001:cafe:42::/56\n" +
      "FLANNEL_IPV6_SUBNET=2001:cafe:42::1/64\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
  );
});

Deno.test("subnet.env: reading the previous file masks to the network", () => {
  const prev = readPreviousSubnets(
    "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.72.1/24\nFLANNEL_IPV6_SUBNET=fd00::1/64\nFLANNEL_MTU=1450\n",
    new MemoryLogger(),
  );
  assert.equal(prev.network?.toString(), "10.5.0.0/16");
  assert.equal(prev.subnet?.toString(), "10.5.72.0/24");
  assert.equal(prev.ipv6Subnet?.toString(), "fd00::/64");
});

Deno.test("subnet.env: invalid CIDRs are skipped; two valid ones mean none (upstream main_test)", () => {
  const log = new MemoryLogger();
  assert.equal(
    readPreviousSubnets("FLANNEL_SUBNET=10.244.1.0/24,not-a-cidr,10.244.2.0/24\n", log).subnet,
    undefined,
  );
  assert.ok(log.messages("warn").some((m) => m.includes(`"not-a-cidr"`)));
  assert.equal(
    readPreviousSubnets("FLANNEL_IPV6_SUBNET=fd00::/64,not-a-cidr,fd01::/64\n", log).ipv6Subnet,
    undefined,
  );
  assert.equal(readPreviousSubnets("FLANNEL_SUBNET=not-a-cidr\n", log).subnet, undefined);
  assert.equal(readPreviousSubnets("FLANNEL_IPV6_SUBNET=not-a-cidr\n", log).ipv6Subnet, undefined);
  assert.equal(
    readPreviousSubnets("FLANNEL_SUBNET=not-a-cidr,10.244.2.1/24\n", log).subnet?.toString(),
    "10.244.2.0/24",
  );
  assert.deepEqual(readPreviousSubnets(undefined, log), {});
});

Deno.test("dotenv: export, quotes and comments", () => {
  const env = parseDotenv(`# c\nexport A=1\nB="two words"\nC='x' \nD=v # note\n\nbad line\n`);
  assert.deepEqual([...env], [["A", "1"], ["B", "two words"], ["C", "x"], ["D", "v"]]);
});

import assert from "node:assert/strict";
import { parseNetworkConfig } from "../../src/config/network_config.ts";
import { IP4, IP6 } from "../../src/ip/mod.ts";
import { annotationNames } from "../../src/lease/kube/annotations.ts";
import {
  annotationChanges,
  networkUnavailablePatch,
  NodeLeaseError,
  nodeToLease,
  planOwnLease,
  storedMacs,
} from "../../src/lease/kube/node_lease.ts";
import type { KubeNode } from "../../src/lease/kube/types.ts";
import type { LeaseAttrs } from "../../src/lease/types.ts";
import { MemoryLogger, nullLogger } from "../../src/log/logger.ts";

const N = annotationNames("flannel.alpha.coreos.com");
const P = "flannel.alpha.coreos.com/";
const V4 = { enableIPv4: true, enableIPv6: false };
const DUAL = { enableIPv4: true, enableIPv6: true };

function node(spec: KubeNode["spec"], annotations: Record<string, string> = {}, name = "n1"): KubeNode {
  return { metadata: { name, annotations }, ...(spec ? { spec } : {}) };
}

const VXLAN_DATA = `{"VNI":1,"VtepMAC":"12:c6:65:89:b4:e3"}`;
const peer = {
  [`${P}kube-subnet-manager`]: "true",
  [`${P}backend-type`]: "vxlan",
  [`${P}backend-data`]: VXLAN_DATA,
  [`${P}public-ip`]: "192.168.1.2",
};

Deno.test("kube nodeToLease: IPv4 lease from podCIDR and annotations", () => {
  const lease = nodeToLease(node({ podCIDR: "10.244.1.0/24" }, peer), N, V4);
  assert.equal(lease.subnet.toString(), "10.244.1.0/24");
  assert.equal(lease.attrs.publicIP.toString(), "192.168.1.2");
  assert.equal(lease.attrs.backendType, "vxlan");
  assert.equal(lease.attrs.backendData, VXLAN_DATA);
  assert.equal(lease.enableIPv4, true);
  assert.equal(lease.enableIPv6, false);
  assert.equal(lease.ipv6Subnet, undefined);
});

Deno.test("kube nodeToLease: podCIDRs win over podCIDR, first of each family", () => {
  const lease = nodeToLease(
    node({ podCIDR: "10.244.9.0/24", podCIDRs: ["fd00:10:244:1::/64", "10.244.1.0/24"] }, {
      ...peer,
      [`${P}public-ipv6`]: "fd00::2",
      [`${P}backend-v6-data`]: `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`,
    }),
    N,
    DUAL,
  );
  assert.equal(lease.subnet.toString(), "10.244.1.0/24");
  assert.equal(lease.ipv6Subnet?.toString(), "fd00:10:244:1::/64");
  assert.equal(lease.attrs.publicIPv6?.toString(), "fd00::2");
  assert.equal(lease.attrs.backendV6Data, `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`);
});

Deno.test("kube nodeToLease: host-gw's null backend-data is no data", () => {
  const lease = nodeToLease(
    node({ podCIDR: "10.244.1.0/24" }, {
      ...peer,
      [`${P}backend-type`]: "host-gw",
      [`${P}backend-data`]: "null",
    }),
    N,
    V4,
  );
  assert.equal(lease.attrs.backendData, undefined);
});

const BAD: [string, KubeNode, typeof V4, string][] = [
  ["no pod CIDR", node({}, peer), V4, `node "n1": missing IPv4 address on n.Spec.PodCIDRs`],
  [
    "no IPv6 pod CIDR in dual stack",
    node({ podCIDR: "10.244.1.0/24" }, peer),
    DUAL,
    `node "n1": missing IPv6 address on n.Spec.PodCIDRs`,
  ],
  [
    "three pod CIDRs",
    node({ podCIDRs: ["10.244.1.0/24", "10.245.1.0/24", "fd00::/64"] }, peer),
    V4,
    `node "n1" pod cidrs should be IPv4/IPv6 only or dualstack`,
  ],
  [
    "a bad public-ip",
    node({ podCIDR: "10.244.1.0/24" }, { ...peer, [`${P}public-ip`]: "300.1.1.1" }),
    V4,
    `node "n1" annotation ${P}public-ip is "300.1.1.1", must be an IPv4 address`,
  ],
  [
    "no public-ip",
    node({ podCIDR: "10.244.1.0/24" }, { [`${P}kube-subnet-manager`]: "true" }),
    V4,
    `node "n1" annotation ${P}public-ip is missing, must be an IPv4 address`,
  ],
  [
    "backend-data that is not JSON",
    node({ podCIDR: "10.244.1.0/24" }, { ...peer, [`${P}backend-data`]: "{VNI:1" }),
    V4,
    `node "n1" annotation ${P}backend-data is "{VNI:1", must be JSON`,
  ],
  [
    "a pod CIDR that is not a CIDR",
    node({ podCIDR: "10.244.1.0" }, peer),
    V4,
    `node "n1" has pod CIDR "10.244.1.0": invalid CIDR address`,
  ],
];

for (const [what, n, fam, msg] of BAD) {
  Deno.test(`kube nodeToLease: ${what} is an error naming the node`, () => {
    assert.throws(() => nodeToLease(n, N, fam), (e) => {
      assert.ok(e instanceof NodeLeaseError);
      assert.equal(e.message, msg);
      return true;
    });
  });
}

const cfg = parseNetworkConfig(`{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`);
const vx: LeaseAttrs = { publicIP: IP4.parse("192.168.1.2"), backendType: "vxlan", backendData: VXLAN_DATA };

Deno.test("kube planOwnLease: a node without pod CIDR has no plan yet", () => {
  assert.equal(planOwnLease(node({}), vx, N, cfg, 0, nullLogger), undefined);
});

Deno.test("kube planOwnLease: lease of 24 h and upstream's annotations, only what changed", () => {
  const plan = planOwnLease(node({ podCIDR: "10.244.3.0/24" }), vx, N, cfg, 1000, nullLogger)!;
  assert.equal(plan.lease.subnet.toString(), "10.244.3.0/24");
  assert.equal(plan.lease.expiration, 1000 + 24 * 3600_000);
  assert.deepEqual(plan.annotations, {
    [`${P}backend-type`]: "vxlan",
    [`${P}backend-data`]: VXLAN_DATA,
    [`${P}public-ip`]: "192.168.1.2",
    [`${P}kube-subnet-manager`]: "true",
  });
  const again = planOwnLease(
    node({ podCIDR: "10.244.3.0/24" }, plan.annotations),
    vx,
    N,
    cfg,
    0,
    nullLogger,
  )!;
  assert.equal(again.annotations, undefined, "nothing to patch when the node already says it all");
  const moved = planOwnLease(
    node({ podCIDR: "10.244.3.0/24" }, { ...plan.annotations, [`${P}public-ip`]: "192.168.1.9" }),
    vx,
    N,
    cfg,
    0,
    nullLogger,
  )!;
  assert.deepEqual(moved.annotations, { [`${P}public-ip`]: "192.168.1.2" });
});

Deno.test("kube planOwnLease: a pod CIDR outside Network is upstream's error", () => {
  assert.throws(
    () => planOwnLease(node({ podCIDR: "10.9.3.0/24" }), vx, N, cfg, 0, nullLogger),
    /^NodeLeaseError: subnet "10.244.0.0\/16" specified in the flannel net config doesn't contain "10.9.3.0\/24" PodCIDR of the "n1" node$/,
  );
});

Deno.test("kube planOwnLease: dual stack for vxlan, forced IPv4-only for udp", () => {
  const dual = parseNetworkConfig(
    `{"Network":"10.244.0.0/16","IPv6Network":"fd00:10:244::/56","EnableIPv6":true,"Backend":{"Type":"vxlan"}}`,
  );
  const spec = { podCIDRs: ["10.244.3.0/24", "fd00:10:244:3::/64"] };
  const v = planOwnLease(node(spec), { ...vx, publicIPv6: IP6.parse("fd00::2") }, N, dual, 0, nullLogger)!;
  assert.equal(v.lease.enableIPv6, true);
  assert.equal(v.lease.ipv6Subnet?.toString(), "fd00:10:244:3::/64");
  const u = planOwnLease(node(spec), { publicIP: IP4.parse("192.168.1.2") }, N, dual, 0, nullLogger)!;
  assert.equal(u.lease.enableIPv4, true);
  assert.equal(u.lease.enableIPv6, false);
  assert.equal(u.lease.ipv6Subnet, undefined);
});

const ip4 = IP4.parse("192.168.1.2");
const ip6 = IP6.parse("fd00::2");
const CHANGES: [string, LeaseAttrs, Record<string, string>][] = [
  ["host-gw publishes null data", { publicIP: ip4, backendType: "host-gw" }, {
    [`${P}backend-type`]: "host-gw",
    [`${P}backend-data`]: "null",
    [`${P}public-ip`]: "192.168.1.2",
    [`${P}kube-subnet-manager`]: "true",
  }],
  ["udp publishes an empty type", { publicIP: ip4 }, {
    [`${P}backend-type`]: "",
    [`${P}backend-data`]: "null",
    [`${P}public-ip`]: "192.168.1.2",
    [`${P}kube-subnet-manager`]: "true",
  }],
  ["vxlan IPv6-only skips the IPv4 pair", {
    publicIP: IP4.fromNumber(0),
    publicIPv6: ip6,
    backendType: "vxlan",
    backendV6Data: `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`,
  }, {
    [`${P}backend-type`]: "vxlan",
    [`${P}backend-v6-data`]: `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`,
    [`${P}public-ipv6`]: "fd00::2",
    [`${P}kube-subnet-manager`]: "true",
  }],
  ["host-gw with an IPv6 address writes both pairs", {
    publicIP: ip4,
    publicIPv6: ip6,
    backendType: "host-gw",
  }, {
    [`${P}backend-type`]: "host-gw",
    [`${P}backend-data`]: "null",
    [`${P}public-ip`]: "192.168.1.2",
    [`${P}backend-v6-data`]: "null",
    [`${P}public-ipv6`]: "fd00::2",
    [`${P}kube-subnet-manager`]: "true",
  }],
  ["wireguard without IPv6 address writes no IPv6 pair", {
    publicIP: ip4,
    backendType: "wireguard",
    backendData: `{"PublicKey":"k","Port":51820}`,
    backendV6Data: `{"PublicKey":"k","Port":51821}`,
  }, {
    [`${P}backend-type`]: "wireguard",
    [`${P}backend-data`]: `{"PublicKey":"k","Port":51820}`,
    [`${P}public-ip`]: "192.168.1.2",
    [`${P}kube-subnet-manager`]: "true",
  }],
];

for (const [what, attrs, want] of CHANGES) {
  Deno.test(`kube annotationChanges: ${what}`, () => {
    assert.deepEqual(annotationChanges(node({}), attrs, N, nullLogger), want);
  });
}

Deno.test("kube annotationChanges: public-ip-overwrite is published, a bad one ignored with an error", () => {
  const log = new MemoryLogger();
  const over = annotationChanges(node({}, { [`${P}public-ip-overwrite`]: "172.18.0.2" }), vx, N, log)!;
  assert.equal(over[`${P}public-ip`], "172.18.0.2");
  assert.deepEqual(log.messages("info"), [
    `Overriding public ip with 172.18.0.2 from node annotation ${P}public-ip-overwrite`,
  ]);
  const bad = annotationChanges(node({}, { [`${P}public-ip-overwrite`]: "nope" }), vx, N, log)!;
  assert.equal(bad[`${P}public-ip`], "192.168.1.2");
  assert.match(
    log.messages("error")[0]!,
    /^Ignoring annotation .*public-ip-overwrite="nope" on node "n1": not an IPv4/,
  );
});

Deno.test("kube storedMacs: the VtepMACs of our backend-data annotations", () => {
  assert.deepEqual(
    storedMacs(
      node({}, {
        [`${P}backend-data`]: VXLAN_DATA,
        [`${P}backend-v6-data`]: `{"VtepMAC":"AA:BB:CC:DD:EE:FF"}`,
      }),
      N,
    ),
    { mac: "12:c6:65:89:b4:e3", macV6: "aa:bb:cc:dd:ee:ff" },
  );
  assert.deepEqual(storedMacs(node({}, { [`${P}backend-data`]: "null" }), N), {});
  assert.deepEqual(storedMacs(node({}, { [`${P}backend-data`]: "{bad" }), N), {});
});

Deno.test("kube networkUnavailablePatch: upstream's condition, RFC 3339 seconds", () => {
  assert.equal(
    JSON.stringify(networkUnavailablePatch(Date.UTC(2024, 0, 2, 3, 4, 5, 678))),
    `{"status":{"conditions":[{"type":"NetworkUnavailable","status":"False","reason":"FlannelIsUp",` +
      `"message":"Flannel is running on this node","lastHeartbeatTime":"2024-01-02T03:04:05Z",` +
      `"lastTransitionTime":"2024-01-02T03:04:05Z"}]}}`,
  );
});

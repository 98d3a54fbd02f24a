/**
 * tencent-vpc: the TC3-HMAC-SHA256 signature against Tencent's published example, the provider
 * and the whole backend against the fake metadata service and VPC API (tests/fakes/cloud).
 */
import assert from "node:assert/strict";
import {
  type CloudApiError,
  type CloudContext,
  createCloudRouteBackend,
} from "../../src/backends/cloud/route_backend.ts";
import { signTc3, TENCENT_NO_CREDENTIALS, tencentVpcProvider } from "../../src/backends/cloud/tencent_vpc.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { BackendRig } from "../fakes/backend_harness.ts";
import { Metrics } from "../../src/daemon/metrics.ts";
import { FakeTencentCloud } from "../fakes/cloud/tencent_api.ts";

Deno.test("tencent-vpc: TC3-HMAC-SHA256 gives the signature of Tencent's documented example", async () => {
  // Tencent Cloud API 3.0 "Signature v3" worked example (DescribeInstances on cvm, 2019-02-25);
  // the keys are the documentation's own, masked with asterisks as published.
  const auth = await signTc3({
    secretId: "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
    secretKey: "Gu5t9xGARNpq86cd98joQYCN3*******",
    service: "cvm",
    host: "cvm.tencentcloudapi.com",
    contentType: "application/json; charset=utf-8",
    payload: '{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}',
    timestamp: 1551113065,
  });
  assert.equal(
    auth,
    "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, " +
      "SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c",
  );
});

function cloudCtx(
  fake: FakeTencentCloud,
  env: Record<string, string> = fake.env(),
  backend = {},
): CloudContext {
  return {
    backend,
    extAddr: IP4.parse("10.0.0.5"),
    env: (n) => env[n],
    fetch: (i, init) => fetch(i, init),
    log: new MemoryLogger(),
    clock: systemClock,
    signal: new AbortController().signal,
  };
}

Deno.test("tencent-vpc: creates our route in the VPC's first table, keeps it, replaces a disabled or foreign one", async () => {
  const fake = new FakeTencentCloud();
  try {
    fake.addRoute(0, {
      DestinationCidrBlock: "10.5.9.0/24",
      GatewayType: "NORMAL_CVM",
      GatewayId: "10.0.0.9",
      Enabled: true,
    });
    const router = await tencentVpcProvider.open(cloudCtx(fake));
    assert.equal(router.where, "VPC vpc-2at5y1pn in ap-guangzhou (its first route table), gateway 10.0.0.5");
    const subnet = IP4Net.parse("10.5.3.0/24");
    assert.equal(await router.ensureRoute(subnet), "created");
    assert.deepEqual(fake.routes(), [
      "10.5.9.0/24 -> NORMAL_CVM:10.0.0.9",
      "10.5.3.0/24 -> NORMAL_CVM:10.0.0.5",
    ]);
    assert.deepEqual(fake.routes(1), [], "only the first table");
    assert.ok(fake.requests.every((r) => r.region === "ap-guangzhou"));
    const create = fake.requests.find((r) => r.action === "CreateRoutes")!;
    assert.deepEqual(create.body, {
      RouteTableId: "rtb-main0001",
      Routes: [{
        DestinationCidrBlock: "10.5.3.0/24",
        GatewayType: "NORMAL_CVM",
        GatewayId: "10.0.0.5",
        RouteDescription: "flannel",
      }],
    });

    const before = fake.requests.length;
    assert.equal(await router.ensureRoute(subnet), "kept");
    assert.deepEqual(
      fake.requests.slice(before).map((r) => r.action),
      ["DescribeRouteTables"],
      "a check only reads",
    );

    // Someone disabled it in the console; then someone pointed it at another instance.
    fake.tables[0]!.RouteSet.find((r) => r.DestinationCidrBlock === "10.5.3.0/24")!.Enabled = false;
    assert.equal(await router.ensureRoute(subnet), "replaced");
    fake.tables[0]!.RouteSet.find((r) => r.DestinationCidrBlock === "10.5.3.0/24")!.GatewayId = "10.0.0.77";
    assert.equal(await router.ensureRoute(subnet), "replaced");
    assert.deepEqual(fake.routes(), [
      "10.5.9.0/24 -> NORMAL_CVM:10.0.0.9",
      "10.5.3.0/24 -> NORMAL_CVM:10.0.0.5",
    ]);
  } finally {
    await fake.close();
  }
});

Deno.test("tencent-vpc: credentials from the backend options win over the environment; none is upstream's error", async () => {
  const fake = new FakeTencentCloud();
  try {
    const env = { ...fake.env(), ACCESS_KEY_ID: "AKIDwrong", ACCESS_KEY_SECRET: "wrong" };
    const router = await tencentVpcProvider.open(
      cloudCtx(fake, env, { accesskeyid: fake.secretId, AccessKeySecret: fake.secretKey }),
    );
    assert.equal(await router.ensureRoute(IP4Net.parse("10.5.3.0/24")), "created");

    const noCreds = { TENCENTCLOUD_VPC_ENDPOINT: fake.url, TENCENTCLOUD_METADATA_ENDPOINT: fake.url };
    await assert.rejects(tencentVpcProvider.open(cloudCtx(fake, noCreds)), (e: Error) => {
      assert.ok(e.message.startsWith(TENCENT_NO_CREDENTIALS), e.message);
      assert.match(e.message, /Backend "AccessKeyID" and "AccessKeySecret"/);
      return true;
    });
    await assert.rejects(
      tencentVpcProvider.open(cloudCtx(fake, fake.env(), { AccessKeyID: 42 })),
      /error decoding tencent-vpc backend config: Backend "AccessKeyID" is 42, must be a string/,
    );
  } finally {
    await fake.close();
  }
});

Deno.test("tencent-vpc: API errors keep Tencent's code; credentials and permissions are not retried", async () => {
  const fake = new FakeTencentCloud();
  try {
    const subnet = IP4Net.parse("10.5.3.0/24");
    const bad = await tencentVpcProvider.open(
      cloudCtx(fake, { ...fake.env(), ACCESS_KEY_SECRET: "not-the-secret" }),
    );
    await assert.rejects(bad.ensureRoute(subnet), (e: CloudApiError) => {
      assert.equal(e.code, "AuthFailure.SignatureFailure");
      assert.equal(e.retryable, false);
      assert.match(
        e.message,
        /^Tencent Cloud DescribeRouteTables failed: AuthFailure\.SignatureFailure: .*RequestId/,
      );
      return true;
    });
    const good = await tencentVpcProvider.open(cloudCtx(fake));
    fake.deny.add("CreateRoutes");
    await assert.rejects(good.ensureRoute(subnet), { code: "UnauthorizedOperation", retryable: false });
    fake.deny.clear();
    fake.failNext.push("RequestLimitExceeded");
    await assert.rejects(good.ensureRoute(subnet), { code: "RequestLimitExceeded", retryable: true });
    assert.equal(await good.ensureRoute(subnet), "created");
  } finally {
    await fake.close();
  }
});

Deno.test("tencent-vpc: no metadata service is one line that says where and what to check", async () => {
  const fake = new FakeTencentCloud();
  const url = fake.url;
  await fake.close();
  await assert.rejects(
    tencentVpcProvider.open(cloudCtx(fake, { ...fake.env(), TENCENTCLOUD_METADATA_ENDPOINT: url })),
    (e: Error) => {
      assert.match(
        e.message,
        new RegExp(
          `^Cannot read the region from the Tencent Cloud metadata service at ${url}/latest/meta-data/placement/region: .+; is this node running on Tencent Cloud\\?$`,
        ),
      );
      assert.doesNotMatch(e.message, /\n/);
      return true;
    },
  );
});

Deno.test("tencent-vpc backend: lease with PublicIP only, route at registration (throttling retried), put back when deleted", async () => {
  const fake = new FakeTencentCloud();
  const r = new BackendRig();
  try {
    const ext = r.seedHost();
    Object.assign(r.host.envs, fake.env());
    fake.failNext.push("RequestLimitExceeded");
    const backend = createCloudRouteBackend(tencentVpcProvider, { checkMs: 20, retryFirstMs: 5 });
    const network = await r.start(backend, `{"Network":"10.5.0.0/16","Backend":{"Type":"tencent-vpc"}}`, ext);
    assert.equal(network.mtu, 1500);
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.equal(entries[0]!.value, `{"PublicIP":"192.168.1.10","PublicIPv6":null}`);
    const subnet = network.lease.subnet.toString();
    assert.deepEqual(
      fake.routes(),
      [`${subnet} -> NORMAL_CVM:192.168.1.10`],
      "in place before register returns",
    );
    const logs = () => r.log.records.map((l) => `${l.level} ${l.msg}`).join("\n");
    assert.match(
      logs(),
      /error Tencent Cloud DescribeRouteTables failed: RequestLimitExceeded: .*; retrying in 1s/,
    );
    assert.match(
      logs(),
      new RegExp(`info tencent-vpc: created the route for ${subnet.replace(/\./g, "\\.")}`),
    );

    fake.tables[0]!.RouteSet.length = 0; // deleted in the console
    // Wait for the backend to say so (the fake has the route a moment before the backend's call returns).
    const repaired = /warn tencent-vpc: the route for .* had gone or changed; created it/;
    const deadline = Date.now() + 5000;
    while (!repaired.test(logs()) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.match(logs(), repaired);
    assert.deepEqual(fake.routes(), [`${subnet} -> NORMAL_CVM:192.168.1.10`]);

    // /metrics: what the checks found; a failing check turns flannel_cloud_route_ok to 0.
    const metrics = new Metrics();
    metrics.collect((sink) => network.collectMetrics!(sink));
    assert.match(
      metrics.render(),
      /flannel_cloud_route_checks_total\{backend="tencent-vpc",result="created"\} 2\n/,
    );
    assert.match(metrics.render(), /flannel_cloud_route_ok\{backend="tencent-vpc"\} 1\n/);
    fake.deny.add("DescribeRouteTables");
    const until = Date.now() + 5000;
    while (!/flannel_cloud_route_ok\{[^}]*\} 0/.test(metrics.render()) && Date.now() < until) {
      await new Promise((res) => setTimeout(res, 10));
    }
    assert.match(metrics.render(), /flannel_cloud_route_ok\{backend="tencent-vpc"\} 0\n/);
    assert.match(metrics.render(), /result="error"\} [1-9]/);
  } finally {
    await r.stop();
    await fake.close();
  }
});

Deno.test("tencent-vpc: deleteRoute (--cleanup) removes only our route for the subnet", async () => {
  const fake = new FakeTencentCloud();
  try {
    const router = await tencentVpcProvider.open(cloudCtx(fake));
    const subnet = IP4Net.parse("10.5.3.0/24");
    assert.equal(await router.deleteRoute(subnet), false, "nothing of ours yet");
    await router.ensureRoute(subnet);
    fake.addRoute(0, {
      DestinationCidrBlock: "10.5.4.0/24",
      GatewayType: "NORMAL_CVM",
      GatewayId: "10.0.0.9",
      Enabled: true,
    });
    assert.equal(await router.deleteRoute(subnet), true);
    assert.deepEqual(fake.routes(), ["10.5.4.0/24 -> NORMAL_CVM:10.0.0.9"]);
    // The subnet is another node's now: its route stays.
    fake.addRoute(0, {
      DestinationCidrBlock: "10.5.3.0/24",
      GatewayType: "NORMAL_CVM",
      GatewayId: "10.0.0.77",
      Enabled: true,
    });
    assert.equal(await router.deleteRoute(subnet), false);
    assert.equal(fake.routes().length, 2);
  } finally {
    await fake.close();
  }
});

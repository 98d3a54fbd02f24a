/**
 * The ali-vpc provider against the fake Alibaba Cloud (tests/fakes/cloud/ali_api.ts): what it asks
 * the metadata service and the VPC API, the route entry it leaves (created, kept, replaced, with
 * the Pending/Deleting waits), credentials, and which errors are worth a retry. Then the whole
 * backend through createCloudRouteBackend, whose periodic check puts back a deleted entry.
 */
import assert from "node:assert/strict";
import {
  ALI_METADATA_ENDPOINT_ENV,
  ALI_VPC_ENDPOINT_ENV,
  aliVpcBackend,
  aliVpcProvider,
  createAliVpcProvider,
} from "../../src/backends/cloud/ali_vpc.ts";
import {
  CloudApiError,
  type CloudContext,
  createCloudRouteBackend,
} from "../../src/backends/cloud/route_backend.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { BackendRig } from "../fakes/backend_harness.ts";
import { FakeAliCloud, type FakeAliOptions } from "../fakes/cloud/ali_api.ts";

const provider = createAliVpcProvider({ pollFirstMs: 1, pollMaxMs: 4, waitMs: 3000 });
const SUBNET = IP4Net.parse("10.5.1.0/24");
const OTHER = "i-bp1someone0else";

/** A fetch that only talks to loopback, and records every URL. */
function loopbackFetch(urls: string[]): typeof fetch {
  return (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    urls.push(url);
    if (!url.startsWith("http://127.0.0.1:")) {
      return Promise.reject(new TypeError(`test fetch refuses ${new URL(url).origin}`));
    }
    return fetch(input, init);
  };
}

interface Setup {
  fake: FakeAliCloud;
  ctx: CloudContext;
  urls: string[];
  ctl: AbortController;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(
  o: {
    fake?: FakeAliOptions;
    backend?: Record<string, unknown>;
    env?: Record<string, string>;
    noCredentials?: boolean;
  } = {},
): Promise<Setup> {
  const fake = await FakeAliCloud.start(o.fake);
  const urls: string[] = [];
  const ctl = new AbortController();
  const env: Record<string, string> = {
    [ALI_METADATA_ENDPOINT_ENV]: fake.url,
    [ALI_VPC_ENDPOINT_ENV]: fake.url,
    ...(o.noCredentials ? {} : { ACCESS_KEY_ID: fake.accessKeyId, ACCESS_KEY_SECRET: fake.accessKeySecret }),
    ...o.env,
  };
  const ctx: CloudContext = {
    backend: { Type: "ali-vpc", ...o.backend },
    extAddr: IP4.parse("192.168.1.10"),
    env: (name) => env[name],
    fetch: loopbackFetch(urls),
    log: new MemoryLogger(),
    clock: systemClock,
    signal: ctl.signal,
  };
  return {
    fake,
    ctx,
    urls,
    ctl,
    async [Symbol.asyncDispose]() {
      ctl.abort();
      await fake.close();
    },
  };
}

async function rejectsWith(p: Promise<unknown>, code: string, retryable: boolean): Promise<CloudApiError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CloudApiError, `not a CloudApiError: ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.retryable, retryable, `${code} retryable`);
    assert.equal(e.cloud, "Alibaba Cloud");
    assert.doesNotMatch(e.message, /\n/);
    return e;
  }
  assert.fail(`expected ${code}`);
}

Deno.test("ali-vpc: creates our entry, waits until Available, then keeps it", async () => {
  await using s = await setup();
  const { fake } = s;
  const router = await provider.open(s.ctx);
  assert.equal(
    router.where,
    "VPC vpc-bp1fake0vpc in cn-hangzhou, route table vtb-bp1fake0system, next hop instance i-bp1fake0node0a",
  );
  assert.deepEqual(fake.metadata, [
    "PUT /latest/api/token",
    "GET /latest/meta-data/region-id token",
    "GET /latest/meta-data/instance-id token",
    "GET /latest/meta-data/vpc-id token",
  ]);
  assert.deepEqual(
    fake.actions(),
    ["DescribeVpcs", "DescribeRouteTableList"],
    "the System table, not the custom one",
  );

  assert.equal(await router.ensureRoute(SUBNET), "created");
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.1.0/24 -> Instance i-bp1fake0node0a Available"]);
  assert.deepEqual(fake.actions().slice(2), [
    "DescribeRouteEntryList",
    "CreateRouteEntry",
    "DescribeRouteEntryList", // Pending
    "DescribeRouteEntryList", // Available
  ]);
  const create = fake.calls.find((c) => c.action === "CreateRouteEntry")!.params;
  assert.deepEqual(
    {
      RegionId: create.RegionId,
      RouteTableId: create.RouteTableId,
      DestinationCidrBlock: create.DestinationCidrBlock,
      NextHopType: create.NextHopType,
      NextHopId: create.NextHopId,
      Version: create.Version,
      Format: create.Format,
      SignatureMethod: create.SignatureMethod,
      SignatureVersion: create.SignatureVersion,
      AccessKeyId: create.AccessKeyId,
    },
    {
      RegionId: "cn-hangzhou",
      RouteTableId: "vtb-bp1fake0system",
      DestinationCidrBlock: "10.5.1.0/24",
      NextHopType: "Instance",
      NextHopId: "i-bp1fake0node0a",
      Version: "2016-04-28",
      Format: "JSON",
      SignatureMethod: "HMAC-SHA1",
      SignatureVersion: "1.0",
      AccessKeyId: fake.accessKeyId,
    },
  );
  assert.match(create.Timestamp!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.ok(fake.calls.every((c) => c.status === 200), JSON.stringify(fake.calls.map((c) => c.code)));
  assert.equal(
    new Set(fake.calls.map((c) => c.params.SignatureNonce)).size,
    fake.calls.length,
    "fresh nonces",
  );
  assert.ok(s.urls.every((u) => u.startsWith(fake.url)), "all HTTP went through ctx.fetch to the fake");

  const before = fake.calls.length;
  assert.equal(await router.ensureRoute(SUBNET), "kept");
  assert.deepEqual(fake.actions().slice(before), ["DescribeRouteEntryList"]);
});

Deno.test("ali-vpc: an entry for our subnet to another instance is deleted, waited out, and ours created", async () => {
  await using s = await setup();
  const { fake } = s;
  fake.seed("10.5.1.0/24", OTHER);
  fake.seed("10.5.2.0/24", OTHER);
  fake.seed("192.168.0.0/24", "vrt-local", { type: "System" });
  const router = await provider.open(s.ctx);
  assert.equal(await router.ensureRoute(SUBNET), "replaced");
  assert.deepEqual(fake.render(), [
    "vtb-bp1fake0system 10.5.1.0/24 -> Instance i-bp1fake0node0a Available",
    "vtb-bp1fake0system 10.5.2.0/24 -> Instance i-bp1someone0else Available",
    "vtb-bp1fake0system 192.168.0.0/24 -> local vrt-local Available",
  ]);
  assert.deepEqual(fake.actions().slice(2), [
    "DescribeRouteEntryList",
    "DeleteRouteEntry",
    "DescribeRouteEntryList", // Deleting
    "DescribeRouteEntryList", // gone
    "CreateRouteEntry",
    "DescribeRouteEntryList",
    "DescribeRouteEntryList",
  ]);
  const del = fake.calls.find((c) => c.action === "DeleteRouteEntry")!.params;
  assert.equal(del.DestinationCidrBlock, "10.5.1.0/24");
  assert.equal(del.NextHopId, OTHER);
  assert.match(del.RouteEntryId!, /^rte-/);
  assert.ok(fake.calls.every((c) => c.status === 200), "no request was refused (nothing raced the VRouter)");
});

Deno.test("ali-vpc: an entry that is still changing is waited for first", async () => {
  await using s = await setup();
  const { fake } = s;
  // Ours, Pending (a previous attempt that timed out): wait, then it is simply kept.
  fake.seed("10.5.1.0/24", fake.instanceId, { status: "Pending" });
  const router = await provider.open(s.ctx);
  assert.equal(await router.ensureRoute(SUBNET), "kept");
  assert.ok(!fake.actions().includes("CreateRouteEntry"));

  // Someone else's, Pending: wait until it may be deleted (else IncorrectRouteEntryStatus).
  fake.remove("10.5.1.0/24");
  fake.seed("10.5.1.0/24", OTHER, { status: "Pending" });
  assert.equal(await router.ensureRoute(SUBNET), "replaced");
  assert.ok(fake.calls.every((c) => c.status === 200), JSON.stringify(fake.calls.map((c) => c.code)));
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.1.0/24 -> Instance i-bp1fake0node0a Available"]);
});

Deno.test("ali-vpc: follows NextToken, so an ignored destination filter cannot hide our entry", async () => {
  await using s = await setup({ fake: { entryPageSize: 2 } });
  const { fake } = s;
  fake.ignoreDestinationFilter = true;
  for (let i = 2; i <= 6; i++) fake.seed(`10.5.${i}.0/24`, OTHER);
  fake.seed("10.5.1.0/24", fake.instanceId); // seeded last: on the third page
  const router = await provider.open(s.ctx);
  assert.equal(await router.ensureRoute(SUBNET), "kept");
  const lists = fake.calls.filter((c) => c.action === "DescribeRouteEntryList");
  assert.deepEqual(lists.map((c) => c.params.NextToken ?? ""), ["", "page-2", "page-4"]);
});

Deno.test("ali-vpc: a System route for our subnet is never replaced", async () => {
  await using s = await setup();
  s.fake.seed("10.5.1.0/24", "vrt-local", { type: "System" });
  const router = await provider.open(s.ctx);
  const e = await rejectsWith(router.ensureRoute(SUBNET), "RouteEntryNotCustom", false);
  assert.match(e.message, /System route for 10\.5\.1\.0\/24/);
  assert.ok(!s.fake.actions().includes("DeleteRouteEntry"));
});

Deno.test("ali-vpc: credentials from Backend options (any case) win over the environment", async () => {
  await using s = await setup({
    env: { ACCESS_KEY_ID: "wrong", ACCESS_KEY_SECRET: "wrong" },
    backend: {},
  });
  s.ctx.backend = {
    Type: "ali-vpc",
    accesskeyid: s.fake.accessKeyId,
    AccessKeySecret: s.fake.accessKeySecret,
  };
  const router = await provider.open(s.ctx);
  assert.equal(await router.ensureRoute(SUBNET), "created");
});

Deno.test("ali-vpc: credentials from ACCESS_KEY_ID / ACCESS_KEY_SECRET", async () => {
  await using s = await setup();
  assert.deepEqual(s.ctx.backend, { Type: "ali-vpc" });
  const router = await provider.open(s.ctx);
  assert.equal(await router.ensureRoute(SUBNET), "created");
});

Deno.test("ali-vpc: missing credentials fail before any request, naming both ways to set them", async () => {
  for (const partial of [{}, { ACCESS_KEY_ID: "LTAI5t" }, { ACCESS_KEY_SECRET: "s" }]) {
    await using s = await setup({ noCredentials: true, env: partial });
    await assert.rejects(provider.open(s.ctx), (e: Error) => {
      assert.ok(!(e instanceof CloudApiError));
      assert.match(e.message, /ACCESS_KEY_ID and ACCESS_KEY_SECRET must be provided!/);
      assert.match(e.message, /"AccessKeyID" and "AccessKeySecret"/);
      assert.doesNotMatch(e.message, /\n/);
      return true;
    });
    assert.deepEqual(s.fake.metadata, []);
    assert.deepEqual(s.fake.calls, []);
  }
  await using s = await setup({ noCredentials: true, backend: { AccessKeyID: 7 } });
  await assert.rejects(provider.open(s.ctx), /Backend "AccessKeyID" is 7, must be a string/);
});

Deno.test("ali-vpc: bad credentials are not retryable and say what to check", async () => {
  {
    await using s = await setup({ env: { ACCESS_KEY_SECRET: "not-the-secret" } });
    const e = await rejectsWith(provider.open(s.ctx), "SignatureDoesNotMatch", false);
    assert.match(e.message, /^Alibaba Cloud DescribeVpcs failed: SignatureDoesNotMatch: /);
    assert.match(e.message, /RequestId [0-9A-F-]{36}/);
    assert.match(
      e.message,
      /check Backend "AccessKeyID"\/"AccessKeySecret" or ACCESS_KEY_ID\/ACCESS_KEY_SECRET$/,
    );
  }
  {
    await using s = await setup({ env: { ACCESS_KEY_ID: "LTAI5tUnknown" } });
    await rejectsWith(provider.open(s.ctx), "InvalidAccessKeyId.NotFound", false);
  }
  {
    await using s = await setup();
    s.fake.denied.add("CreateRouteEntry");
    const router = await provider.open(s.ctx);
    const e = await rejectsWith(router.ensureRoute(SUBNET), "Forbidden.RAM", false);
    assert.match(e.message, /grant the RAM user .*vpc:CreateRouteEntry/);
  }
});

Deno.test("ali-vpc: throttling, conflicts and server errors are retryable", async () => {
  await using s = await setup();
  const { fake } = s;
  fake.throttle(1);
  await rejectsWith(provider.open(s.ctx), "Throttling.User", true);
  fake.failNext = 1;
  await rejectsWith(provider.open(s.ctx), "ServiceUnavailable", true);
  const router = await provider.open(s.ctx);

  // Another entry of the table is being created: the VRouter refuses changes until it is done.
  fake.seed("10.5.9.0/24", OTHER, { status: "Pending" });
  await rejectsWith(router.ensureRoute(SUBNET), "OperationConflict", true);
  assert.equal(await router.ensureRoute(SUBNET), "created", "the retry succeeds once the other is done");
});

Deno.test("ali-vpc: an entry that stays Pending past the deadline is a retryable error", async () => {
  await using s = await setup({ fake: { transitionPolls: 1_000_000 } });
  const slow = createAliVpcProvider({ pollFirstMs: 1, pollMaxMs: 2, waitMs: 30 });
  const router = await slow.open(s.ctx);
  const e = await rejectsWith(router.ensureRoute(SUBNET), "RouteEntryNotReady", true);
  assert.match(e.message, /10\.5\.1\.0\/24 in vtb-bp1fake0system is Pending, not Available/);
});

Deno.test("ali-vpc: hardened metadata mode, and a metadata service that is not there", async () => {
  {
    await using s = await setup({ fake: { requireToken: true } });
    await provider.open(s.ctx);
  }
  {
    await using s = await setup();
    const inner = s.ctx.fetch;
    s.ctx.fetch = (input, init) =>
      String(input).includes("/latest/")
        ? Promise.reject(new TypeError("error sending request: Connection refused"))
        : inner(input, init);
    await assert.rejects(
      provider.open(s.ctx),
      /^Error: Cannot read the region from the Alibaba Cloud metadata service at http:\/\/127\.0\.0\.1:\d+\/latest\/meta-data\/region-id: .*Connection refused; is this node running on Alibaba Cloud\?$/,
    );
  }
});

Deno.test("ali-vpc: the default endpoints are Alibaba's (regional VPC API, 100.100.100.200)", async () => {
  await using s = await setup({ env: { [ALI_METADATA_ENDPOINT_ENV]: "" } });
  await assert.rejects(
    provider.open(s.ctx),
    /metadata service at http:\/\/100\.100\.100\.200\/latest\/meta-data\/region-id/,
  );
  await using t = await setup({ env: { [ALI_VPC_ENDPOINT_ENV]: "" } });
  const e = await rejectsWith(provider.open(t.ctx), "NetworkError", true);
  assert.match(e.message, /https:\/\/vpc\.cn-hangzhou\.aliyuncs\.com/);
  assert.ok(t.urls.at(-1)!.startsWith("https://vpc.cn-hangzhou.aliyuncs.com/?AccessKeyId="));
});

Deno.test("ali-vpc: Backend RouteTableID names the table and skips its discovery", async () => {
  await using s = await setup({ backend: { RouteTableID: "vtb-bp1fake0custom" } });
  const router = await provider.open(s.ctx);
  assert.match(router.where, /route table vtb-bp1fake0custom/);
  assert.equal(await router.ensureRoute(SUBNET), "created");
  assert.ok(!s.fake.actions().includes("DescribeVpcs"));
  assert.deepEqual(s.fake.render(), [
    "vtb-bp1fake0custom 10.5.1.0/24 -> Instance i-bp1fake0node0a Available",
  ]);
});

Deno.test("ali-vpc: the exported provider and backend", () => {
  assert.equal(aliVpcProvider.type, "ali-vpc");
  assert.equal(aliVpcBackend.type, "ali-vpc");
});

/** Polls `pred` until true; fails with `what` and the state after `ms`. */
async function eventually(pred: () => boolean, what: () => string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("ali-vpc backend: retries a throttled start, routes the lease, puts a deleted entry back", async () => {
  const fake = await FakeAliCloud.start();
  const r = new BackendRig();
  const urls: string[] = [];
  try {
    Object.assign(r.host.envs, {
      [ALI_METADATA_ENDPOINT_ENV]: fake.url,
      [ALI_VPC_ENDPOINT_ENV]: fake.url,
      ACCESS_KEY_ID: fake.accessKeyId,
      ACCESS_KEY_SECRET: fake.accessKeySecret,
    });
    const factory = createCloudRouteBackend(provider, {
      fetch: loopbackFetch(urls),
      checkMs: 20,
      retryFirstMs: 1,
    });
    assert.equal(factory.type, "ali-vpc");
    // The first look at the route is throttled: the start-up loop logs it, backs off, tries again.
    fake.throttle(1, "DescribeRouteEntryList");
    await r.start(factory, `{"Network":"10.5.0.0/16","Backend":{"Type":"ali-vpc"}}`, r.seedHost());
    assert.match(
      r.log.messages("error")[0] ?? "",
      /^Alibaba Cloud DescribeRouteEntryList failed: Throttling\.User: Request was denied due to user flow control\. \(RequestId [0-9A-F-]+\); retrying in 1s$/,
    );
    const subnet = r.network.lease.subnet.toString();
    const ours = `vtb-bp1fake0system ${subnet} -> Instance i-bp1fake0node0a Available`;
    assert.deepEqual(fake.render(), [ours], "the route is in place when registration returns");
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.equal(entries[0]!.value, `{"PublicIP":"192.168.1.10","PublicIPv6":null}`, "PublicIP only");
    assert.ok(r.log.messages("info").includes(`ali-vpc: created the route for ${subnet} to this instance`));

    // Someone deletes it in the console: the periodic check creates it again.
    fake.remove(subnet);
    await eventually(
      () =>
        r.log.messages("warn").includes(`ali-vpc: the route for ${subnet} had gone or changed; created it`),
      () => `${fake.render().join("; ")} log: ${r.log.messages().join(" | ")}`,
    );
    assert.ok(fake.render().includes(ours), fake.render().join("; "));

    // Someone points it at another instance: replaced.
    fake.remove(subnet);
    fake.seed(subnet, OTHER);
    await eventually(
      () =>
        r.log.messages("warn").includes(`ali-vpc: the route for ${subnet} had gone or changed; replaced it`),
      () => `${fake.render().join("; ")} log: ${r.log.messages().join(" | ")}`,
    );
    assert.ok(fake.render().includes(ours), fake.render().join("; "));
    assert.ok(urls.every((u) => u.startsWith(fake.url)));
  } finally {
    await r.stop();
    await fake.close();
  }
});

Deno.test("ali-vpc backend: bad credentials end registration (no retry loop)", async () => {
  const fake = await FakeAliCloud.start();
  const r = new BackendRig();
  try {
    Object.assign(r.host.envs, {
      [ALI_METADATA_ENDPOINT_ENV]: fake.url,
      [ALI_VPC_ENDPOINT_ENV]: fake.url,
      ACCESS_KEY_ID: fake.accessKeyId,
      ACCESS_KEY_SECRET: "wrong",
    });
    const factory = createCloudRouteBackend(provider, { fetch: loopbackFetch([]), retryFirstMs: 1 });
    await assert.rejects(
      r.start(factory, `{"Network":"10.5.0.0/16","Backend":{"Type":"ali-vpc"}}`, r.seedHost()),
      (e: Error) => e instanceof CloudApiError && e.code === "SignatureDoesNotMatch",
    );
    assert.deepEqual(fake.actions(), ["DescribeVpcs"], "one attempt");
    assert.deepEqual((await r.kv.list("/coreos.com/network/subnets/")).entries, [], "no lease taken");
  } finally {
    await r.stop();
    await fake.close();
  }
});

Deno.test("ali-vpc: deleteRoute removes our entry and waits until it has finished Deleting", async () => {
  await using s = await setup();
  const { fake } = s;
  fake.seed("10.5.1.0/24", fake.instanceId);
  fake.seed("10.5.2.0/24", OTHER);
  const router = await provider.open(s.ctx);
  const before = fake.calls.length;
  assert.equal(await router.deleteRoute!(SUBNET), true);
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.2.0/24 -> Instance i-bp1someone0else Available"]);
  assert.deepEqual(fake.actions().slice(before), [
    "DescribeRouteEntryList",
    "DeleteRouteEntry",
    "DescribeRouteEntryList", // Deleting
    "DescribeRouteEntryList", // gone
  ]);
  const del = fake.calls.find((c) => c.action === "DeleteRouteEntry")!.params;
  assert.equal(del.RouteTableId, "vtb-bp1fake0system");
  assert.equal(del.DestinationCidrBlock, "10.5.1.0/24");
  assert.equal(del.NextHopId, fake.instanceId);
  assert.match(del.RouteEntryId!, /^rte-/);
  assert.ok(fake.calls.every((c) => c.status === 200), JSON.stringify(fake.calls.map((c) => c.code)));

  // Ours, still Pending (an earlier attempt): waited out, then deleted (else IncorrectRouteEntryStatus).
  fake.seed("10.5.1.0/24", fake.instanceId, { status: "Pending" });
  assert.equal(await router.deleteRoute!(SUBNET), true);
  assert.ok(fake.calls.every((c) => c.status === 200), JSON.stringify(fake.calls.map((c) => c.code)));
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.2.0/24 -> Instance i-bp1someone0else Available"]);
});

Deno.test("ali-vpc: deleteRoute keeps another instance's or a non-Custom entry for the subnet", async () => {
  await using s = await setup();
  const { fake } = s;
  fake.seed("10.5.1.0/24", OTHER);
  const router = await provider.open(s.ctx);
  assert.equal(await router.deleteRoute!(SUBNET), false);
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.1.0/24 -> Instance i-bp1someone0else Available"]);

  // Another instance's, still Pending: waited for, then left alone.
  fake.remove("10.5.1.0/24");
  fake.seed("10.5.1.0/24", OTHER, { status: "Pending" });
  assert.equal(await router.deleteRoute!(SUBNET), false);
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.1.0/24 -> Instance i-bp1someone0else Available"]);

  fake.remove("10.5.1.0/24");
  // Not Custom (a BGP route naming this instance): not flannel's, left alone.
  fake.seed("10.5.1.0/24", fake.instanceId, { type: "BGP" });
  assert.equal(await router.deleteRoute!(SUBNET), false);
  assert.equal(fake.render().length, 1);
  assert.ok(!fake.actions().includes("DeleteRouteEntry"));
});

Deno.test("ali-vpc: deleteRoute is false when there is no entry (following NextToken)", async () => {
  await using s = await setup({ fake: { entryPageSize: 2 } });
  const { fake } = s;
  fake.ignoreDestinationFilter = true;
  for (let i = 2; i <= 6; i++) fake.seed(`10.5.${i}.0/24`, fake.instanceId);
  const router = await provider.open(s.ctx);
  assert.equal(await router.deleteRoute!(SUBNET), false);
  const lists = fake.calls.filter((c) => c.action === "DescribeRouteEntryList");
  assert.deepEqual(lists.map((c) => c.params.NextToken ?? ""), ["", "page-2", "page-4"]);
  assert.ok(!fake.actions().includes("DeleteRouteEntry"));
  assert.equal(fake.render().length, 5, "other destinations untouched");

  // Ours on the last page: found and removed.
  fake.seed("10.5.1.0/24", fake.instanceId);
  assert.equal(await router.deleteRoute!(SUBNET), true);
  assert.ok(!fake.render().some((l) => l.includes("10.5.1.0/24")));
  assert.equal(fake.render().length, 5);
});

Deno.test("ali-vpc: deleteRoute with Forbidden.RAM on DeleteRouteEntry is not retryable", async () => {
  await using s = await setup();
  const { fake } = s;
  fake.seed("10.5.1.0/24", fake.instanceId);
  fake.denied.add("DeleteRouteEntry");
  const router = await provider.open(s.ctx);
  const e = await rejectsWith(router.deleteRoute!(SUBNET), "Forbidden.RAM", false);
  assert.match(e.message, /^Alibaba Cloud DeleteRouteEntry failed: Forbidden\.RAM: /);
  assert.match(e.message, /grant the RAM user .*vpc:DeleteRouteEntry/);
  assert.deepEqual(fake.render(), ["vtb-bp1fake0system 10.5.1.0/24 -> Instance i-bp1fake0node0a Available"]);
});

/**
 * aws-vpc: the provider and the whole backend against the fake IMDSv2 and EC2 API
 * (tests/fakes/cloud/aws_api.ts), which checks every signature and keeps the route tables.
 * Also the options, the credentials (environment, instance role and its refresh), how EC2's
 * errors are classified, and the small XML reader.
 */
import assert from "node:assert/strict";
import { AwsQueryClient, parseXml, xmlItems, xmlText } from "../../src/backends/cloud/aws_sigv4.ts";
import { awsVpcProvider, readRouteTableIds } from "../../src/backends/cloud/aws_vpc.ts";
import {
  CloudApiError,
  type CloudContext,
  createCloudRouteBackend,
} from "../../src/backends/cloud/route_backend.ts";
import { BackendConfigError } from "../../src/backends/options.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { type Clock, systemClock } from "../../src/util/clock.ts";
import { BackendRig } from "../fakes/backend_harness.ts";
import { FakeAws } from "../fakes/cloud/aws_api.ts";

const SUBNET = IP4Net.parse("10.244.7.0/24");

/** The only network these tests may use: anything but 127.0.0.1 is refused. */
const loopbackFetch: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.hostname !== "127.0.0.1") return Promise.reject(new Error(`test refused a fetch to ${url}`));
  return fetch(input, init);
};

function cloudCtx(
  fake: FakeAws,
  o: {
    env?: Record<string, string>;
    backend?: Record<string, unknown>;
    clock?: Clock;
    fetch?: typeof fetch;
  } = {},
): CloudContext & { log: MemoryLogger } {
  const env = o.env ?? fake.env();
  return {
    backend: o.backend ?? { Type: "aws-vpc" },
    extAddr: IP4.parse("10.0.1.5"),
    env: (n) => env[n],
    fetch: o.fetch ?? loopbackFetch,
    log: new MemoryLogger(),
    clock: o.clock ?? systemClock,
    signal: new AbortController().signal,
  };
}

async function withFake(fn: (fake: FakeAws) => Promise<void>): Promise<void> {
  const fake = new FakeAws();
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

async function rejectsWith(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

/** The mutating calls the fake saw, as `Action table cidr -> instance` (no target for DeleteRoute). */
function writes(fake: FakeAws): string[] {
  return fake.requests.filter((r) => /Route$/.test(r.action)).map((r) =>
    `${r.action} ${r.params.RouteTableId} ${r.params.DestinationCidrBlock}` +
    (r.params.InstanceId === undefined ? "" : ` -> ${r.params.InstanceId}`)
  );
}

Deno.test("aws-vpc: XML reader reads EC2's shapes, namespaces, entities, CDATA; tolerates junk", () => {
  const doc = parseXml(
    `<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><ec2:R xmlns:ec2="x"><requestId>r-1</requestId>` +
      `<set><item><a>1 &lt; 2 &amp; &#x41;&#66;</a></item><item><a><![CDATA[<raw>]]></a><b/></item></set>` +
      `</stray><tail attr="a>b">t</tail>`,
  );
  const root = doc.children[0]!;
  assert.equal(root.name, "R");
  assert.equal(xmlText(root, "requestId"), "r-1");
  assert.deepEqual(xmlItems(root, "set").map((i) => xmlText(i, "a")), ["1 < 2 & AB", "<raw>"]);
  assert.equal(xmlText(root, "tail"), "t", "a '>' inside an attribute does not end the tag");
  assert.equal(xmlText(root, "missing"), "");
  assert.deepEqual(xmlItems(root, "missing"), []);
  assert.equal(parseXml("not xml at all").children.length, 0);
});

Deno.test("aws-vpc: RouteTableID is optional, a string or a list; other types are one-line errors", () => {
  assert.deepEqual(readRouteTableIds({}), []);
  assert.deepEqual(readRouteTableIds({ RouteTableID: "" }), []);
  assert.deepEqual(readRouteTableIds({ routetableid: "rtb-1" }), ["rtb-1"]);
  assert.deepEqual(readRouteTableIds({ RouteTableID: ["rtb-1", "rtb-2", "rtb-1"] }), ["rtb-1", "rtb-2"]);
  for (const bad of [5, true, { id: "rtb-1" }, ["rtb-1", 2], [""]]) {
    assert.throws(() => readRouteTableIds({ RouteTableID: bad }), (e: Error) => {
      assert.ok(e instanceof BackendConfigError);
      assert.equal(
        e.message,
        `error decoding VPC backend config: Backend "RouteTableID" is ${
          JSON.stringify(bad)
        }, must be a route table ID ("rtb-…") or a list of them`,
      );
      return true;
    });
  }
});

Deno.test("aws-vpc: open reads IMDSv2, turns the source/dest check off, finds the subnet's table", async () => {
  await withFake(async (fake) => {
    const ctx = cloudCtx(fake);
    const router = await awsVpcProvider.open(ctx);
    assert.equal(
      router.where,
      "VPC vpc-0f0e0d0c in eu-west-1 (instance i-0123456789abcdef0), route table rtb-0subnet",
    );
    assert.equal(fake.imdsRequests[0], "PUT /latest/api/token", "a session token before any GET");
    assert.equal(fake.imdsRequests.filter((r) => r.startsWith("PUT")).length, 1, "the token is reused");
    assert.ok(!fake.imdsRequests.some((r) => r.includes("security-credentials")), "keys from the env");
    assert.equal(fake.sourceDestCheck, false);
    assert.deepEqual(fake.requests[0], {
      action: "ModifyInstanceAttribute",
      params: { Version: "2016-11-15", InstanceId: "i-0123456789abcdef0", "SourceDestCheck.Value": "false" },
      accessKeyId: fake.accessKeyId,
    });
    assert.deepEqual(fake.requests[1]?.params, {
      Version: "2016-11-15",
      "Filter.1.Name": "association.subnet-id",
      "Filter.1.Value.1": "subnet-0a1b2c3d",
    });
  });
});

Deno.test("aws-vpc: created, kept, replaced (foreign target, blackhole); only our route is touched", async () => {
  await withFake(async (fake) => {
    const t = fake.table("rtb-0subnet");
    t.routes.push(
      { cidr: "10.244.9.0/24", target: "i-0fedcba9876543210", state: "blackhole", origin: "CreateRoute" },
      { cidr: "10.244.0.0/16", target: "igw-0c0ffee0", state: "active", origin: "CreateRoute" },
    );
    const before = fake.render().filter((l) => !l.includes(" 10.244.7.0/24 "));
    const ctx = cloudCtx(fake);
    const router = await awsVpcProvider.open(ctx);
    assert.equal(await router.ensureRoute(SUBNET), "created");
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    const ours = t.routes.find((r) => r.cidr === "10.244.7.0/24")!;
    Object.assign(ours, { target: "i-0fedcba9876543210" });
    assert.equal(await router.ensureRoute(SUBNET), "replaced");
    assert.ok(
      ctx.log.messages("warn").includes(
        "aws-vpc: route table rtb-0subnet sends 10.244.7.0/24 to i-0fedcba9876543210 (active); pointing it at i-0123456789abcdef0",
      ),
      ctx.log.messages().join("\n"),
    );
    Object.assign(ours, { target: fake.instanceId, state: "blackhole" });
    assert.equal(await router.ensureRoute(SUBNET), "replaced");
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.ok(fake.render().includes("rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0 active"));
    assert.deepEqual(
      fake.render().filter((l) => !l.includes(" 10.244.7.0/24 ")),
      before,
      "nothing else changed",
    );
    assert.deepEqual(writes(fake), [
      "CreateRoute rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0",
      "ReplaceRoute rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0",
      "ReplaceRoute rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0",
    ]);
  });
});

Deno.test("aws-vpc: a route created by someone else between look and create is replaced", async () => {
  await withFake(async (fake) => {
    const racing: typeof fetch = async (input, init) => {
      if (typeof init?.body === "string" && init.body.startsWith("Action=CreateRoute&")) {
        fake.table("rtb-0subnet").routes.push({
          cidr: SUBNET.toString(),
          target: "i-0fedcba9876543210",
          state: "active",
          origin: "CreateRoute",
        });
      }
      return await loopbackFetch(input, init);
    };
    const router = await awsVpcProvider.open(cloudCtx(fake, { fetch: racing }));
    assert.equal(await router.ensureRoute(SUBNET), "replaced");
    assert.deepEqual(fake.render().filter((l) => l.includes(" 10.244.7.0/24 ")), [
      "rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0 active",
    ]);
  });
});

Deno.test("aws-vpc: without a subnet association the VPC's main table; with neither a clear error", async () => {
  await withFake(async (fake) => {
    fake.table("rtb-0subnet").subnets = [];
    const router = await awsVpcProvider.open(cloudCtx(fake));
    assert.match(router.where, /route table rtb-0main$/);
    assert.deepEqual(fake.requests[2]?.params, {
      Version: "2016-11-15",
      "Filter.1.Name": "vpc-id",
      "Filter.1.Value.1": "vpc-0f0e0d0c",
      "Filter.2.Name": "association.main",
      "Filter.2.Value.1": "true",
    });
    assert.equal(await router.ensureRoute(SUBNET), "created");
    assert.ok(fake.render().includes("rtb-0main 10.244.7.0/24 -> i-0123456789abcdef0 active"));

    fake.table("rtb-0main").main = false;
    const e = await rejectsWith(awsVpcProvider.open(cloudCtx(fake)));
    assert.equal(
      e.message,
      'Cannot find a route table for subnet subnet-0a1b2c3d in VPC vpc-0f0e0d0c: set Backend "RouteTableID" to the table this node\'s traffic uses',
    );
  });
});

Deno.test("aws-vpc: configured RouteTableID, one or a list, is used as given; an unknown one fails for good", async () => {
  await withFake(async (fake) => {
    let router = await awsVpcProvider.open(cloudCtx(fake, { backend: { RouteTableID: "rtb-0other" } }));
    assert.match(router.where, /route table rtb-0other$/);
    assert.ok(!fake.actions().includes("DescribeRouteTables"), "no discovery");
    assert.equal(await router.ensureRoute(SUBNET), "created");

    router = await awsVpcProvider.open(
      cloudCtx(fake, { backend: { RouteTableID: ["rtb-0main", "rtb-0other"] } }),
    );
    assert.match(router.where, /route tables rtb-0main, rtb-0other$/);
    assert.equal(await router.ensureRoute(SUBNET), "created", "created in rtb-0main, kept in rtb-0other");
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.deepEqual(fake.render().filter((l) => l.includes(" 10.244.7.0/24 ")), [
      "rtb-0main 10.244.7.0/24 -> i-0123456789abcdef0 active",
      "rtb-0other 10.244.7.0/24 -> i-0123456789abcdef0 active",
    ]);

    router = await awsVpcProvider.open(cloudCtx(fake, { backend: { RouteTableID: "rtb-0gone" } }));
    const e = await rejectsWith(router.ensureRoute(SUBNET));
    assert.ok(e instanceof CloudApiError);
    assert.equal(e.code, "InvalidRouteTableID.NotFound");
    assert.equal(e.retryable, false);
    assert.match(
      e.message,
      /^AWS DescribeRouteTables failed: InvalidRouteTableID\.NotFound: The routeTable ID 'rtb-0gone' does not exist \(RequestID [0-9a-f-]+\)$/,
    );
  });
});

Deno.test("aws-vpc: keys from the instance role, with their token, fetched again before they expire", async () => {
  await withFake(async (fake) => {
    let offset = 0;
    const clock: Clock = { now: () => Date.now() + offset, sleep: systemClock.sleep };
    fake.now = clock.now;
    fake.roleKeyLifetimeMs = 60 * 60_000;
    const router = await awsVpcProvider.open(cloudCtx(fake, { env: fake.env(false), clock }));
    assert.equal(await router.ensureRoute(SUBNET), "created");
    const [first] = fake.roleKeyIds;
    assert.ok(fake.imdsRequests.includes("GET /latest/meta-data/iam/security-credentials/"));
    assert.ok(fake.imdsRequests.includes("GET /latest/meta-data/iam/security-credentials/flannel-node"));
    assert.ok(fake.requests.every((r) => r.accessKeyId === first), "the role's keys, token accepted");

    const second = fake.rotateRoleKeys();
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.equal(fake.requests.at(-1)!.accessKeyId, first, "cached while far from expiry");

    offset = 56 * 60_000; // within five minutes of the first keys' Expiration
    fake.revoke(first!);
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.equal(fake.requests.at(-1)!.accessKeyId, second);
  });
});

Deno.test("aws-vpc: no keys and no role, or half the keys, are one-line errors naming the fix", async () => {
  await withFake(async (fake) => {
    fake.role = undefined;
    let e = await rejectsWith(awsVpcProvider.open(cloudCtx(fake, { env: fake.env(false) })));
    assert.equal(
      e.message,
      "No AWS credentials for the aws-vpc backend: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or attach an IAM role (instance profile) to i-0123456789abcdef0",
    );
    e = await rejectsWith(
      awsVpcProvider.open(
        cloudCtx(fake, { env: { ...fake.env(false), AWS_ACCESS_KEY_ID: fake.accessKeyId } }),
      ),
    );
    assert.equal(
      e.message,
      "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither to use the instance role",
    );
  });
});

Deno.test("aws-vpc: a wrong secret is AuthFailure (not retryable); throttling and 5xx are retryable", async () => {
  await withFake(async (fake) => {
    const ctx = cloudCtx(fake, { env: { ...fake.env(), AWS_SECRET_ACCESS_KEY: "wrong" } });
    // Fails at open, where the table is looked up: no retry can fix a wrong secret.
    const auth = await rejectsWith(awsVpcProvider.open(ctx));
    assert.match(ctx.log.messages("warn")[0]!, /cannot turn off the source\/destination check .*AuthFailure/);
    assert.ok(auth instanceof CloudApiError);
    assert.equal(auth.code, "AuthFailure");
    assert.equal(auth.retryable, false);
    assert.match(
      auth.message,
      /^AWS DescribeRouteTables failed: AuthFailure: AWS was not able to validate the provided access credentials \(check the access key and secret, or the instance role\) \(RequestID [0-9a-f-]+\)$/,
    );
    assert.equal(fake.requests.length, 0, "nothing got past the signature check");

    const good = await awsVpcProvider.open(cloudCtx(fake));
    fake.throttle(1);
    const throttled = await rejectsWith(good.ensureRoute(SUBNET));
    assert.ok(throttled instanceof CloudApiError);
    assert.equal(throttled.code, "RequestLimitExceeded");
    assert.equal(throttled.retryable, true);
    fake.failNext.push({ status: 500, code: "InternalError", message: "An internal error has occurred" });
    const internal = await rejectsWith(good.ensureRoute(SUBNET));
    assert.ok(internal instanceof CloudApiError && internal.retryable && internal.code === "InternalError");
    fake.failNext.push({ status: 503, code: "SlowDown", message: "A code we do not know" });
    const unknown5xx = await rejectsWith(good.ensureRoute(SUBNET));
    assert.ok(unknown5xx instanceof CloudApiError && unknown5xx.retryable, "any 5xx is retryable");
    fake.failNext.push({ status: 400, code: "InvalidParameterValue", message: "Value (x) is invalid" });
    const bad = await rejectsWith(good.ensureRoute(SUBNET));
    assert.ok(bad instanceof CloudApiError && !bad.retryable, "a 4xx we do not know is not");
    assert.equal(await good.ensureRoute(SUBNET), "created");
  });
});

Deno.test("aws-vpc: a missing permission names it; only the source/dest check is allowed to miss", async () => {
  await withFake(async (fake) => {
    fake.deny.add("ModifyInstanceAttribute").add("CreateRoute");
    const ctx = cloudCtx(fake);
    const router = await awsVpcProvider.open(ctx);
    assert.equal(fake.sourceDestCheck, true);
    const [warn] = ctx.log.messages("warn");
    assert.match(
      warn!,
      /^aws-vpc: cannot turn off the source\/destination check of i-0123456789abcdef0 \(AWS ModifyInstanceAttribute failed: UnauthorizedOperation: .*\(grant ec2:ModifyInstanceAttribute to these credentials\).*\); grant ec2:ModifyInstanceAttribute or turn it off by hand/,
    );
    assert.ok(!warn!.includes("\n"));
    const e = await rejectsWith(router.ensureRoute(SUBNET));
    assert.ok(e instanceof CloudApiError);
    assert.equal(e.code, "UnauthorizedOperation");
    assert.equal(e.retryable, false);
    assert.match(e.message, /\(grant ec2:CreateRoute to these credentials\)/);
  });
});

Deno.test("aws-vpc: metadata and endpoint problems say where and what", async () => {
  await withFake(async (fake) => {
    const url = fake.url;
    await fake.close();
    const e = await rejectsWith(awsVpcProvider.open(cloudCtx(fake)));
    assert.match(
      e.message,
      new RegExp(`^Cannot read an IMDSv2 token from the AWS metadata service at ${url}/latest/api/token: .*`),
    );
    assert.ok(!e.message.includes("\n"));
  });
  await withFake(async (fake) => {
    const e = await rejectsWith(
      awsVpcProvider.open(cloudCtx(fake, { env: { ...fake.env(), AWS_ENDPOINT_URL_EC2: "ec2.local" } })),
    );
    assert.equal(
      e.message,
      'AWS_ENDPOINT_URL_EC2 is "ec2.local", must be an http(s) URL such as https://ec2.eu-west-1.amazonaws.com',
    );
    const env = fake.env();
    delete env.AWS_ENDPOINT_URL_EC2;
    env.AWS_ENDPOINT_URL = fake.url;
    const router = await awsVpcProvider.open(cloudCtx(fake, { env }));
    assert.equal(await router.ensureRoute(SUBNET), "created", "AWS_ENDPOINT_URL is the fallback");
  });
});

// ---- uninstall (--cleanup) ----

const FOREIGN = "i-0fedcba9876543210";

Deno.test("aws-vpc: deleteRoute removes ours in each configured table (blackholed too), keeps a foreign one", async () => {
  await withFake(async (fake) => {
    const route = (target: string, state: "active" | "blackhole" = "active") => ({
      cidr: SUBNET.toString(),
      target,
      state,
      origin: "CreateRoute" as const,
    });
    fake.table("rtb-0main").routes.push(route(fake.instanceId));
    fake.table("rtb-0subnet").routes.push(
      route(fake.instanceId, "blackhole"),
      // Not exactly our subnet, though ours: untouched.
      { cidr: "10.244.0.0/16", target: fake.instanceId, state: "active", origin: "CreateRoute" },
      { cidr: "10.244.9.0/24", target: fake.instanceId, state: "active", origin: "CreateRoute" },
    );
    fake.table("rtb-0other").routes.push(route(FOREIGN));
    const before = fake.render();
    const router = await awsVpcProvider.open(
      cloudCtx(fake, { backend: { RouteTableID: ["rtb-0main", "rtb-0subnet", "rtb-0other"] } }),
    );
    assert.equal(await router.deleteRoute!(SUBNET), true);
    assert.deepEqual(writes(fake), [
      "DeleteRoute rtb-0main 10.244.7.0/24",
      "DeleteRoute rtb-0subnet 10.244.7.0/24",
    ]);
    assert.deepEqual(
      fake.requests.find((r) => r.action === "DeleteRoute")?.params,
      { Version: "2016-11-15", RouteTableId: "rtb-0main", DestinationCidrBlock: "10.244.7.0/24" },
    );
    assert.deepEqual(
      fake.render(),
      before.filter((l) =>
        l !== "rtb-0main 10.244.7.0/24 -> i-0123456789abcdef0 active" &&
        l !== "rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0 blackhole"
      ),
    );
    assert.ok(fake.render().includes(`rtb-0other 10.244.7.0/24 -> ${FOREIGN} active`), "the new owner's");

    assert.equal(await router.deleteRoute!(SUBNET), false, "nothing of ours is left");
    assert.equal(writes(fake).length, 2);
  });
});

Deno.test("aws-vpc: deleteRoute is false with nothing of ours, in the discovered table; a race is no error", async () => {
  await withFake(async (fake) => {
    const router = await awsVpcProvider.open(cloudCtx(fake));
    assert.equal(await router.deleteRoute!(SUBNET), false, "no route at all");
    fake.table("rtb-0subnet").routes.push({
      cidr: SUBNET.toString(),
      target: FOREIGN,
      state: "blackhole",
      origin: "CreateRoute",
    });
    assert.equal(await router.deleteRoute!(SUBNET), false, "only someone else's");
    assert.deepEqual(writes(fake), []);
    assert.ok(fake.render().includes(`rtb-0subnet 10.244.7.0/24 -> ${FOREIGN} blackhole`));
    // Our route in the main table is not this router's concern: it uses the subnet's table.
    fake.table("rtb-0main").routes.push({
      cidr: SUBNET.toString(),
      target: fake.instanceId,
      state: "active",
      origin: "CreateRoute",
    });
    assert.equal(await router.deleteRoute!(SUBNET), false);
    assert.deepEqual(writes(fake), []);

    // Ours when looked at, gone by the time DeleteRoute arrives (InvalidRoute.NotFound): false.
    const racing: typeof fetch = async (input, init) => {
      if (typeof init?.body === "string" && init.body.startsWith("Action=DeleteRoute&")) {
        const t = fake.table("rtb-0subnet");
        t.routes = t.routes.filter((r) => r.cidr !== SUBNET.toString());
      }
      return await loopbackFetch(input, init);
    };
    const t = fake.table("rtb-0subnet");
    t.routes = t.routes.filter((r) => r.cidr !== SUBNET.toString());
    t.routes.push({
      cidr: SUBNET.toString(),
      target: fake.instanceId,
      state: "active",
      origin: "CreateRoute",
    });
    const raced = await awsVpcProvider.open(cloudCtx(fake, { fetch: racing }));
    assert.equal(await raced.deleteRoute!(SUBNET), false);
    assert.deepEqual(writes(fake), ["DeleteRoute rtb-0subnet 10.244.7.0/24"]);
  });
});

Deno.test("aws-vpc: a denied DeleteRoute is a non-retryable error naming ec2:DeleteRoute", async () => {
  await withFake(async (fake) => {
    const router = await awsVpcProvider.open(cloudCtx(fake));
    assert.equal(await router.ensureRoute(SUBNET), "created");
    fake.deny.add("DeleteRoute");
    const e = await rejectsWith(router.deleteRoute!(SUBNET));
    assert.ok(e instanceof CloudApiError);
    assert.equal(e.action, "DeleteRoute");
    assert.equal(e.code, "UnauthorizedOperation");
    assert.equal(e.retryable, false);
    assert.match(
      e.message,
      /^AWS DeleteRoute failed: UnauthorizedOperation: .*\(grant ec2:DeleteRoute to these credentials\)/,
    );
    assert.ok(fake.render().includes("rtb-0subnet 10.244.7.0/24 -> i-0123456789abcdef0 active"));

    fake.deny.delete("DeleteRoute");
    fake.throttle(1);
    const throttled = await rejectsWith(router.deleteRoute!(SUBNET));
    assert.ok(throttled instanceof CloudApiError && throttled.retryable, "throttling is retryable");
    assert.equal(await router.deleteRoute!(SUBNET), true);
    assert.ok(!fake.render().some((l) => l.includes(" 10.244.7.0/24 ")));
  });
});

Deno.test("aws-vpc fake: DeleteRoute answers as EC2 does, a missing route is InvalidRoute.NotFound", async () => {
  await withFake(async (fake) => {
    const ec2 = new AwsQueryClient(
      { fetch: loopbackFetch, clock: systemClock, signal: new AbortController().signal },
      { service: "ec2", version: "2016-11-15", region: fake.region, endpoint: new URL(fake.url) },
      {
        get: () => Promise.resolve({ accessKeyId: fake.accessKeyId, secretAccessKey: fake.secretAccessKey }),
      },
    );
    fake.table("rtb-0other").routes.push({
      cidr: "10.244.3.0/24",
      target: FOREIGN,
      state: "active",
      origin: "CreateRoute",
    });
    const doc = await ec2.call("DeleteRoute", {
      RouteTableId: "rtb-0other",
      DestinationCidrBlock: "10.244.3.0/24",
    });
    assert.equal(doc.name, "DeleteRouteResponse");
    assert.match(xmlText(doc, "requestId"), /^[0-9a-f-]{36}$/);
    assert.equal(xmlText(doc, "return"), "true");
    assert.ok(!fake.render().some((l) => l.includes(" 10.244.3.0/24 ")));

    const gone = await rejectsWith(
      ec2.call("DeleteRoute", { RouteTableId: "rtb-0other", DestinationCidrBlock: "10.244.3.0/24" }),
    );
    assert.ok(gone instanceof CloudApiError && !gone.retryable);
    assert.equal(gone.code, "InvalidRoute.NotFound");
    assert.match(
      gone.message,
      /^AWS DeleteRoute failed: InvalidRoute\.NotFound: no route with destination-cidr-block 10\.244\.3\.0\/24 in route table rtb-0other \(RequestID [0-9a-f-]+\)$/,
    );
    const local = await rejectsWith(
      ec2.call("DeleteRoute", { RouteTableId: "rtb-0other", DestinationCidrBlock: "10.0.0.0/16" }),
    );
    assert.ok(local instanceof CloudApiError && local.code === "InvalidParameterValue");
    assert.ok(fake.render().includes("rtb-0other 10.0.0.0/16 -> local active"));
  });
});

// ---- the whole backend ----

async function startRig(fake: FakeAws, rig: BackendRig) {
  Object.assign(rig.host.envs, fake.env());
  const factory = createCloudRouteBackend(awsVpcProvider, {
    fetch: loopbackFetch,
    checkMs: 20,
    retryFirstMs: 5,
  });
  await rig.start(factory, `{"Network":"10.244.0.0/16","Backend":{"Type":"aws-vpc"}}`, rig.seedHost());
  return rig.network.lease.subnet;
}

async function until(what: string, pred: () => boolean, rig: BackendRig, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) {
      throw new Error(`${what} within ${ms} ms; log:\n${rig.log.messages().join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("aws-vpc backend: registers with the route in place, puts it back when deleted", async () => {
  await withFake(async (fake) => {
    const rig = new BackendRig();
    try {
      const subnet = await startRig(fake, rig);
      const line = `rtb-0subnet ${subnet} -> i-0123456789abcdef0 active`;
      assert.ok(fake.render().includes(line), fake.render().join("\n"));
      const { entries } = await rig.kv.list("/coreos.com/network/subnets/");
      assert.equal(entries[0]!.value, `{"PublicIP":"192.168.1.10","PublicIPv6":null}`);
      assert.ok(
        rig.log.messages("info").includes(`aws-vpc: created the route for ${subnet} to this instance`),
      );

      const t = fake.table("rtb-0subnet");
      t.routes = t.routes.filter((r) => r.cidr !== subnet.toString());
      await until("the route came back", () => fake.render().includes(line), rig);
      await until(
        "the repair was logged",
        () =>
          rig.log.messages("warn").includes(
            `aws-vpc: the route for ${subnet} had gone or changed; created it`,
          ),
        rig,
      );
    } finally {
      await rig.stop();
    }
  });
});

Deno.test("aws-vpc backend: throttled at start-up, it backs off and registers", async () => {
  await withFake(async (fake) => {
    fake.throttle(4); // ModifyInstanceAttribute, discovery at open, then two ensureRoute attempts
    const rig = new BackendRig();
    try {
      const subnet = await startRig(fake, rig);
      assert.ok(fake.render().includes(`rtb-0subnet ${subnet} -> i-0123456789abcdef0 active`));
      const errors = rig.log.messages("error");
      assert.equal(errors.length, 2, errors.join("\n"));
      assert.match(
        errors[0]!,
        /^AWS DescribeRouteTables failed: RequestLimitExceeded: Request limit exceeded\..*; retrying in 1s$/,
      );
      assert.equal(fake.sourceDestCheck, true, "as upstream, tried once; the warning says so");
    } finally {
      await rig.stop();
    }
  });
});

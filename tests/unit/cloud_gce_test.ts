/**
 * The `gce` cloud route provider against a fake metadata server and Compute Engine API on
 * loopback: what it asks GCE for (one route named for the subnet, next hop this instance),
 * created/kept/replaced, operation polling, the project option, token refresh, which errors
 * are retryable, and uninstall (deleteRoute removes only a route to this instance). Then the
 * whole backend through the shared cloud route framework: the route exists when registration
 * returns, and one deleted behind our back is put back.
 */
import assert from "node:assert/strict";
import {
  CloudApiError,
  type CloudContext,
  createCloudRouteBackend,
} from "../../src/backends/cloud/route_backend.ts";
import { createGceProvider, gceBackend, gceProvider, gceRouteName } from "../../src/backends/cloud/gce.ts";
import { BackendConfigError } from "../../src/backends/options.ts";
import type { BackendFactory, Network } from "../../src/backends/types.ts";
import type { ExtIface } from "../../src/iface/mod.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import type { Clock } from "../../src/util/clock.ts";
import { BackendRig } from "../fakes/backend_harness.ts";
import { CANONICAL, FakeGce, type FakeGceOptions } from "../fakes/cloud/gce_api.ts";

const SUBNET = IP4Net.parse("10.5.3.0/24");

/** Time that moves only when someone sleeps; records the sleeps. */
class StepClock implements Clock {
  t = 1_700_000_000_000;
  readonly sleeps: number[] = [];
  now() {
    return this.t;
  }
  sleep(ms: number, signal?: AbortSignal) {
    if (signal?.aborted) return Promise.reject(signal.reason);
    this.sleeps.push(ms);
    this.t += ms;
    return Promise.resolve();
  }
}

/** The runtime's fetch, refusing anything but the fakes on loopback. */
const loopbackFetch: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.hostname !== "127.0.0.1") return Promise.reject(new TypeError(`the test refuses to fetch ${url}`));
  return fetch(input, init);
};

function context(
  fake: FakeGce,
  o: { backend?: Record<string, unknown>; env?: Record<string, string>; clock?: Clock } = {},
): CloudContext & { log: MemoryLogger } {
  const env = { ...fake.env, ...o.env };
  return {
    backend: { Type: "gce", ...o.backend },
    extAddr: IP4.parse("10.128.0.5"),
    env: (name) => env[name],
    fetch: loopbackFetch,
    log: new MemoryLogger(),
    clock: o.clock ?? new StepClock(),
    signal: new AbortController().signal,
  };
}

/** Runs `fn` with a fresh fake, closed afterwards. */
async function withFake(opts: FakeGceOptions, fn: (fake: FakeGce) => Promise<void>): Promise<void> {
  const fake = FakeGce.start(opts);
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

async function rejectsApi(p: Promise<unknown>): Promise<CloudApiError> {
  try {
    await p;
  } catch (e) {
    assert(e instanceof CloudApiError, `want a CloudApiError, got ${e}`);
    return e;
  }
  assert.fail("want a CloudApiError, got success");
}

Deno.test("gce: route names are flannel-<subnet> with dashes and valid GCE names", () => {
  for (
    const [subnet, name] of [
      ["10.5.3.0/24", "flannel-10-5-3-0-24"],
      ["192.168.128.0/17", "flannel-192-168-128-0-17"],
      ["10.244.0.0/16", "flannel-10-244-0-0-16"],
      ["255.255.255.252/30", "flannel-255-255-255-252-30"],
    ]
  ) {
    const got = gceRouteName(IP4Net.parse(subnet!));
    assert.equal(got, name);
    assert.match(got, /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/);
  }
  assert.equal(gceProvider.type, "gce");
  assert.equal(gceBackend.type, "gce");
});

Deno.test("gce: created: one route for the subnet to this instance, after the operation is DONE", async () => {
  await withFake({}, async (fake) => {
    const clock = new StepClock();
    const router = await gceProvider.open(context(fake, { clock }));
    assert.equal(
      router.where,
      "network default in project demo-project, next hop instance node-1 in us-central1-a",
    );

    assert.equal(await router.ensureRoute(SUBNET), "created");
    assert.deepEqual(fake.render(), [
      "flannel-10-5-3-0-24 10.5.3.0/24 projects/demo-project/global/networks/default -> " +
      "projects/demo-project/zones/us-central1-a/instances/node-1",
    ]);
    const [post, ...more] = fake.calls("POST", "/global/routes");
    assert.equal(more.length, 0);
    const body = post!.body as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), [
      "description",
      "destRange",
      "name",
      "network",
      "nextHopInstance",
      "priority",
    ]);
    assert.equal(body.name, "flannel-10-5-3-0-24");
    assert.equal(body.destRange, "10.5.3.0/24");
    assert.equal(body.priority, 1000);
    assert.equal(body.network, `${CANONICAL}projects/demo-project/global/networks/default`);
    assert.equal(
      body.nextHopInstance,
      `${CANONICAL}projects/demo-project/zones/us-central1-a/instances/node-1`,
    );
    assert.match(String(body.description), /10\.5\.3\.0\/24/);

    // The operation was polled (PENDING → RUNNING → DONE) with backoff, not assumed done.
    assert.equal(fake.calls("GET", "/global/operations/").length, 2);
    assert.deepEqual(clock.sleeps, [500, 1000]);

    // Every metadata request said Metadata-Flavor: Google; every compute call carried the token.
    const md = fake.requests.filter((r) => r.path.startsWith("/computeMetadata/"));
    assert(md.length >= 6);
    assert(md.every((r) => r.flavor === "Google"));
    const api = fake.requests.filter((r) => r.path.startsWith("/compute/v1/"));
    assert(api.every((r) => r.authorization === "Bearer ya29.fake-token-1"), JSON.stringify(api));
  });
});

Deno.test("gce: kept: a matching route is left alone, whichever host its links name", async () => {
  await withFake({}, async (fake) => {
    const router = await gceProvider.open(context(fake));
    assert.equal(await router.ensureRoute(SUBNET), "created");
    const before = fake.requests.length;
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.deepEqual(fake.requests.slice(before).map((r) => `${r.method} ${r.path}`), [
      "GET /compute/v1/projects/demo-project/global/routes/flannel-10-5-3-0-24",
    ]);
    // Links are compared from "projects/" on, so another spelling of the same resource matches.
    const route = fake.routes.get("demo-project/flannel-10-5-3-0-24")!;
    for (const k of ["network", "nextHopInstance"]) {
      route[k] = String(route[k]).replace(CANONICAL, "https://compute.googleapis.com/compute/v1/");
    }
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.equal(fake.calls("DELETE").length, 0);
  });
});

Deno.test("gce: replaced: our route name pointing elsewhere is deleted, then inserted; others untouched", async () => {
  const ours = "projects/demo-project/zones/us-central1-a/instances/node-1";
  const other = "projects/demo-project/zones/us-central1-b/instances/node-7";
  const net = "projects/demo-project/global/networks/default";
  const cases = [
    { why: "another instance", destRange: "10.5.3.0/24", network: net, nextHopInstance: other },
    { why: "another range", destRange: "10.5.3.0/25", network: net, nextHopInstance: ours },
  ];
  for (const c of cases) {
    await withFake({}, async (fake) => {
      fake.seedRoute("demo-project", { name: "flannel-10-5-3-0-24", ...c });
      fake.seedRoute("demo-project", {
        name: "flannel-10-5-9-0-24",
        destRange: "10.5.9.0/24",
        network: net,
        nextHopInstance: other,
      });
      fake.seedRoute("demo-project", {
        name: "default-route-1",
        destRange: "10.5.3.0/24",
        network: net,
        nextHopInstance: other,
      });
      const ctx = context(fake);
      const router = await gceProvider.open(ctx);
      assert.equal(await router.ensureRoute(SUBNET), "replaced", c.why);
      assert.deepEqual(fake.render(), [
        `default-route-1 10.5.3.0/24 ${net} -> ${other}`,
        `flannel-10-5-3-0-24 10.5.3.0/24 ${net} -> ${ours}`,
        `flannel-10-5-9-0-24 10.5.9.0/24 ${net} -> ${other}`,
      ], c.why);
      const mutations = fake.requests
        .filter((r) => r.method === "POST" || r.method === "DELETE")
        .map((r) => `${r.method} ${r.path}`);
      assert.deepEqual(mutations, [
        "DELETE /compute/v1/projects/demo-project/global/routes/flannel-10-5-3-0-24",
        "POST /compute/v1/projects/demo-project/global/routes",
      ], c.why);
      // The delete's operation was DONE before the insert was sent.
      const order = fake.requests.map((r) => r.method + (r.path.includes("/operations/") ? "-op" : ""));
      assert.deepEqual(order.slice(order.indexOf("DELETE"), order.indexOf("POST")), [
        "DELETE",
        "GET-op",
        "GET-op",
      ]);
      assert.match(ctx.log.messages("warn").join("\n"), /flannel-10-5-3-0-24 .*replacing it/);
    });
  }
});

Deno.test("gce: a route of our name on another network is another cluster's: left alone, a clear error", async () => {
  await withFake({}, async (fake) => {
    const legacy = "projects/demo-project/global/networks/legacy";
    const hop = "projects/demo-project/zones/us-central1-a/instances/node-1";
    fake.seedRoute("demo-project", {
      name: "flannel-10-5-3-0-24",
      destRange: "10.5.3.0/24",
      network: legacy,
      nextHopInstance: hop,
    });
    const router = await gceProvider.open(context(fake));
    await assert.rejects(router.ensureRoute(SUBNET), (e: CloudApiError) => {
      assert.equal(e.code, "conflict");
      assert.equal(e.retryable, false);
      assert.match(
        e.message,
        /exists on network projects\/demo-project\/global\/networks\/legacy, not ours .*distinct Network ranges$/,
      );
      return true;
    });
    assert.equal(fake.calls("DELETE").length + fake.calls("POST").length, 0, "nothing deleted or inserted");
    assert.deepEqual(fake.render(), [`flannel-10-5-3-0-24 10.5.3.0/24 ${legacy} -> ${hop}`]);
  });
});

Deno.test("gce: an operation that ends with an error fails the call; one that never ends times out", async () => {
  await withFake({}, async (fake) => {
    fake.failOperation("POST", "QUOTA_EXCEEDED", "Quota 'ROUTES' exceeded.  Limit: 250.0 globally.", 403);
    const router = await gceProvider.open(context(fake));
    const e = await rejectsApi(router.ensureRoute(SUBNET));
    assert.equal(e.cloud, "GCE");
    assert.equal(e.action, "routes.insert");
    assert.equal(e.code, "QUOTA_EXCEEDED");
    assert.equal(e.retryable, false);
    assert.match(e.message, /Quota 'ROUTES' exceeded\. Limit: 250\.0 globally\./);
    assert.deepEqual(fake.render(), []);
    // Without the injected failure the next check creates it.
    assert.equal(await router.ensureRoute(SUBNET), "created");
  });
  await withFake({ pollsToDone: 1_000_000 }, async (fake) => {
    const clock = new StepClock();
    const router = await createGceProvider({ operationDeadlineMs: 30_000 }).open(context(fake, { clock }));
    const e = await rejectsApi(router.ensureRoute(SUBNET));
    assert.equal(e.code, "timeout");
    assert.equal(e.retryable, true);
    assert.match(e.message, /still RUNNING after 30s/);
    assert.deepEqual(clock.sleeps, [500, 1000, 2000, 4000, 5000, 5000, 5000, 5000, 5000]);
  });
});

Deno.test("gce: Project moves the routes and network to that project; the next hop stays ours", async () => {
  await withFake({ hostProjects: ["host-project"], networkProjectNumber: "999" }, async (fake) => {
    // A shared VPC without the option: the error names the option to set.
    await assert.rejects(gceProvider.open(context(fake)), /set Backend "Project" to that project's ID/);

    const router = await gceProvider.open(context(fake, { backend: { project: "host-project" } }));
    assert.match(router.where, /in project host-project/);
    assert.equal(await router.ensureRoute(SUBNET), "created");
    assert.deepEqual(fake.render(), [
      "flannel-10-5-3-0-24 10.5.3.0/24 projects/host-project/global/networks/default -> " +
      "projects/demo-project/zones/us-central1-a/instances/node-1",
    ]);
    assert.equal(fake.routes.has("host-project/flannel-10-5-3-0-24"), true);
    assert.equal(await router.ensureRoute(SUBNET), "kept");
  });
  await withFake({}, async (fake) => {
    await assert.rejects(
      gceProvider.open(context(fake, { backend: { Project: 42 } })),
      (e) => e instanceof BackendConfigError && /Backend "Project" is 42, must be a string/.test(e.message),
    );
    await assert.rejects(
      gceProvider.open(context(fake, { backend: { Project: "My Project" } })),
      (e) => e instanceof BackendConfigError && /"My Project", must be a project ID/.test(e.message),
    );
    // A project GCE does not know: 404, which no retry fixes.
    const router = await gceProvider.open(context(fake, { backend: { Project: "missing-project" } }));
    const e = await rejectsApi(router.ensureRoute(SUBNET));
    assert.equal(e.code, "404/notFound");
    assert.equal(e.retryable, false);
    assert.match(e.message, /check Backend "Project"/);
  });
});

Deno.test("gce: the token is fetched once, refreshed before it expires, and again after a 401", async () => {
  await withFake({ tokenLifetime: 3599 }, async (fake) => {
    const clock = new StepClock();
    const router = await gceProvider.open(context(fake, { clock }));
    const tokenCalls = () => fake.calls("GET", "/service-accounts/default/token").length;
    const lastAuth = () => fake.requests.filter((r) => r.path.startsWith("/compute/")).at(-1)!.authorization;
    await router.ensureRoute(SUBNET);
    await router.ensureRoute(SUBNET);
    assert.equal(tokenCalls(), 1);

    // Near the end of its life (the metadata server would hand out a new one): fetched again.
    clock.t += 3_550_000;
    fake.expireTokens();
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.equal(tokenCalls(), 2);
    assert.equal(lastAuth(), "Bearer ya29.fake-token-2");

    // Refused early: the call fails (not retryable), and the next one gets a new token.
    fake.expireTokens();
    const e = await rejectsApi(router.ensureRoute(SUBNET));
    assert.equal(e.code, "401/authError");
    assert.equal(e.retryable, false);
    assert.equal(await router.ensureRoute(SUBNET), "kept");
    assert.equal(lastAuth(), "Bearer ya29.fake-token-3");
  });
});

Deno.test("gce: a metadata answer without Metadata-Flavor is refused with a clear error", async () => {
  await withFake({}, async (fake) => {
    // The fake, like the real server, refuses requests without the header.
    const res = await fetch(`http://${fake.metadataHost}/computeMetadata/v1/project/project-id`);
    assert.equal(res.status, 403);
    await res.body?.cancel();

    fake.flavorHeader = false;
    await assert.rejects(
      gceProvider.open(context(fake)),
      (e: Error) =>
        !(e instanceof CloudApiError) && !e.message.includes("\n") &&
        /^Cannot read .* from the GCE metadata service at http:\/\/127\.0\.0\.1:\d+\/computeMetadata\/v1\//
          .test(
            e.message,
          ) &&
        /lacks the "Metadata-Flavor: Google" header.*check GCE_METADATA_HOST/.test(e.message),
    );
  });
  // Nothing listening: the error names the URL.
  await withFake({}, async (fake) => {
    const ctx = context(fake, { env: { GCE_METADATA_HOST: "127.0.0.1:9" } });
    await assert.rejects(
      gceProvider.open(ctx),
      /GCE metadata service at http:\/\/127\.0\.0\.1:9\/computeMetadata/,
    );
    await assert.rejects(
      gceProvider.open(context(fake, { env: { GCE_METADATA_HOST: "http://127.0.0.1:1/" } })),
      /GCE_METADATA_HOST is "http:\/\/127\.0\.0\.1:1\/", must be host\[:port\]/,
    );
    await assert.rejects(
      gceProvider.open(context(fake, { env: { GCE_COMPUTE_ENDPOINT: "compute" } })),
      /GCE_COMPUTE_ENDPOINT is "compute", must be a URL/,
    );
  });
});

Deno.test("gce: permission errors are not retryable; rate limits and outages are", async () => {
  const cases = [
    { method: "POST", kind: "forbidden", code: "403/forbidden", retryable: false },
    { method: "GET", kind: "rateLimit", code: "429/rateLimitExceeded", retryable: true },
    { method: "GET", kind: "rateLimit403", code: "403/rateLimitExceeded", retryable: true },
    { method: "POST", kind: "unavailable", code: "503/backendError", retryable: true },
  ] as const;
  for (const c of cases) {
    await withFake({}, async (fake) => {
      fake.fail(c.method, "/global/routes", c.kind);
      const router = await gceProvider.open(context(fake));
      const e = await rejectsApi(router.ensureRoute(SUBNET));
      assert.equal(e.code, c.code, c.kind);
      assert.equal(e.retryable, c.retryable, c.kind);
      assert.equal(e.action, c.method === "POST" ? "routes.insert" : "routes.get");
      assert(!e.message.includes("\n"));
      if (c.kind === "forbidden") {
        assert.match(e.message, /Required 'compute\.routes\.create' permission/);
        assert.match(e.message, /roles\/compute\.networkAdmin/);
      }
      assert.equal(await router.ensureRoute(SUBNET), "created", c.kind);
    });
  }
});

const OURS = "projects/demo-project/zones/us-central1-a/instances/node-1";
const OTHER = "projects/demo-project/zones/us-central1-b/instances/node-7";
const NET = "projects/demo-project/global/networks/default";

/** The compute requests from index `from` on, as `METHOD routes/NAME` or `GET operations/…`. */
function computeCalls(fake: FakeGce, from = 0): string[] {
  return fake.requests.slice(from).filter((r) => r.path.startsWith("/compute/"))
    .map((r) =>
      `${r.method} ${r.path.replace(/.*\/global\//, "").replace(/operations\/.*/, "operations/…")}`
    );
}

Deno.test("gce: deleteRoute removes our route and waits for the operation; an operation error fails it", async () => {
  await withFake({}, async (fake) => {
    const clock = new StepClock();
    const router = await gceProvider.open(context(fake, { clock }));
    assert.equal(await router.ensureRoute(SUBNET), "created");
    const other = {
      name: "flannel-10-5-9-0-24",
      destRange: "10.5.9.0/24",
      network: NET,
      nextHopInstance: OTHER,
    };
    fake.seedRoute("demo-project", other);
    const before = fake.requests.length;
    const slept = clock.sleeps.length;
    assert.equal(await router.deleteRoute!(SUBNET), true);
    assert.deepEqual(computeCalls(fake, before), [
      "GET routes/flannel-10-5-3-0-24",
      "DELETE routes/flannel-10-5-3-0-24",
      "GET operations/…",
      "GET operations/…",
    ]);
    assert.deepEqual(clock.sleeps.slice(slept), [500, 1000]);
    // The fake removes the route only when the operation is DONE: it is gone, the other one stays.
    const op = [...fake.operations.values()].at(-1)!;
    assert.equal(op.operationType, "delete");
    assert.equal(op.status, "DONE");
    assert.deepEqual(fake.render(), [`flannel-10-5-9-0-24 10.5.9.0/24 ${NET} -> ${OTHER}`]);

    // Nothing left of ours: false, after one GET.
    const again = fake.requests.length;
    assert.equal(await router.deleteRoute!(SUBNET), false);
    assert.deepEqual(computeCalls(fake, again), ["GET routes/flannel-10-5-3-0-24"]);
  });
  await withFake({}, async (fake) => {
    const router = await gceProvider.open(context(fake));
    assert.equal(await router.ensureRoute(SUBNET), "created");
    fake.failOperation("DELETE", "RESOURCE_NOT_READY", "The resource is not ready", 400);
    const e = await rejectsApi(router.deleteRoute!(SUBNET));
    assert.equal(e.action, "routes.delete");
    assert.equal(e.code, "RESOURCE_NOT_READY");
    assert.equal(e.retryable, false);
    assert.equal(fake.render().length, 1);
    assert.equal(await router.deleteRoute!(SUBNET), true);
    assert.deepEqual(fake.render(), []);
  });
});

Deno.test("gce: deleteRoute keeps a route for our subnet that points at another instance", async () => {
  await withFake({}, async (fake) => {
    const ctx = context(fake);
    const router = await gceProvider.open(ctx);
    const theirs = {
      name: "flannel-10-5-3-0-24",
      destRange: "10.5.3.0/24",
      network: NET,
      nextHopInstance: OTHER,
    };
    fake.seedRoute("demo-project", theirs);
    assert.equal(await router.deleteRoute!(SUBNET), false);
    assert.deepEqual(computeCalls(fake), ["GET routes/flannel-10-5-3-0-24"]);
    assert.deepEqual(fake.render(), [`flannel-10-5-3-0-24 10.5.3.0/24 ${NET} -> ${OTHER}`]);
    assert.match(ctx.log.messages("info").join("\n"), /flannel-10-5-3-0-24 goes to .*node-7.*left alone/);

    // Ours, its link spelled from another host: compared from "projects/" on, as ensureRoute does.
    fake.seedRoute("demo-project", { ...theirs, nextHopInstance: OURS });
    const stored = fake.routes.get("demo-project/flannel-10-5-3-0-24")!;
    stored.nextHopInstance = `https://compute.googleapis.com/compute/v1/${OURS}`;
    assert.equal(await router.deleteRoute!(SUBNET), true);
    assert.deepEqual(fake.render(), []);
  });
});

Deno.test("gce: deleteRoute is false without a route, true when it vanishes before the DELETE", async () => {
  await withFake({}, async (fake) => {
    const router = await gceProvider.open(context(fake));
    assert.equal(await router.deleteRoute!(SUBNET), false);
    assert.deepEqual(computeCalls(fake), ["GET routes/flannel-10-5-3-0-24"]);
  });
  await withFake({}, async (fake) => {
    // Someone deletes it between our GET and our DELETE, which then gets 404: ours was removed.
    const base = context(fake);
    const ctx = {
      ...base,
      fetch: ((input, init) => {
        if (init?.method === "DELETE") fake.removeRoute("demo-project", "flannel-10-5-3-0-24");
        return loopbackFetch(input, init);
      }) as typeof fetch,
    };
    const router = await gceProvider.open(ctx);
    assert.equal(await router.ensureRoute(SUBNET), "created");
    const before = fake.requests.length;
    assert.equal(await router.deleteRoute!(SUBNET), true);
    assert.deepEqual(computeCalls(fake, before), [
      "GET routes/flannel-10-5-3-0-24",
      "DELETE routes/flannel-10-5-3-0-24",
    ]);
    assert.match(ctx.log.messages("info").join("\n"), /flannel-10-5-3-0-24 was deleted meanwhile/);
  });
});

Deno.test("gce: deleteRoute: a 403 on delete is not retryable and leaves the route; a 503 is retryable", async () => {
  const cases = [
    { kind: "forbidden", code: "403/forbidden", retryable: false },
    { kind: "unavailable", code: "503/backendError", retryable: true },
  ] as const;
  for (const c of cases) {
    await withFake({}, async (fake) => {
      const router = await gceProvider.open(context(fake));
      assert.equal(await router.ensureRoute(SUBNET), "created");
      fake.fail("DELETE", "/global/routes/", c.kind);
      const e = await rejectsApi(router.deleteRoute!(SUBNET));
      assert.equal(e.action, "routes.delete", c.kind);
      assert.equal(e.code, c.code, c.kind);
      assert.equal(e.retryable, c.retryable, c.kind);
      assert(!e.message.includes("\n"));
      if (c.kind === "forbidden") {
        assert.match(e.message, /Required 'compute\.routes\.delete' permission/);
        assert.match(e.message, /roles\/compute\.networkAdmin/);
      }
      assert.equal(fake.render().length, 1, c.kind);
      assert.equal(fake.calls("DELETE").length, 1, c.kind);
    });
  }
});

Deno.test("gce backend: the route exists when registration returns, and is put back when deleted", async () => {
  await withFake({}, async (fake) => {
    const r = new BackendRig();
    Object.assign(r.host.envs, fake.env);
    const ext = r.seedHost({ publicIp: "10.128.0.5" });
    // Start-up retries a rate limit (twice) instead of failing.
    fake.fail("GET", "/global/routes/", "rateLimit", 2);
    const factory = createCloudRouteBackend(createGceProvider({ pollFirstMs: 2 }), {
      fetch: loopbackFetch,
      checkMs: 20,
      retryFirstMs: 5,
    });
    const network = await startWithin(r, factory, ext);
    try {
      const subnet = network.lease.subnet.toString();
      const name = gceRouteName(network.lease.subnet);
      assert.equal(network.lease.attrs.publicIP?.toString(), "10.128.0.5");
      assert.equal(network.lease.attrs.backendType, undefined);
      const line = `${name} ${subnet} projects/demo-project/global/networks/default -> ` +
        "projects/demo-project/zones/us-central1-a/instances/node-1";
      assert.deepEqual(fake.render(), [line]);
      assert.equal(
        r.log.messages("error").filter((m) => /429\/rateLimitExceeded.*retrying/.test(m)).length,
        2,
      );

      assert(fake.removeRoute("demo-project", name));
      const deadline = Date.now() + 5000;
      while (fake.render().length === 0) {
        assert(Date.now() < deadline, `the route was not put back: ${r.log.messages().join("\n")}`);
        await new Promise((res) => setTimeout(res, 5));
      }
      assert.deepEqual(fake.render(), [line]);
      await waitFor(() =>
        r.log.messages("warn").some((m) => m.includes(`${subnet} had gone or changed; created it`))
      );
    } finally {
      await r.stop();
    }
  });
});

Deno.test("gce backend: a permission error ends registration instead of retrying", async () => {
  await withFake({}, async (fake) => {
    const r = new BackendRig();
    Object.assign(r.host.envs, fake.env);
    fake.fail("POST", "/global/routes", "forbidden", 100);
    const factory = createCloudRouteBackend(createGceProvider({ pollFirstMs: 2 }), {
      fetch: loopbackFetch,
      retryFirstMs: 5,
    });
    await assert.rejects(
      startWithin(r, factory, r.seedHost()),
      (e) => e instanceof CloudApiError && e.code === "403/forbidden" && !e.retryable,
    );
    assert.equal(fake.calls("POST", "/global/routes").length, 1);
    await r.stop();
  });
});

/** Registers on the rig, aborting it if registration is still going (retrying) after `ms`. */
async function startWithin(
  r: BackendRig,
  factory: BackendFactory,
  ext: ExtIface,
  ms = 5000,
): Promise<Network> {
  const guard = setTimeout(() => r.ctl.abort(new Error(`registration still going after ${ms} ms`)), ms);
  try {
    return await r.start(factory, `{"Network":"10.5.0.0/16","Backend":{"Type":"gce"}}`, ext);
  } finally {
    clearTimeout(guard);
  }
}

/** Polls `pred` with a deadline. */
async function waitFor(pred: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

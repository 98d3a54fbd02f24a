/** The fake API server behaves as the real one does where flannel and the tests rely on it. */
import assert from "node:assert/strict";
import { FakeKubeApiServer, fakeNode } from "../fakes/kube_api_server.ts";
import { freePort } from "../harness/etcd.ts";

async function withFake(fn: (fake: FakeKubeApiServer) => Promise<void>): Promise<void> {
  const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 0 });
  try {
    await fn(fake);
  } finally {
    await fake.stop();
  }
}

async function call(
  fake: FakeKubeApiServer,
  method: string,
  path: string,
  body?: unknown,
  type = "application/strategic-merge-patch+json",
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${fake.url}${path}`, {
    method,
    headers: { "content-type": type },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

Deno.test("fake kube api: conditions merge by type; status patches keep spec; node patches keep status", async () => {
  await withFake(async (fake) => {
    fake.addNode(fakeNode("n1", { podCIDR: "10.244.1.0/24" }));
    const r = await call(fake, "PATCH", "/api/v1/nodes/n1/status", {
      spec: { unschedulable: true },
      status: { conditions: [{ type: "NetworkUnavailable", status: "False" }] },
    });
    assert.equal(r.status, 200);
    const n = fake.getNode("n1");
    assert.deepEqual((n.status!.conditions as { type: string }[]).map((c) => c.type), [
      "Ready",
      "NetworkUnavailable",
    ]);
    assert.equal(n.spec!.unschedulable, undefined, "status subresource must not change spec");
    await call(fake, "PATCH", "/api/v1/nodes/n1", {
      spec: { unschedulable: true },
      status: { conditions: [] },
    });
    const m = fake.getNode("n1");
    assert.equal(m.spec!.unschedulable, true);
    assert.equal((m.status!.conditions as unknown[]).length, 2, "main resource must not change status");
    await call(
      fake,
      "PATCH",
      "/api/v1/nodes/n1",
      { metadata: { annotations: { "a.b/c": "d" } } },
      "application/merge-patch+json",
    );
    assert.deepEqual(fake.getNode("n1").metadata.annotations, { "a.b/c": "d" });
    const jp = await call(fake, "PATCH", "/api/v1/nodes/n1", [], "application/json-patch+json");
    assert.equal(jp.status, 415);
  });
});

Deno.test("fake kube api: real-looking Status bodies for 404, 409, 422", async () => {
  await withFake(async (fake) => {
    fake.addNode(fakeNode("n1", { podCIDR: "10.244.1.0/24" }));
    const missing = await call(fake, "GET", "/api/v1/nodes/zz");
    assert.deepEqual(missing.json, {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `nodes "zz" not found`,
      reason: "NotFound",
      details: { name: "zz", kind: "nodes" },
      code: 404,
    });
    const exists = await call(fake, "POST", "/api/v1/nodes", fakeNode("n1"), "application/json");
    assert.equal(exists.status, 409);
    assert.equal(exists.json.reason, "AlreadyExists");
    const stale = await call(fake, "PATCH", "/api/v1/nodes/n1", {
      metadata: { resourceVersion: "1", labels: { a: "b" } },
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.json.reason, "Conflict");
    assert.match(
      String(stale.json.message),
      /^Operation cannot be fulfilled on nodes "n1": the object has been modified/,
    );
    const badKey = await call(fake, "PATCH", "/api/v1/nodes/n1/status", {
      metadata: { annotations: { "Org.com/x": "y" } },
    });
    assert.equal(badKey.status, 422);
    assert.match(
      String(badKey.json.message),
      /^Node "n1" is invalid: metadata.annotations: Invalid value: "Org.com\/x"/,
    );
    const cidr = await call(fake, "PATCH", "/api/v1/nodes/n1", {
      spec: { podCIDR: "10.244.2.0/24", podCIDRs: null },
    });
    assert.equal(cidr.status, 422);
  });
});

Deno.test("fake kube api: a no-op patch is no event; a watch without version starts with ADDED", async () => {
  await withFake(async (fake) => {
    fake.addNode(fakeNode("n1", { annotations: { "a.b/c": "d" } }));
    const rv = fake.store.rv;
    await call(fake, "PATCH", "/api/v1/nodes/n1/status", { metadata: { annotations: { "a.b/c": "d" } } });
    assert.equal(fake.store.rv, rv);
    const ctl = new AbortController();
    const res = await fetch(`${fake.url}/api/v1/nodes?watch=true&timeoutSeconds=1`, { signal: ctl.signal });
    const text = await res.text();
    const events = text.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => `${e.type} ${e.object.metadata.name}`), ["ADDED n1"]);
  });
});

Deno.test("fake kube api: a list continued after the history is gone is 410", async () => {
  await withFake(async (fake) => {
    for (let i = 0; i < 3; i++) fake.addNode(fakeNode(`n${i}`));
    const first = await call(fake, "GET", "/api/v1/nodes?limit=2");
    const cont = (first.json.metadata as { continue: string }).continue;
    assert.equal((first.json.items as unknown[]).length, 2);
    fake.addNode(fakeNode("n9"));
    fake.store.compact();
    const next = await call(fake, "GET", `/api/v1/nodes?limit=2&continue=${encodeURIComponent(cont)}`);
    assert.equal(next.status, 410);
    assert.equal(next.json.reason, "Expired");
  });
});

Deno.test("fake kube api: runs on its own, keeps its state across a restart, admin endpoints", async () => {
  const dir = await Deno.makeTempDir();
  const port = await freePort();
  await Deno.writeTextFile(
    `${dir}/nodes.json`,
    JSON.stringify([fakeNode("n1", { podCIDR: "10.244.1.0/24" })]),
  );
  const start = async () => {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../fakes/kube_api_server.ts", import.meta.url).pathname,
        "--port",
        String(port),
        "--nodes",
        `${dir}/nodes.json`,
        "--state",
        `${dir}/state.json`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("listening on")) {
      const r = await reader.read();
      if (r.done) throw new Error(`fake exited: ${out}`);
      out += r.value;
    }
    reader.releaseLock();
    return child;
  };
  const url = `http://127.0.0.1:${port}`;
  let child = await start();
  try {
    const patched = await fetch(`${url}/api/v1/nodes/n1/status`, {
      method: "PATCH",
      headers: { "content-type": "application/strategic-merge-patch+json" },
      body: JSON.stringify({ metadata: { annotations: { "a.b/c": "d" } } }),
    }).then((r) => r.json());
    assert.equal((await fetch(`${url}/fake/watches`).then((r) => r.json())).count, 0);
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
    await child.stdout.cancel().catch(() => {});
    child = await start();
    const n = await fetch(`${url}/api/v1/nodes/n1`).then((r) => r.json());
    assert.deepEqual(n.metadata.annotations, { "a.b/c": "d" });
    assert.equal(n.metadata.resourceVersion, patched.metadata.resourceVersion);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await child.stdout.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { KubeApiError, KubeClient, LIST_PAGE_SIZE } from "../../src/lease/kube/client.ts";
import type { KubeNode, WatchEvent } from "../../src/lease/kube/types.ts";
import { FakeKubeApiServer, fakeNode } from "../fakes/kube_api_server.ts";
import { freePort } from "../harness/etcd.ts";

/** A server and a client for one test, always closed. */
async function withFake(
  fn: (fake: FakeKubeApiServer, client: KubeClient) => Promise<void>,
  opts: Parameters<typeof FakeKubeApiServer.start>[0] = {},
): Promise<void> {
  const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 0, ...opts });
  try {
    await fn(fake, new KubeClient({ server: fake.url }));
  } finally {
    await fake.stop();
  }
}

/** Collects watch events until `pred` holds, with a deadline. */
async function collect(
  it: AsyncIterator<WatchEvent<KubeNode>>,
  pred: (evs: WatchEvent<KubeNode>[]) => boolean,
  ms = 5000,
): Promise<WatchEvent<KubeNode>[]> {
  const out: WatchEvent<KubeNode>[] = [];
  const deadline = Date.now() + ms;
  while (!pred(out)) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<"timeout">((
        res,
      ) => (timer = setTimeout(() => res("timeout"), Math.max(0, deadline - Date.now())))),
    ]);
    clearTimeout(timer);
    if (r === "timeout") {
      throw new Error(`no match within ${ms} ms: ${JSON.stringify(out.map((e) => e.type))}`);
    }
    if (r.done) throw new Error("watch ended");
    out.push(r.value);
  }
  return out;
}

const brief = (e: WatchEvent<KubeNode>) => `${e.type} ${e.object.metadata.name ?? ""}`;

Deno.test("kube client: get a node; a missing one is 404 NotFound with the server's message", async () => {
  await withFake(async (fake, client) => {
    fake.addNode(fakeNode("n1", { podCIDR: "10.244.1.0/24" }));
    const n = await client.getNode("n1");
    assert.equal(n.spec?.podCIDR, "10.244.1.0/24");
    await assert.rejects(client.getNode("nope"), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.status, 404);
      assert.equal(e.reason, "NotFound");
      assert.equal(e.message, `Cannot get node "nope": nodes "nope" not found (404 NotFound)`);
      return true;
    });
  });
});

Deno.test("kube client: a list is read in pages and keeps the first page's resourceVersion", async () => {
  await withFake(async (fake, client) => {
    for (let i = 0; i < 1200; i++) fake.addNode(fakeNode(`n${String(i).padStart(4, "0")}`));
    const rv = String(fake.store.rv);
    const list = await client.listNodes();
    assert.equal(list.items.length, 1200);
    assert.equal(list.metadata.resourceVersion, rv);
    const lists = fake.requests.filter((r) => r.path === "/api/v1/nodes");
    assert.equal(lists.length, 3);
    assert.ok(lists.every((r) => r.query.includes(`limit=${LIST_PAGE_SIZE}`)));
    assert.ok(lists.slice(1).every((r) => r.query.includes("continue=")));
  });
});

Deno.test("kube client: status patches are strategic-merge patches of nodes/<name>/status", async () => {
  await withFake(async (fake, client) => {
    fake.addNode(fakeNode("n1", { podCIDR: "10.244.1.0/24", annotations: { "keep.example.com/x": "1" } }));
    const patch = { metadata: { annotations: { "flannel.alpha.coreos.com/public-ip": "1.2.3.4" } } };
    const n = await client.patchNodeStatus("n1", patch);
    assert.deepEqual(n.metadata.annotations, {
      "keep.example.com/x": "1",
      "flannel.alpha.coreos.com/public-ip": "1.2.3.4",
    });
    const req = fake.requests.at(-1)!;
    assert.equal(req.method, "PATCH");
    assert.equal(req.path, "/api/v1/nodes/n1/status");
    assert.equal(req.contentType, "application/strategic-merge-patch+json");
    assert.deepEqual(req.body, patch);
  });
});

Deno.test("kube client: watch from a list's version streams changes and bookmarks", async () => {
  await withFake(async (fake, client) => {
    fake.addNode(fakeNode("n1"));
    const list = await client.listNodes();
    const ctl = new AbortController();
    const it = client.watchNodes(
      { resourceVersion: list.metadata.resourceVersion, allowWatchBookmarks: true },
      ctl.signal,
    )[Symbol.asyncIterator]();
    try {
      const first = it.next();
      fake.addNode(fakeNode("n2"));
      fake.modifyNode("n1", (n) => void (n.metadata.labels = { a: "b" }));
      fake.deleteNode("n2");
      const evs = [(await first).value as WatchEvent<KubeNode>];
      evs.push(...await collect(it, (e) => e.length === 2));
      assert.deepEqual(evs.map(brief), ["ADDED n2", "MODIFIED n1", "DELETED n2"]);
      fake.bookmark();
      const [bm] = await collect(it, (e) => e.length === 1);
      assert.equal(bm!.type, "BOOKMARK");
      assert.equal(bm!.object.metadata.resourceVersion, String(fake.store.rv));
    } finally {
      ctl.abort();
      await it.return?.(undefined).catch(() => {});
    }
  });
});

Deno.test("kube client: a watch from a too old version is 410 Expired (in-stream and as HTTP status)", async () => {
  await withFake(async (fake, client) => {
    fake.addNode(fakeNode("n1"));
    const old = String(fake.store.rv - 1);
    fake.store.compact();
    const ctl = new AbortController();
    const drain = async () => {
      for await (const _ of client.watchNodes({ resourceVersion: old }, ctl.signal)) { /* none */ }
    };
    await assert.rejects(drain(), (e) => {
      assert.ok(e instanceof KubeApiError && e.gone);
      assert.equal(e.reason, "Expired");
      assert.match(e.message, /^Cannot watch nodes: too old resource version: \d+ \(\d+\) \(410 Expired\)$/);
      return true;
    });
    fake.failNext(1, 410, /watch=true/);
    await assert.rejects(drain(), (e) => e instanceof KubeApiError && e.gone && e.reason === "Gone");
  });
});

Deno.test("kube client: a watch ends when the server's timeout ends it", async () => {
  await withFake(async (_fake, client) => {
    const ctl = new AbortController();
    const started = Date.now();
    for await (
      const _ of client.watchNodes({ resourceVersion: "0", timeoutSeconds: 1 }, ctl.signal)
    ) { /* none */ }
    assert.ok(Date.now() - started < 5000);
  });
});

Deno.test("kube client: a silent watch is given up after the idle timeout", async () => {
  await withFake(async (_fake, client) => {
    const ctl = new AbortController();
    const drain = async () => {
      for await (
        const _ of client.watchNodes({ resourceVersion: "0", idleTimeoutMs: 300 }, ctl.signal)
      ) { /* */ }
    };
    await assert.rejects(drain(), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.status, 0);
      assert.match(
        e.message,
        /^Cannot watch nodes: cannot reach the Kubernetes API at .*: no data for 300 ms$/,
      );
      return true;
    });
  });
});

Deno.test("kube client: an aborted watch ends at once", async () => {
  await withFake(async (_fake, client) => {
    const ctl = new AbortController();
    const it = client.watchNodes({ resourceVersion: "0" }, ctl.signal)[Symbol.asyncIterator]();
    const pending = it.next();
    setTimeout(() => ctl.abort(new Error("stop")), 50);
    const started = Date.now();
    await assert.rejects(pending, /stop/);
    assert.ok(Date.now() - started < 2000);
  });
});

Deno.test("kube client: 401 without the token; a refreshed token is tried once", async () => {
  await withFake(async (fake) => {
    const anonymous = new KubeClient({ server: fake.url });
    await assert.rejects(anonymous.getNode("n1"), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.message, `Cannot get node "n1": Unauthorized (401 Unauthorized)`);
      return true;
    });
    fake.addNode(fakeNode("n1"));
    const asked: boolean[] = [];
    const rotating = new KubeClient({
      server: fake.url,
      auth: {
        authorization(refresh) {
          asked.push(Boolean(refresh));
          return Promise.resolve(refresh ? "Bearer s3cret" : "Bearer expired");
        },
      },
    });
    assert.equal((await rotating.getNode("n1")).metadata.name, "n1");
    assert.deepEqual(asked, [false, true]);
  }, { token: "s3cret" });
});

Deno.test("kube client: 403 carries the RBAC message", async () => {
  await withFake(async (fake, client) => {
    fake.addNode(fakeNode("n1"));
    await assert.rejects(client.patchNodeStatus("n1", {}), (e) => {
      assert.ok(e instanceof KubeApiError);
      assert.equal(e.status, 403);
      assert.equal(
        e.statusMessage,
        `nodes "n1" is forbidden: User "system:anonymous" cannot patch resource "nodes/status" in API group "" ` +
          `at the cluster scope`,
      );
      return true;
    });
  }, { rules: [{ apiGroups: [""], resources: ["nodes"], verbs: ["get"] }] });
});

Deno.test("kube client: no server is status 0 naming the URL", async () => {
  const port = await freePort();
  const client = new KubeClient({ server: `http://127.0.0.1:${port}` });
  await assert.rejects(client.listNodes(), (e) => {
    assert.ok(e instanceof KubeApiError);
    assert.equal(e.status, 0);
    assert.ok(
      e.message.startsWith(
        `Cannot list nodes: cannot reach the Kubernetes API at http://127.0.0.1:${port}: `,
      ),
    );
    return true;
  });
});

Deno.test("kube client: observe hears every request, answered (any status) or not reached", async () => {
  const seen: { ok: boolean; ms: number }[] = [];
  const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 0 });
  try {
    fake.addNode(fakeNode("n1", { podCIDR: "10.244.1.0/24" }));
    const c = new KubeClient({ server: fake.url, observe: (a) => seen.push(a) });
    await c.getNode("n1");
    await assert.rejects(c.getNode("missing"), (e: KubeApiError) => e.status === 404);
    assert.deepEqual(seen.map((a) => a.ok), [true, true], "a 404 is an answer");
  } finally {
    await fake.stop();
  }
  const dead = new KubeClient({
    server: `http://127.0.0.1:${await freePort()}`,
    observe: (a) => seen.push(a),
  });
  await assert.rejects(dead.getNode("n1"), (e: KubeApiError) => e.status === 0);
  assert.equal(seen.at(-1)?.ok, false);
  assert.ok(seen.every((a) => a.ms >= 0));
});

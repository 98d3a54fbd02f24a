import assert from "node:assert/strict";
import { KubeClient } from "../../src/lease/kube/client.ts";
import { NodeInformer } from "../../src/lease/kube/informer.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { FakeKubeApiServer, fakeNode } from "../fakes/kube_api_server.ts";

/** Polls `pred` every 10 ms until it holds, or fails after `ms`. */
async function eventually(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function setup(
  fn: (fake: FakeKubeApiServer, informer: NodeInformer, log: MemoryLogger) => Promise<void>,
  opts: { bookmarkIntervalMs?: number; watchTimeoutSeconds?: number } = {},
): Promise<void> {
  const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 0 });
  const log = new MemoryLogger();
  const informer = new NodeInformer({
    client: new KubeClient({ server: fake.url }),
    log,
    clock: systemClock,
    watchTimeoutSeconds: opts.watchTimeoutSeconds ?? 30,
  });
  try {
    await fn(fake, informer, log);
  } finally {
    await informer.close();
    await fake.stop();
  }
}

Deno.test("kube informer: lists, then follows changes; a busy subscriber sees each node once, latest state", async () => {
  await setup(async (fake, informer) => {
    fake.addNode(fakeNode("n1", { podCIDR: "10.244.1.0/24" }));
    const sub = informer.subscribe();
    informer.start();
    await informer.waitSynced(AbortSignal.timeout(5000));
    assert.deepEqual(informer.names(), ["n1"]);
    assert.deepEqual([...sub.take()], ["n1"]);
    for (let i = 0; i < 10; i++) {
      fake.modifyNode("n1", (n) => void (n.metadata.annotations = { "a.b/i": String(i) }));
    }
    fake.addNode(fakeNode("n2"));
    fake.deleteNode("n2");
    await eventually(() => informer.get("n1")?.metadata.annotations?.["a.b/i"] === "9", "last update");
    await eventually(() => informer.resourceVersion === String(fake.store.rv), "all events");
    assert.deepEqual([...sub.take()].sort(), ["n1", "n2"]);
    assert.equal(informer.get("n2"), undefined);
    assert.equal(informer.get("n1")?.status, undefined, "status is not kept");
    sub.close();
  });
});

Deno.test("kube informer: a watch too old for the server (410) lists again", async () => {
  await setup(async (fake, informer, log) => {
    fake.addNode(fakeNode("n1"));
    informer.start();
    await informer.waitSynced(AbortSignal.timeout(5000));
    await eventually(() => fake.watchCount === 1, "watching");
    fake.failNext(2, 503, /watch=true/); // keep it away while the history goes
    fake.cutWatches("abrupt");
    fake.addNode(fakeNode("n2"));
    fake.deleteNode("n1");
    fake.store.compact();
    await eventually(() => informer.get("n2") !== undefined && informer.get("n1") === undefined, "re-listed");
    assert.ok(
      log.messages("info").some((m) =>
        /^Watch of nodes at resourceVersion \d+ expired \(too old resource version/.test(m)
      ),
    );
    assert.ok(log.messages("warn").some((m) => m.startsWith("Cannot watch nodes, retrying with backoff: ")));
  });
});

Deno.test("kube informer: survives an API server restart and says when the watch is back", async () => {
  await setup(async (fake, informer, log) => {
    fake.addNode(fakeNode("n1"));
    informer.start();
    await informer.waitSynced(AbortSignal.timeout(5000));
    await fake.restart({ downMs: 300 });
    fake.addNode(fakeNode("n3"));
    await eventually(() => informer.get("n3") !== undefined, "n3 after restart", 10_000);
    await eventually(
      () => log.messages("info").some((m) => m.startsWith("Watch of nodes restored after")),
      "restored",
    );
  });
});

Deno.test("kube informer: bookmarks carry the version forward; a watch that times out is reopened", async () => {
  await setup(async (fake, informer) => {
    fake.addNode(fakeNode("n1"));
    informer.start();
    await informer.waitSynced(AbortSignal.timeout(5000));
    fake.addPod("default", "p1", "n1"); // moves the version without a node event
    await eventually(() => informer.resourceVersion === String(fake.store.rv), "bookmark");
    const watches = () => fake.requests.filter((r) => r.query.includes("watch=true")).length;
    await eventually(() => watches() >= 2, "reopened after timeoutSeconds", 5000);
    fake.addNode(fakeNode("n2"));
    await eventually(() => informer.get("n2") !== undefined, "n2");
  }, { bookmarkIntervalMs: 100, watchTimeoutSeconds: 1 });
});

Deno.test("kube informer: waits for an API server that is not up yet", async () => {
  await setup(async (fake, informer) => {
    fake.addNode(fakeNode("n1"));
    await fake.stop();
    informer.start();
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(informer.synced, false);
    await fake.restart();
    await informer.waitSynced(AbortSignal.timeout(10_000));
    assert.deepEqual(informer.names(), ["n1"]);
  });
});

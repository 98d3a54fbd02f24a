import assert from "node:assert/strict";
import { parseNetworkConfig } from "../../src/config/network_config.ts";
import { IP4 } from "../../src/ip/mod.ts";
import { KubeClient } from "../../src/lease/kube/client.ts";
import { KubeSubnetManager, type KubeSubnetManagerOptions } from "../../src/lease/kube/manager.ts";
import { NodeLeaseError } from "../../src/lease/kube/node_lease.ts";
import type { LeaseAttrs, LeaseBatch } from "../../src/lease/types.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { FakeKubeApiServer, fakeNode, type KObject } from "../fakes/kube_api_server.ts";

const P = "flannel.alpha.coreos.com/";
const CONF = `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`;
const VX = (mac: string) => `{"VNI":1,"VtepMAC":"${mac}"}`;
const ATTRS: LeaseAttrs = {
  publicIP: IP4.parse("192.168.0.1"),
  backendType: "vxlan",
  backendData: VX("0a:00:00:00:00:01"),
};

function peer(name: string, cidr: string, ip: string, extra: Record<string, string> = {}): KObject {
  return fakeNode(name, {
    podCIDR: cidr,
    annotations: {
      [`${P}kube-subnet-manager`]: "true",
      [`${P}backend-type`]: "vxlan",
      [`${P}backend-data`]: VX("0a:00:00:00:00:99"),
      [`${P}public-ip`]: ip,
      ...extra,
    },
  });
}

interface Ctx {
  fake: FakeKubeApiServer;
  log: MemoryLogger;
  manager(over?: Partial<KubeSubnetManagerOptions>): KubeSubnetManager;
}

async function withManager(fn: (ctx: Ctx) => Promise<void>): Promise<void> {
  const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 0 });
  const log = new MemoryLogger();
  const managers: KubeSubnetManager[] = [];
  try {
    await fn({
      fake,
      log,
      manager(over = {}) {
        const m = new KubeSubnetManager({
          client: new KubeClient({ server: fake.url }),
          nodeName: "self",
          config: parseNetworkConfig(CONF),
          annotationPrefix: "flannel.alpha.coreos.com",
          setNodeNetworkUnavailable: true,
          log,
          clock: systemClock,
          pollMs: 50,
          watchTimeoutSeconds: 30,
          ...over,
        });
        managers.push(m);
        return m;
      },
    });
  } finally {
    await Promise.all(managers.map((m) => m.close()));
    await fake.stop();
  }
}

async function eventually(pred: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Pulls one batch, with a deadline. */
async function next(it: AsyncIterator<LeaseBatch>, ms = 5000): Promise<LeaseBatch> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    it.next(),
    new Promise<"timeout">((res) => (timer = setTimeout(() => res("timeout"), ms))),
  ]);
  clearTimeout(timer);
  if (r === "timeout") throw new Error(`no batch within ${ms} ms`);
  if (r.done) throw new Error("stream ended");
  return r.value;
}

const brief = (b: LeaseBatch) => b.events.map((e) => `${e.type} ${e.lease.subnet} ${e.lease.attrs.publicIP}`);

Deno.test("kube manager: acquire publishes our attrs with one status patch and returns the pod CIDR", async () => {
  await withManager(async ({ fake, manager }) => {
    fake.addNode(fakeNode("self", { podCIDR: "10.244.7.0/24" }));
    const m = manager();
    assert.equal(m.name, "Kubernetes Subnet Manager - self");
    const lease = await m.acquireLease(ATTRS);
    assert.equal(lease.subnet.toString(), "10.244.7.0/24");
    assert.ok(Math.abs(lease.expiration - (Date.now() + 24 * 3600_000)) < 60_000);
    const patches = fake.requests.filter((r) => r.method === "PATCH");
    assert.deepEqual(patches.map((r) => [r.path, r.contentType, JSON.stringify(r.body)]), [[
      "/api/v1/nodes/self/status",
      "application/strategic-merge-patch+json",
      `{"metadata":{"annotations":{"${P}backend-type":"vxlan","${P}backend-data":${
        JSON.stringify(VX("0a:00:00:00:00:01"))
      },"${P}public-ip":"192.168.0.1","${P}kube-subnet-manager":"true"}}}`,
    ]]);
    await manager().acquireLease(ATTRS);
    assert.equal(
      fake.requests.filter((r) => r.method === "PATCH").length,
      1,
      "a restart with the same attrs patches nothing",
    );
  });
});

Deno.test("kube manager: a node without pod CIDR gets upstream's error once and is waited for", async () => {
  await withManager(async ({ fake, manager, log }) => {
    fake.addNode(fakeNode("self"));
    const acquiring = manager().acquireLease(ATTRS);
    await eventually(() => fake.requests.filter((r) => r.path === "/api/v1/nodes/self").length >= 3, "polls");
    fake.modifyNode("self", (n) => void (n.spec = { podCIDR: "10.244.8.0/24" }));
    assert.equal((await acquiring).subnet.toString(), "10.244.8.0/24");
    assert.deepEqual(log.messages("error"), [
      `node "self" pod cidr not assigned; waiting for Kubernetes to assign one`,
    ]);
  });
});

Deno.test("kube manager: a node not registered yet, and a failing API, are waited for", async () => {
  await withManager(async ({ fake, manager, log }) => {
    const acquiring = manager().acquireLease(ATTRS);
    await eventually(
      () => log.messages("warn").some((m) => m.startsWith(`Waiting for node "self" to be registered`)),
      "404",
    );
    fake.failNext(2, 503, /status/);
    fake.addNode(fakeNode("self", { podCIDR: "10.244.9.0/24" }));
    assert.equal((await acquiring).subnet.toString(), "10.244.9.0/24");
    assert.ok(
      log.messages("warn").some((m) =>
        m.includes(`failed to patch node "self", retrying`) && m.includes("503")
      ),
    );
  });
});

Deno.test("kube manager: a pod CIDR outside Network fails at once; an abort ends the wait", async () => {
  await withManager(async ({ fake, manager }) => {
    fake.addNode(fakeNode("self", { podCIDR: "10.9.0.0/24" }));
    await assert.rejects(manager().acquireLease(ATTRS), (e) => {
      assert.ok(e instanceof NodeLeaseError);
      assert.match(e.message, /doesn't contain "10.9.0.0\/24" PodCIDR of the "self" node$/);
      return true;
    });
    const ctl = new AbortController();
    const waiting = manager({ nodeName: "ghost" }).acquireLease(ATTRS, ctl.signal);
    ctl.abort(new Error("stop"));
    await assert.rejects(waiting, /stop/);
  });
});

Deno.test("kube manager: completeLease sets NetworkUnavailable=False, then waits for the signal", async () => {
  await withManager(async ({ fake, manager }) => {
    fake.addNode(fakeNode("self", { podCIDR: "10.244.7.0/24" }));
    const m = manager();
    const lease = await m.acquireLease(ATTRS);
    const ctl = new AbortController();
    fake.failNext(1, 500, /status/);
    const done = m.completeLease(lease, ctl.signal);
    await eventually(
      () =>
        (fake.getNode("self").status?.conditions as { type: string }[]).some((c) =>
          c.type === "NetworkUnavailable"
        ),
      "condition",
    );
    const cond = (fake.getNode("self").status!.conditions as Record<string, string>[]).find((c) =>
      c.type === "NetworkUnavailable"
    )!;
    assert.equal(cond.status, "False");
    assert.equal(cond.reason, "FlannelIsUp");
    assert.equal(cond.message, "Flannel is running on this node");
    let settled = false;
    void done.then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(settled, false);
    ctl.abort();
    assert.equal(await done, "cancelled");
    const off = manager({ setNodeNetworkUnavailable: false });
    const before = fake.requests.length;
    const ctl2 = new AbortController();
    const done2 = off.completeLease(lease, ctl2.signal);
    ctl2.abort();
    assert.equal(await done2, "cancelled");
    assert.equal(fake.requests.length, before);
  });
});

Deno.test("kube manager: peers come and go; our node, non-flannel nodes and no-op updates make no event", async () => {
  await withManager(async ({ fake, manager }) => {
    fake.addNode(fakeNode("self", { podCIDR: "10.244.7.0/24" }));
    fake.addNode(peer("a", "10.244.1.0/24", "192.168.0.11"));
    fake.addNode(fakeNode("plain", { podCIDR: "10.244.2.0/24" }));
    const m = manager();
    const own = await m.acquireLease(ATTRS);
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      assert.deepEqual(brief(await next(it)), ["added 10.244.1.0/24 192.168.0.11"]);
      const t0 = Date.now();
      fake.addNode(peer("b", "10.244.3.0/24", "192.168.0.13"));
      assert.deepEqual(brief(await next(it)), ["added 10.244.3.0/24 192.168.0.13"]);
      assert.ok(Date.now() - t0 < 2000, "a new node is seen within 2 s");
      fake.modifyNode("b", (n) => void (n.metadata.labels = { heartbeat: "1" })); // irrelevant change
      fake.modifyNode("a", (n) => void (n.metadata.annotations![`${P}public-ip`] = "192.168.0.21"));
      fake.deleteNode("b");
      const b2 = await next(it);
      const events = [...brief(b2)];
      if (events.length < 2) events.push(...brief(await next(it)));
      assert.deepEqual(events, ["added 10.244.1.0/24 192.168.0.21", "removed 10.244.3.0/24 192.168.0.13"]);
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });
});

Deno.test("kube manager: a bad annotation is skipped with one warning and keeps the last good lease", async () => {
  await withManager(async ({ fake, manager, log }) => {
    fake.addNode(fakeNode("self", { podCIDR: "10.244.7.0/24" }));
    fake.addNode(peer("a", "10.244.1.0/24", "192.168.0.11"));
    const m = manager();
    const own = await m.acquireLease(ATTRS);
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      await next(it);
      for (const ip of ["bogus", "bogus", "bogus"]) {
        fake.modifyNode("a", (n) => {
          n.metadata.annotations![`${P}public-ip`] = ip;
          n.metadata.labels = { n: String(Math.random()) };
        });
      }
      fake.addNode(peer("c", "10.244.4.0/24", "192.168.0.14"));
      const b = await next(it);
      assert.deepEqual(brief(b), ["added 10.244.4.0/24 192.168.0.14"]);
      assert.deepEqual([...b.leases.values()].map((l) => `${l.subnet} ${l.attrs.publicIP}`).sort(), [
        "10.244.1.0/24 192.168.0.11",
        "10.244.4.0/24 192.168.0.14",
      ]);
      assert.deepEqual(log.messages("warn").filter((w) => w.includes(`"a"`)), [
        `Error turning node "a" to lease, skipping it: node "a" annotation ${P}public-ip is "bogus", must be an IPv4 address`,
      ]);
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });
});

Deno.test("kube manager: a slow consumer gets one event per node, in its latest state", async () => {
  await withManager(async ({ fake, manager }) => {
    fake.addNode(fakeNode("self", { podCIDR: "10.244.7.0/24" }));
    const m = manager();
    const own = await m.acquireLease(ATTRS);
    const ctl = new AbortController();
    const it = m.watchLeases(own, ctl.signal)[Symbol.asyncIterator]();
    try {
      await next(it);
      for (let i = 0; i < 50; i++) fake.addNode(peer(`p${i}`, `10.244.${100 + i}.0/24`, `192.168.1.${i}`));
      for (let i = 0; i < 50; i++) {
        fake.modifyNode(`p${i}`, (n) => void (n.metadata.annotations![`${P}public-ip`] = `192.168.2.${i}`));
      }
      // The informer takes it all in while nobody pulls.
      await eventually(() => m.cacheVersion === String(fake.store.rv), "cache up to date");
      const events = [];
      while (events.length < 50) events.push(...brief(await next(it)));
      assert.equal(events.length, 50);
      assert.ok(events.every((e) => / 192\.168\.2\.\d+$/.test(e)), events.join("\n"));
    } finally {
      ctl.abort();
      await it.return?.(undefined);
    }
  });
});

Deno.test("kube manager: stored public IPs and MACs come from our node's annotations", async () => {
  await withManager(async ({ fake, manager }) => {
    const m = manager();
    assert.deepEqual(await m.storedMacs(), {});
    fake.addNode(fakeNode("self", {
      podCIDR: "10.244.7.0/24",
      annotations: {
        [`${P}node-public-ip`]: "203.0.113.7",
        [`${P}backend-data`]: VX("0a:58:0a:f4:07:00"),
      },
    }));
    assert.deepEqual(await m.storedPublicIPs(), { publicIp: "203.0.113.7" });
    assert.deepEqual(await m.storedMacs(), { mac: "0a:58:0a:f4:07:00" });
  });
});

Deno.test("kube manager: releaseLease (--cleanup) removes only the annotations we wrote, only on our own node", async () => {
  await withManager(async ({ fake, manager }) => {
    const own = new Set(["192.168.0.1", "127.0.0.1"]);
    const m = manager();
    assert.equal(
      await m.releaseLease({ ownAddresses: own }),
      'Node "self" does not exist: nothing to release',
    );
    fake.addNode(peer("self", "10.244.7.0/24", "192.168.0.1", { [`${P}node-public-ip`]: "192.168.0.1" }));
    fake.addNode(peer("other", "10.244.8.0/24", "192.168.0.2"));

    // NODE_NAME pointing at another machine's Node: nothing is touched.
    const wrong = manager({ nodeName: "other" });
    assert.match(
      await wrong.releaseLease({ ownAddresses: own }),
      /^Kept the annotations of node "other": its public-ip 192\.168\.0\.2 is not an address of this host/,
    );
    assert.equal(fake.getNode("other").metadata.annotations?.[`${P}public-ip`], "192.168.0.2");

    assert.equal(
      await m.releaseLease({ ownAddresses: own }),
      `Removed the flannel annotations of node "self": ${P}kube-subnet-manager, ${P}backend-type, ` +
        `${P}backend-data, ${P}public-ip`,
    );
    const ann = fake.getNode("self").metadata.annotations ?? {};
    assert.deepEqual(ann, { [`${P}node-public-ip`]: "192.168.0.1" }, "the admin's override stays");
    assert.equal((fake.getNode("self").spec as { podCIDR?: string }).podCIDR, "10.244.7.0/24");
    assert.equal(
      await m.releaseLease({ ownAddresses: own }),
      'Node "self" has no flannel annotations: nothing to release',
    );
  });
});

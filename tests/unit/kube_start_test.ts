/** createKubeManager: node identity, net-conf.json and the start-up errors of §4.1. */
import assert from "node:assert/strict";
import { AnnotationPrefixError, createKubeManager, KubeStartError } from "../../src/lease/kube/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { denoKubeRuntime } from "../../src/runtime/kube_http.ts";
import { systemClock } from "../../src/util/clock.ts";
import { FakeKubeApiServer, fakeNode } from "../fakes/kube_api_server.ts";

interface Start {
  env?: Record<string, string>;
  netConf?: string | null;
  prefix?: string;
}

async function withStart(
  fn: (start: (s?: Start) => ReturnType<typeof createKubeManager>, fake: FakeKubeApiServer) => Promise<void>,
  rules?: Parameters<typeof FakeKubeApiServer.start>[0],
): Promise<void> {
  const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 0, ...rules });
  const dir = await Deno.makeTempDir();
  try {
    await fn(async (s = {}) => {
      const path = `${dir}/net-conf.json`;
      await Deno.remove(path).catch(() => {});
      if (s.netConf !== null) await Deno.writeTextFile(path, s.netConf ?? `{"Network":"10.244.0.0/16"}`);
      return await createKubeManager(
        {
          kubeApiUrl: fake.url,
          kubeconfigFile: "",
          kubeAnnotationPrefix: s.prefix ?? "flannel.alpha.coreos.com",
          netConfigPath: path,
          setNodeNetworkUnavailable: true,
        },
        s.env ?? { NODE_NAME: "n1" },
        new MemoryLogger(),
        systemClock,
        denoKubeRuntime,
      );
    }, fake);
  } finally {
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(p: Promise<unknown>, cls: ErrorConstructor | typeof KubeStartError, msg: RegExp) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof cls, String(e));
    assert.match((e as Error).message, msg);
    return true;
  });
}

Deno.test("kube start: NODE_NAME names the node without asking the API", async () => {
  await withStart(async (start, fake) => {
    const m = await start({ env: { NODE_NAME: "n1", POD_NAME: "x", POD_NAMESPACE: "y" } });
    assert.equal(m.name, "Kubernetes Subnet Manager - n1");
    assert.equal((await m.getNetworkConfig()).network?.toString(), "10.244.0.0/16");
    assert.deepEqual(fake.requests, []);
    await m.close();
  });
});

Deno.test("kube start: POD_NAME and POD_NAMESPACE name the node through the pod's spec.nodeName", async () => {
  await withStart(async (start, fake) => {
    fake.addNode(fakeNode("worker-7"));
    fake.addPod("kube-flannel", "ds-1", "worker-7");
    const m = await start({ env: { POD_NAME: "ds-1", POD_NAMESPACE: "kube-flannel" } });
    assert.equal(m.nodeName, "worker-7");
    await m.close();
    fake.store.create("pods", "kube-flannel", { metadata: { name: "ds-2" }, spec: {} });
    await rejectsWith(
      start({ env: { POD_NAME: "ds-2", POD_NAMESPACE: "kube-flannel" } }),
      KubeStartError,
      /^node name not present in pod spec 'kube-flannel\/ds-2'$/,
    );
    await rejectsWith(
      start({ env: { POD_NAME: "ds-9", POD_NAMESPACE: "kube-flannel" } }),
      KubeStartError,
      /^error retrieving pod spec for 'kube-flannel\/ds-9': Cannot get pod "kube-flannel\/ds-9": pods "ds-9" not found \(404 NotFound\)$/,
    );
    await rejectsWith(
      start({ env: { POD_NAME: "ds-1" } }),
      KubeStartError,
      /^env variables POD_NAME and POD_NAMESPACE must be set \(or NODE_NAME\); in a DaemonSet set them from the downward API/,
    );
  });
});

Deno.test("kube start: without RBAC for pods the error says what to grant", async () => {
  await withStart(async (start) => {
    await rejectsWith(
      start({ env: { POD_NAME: "ds-1", POD_NAMESPACE: "kube-flannel" } }),
      KubeStartError,
      /is forbidden: User "system:anonymous" cannot get resource "pods" .* \(403 Forbidden\); grant "get" on "pods" to flannel's service account$/,
    );
  }, { rules: [{ resources: ["nodes"], verbs: ["get"] }] });
});

Deno.test("kube start: net-conf.json missing or broken, and a bad prefix, are start-up errors", async () => {
  await withStart(async (start, fake) => {
    await rejectsWith(
      start({ netConf: null }),
      KubeStartError,
      /^failed to read net conf: .*net-conf.json: .*; mount net-conf.json there or pass --net-config-path$/,
    );
    await rejectsWith(
      start({ netConf: "{" }),
      KubeStartError,
      /^error parsing subnet config: Cannot parse .*net-conf.json: /,
    );
    const before = fake.requests.length;
    await rejectsWith(
      start({ prefix: "org" }),
      AnnotationPrefixError,
      /^Cannot use --kube-annotation-prefix "org": /,
    );
    assert.equal(fake.requests.length, before);
  });
});

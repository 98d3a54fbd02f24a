/**
 * deploy/kube-flannel.yml: parsed statically against upstream's contract (§4.6 of the behaviour
 * reference), accepted by `kubectl create --dry-run=client` when kubectl is installed (against the
 * fake API server, which serves the discovery kubectl needs), and sufficient as RBAC: the kube
 * manager runs its whole life against a fake API server that enforces exactly the shipped rules.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { defaultOptions, parseFlags } from "../../src/cli/flags.ts";
import { parseNetworkConfig } from "../../src/config/network_config.ts";
import { IP4 } from "../../src/ip/mod.ts";
import { createKubeManager } from "../../src/lease/kube/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { denoKubeRuntime } from "../../src/runtime/kube_http.ts";
import { systemClock } from "../../src/util/clock.ts";
import { installConf } from "../../scripts/install_conf.ts";
import { FakeKubeApiServer, fakeNode, rulesFromManifest } from "../fakes/kube_api_server.ts";

const MANIFEST = new URL("../../deploy/kube-flannel.yml", import.meta.url).pathname;
const text = await Deno.readTextFile(MANIFEST);

// deno-lint-ignore no-explicit-any
type Any = any;
const docs: Any[] = parseAllDocuments(text).map((d) => {
  assert.deepEqual(d.errors, [], `YAML errors in ${MANIFEST}`);
  return d.toJS();
}).filter((d) => d !== null);
const byKind = (kind: string): Any => docs.find((d) => d.kind === kind);

Deno.test("deploy: the objects and names of upstream's kube-flannel.yml", () => {
  assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`), [
    "Namespace/kube-flannel",
    "ServiceAccount/flannel",
    "ClusterRole/flannel",
    "ClusterRoleBinding/flannel",
    "ConfigMap/kube-flannel-cfg",
    "DaemonSet/kube-flannel-ds",
  ]);
  assert.equal(byKind("Namespace").metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
  for (const d of docs.filter((d) => !["Namespace", "ClusterRole", "ClusterRoleBinding"].includes(d.kind))) {
    assert.equal(d.metadata.namespace, "kube-flannel", `${d.kind} namespace`);
  }
});

Deno.test("deploy: RBAC is exactly pods get, nodes get/list/watch, nodes/status patch", () => {
  const granted = byKind("ClusterRole").rules.flatMap((r: Any) =>
    r.apiGroups.flatMap((g: string) =>
      r.resources.flatMap((res: string) => r.verbs.map((v: string) => `${g}/${res}:${v}`))
    )
  ).sort();
  assert.deepEqual(granted, [
    "/nodes/status:patch",
    "/nodes:get",
    "/nodes:list",
    "/nodes:watch",
    "/pods:get",
  ]);
  const binding = byKind("ClusterRoleBinding");
  assert.deepEqual(binding.roleRef, {
    apiGroup: "rbac.authorization.k8s.io",
    kind: "ClusterRole",
    name: "flannel",
  });
  assert.deepEqual(binding.subjects, [{
    kind: "ServiceAccount",
    name: "flannel",
    namespace: "kube-flannel",
  }]);
});

Deno.test("deploy: the ConfigMap's net-conf.json and cni-conf.json", () => {
  const data = byKind("ConfigMap").data;
  const cfg = parseNetworkConfig(data["net-conf.json"]);
  assert.equal(cfg.network?.toString(), "10.244.0.0/16");
  assert.equal(cfg.backendType, "vxlan");
  assert.equal(cfg.enableNFTables, false);
  assert.deepEqual(JSON.parse(data["cni-conf.json"]), {
    name: "cbr0",
    cniVersion: "0.3.1",
    plugins: [
      { type: "flannel", delegate: { hairpinMode: true, isDefaultGateway: true } },
      { type: "portmap", capabilities: { portMappings: true } },
    ],
  });
});

Deno.test("deploy: the DaemonSet runs our flags, mounts and identity as upstream's does", () => {
  const ds = byKind("DaemonSet");
  const pod = ds.spec.template.spec;
  assert.deepEqual(ds.spec.selector.matchLabels, { app: "flannel", "k8s-app": "flannel" });
  for (const [k, v] of Object.entries(ds.spec.selector.matchLabels)) {
    assert.equal(ds.spec.template.metadata.labels[k], v);
  }
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.priorityClassName, "system-node-critical");
  assert.equal(pod.serviceAccountName, "flannel");
  assert.deepEqual(pod.tolerations, [{ operator: "Exists", effect: "NoSchedule" }]);
  assert.deepEqual(
    pod.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]
      .matchExpressions,
    [{ key: "kubernetes.io/os", operator: "In", values: ["linux"] }],
  );
  const [plugin, conf] = pod.initContainers;
  assert.deepEqual([...plugin.command, ...plugin.args], ["cp", "-f", "/flannel", "/opt/cni/bin/flannel"]);
  assert.deepEqual([...conf.command, ...conf.args], [
    "/opt/bin/install-conf",
    "/etc/kube-flannel/cni-conf.json",
    "/etc/cni/net.d/10-flannel.conflist",
  ]);
  const main = pod.containers[0];
  assert.deepEqual(main.command, ["/opt/bin/flanneld"]);
  const parsed = parseFlags(main.args, {});
  assert.equal(parsed.kind, "run", JSON.stringify(parsed));
  if (parsed.kind !== "run") return;
  assert.deepEqual(
    { kube: parsed.options.kubeSubnetMgr, masq: parsed.options.ipMasq, port: parsed.options.healthzPort },
    { kube: true, masq: true, port: 8081 },
  );
  assert.equal(parsed.options.netConfigPath, defaultOptions().netConfigPath);
  assert.equal(main.readinessProbe.httpGet.port, 8081);
  assert.equal(main.readinessProbe.httpGet.path, "/readyz");
  assert.deepEqual(main.securityContext, {
    privileged: false,
    capabilities: { add: ["NET_ADMIN", "NET_RAW"] },
  });
  assert.deepEqual(main.env.map((e: Any) => `${e.name}=${e.valueFrom.fieldRef.fieldPath}`), [
    "POD_NAME=metadata.name",
    "POD_NAMESPACE=metadata.namespace",
  ]);
  const mounts = Object.fromEntries(main.volumeMounts.map((m: Any) => [m.mountPath, m.name]));
  assert.deepEqual(mounts, {
    "/run/flannel": "run",
    "/etc/kube-flannel/": "flannel-cfg",
    "/run/xtables.lock": "xtables-lock",
  });
  const volumes = new Map(pod.volumes.map((v: Any) => [v.name, v]));
  for (const c of [...pod.initContainers, ...pod.containers]) {
    for (const m of c.volumeMounts) {
      assert.ok(volumes.has(m.name), `${c.name} mounts undefined volume ${m.name}`);
    }
  }
  assert.equal((volumes.get("flannel-cfg") as Any).configMap.name, "kube-flannel-cfg");
  assert.equal((volumes.get("xtables-lock") as Any).hostPath.type, "FileOrCreate");
  assert.equal((volumes.get("cni") as Any).hostPath.path, "/etc/cni/net.d");
  assert.equal((volumes.get("cni-plugin") as Any).hostPath.path, "/opt/cni/bin");
});

const kubectl = await new Deno.Command("kubectl", {
  args: ["version", "--client"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);
if (!kubectl) {
  console.log("skip deploy kubectl check: kubectl is not installed (Debian package kubernetes-client)");
}

Deno.test({
  name: "deploy: kubectl create --dry-run=client accepts the manifest",
  ignore: !kubectl,
  async fn() {
    // kubectl needs discovery to map kinds to resources even for a client-side dry run; the fake
    // serves it. It serves no OpenAPI schema, hence --validate=false.
    const fake = await FakeKubeApiServer.start({ bookmarkIntervalMs: 0 });
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${dir}/kubeconfig`,
        `apiVersion: v1\nkind: Config\nclusters: [{name: f, cluster: {server: "${fake.url}"}}]\n` +
          `users: [{name: u, user: {}}]\ncontexts: [{name: f, context: {cluster: f, user: u}}]\ncurrent-context: f\n`,
      );
      const out = await new Deno.Command("kubectl", {
        args: [
          "--kubeconfig",
          `${dir}/kubeconfig`,
          "create",
          "--dry-run=client",
          "--validate=false",
          "-f",
          MANIFEST,
        ],
        stdout: "piped",
        stderr: "piped",
        env: { HOME: dir },
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      assert.ok(out.success, new TextDecoder().decode(out.stderr));
      assert.deepEqual(stdout.trim().split("\n"), [
        "namespace/kube-flannel created (dry run)",
        "serviceaccount/flannel created (dry run)",
        "clusterrole.rbac.authorization.k8s.io/flannel created (dry run)",
        "clusterrolebinding.rbac.authorization.k8s.io/flannel created (dry run)",
        "configmap/kube-flannel-cfg created (dry run)",
        "daemonset.apps/kube-flannel-ds created (dry run)",
      ]);
    } finally {
      await fake.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("deploy: the manager works with exactly the shipped RBAC and the DaemonSet's env", async () => {
  const fake = await FakeKubeApiServer.start({
    bookmarkIntervalMs: 0,
    token: "sa-token",
    rules: rulesFromManifest(text, "flannel"),
  });
  const dir = await Deno.makeTempDir();
  const log = new MemoryLogger();
  try {
    fake.addNode(fakeNode("worker-1", { podCIDR: "10.244.5.0/24" }));
    fake.addPod("kube-flannel", "kube-flannel-ds-abcde", "worker-1");
    await Deno.writeTextFile(`${dir}/net-conf.json`, byKind("ConfigMap").data["net-conf.json"]);
    await Deno.writeTextFile(
      `${dir}/kubeconfig`,
      `apiVersion: v1\nkind: Config\nclusters: [{name: f, cluster: {server: "${fake.url}"}}]\n` +
        `users: [{name: u, user: {token: sa-token}}]\ncontexts: [{name: f, context: {cluster: f, user: u}}]\n` +
        `current-context: f\n`,
    );
    const m = await createKubeManager(
      {
        kubeApiUrl: "",
        kubeconfigFile: `${dir}/kubeconfig`,
        kubeAnnotationPrefix: "flannel.alpha.coreos.com",
        netConfigPath: `${dir}/net-conf.json`,
        setNodeNetworkUnavailable: true,
      },
      { POD_NAME: "kube-flannel-ds-abcde", POD_NAMESPACE: "kube-flannel" },
      log,
      systemClock,
      denoKubeRuntime,
    );
    const ctl = new AbortController();
    try {
      assert.equal(m.name, "Kubernetes Subnet Manager - worker-1");
      const lease = await m.acquireLease(
        { publicIP: IP4.parse("192.168.0.5"), backendType: "host-gw" },
        ctl.signal,
      );
      assert.equal(lease.subnet.toString(), "10.244.5.0/24");
      const it = m.watchLeases(lease, ctl.signal)[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false);
      const done = m.completeLease(lease, ctl.signal);
      const deadline = Date.now() + 5000;
      while (!log.messages("info").some((s) => s.startsWith("Set condition NetworkUnavailable=False"))) {
        assert.ok(Date.now() < deadline, `no condition within 5 s: ${log.messages("error").join("; ")}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      ctl.abort();
      assert.equal(await done, "cancelled");
      await it.return?.(undefined);
      assert.deepEqual(log.messages("error"), []);
      const forbidden = await fetch(`${fake.url}/api/v1/namespaces/kube-flannel/pods`, {
        headers: { authorization: "Bearer sa-token" },
      });
      assert.equal(forbidden.status, 403, "listing pods is not granted");
      await forbidden.body?.cancel();
    } finally {
      ctl.abort();
      await m.close();
    }
  } finally {
    await fake.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: install-conf copies atomically and keeps the source's mode", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/cni-conf.json`, byKind("ConfigMap").data["cni-conf.json"], {
      mode: 0o640,
    });
    await Deno.chmod(`${dir}/cni-conf.json`, 0o640);
    await Deno.mkdir(`${dir}/net.d`);
    await Deno.writeTextFile(`${dir}/net.d/10-flannel.conflist`, "old");
    await installConf(`${dir}/cni-conf.json`, `${dir}/net.d/10-flannel.conflist`);
    assert.equal(
      await Deno.readTextFile(`${dir}/net.d/10-flannel.conflist`),
      byKind("ConfigMap").data["cni-conf.json"],
    );
    assert.equal((await Deno.stat(`${dir}/net.d/10-flannel.conflist`)).mode! & 0o777, 0o640);
    assert.deepEqual([...Deno.readDirSync(`${dir}/net.d`)].map((e) => e.name), ["10-flannel.conflist"]);
    await assert.rejects(
      installConf(`${dir}/missing.json`, `${dir}/net.d/x`),
      /^Error: Cannot read .*missing.json: /,
    );
    await assert.rejects(
      installConf(`${dir}/cni-conf.json`, `${dir}/nope/10-flannel.conflist`),
      /^Error: Cannot install .*nope\/10-flannel.conflist: .*; is its directory mounted\?$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

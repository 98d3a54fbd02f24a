import assert from "node:assert/strict";
import { KubeApiError, KubeClient } from "../../src/lease/kube/client.ts";
import {
  KubeConfigError,
  type KubeConfigInput,
  type KubeFetch,
  type KubeRuntime,
  type KubeTls,
  loadKubeConfig,
  SERVICE_ACCOUNT_DIR,
} from "../../src/lease/kube/config.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { denoKubeRuntime } from "../../src/runtime/kube_http.ts";
import type { Clock } from "../../src/util/clock.ts";
import { FakeKubeApiServer, fakeNode } from "../fakes/kube_api_server.ts";

/** Files in memory, and the TLS settings each created fetch got. */
class FakeRuntime implements KubeRuntime {
  readonly tls: KubeTls[] = [];
  constructor(readonly files: Record<string, string>) {}
  readTextFile(path: string): Promise<string> {
    const text = this.files[path];
    return text === undefined
      ? Promise.reject(new Error(`No such file or directory: ${path}`))
      : Promise.resolve(text);
  }
  createFetch(tls: KubeTls): KubeFetch {
    this.tls.push(tls);
    return Object.assign(() => Promise.reject(new Error("no network in this test")), { close() {} });
  }
}

class FakeClock implements Clock {
  t = 1_000_000;
  now = () => this.t;
  sleep = () => Promise.resolve();
}

function input(runtime: FakeRuntime, over: Partial<KubeConfigInput> = {}): KubeConfigInput {
  return {
    apiUrl: "",
    kubeconfigPath: "",
    env: {},
    runtime,
    log: new MemoryLogger(),
    clock: new FakeClock(),
    ...over,
  };
}

const b64 = (s: string) => btoa(s);
const CA = "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n";
const CERT = "-----BEGIN CERTIFICATE-----\ncert\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n";

function kubeconfig(
  user: string,
  cluster = `server: https://1.2.3.4:6443\n    certificate-authority-data: ${b64(CA)}`,
) {
  return `apiVersion: v1
kind: Config
current-context: b
contexts:
- name: a
  context: {cluster: other, user: other}
- name: b
  context: {cluster: c, user: u}
clusters:
- name: c
  cluster:
    ${cluster}
users:
- name: u
  user:
    ${user}
`;
}

Deno.test("kube config: in-cluster from the service account and the service env", async () => {
  const rt = new FakeRuntime({
    [`${SERVICE_ACCOUNT_DIR}/token`]: "tok\n",
    [`${SERVICE_ACCOUNT_DIR}/ca.crt`]: CA,
  });
  const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
  const cfg = await loadKubeConfig(input(rt, { env }));
  assert.equal(cfg.server, "https://10.96.0.1:443");
  assert.equal(cfg.source, "in-cluster");
  assert.equal(await cfg.auth?.authorization(), "Bearer tok");
  assert.deepEqual(rt.tls, [{ caPem: CA }]);
  const v6 = await loadKubeConfig(
    input(rt, { env: { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" } }),
  );
  assert.equal(v6.server, "https://[fd00::1]:443");
});

Deno.test("kube config: the service-account token is re-read every minute and after a 401", async () => {
  const rt = new FakeRuntime({ [`${SERVICE_ACCOUNT_DIR}/token`]: "one" });
  const clock = new FakeClock();
  const log = new MemoryLogger();
  const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
  const cfg = await loadKubeConfig(input(rt, { env, clock, log }));
  assert.match(log.messages("error")[0]!, /^Expected to load root CA config from .*ca.crt, but got err: /);
  rt.files[`${SERVICE_ACCOUNT_DIR}/token`] = "two";
  assert.equal(await cfg.auth!.authorization(), "Bearer one");
  clock.t += 60_000;
  assert.equal(await cfg.auth!.authorization(), "Bearer two");
  rt.files[`${SERVICE_ACCOUNT_DIR}/token`] = "three";
  assert.equal(await cfg.auth!.authorization(true), "Bearer three");
  delete rt.files[`${SERVICE_ACCOUNT_DIR}/token`];
  assert.equal(await cfg.auth!.authorization(true), "Bearer three", "the last good token is kept");
});

Deno.test("kube config: kubeconfig current-context with token and CA data; --kube-api-url overrides", async () => {
  const rt = new FakeRuntime({ "/etc/k/config": kubeconfig("token: abc") });
  const cfg = await loadKubeConfig(input(rt, { kubeconfigPath: "/etc/k/config" }));
  assert.equal(cfg.server, "https://1.2.3.4:6443");
  assert.equal(await cfg.auth?.authorization(), "Bearer abc");
  assert.deepEqual(rt.tls, [{ caPem: CA }]);
  assert.equal(cfg.source, `kubeconfig "/etc/k/config" context "b"`);
  const over = await loadKubeConfig(
    input(rt, { kubeconfigPath: "/etc/k/config", apiUrl: "https://5.6.7.8:443/" }),
  );
  assert.equal(over.server, "https://5.6.7.8");
});

Deno.test("kube config: client certificate and CA files relative to the kubeconfig; tokenFile; basic auth", async () => {
  const rt = new FakeRuntime({
    "/etc/k/config": kubeconfig(
      "client-certificate: pki/c.pem\n    client-key: /abs/k.pem\n    tokenFile: tok",
      "server: https://1.2.3.4:6443\n    certificate-authority: pki/ca.pem",
    ),
    "/etc/k/pki/c.pem": CERT,
    "/abs/k.pem": KEY,
    "/etc/k/pki/ca.pem": CA,
    "/etc/k/tok": "filetoken\n",
  });
  const cfg = await loadKubeConfig(input(rt, { kubeconfigPath: "/etc/k/config" }));
  assert.deepEqual(rt.tls, [{ caPem: CA, certPem: CERT, keyPem: KEY }]);
  assert.equal(await cfg.auth?.authorization(), "Bearer filetoken");
  const basic = new FakeRuntime({ "/k": kubeconfig("username: admin\n    password: pw") });
  const b = await loadKubeConfig(input(basic, { kubeconfigPath: "/k" }));
  assert.equal(await b.auth?.authorization(), `Basic ${btoa("admin:pw")}`);
});

Deno.test("kube config: --kube-api-url alone is that server without credentials", async () => {
  const rt = new FakeRuntime({});
  const cfg = await loadKubeConfig(input(rt, { apiUrl: "http://127.0.0.1:8080" }));
  assert.equal(cfg.server, "http://127.0.0.1:8080");
  assert.equal(cfg.auth, undefined);
  assert.deepEqual(rt.tls, [{}]);
});

Deno.test("kube config: insecure-skip-tls-verify warns; with a CA it is client-go's error", async () => {
  const log = new MemoryLogger();
  const rt = new FakeRuntime({
    "/k": kubeconfig("token: t", "server: https://1.2.3.4\n    insecure-skip-tls-verify: true"),
  });
  await loadKubeConfig(input(rt, { kubeconfigPath: "/k", log }));
  assert.match(
    log.messages("warn")[0]!,
    /cluster "c" sets insecure-skip-tls-verify, but this runtime verifies/,
  );
  const both = new FakeRuntime({
    "/k": kubeconfig(
      "token: t",
      `server: https://1.2.3.4\n    insecure-skip-tls-verify: true\n    certificate-authority-data: ${
        b64(CA)
      }`,
    ),
  });
  await assert.rejects(
    loadKubeConfig(input(both, { kubeconfigPath: "/k" })),
    /specifying a root certificates file with the insecure flag is not allowed/,
  );
});

const ERRORS: [string, Record<string, string>, Partial<KubeConfigInput>, string][] = [
  [
    "outside a pod without flags",
    {},
    {},
    "fail to create kubernetes config: unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and " +
    "KUBERNETES_SERVICE_PORT must be defined; outside a pod pass --kubeconfig-file or --kube-api-url",
  ],
  [
    "a missing kubeconfig",
    {},
    { kubeconfigPath: "/nope" },
    `fail to create kubernetes config: cannot read --kubeconfig-file "/nope": No such file or directory: /nope`,
  ],
  [
    "no current-context",
    { "/k": "apiVersion: v1\nkind: Config\n" },
    { kubeconfigPath: "/k" },
    `fail to create kubernetes config: kubeconfig "/k" has no current-context: set one with kubectl config use-context <name>`,
  ],
  [
    "a context naming a missing cluster",
    { "/k": kubeconfig("token: t").replace("cluster: c, user: u", "cluster: zz, user: u") },
    { kubeconfigPath: "/k" },
    `fail to create kubernetes config: kubeconfig "/k" has no cluster named "zz" (clusters: c); fix the kubeconfig`,
  ],
  [
    "exec credentials",
    { "/k": kubeconfig("exec: {command: aws}") },
    { kubeconfigPath: "/k" },
    `fail to create kubernetes config: kubeconfig "/k" user "u" uses exec credentials, which flanneld does not ` +
    `support: use token, tokenFile or client-certificate/client-key`,
  ],
  [
    "a certificate without key",
    { "/k": kubeconfig(`client-certificate-data: ${b64(CERT)}`) },
    { kubeconfigPath: "/k" },
    `fail to create kubernetes config: kubeconfig "/k" user "u" has a client certificate without a key: give both`,
  ],
  [
    "a server that is not http(s)",
    { "/k": kubeconfig("token: t", "server: ftp://x") },
    { kubeconfigPath: "/k" },
    `fail to create kubernetes config: kubeconfig "/k" cluster "c" server "ftp://x" has scheme ftp:: want https:// or http://`,
  ],
  [
    "YAML that does not parse",
    { "/k": "clusters: [" },
    { kubeconfigPath: "/k" },
    `fail to create kubernetes config: kubeconfig "/k" is not valid YAML: `,
  ],
];

for (const [what, files, over, msg] of ERRORS) {
  Deno.test(`kube config: ${what} is an error naming the fix`, async () => {
    await assert.rejects(loadKubeConfig(input(new FakeRuntime(files), over)), (e) => {
      assert.ok(e instanceof KubeConfigError);
      assert.ok(e.message.startsWith(msg), e.message);
      assert.ok(!e.message.includes("\n"));
      return true;
    });
  });
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

const hasOpenssl = await new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);
if (!hasOpenssl) console.log("skip kube config TLS test: openssl is not installed");

Deno.test({
  name: "kube config: HTTPS with the kubeconfig's CA file works, without it fails",
  ignore: !hasOpenssl,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
      await openssl([
        "req",
        "-x509",
        ...ec,
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=kube-test-ca",
      ], dir);
      await openssl([
        "req",
        ...ec,
        "-keyout",
        "server-key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
      ], dir);
      await Deno.writeTextFile(`${dir}/ext`, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n");
      await openssl([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "server.pem",
      ], dir);
      const fake = await FakeKubeApiServer.start({
        tls: {
          cert: await Deno.readTextFile(`${dir}/server.pem`),
          key: await Deno.readTextFile(`${dir}/server-key.pem`),
        },
        token: "t0k",
        bookmarkIntervalMs: 0,
      });
      try {
        fake.addNode(fakeNode("n1"));
        const config = (ca: string) =>
          kubeconfig("token: t0k", `server: ${fake.url}${ca}`).replace(
            "- name: a\n  context: {cluster: other, user: other}\n",
            "",
          );
        await Deno.writeTextFile(`${dir}/kubeconfig`, config("\n    certificate-authority: ca.pem"));
        await Deno.writeTextFile(`${dir}/kubeconfig-noca`, config(""));
        const base = {
          apiUrl: "",
          env: {},
          runtime: denoKubeRuntime,
          log: new MemoryLogger(),
          clock: new FakeClock(),
        };
        const good = await loadKubeConfig({ ...base, kubeconfigPath: `${dir}/kubeconfig` });
        try {
          const n = await new KubeClient({ server: good.server, auth: good.auth, fetch: good.fetch }).getNode(
            "n1",
          );
          assert.equal(n.metadata.name, "n1");
        } finally {
          good.fetch.close();
        }
        const bad = await loadKubeConfig({ ...base, kubeconfigPath: `${dir}/kubeconfig-noca` });
        try {
          await assert.rejects(
            new KubeClient({ server: bad.server, auth: bad.auth, fetch: bad.fetch }).getNode("n1"),
            (e) => e instanceof KubeApiError && e.status === 0,
          );
        } finally {
          bad.fetch.close();
        }
      } finally {
        await fake.stop();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * The virtual cluster (cluster.ts) in Kubernetes mode: the daemons run `--kube-subnet-mgr` against
 * the fake API server (tests/fakes/kube_api_server.ts) instead of etcd.
 *
 * - The fake runs as its own process in the switch namespace, with `--state` (so a restart of the
 *   process keeps the objects and the resourceVersion, as etcd would) and a bearer token. It can
 *   only listen on 127.0.0.1, so a DNAT rule in the switch (with `route_localnet`) forwards
 *   `192.0.2.1:6443`, where the nodes reach it, to `127.0.0.1:6443`.
 * - Node `n<i>` (cluster node i) is created in the API before its daemon starts, with
 *   `spec.podCIDR` `10.244.<i>.0/24` inside the net-conf's `Network` (no controller manager
 *   assigns them here).
 * - Each node gets a kubeconfig (server `http://192.0.2.1:6443`, the token) and a net-conf.json in
 *   `<cluster dir>/kube/n<i>/`; its daemon runs with `--kube-subnet-mgr --kubeconfig-file=…
 *   --net-config-path=…` and `NODE_NAME=n<i>`. (It also gets the cluster's `--etcd-endpoints`,
 *   which kube mode ignores; the etcd in the switch simply stays unused.)
 * - The test talks to the API with `curl` inside the switch namespace: nodes are created,
 *   patched and deleted through the real API paths; watches are cut and the history dropped
 *   through the fake's admin endpoints; a restart stops and starts the process.
 *
 * ```ts ignore
 * await using k = await KubeCluster.start({ nodes: 3 });
 * await k.createNode(ghostNode("g1", { podCIDR: "10.244.101.0/24", publicIP: "192.0.2.201" }));
 * await k.cutWatches("abrupt");
 * await k.restartApi();
 * ```
 *
 * @module
 */
import { Cluster, type ClusterNode, clusterUnavailable } from "./cluster.ts";
import { pollUntil } from "./daemon.ts";
import { exists, inNetns, killProc, run, setNetSysctls } from "./cni.ts";

/** Where the nodes reach the API server (the switch), and the fake's port. */
export const API_HOST = "192.0.2.1";
export const API_PORT = 6443;
/** Upstream's default `--kube-annotation-prefix`, normalised. */
export const ANN = "flannel.alpha.coreos.com";
/** The net-conf `Network` the pod CIDRs are taken from. */
export const KUBE_NETWORK = "10.244.0.0/16";

const ROOT = new URL("../..", import.meta.url).pathname;
const FAKE = `${ROOT}tests/fakes/kube_api_server.ts`;
const STOP_DEADLINE_MS = 5_000;

/** A Kubernetes object as JSON. */
export interface KubeObject {
  metadata: {
    name?: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
  [k: string]: unknown;
}

/** An API answer: HTTP status and parsed body. */
export interface ApiResult {
  status: number;
  body: Record<string, unknown>;
}

/** Options of {@linkcode KubeCluster.start}. */
export interface KubeClusterOptions {
  /** Nodes to start; default 3. */
  nodes?: number;
  /** `Backend.Type` or the Backend object; default `"vxlan"`. */
  backend?: string | Record<string, unknown>;
  /** Pods per node; default 1. */
  podsPerNode?: number;
  /** More flanneld flags for every node. */
  daemonArgs?: string[];
  /** Deadline for each daemon to become ready; default 30 s. */
  readyTimeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

/** Options of {@linkcode KubeCluster.addNode}. */
export interface AddNodeOptions {
  /** The Node exists in the API already. */
  inApi?: boolean;
  /** The Node's pod CIDR; default {@linkcode podCidrOf} its index, `null` for none. */
  podCIDR?: string | null;
  /** The Node's annotations when it is created. */
  annotations?: Record<string, string>;
  /** More flanneld flags for this node's daemon. */
  args?: string[];
}

/** Why the kube cluster cannot run here (one line), or undefined. */
export async function kubeClusterUnavailable(): Promise<string | undefined> {
  const why = await clusterUnavailable();
  if (why) return why;
  if (!exists("/usr/sbin/nft")) {
    return "/usr/sbin/nft is not installed (the switch forwards the API port with it)";
  }
  return undefined;
}

/** `10.244.<index>.0/24`: node `n<index>`'s pod CIDR. */
export function podCidrOf(index: number): string {
  return `10.244.${index}.0/24`;
}

/**
 * A Node as a node that runs flannel would leave it, for nodes that exist only in the API (no
 * namespace, no daemon): pod CIDR and the vxlan annotations. `annotations` overrides or adds
 * keys (a `null` value drops one).
 */
export function ghostNode(
  name: string,
  opts: {
    podCIDR: string;
    publicIP: string;
    mac?: string;
    annotations?: Record<string, string | null>;
  },
): KubeObject {
  const ann: Record<string, string> = {
    [`${ANN}/kube-subnet-manager`]: "true",
    [`${ANN}/backend-type`]: "vxlan",
    [`${ANN}/backend-data`]: JSON.stringify({ VNI: 1, VtepMAC: opts.mac ?? ghostMac(opts.podCIDR) }),
    [`${ANN}/public-ip`]: opts.publicIP,
  };
  for (const [k, v] of Object.entries(opts.annotations ?? {})) {
    if (v === null) delete ann[k];
    else ann[k] = v;
  }
  return {
    metadata: { name, annotations: ann },
    spec: { podCIDR: opts.podCIDR, podCIDRs: [opts.podCIDR] },
    status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
  };
}

/** A locally administered MAC derived from a pod CIDR (`10.244.101.0/24` → `02:42:0a:f4:65:00`). */
function ghostMac(cidr: string): string {
  const octets = cidr.split("/")[0]!.split(".").map((o) => Number(o).toString(16).padStart(2, "0"));
  return `02:42:${octets.join(":")}`;
}

/** The fake API server process in the switch namespace. */
class ApiProcess {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<void>;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    const pump = async (s: ReadableStream<Uint8Array>) => {
      let buf = "";
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        const parts = buf.split("\n");
        buf = parts.pop()!;
        this.lines.push(...parts);
      }
      if (buf) this.lines.push(buf);
    };
    this.#done = Promise.all([pump(child.stdout), pump(child.stderr), child.status]).then(() => {});
  }

  /** Starts the fake; resolves once it prints that it listens. */
  static async start(ns: string, args: string[]): Promise<ApiProcess> {
    const argv = [...inNetns(ns), Deno.execPath(), "run", "-A", FAKE, ...args];
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const p = new ApiProcess(child);
    let exited = false;
    child.status.then(() => exited = true);
    try {
      await pollUntil(
        () => exited || p.lines.some((l) => l.startsWith("listening on")),
        20_000,
        () => `the fake API server did not start within 20 s:\n${p.lines.join("\n")}`,
      );
    } catch (e) {
      await killProc(child);
      throw e;
    }
    if (exited) throw new Error(`the fake API server exited at start:\n${p.lines.join("\n")}`);
    return p;
  }

  /** SIGTERM (the fake breaks its watches and exits), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch { /* exited */ }
    const timer = setTimeout(() => killProc(this.#child), STOP_DEADLINE_MS);
    await this.#done.catch(() => {});
    clearTimeout(timer);
  }
}

/** A watch on `/api/v1/nodes` (curl in the switch), timestamping each event as it arrives. */
export class NodeWatch {
  /** Events with `performance.now()` of their arrival. */
  readonly events: { at: number; type: string; object: KubeObject }[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #done: Promise<void>;

  constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#done = (async () => {
      let buf = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        const at = performance.now();
        buf += chunk;
        const parts = buf.split("\n");
        buf = parts.pop()!;
        for (const line of parts.filter((l) => l.trim() !== "")) {
          const ev = JSON.parse(line) as { type: string; object: KubeObject };
          this.events.push({ at, ...ev });
        }
      }
    })();
    this.#done.catch(() => {});
  }

  /** Waits for the first event matching `pred`. */
  async next(
    pred: (type: string, node: KubeObject) => boolean,
    timeoutMs = 20_000,
  ): Promise<{ at: number; type: string; object: KubeObject }> {
    let hit: { at: number; type: string; object: KubeObject } | undefined;
    await pollUntil(
      () => (hit = this.events.find((e) => pred(e.type, e.object))) !== undefined,
      timeoutMs,
      () => `no matching node event within ${timeoutMs} ms; seen ${this.events.map((e) => e.type)}`,
    );
    return hit!;
  }

  async stop(): Promise<void> {
    await killProc(this.#child);
    await this.#done.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** A virtual cluster whose daemons use the Kubernetes subnet manager against the fake API server. */
export class KubeCluster {
  readonly cluster: Cluster;
  /** The bearer token of the kubeconfigs (the fake requires it). */
  readonly token: string;
  /** `<cluster dir>/kube`: kubeconfigs, net-conf.json, the fake's nodes and state files. */
  readonly dir: string;
  /** How many times the API process was started. */
  apiStarts = 0;
  #api: ApiProcess | undefined;
  /** Output of API processes that stopped. */
  readonly #apiLog: string[] = [];
  #next = 1;
  #order: Promise<void> = Promise.resolve();
  /** Extra daemon flags per node index. */
  readonly #args: Map<number, string[]>;
  #down: Promise<void> | undefined;

  private constructor(cluster: Cluster, args: Map<number, string[]>) {
    this.cluster = cluster;
    this.token = crypto.randomUUID();
    this.dir = `${cluster.dir}/kube`;
    this.#args = args;
  }

  /**
   * The switch (its etcd stays unused), the fake API server with nodes `n1..nN`, then the N
   * nodes in parallel, each with its daemon ready and its pods.
   */
  static async start(opts: KubeClusterOptions = {}): Promise<KubeCluster> {
    // The daemons start after the cluster exists (nodes: 0 here), so the callbacks can read it.
    const args = new Map<number, string[]>();
    const c: Cluster = await Cluster.start({
      nodes: 0,
      backend: opts.backend ?? "vxlan",
      network: KUBE_NETWORK,
      podsPerNode: opts.podsPerNode ?? 1,
      ...(opts.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: opts.readyTimeoutMs }),
      ...(opts.log ? { log: opts.log } : {}),
      daemonArgs: (i) => [
        "--kube-subnet-mgr",
        `--kubeconfig-file=${c.dir}/kube/n${i}/kubeconfig`,
        `--net-config-path=${c.dir}/kube/n${i}/net-conf.json`,
        ...(opts.daemonArgs ?? []),
        ...(args.get(i) ?? []),
      ],
      daemonEnv: (i) => ({ NODE_NAME: `n${i}` }),
    });
    const k = new KubeCluster(c, args);
    try {
      await Deno.mkdir(k.dir, { recursive: true });
      const n = opts.nodes ?? 3;
      const nodes = Array.from({ length: n }, (_, i) => registeredNode(`n${i + 1}`, podCidrOf(i + 1)));
      await Deno.writeTextFile(`${k.dir}/nodes.json`, JSON.stringify(nodes));
      await k.#forwardApiPort();
      await k.#startApi();
      const res = await Promise.allSettled(Array.from({ length: n }, () => k.addNode({ inApi: true })));
      for (const r of res) if (r.status === "rejected") throw r.reason;
      return k;
    } catch (err) {
      await k.down().catch(() => {});
      throw err;
    }
  }

  get nodes(): ClusterNode[] {
    return this.cluster.nodes;
  }

  /** The index the next {@linkcode addNode} will get (its node is `n<index>`). */
  get nextIndex(): number {
    return this.#next;
  }

  /**
   * Adds cluster node `n<index>`: its Node in the API (unless `inApi`: it exists already), with
   * `podCIDR` (default {@linkcode podCidrOf}; `null` for none) and `annotations`, its kubeconfig
   * and net-conf, then the node itself, its daemon started with `args` added. Resolves once its
   * daemon is ready, which for a node without a pod CIDR is after one is assigned.
   */
  async addNode(opts: AddNodeOptions = {}): Promise<ClusterNode> {
    const index = this.#next++;
    if (opts.args) this.#args.set(index, opts.args);
    const prepared = this.#prepareNode(index, opts);
    // The cluster numbers nodes in the order addNode is called: call it in our order.
    const turn = this.#order.then(() => prepared);
    this.#order = turn.catch(() => {});
    await turn;
    const node = await this.cluster.addNode();
    if (node.index !== index) {
      throw new Error(
        `KubeCluster expected node ${index}, the cluster made ${node.index}: add nodes through it`,
      );
    }
    return node;
  }

  async #prepareNode(index: number, opts: AddNodeOptions): Promise<void> {
    await this.#writeNodeFiles(index);
    if (!opts.inApi) {
      const cidr = opts.podCIDR === undefined ? podCidrOf(index) : opts.podCIDR;
      const node = registeredNode(`n${index}`, cidr ?? undefined);
      if (opts.annotations) node.metadata.annotations = { ...opts.annotations };
      await this.createNode(node);
    }
  }

  /** The namespace cluster node `index` gets (known before {@linkcode addNode} resolves). */
  nsOf(index: number): string {
    return `flt-${this.cluster.runId}-n${index}`;
  }

  // -------------------------------------------------------------------------------------------
  // The API, through curl in the switch

  /** One API request; `body` is sent as JSON with `contentType`. */
  async api(
    method: string,
    path: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<ApiResult> {
    const argv = [
      "curl",
      "-sS",
      "-m",
      "5",
      "-X",
      method,
      "-H",
      `Authorization: Bearer ${this.token}`,
      "-w",
      "\n%{http_code}",
    ];
    if (body !== undefined) {
      argv.push("-H", `Content-Type: ${contentType}`, "--data-binary", JSON.stringify(body));
    }
    argv.push(`http://127.0.0.1:${API_PORT}${path}`);
    const r = await this.cluster.exec(this.cluster.infra, argv, { timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`${method} ${path}: curl failed (${r.code}): ${r.stderr.trim()}`);
    const i = r.stdout.lastIndexOf("\n");
    const text = r.stdout.slice(0, i);
    return { status: Number(r.stdout.slice(i + 1)), body: text ? JSON.parse(text) : {} };
  }

  /** `api`, throwing unless the status is 2xx. */
  async #ok(method: string, path: string, body?: unknown, contentType?: string): Promise<KubeObject> {
    const r = await this.api(method, path, body, contentType);
    if (r.status < 200 || r.status > 299) {
      throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    return r.body as KubeObject;
  }

  getNode(name: string): Promise<KubeObject> {
    return this.#ok("GET", `/api/v1/nodes/${name}`);
  }

  async listNodes(): Promise<{ resourceVersion: string; items: KubeObject[] }> {
    const list = await this.#ok("GET", "/api/v1/nodes");
    return {
      resourceVersion: String(list.metadata.resourceVersion),
      items: (list as unknown as { items: KubeObject[] }).items,
    };
  }

  createNode(node: KubeObject): Promise<KubeObject> {
    return this.#ok("POST", "/api/v1/nodes", node);
  }

  deleteNode(name: string): Promise<KubeObject> {
    return this.#ok("DELETE", `/api/v1/nodes/${name}`);
  }

  /** A merge patch of the Node (as `kubectl annotate` / `kubectl patch --type merge`). */
  patchNode(name: string, patch: unknown): Promise<KubeObject> {
    return this.#ok("PATCH", `/api/v1/nodes/${name}`, patch, "application/merge-patch+json");
  }

  /** Sets (or with `null` removes) annotations of a Node. */
  annotate(name: string, annotations: Record<string, string | null>): Promise<KubeObject> {
    return this.patchNode(name, { metadata: { annotations } });
  }

  /** Assigns a pod CIDR to a Node that has none (as the node IPAM controller does). */
  assignPodCidr(name: string, cidr: string): Promise<KubeObject> {
    return this.patchNode(name, { spec: { podCIDR: cidr, podCIDRs: [cidr] } });
  }

  /** Starts a watch on all nodes from now (curl in the switch); stop it when done. */
  async watchNodes(): Promise<NodeWatch> {
    const { resourceVersion } = await this.listNodes();
    const url = `http://127.0.0.1:${API_PORT}/api/v1/nodes?watch=true&resourceVersion=${resourceVersion}`;
    const argv = [
      ...inNetns(this.cluster.infra),
      "curl",
      "-sN",
      "-H",
      `Authorization: Bearer ${this.token}`,
      url,
    ];
    const before = await this.openWatches();
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const w = new NodeWatch(child);
    try {
      await pollUntil(
        async () => (await this.openWatches()) > before,
        5_000,
        () => "the test's node watch did not open",
      );
    } catch (e) {
      await w.stop();
      throw e;
    }
    return w;
  }

  // -------------------------------------------------------------------------------------------
  // Faults, through the fake's admin endpoints

  /** Ends every open watch (`abrupt`: the connection breaks mid-stream); how many were open. */
  async cutWatches(mode: "abrupt" | "clean" = "abrupt"): Promise<number> {
    const r = await this.#admin(`/fake/cut-watches?mode=${mode}`);
    return Number(r.cut);
  }

  /** Watch streams open on the fake. */
  async openWatches(): Promise<number> {
    const r = await this.api("GET", "/fake/watches");
    return Number(r.body.count);
  }

  /** Drops the fake's event history: watches from an older version get 410 Expired. */
  async compact(): Promise<void> {
    await this.#admin("/fake/compact");
  }

  /** Fails the next `count` requests matching `match` with `code`. */
  async failNext(count: number, code: number, match?: string): Promise<void> {
    const q = new URLSearchParams({ count: String(count), code: String(code), ...(match ? { match } : {}) });
    await this.#admin(`/fake/fail?${q}`);
  }

  /**
   * Restarts the API server process: SIGTERM (its watches break), then `whileDown` may change
   * the stored objects (as other writers to etcd would), then a new process on the same port,
   * whose history starts empty. Resolves with the milliseconds it was down.
   */
  async restartApi(
    whileDown?: (state: { rv: number; objects: { resource: string; obj: KubeObject }[] }) => void,
  ): Promise<number> {
    const t0 = performance.now();
    await this.#stopApi();
    if (whileDown) {
      const path = `${this.dir}/state.json`;
      const state = JSON.parse(await Deno.readTextFile(path));
      whileDown(state);
      await Deno.writeTextFile(path, JSON.stringify(state));
    }
    await this.#startApi();
    return performance.now() - t0;
  }

  async #admin(path: string): Promise<Record<string, unknown>> {
    const r = await this.api("POST", path);
    if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  // -------------------------------------------------------------------------------------------

  /** Every node's daemon log and the API server's output, for failure messages. */
  logs(): string {
    const api = [...this.#apiLog, ...(this.#api?.lines ?? [])].map((l) => `    | ${l}`).join("\n");
    return `${this.cluster.logs()}\nfake API server:\n${api}`;
  }

  /** Stops the API server, then the cluster (namespaces, processes, the temp dir). Never throws. */
  down(): Promise<void> {
    this.#down ??= (async () => {
      await this.#stopApi().catch(() => {});
      await this.cluster.down();
    })();
    return this.#down;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.down();
  }

  async #writeNodeFiles(index: number): Promise<void> {
    const d = `${this.dir}/n${index}`;
    await Deno.mkdir(d, { recursive: true });
    await Deno.writeTextFile(`${d}/net-conf.json`, JSON.stringify(this.cluster.netConf, null, 2));
    await Deno.writeTextFile(
      `${d}/kubeconfig`,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "  - name: fake",
        "    cluster:",
        `      server: http://${API_HOST}:${API_PORT}`,
        "users:",
        `  - name: n${index}`,
        "    user:",
        `      token: ${this.token}`,
        "contexts:",
        "  - name: fake",
        "    context:",
        "      cluster: fake",
        `      user: n${index}`,
        "current-context: fake",
        "",
      ].join("\n"),
    );
  }

  /**
   * The fake listens on 127.0.0.1 only: DNAT `192.0.2.1:6443` to it in the switch. Packets to a
   * loopback address arriving on br0 are dropped as martians unless `route_localnet` is on.
   */
  async #forwardApiPort(): Promise<void> {
    const ns = this.cluster.infra;
    await setNetSysctls(ns, { "ipv4/conf/all/route_localnet": 1, "ipv4/conf/br0/route_localnet": 1 });
    const rules = [
      "table ip flt_kube_api {",
      "  chain prerouting {",
      "    type nat hook prerouting priority dstnat; policy accept;",
      `    ip daddr ${API_HOST} tcp dport ${API_PORT} dnat to 127.0.0.1:${API_PORT}`,
      "  }",
      "}",
    ].join("\n");
    const file = `${this.dir}/api-forward.nft`;
    await Deno.writeTextFile(file, rules + "\n");
    const r = await run(["ip", "netns", "exec", ns, "nft", "-f", file]);
    if (r.code !== 0) throw new Error(`Cannot forward the API port in ${ns}: ${r.stderr.trim()}`);
  }

  async #startApi(): Promise<void> {
    this.#api = await ApiProcess.start(this.cluster.infra, [
      "--port",
      String(API_PORT),
      "--nodes",
      `${this.dir}/nodes.json`,
      "--state",
      `${this.dir}/state.json`,
      "--token",
      this.token,
      "--bookmark-interval-ms",
      "1000",
    ]);
    this.apiStarts++;
  }

  async #stopApi(): Promise<void> {
    const api = this.#api;
    this.#api = undefined;
    if (!api) return;
    await api.stop();
    this.#apiLog.push(...api.lines, "(stopped)");
  }
}

/** A Node as the kubelet registers it, with `podCIDR` when given. */
function registeredNode(name: string, podCIDR: string | undefined): KubeObject {
  return {
    metadata: { name },
    spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
    status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
  };
}

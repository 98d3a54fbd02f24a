/**
 * A fake Kubernetes API server for tests, faithful in what flannel touches: nodes and pods; GET,
 * LIST (with limit/continue) and WATCH with resourceVersion semantics; 410 Expired for a watch
 * older than the event history; BOOKMARK events when asked; strategic-merge and merge patches, with
 * `nodes/status` changing only metadata and status and the main resource never status; no-op writes
 * that make no event; 401/403/404/409/422 with real `Status` bodies; bearer tokens and RBAC rules;
 * discovery for kubectl. A test can cut watch streams (cleanly or mid-stream), drop the history,
 * inject failures, and restart the server on the same port.
 *
 * In process: `await FakeKubeApiServer.start({...})`. On its own, for the e2e harness:
 *
 *   deno run -A tests/fakes/kube_api_server.ts --port N --nodes nodes.json [--pods pods.json]
 *     [--token T] [--rbac deploy/kube-flannel.yml] [--state state.json] [--bookmark-interval-ms N]
 *
 * It prints `listening on http://127.0.0.1:N` when ready. Admin endpoints (no auth):
 * `POST /fake/cut-watches?mode=abrupt|clean`, `POST /fake/compact`, `POST /fake/bookmark`,
 * `POST /fake/restart?downMs=N`, `POST /fake/fail?count=N&code=C&match=REGEX`, `GET /fake/watches`.
 */
import { discovery } from "./kube_api/discovery.ts";
import { authorize, type PolicyRule, rulesFromManifest, selector } from "./kube_api/rbac.ts";
import { ApiError, type KObject, type Resource, type Selector, Store } from "./kube_api/store.ts";

export { ApiError, type KObject, Store } from "./kube_api/store.ts";
export { type PolicyRule, rulesFromManifest } from "./kube_api/rbac.ts";

/** Options of {@linkcode FakeKubeApiServer.start}. */
export interface FakeKubeApiOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** The user that token belongs to, for RBAC messages. */
  user?: string;
  /** RBAC: when given, every request must be allowed by one rule. */
  rules?: PolicyRule[];
  /** Events kept for watches from an older version (default 1000). */
  historyLimit?: number;
  /** How often bookmark-enabled watches get a BOOKMARK (default 1000 ms; 0: only on request). */
  bookmarkIntervalMs?: number;
  /** Serve HTTPS with this PEM certificate and key. */
  tls?: { cert: string; key: string };
  store?: Store;
}

/** A recorded request. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: string;
  contentType: string | null;
  body?: unknown;
}

interface OpenWatch {
  bookmarks: boolean;
  resource: Resource;
  bookmark(): void;
  close(mode: "clean" | "abrupt"): void;
}

const enc = new TextEncoder();
const REASONS: Record<number, string> = {
  400: "BadRequest",
  410: "Gone",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** A node object for tests: name, pod CIDR(s) and annotations. */
export function fakeNode(
  name: string,
  opts: { podCIDR?: string; podCIDRs?: string[]; annotations?: Record<string, string> } = {},
): KObject {
  const spec: Record<string, unknown> = {};
  if (opts.podCIDR) spec.podCIDR = opts.podCIDR;
  if (opts.podCIDRs) spec.podCIDRs = opts.podCIDRs;
  return {
    metadata: { name, ...(opts.annotations ? { annotations: { ...opts.annotations } } : {}) },
    spec,
    status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }] },
  };
}

/** The fake server. */
export class FakeKubeApiServer {
  readonly store: Store;
  readonly requests: RecordedRequest[] = [];
  readonly #opts: FakeKubeApiOptions;
  readonly #watches = new Set<OpenWatch>();
  #faults: { count: number; code: number; match?: RegExp }[] = [];
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #port: number;
  #bookmarkTimer: ReturnType<typeof setInterval> | undefined;

  private constructor(opts: FakeKubeApiOptions) {
    this.#opts = opts;
    this.store = opts.store ??
      new Store(opts.historyLimit === undefined ? {} : { historyLimit: opts.historyLimit });
    this.#port = opts.port ?? 0;
  }

  /** Starts a server on 127.0.0.1. */
  static async start(opts: FakeKubeApiOptions = {}): Promise<FakeKubeApiServer> {
    const s = new FakeKubeApiServer(opts);
    await s.#listen();
    return s;
  }

  /** `http(s)://127.0.0.1:<port>`. */
  get url(): string {
    return `${this.#opts.tls ? "https" : "http"}://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** How many watch streams are open. */
  get watchCount(): number {
    return this.#watches.size;
  }

  addNode(node: KObject): KObject {
    return this.store.create("nodes", "", node);
  }

  getNode(name: string): KObject {
    return this.store.get("nodes", "", name);
  }

  /** Changes a node as a controller would (PUT of the whole object, spec and metadata). */
  modifyNode(name: string, fn: (node: KObject) => void): KObject {
    const node = this.store.get("nodes", "", name);
    fn(node);
    return this.store.update("nodes", "", name, node);
  }

  deleteNode(name: string): KObject {
    return this.store.delete("nodes", "", name);
  }

  addPod(ns: string, name: string, nodeName: string): KObject {
    return this.store.create("pods", ns, { metadata: { name, namespace: ns }, spec: { nodeName } });
  }

  /** Ends every open watch: `clean` ends the stream, `abrupt` breaks the connection mid-stream. */
  cutWatches(mode: "clean" | "abrupt" = "abrupt"): number {
    const n = this.#watches.size;
    for (const w of [...this.#watches]) w.close(mode);
    return n;
  }

  /** Sends a BOOKMARK on every watch that allows them. */
  bookmark(): void {
    for (const w of this.#watches) if (w.bookmarks) w.bookmark();
  }

  /** Fails the next `count` API requests (matching `match` on path+query) with `code`. */
  failNext(count: number, code: number, match?: RegExp): void {
    this.#faults.push({ count, code, ...(match ? { match } : {}) });
  }

  /**
   * Stops serving and starts again on the same port, keeping the objects; the history is dropped
   * unless `keepHistory` (a real API server's watch cache starts empty).
   */
  async restart(opts: { downMs?: number; keepHistory?: boolean } = {}): Promise<void> {
    await this.stop();
    if (!opts.keepHistory) this.store.compact();
    if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
    await this.#listen();
  }

  /** Breaks every watch and stops listening. */
  async stop(): Promise<void> {
    clearInterval(this.#bookmarkTimer);
    this.cutWatches("abrupt");
    const server = this.#server;
    this.#server = undefined;
    await server?.shutdown();
  }

  /** Same as {@linkcode stop}. */
  close(): Promise<void> {
    return this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #listen(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#server = Deno.serve({
      hostname: "127.0.0.1",
      port: this.#port,
      onListen: () => resolve(),
      // Also keeps Deno from printing the error of a watch stream cut on purpose.
      onError: (e) => status(new ApiError(500, "InternalError", `fake server error: ${e}`)),
      ...(this.#opts.tls ? { cert: this.#opts.tls.cert, key: this.#opts.tls.key } : {}),
    }, (req) => this.#handle(req));
    await promise;
    this.#port = this.#server.addr.port;
    const every = this.#opts.bookmarkIntervalMs ?? 1000;
    if (every > 0) this.#bookmarkTimer = setInterval(() => this.bookmark(), every);
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    if (path.startsWith("/fake/")) return this.#admin(path, url.searchParams);
    let body: unknown;
    if (req.method === "POST" || req.method === "PUT" || req.method === "PATCH") {
      const text = await req.text();
      try {
        body = JSON.parse(text);
      } catch {
        return status(
          new ApiError(400, "BadRequest", `the body of the request is not JSON: ${text.slice(0, 40)}`),
        );
      }
    }
    this.requests.push({
      method: req.method,
      path,
      query: url.search,
      contentType: req.headers.get("content-type"),
      ...(body === undefined ? {} : { body }),
    });
    const fault = this.#faults.find((f) => f.count > 0 && (!f.match || f.match.test(path + url.search)));
    if (fault) {
      fault.count--;
      return status(
        new ApiError(fault.code, REASONS[fault.code] ?? "InternalError", "injected failure (fake)"),
      );
    }
    if (this.#opts.token !== undefined && req.headers.get("authorization") !== `Bearer ${this.#opts.token}`) {
      return status(new ApiError(401, "Unauthorized", "Unauthorized"));
    }
    const doc = discovery(path, `127.0.0.1:${this.#port}`);
    if (doc !== undefined && req.method === "GET") return json(doc);
    try {
      return this.#route(req.method, path, url.searchParams, req.headers.get("content-type") ?? "", body);
    } catch (e) {
      if (e instanceof ApiError) return status(e);
      throw e;
    }
  }

  #route(method: string, path: string, q: URLSearchParams, type: string, body: unknown): Response {
    let m = path.match(/^\/api\/v1\/(nodes|pods)$/) ?? path.match(/^\/api\/v1\/namespaces\/([^/]+)\/(pods)$/);
    if (m) {
      const [resource, ns] = m.length === 2
        ? [m[1] as Resource, undefined]
        : [m[2] as Resource, decodeURIComponent(m[1]!)];
      const watch = q.get("watch") === "true" || q.get("watch") === "1";
      const verb = method === "POST" ? "create" : watch ? "watch" : "list";
      if (method !== "GET" && method !== "POST") throw methodNotAllowed(method);
      authorize(this.#opts, verb, resource, undefined, ns, undefined);
      if (method === "POST") {
        if (resource === "pods" && ns === undefined) throw methodNotAllowed(method);
        return json(this.store.create(resource, ns ?? "", body as KObject), 201);
      }
      const sel = selector(q);
      return watch ? this.#watch(resource, ns, sel, q) : this.#list(resource, ns, sel, q);
    }
    m = path.match(/^\/api\/v1\/nodes\/([^/]+)(\/status)?$/) ??
      path.match(/^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)(\/status)?$/);
    if (!m) {
      throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    }
    const isPod = path.includes("/pods/");
    const resource: Resource = isPod ? "pods" : "nodes";
    const ns = isPod ? decodeURIComponent(m[1]!) : "";
    const name = decodeURIComponent(isPod ? m[2]! : m[1]!);
    const sub = (isPod ? m[3] : m[2]) ? "status" as const : undefined;
    const verb =
      ({ GET: "get", PUT: "update", PATCH: "patch", DELETE: "delete" } as Record<string, string>)[method];
    if (!verb || (sub && verb === "delete")) throw methodNotAllowed(method);
    authorize(this.#opts, verb, resource, sub, isPod ? ns : undefined, name);
    switch (verb) {
      case "get":
        return json(this.store.get(resource, ns, name));
      case "update":
        return json(this.store.update(resource, ns, name, body as KObject, sub));
      case "delete":
        return json(this.store.delete(resource, ns, name));
    }
    const mt = type.split(";")[0]!.trim();
    const kind = mt === "application/strategic-merge-patch+json"
      ? "strategic"
      : mt === "application/merge-patch+json"
      ? "merge"
      : undefined;
    if (!kind) {
      throw new ApiError(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ` +
          `application/merge-patch+json, application/strategic-merge-patch+json (fake; got ${
            JSON.stringify(mt)
          })`,
      );
    }
    return json(this.store.patch(resource, ns, name, body, kind, sub));
  }

  #list(resource: Resource, ns: string | undefined, sel: Selector, q: URLSearchParams): Response {
    const rv = this.store.rv;
    let items = this.store.list(resource, ns, sel);
    let listRv = rv;
    const cont = q.get("continue");
    if (cont) {
      let token: { rv: number; after: string };
      try {
        token = JSON.parse(atob(cont));
      } catch {
        throw new ApiError(400, "BadRequest", "continue key is not valid: illegal base64 data");
      }
      if (token.rv < this.store.historyStart) {
        throw new ApiError(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result. You can start a new " +
            "list without the continue parameter.",
        );
      }
      listRv = token.rv;
      items = items.filter((o) => sortKey(o) > token.after);
    }
    const limit = Number(q.get("limit") ?? 0);
    const metadata: Record<string, unknown> = { resourceVersion: String(listRv) };
    if (limit > 0 && items.length > limit) {
      items = items.slice(0, limit);
      metadata.continue = btoa(JSON.stringify({ rv: listRv, after: sortKey(items[items.length - 1]!) }));
    }
    for (const o of items) {
      delete o.kind;
      delete o.apiVersion;
    }
    return json({ kind: resource === "nodes" ? "NodeList" : "PodList", apiVersion: "v1", metadata, items });
  }

  #watch(resource: Resource, ns: string | undefined, sel: Selector, q: URLSearchParams): Response {
    const fromRv = q.get("resourceVersion") ?? undefined;
    const timeoutSeconds = Number(q.get("timeoutSeconds") ?? 0);
    const kind = resource === "nodes" ? "Node" : "Pod";
    let stopLive = () => {};
    let timer: ReturnType<typeof setTimeout> | undefined;
    let w: OpenWatch | undefined;
    const cleanup = () => {
      stopLive();
      clearTimeout(timer);
      if (w) this.#watches.delete(w);
    };
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        let open = true;
        const send = (obj: unknown) => {
          if (open) controller.enqueue(enc.encode(JSON.stringify(obj) + "\n"));
        };
        const close = (mode: "clean" | "abrupt") => {
          if (!open) return;
          open = false;
          cleanup();
          if (mode === "clean") controller.close();
          else controller.error(new Error("watch cut by the test"));
        };
        try {
          const started = this.store.watch(
            resource,
            ns,
            sel,
            fromRv,
            (ev) => send({ type: ev.type, object: ev.object }),
          );
          stopLive = started.stop;
          for (const ev of started.initial) send({ type: ev.type, object: ev.object });
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          send({ type: "ERROR", object: e.status });
          open = false;
          controller.close();
          return;
        }
        w = {
          bookmarks: q.get("allowWatchBookmarks") === "true",
          resource,
          bookmark: () =>
            send({
              type: "BOOKMARK",
              object: { kind, apiVersion: "v1", metadata: { resourceVersion: String(this.store.rv) } },
            }),
          close,
        };
        this.#watches.add(w);
        if (timeoutSeconds > 0) timer = setTimeout(() => close("clean"), timeoutSeconds * 1000);
      },
      cancel: cleanup,
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  }

  #admin(path: string, q: URLSearchParams): Response {
    switch (path) {
      case "/fake/cut-watches":
        return json({ cut: this.cutWatches(q.get("mode") === "clean" ? "clean" : "abrupt") });
      case "/fake/compact":
        this.store.compact();
        return json({ historyStart: this.store.historyStart });
      case "/fake/bookmark":
        this.bookmark();
        return json({});
      case "/fake/watches":
        return json({ count: this.#watches.size });
      case "/fake/fail": {
        const match = q.get("match");
        this.failNext(
          Number(q.get("count") ?? 1),
          Number(q.get("code") ?? 500),
          match ? new RegExp(match) : undefined,
        );
        return json({});
      }
      case "/fake/restart":
        setTimeout(() => void this.restart({ downMs: Number(q.get("downMs") ?? 0) }), 10);
        return json({ restarting: true });
    }
    return status(new ApiError(404, "NotFound", `no admin endpoint ${path}`));
  }
}

function methodNotAllowed(method: string): ApiError {
  return new ApiError(
    405,
    "MethodNotAllowed",
    `the server does not allow this method on the requested resource (${method})`,
  );
}

function sortKey(o: KObject): string {
  return `${o.metadata.namespace ?? ""}/${o.metadata.name ?? ""}`;
}

function json(body: unknown, code = 200): Response {
  return new Response(JSON.stringify(body), {
    status: code,
    headers: { "content-type": "application/json" },
  });
}

function status(e: ApiError): Response {
  return json(e.status, e.status.code);
}

async function main(args: string[]): Promise<void> {
  const flag = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  };
  const readList = async (path: string | undefined): Promise<KObject[]> => {
    if (!path) return [];
    const doc = JSON.parse(await Deno.readTextFile(path));
    return Array.isArray(doc) ? doc : doc.items ?? [];
  };
  const store = new Store({ historyLimit: Number(flag("history") ?? 1000) });
  const statePath = flag("state");
  const saved = statePath ? await Deno.readTextFile(statePath).catch(() => undefined) : undefined;
  if (saved) {
    store.load(JSON.parse(saved));
  } else {
    for (const n of await readList(flag("nodes"))) store.create("nodes", "", n);
    for (const p of await readList(flag("pods"))) store.create("pods", p.metadata.namespace ?? "default", p);
  }
  if (statePath) {
    let queued = false;
    store.onChange = () => {
      if (queued) return;
      queued = true;
      queueMicrotask(() => {
        queued = false;
        Deno.writeTextFileSync(`${statePath}.tmp`, JSON.stringify(store.dump()));
        Deno.renameSync(`${statePath}.tmp`, statePath);
      });
    };
    store.onChange();
  }
  const rbac = flag("rbac");
  const token = flag("token");
  const interval = flag("bookmark-interval-ms");
  const server = await FakeKubeApiServer.start({
    port: Number(flag("port") ?? 0),
    store,
    ...(token ? { token } : {}),
    ...(rbac ? { rules: rulesFromManifest(await Deno.readTextFile(rbac)) } : {}),
    ...(interval ? { bookmarkIntervalMs: Number(interval) } : {}),
  });
  console.log(`listening on ${server.url}`);
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", resolve);
  Deno.addSignalListener("SIGINT", resolve);
  await promise;
  await server.stop();
  Deno.exit(0);
}

if (import.meta.main) await main(Deno.args);

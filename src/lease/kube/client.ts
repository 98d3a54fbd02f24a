/**
 * A small Kubernetes API client for the calls flannel makes: get, list and watch nodes, get a pod,
 * and strategic-merge patches of `nodes/status`. It needs only an injected `fetch`, so it runs the
 * same under Deno and Node; TLS settings come with that `fetch` (see `src/runtime/kube_http.ts`).
 *
 * The reflector that keeps a node cache on top of this (re-list on 410, reconnect with backoff,
 * bookmarks) is `informer.ts`.
 *
 * @module
 */
import { VERSION } from "../../version.ts";
import type { KubeList, KubeNode, KubePod, KubeStatus, WatchEvent } from "./types.ts";

/**
 * Credentials: the `Authorization` header value (`Bearer …`, `Basic …`), possibly re-read from a
 * token file; `refresh` asks for a fresh read after a 401.
 */
export interface AuthSource {
  authorization(refresh?: boolean): Promise<string | undefined>;
}

/** Options of a {@linkcode KubeClient}. */
export interface KubeClientOptions {
  /** The API server URL, e.g. `https://10.96.0.1:443`. */
  server: string;
  auth?: AuthSource | undefined;
  /** The `fetch` to use (with the cluster's TLS settings). Default: global `fetch`. */
  fetch?: typeof fetch | undefined;
  /** Timeout of one request (not of a watch stream), in ms. Default 30 000. */
  requestTimeoutMs?: number | undefined;
  /**
   * Told of every request (a watch: its opening): answered (any HTTP status) or not (unreachable,
   * timed out), with its wall time in ms. For metrics: the API server's health.
   */
  observe?: ((attempt: { ok: boolean; ms: number }) => void) | undefined;
}

/** Options of {@linkcode KubeClient.watchNodes}. */
export interface WatchOptions {
  /** Events after this version; unset or `"0"` starts with ADDED events for every node. */
  resourceVersion?: string | undefined;
  allowWatchBookmarks?: boolean | undefined;
  /** The server ends the stream after this many seconds. */
  timeoutSeconds?: number | undefined;
  /** The stream is treated as dead when nothing arrives for this long. Default: timeout + 30 s. */
  idleTimeoutMs?: number | undefined;
}

/**
 * A failed API call. `status` is the HTTP status (0 when no answer came), `reason` the Status
 * reason (`NotFound`, `Expired`, …), `statusMessage` the server's own message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { KubeApiError } from "./client.ts";
 * const e = new KubeApiError("get node \"n1\"", 404, "NotFound", 'nodes "n1" not found');
 * assert.equal(e.message, 'Cannot get node "n1": nodes "n1" not found (404 NotFound)');
 * ```
 */
export class KubeApiError extends Error {
  override name = "KubeApiError";
  readonly status: number;
  readonly reason: string;
  readonly statusMessage: string;

  constructor(what: string, status: number, reason: string, statusMessage: string, options?: ErrorOptions) {
    const tail = status === 0 ? "" : ` (${status}${reason ? ` ${reason}` : ""})`;
    super(`Cannot ${what}: ${statusMessage}${tail}`, options);
    this.status = status;
    this.reason = reason;
    this.statusMessage = statusMessage;
  }

  /** 410: the resource version is too old (watch `Expired`, list `Gone`); list again. */
  get gone(): boolean {
    return this.status === 410;
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;
/** client-go's page size for lists. */
export const LIST_PAGE_SIZE = 500;

/**
 * The client.
 *
 * @example
 * ```ts ignore
 * const client = new KubeClient({ server: "http://127.0.0.1:8080" });
 * const node = await client.getNode("node-1");
 * ```
 */
export class KubeClient {
  readonly #server: string;
  readonly #auth: AuthSource | undefined;
  readonly #fetch: typeof fetch;
  readonly #observe: KubeClientOptions["observe"];
  readonly #timeoutMs: number;

  constructor(opts: KubeClientOptions) {
    this.#server = opts.server.replace(/\/+$/, "");
    this.#auth = opts.auth;
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
    this.#observe = opts.observe;
    this.#timeoutMs = opts.requestTimeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The API server URL. */
  get server(): string {
    return this.#server;
  }

  /** GET one node. */
  getNode(name: string, signal?: AbortSignal): Promise<KubeNode> {
    return this.#json("GET", `/api/v1/nodes/${enc(name)}`, `get node "${name}"`, undefined, signal);
  }

  /** GET one pod. */
  getPod(namespace: string, name: string, signal?: AbortSignal): Promise<KubePod> {
    return this.#json(
      "GET",
      `/api/v1/namespaces/${enc(namespace)}/pods/${enc(name)}`,
      `get pod "${namespace}/${name}"`,
      undefined,
      signal,
    );
  }

  /**
   * LIST all nodes, in pages of {@linkcode LIST_PAGE_SIZE}, as one consistent list; the answer's
   * `metadata.resourceVersion` is where a watch continues.
   */
  async listNodes(signal?: AbortSignal): Promise<KubeList<KubeNode>> {
    const items: KubeNode[] = [];
    let cont = "";
    for (;;) {
      const q = new URLSearchParams({ limit: String(LIST_PAGE_SIZE) });
      if (cont) q.set("continue", cont);
      const page = await this.#json<KubeList<KubeNode>>(
        "GET",
        `/api/v1/nodes?${q}`,
        "list nodes",
        undefined,
        signal,
      );
      items.push(...(page.items ?? []));
      cont = page.metadata?.continue ?? "";
      if (!cont) {
        return { ...page, metadata: { resourceVersion: page.metadata?.resourceVersion ?? "" }, items };
      }
    }
  }

  /** Strategic-merge PATCH of `nodes/<name>/status` (annotations and conditions go there). */
  patchNodeStatus(name: string, patch: unknown, signal?: AbortSignal): Promise<KubeNode> {
    return this.#json(
      "PATCH",
      `/api/v1/nodes/${enc(name)}/status`,
      `patch status of node "${name}"`,
      patch,
      signal,
    );
  }

  /**
   * WATCH nodes. Yields ADDED, MODIFIED, DELETED and BOOKMARK events; an ERROR event is thrown
   * as a {@linkcode KubeApiError} (a 410 means: list again). Ends when the server ends the stream.
   */
  async *watchNodes(opts: WatchOptions, signal: AbortSignal): AsyncGenerator<WatchEvent<KubeNode>> {
    const q = new URLSearchParams({ watch: "true" });
    if (opts.resourceVersion !== undefined) q.set("resourceVersion", opts.resourceVersion);
    if (opts.allowWatchBookmarks) q.set("allowWatchBookmarks", "true");
    if (opts.timeoutSeconds !== undefined) q.set("timeoutSeconds", String(opts.timeoutSeconds));
    const what = "watch nodes";
    const idleMs = opts.idleTimeoutMs ?? ((opts.timeoutSeconds ?? 1800) + 30) * 1000;
    const session = new AbortController();
    const stop = () => session.abort(signal.reason);
    if (signal.aborted) stop();
    signal.addEventListener("abort", stop, { once: true });
    let idle: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => session.abort(new Error(`no data for ${idleMs} ms`)), idleMs);
    };
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    const cancel = () => void reader?.cancel().catch(() => {});
    session.signal.addEventListener("abort", cancel, { once: true });
    try {
      arm();
      const res = await this.#send("GET", `/api/v1/nodes?${q}`, what, undefined, session.signal, signal);
      if (!res.body) return;
      reader = res.body.getReader();
      if (session.signal.aborted) cancel();
      const decoder = new TextDecoder();
      let buf = "";
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          if (signal.aborted) throw signal.reason;
          throw connectionError(what, this.#server, session.signal.aborted ? session.signal.reason : e);
        }
        if (chunk.done) {
          if (signal.aborted) throw signal.reason;
          if (session.signal.aborted) throw connectionError(what, this.#server, session.signal.reason);
          return;
        }
        arm();
        buf += decoder.decode(chunk.value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === "") continue;
          yield decodeWatchLine(line, what);
        }
      }
    } finally {
      clearTimeout(idle);
      signal.removeEventListener("abort", stop);
      session.abort();
    }
  }

  async #json<T>(
    method: string,
    path: string,
    what: string,
    body: unknown,
    signal?: AbortSignal,
  ): Promise<T> {
    const attempt = new AbortController();
    const timer = setTimeout(
      () => attempt.abort(new Error(`timed out after ${this.#timeoutMs} ms`)),
      this.#timeoutMs,
    );
    const link = () => attempt.abort(signal?.reason);
    if (signal?.aborted) link();
    signal?.addEventListener("abort", link, { once: true });
    try {
      const res = await this.#send(method, path, what, body, attempt.signal, signal);
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        if (signal?.aborted) throw signal.reason;
        throw connectionError(what, this.#server, attempt.signal.aborted ? attempt.signal.reason : e);
      }
      try {
        return JSON.parse(text) as T;
      } catch (e) {
        throw new KubeApiError(what, res.status, "", `the API server sent a body that is not JSON`, {
          cause: e,
        });
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", link);
    }
  }

  /** Sends one request with the credentials, once more with fresh ones after a 401. */
  async #send(
    method: string,
    path: string,
    what: string,
    body: unknown,
    signal: AbortSignal,
    caller: AbortSignal | undefined,
  ): Promise<Response> {
    for (let attempt = 0;; attempt++) {
      const authorization = await this.#auth?.authorization(attempt > 0);
      const headers: Record<string, string> = {
        accept: "application/json",
        "user-agent": `flanneld/${VERSION} (flannel-ts)`,
      };
      if (authorization) headers.authorization = authorization;
      if (body !== undefined) headers["content-type"] = "application/strategic-merge-patch+json";
      let res: Response;
      const started = performance.now();
      try {
        res = await this.#fetch(`${this.#server}${path}`, {
          method,
          headers,
          signal,
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        });
      } catch (e) {
        if (caller?.aborted) throw caller.reason;
        this.#observe?.({ ok: false, ms: performance.now() - started });
        throw connectionError(what, this.#server, signal.aborted ? signal.reason : e);
      }
      this.#observe?.({ ok: true, ms: performance.now() - started });
      if (res.ok) return res;
      const err = await errorOf(res, what);
      if (res.status === 401 && attempt === 0 && this.#auth) continue;
      throw err;
    }
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function connectionError(what: string, server: string, cause: unknown): KubeApiError {
  const msg = (cause instanceof Error ? cause.message : String(cause)).split("\n")[0]!;
  return new KubeApiError(what, 0, "", `cannot reach the Kubernetes API at ${server}: ${msg}`, { cause });
}

async function errorOf(res: Response, what: string): Promise<KubeApiError> {
  const text = await res.text().catch(() => "");
  const status = parseStatus(text);
  if (status) return new KubeApiError(what, res.status, status.reason ?? "", status.message ?? "");
  const preview = text.trim().slice(0, 80);
  return new KubeApiError(
    what,
    res.status,
    "",
    `HTTP ${res.status}${preview ? ` ${JSON.stringify(preview)}` : ""}`,
  );
}

function parseStatus(text: string): Partial<KubeStatus> | undefined {
  try {
    const obj = JSON.parse(text);
    return obj && typeof obj === "object" && obj.kind === "Status" ? obj as Partial<KubeStatus> : undefined;
  } catch {
    return undefined;
  }
}

function decodeWatchLine(line: string, what: string): WatchEvent<KubeNode> {
  let ev: { type?: string; object?: unknown };
  try {
    ev = JSON.parse(line);
  } catch (e) {
    throw new KubeApiError(what, 0, "", `the API server sent a watch event that is not JSON`, { cause: e });
  }
  if (ev.type === "ERROR") {
    const s = (ev.object ?? {}) as Partial<KubeStatus>;
    throw new KubeApiError(what, s.code ?? 500, s.reason ?? "", s.message ?? "watch error without a message");
  }
  const obj = ev.object as KubeNode | undefined;
  const known = ev.type === "ADDED" || ev.type === "MODIFIED" || ev.type === "DELETED" ||
    ev.type === "BOOKMARK";
  if (!known || !obj || typeof obj !== "object" || typeof obj.metadata !== "object") {
    throw new KubeApiError(
      what,
      0,
      "",
      `the API server sent a watch event of unknown form: ${line.slice(0, 80)}`,
    );
  }
  return { type: ev.type as "ADDED", object: obj };
}

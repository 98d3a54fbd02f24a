/**
 * A fake of the GCE metadata server and of the Compute Engine v1 routes and global operations
 * API, on 127.0.0.1 (one port, told apart by path), for the `gce` provider's tests.
 *
 * Faithful where the provider could go wrong: metadata requests without `Metadata-Flavor: Google`
 * get 403 and every metadata answer carries the header (unless told not to); compute calls need
 * a Bearer token the metadata server handed out and not since expired (401 with Google's error
 * body otherwise); routes are state, keyed by project and name; a duplicate insert is 409
 * `alreadyExists`, a missing route 404 `notFound`; insert and delete return Operations that go
 * PENDING → RUNNING → DONE over a few polls, and only a DONE operation changes the routes. Links
 * come back as `https://www.googleapis.com/compute/v1/…` whatever URL was sent, as GCE does.
 *
 * @module
 */

export const CANONICAL = "https://www.googleapis.com/compute/v1/";

/** One recorded request. */
export interface GceRequest {
  method: string;
  /** The path without the query, e.g. `/compute/v1/projects/p/global/routes`. */
  path: string;
  flavor: string | null;
  authorization: string | null;
  body: unknown;
}

/** A failure to inject into matching compute calls. */
export type GceFailure = "rateLimit" | "rateLimit403" | "forbidden" | "unavailable";

const FAILURES: Record<GceFailure, { code: number; status: string; reason: string; message: string }> = {
  rateLimit: {
    code: 429,
    status: "RESOURCE_EXHAUSTED",
    reason: "rateLimitExceeded",
    message: "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service " +
      "'compute.googleapis.com'",
  },
  rateLimit403: {
    code: 403,
    status: "PERMISSION_DENIED",
    reason: "rateLimitExceeded",
    message: "Rate Limit Exceeded",
  },
  forbidden: {
    code: 403,
    status: "PERMISSION_DENIED",
    reason: "forbidden",
    message: "Required 'compute.routes.{verb}' permission for 'projects/{project}/global/routes/{name}'",
  },
  unavailable: { code: 503, status: "UNAVAILABLE", reason: "backendError", message: "Backend Error" },
};

interface Operation {
  kind: "compute#operation";
  id: string;
  name: string;
  operationType: "insert" | "delete";
  targetLink: string;
  status: "PENDING" | "RUNNING" | "DONE";
  progress: number;
  selfLink: string;
  error?: { errors: { code: string; message: string }[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
  /** Not sent: what happens at DONE, and polls left until then. */
  apply: () => void;
  polls: number;
  fail?: { code: string; message: string; http: number };
}

export interface FakeGceOptions {
  /** Where to listen (127.0.0.1; the e2e test serves it in the cluster's switch namespace). */
  hostname?: string;
  project?: string;
  numericProject?: string;
  instance?: string;
  zone?: string;
  network?: string;
  /** The number of the project owning the network (a shared VPC host); default `numericProject`. */
  networkProjectNumber?: string;
  /** Further projects whose networks exist, by ID (shared VPC hosts). */
  hostProjects?: string[];
  /** GETs of an operation before it is DONE (PENDING, then RUNNING). */
  pollsToDone?: number;
  /** Seconds a token lives (`expires_in`). */
  tokenLifetime?: number;
}

export class FakeGce {
  readonly project: string;
  readonly numericProject: string;
  readonly instance: string;
  readonly zone: string;
  readonly network: string;
  networkProjectNumber: string;
  readonly projects: Set<string>;
  pollsToDone: number;
  tokenLifetime: number;
  /** When false, metadata answers lack `Metadata-Flavor: Google` (something else is answering). */
  flavorHeader = true;
  /** Routes by `project/name`, as GCE returns them. */
  readonly routes = new Map<string, Record<string, unknown>>();
  readonly operations = new Map<string, Operation>();
  readonly requests: GceRequest[] = [];
  /** Tokens handed out and still accepted. */
  readonly validTokens = new Set<string>();
  #tokens = 0;
  #ids = 1000;
  #failures: { method: string; pathPart: string; kind: GceFailure; times: number }[] = [];
  #opFailures: { method: string; code: string; message: string; http: number; times: number }[] = [];
  readonly #server: Deno.HttpServer<Deno.NetAddr>;

  readonly hostname: string;

  private constructor(opts: FakeGceOptions) {
    this.hostname = opts.hostname ?? "127.0.0.1";
    this.project = opts.project ?? "demo-project";
    this.numericProject = opts.numericProject ?? "123456789012";
    this.instance = opts.instance ?? "node-1";
    this.zone = opts.zone ?? "us-central1-a";
    this.network = opts.network ?? "default";
    this.networkProjectNumber = opts.networkProjectNumber ?? this.numericProject;
    this.projects = new Set([this.project, ...(opts.hostProjects ?? [])]);
    this.pollsToDone = opts.pollsToDone ?? 2;
    this.tokenLifetime = opts.tokenLifetime ?? 3599;
    this.#server = Deno.serve(
      { hostname: this.hostname, port: 0, onListen: () => {} },
      (req) => this.#handle(req),
    );
  }

  static start(opts: FakeGceOptions = {}): FakeGce {
    return new FakeGce(opts);
  }

  get port(): number {
    return this.#server.addr.port;
  }
  /** For `GCE_METADATA_HOST`. */
  get metadataHost(): string {
    return `${this.hostname}:${this.port}`;
  }
  /** For `GCE_COMPUTE_ENDPOINT`. */
  get computeEndpoint(): string {
    return `http://${this.hostname}:${this.port}/compute/v1/`;
  }
  /** The environment that points a provider here. */
  get env(): Record<string, string> {
    return { GCE_METADATA_HOST: this.metadataHost, GCE_COMPUTE_ENDPOINT: this.computeEndpoint };
  }

  /** Makes the next `times` compute calls with `method` whose path contains `pathPart` fail. */
  fail(method: string, pathPart: string, kind: GceFailure, times = 1): void {
    this.#failures.push({ method, pathPart, kind, times });
  }
  /** Makes the next `times` operations started by `method` (POST, DELETE) end with an error. */
  failOperation(method: string, code: string, message: string, http = 403, times = 1): void {
    this.#opFailures.push({ method, code, message, http, times });
  }
  /** Expires every token handed out so far (the next compute call with one gets 401). */
  expireTokens(): void {
    this.validTokens.clear();
  }
  /** Puts a route in place directly, as another actor would; links may be partial. */
  seedRoute(
    project: string,
    route: { name: string; destRange: string; network: string; nextHopInstance: string },
  ) {
    this.routes.set(`${project}/${route.name}`, this.#stored(project, { priority: 1000, ...route }));
  }
  /** Deletes a route directly, as someone in the console would. */
  removeRoute(project: string, name: string): boolean {
    return this.routes.delete(`${project}/${name}`);
  }
  /** The routes as sorted `name destRange network → nextHop` lines (links shortened to `projects/…`). */
  render(): string[] {
    const short = (v: unknown) => String(v).replace(CANONICAL, "");
    return [...this.routes.values()]
      .map((r) => `${r.name} ${r.destRange} ${short(r.network)} -> ${short(r.nextHopInstance)}`)
      .sort();
  }
  /** Recorded requests whose method and path match. */
  calls(method: string, pathPart = ""): GceRequest[] {
    return this.requests.filter((r) => r.method === method && r.path.includes(pathPart));
  }
  /** The instance's link as GCE returns it. */
  get instanceLink(): string {
    return `${CANONICAL}projects/${this.project}/zones/${this.zone}/instances/${this.instance}`;
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const text = await req.text();
    let body: unknown = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    this.requests.push({
      method: req.method,
      path: url.pathname,
      flavor: req.headers.get("metadata-flavor"),
      authorization: req.headers.get("authorization"),
      body,
    });
    if (url.pathname.startsWith("/computeMetadata/v1/")) return this.#metadata(req, url.pathname.slice(20));
    if (url.pathname.startsWith("/compute/v1/")) return this.#compute(req, url.pathname.slice(12), body);
    return new Response("not found", { status: 404 });
  }

  #metadata(req: Request, path: string): Response {
    const headers: Record<string, string> = this.flavorHeader ? { "metadata-flavor": "Google" } : {};
    const text = (s: string, status = 200) =>
      new Response(s, { status, headers: { ...headers, "content-type": "application/text" } });
    if (req.headers.get("metadata-flavor") !== "Google") {
      return text('Missing required header "Metadata-Flavor": "Google"\n', 403);
    }
    switch (path) {
      case "project/project-id":
        return text(this.project);
      case "project/numeric-project-id":
        return text(this.numericProject);
      case "instance/name":
        return text(this.instance);
      case "instance/zone":
        return text(`projects/${this.numericProject}/zones/${this.zone}`);
      case "instance/network-interfaces/0/network":
        return text(`projects/${this.networkProjectNumber}/networks/${this.network}`);
      case "instance/service-accounts/default/token": {
        const token = `ya29.fake-token-${++this.#tokens}`;
        this.validTokens.add(token);
        return new Response(
          JSON.stringify({ access_token: token, expires_in: this.tokenLifetime, token_type: "Bearer" }),
          { headers: { ...headers, "content-type": "application/json" } },
        );
      }
    }
    return text("Not Found\n", 404);
  }

  #compute(req: Request, path: string, body: unknown): Response {
    const auth = req.headers.get("authorization") ?? "";
    const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    if (!this.validTokens.has(token)) {
      return googleError(
        401,
        "UNAUTHENTICATED",
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or " +
          "other valid authentication credential.",
      );
    }
    const m = /^projects\/([^/]+)\/global\/(routes|operations)(?:\/([^/]+))?$/.exec(path);
    if (!m) {
      return googleError(
        404,
        "NOT_FOUND",
        "notFound",
        `The requested URL /compute/v1/${path} was not found.`,
      );
    }
    const [, project, kind, name] = m as unknown as [string, string, string, string | undefined];
    const fail = this.#failures.find((f) =>
      f.times > 0 && f.method === req.method && path.includes(f.pathPart)
    );
    if (fail) {
      fail.times--;
      const f = FAILURES[fail.kind];
      const verb = req.method === "POST" ? "create" : req.method === "DELETE" ? "delete" : "get";
      const message = f.message.replace("{project}", project).replace("{name}", name ?? "")
        .replace("{verb}", verb);
      return googleError(f.code, f.status, f.reason, message);
    }
    if (!this.projects.has(project)) {
      return googleError(404, "NOT_FOUND", "notFound", `The resource 'projects/${project}' was not found`);
    }
    if (kind === "operations") {
      const op = name ? this.operations.get(`${project}/${name}`) : undefined;
      if (req.method !== "GET" || !op) {
        return googleError(
          404,
          "NOT_FOUND",
          "notFound",
          `The resource 'projects/${project}/global/operations/${name}' was not found`,
        );
      }
      return json(this.#advance(op));
    }
    const key = `${project}/${name}`;
    const self = `projects/${project}/global/routes/${name}`;
    if (req.method === "GET" && name) {
      const route = this.routes.get(key);
      return route
        ? json(route)
        : googleError(404, "NOT_FOUND", "notFound", `The resource '${self}' was not found`);
    }
    if (req.method === "DELETE" && name) {
      if (!this.routes.has(key)) {
        return googleError(404, "NOT_FOUND", "notFound", `The resource '${self}' was not found`);
      }
      return json(this.#start(project, "delete", self, "DELETE", () => void this.routes.delete(key)));
    }
    if (req.method === "POST" && !name) return this.#insert(project, body);
    return googleError(
      405,
      "INVALID_ARGUMENT",
      "invalid",
      `${req.method} is not allowed on /compute/v1/${path}`,
    );
  }

  #insert(project: string, body: unknown): Response {
    const b = (typeof body === "object" && body !== null ? body : {}) as Record<string, unknown>;
    const name = typeof b.name === "string" ? b.name : "";
    const self = `projects/${project}/global/routes/${name}`;
    const invalid = (msg: string) => googleError(400, "INVALID_ARGUMENT", "invalid", msg);
    if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name)) {
      return invalid(
        `Invalid value for field 'resource.name': '${name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`,
      );
    }
    if (typeof b.destRange !== "string" || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(b.destRange)) {
      return invalid(`Invalid value for field 'resource.destRange': '${b.destRange}'. Invalid IPv4 CIDR`);
    }
    const network = short(b.network);
    const wantNet = /^projects\/([^/]+)\/global\/networks\/([^/]+)$/.exec(network);
    if (!wantNet || !this.projects.has(wantNet[1]!) || wantNet[2] !== this.network) {
      return googleError(404, "NOT_FOUND", "notFound", `The resource '${network}' was not found`);
    }
    const hop = short(b.nextHopInstance);
    if (hop !== `projects/${this.project}/zones/${this.zone}/instances/${this.instance}`) {
      return googleError(404, "NOT_FOUND", "notFound", `The resource '${hop}' was not found`);
    }
    const pending = [...this.operations.values()].some((o) =>
      o.status !== "DONE" && o.operationType === "insert" && o.targetLink === CANONICAL + self
    );
    if (this.routes.has(`${project}/${name}`) || pending) {
      return googleError(409, "ALREADY_EXISTS", "alreadyExists", `The resource '${self}' already exists`);
    }
    const stored = this.#stored(project, b);
    return json(
      this.#start(project, "insert", self, "POST", () => void this.routes.set(`${project}/${name}`, stored)),
    );
  }

  #stored(project: string, b: Record<string, unknown>): Record<string, unknown> {
    return {
      kind: "compute#route",
      id: String(++this.#ids),
      creationTimestamp: "2024-05-01T12:00:00.000-07:00",
      name: b.name,
      description: b.description ?? "",
      network: CANONICAL + short(b.network),
      destRange: b.destRange,
      priority: b.priority ?? 1000,
      nextHopInstance: CANONICAL + short(b.nextHopInstance),
      selfLink: `${CANONICAL}projects/${project}/global/routes/${b.name}`,
    };
  }

  #start(project: string, type: "insert" | "delete", target: string, method: string, apply: () => void) {
    const name = `operation-${++this.#ids}-5f8e${type}`;
    const f = this.#opFailures.find((x) => x.times > 0 && x.method === method);
    if (f) f.times--;
    const op: Operation = {
      kind: "compute#operation",
      id: String(this.#ids),
      name,
      operationType: type,
      targetLink: CANONICAL + target,
      status: this.pollsToDone > 0 ? "PENDING" : "DONE",
      progress: 0,
      selfLink: `${CANONICAL}projects/${project}/global/operations/${name}`,
      apply,
      polls: this.pollsToDone,
      ...(f ? { fail: { code: f.code, message: f.message, http: f.http } } : {}),
    };
    this.operations.set(`${project}/${name}`, op);
    if (op.status === "DONE") this.#finish(op);
    return publicOp(op);
  }

  /** One GET of an operation: one step nearer DONE. */
  #advance(op: Operation) {
    if (op.status !== "DONE") {
      op.polls--;
      if (op.polls <= 0) this.#finish(op);
      else op.status = "RUNNING";
    }
    return publicOp(op);
  }

  #finish(op: Operation): void {
    op.status = "DONE";
    op.progress = 100;
    if (op.fail) {
      op.error = { errors: [{ code: op.fail.code, message: op.fail.message }] };
      op.httpErrorStatusCode = op.fail.http;
      op.httpErrorMessage = op.fail.http === 403 ? "FORBIDDEN" : "ERROR";
    } else {
      op.apply();
    }
  }
}

function publicOp(op: Operation): Record<string, unknown> {
  const { apply: _a, polls: _p, fail: _f, ...rest } = op;
  return rest;
}

/** `projects/…` of a full or partial link (GCE accepts both). */
function short(v: unknown): string {
  const s = typeof v === "string" ? v : "";
  const i = s.indexOf("projects/");
  return i < 0 ? s : s.slice(i);
}

function json(v: unknown, status = 200): Response {
  return new Response(JSON.stringify(v), {
    status,
    headers: { "content-type": "application/json; charset=UTF-8" },
  });
}

/** Google's JSON error body. */
export function googleError(code: number, status: string, reason: string, message: string): Response {
  return json({ error: { code, message, errors: [{ message, domain: "global", reason }], status } }, code);
}

/**
 * The `gce` backend: Google Compute Engine routes (upstream had one until 2022).
 *
 * What goes to the cloud, per node: one route in the project's route table, nothing on the node.
 *
 * ```text
 * name             flannel-10-5-3-0-24          the lease subnet, dots and slash as dashes
 * destRange        10.5.3.0/24                  the lease subnet
 * network          …/projects/P/global/networks/N   the VPC network of the instance's nic0
 * nextHopInstance  …/projects/I/zones/Z/instances/NAME   this instance
 * priority         1000                         GCE's default
 * ```
 *
 * Why: the VPC router then hands every packet for the subnet to this VM, whichever VM sent it,
 * so pods reach pods with no encapsulation. The VM must have been created with IP forwarding
 * (`--can-ip-forward`), or GCE drops packets whose destination is not the VM's own address;
 * the API cannot turn that on later, so we do not try.
 *
 * Routes are global resources of a project, not of a zone or a network, and the name must be
 * unique in the project. A subnet is leased to one node at a time, so within a cluster
 * `flannel-<subnet>` is a unique key, and it is the only name this backend ever reads, creates or
 * deletes: other nodes' routes and everything not named `flannel-<our subnet>` are left alone.
 * One of that name on another network is another cluster's in the project (upstream used the same
 * names): it is left alone with an error that says to give the clusters distinct Network ranges,
 * rather than both replacing each other's route every minute. Every field of a route is immutable,
 * so a route by that name on our network that points elsewhere (the lease's previous owner) is
 * deleted and inserted again; uninstall (`--cleanup`) deletes it only if its
 * next hop is us. Insert and delete return an Operation: we poll it (GET `globalOperations`) with
 * backoff until `DONE`, for at most {@linkcode OPERATION_DEADLINE_MS}; an operation that ends
 * with `error` is a failure.
 *
 * Who we are comes from the metadata server (every request and every answer carries
 * `Metadata-Flavor: Google`; an answer without it is not the metadata server): the project ID,
 * the instance's name and zone, and nic0's network. The credentials are the access token of the
 * instance's default service account, fetched again shortly before it expires; the account needs
 * the compute (or cloud-platform) scope and permission to create and delete routes on the
 * network (`roles/compute.networkAdmin`).
 *
 * Options (net-conf `Backend`, case-insensitive, unknown keys ignored): `Project`, the project
 * that owns the network and its routes, default the instance's own. Set it for a shared VPC,
 * whose network belongs to the host project: the next hop stays in the instance's project.
 * Without it, a network whose project number is not the instance's is an error naming the option.
 *
 * Endpoints: `GCE_METADATA_HOST` (`host[:port]`, the variable Google's client libraries read)
 * moves the metadata server; `GCE_COMPUTE_ENDPOINT` (ours: there is no standard one) moves the
 * Compute Engine API base URL. The tests point both at a fake on loopback.
 *
 * @module
 */
import type { IP4Net } from "../../ip/mod.ts";
import { BackendConfigError, OptionReader } from "../options.ts";
import {
  CloudApiError,
  type CloudContext,
  type CloudRouteProvider,
  type CloudRouter,
  createCloudRouteBackend,
  metadataGet,
  type RouteOutcome,
} from "./route_backend.ts";

/** The standard variable that moves the metadata server (`host[:port]`, plain HTTP). */
export const GCE_METADATA_HOST_ENV = "GCE_METADATA_HOST";
/** Our variable that moves the Compute Engine API (a base URL ending in `/compute/v1/`). */
export const GCE_COMPUTE_ENDPOINT_ENV = "GCE_COMPUTE_ENDPOINT";
export const DEFAULT_METADATA_HOST = "metadata.google.internal";
export const DEFAULT_COMPUTE_ENDPOINT = "https://compute.googleapis.com/compute/v1/";
/**
 * The prefix of resource links in requests, whatever the endpoint: the form GCE itself returns
 * (`selfLink`) and accepts, so a moved endpoint (a private one, a test fake) changes no link.
 */
export const RESOURCE_LINK_PREFIX = "https://www.googleapis.com/compute/v1/";
/** GCE's default route priority (lower wins); flannel's routes are the only ones for their subnets. */
export const ROUTE_PRIORITY = 1000;
/** How long an insert or delete may take to reach `DONE` (routes usually take seconds). */
export const OPERATION_DEADLINE_MS = 180_000;
/** Operation polling: first wait, doubling up to the cap. */
export const POLL_FIRST_MS = 500;
export const POLL_MAX_MS = 5_000;
/** A token is refreshed this long before it expires (or at half its life, if shorter). */
export const TOKEN_REFRESH_MARGIN_MS = 60_000;
/** How long one Compute Engine API request may take. */
export const COMPUTE_TIMEOUT_MS = 30_000;

const CLOUD = "GCE";
const FLAVOR = { "Metadata-Flavor": "Google" };
/** GCE resource names: RFC 1035 labels, 1-63 characters. */
const NAME_RE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Reasons Google uses for rate limits, sometimes with HTTP 403. */
const RATE_LIMIT_REASONS = new Set(["rateLimitExceeded", "userRateLimitExceeded"]);

/**
 * The name of the route for a lease subnet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP4Net } from "../../ip/mod.ts";
 * import { gceRouteName } from "./gce.ts";
 * assert.equal(gceRouteName(IP4Net.parse("10.5.3.0/24")), "flannel-10-5-3-0-24");
 * ```
 */
export function gceRouteName(subnet: IP4Net): string {
  const name = `flannel-${subnet.toString().replace(/[./]/g, "-")}`;
  if (!NAME_RE.test(name)) {
    throw new RangeError(`Cannot name a GCE route for ${subnet}: "${name}" is invalid`);
  }
  return name;
}

/** Knobs for tests; the defaults are the constants above. */
export interface GceProviderOptions {
  pollFirstMs?: number;
  operationDeadlineMs?: number;
}

/** A `gce` provider; {@linkcode gceProvider} is the one with the default timings. */
export function createGceProvider(opts: GceProviderOptions = {}): CloudRouteProvider {
  return { type: "gce", open: (ctx) => openGce(ctx, opts) };
}

/** The `gce` provider. */
export const gceProvider: CloudRouteProvider = createGceProvider();

/** The `gce` backend factory. */
export const gceBackend = createCloudRouteBackend(gceProvider);

/** Who this instance is, from the metadata server. */
interface Identity {
  projectId: string;
  numericProjectId: string;
  instance: string;
  zone: string;
  network: string;
  /** The number of the project that owns the network (differs from ours in a shared VPC). */
  networkProjectNumber: string;
}

async function openGce(ctx: CloudContext, opts: GceProviderOptions): Promise<CloudRouter> {
  const r = new OptionReader(ctx.backend, "error decoding GCE backend config");
  const projectOption = r.string("Project").trim();
  if (projectOption && !/^[a-z0-9][a-z0-9.:-]*$/.test(projectOption)) {
    const v = JSON.stringify(projectOption);
    throw new BackendConfigError(
      `error decoding GCE backend config: Backend "Project" is ${v}, must be a project ID such as my-project`,
    );
  }
  const metadataBase = `http://${metadataHost(ctx)}/computeMetadata/v1/`;
  const endpoint = computeEndpoint(ctx);
  const id = await readIdentity(ctx, metadataBase);
  if (!projectOption && id.networkProjectNumber !== id.numericProjectId) {
    throw new Error(
      `The instance's network ${id.network} belongs to project number ${id.networkProjectNumber}, not this ` +
        `instance's project ${id.projectId} (a shared VPC?): set Backend "Project" to that project's ID`,
    );
  }
  const project = projectOption || id.projectId;
  const tokens = new TokenSource(ctx, `${metadataBase}instance/service-accounts/default/token`);
  await tokens.get(ctx.signal); // fail at start-up, not at the first route, without a service account
  const gce = new GceRouter(ctx, opts, new Compute(ctx, endpoint, tokens), {
    project,
    networkPath: `projects/${project}/global/networks/${id.network}`,
    instancePath: `projects/${id.projectId}/zones/${id.zone}/instances/${id.instance}`,
    instance: id.instance,
  });
  return {
    where: `network ${id.network} in project ${project}, next hop instance ${id.instance} in ${id.zone}`,
    ensureRoute: (subnet, signal) => gce.ensure(subnet, signal ?? ctx.signal),
    deleteRoute: (subnet, signal) => gce.remove(subnet, signal ?? ctx.signal),
  };
}

function metadataHost(ctx: CloudContext): string {
  const host = ctx.env(GCE_METADATA_HOST_ENV)?.trim() || DEFAULT_METADATA_HOST;
  if (!/^[A-Za-z0-9.\-[\]:]+$/.test(host)) {
    const v = JSON.stringify(host);
    throw new Error(`${GCE_METADATA_HOST_ENV} is ${v}, must be host[:port] such as ${DEFAULT_METADATA_HOST}`);
  }
  return host;
}

function computeEndpoint(ctx: CloudContext): string {
  const raw = ctx.env(GCE_COMPUTE_ENDPOINT_ENV)?.trim() || DEFAULT_COMPUTE_ENDPOINT;
  if (!/^https?:\/\//.test(raw) || !URL.canParse(raw)) {
    const v = JSON.stringify(raw);
    throw new Error(`${GCE_COMPUTE_ENDPOINT_ENV} is ${v}, must be a URL such as ${DEFAULT_COMPUTE_ENDPOINT}`);
  }
  return raw.endsWith("/") ? raw : `${raw}/`;
}

/** A fetch that refuses answers without `Metadata-Flavor: Google` (something else answered). */
function flavorChecked(f: typeof fetch): typeof fetch {
  return async (input, init) => {
    const res = await f(input, init);
    if (res.headers.get("metadata-flavor") !== "Google") {
      await res.body?.cancel();
      throw new Error(
        `the answer (HTTP ${res.status}) lacks the "Metadata-Flavor: Google" header, so it is not from the ` +
          `metadata server (check ${GCE_METADATA_HOST_ENV})`,
      );
    }
    return res;
  };
}

async function readIdentity(ctx: CloudContext, base: string): Promise<Identity> {
  const md = { fetch: flavorChecked(ctx.fetch), signal: ctx.signal };
  const get = (path: string, what: string) => metadataGet(md, CLOUD, base + path, what, { headers: FLAVOR });
  const [projectId, numericProjectId, instance, zonePath, networkPath] = await Promise.all([
    get("project/project-id", "the project ID"),
    get("project/numeric-project-id", "the project number"),
    get("instance/name", "the instance name"),
    get("instance/zone", "the instance zone"),
    get("instance/network-interfaces/0/network", "the network of nic0"),
  ]);
  const zone = /^projects\/[^/]+\/zones\/([a-z0-9-]+)$/.exec(zonePath)?.[1];
  if (!zone) {
    throw new Error(
      `Cannot use the GCE instance zone ${JSON.stringify(zonePath)}: want projects/N/zones/ZONE`,
    );
  }
  const net = /^projects\/([^/]+)\/networks\/([a-z0-9-]+)$/.exec(networkPath);
  if (!net) {
    throw new Error(
      `Cannot use the GCE network of nic0 ${JSON.stringify(networkPath)}: want projects/N/networks/NAME`,
    );
  }
  return { projectId, numericProjectId, instance, zone, network: net[2]!, networkProjectNumber: net[1]! };
}

/** The default service account's access token, fetched again shortly before it expires. */
class TokenSource {
  #token: string | undefined;
  #refreshAt = 0;
  constructor(readonly ctx: CloudContext, readonly url: string) {}

  async get(signal: AbortSignal): Promise<string> {
    const now = this.ctx.clock.now();
    if (this.#token !== undefined && now < this.#refreshAt) return this.#token;
    const md = { fetch: flavorChecked(this.ctx.fetch), signal };
    const what = "the access token of the instance's default service account";
    const text = await metadataGet(md, CLOUD, this.url, what, { headers: FLAVOR });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      // reported below
    }
    const token = isRecord(body) ? body.access_token : undefined;
    const expiresIn = isRecord(body) ? body.expires_in : undefined;
    if (typeof token !== "string" || !token || typeof expiresIn !== "number" || !(expiresIn > 0)) {
      throw new Error(
        `Cannot use ${what} from ${this.url}: want JSON with access_token and expires_in, got ${
          JSON.stringify(text.slice(0, 80))
        }`,
      );
    }
    const lifeMs = expiresIn * 1000;
    this.#token = token;
    this.#refreshAt = now + lifeMs - Math.min(TOKEN_REFRESH_MARGIN_MS, lifeMs / 2);
    return token;
  }

  /** Forgets the token (the API refused it), so the next call fetches a new one. */
  invalidate(): void {
    this.#token = undefined;
  }
}

/** One Compute Engine API answer: the JSON body, or the error it amounts to. */
interface Answer {
  status: number;
  body: Record<string, unknown>;
  error?: CloudApiError;
}

/** The Compute Engine JSON API, authenticated with the service account's token. */
class Compute {
  constructor(readonly ctx: CloudContext, readonly endpoint: string, readonly tokens: TokenSource) {}

  async call(
    action: string,
    method: string,
    path: string,
    signal: AbortSignal,
    body?: unknown,
  ): Promise<Answer> {
    let token: string;
    try {
      token = await this.tokens.get(signal);
    } catch (e) {
      if (signal.aborted) throw e;
      throw withCause(new CloudApiError(CLOUD, action, "token", (e as Error).message, true), e);
    }
    const url = this.endpoint + path;
    let res: Response;
    let text: string;
    try {
      res = await this.ctx.fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? null : JSON.stringify(body),
        signal: AbortSignal.any([signal, AbortSignal.timeout(COMPUTE_TIMEOUT_MS)]),
      });
      text = await res.text();
    } catch (e) {
      if (signal.aborted) throw e;
      const why = `${method} ${url}: ${
        (e as Error).message
      }; check that the instance can reach ${this.endpoint}`;
      throw withCause(new CloudApiError(CLOUD, action, "network", why, true), e);
    }
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      // not JSON: only the error path uses the text
    }
    const json = isRecord(parsed) ? parsed : {};
    if (res.ok) return { status: res.status, body: json };
    if (res.status === 401) this.tokens.invalidate();
    return { status: res.status, body: json, error: googleError(action, res.status, json, text) };
  }
}

/** A Google JSON error body (`{"error":{"code","message","errors":[{"reason"}],"status"}}`) as an error. */
function googleError(
  action: string,
  status: number,
  json: Record<string, unknown>,
  text: string,
): CloudApiError {
  const err = isRecord(json.error) ? json.error : {};
  const first = Array.isArray(err.errors) && isRecord(err.errors[0]) ? err.errors[0] : {};
  const reason = str(first.reason) || str(err.status);
  const said = (str(err.message) || text.trim().slice(0, 200) || "no message").replace(/\s+/g, " ");
  const rateLimited = RATE_LIMIT_REASONS.has(reason);
  const retryable = rateLimited || status === 429 || status >= 500 || ![400, 401, 403, 404].includes(status);
  let hint = "";
  if (status === 401) hint = "; check the instance's service account";
  else if (status === 403 && !rateLimited) {
    hint = "; give the instance's service account route permissions (roles/compute.networkAdmin) " +
      "and the compute or cloud-platform access scope";
  } else if (status === 404) hint = `; check Backend "Project" and the instance's network`;
  return new CloudApiError(
    CLOUD,
    action,
    reason ? `${status}/${reason}` : String(status),
    said + hint,
    retryable,
  );
}

/** A finished operation's `error` as an error; 4xx-class failures need a person, others may pass. */
function operationError(action: string, op: Record<string, unknown>): CloudApiError {
  const err = isRecord(op.error) ? op.error : {};
  const first = Array.isArray(err.errors) && isRecord(err.errors[0]) ? err.errors[0] : {};
  const status = typeof op.httpErrorStatusCode === "number" ? op.httpErrorStatusCode : 0;
  const said = str(first.message) || str(op.httpErrorMessage) || "no message";
  const retryable = ![400, 401, 403, 404].includes(status);
  return new CloudApiError(
    CLOUD,
    action,
    str(first.code) || "OPERATION_FAILED",
    `operation ${str(op.name)}: ${said.replace(/\s+/g, " ")}`,
    retryable,
  );
}

interface Target {
  project: string;
  networkPath: string;
  instancePath: string;
  instance: string;
}

class GceRouter {
  readonly #pollFirstMs: number;
  readonly #deadlineMs: number;
  constructor(
    readonly ctx: CloudContext,
    opts: GceProviderOptions,
    readonly api: Compute,
    readonly t: Target,
  ) {
    this.#pollFirstMs = opts.pollFirstMs ?? POLL_FIRST_MS;
    this.#deadlineMs = opts.operationDeadlineMs ?? OPERATION_DEADLINE_MS;
  }

  async ensure(subnet: IP4Net, signal: AbortSignal): Promise<RouteOutcome> {
    const name = gceRouteName(subnet);
    const path = `projects/${this.t.project}/global/routes/${name}`;
    const got = await this.api.call("routes.get", "GET", path, signal);
    if (got.status === 404) {
      await this.#insert(name, subnet, signal);
      return "created";
    }
    if (got.error) throw got.error;
    const r = got.body;
    if (
      resourcePath(r.nextHopInstance) === this.t.instancePath && r.destRange === subnet.toString() &&
      resourcePath(r.network) === this.t.networkPath
    ) {
      return "kept";
    }
    if (resourcePath(r.network) !== this.t.networkPath) {
      // Routes are project-wide and every flannel names them flannel-<subnet>: this one belongs to
      // a cluster on another network. Replacing it every minute would break both clusters.
      throw new CloudApiError(
        CLOUD,
        "routes.get",
        "conflict",
        `route ${name} exists on network ${
          resourcePath(r.network) || "-"
        }, not ours (${this.t.networkPath}): ` +
          `another cluster in project ${this.t.project} uses the same Network; give the clusters distinct Network ranges`,
        false,
      );
    }
    this.ctx.log.warn(
      `gce: route ${name} has destRange ${str(r.destRange) || "-"}, network ${
        resourcePath(r.network) || "-"
      }, next hop ${resourcePath(r.nextHopInstance) || str(r.nextHopIp) || "-"}; replacing it`,
    );
    await this.#delete(path, signal);
    await this.#insert(name, subnet, signal);
    return "replaced";
  }

  /**
   * Uninstall: deletes `flannel-<subnet>` if its next hop is this instance (compared as in
   * {@linkcode ensure}) and waits for the operation; true then. False when there is none, or when
   * it points elsewhere (the subnet is another node's now), which is left alone.
   */
  async remove(subnet: IP4Net, signal: AbortSignal): Promise<boolean> {
    const name = gceRouteName(subnet);
    const path = `projects/${this.t.project}/global/routes/${name}`;
    const got = await this.api.call("routes.get", "GET", path, signal);
    if (got.status === 404) return false;
    if (got.error) throw got.error;
    const hop = resourcePath(got.body.nextHopInstance) || str(got.body.nextHopIp) || "-";
    if (hop !== this.t.instancePath) {
      this.ctx.log.info(`gce: route ${name} goes to ${hop}, not to this instance; left alone`);
      return false;
    }
    if (!(await this.#delete(path, signal))) this.ctx.log.info(`gce: route ${name} was deleted meanwhile`);
    return true;
  }

  /** Deletes a route and waits for the operation; false when it was already gone (404). */
  async #delete(path: string, signal: AbortSignal): Promise<boolean> {
    const del = await this.api.call("routes.delete", "DELETE", path, signal);
    if (del.status === 404) return false; // gone meanwhile, as we wanted
    if (del.error) throw del.error;
    await this.#wait("routes.delete", del.body, signal);
    return true;
  }

  async #insert(name: string, subnet: IP4Net, signal: AbortSignal): Promise<void> {
    const route = {
      name,
      network: RESOURCE_LINK_PREFIX + this.t.networkPath,
      destRange: subnet.toString(),
      nextHopInstance: RESOURCE_LINK_PREFIX + this.t.instancePath,
      priority: ROUTE_PRIORITY,
      description: `flannel: pod subnet ${subnet} of instance ${this.t.instance}`,
    };
    const res = await this.api.call(
      "routes.insert",
      "POST",
      `projects/${this.t.project}/global/routes`,
      signal,
      route,
    );
    if (res.error) throw res.error;
    await this.#wait("routes.insert", res.body, signal);
  }

  /** Polls an operation until `DONE`, with backoff and a deadline; throws its error. */
  async #wait(action: string, first: Record<string, unknown>, signal: AbortSignal): Promise<void> {
    const { clock } = this.ctx;
    const name = str(first.name);
    if (!name) {
      throw new CloudApiError(
        CLOUD,
        action,
        "bad response",
        "the answer is not an Operation (no name)",
        true,
      );
    }
    const deadline = clock.now() + this.#deadlineMs;
    let op = first;
    let wait = this.#pollFirstMs;
    while (op.status !== "DONE") {
      if (clock.now() >= deadline) {
        throw new CloudApiError(
          CLOUD,
          action,
          "timeout",
          `operation ${name} is still ${str(op.status) || "unknown"} after ${
            Math.round(this.#deadlineMs / 1000)
          }s; look it up with gcloud compute operations describe ${name}`,
          true,
        );
      }
      await clock.sleep(wait, signal);
      wait = Math.min(wait * 2, POLL_MAX_MS);
      const path = `projects/${this.t.project}/global/operations/${name}`;
      const res = await this.api.call("globalOperations.get", "GET", path, signal);
      if (res.error) throw res.error;
      op = res.body;
    }
    if (op.error !== undefined) throw operationError(action, op);
  }
}

/** `projects/…` of a full or partial resource URL, for comparing what GCE returns with ours. */
function resourcePath(v: unknown): string {
  if (typeof v !== "string") return "";
  const i = v.indexOf("projects/");
  return i < 0 ? v : v.slice(i);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function withCause<E extends Error>(err: E, cause: unknown): E {
  err.cause = cause;
  return err;
}

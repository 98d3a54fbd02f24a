/**
 * The `aws-vpc` backend: the VPC's route tables carry pod traffic between EC2 instances.
 *
 * Design notes. What goes to the cloud per node: in each route table it uses, one route,
 *
 *   DestinationCidrBlock <our lease subnet>  InstanceId <this instance>   (state active)
 *
 * and once, at start-up, the instance's source/destination check turned off
 * (ModifyInstanceAttribute `SourceDestCheck.Value=false`): without that the VPC drops packets
 * to and from pod addresses, which are not the instance's own. Nothing goes into the kernel and
 * peers' leases are not looked at; the lease carries PublicIP only (route_backend.ts).
 *
 * The tables: those named by the backend option `RouteTableID` (a string or a list); else the
 * table explicitly associated with the instance's subnet; else the VPC's main table (which
 * serves every subnet without an association). What we touch: only the route whose destination
 * is exactly our own subnet. Missing, it is created; pointing at another target or blackholed
 * (its instance stopped or gone), it is replaced. Upstream also deleted every blackhole route in
 * the table, which could delete routes that other people's tooling owns; we never do.
 * The target is the instance, as upstream; EC2 refuses an instance target when the instance
 * has several network interfaces (it then wants `NetworkInterfaceId`), which we do not handle.
 * The tables are found once; a later change of the subnet's association needs a restart.
 *
 * Uninstall (`flanneld --cleanup`, {@linkcode CloudRouter.deleteRoute}): in each of those
 * tables, the route for exactly our subnet is deleted (DeleteRoute) when it points at this
 * instance, in whatever state (blackholed too); one pointing elsewhere is the subnet's new
 * owner's and stays. DeleteRoute has no pending state to poll: its answer (`true`) is EC2's
 * word that the route is gone, though DescribeRouteTables, eventually consistent, may still
 * list it for a few seconds. EC2 has no "delete only if it still points here", so a route re-pointed by another
 * node between our look and our delete would go too: a window of one API round trip, and that
 * node's own periodic check puts its route back.
 *
 * Identity comes from the instance metadata service, IMDSv2 only (a session token from
 * `PUT /latest/api/token`, sent with every GET): instance-id, placement/region, mac, and the
 * primary interface's subnet-id and vpc-id. Credentials: `AWS_ACCESS_KEY_ID` /
 * `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the instance role's temporary keys from
 * the metadata service, fetched again five minutes before they expire. The API is EC2's Query
 * API (version 2016-11-15): form-encoded POSTs signed with SigV4 (aws_sigv4.ts), XML answers.
 * The endpoints move with the SDKs' variables `AWS_EC2_METADATA_SERVICE_ENDPOINT` and
 * `AWS_ENDPOINT_URL_EC2` (or `AWS_ENDPOINT_URL`), which is how the tests reach their fake.
 *
 * Permissions needed: ec2:DescribeRouteTables, ec2:CreateRoute, ec2:ReplaceRoute,
 * ec2:ModifyInstanceAttribute (only for the source/destination check) and ec2:DeleteRoute (only
 * for `--cleanup`).
 *
 * @module
 */
import { getField } from "../../config/case_insensitive.ts";
import { IP4Net } from "../../ip/mod.ts";
import { BackendConfigError } from "../options.ts";
import { type AwsCredentials, AwsQueryClient, xmlItems, xmlText } from "./aws_sigv4.ts";
import {
  CloudApiError,
  type CloudContext,
  type CloudRouteProvider,
  type CloudRouter,
  createCloudRouteBackend,
  METADATA_TIMEOUT_MS,
  metadataGet,
  type RouteOutcome,
} from "./route_backend.ts";

export const EC2_API_VERSION = "2016-11-15";
export const DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254";
/** The session token's lifetime we ask for (the maximum, six hours); renewed ten minutes early. */
export const IMDS_TOKEN_TTL_S = 21_600;
/** Instance-role keys are fetched again this long before their `Expiration`. */
export const CREDENTIAL_REFRESH_MS = 5 * 60_000;
const CLOUD = "AWS";
const PREFIX = "error decoding VPC backend config";

// ---- options, metadata, credentials ---------------------------------------------------------

/** The `RouteTableID` option: none, one ID, or a list of them (duplicates dropped). */
export function readRouteTableIds(backend: Record<string, unknown>): string[] {
  const v = getField(backend, "RouteTableID");
  if (v === undefined || v === null || v === "") return [];
  if (typeof v === "string") return [v];
  if (Array.isArray(v) && v.every((x) => typeof x === "string" && x !== "")) return [...new Set(v)];
  throw new BackendConfigError(
    `${PREFIX}: Backend "RouteTableID" is ${
      JSON.stringify(v)
    }, must be a route table ID ("rtb-…") or a list of them`,
  );
}

/** IMDSv2: a session token, then GETs that carry it. */
class Imds {
  #token = "";
  #tokenUntil = 0;
  constructor(readonly ctx: CloudContext, readonly base: string) {}

  async #headers(): Promise<Record<string, string>> {
    if (this.ctx.clock.now() >= this.#tokenUntil) {
      this.#token = await metadataGet(this.ctx, CLOUD, `${this.base}/latest/api/token`, "an IMDSv2 token", {
        method: "PUT",
        headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(IMDS_TOKEN_TTL_S) },
      });
      this.#tokenUntil = this.ctx.clock.now() + (IMDS_TOKEN_TTL_S - 600) * 1000;
    }
    return { "X-aws-ec2-metadata-token": this.#token };
  }

  async get(path: string, what: string): Promise<string> {
    const url = `${this.base}/latest/meta-data/${path}`;
    return metadataGet(this.ctx, CLOUD, url, what, { headers: await this.#headers() });
  }

  /**
   * The instance role's name, or undefined when the instance has none. Not {@linkcode metadataGet},
   * which takes IMDS's 404 ("no role") for a failure.
   */
  async roleName(): Promise<string | undefined> {
    const url = `${this.base}/latest/meta-data/iam/security-credentials/`;
    const headers = await this.#headers();
    const fail = (why: string) =>
      new Error(`Cannot read the instance role from the ${CLOUD} metadata service at ${url}: ${why}`);
    let res: Response;
    let text: string;
    try {
      const signal = AbortSignal.any([this.ctx.signal, AbortSignal.timeout(METADATA_TIMEOUT_MS)]);
      res = await this.ctx.fetch(url, { headers, signal });
      text = (await res.text()).trim();
    } catch (e) {
      throw fail((e as Error).message);
    }
    if (res.status === 404) return undefined;
    if (!res.ok) throw fail(`HTTP ${res.status}`);
    return text.split("\n")[0]!.trim() || undefined;
  }
}

/** The keys: fixed ones from the environment, or the instance role's, kept until near their expiry. */
class Credentials {
  #keys: AwsCredentials | undefined;
  #until = Infinity;
  /** `role` undefined: the fixed `keys` from the environment. */
  private constructor(
    readonly ctx: CloudContext,
    readonly imds: Imds,
    readonly role: string | undefined,
    keys?: AwsCredentials,
  ) {
    this.#keys = keys;
  }

  /** From the environment, else the instance role; a one-line error naming the fix if neither. */
  static async open(ctx: CloudContext, imds: Imds, instanceId: string): Promise<Credentials> {
    const accessKeyId = ctx.env("AWS_ACCESS_KEY_ID") ?? "";
    const secretAccessKey = ctx.env("AWS_SECRET_ACCESS_KEY") ?? "";
    if (accessKeyId !== "" && secretAccessKey !== "") {
      const sessionToken = ctx.env("AWS_SESSION_TOKEN") || undefined;
      return new Credentials(ctx, imds, undefined, { accessKeyId, secretAccessKey, sessionToken });
    }
    if (accessKeyId !== "" || secretAccessKey !== "") {
      const [set, unset] = accessKeyId
        ? ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY"]
        : ["SECRET_ACCESS_KEY", "ACCESS_KEY_ID"];
      throw new Error(
        `AWS_${set} is set but AWS_${unset} is not: set both, or neither to use the instance role`,
      );
    }
    const role = await imds.roleName();
    if (!role) {
      throw new Error(
        `No AWS credentials for the aws-vpc backend: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or attach an IAM role (instance profile) to ${instanceId}`,
      );
    }
    const creds = new Credentials(ctx, imds, role);
    await creds.#fetchRole();
    return creds;
  }

  get source(): string {
    return this.role === undefined ? "AWS_ACCESS_KEY_ID" : `instance role ${this.role}`;
  }

  async get(): Promise<AwsCredentials> {
    const now = this.ctx.clock.now();
    if (this.#keys && (this.role === undefined || now < this.#until - CREDENTIAL_REFRESH_MS)) {
      return this.#keys;
    }
    try {
      await this.#fetchRole();
    } catch (e) {
      // Early refresh is best effort: keys that have not yet expired still work.
      if (this.#keys && now < this.#until) return this.#keys;
      throw new CloudApiError(CLOUD, "credentials", "MetadataUnavailable", (e as Error).message);
    }
    return this.#keys!;
  }

  async #fetchRole(): Promise<void> {
    const path = `iam/security-credentials/${this.role}`;
    const text = await this.imds.get(path, `the keys of instance role ${this.role}`);
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(text);
    } catch {
      throw new Error(`The instance role keys at ${path} are not JSON: ${text.slice(0, 100)}`);
    }
    if (j.Code !== "Success" || typeof j.AccessKeyId !== "string" || typeof j.SecretAccessKey !== "string") {
      throw new Error(`The instance role keys at ${path} are unusable: Code is ${JSON.stringify(j.Code)}`);
    }
    this.#keys = {
      accessKeyId: j.AccessKeyId,
      secretAccessKey: j.SecretAccessKey,
      sessionToken: typeof j.Token === "string" ? j.Token : undefined,
    };
    const until = Date.parse(String(j.Expiration));
    // Without a readable expiry, ask again at the next use after the refresh margin.
    this.#until = Number.isFinite(until) ? until : this.ctx.clock.now() + CREDENTIAL_REFRESH_MS;
  }
}

/** A route as DescribeRouteTables lists it (the fields used here). */
interface Ec2Route {
  cidr: string;
  instanceId: string;
  /** What it points at, for the log: the instance, interface, gateway… */
  target: string;
  state: string;
}

interface Ec2Table {
  id: string;
  routes: Ec2Route[];
}

const TARGETS = [
  "instanceId",
  "networkInterfaceId",
  "gatewayId",
  "natGatewayId",
  "transitGatewayId",
  "vpcPeeringConnectionId",
  "localGatewayId",
  "carrierGatewayId",
];

/** DescribeRouteTables with `params`; the tables and their routes. */
async function describeTables(
  ec2: AwsQueryClient,
  params: Record<string, string>,
  signal?: AbortSignal,
): Promise<Ec2Table[]> {
  const doc = await ec2.call("DescribeRouteTables", params, signal);
  return xmlItems(doc, "routeTableSet").map((t) => ({
    id: xmlText(t, "routeTableId"),
    routes: xmlItems(t, "routeSet").map((r) => ({
      cidr: xmlText(r, "destinationCidrBlock"),
      instanceId: xmlText(r, "instanceId"),
      target: TARGETS.map((k) => xmlText(r, k)).find((v) => v !== "") ?? "nothing",
      state: xmlText(r, "state"),
    })),
  }));
}

function filters(...f: [string, string][]): Record<string, string> {
  const p: Record<string, string> = {};
  f.forEach(([name, value], i) => {
    p[`Filter.${i + 1}.Name`] = name;
    p[`Filter.${i + 1}.Value.1`] = value;
  });
  return p;
}

function sameCidr(a: string, b: IP4Net): boolean {
  return IP4Net.tryParse(a)?.toString() === b.toString();
}

// ---- the provider -----------------------------------------------------------------------------

interface Instance {
  instanceId: string;
  region: string;
  subnetId: string;
  vpcId: string;
}

class AwsVpcRouter implements CloudRouter {
  #tables: string[];
  constructor(
    readonly ctx: CloudContext,
    readonly ec2: AwsQueryClient,
    readonly me: Instance,
    configured: string[],
  ) {
    this.#tables = configured;
  }

  get where(): string {
    const n = this.#tables.length;
    const tables = n === 0
      ? "route table not yet found"
      : `route table${n > 1 ? "s" : ""} ${this.#tables.join(", ")}`;
    return `VPC ${this.me.vpcId} in ${this.me.region} (instance ${this.me.instanceId}), ${tables}`;
  }

  /** The subnet's own table, else the VPC's main table. */
  async discover(signal?: AbortSignal): Promise<void> {
    if (this.#tables.length > 0) return;
    const { subnetId, vpcId } = this.me;
    let found = await describeTables(this.ec2, filters(["association.subnet-id", subnetId]), signal);
    if (found.length === 0) {
      found = await describeTables(
        this.ec2,
        filters(["vpc-id", vpcId], ["association.main", "true"]),
        signal,
      );
    }
    if (found.length === 0) {
      throw new Error(
        `Cannot find a route table for subnet ${subnetId} in VPC ${vpcId}: set Backend "RouteTableID" to the table this node's traffic uses`,
      );
    }
    this.#tables = found.map((t) => t.id);
  }

  /** Our tables as they are now, in our order (one EC2 does not list: no routes). */
  async #current(signal?: AbortSignal): Promise<Ec2Table[]> {
    await this.discover(signal);
    const params: Record<string, string> = {};
    this.#tables.forEach((id, i) => (params[`RouteTableId.${i + 1}`] = id));
    const tables = await describeTables(this.ec2, params, signal);
    return this.#tables.map((id) => tables.find((t) => t.id === id) ?? { id, routes: [] });
  }

  async ensureRoute(subnet: IP4Net, signal?: AbortSignal): Promise<RouteOutcome> {
    const tables = await this.#current(signal);
    const rank: RouteOutcome[] = ["kept", "created", "replaced"];
    let outcome: RouteOutcome = "kept";
    let failure: unknown;
    for (const table of tables) {
      try {
        const did = await this.#ensureIn(table, subnet, signal);
        if (rank.indexOf(did) > rank.indexOf(outcome)) outcome = did;
      } catch (e) {
        failure ??= e; // the other tables still get their route
      }
    }
    if (failure) throw failure;
    return outcome;
  }

  async deleteRoute(subnet: IP4Net, signal?: AbortSignal): Promise<boolean> {
    const tables = await this.#current(signal);
    const me = this.me.instanceId;
    let removed = false;
    let failure: unknown;
    for (const table of tables) {
      // Ours in any state; a blackholed one is still ours to remove.
      const route = table.routes.find((r) => sameCidr(r.cidr, subnet) && r.instanceId === me);
      if (!route) continue;
      try {
        await this.ec2.call(
          "DeleteRoute",
          { RouteTableId: table.id, DestinationCidrBlock: subnet.toString() },
          signal,
        );
        removed = true;
      } catch (e) {
        // Gone since we looked: nothing left to remove there.
        if (e instanceof CloudApiError && e.code === "InvalidRoute.NotFound") continue;
        failure ??= e; // the other tables still lose theirs
      }
    }
    if (failure) throw failure;
    return removed;
  }

  async #ensureIn(table: Ec2Table, subnet: IP4Net, signal?: AbortSignal): Promise<RouteOutcome> {
    const me = this.me.instanceId;
    const route = table.routes.find((r) => sameCidr(r.cidr, subnet));
    if (route && route.instanceId === me && route.state === "active") return "kept";
    const params = { RouteTableId: table.id, DestinationCidrBlock: subnet.toString(), InstanceId: me };
    if (!route) {
      try {
        await this.ec2.call("CreateRoute", params, signal);
        return "created";
      } catch (e) {
        // Someone created it since we looked: make it ours.
        if (!(e instanceof CloudApiError && e.code === "RouteAlreadyExists")) throw e;
      }
    } else {
      this.ctx.log.warn(
        `aws-vpc: route table ${table.id} sends ${subnet} to ${route.target} (${route.state}); pointing it at ${me}`,
      );
    }
    await this.ec2.call("ReplaceRoute", params, signal);
    return "replaced";
  }
}

/** Turns the instance's source/destination check off; a warning naming the permission if it cannot. */
async function disableSourceDestCheck(
  ctx: CloudContext,
  ec2: AwsQueryClient,
  instanceId: string,
): Promise<void> {
  try {
    await ec2.call("ModifyInstanceAttribute", { InstanceId: instanceId, "SourceDestCheck.Value": "false" });
  } catch (e) {
    if (!(e instanceof CloudApiError)) throw e;
    ctx.log.warn(
      `aws-vpc: cannot turn off the source/destination check of ${instanceId} (${e.message}); ` +
        `grant ec2:ModifyInstanceAttribute or turn it off by hand, else the VPC drops pod traffic to and from this node`,
    );
  }
}

function endpointUrl(ctx: CloudContext, region: string): URL {
  for (const name of ["AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL"]) {
    const v = ctx.env(name);
    if (!v) continue;
    const url = URL.parse(v);
    if (!url || !/^https?:$/.test(url.protocol)) {
      throw new Error(
        `${name} is ${JSON.stringify(v)}, must be an http(s) URL such as https://ec2.${region}.amazonaws.com`,
      );
    }
    return url;
  }
  return new URL(`https://ec2.${region}.amazonaws.com${region.startsWith("cn-") ? ".cn" : ""}/`);
}

/** The aws-vpc provider. */
export const awsVpcProvider: CloudRouteProvider = {
  type: "aws-vpc",
  async open(ctx: CloudContext): Promise<CloudRouter> {
    const configured = readRouteTableIds(ctx.backend);
    const base = (ctx.env("AWS_EC2_METADATA_SERVICE_ENDPOINT") || DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, "");
    const imds = new Imds(ctx, base);
    const instanceId = await imds.get("instance-id", "the instance ID");
    const region = await imds.get("placement/region", "the region");
    const mac = await imds.get("mac", "the primary MAC address");
    const subnetId = await imds.get(`network/interfaces/macs/${mac}/subnet-id`, "the subnet ID");
    const vpcId = await imds.get(`network/interfaces/macs/${mac}/vpc-id`, "the VPC ID");
    const creds = await Credentials.open(ctx, imds, instanceId);
    const endpoint = endpointUrl(ctx, region);
    const ec2 = new AwsQueryClient(
      ctx,
      { service: "ec2", version: EC2_API_VERSION, region, endpoint },
      creds,
    );
    ctx.log.info(`aws-vpc: instance ${instanceId}, subnet ${subnetId}, keys from ${creds.source}`);
    await disableSourceDestCheck(ctx, ec2, instanceId);
    const router = new AwsVpcRouter(ctx, ec2, { instanceId, region, subnetId, vpcId }, configured);
    try {
      await router.discover();
    } catch (e) {
      // Throttled or unreachable now: the start-up retries of ensureRoute look again.
      if (!(e instanceof CloudApiError && e.retryable)) throw e;
      ctx.log.warn(`aws-vpc: cannot look up the route table yet: ${e.message}`);
    }
    return router;
  },
};

/** The aws-vpc backend factory. */
export const awsVpcBackend = createCloudRouteBackend(awsVpcProvider);

/**
 * A fake of what the aws-vpc backend talks to, on 127.0.0.1: the EC2 instance metadata service
 * (IMDSv2 only) and the EC2 Query API, on one port (`/latest/…` and `POST /`).
 *
 * Faithful where it matters:
 * - IMDS: `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` (1–21600, else
 *   400); every GET needs a live token in `X-aws-ec2-metadata-token` (else 401, as an instance
 *   with IMDSv2 required answers); unknown paths and a missing role are 404; role keys are the
 *   JSON IMDS serves (`Code`, `AccessKeyId`, `SecretAccessKey`, `Token`, `Expiration`).
 * - EC2: every request must carry a SigV4 `Authorization` that the fake recomputes from the
 *   request as received, with its own copy of the secret, its own canonical form and the
 *   received headers (a wrong key or signature is HTTP 401 `AuthFailure`, temporary keys need
 *   their `X-Amz-Security-Token`, a stale `X-Amz-Date` is `RequestExpired`). Errors are EC2's
 *   shape, `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`.
 *   Route tables are state: DescribeRouteTables (by ID or by filter), CreateRoute
 *   (`RouteAlreadyExists` on a duplicate), ReplaceRoute, DeleteRoute (by table and destination,
 *   whatever the target; `InvalidRoute.NotFound` when there is none, and the `local` route cannot
 *   go), ModifyInstanceAttribute.
 * - Tests can fail the next calls (`failNext`, `throttle`), deny actions (`deny`), move the
 *   fake's clock (`now`), rotate or revoke role keys, and read every request.
 */
import { hex, hmac, sha256Hex } from "../../../src/backends/cloud/route_backend.ts";

export interface FakeEc2Route {
  cidr: string;
  /** `local`, `igw-…`, or an instance `i-…`. */
  target: string;
  state: "active" | "blackhole";
  origin: "CreateRouteTable" | "CreateRoute";
}

export interface FakeEc2Table {
  id: string;
  vpcId: string;
  /** The VPC's main table (serves subnets without an explicit association). */
  main: boolean;
  /** Subnets explicitly associated with the table. */
  subnets: string[];
  routes: FakeEc2Route[];
}

/** One EC2 API request as the fake accepted it for dispatch (signature good). */
export interface Ec2Request {
  action: string;
  params: Record<string, string>;
  accessKeyId: string;
}

interface Keys {
  secret: string;
  token?: string;
  /** Fake-clock ms after which the keys stop working (role keys). */
  expires?: number;
  revoked?: boolean;
}

const OWNER = "123456789012";
const NS = "http://ec2.amazonaws.com/doc/2016-11-15/";

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

export class FakeAws {
  region = "eu-west-1";
  readonly instanceId = "i-0123456789abcdef0";
  readonly mac = "0a:1b:2c:3d:4e:5f";
  subnetId = "subnet-0a1b2c3d";
  readonly vpcId = "vpc-0f0e0d0c";
  /** The static keys a test puts in the environment. */
  readonly accessKeyId = "AKIAFAKEFLANNEL00001";
  readonly secretAccessKey = "fake/flannel+secret0000000000000000000000";
  /** The IAM role attached to the instance (its instance profile), or none. */
  role: string | undefined = "flannel-node";
  /** How long role keys live (IMDS hands out keys valid for hours). */
  roleKeyLifetimeMs = 6 * 3600_000;
  /** The fake's time (its IMDS expirations, its `X-Amz-Date` check); tests may move it. */
  now: () => number = () => Date.now();
  /** Instances EC2 knows: ID → primary network interface. */
  readonly instances = new Map([
    [this.instanceId, "eni-0aaaaaaaaaaaaaaa1"],
    ["i-0fedcba9876543210", "eni-0bbbbbbbbbbbbbbb2"],
  ]);
  sourceDestCheck = true;
  readonly tables: FakeEc2Table[] = [
    {
      id: "rtb-0main",
      vpcId: this.vpcId,
      main: true,
      subnets: [],
      routes: [
        { cidr: "10.0.0.0/16", target: "local", state: "active", origin: "CreateRouteTable" },
        { cidr: "0.0.0.0/0", target: "igw-0c0ffee0", state: "active", origin: "CreateRoute" },
      ],
    },
    {
      id: "rtb-0subnet",
      vpcId: this.vpcId,
      main: false,
      subnets: [this.subnetId],
      routes: [{ cidr: "10.0.0.0/16", target: "local", state: "active", origin: "CreateRouteTable" }],
    },
    {
      id: "rtb-0other",
      vpcId: this.vpcId,
      main: false,
      subnets: ["subnet-0ffff000"],
      routes: [{ cidr: "10.0.0.0/16", target: "local", state: "active", origin: "CreateRouteTable" }],
    },
  ];
  /** Every EC2 request whose signature checked out, in order. */
  readonly requests: Ec2Request[] = [];
  /** Every metadata request, as `METHOD /path`. */
  readonly imdsRequests: string[] = [];
  /** Errors to answer the next EC2 calls with (after the signature check), in order. */
  readonly failNext: { status: number; code: string; message: string }[] = [];
  /** Actions answered with `UnauthorizedOperation` (a policy without them). */
  readonly deny = new Set<string>();
  readonly #keys = new Map<string, Keys>();
  /** The role keys IMDS currently hands out. */
  #roleKeys: { id: string; keys: Keys } | undefined;
  #issued = 0;
  readonly #tokens = new Map<string, number>();
  #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;

  constructor(hostname = "127.0.0.1") {
    this.#keys.set(this.accessKeyId, { secret: this.secretAccessKey });
    this.#server = Deno.serve({ hostname, port: 0, onListen: () => {} }, (req) => this.#handle(req));
    this.url = `http://${hostname}:${this.#server.addr.port}`;
  }

  /** The environment of a node using this fake: endpoints, and the static keys unless `keys` is false. */
  env(keys = true): Record<string, string> {
    const e: Record<string, string> = {
      AWS_EC2_METADATA_SERVICE_ENDPOINT: this.url,
      AWS_ENDPOINT_URL_EC2: this.url,
    };
    if (keys) {
      e.AWS_ACCESS_KEY_ID = this.accessKeyId;
      e.AWS_SECRET_ACCESS_KEY = this.secretAccessKey;
    }
    return e;
  }

  /** Makes the next `n` calls fail as EC2 throttles: HTTP 503 `RequestLimitExceeded`. */
  throttle(n: number): void {
    for (let i = 0; i < n; i++) {
      this.failNext.push({ status: 503, code: "RequestLimitExceeded", message: "Request limit exceeded." });
    }
  }

  /** IMDS starts handing out new role keys (the old ones keep working until revoked or expired). */
  rotateRoleKeys(): string {
    const id = `ASIAFAKEROLE${String(++this.#issued).padStart(8, "0")}`;
    const keys = {
      secret: `role/secret+${this.#issued}`,
      token: `IQoJb3JpZ2luX2VjEFAKE${this.#issued}//token==`,
      expires: this.now() + this.roleKeyLifetimeMs,
    };
    this.#keys.set(id, keys);
    this.#roleKeys = { id, keys };
    return id;
  }

  /** Role keys handed out so far. */
  get roleKeyIds(): string[] {
    return [...this.#keys.keys()].filter((k) => k.startsWith("ASIA"));
  }

  revoke(accessKeyId: string): void {
    const k = this.#keys.get(accessKeyId);
    if (k) k.revoked = true;
  }

  table(id: string): FakeEc2Table {
    const t = this.tables.find((t) => t.id === id);
    if (!t) throw new Error(`FakeAws has no table ${id}`);
    return t;
  }

  /** Every route as a sorted `rtb-… <cidr> -> <target> <state>` line. */
  render(): string[] {
    return this.tables.flatMap((t) => t.routes.map((r) => `${t.id} ${r.cidr} -> ${r.target} ${r.state}`))
      .sort();
  }

  /** The EC2 actions called so far. */
  actions(): string[] {
    return this.requests.map((r) => r.action);
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/latest/")) return this.#imds(req, url);
    if (req.method !== "POST" || url.pathname !== "/") return new Response("Not Found", { status: 404 });
    const body = await req.text();
    const denied = await this.#authenticate(req, url, body);
    if (denied) return denied;
    const params = Object.fromEntries(new URLSearchParams(body));
    const action = params.Action ?? "";
    delete params.Action;
    this.requests.push({ action, params, accessKeyId: this.#credential(req)! });
    if (!params.Version) {
      return this.#error(400, "MissingParameter", "The request must contain the parameter Version");
    }
    const fail = this.failNext.shift();
    if (fail) return this.#error(fail.status, fail.code, fail.message);
    if (this.deny.has(action)) {
      return this.#error(
        403,
        "UnauthorizedOperation",
        "You are not authorized to perform this operation. Encoded authorization failure message: FAKEencodedMessage",
      );
    }
    switch (action) {
      case "DescribeRouteTables":
        return this.#describeRouteTables(params);
      case "CreateRoute":
      case "ReplaceRoute":
        return this.#putRoute(action, params);
      case "DeleteRoute":
        return this.#deleteRoute(params);
      case "ModifyInstanceAttribute": {
        if (!this.instances.has(params.InstanceId ?? "")) return this.#noInstance(params.InstanceId);
        const v = params["SourceDestCheck.Value"];
        if (v !== undefined) this.sourceDestCheck = v === "true";
        return this.#ok(action, "<return>true</return>");
      }
      default:
        return this.#error(400, "InvalidAction", `The action ${action} is not valid for this web service.`);
    }
  }

  // ---- IMDSv2 ----

  #imds(req: Request, url: URL): Response {
    this.imdsRequests.push(`${req.method} ${url.pathname}`);
    if (url.pathname === "/latest/api/token") {
      if (req.method !== "PUT") return new Response("Method Not Allowed", { status: 405 });
      const ttl = Number(req.headers.get("X-aws-ec2-metadata-token-ttl-seconds"));
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) {
        return new Response("Bad Request", { status: 400 });
      }
      const token = `AQAEAFAKE${crypto.randomUUID()}==`;
      this.#tokens.set(token, this.now() + ttl * 1000);
      return new Response(token, { headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(ttl) } });
    }
    if (req.method !== "GET") return new Response("Method Not Allowed", { status: 405 });
    const until = this.#tokens.get(req.headers.get("X-aws-ec2-metadata-token") ?? "");
    if (until === undefined || until < this.now()) return new Response("Unauthorized", { status: 401 });
    const path = url.pathname.slice("/latest/meta-data/".length);
    const creds = "iam/security-credentials/";
    let value: string | undefined = {
      "instance-id": this.instanceId,
      "placement/region": this.region,
      mac: this.mac,
      [`network/interfaces/macs/${this.mac}/subnet-id`]: this.subnetId,
      [`network/interfaces/macs/${this.mac}/vpc-id`]: this.vpcId,
    }[path];
    if (this.role && path === creds) value = this.role;
    if (this.role && path === `${creds}${this.role}`) {
      if (!this.#roleKeys) this.rotateRoleKeys();
      const { id, keys } = this.#roleKeys!;
      value = JSON.stringify(
        {
          Code: "Success",
          LastUpdated: new Date(this.now()).toISOString().replace(/\.\d{3}/, ""),
          Type: "AWS-HMAC",
          AccessKeyId: id,
          SecretAccessKey: keys.secret,
          Token: keys.token,
          Expiration: new Date(keys.expires!).toISOString().replace(/\.\d{3}/, ""),
        },
        null,
        2,
      );
    }
    return value === undefined ? new Response("Not Found", { status: 404 }) : new Response(value);
  }

  // ---- SigV4, checked independently of the client's signer ----

  #credential(req: Request): string | undefined {
    return /Credential=([^/]+)\//.exec(req.headers.get("Authorization") ?? "")?.[1];
  }

  /** The error response for a request whose signature does not hold, or undefined. */
  async #authenticate(req: Request, url: URL, body: string): Promise<Response | undefined> {
    const auth = req.headers.get("Authorization");
    if (!auth) {
      return this.#error(401, "MissingAuthenticationToken", "Request is missing Authentication Token");
    }
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/
        .exec(auth);
    if (!m) {
      return this.#error(
        400,
        "IncompleteSignature",
        `Authorization header requires a valid SigV4 form: ${auth}`,
      );
    }
    const [, keyId, day, region, service, signedHeaders, signature] = m as unknown as string[];
    const authFailure = () =>
      this.#error(401, "AuthFailure", "AWS was not able to validate the provided access credentials");
    const keys = this.#keys.get(keyId!);
    if (!keys || keys.revoked || (keys.expires !== undefined && keys.expires <= this.now())) {
      return authFailure();
    }
    if (keys.token !== undefined && req.headers.get("X-Amz-Security-Token") !== keys.token) {
      return authFailure();
    }
    if (region !== this.region || service !== "ec2") return authFailure();
    const stamp = req.headers.get("X-Amz-Date") ?? "";
    const when = Date.parse(
      stamp.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"),
    );
    if (!Number.isFinite(when) || !stamp.startsWith(day!)) return authFailure();
    if (Math.abs(when - this.now()) > 15 * 60_000) {
      return this.#error(400, "RequestExpired", "Request has expired.");
    }
    const names = signedHeaders!.split(";");
    if (!names.includes("host") || !names.includes("x-amz-date")) return authFailure();
    // The canonical request, from the request as it arrived.
    const query = [...url.searchParams].map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`).sort().join("&");
    const lines = names.map((n) => `${n}:${(req.headers.get(n) ?? "").trim().replace(/\s+/g, " ")}`);
    const canonical = [req.method, url.pathname, query, ...lines, "", signedHeaders, await sha256Hex(body)]
      .join("\n");
    const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${day}/${region}/${service}/aws4_request\n${await sha256Hex(
      canonical,
    )}`;
    let key = await hmac("SHA-256", `AWS4${keys.secret}`, day!);
    for (const part of [region!, service!, "aws4_request"]) key = await hmac("SHA-256", key, part);
    if (hex(await hmac("SHA-256", key, toSign)) !== signature) return authFailure();
    return undefined;
  }

  // ---- EC2 ----

  #describeRouteTables(params: Record<string, string>): Response {
    const ids = Object.entries(params).filter(([k]) => /^RouteTableId\.\d+$/.test(k)).map(([, v]) => v);
    for (const id of ids) {
      if (!id.startsWith("rtb-")) {
        return this.#error(400, "InvalidRouteTableId.Malformed", `Invalid id: "${id}" (expecting "rtb-...")`);
      }
      if (!this.tables.some((t) => t.id === id)) {
        return this.#error(400, "InvalidRouteTableID.NotFound", `The routeTable ID '${id}' does not exist`);
      }
    }
    let tables = ids.length ? this.tables.filter((t) => ids.includes(t.id)) : this.tables;
    for (let i = 1; params[`Filter.${i}.Name`] !== undefined; i++) {
      const name = params[`Filter.${i}.Name`]!;
      const values = Object.entries(params).filter(([k]) => k.startsWith(`Filter.${i}.Value.`)).map(([, v]) =>
        v
      );
      const test: Record<string, (t: FakeEc2Table) => boolean> = {
        "route-table-id": (t) => values.includes(t.id),
        "vpc-id": (t) => values.includes(t.vpcId),
        "association.subnet-id": (t) => t.subnets.some((s) => values.includes(s)),
        "association.main": (t) => values.includes(String(t.main)),
      };
      if (!test[name]) return this.#error(400, "InvalidParameterValue", `The filter '${name}' is invalid`);
      tables = tables.filter(test[name]);
    }
    const items = tables.map((t) => {
      const routes = t.routes.map((r) => {
        const target = r.target.startsWith("i-")
          ? `<instanceId>${r.target}</instanceId><instanceOwnerId>${OWNER}</instanceOwnerId>` +
            `<networkInterfaceId>${this.instances.get(r.target) ?? "eni-0deleted"}</networkInterfaceId>`
          : `<gatewayId>${esc(r.target)}</gatewayId>`;
        return `<item><destinationCidrBlock>${r.cidr}</destinationCidrBlock>${target}` +
          `<state>${r.state}</state><origin>${r.origin}</origin></item>`;
      });
      const assoc = [
        ...(t.main
          ? [
            `<item><routeTableAssociationId>rtbassoc-${t.id.slice(4)}m</routeTableAssociationId>` +
            `<routeTableId>${t.id}</routeTableId><main>true</main>` +
            `<associationState><state>associated</state></associationState></item>`,
          ]
          : []),
        ...t.subnets.map((s) =>
          `<item><routeTableAssociationId>rtbassoc-${s.slice(7)}</routeTableAssociationId>` +
          `<routeTableId>${t.id}</routeTableId><subnetId>${s}</subnetId><main>false</main>` +
          `<associationState><state>associated</state></associationState></item>`
        ),
      ];
      return `\n    <item>\n      <routeTableId>${t.id}</routeTableId>\n      <vpcId>${t.vpcId}</vpcId>\n` +
        `      <ownerId>${OWNER}</ownerId>\n      <routeSet>${routes.join("")}</routeSet>\n` +
        `      <associationSet>${
          assoc.join("")
        }</associationSet>\n      <propagatingVgwSet/>\n      <tagSet/>\n    </item>`;
    });
    return this.#ok("DescribeRouteTables", `<routeTableSet>${items.join("")}\n  </routeTableSet>`);
  }

  #putRoute(action: "CreateRoute" | "ReplaceRoute", params: Record<string, string>): Response {
    for (const p of ["RouteTableId", "DestinationCidrBlock"]) {
      if (!params[p]) {
        return this.#error(400, "MissingParameter", `The request must contain the parameter ${p}`);
      }
    }
    const cidr = params.DestinationCidrBlock!;
    if (!/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(cidr)) {
      return this.#error(
        400,
        "InvalidParameterValue",
        `Value (${cidr}) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.`,
      );
    }
    const table = this.tables.find((t) => t.id === params.RouteTableId);
    if (!table) {
      return this.#error(
        400,
        "InvalidRouteTableID.NotFound",
        `The routeTable ID '${params.RouteTableId}' does not exist`,
      );
    }
    const target = params.InstanceId;
    if (!target) return this.#error(400, "MissingParameter", "The request must contain a route target");
    if (!this.instances.has(target)) return this.#noInstance(target);
    const existing = table.routes.find((r) => r.cidr === cidr);
    if (action === "CreateRoute") {
      if (existing) {
        return this.#error(400, "RouteAlreadyExists", `The route identified by ${cidr} already exists.`);
      }
      table.routes.push({ cidr, target, state: "active", origin: "CreateRoute" });
    } else {
      if (!existing) {
        return this.#error(
          400,
          "InvalidParameterValue",
          `There is no route defined for '${cidr}' in the route table. Use CreateRoute instead.`,
        );
      }
      Object.assign(existing, { target, state: "active" });
    }
    return this.#ok(action, "<return>true</return>");
  }

  #deleteRoute(params: Record<string, string>): Response {
    for (const p of ["RouteTableId", "DestinationCidrBlock"]) {
      if (!params[p]) {
        return this.#error(400, "MissingParameter", `The request must contain the parameter ${p}`);
      }
    }
    const id = params.RouteTableId!;
    const cidr = params.DestinationCidrBlock!;
    const table = this.tables.find((t) => t.id === id);
    if (!table) {
      return this.#error(400, "InvalidRouteTableID.NotFound", `The routeTable ID '${id}' does not exist`);
    }
    const at = table.routes.findIndex((r) => r.cidr === cidr);
    if (at < 0) {
      return this.#error(
        400,
        "InvalidRoute.NotFound",
        `no route with destination-cidr-block ${cidr} in route table ${id}`,
      );
    }
    if (table.routes[at]!.target === "local") {
      return this.#error(
        400,
        "InvalidParameterValue",
        `cannot remove local route ${cidr} in route table ${id}`,
      );
    }
    table.routes.splice(at, 1);
    return this.#ok("DeleteRoute", "<return>true</return>");
  }

  #noInstance(id: string | undefined): Response {
    return this.#error(400, "InvalidInstanceID.NotFound", `The instance ID '${id}' does not exist`);
  }

  #ok(action: string, inner: string): Response {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${NS}">\n` +
      `  <requestId>${crypto.randomUUID()}</requestId>\n  ${inner}\n</${action}Response>`;
    return new Response(xml, { headers: { "Content-Type": "text/xml;charset=UTF-8" } });
  }

  #error(status: number, code: string, message: string): Response {
    const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code>` +
      `<Message>${
        esc(message)
      }</Message></Error></Errors><RequestID>${crypto.randomUUID()}</RequestID></Response>`;
    return new Response(xml, { status, headers: { "Content-Type": "text/xml;charset=UTF-8" } });
  }
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

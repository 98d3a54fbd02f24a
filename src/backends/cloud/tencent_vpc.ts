/**
 * The `tencent-vpc` backend: Tencent Cloud's VPC routes the pod subnets (§7.9 of the behaviour
 * reference).
 *
 * Design notes. What goes to the cloud per node: one route in the VPC's first route table,
 *
 *   DestinationCidrBlock <our lease subnet>  GatewayType NORMAL_CVM  GatewayId <our ExtAddr>
 *
 * enabled. Nothing goes into the kernel, and peers' leases are not looked at: each node routes
 * its own subnet. As upstream: credentials from the backend's `AccessKeyID`/`AccessKeySecret` or
 * the environment's `ACCESS_KEY_ID`/`ACCESS_KEY_SECRET`; region and VPC from the instance
 * metadata service (`placement/region`, then `mac` and `network/interfaces/macs/<mac>/vpc-id`);
 * a matching route that is disabled or points elsewhere is deleted before ours is created. The
 * lease carries PublicIP only. Better than upstream (route_backend.ts): the route is checked again
 * every minute and put back if it went, and API errors keep Tencent's code (`AuthFailure.…`).
 *
 * The API is Tencent Cloud API 3.0: `POST /` with a JSON body, the action in `X-TC-Action`,
 * version 2017-03-12, signed with TC3-HMAC-SHA256 (content-type and host signed). Errors come
 * back with HTTP 200 and `{"Response":{"Error":{"Code","Message"},"RequestId"}}`. The endpoints
 * can be moved (tests, private endpoints) with `TENCENTCLOUD_VPC_ENDPOINT` and
 * `TENCENTCLOUD_METADATA_ENDPOINT` (ours, not upstream's).
 *
 * @module
 */
import { getField } from "../../config/case_insensitive.ts";
import type { IP4Net } from "../../ip/mod.ts";
import {
  apiSignal,
  CloudApiError,
  type CloudContext,
  type CloudRouteProvider,
  type CloudRouter,
  createCloudRouteBackend,
  hex,
  hmac,
  metadataGet,
  type RouteOutcome,
  sha256Hex,
} from "./route_backend.ts";

/** The API version of the VPC actions used here. */
export const TENCENT_VPC_VERSION = "2017-03-12";
export const DEFAULT_TENCENT_VPC_ENDPOINT = "https://vpc.tencentcloudapi.com";
export const DEFAULT_TENCENT_METADATA_ENDPOINT = "http://metadata.tencentyun.com";
/** Upstream's text when no credentials are configured (its trailing space included). */
export const TENCENT_NO_CREDENTIALS = "ACCESS_KEY_ID and ACCESS_KEY_SECRET must be provided! ";
const CLOUD = "Tencent Cloud";

/** Error codes no retry can fix: credentials, signatures, permissions, bad parameters. */
function retryable(code: string): boolean {
  return !/^(AuthFailure|UnauthorizedOperation|InvalidParameter|MissingParameter|UnknownParameter|InvalidAction|UnsupportedOperation|ResourceNotFound)/
    .test(code);
}

/** What {@linkcode signTc3} signs: one API 3.0 POST. */
export interface Tc3Request {
  secretId: string;
  secretKey: string;
  /** The service name (`vpc`, `cvm`): the first label of the official host. */
  service: string;
  /** The Host header as sent. */
  host: string;
  contentType: string;
  payload: string;
  /** Seconds since the epoch. */
  timestamp: number;
}

/**
 * The `Authorization` header of a TC3-HMAC-SHA256 request (Tencent Cloud API 3.0, signature v3):
 * canonical request `POST\n/\n\ncontent-type:…\nhost:…\n\ncontent-type;host\n<sha256(payload)>`,
 * string to sign `TC3-HMAC-SHA256\n<timestamp>\n<date>/<service>/tc3_request\n<sha256(canonical)>`,
 * key chain `"TC3" + SecretKey` → date → service → `tc3_request`.
 */
export async function signTc3(r: Tc3Request): Promise<string> {
  const date = new Date(r.timestamp * 1000).toISOString().slice(0, 10);
  const canonical = [
    "POST",
    "/",
    "",
    `content-type:${r.contentType}\nhost:${r.host}\n`,
    "content-type;host",
    await sha256Hex(r.payload),
  ].join("\n");
  const scope = `${date}/${r.service}/tc3_request`;
  const toSign = `TC3-HMAC-SHA256\n${r.timestamp}\n${scope}\n${await sha256Hex(canonical)}`;
  const kDate = await hmac("SHA-256", `TC3${r.secretKey}`, date);
  const kService = await hmac("SHA-256", kDate, r.service);
  const kSigning = await hmac("SHA-256", kService, "tc3_request");
  const signature = hex(await hmac("SHA-256", kSigning, toSign));
  return `TC3-HMAC-SHA256 Credential=${r.secretId}/${scope}, SignedHeaders=content-type;host, Signature=${signature}`;
}

/** A route as DescribeRouteTables lists it (the fields used here). */
interface TencentRoute {
  DestinationCidrBlock: string;
  GatewayType: string;
  GatewayId: string;
  RouteId: number;
  Enabled?: boolean;
}

/** Calls VPC API actions for one account and region. */
export class TencentVpcClient {
  readonly #ctx: Pick<CloudContext, "fetch" | "clock" | "signal">;
  readonly #endpoint: URL;
  readonly #region: string;
  readonly #secretId: string;
  readonly #secretKey: string;

  constructor(
    ctx: Pick<CloudContext, "fetch" | "clock" | "signal">,
    o: { endpoint: string; region: string; secretId: string; secretKey: string },
  ) {
    this.#ctx = ctx;
    this.#endpoint = new URL(o.endpoint);
    this.#region = o.region;
    this.#secretId = o.secretId;
    this.#secretKey = o.secretKey;
  }

  /** Runs `action`; the `Response` object, or {@linkcode CloudApiError} with Tencent's code. */
  async call(
    action: string,
    params: Record<string, unknown>,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const payload = JSON.stringify(params);
    const contentType = "application/json; charset=utf-8";
    const timestamp = Math.floor(this.#ctx.clock.now() / 1000);
    const authorization = await signTc3({
      secretId: this.#secretId,
      secretKey: this.#secretKey,
      service: "vpc",
      host: this.#endpoint.host,
      contentType,
      payload,
      timestamp,
    });
    let res: Response;
    let text: string;
    try {
      res = await this.#ctx.fetch(this.#endpoint, {
        method: "POST",
        headers: {
          "Content-Type": contentType,
          Authorization: authorization,
          "X-TC-Action": action,
          "X-TC-Version": TENCENT_VPC_VERSION,
          "X-TC-Timestamp": String(timestamp),
          "X-TC-Region": this.#region,
        },
        body: payload,
        signal: apiSignal(signal ?? this.#ctx.signal),
      });
      text = await res.text();
    } catch (e) {
      throw new CloudApiError(
        CLOUD,
        action,
        "NetworkError",
        `${this.#endpoint.origin}: ${(e as Error).message}`,
      );
    }
    let body: { Response?: Record<string, unknown> & { Error?: { Code?: string; Message?: string } } };
    try {
      body = JSON.parse(text);
    } catch {
      throw new CloudApiError(
        CLOUD,
        action,
        `HTTP ${res.status}`,
        `not a JSON answer: ${text.slice(0, 200)}`,
      );
    }
    const r = body.Response;
    if (!r) {
      throw new CloudApiError(CLOUD, action, `HTTP ${res.status}`, `no "Response" in ${text.slice(0, 200)}`);
    }
    if (r.Error) {
      const code = r.Error.Code ?? "Unknown";
      const request = typeof r.RequestId === "string" ? ` (RequestId ${r.RequestId})` : "";
      throw new CloudApiError(CLOUD, action, code, `${r.Error.Message ?? ""}${request}`, retryable(code));
    }
    if (!res.ok) throw new CloudApiError(CLOUD, action, `HTTP ${res.status}`, text.slice(0, 200));
    return r;
  }
}

/** The tencent-vpc provider. */
export const tencentVpcProvider: CloudRouteProvider = {
  type: "tencent-vpc",
  async open(ctx: CloudContext): Promise<CloudRouter> {
    const opt = (name: string) => {
      const v = getField(ctx.backend, name);
      if (v !== undefined && v !== null && typeof v !== "string") {
        throw new Error(
          `error decoding tencent-vpc backend config: Backend "${name}" is ${
            JSON.stringify(v)
          }, must be a string`,
        );
      }
      return v ?? "";
    };
    const secretId = opt("AccessKeyID") || ctx.env("ACCESS_KEY_ID") || "";
    const secretKey = opt("AccessKeySecret") || ctx.env("ACCESS_KEY_SECRET") || "";
    if (!secretId || !secretKey) {
      throw new Error(
        `${TENCENT_NO_CREDENTIALS}(set Backend "AccessKeyID" and "AccessKeySecret" in net-conf.json, or the environment variables)`,
      );
    }
    const meta = (ctx.env("TENCENTCLOUD_METADATA_ENDPOINT") || DEFAULT_TENCENT_METADATA_ENDPOINT).replace(
      /\/+$/,
      "",
    );
    const get = (path: string, what: string) =>
      metadataGet(ctx, CLOUD, `${meta}/latest/meta-data/${path}`, what);
    const region = await get("placement/region", "the region");
    const mac = await get("mac", "the MAC address");
    const vpcId = await get(`network/interfaces/macs/${mac}/vpc-id`, "the VPC id");
    const client = new TencentVpcClient(ctx, {
      endpoint: ctx.env("TENCENTCLOUD_VPC_ENDPOINT") || DEFAULT_TENCENT_VPC_ENDPOINT,
      region,
      secretId,
      secretKey,
    });
    const gateway = ctx.extAddr.toString();
    return {
      where: `VPC ${vpcId} in ${region} (its first route table), gateway ${gateway}`,
      ensureRoute: (subnet, signal) => ensureTencentRoute(client, vpcId, subnet, gateway, signal),
      async deleteRoute(subnet, signal) {
        const table = await firstTable(client, vpcId, signal);
        const ours = (table.RouteSet ?? []).filter((r) =>
          r.DestinationCidrBlock === subnet.toString() && r.GatewayType === "NORMAL_CVM" &&
          r.GatewayId === gateway
        );
        if (ours.length === 0) return false;
        await client.call(
          "DeleteRoutes",
          { RouteTableId: table.RouteTableId, Routes: ours.map((r) => ({ RouteId: r.RouteId })) },
          signal,
        );
        return true;
      },
    };
  },
};

/** The VPC's first route table (upstream's choice), with its routes. */
async function firstTable(
  client: TencentVpcClient,
  vpcId: string,
  signal?: AbortSignal,
): Promise<{ RouteTableId: string; RouteSet?: TencentRoute[] }> {
  const listed = await client.call(
    "DescribeRouteTables",
    { Filters: [{ Name: "vpc-id", Values: [vpcId] }] },
    signal,
  );
  const tables = (listed.RouteTableSet ?? []) as { RouteTableId: string; RouteSet?: TencentRoute[] }[];
  const table = tables[0];
  if (!table) {
    throw new CloudApiError(
      CLOUD,
      "DescribeRouteTables",
      "ResourceNotFound",
      `VPC ${vpcId} has no route table`,
      false,
    );
  }
  return table;
}

async function ensureTencentRoute(
  client: TencentVpcClient,
  vpcId: string,
  subnet: IP4Net,
  gateway: string,
  signal?: AbortSignal,
): Promise<RouteOutcome> {
  const table = await firstTable(client, vpcId, signal);
  const dst = subnet.toString();
  const same = (table.RouteSet ?? []).filter((r) => r.DestinationCidrBlock === dst);
  const ours = same.find((r) =>
    r.GatewayType === "NORMAL_CVM" && r.GatewayId === gateway && r.Enabled !== false
  );
  if (ours && same.length === 1) return "kept";
  if (same.length > 0) {
    await client.call(
      "DeleteRoutes",
      { RouteTableId: table.RouteTableId, Routes: same.map((r) => ({ RouteId: r.RouteId })) },
      signal,
    );
  }
  await client.call("CreateRoutes", {
    RouteTableId: table.RouteTableId,
    Routes: [{
      DestinationCidrBlock: dst,
      GatewayType: "NORMAL_CVM",
      GatewayId: gateway,
      RouteDescription: "flannel",
    }],
  }, signal);
  return same.length > 0 ? "replaced" : "created";
}

/** The tencent-vpc backend factory. */
export const tencentVpcBackend = createCloudRouteBackend(tencentVpcProvider);

/**
 * A fake of what the tencent-vpc backend talks to, on 127.0.0.1: the instance metadata service
 * (`/latest/meta-data/…`, plain text, 404 for unknown paths) and the VPC API 3.0 endpoint.
 *
 * Faithful where it matters: every API request must carry a TC3-HMAC-SHA256 signature that the
 * fake recomputes with its own copy of the secret (a wrong one is `AuthFailure.SignatureFailure`,
 * an unknown SecretId `AuthFailure.SecretIdNotFound`, a timestamp more than 5 minutes off
 * `AuthFailure.SignatureExpire`); errors come back as Tencent sends them, HTTP 200 with
 * `{"Response":{"Error":{"Code","Message"},"RequestId"}}`; route tables are state (RouteId
 * counters, a duplicate destination refused with `InvalidParameterValue.Duplicate`). Tests can make
 * the next calls fail (`failNext`) or deny an action (`deny`), and read every request.
 */
import { signTc3 } from "../../../src/backends/cloud/tencent_vpc.ts";

export interface FakeRoute {
  DestinationCidrBlock: string;
  GatewayType: string;
  GatewayId: string;
  RouteId: number;
  Enabled: boolean;
  RouteDescription: string;
}

export interface FakeRouteTable {
  RouteTableId: string;
  VpcId: string;
  RouteSet: FakeRoute[];
}

export interface TencentRequest {
  action: string;
  region: string;
  body: Record<string, unknown>;
}

export class FakeTencentCloud {
  readonly secretId = "AKIDfakeflannel0000000000000000000000";
  readonly secretKey = "fakeflannelsecretkey000000000000";
  region = "ap-guangzhou";
  mac = "52:54:00:ab:cd:ef";
  vpcId = "vpc-2at5y1pn";
  readonly tables: FakeRouteTable[] = [
    { RouteTableId: "rtb-main0001", VpcId: "vpc-2at5y1pn", RouteSet: [] },
    { RouteTableId: "rtb-other002", VpcId: "vpc-2at5y1pn", RouteSet: [] },
  ];
  readonly requests: TencentRequest[] = [];
  /** Codes to answer the next API calls with, in order. */
  failNext: string[] = [];
  /** Actions answered with `UnauthorizedOperation` (a CAM policy without them). */
  readonly deny = new Set<string>();
  #nextRouteId = 100;
  #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;

  /** Listens on `hostname` (127.0.0.1; the e2e test runs it in the cluster's switch namespace). */
  constructor(hostname = "127.0.0.1") {
    this.#server = Deno.serve({ hostname, port: 0, onListen: () => {} }, (req) => this.#handle(req));
    this.url = `http://${hostname}:${this.#server.addr.port}`;
  }

  /** The environment a daemon needs to use this fake. */
  env(): Record<string, string> {
    return {
      ACCESS_KEY_ID: this.secretId,
      ACCESS_KEY_SECRET: this.secretKey,
      TENCENTCLOUD_VPC_ENDPOINT: this.url,
      TENCENTCLOUD_METADATA_ENDPOINT: this.url,
    };
  }

  /** The routes of the first table, as `dst -> type:gateway[ disabled]` lines. */
  routes(table = 0): string[] {
    return this.tables[table]!.RouteSet.map((r) =>
      `${r.DestinationCidrBlock} -> ${r.GatewayType}:${r.GatewayId}${r.Enabled ? "" : " disabled"}`
    );
  }

  addRoute(
    table: number,
    r: Omit<FakeRoute, "RouteId" | "RouteDescription"> & { RouteDescription?: string },
  ): void {
    this.tables[table]!.RouteSet.push({ RouteDescription: "", ...r, RouteId: this.#nextRouteId++ });
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (req.method === "GET" && url.pathname.startsWith("/latest/meta-data/")) {
      const path = url.pathname.slice("/latest/meta-data/".length);
      const values: Record<string, string> = {
        "placement/region": this.region,
        mac: this.mac,
        [`network/interfaces/macs/${this.mac}/vpc-id`]: this.vpcId,
      };
      const v = values[path];
      return v === undefined ? new Response("Not Found", { status: 404 }) : new Response(v);
    }
    if (req.method !== "POST" || url.pathname !== "/") return new Response("Not Found", { status: 404 });
    const body = await req.text();
    const action = req.headers.get("X-TC-Action") ?? "";
    const error = (code: string, message: string) =>
      Response.json({
        Response: { Error: { Code: code, Message: message }, RequestId: crypto.randomUUID() },
      });
    const auth = req.headers.get("Authorization") ?? "";
    const m =
      /^TC3-HMAC-SHA256 Credential=([^/]+)\/(\d{4}-\d{2}-\d{2})\/vpc\/tc3_request, SignedHeaders=content-type;host, Signature=([0-9a-f]{64})$/
        .exec(auth);
    if (!m) return error("AuthFailure.InvalidAuthorization", "Authorization header format error.");
    if (m[1] !== this.secretId) return error("AuthFailure.SecretIdNotFound", "The SecretId is not found.");
    const timestamp = Number(req.headers.get("X-TC-Timestamp"));
    if (!Number.isFinite(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > 300) {
      return error(
        "AuthFailure.SignatureExpire",
        "Signature expired. Timestamp and server time are not in sync.",
      );
    }
    const want = await signTc3({
      secretId: this.secretId,
      secretKey: this.secretKey,
      service: "vpc",
      host: req.headers.get("Host") ?? "",
      contentType: req.headers.get("Content-Type") ?? "",
      payload: body,
      timestamp,
    });
    if (want !== auth) {
      return error("AuthFailure.SignatureFailure", "The provided credentials could not be validated.");
    }
    if (req.headers.get("X-TC-Version") !== "2017-03-12") {
      return error("InvalidParameterValue", `The value of Version is invalid.`);
    }
    let params: Record<string, unknown>;
    try {
      params = JSON.parse(body);
    } catch {
      return error("InvalidParameter", "The request body is not valid JSON.");
    }
    this.requests.push({ action, region: req.headers.get("X-TC-Region") ?? "", body: params });
    const fail = this.failNext.shift();
    if (fail) return error(fail, `${fail} (injected by the test)`);
    if (this.deny.has(action)) {
      return error("UnauthorizedOperation", `You are not authorized to perform operation (vpc:${action}).`);
    }
    const ok = (r: Record<string, unknown>) =>
      Response.json({ Response: { ...r, RequestId: crypto.randomUUID() } });
    const table = (id: unknown) => this.tables.find((t) => t.RouteTableId === id);
    switch (action) {
      case "DescribeRouteTables": {
        const filters = (params.Filters ?? []) as { Name: string; Values: string[] }[];
        const vpc = filters.find((f) => f.Name === "vpc-id")?.Values;
        const set = this.tables.filter((t) => !vpc || vpc.includes(t.VpcId));
        return ok({ TotalCount: set.length, RouteTableSet: structuredClone(set) });
      }
      case "CreateRoutes": {
        const t = table(params.RouteTableId);
        if (!t) return error("ResourceNotFound", `The route table ${params.RouteTableId} does not exist.`);
        const routes = (params.Routes ?? []) as Partial<FakeRoute>[];
        for (const r of routes) {
          if (!r.DestinationCidrBlock || !r.GatewayType || !r.GatewayId) {
            return error(
              "MissingParameter",
              "Routes.DestinationCidrBlock, GatewayType and GatewayId are required.",
            );
          }
          if (t.RouteSet.some((x) => x.DestinationCidrBlock === r.DestinationCidrBlock)) {
            return error(
              "InvalidParameterValue.Duplicate",
              `Route ${r.DestinationCidrBlock} already exists.`,
            );
          }
        }
        for (const r of routes) {
          this.addRoute(this.tables.indexOf(t), {
            DestinationCidrBlock: r.DestinationCidrBlock!,
            GatewayType: r.GatewayType!,
            GatewayId: r.GatewayId!,
            Enabled: true,
            RouteDescription: r.RouteDescription ?? "",
          });
        }
        return ok({ TotalCount: 1, RouteTableSet: [structuredClone(t)] });
      }
      case "DeleteRoutes": {
        const t = table(params.RouteTableId);
        if (!t) return error("ResourceNotFound", `The route table ${params.RouteTableId} does not exist.`);
        const ids = ((params.Routes ?? []) as { RouteId?: number }[]).map((r) => r.RouteId);
        for (const id of ids) {
          if (!t.RouteSet.some((r) => r.RouteId === id)) {
            return error("ResourceNotFound", `The route ${id} does not exist.`);
          }
        }
        t.RouteSet = t.RouteSet.filter((r) => !ids.includes(r.RouteId));
        return ok({ RouteSet: [] });
      }
      default:
        return error("InvalidAction", `The action ${action} is not supported by this fake.`);
    }
  }
}

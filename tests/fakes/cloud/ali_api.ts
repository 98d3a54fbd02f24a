/**
 * A fake of Alibaba Cloud for the ali-vpc backend, on 127.0.0.1: the ECS metadata service
 * (`/latest/meta-data/…`, and `PUT /latest/api/token` for hardened mode) and the VPC OpenAPI in RPC
 * style (`GET /?Action=…`), on one port.
 *
 * Faithful in what the backend touches: the common parameters are checked (Version, Format,
 * SignatureMethod/Version, a fresh SignatureNonce, a well-formed Timestamp) and the signature is
 * recomputed here, by code independent of src/, with the fake's own secret (SignatureDoesNotMatch
 * with the server's string to sign otherwise); route entries are state that changes over polls as
 * the real VRouter's do (CreateRouteEntry → `Pending` for a few DescribeRouteEntryList calls →
 * `Available`; DeleteRouteEntry → `Deleting` → gone); changes are refused with Alibaba's codes
 * (RouterEntryConflict.Duplicated, IncorrectRouteEntryStatus on a non-Available entry,
 * OperationConflict while another entry of the table changes); errors are HTTP 4xx/5xx with
 * `{"RequestId","HostId","Code","Message","Recommend"}`. A test can make it throttle, deny
 * (Forbidden.RAM) or fail with 5xx, and reads the recorded requests.
 *
 * Error codes and messages follow Alibaba's documentation and SDKs where they show them; the
 * `Missing<Param>` codes and the exact HTTP status of each error are our best reading.
 */

/** A route entry as the fake keeps it. */
export interface FakeRouteEntry {
  RouteEntryId: string;
  RouteTableId: string;
  DestinationCidrBlock: string;
  Type: string;
  Status: "Pending" | "Available" | "Deleting";
  NextHopType: string;
  NextHopId: string;
  /** DescribeRouteEntryList calls left before the next transition. */
  polls: number;
}

export interface FakeAliOptions {
  /** Where to listen (127.0.0.1; the e2e test serves it in the cluster's switch namespace). */
  hostname?: string;
  accessKeyId?: string;
  accessKeySecret?: string;
  region?: string;
  instanceId?: string;
  vpcId?: string;
  vRouterId?: string;
  routeTableId?: string;
  /** Polls an entry stays Pending (and Deleting); default 2. */
  transitionPolls?: number;
  /** Hardened mode only: metadata GETs need the token from `PUT /latest/api/token`. */
  requireToken?: boolean;
  /** DescribeRouteEntryList page size (NextToken beyond it); default 50. */
  entryPageSize?: number;
}

/** One recorded VPC API request (decoded parameters, Signature included). */
export interface AliRecordedCall {
  action: string;
  params: Record<string, string>;
  status: number;
  code?: string;
}

const UNRESERVED = new Set(
  [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"].map((c) => c.charCodeAt(0)),
);

/** The documented encoding, byte by byte (kept apart from src/backends/cloud/ali_sign.ts on purpose). */
function encode(s: string): string {
  return [...new TextEncoder().encode(s)]
    .map((
      b,
    ) => (UNRESERVED.has(b) ? String.fromCharCode(b) : "%" + b.toString(16).toUpperCase().padStart(2, "0")))
    .join("");
}

async function expectedSignature(secret: string, method: string, params: Record<string, string>) {
  const pairs = Object.entries(params)
    .filter(([k]) => k !== "Signature")
    .map(([k, v]) => [encode(k), encode(v)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const toSign = `${method}&%2F&${encode(pairs.map(([k, v]) => `${k}=${v}`).join("&"))}`;
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret + "&"),
    { name: "HMAC", hash: "SHA-1" },
    false,
    ["sign"],
  );
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(toSign)));
  return { toSign, signature: btoa(String.fromCharCode(...mac)) };
}

/** Raw query → parameters, percent-decoded only (a `+` stays a `+`, as RFC 3986 has it). */
function parseQuery(search: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of search.replace(/^\?/, "").split("&")) {
    if (!part) continue;
    const i = part.indexOf("=");
    const k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
    out[k] = i < 0 ? "" : decodeURIComponent(part.slice(i + 1));
  }
  return out;
}

class Refusal {
  constructor(readonly status: number, readonly code: string, readonly message: string) {}
}

export class FakeAliCloud {
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly region: string;
  readonly instanceId: string;
  readonly vpcId: string;
  readonly vRouterId: string;
  readonly routeTableId: string;
  transitionPolls: number;
  requireToken: boolean;
  entryPageSize: number;
  /** Behave as if DescribeRouteEntryList ignored its DestinationCidrBlock filter. */
  ignoreDestinationFilter = false;
  /** Route entries of every table, by RouteEntryId. */
  readonly entries = new Map<string, FakeRouteEntry>();
  readonly calls: AliRecordedCall[] = [];
  /** Metadata requests: `METHOD path` (and ` token` when one was sent). */
  readonly metadata: string[] = [];
  /** Requests to throttle (Throttling.User), by action (`*`: any): how many are left. */
  readonly #throttled = new Map<string, number>();
  /** The next N API requests fail with HTTP 503 ServiceUnavailable. */
  failNext = 0;
  /** Actions refused with Forbidden.RAM (the RAM user lacks the permission). */
  readonly denied = new Set<string>();
  #server!: Deno.HttpServer<Deno.NetAddr>;
  #nonces = new Set<string>();
  #seq = 0;
  #token = "";

  private constructor(o: FakeAliOptions) {
    this.accessKeyId = o.accessKeyId ?? "LTAI5tFakeKeyId";
    this.accessKeySecret = o.accessKeySecret ?? "fake-secret";
    this.region = o.region ?? "cn-hangzhou";
    this.instanceId = o.instanceId ?? "i-bp1fake0node0a";
    this.vpcId = o.vpcId ?? "vpc-bp1fake0vpc";
    this.vRouterId = o.vRouterId ?? "vrt-bp1fake0router";
    this.routeTableId = o.routeTableId ?? "vtb-bp1fake0system";
    this.transitionPolls = o.transitionPolls ?? 2;
    this.requireToken = o.requireToken ?? false;
    this.entryPageSize = o.entryPageSize ?? 50;
  }

  static start(o: FakeAliOptions = {}): Promise<FakeAliCloud> {
    const f = new FakeAliCloud(o);
    return new Promise((resolve) => {
      f.#server = Deno.serve(
        { hostname: o.hostname ?? "127.0.0.1", port: 0, onListen: () => resolve(f) },
        (req) => f.#handle(req),
      );
    });
  }

  get url(): string {
    return `http://${this.#server.addr.hostname}:${this.#server.addr.port}`;
  }

  close(): Promise<void> {
    return this.#server.shutdown();
  }

  /** Throttles the next `count` requests of `action` (default: of any action). */
  throttle(count: number, action = "*"): void {
    this.#throttled.set(action, count);
  }

  /** Adds an entry directly (another node's, a system route, one mid-change). */
  seed(
    dst: string,
    nextHopId: string,
    o: { status?: FakeRouteEntry["Status"]; type?: string; table?: string } = {},
  ): FakeRouteEntry {
    const e: FakeRouteEntry = {
      RouteEntryId: `rte-fake${++this.#seq}`,
      RouteTableId: o.table ?? this.routeTableId,
      DestinationCidrBlock: dst,
      Type: o.type ?? "Custom",
      Status: o.status ?? "Available",
      NextHopType: o.type === "System" ? "local" : "Instance",
      NextHopId: nextHopId,
      polls: this.transitionPolls,
    };
    this.entries.set(e.RouteEntryId, e);
    return e;
  }

  /** Removes an entry at once, as someone using the console would (eventually). */
  remove(dst: string): void {
    for (const [id, e] of this.entries) if (e.DestinationCidrBlock === dst) this.entries.delete(id);
  }

  /** The route entries, one sorted line each: `vtb-… 10.5.1.0/24 -> Instance i-… Available`. */
  render(): string[] {
    return [...this.entries.values()]
      .map((e) =>
        `${e.RouteTableId} ${e.DestinationCidrBlock} -> ${e.NextHopType} ${e.NextHopId} ${e.Status}`
      )
      .sort();
  }

  /** The actions called, in order. */
  actions(): string[] {
    return this.calls.map((c) => c.action);
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/latest/")) return this.#metadata(req, url);
    const params = parseQuery(url.search);
    const call: AliRecordedCall = { action: params.Action ?? "", params, status: 200 };
    this.calls.push(call);
    const requestId = crypto.randomUUID().toUpperCase();
    try {
      if (req.method !== "GET" && req.method !== "POST") {
        throw new Refusal(400, "UnsupportedHTTPMethod", "This http method is not supported.");
      }
      await this.#authenticate(req.method, params);
      const body = this.#act(params);
      return Response.json({ RequestId: requestId, ...body });
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      call.status = e.status;
      call.code = e.code;
      return Response.json({
        RequestId: requestId,
        HostId: `vpc.${this.region}.aliyuncs.com`,
        Code: e.code,
        Message: e.message,
        Recommend: `https://api.aliyun.com/troubleshoot?q=${e.code}&product=Vpc`,
      }, { status: e.status });
    }
  }

  #metadata(req: Request, url: URL): Response {
    const token = req.headers.get("X-aliyun-ecs-metadata-token");
    this.metadata.push(`${req.method} ${url.pathname}${token ? " token" : ""}`);
    if (url.pathname === "/latest/api/token") {
      if (req.method !== "PUT") return new Response("Method Not Allowed", { status: 405 });
      const ttl = Number(req.headers.get("X-aliyun-ecs-metadata-token-ttl-seconds"));
      if (!(ttl >= 1 && ttl <= 21600)) return new Response("Bad Request", { status: 400 });
      this.#token = `AQAEAFake${++this.#seq}`;
      return new Response(this.#token);
    }
    if (this.requireToken && token !== this.#token) return new Response("Forbidden", { status: 403 });
    const values: Record<string, string> = {
      "/latest/meta-data/region-id": this.region,
      "/latest/meta-data/instance-id": this.instanceId,
      "/latest/meta-data/vpc-id": this.vpcId,
    };
    const v = values[url.pathname];
    return v === undefined ? new Response("Not Found", { status: 404 }) : new Response(v);
  }

  async #authenticate(method: string, p: Record<string, string>): Promise<void> {
    for (
      const name of ["AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"]
    ) {
      if (!p[name]) throw new Refusal(400, `Missing${name}`, `${name} is mandatory for this action.`);
    }
    if (!p.Signature) {
      throw new Refusal(
        400,
        "IncompleteSignature",
        "The request signature does not conform to Aliyun standards.",
      );
    }
    if (p.SignatureMethod !== "HMAC-SHA1" || p.SignatureVersion !== "1.0") {
      throw new Refusal(400, "InvalidSignatureMethod", "Specified signature method is not supported.");
    }
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(p.Timestamp!)) {
      throw new Refusal(
        400,
        "InvalidTimeStamp.Format",
        "Specified time stamp or date value is not well formatted.",
      );
    }
    if (Math.abs(Date.parse(p.Timestamp!) - Date.now()) > 15 * 60_000) {
      throw new Refusal(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.");
    }
    if (p.AccessKeyId !== this.accessKeyId) {
      throw new Refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.");
    }
    const { toSign, signature } = await expectedSignature(this.accessKeySecret, method, p);
    if (p.Signature !== signature) {
      throw new Refusal(
        400,
        "SignatureDoesNotMatch",
        `Specified signature is not matched with our calculation. server string to sign is:${toSign}`,
      );
    }
    if (this.#nonces.has(p.SignatureNonce!)) {
      throw new Refusal(400, "SignatureNonceUsed", "Specified signature nonce was used already.");
    }
    this.#nonces.add(p.SignatureNonce!);
    if (p.Version !== "2016-04-28") {
      throw new Refusal(400, "InvalidVersion", "Specified parameter Version is not valid.");
    }
    if (p.Format !== "JSON") throw new Refusal(400, "InvalidParameter", "The specified Format is not valid.");
    const key = [p.Action ?? "", "*"].find((k) => (this.#throttled.get(k) ?? 0) > 0);
    if (key) {
      this.#throttled.set(key, this.#throttled.get(key)! - 1);
      throw new Refusal(400, "Throttling.User", "Request was denied due to user flow control.");
    }
    if (this.failNext > 0) {
      this.failNext--;
      throw new Refusal(
        503,
        "ServiceUnavailable",
        "The request has failed due to a temporary failure of the server.",
      );
    }
    if (this.denied.has(p.Action ?? "")) {
      throw new Refusal(
        403,
        "Forbidden.RAM",
        "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
      );
    }
  }

  #need(p: Record<string, string>, ...names: string[]): void {
    for (const n of names) {
      if (!p[n]) throw new Refusal(400, `Missing${n}`, `${n} is mandatory for this action.`);
    }
  }

  #act(p: Record<string, string>): Record<string, unknown> {
    this.#need(p, "RegionId");
    if (p.RegionId !== this.region) {
      throw new Refusal(400, "InvalidRegionId.NotFound", "The specified RegionId does not exist.");
    }
    switch (p.Action) {
      case "DescribeVpcs":
        return this.#describeVpcs(p);
      case "DescribeRouteTableList":
        return this.#describeRouteTableList(p);
      case "DescribeRouteEntryList":
        return this.#describeRouteEntryList(p);
      case "CreateRouteEntry":
        return this.#createRouteEntry(p);
      case "DeleteRouteEntry":
        return this.#deleteRouteEntry(p);
      default:
        throw new Refusal(
          404,
          "InvalidAction.NotFound",
          "Specified api is not found, please check your url and method.",
        );
    }
  }

  #describeVpcs(p: Record<string, string>) {
    const vpc = {
      VpcId: this.vpcId,
      RegionId: this.region,
      Status: "Available",
      VpcName: "fake",
      CidrBlock: "192.168.0.0/16",
      VRouterId: this.vRouterId,
      RouterTableIds: { RouterTableIds: [this.routeTableId] },
      IsDefault: false,
    };
    const list = !p.VpcId || p.VpcId === this.vpcId ? [vpc] : [];
    return { TotalCount: list.length, PageNumber: 1, PageSize: 10, Vpcs: { Vpc: list } };
  }

  #describeRouteTableList(p: Record<string, string>) {
    const tables = [
      { RouteTableId: "vtb-bp1fake0custom", RouteTableType: "Custom" },
      { RouteTableId: this.routeTableId, RouteTableType: "System" },
    ].map((t) => ({
      ...t,
      VpcId: this.vpcId,
      RouterId: this.vRouterId,
      RouterType: "VRouter",
      Status: "Available",
      RouteTableName: "",
    })).filter((t) =>
      (!p.VpcId || p.VpcId === t.VpcId) && (!p.RouterId || p.RouterId === t.RouterId) &&
      (!p.RouteTableId || p.RouteTableId === t.RouteTableId)
    );
    const size = Number(p.PageSize ?? 10);
    const page = Number(p.PageNumber ?? 1);
    return {
      TotalCount: tables.length,
      PageNumber: page,
      PageSize: size,
      RouterTableList: { RouterTableListType: tables.slice((page - 1) * size, page * size) },
    };
  }

  #table(p: Record<string, string>): FakeRouteEntry[] {
    this.#need(p, "RouteTableId");
    if (p.RouteTableId !== this.routeTableId && p.RouteTableId !== "vtb-bp1fake0custom") {
      throw new Refusal(404, "InvalidRouteTableId.NotFound", "Specified route table does not exist.");
    }
    return [...this.entries.values()].filter((e) => e.RouteTableId === p.RouteTableId);
  }

  /** One poll's worth of progress of every changing entry. */
  #tick(): void {
    for (const [id, e] of this.entries) {
      if (e.Status === "Available" || --e.polls > 0) continue;
      if (e.Status === "Pending") e.Status = "Available";
      else this.entries.delete(id);
    }
  }

  #describeRouteEntryList(p: Record<string, string>) {
    const table = this.#table(p);
    this.#tick();
    const entries = table
      .filter((e) => this.entries.has(e.RouteEntryId))
      .filter((e) =>
        this.ignoreDestinationFilter || !p.DestinationCidrBlock ||
        e.DestinationCidrBlock === p.DestinationCidrBlock
      )
      .filter((e) => !p.RouteEntryId || e.RouteEntryId === p.RouteEntryId);
    const from = p.NextToken ? Number(p.NextToken.replace(/^page-/, "")) : 0;
    if (!Number.isInteger(from) || from < 0) {
      throw new Refusal(400, "IllegalParam.NextToken", "The specified NextToken is invalid.");
    }
    const to = from + this.entryPageSize;
    const page = entries.slice(from, to).map((e) => ({
      RouteEntryId: e.RouteEntryId,
      RouteTableId: e.RouteTableId,
      DestinationCidrBlock: e.DestinationCidrBlock,
      Type: e.Type,
      Status: e.Status,
      IpVersion: "ipv4",
      RouteEntryName: "",
      Description: "",
      NextHops: {
        NextHop: [{ NextHopType: e.NextHopType, NextHopId: e.NextHopId, Enabled: 1, Weight: 0 }],
      },
    }));
    return {
      ...(to < entries.length ? { NextToken: `page-${to}` } : {}),
      RouteEntrys: { RouteEntry: page },
    };
  }

  #busy(table: FakeRouteEntry[]): void {
    if (table.some((e) => e.Status !== "Available")) {
      throw new Refusal(
        400,
        "OperationConflict",
        "Request was denied due to conflict with a previous request, please try again later.",
      );
    }
  }

  #createRouteEntry(p: Record<string, string>) {
    const table = this.#table(p);
    this.#need(p, "DestinationCidrBlock");
    if (table.some((e) => e.DestinationCidrBlock === p.DestinationCidrBlock)) {
      throw new Refusal(400, "RouterEntryConflict.Duplicated", "Specified CIDR block is already exists.");
    }
    this.#busy(table);
    const type = p.NextHopType ?? "Instance";
    if (type !== "Instance") {
      throw new Refusal(400, "InvalidNextHopType", "Specified NextHopType is not valid.");
    }
    if (p.NextHopId !== this.instanceId) {
      throw new Refusal(404, "InvalidInstanceId.NotFound", "Specified instance does not exist.");
    }
    const e = this.seed(p.DestinationCidrBlock!, p.NextHopId, { status: "Pending", table: p.RouteTableId! });
    return { RouteEntryId: e.RouteEntryId };
  }

  #deleteRouteEntry(p: Record<string, string>) {
    const table = this.#table(p);
    const e = table.find((x) =>
      p.RouteEntryId
        ? x.RouteEntryId === p.RouteEntryId
        : x.DestinationCidrBlock === p.DestinationCidrBlock && (!p.NextHopId || x.NextHopId === p.NextHopId)
    );
    if (!e) throw new Refusal(404, "InvalidRouteEntry.NotFound", "Specified route entry does not exist.");
    if (e.Type !== "Custom") {
      throw new Refusal(403, "Forbbiden", "Operation is forbidden for this route entry.");
    }
    if (e.Status !== "Available") {
      throw new Refusal(
        400,
        "IncorrectRouteEntryStatus",
        "The current status of the route entry does not support this operation.",
      );
    }
    this.#busy(table);
    e.Status = "Deleting";
    e.polls = this.transitionPolls;
    return {};
  }
}

/**
 * The `ali-vpc` backend: Alibaba Cloud's VPC router carries the pod subnets.
 *
 * Design notes. What goes to the cloud per node: one custom route entry in the VPC's system route
 * table (the one its VRouter owns),
 *
 *   DestinationCidrBlock <our lease subnet>  NextHopType Instance  NextHopId <our ECS instance id>
 *
 * and nothing into the kernel; peers' leases are not looked at, since every node routes its own
 * subnet. As upstream (removed from flannel in 2022): credentials from the backend's
 * `AccessKeyID`/`AccessKeySecret` or the environment's `ACCESS_KEY_ID`/`ACCESS_KEY_SECRET`;
 * region, instance and VPC from the ECS metadata service; the route table found through the VPC's
 * VRouter. The lease carries PublicIP only.
 *
 * Route entries are asynchronous in Alibaba's VPC: CreateRouteEntry returns at once and the entry
 * is `Pending` until the VRouter has it (`Available`); DeleteRouteEntry leaves it `Deleting` until
 * it is gone; and while an entry of the table is changing, other changes fail with
 * `IncorrectRouteEntryStatus`/`OperationConflict`. So every change is followed by polling
 * DescribeRouteEntryList (backoff, deadline) until the entry is in the state we want, and only
 * then is the route reported as in place (upstream waited for all entries of the table). An entry
 * for our subnet that points at another instance (this node's subnet used to be another node's) is
 * deleted, waited out, and ours created: "replaced". Entries for other destinations, and
 * non-custom entries (System, BGP, CEN), are never touched. Uninstall (`deleteRoute`) deletes our
 * entry, after waiting out a change in progress, and waits until it is gone; an entry for the
 * subnet that points elsewhere is left alone.
 *
 * Better than upstream (see route_backend.ts): the entry is checked again every minute and put back
 * if it went; errors keep Alibaba's code (`Forbidden.RAM`, `SignatureDoesNotMatch`) and say which
 * are worth retrying; the metadata service is asked in hardened mode (a session token) when it
 * offers one, so instances that require IMDSv2 work too.
 *
 * The API is the VPC OpenAPI, RPC style: `GET https://vpc.<region>.aliyuncs.com/?Action=…` with
 * version 2016-04-28, JSON format, signed as in ali_sign.ts. Errors are HTTP 4xx/5xx with
 * `{"RequestId","HostId","Code","Message"}`. Two environment variables (ours, not upstream's) move
 * the endpoints, for tests and private endpoints: `ALIBABA_CLOUD_VPC_ENDPOINT` (a base URL) and
 * `ALIBABA_CLOUD_METADATA_ENDPOINT` (default `http://100.100.100.200`). The backend option
 * `RouteTableID` (ours) names the route table when the node's vSwitch uses a custom one.
 *
 * @module
 */
import type { IP4Net } from "../../ip/mod.ts";
import { OptionReader } from "../options.ts";
import { aliSignedQuery, aliTimestamp } from "./ali_sign.ts";
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

/** The VPC API version of the actions used here. */
export const ALI_VPC_VERSION = "2016-04-28";
export const DEFAULT_ALI_METADATA_ENDPOINT = "http://100.100.100.200";
/** Moves the VPC API (a base URL such as `https://vpc-vpc.cn-hangzhou.aliyuncs.com`). */
export const ALI_VPC_ENDPOINT_ENV = "ALIBABA_CLOUD_VPC_ENDPOINT";
/** Moves the metadata service (a base URL; `/latest/meta-data/…` is appended). */
export const ALI_METADATA_ENDPOINT_ENV = "ALIBABA_CLOUD_METADATA_ENDPOINT";
/** Upstream's text when no credentials are configured. */
export const ALI_NO_CREDENTIALS = "ACCESS_KEY_ID and ACCESS_KEY_SECRET must be provided!";
/** How long a route entry may stay Pending (or Deleting) before we give up this attempt. */
export const ROUTE_ENTRY_WAIT_MS = 120_000;
/** Polls of a changing entry: first wait, doubling up to the cap. */
export const ROUTE_ENTRY_POLL_FIRST_MS = 500;
export const ROUTE_ENTRY_POLL_MAX_MS = 5_000;
/** One API request's time limit. */
export const ALI_API_TIMEOUT_MS = 30_000;
/** The metadata token's lifetime: it is only used while the provider opens. */
const METADATA_TOKEN_TTL_S = 300;
const CLOUD = "Alibaba Cloud";
/** The page size of DescribeRouteTableList (its maximum). */
const PAGE_SIZE = 50;
/** A bound on DescribeRouteEntryList pages (a VRouter table holds a few hundred entries). */
const MAX_ENTRY_PAGES = 100;

/**
 * Whether another attempt can succeed. Not: credentials, signatures, permissions, clock skew. Yes:
 * throttling, conflicts with changes in progress, server errors, and anything unknown (the
 * start-up loop then backs off instead of crashing the pod).
 */
export function aliRetryable(code: string, status: number): boolean {
  if (status >= 500) return true;
  return !/^(InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature|Forbidden|Forbbiden|InvalidTimeStamp|UnsupportedSignature|InvalidAction|Missing|InvalidParameter)/
    .test(code);
}

/** What to do about a code, appended to its message. */
function hint(code: string): string {
  if (/^(InvalidAccessKeyId|SignatureDoesNotMatch|IncompleteSignature)/.test(code)) {
    return '; check Backend "AccessKeyID"/"AccessKeySecret" or ACCESS_KEY_ID/ACCESS_KEY_SECRET';
  }
  if (/^Forb+id+en/.test(code)) {
    return "; grant the RAM user vpc:DescribeVpcs, vpc:DescribeRouteTableList, vpc:DescribeRouteEntryList, vpc:CreateRouteEntry and vpc:DeleteRouteEntry";
  }
  if (code.startsWith("InvalidTimeStamp")) return "; check the node's clock";
  return "";
}

/** Options of {@linkcode createAliVpcProvider} (tests shorten the waits). */
export interface AliVpcOptions {
  waitMs?: number;
  pollFirstMs?: number;
  pollMaxMs?: number;
}

/** Calls VPC API actions for one account and region. */
export class AliVpcClient {
  readonly #ctx: Pick<CloudContext, "fetch" | "clock" | "signal">;
  readonly #endpoint: string;
  readonly #region: string;
  readonly #id: string;
  readonly #secret: string;

  constructor(
    ctx: Pick<CloudContext, "fetch" | "clock" | "signal">,
    o: { endpoint: string; region: string; accessKeyId: string; accessKeySecret: string },
  ) {
    this.#ctx = ctx;
    this.#endpoint = o.endpoint.replace(/\/+$/, "");
    this.#region = o.region;
    this.#id = o.accessKeyId;
    this.#secret = o.accessKeySecret;
  }

  /** Runs `action` (RegionId added); the response object, or {@linkcode CloudApiError} with Alibaba's code. */
  async call(
    action: string,
    params: Record<string, string>,
    signal?: AbortSignal,
  ): Promise<Record<string, unknown>> {
    const all: Record<string, string> = {
      RegionId: this.#region,
      ...params,
      Action: action,
      Version: ALI_VPC_VERSION,
      Format: "JSON",
      AccessKeyId: this.#id,
      SignatureMethod: "HMAC-SHA1",
      SignatureVersion: "1.0",
      SignatureNonce: crypto.randomUUID(),
      Timestamp: aliTimestamp(this.#ctx.clock.now()),
    };
    const url = `${this.#endpoint}/?${await aliSignedQuery("GET", all, this.#secret)}`;
    const abort = signal ?? this.#ctx.signal;
    let res: Response;
    let text: string;
    try {
      res = await this.#ctx.fetch(url, {
        signal: AbortSignal.any([abort, AbortSignal.timeout(ALI_API_TIMEOUT_MS)]),
      });
      text = await res.text();
    } catch (e) {
      if (abort.aborted) throw e;
      throw new CloudApiError(CLOUD, action, "NetworkError", `${this.#endpoint}: ${(e as Error).message}`);
    }
    let body: Record<string, unknown> | undefined;
    try {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed;
    } catch {
      // not JSON: reported below
    }
    if (!res.ok) {
      const code = typeof body?.Code === "string" ? body.Code : `HTTP ${res.status}`;
      const message = typeof body?.Message === "string" ? body.Message : text.trim().slice(0, 200);
      const request = typeof body?.RequestId === "string" ? ` (RequestId ${body.RequestId})` : "";
      throw new CloudApiError(
        CLOUD,
        action,
        code,
        `${message.replace(/\s+/g, " ")}${request}${hint(code)}`,
        aliRetryable(code, res.status),
      );
    }
    if (!body) {
      throw new CloudApiError(
        CLOUD,
        action,
        `HTTP ${res.status}`,
        `not a JSON object: ${text.slice(0, 200)}`,
      );
    }
    return body;
  }
}

/** A route entry as DescribeRouteEntryList lists it (the fields used here). */
export interface AliRouteEntry {
  RouteEntryId?: string;
  DestinationCidrBlock?: string;
  /** `Pending`, `Available`, `Modifying`, `Deleting`. */
  Status?: string;
  /** `Custom`, `System`, `BGP`, `CEN`, … */
  Type?: string;
  NextHops?: { NextHop?: { NextHopType?: string; NextHopId?: string }[] };
}

/** `obj.a.b` as an array, `[]` when any step is missing (Alibaba wraps lists: `{"Vpcs":{"Vpc":[…]}}`). */
function list<T>(obj: Record<string, unknown>, outer: string, inner: string): T[] {
  const o = obj[outer];
  const l = o && typeof o === "object" ? (o as Record<string, unknown>)[inner] : undefined;
  return Array.isArray(l) ? (l as T[]) : [];
}

function hops(e: AliRouteEntry) {
  return e.NextHops?.NextHop ?? [];
}

/** Not changing: Available, or gone. */
function settled(e: AliRouteEntry | undefined): boolean {
  return !e || e.Status === "Available";
}

/** The ali-vpc provider, with waits that tests can shorten. */
export function createAliVpcProvider(o: AliVpcOptions = {}): CloudRouteProvider {
  return {
    type: "ali-vpc",
    async open(ctx: CloudContext): Promise<CloudRouter> {
      const opts = new OptionReader(ctx.backend, "error decoding ali-vpc backend config");
      const accessKeyId = opts.string("AccessKeyID") || ctx.env("ACCESS_KEY_ID") || "";
      const accessKeySecret = opts.string("AccessKeySecret") || ctx.env("ACCESS_KEY_SECRET") || "";
      if (!accessKeyId || !accessKeySecret) {
        throw new Error(
          `${ALI_NO_CREDENTIALS} Set Backend "AccessKeyID" and "AccessKeySecret" in net-conf.json, or the ACCESS_KEY_ID and ACCESS_KEY_SECRET environment variables`,
        );
      }
      const { region, instanceId, vpcId } = await readMetadata(ctx);
      const client = new AliVpcClient(ctx, {
        endpoint: ctx.env(ALI_VPC_ENDPOINT_ENV) || `https://vpc.${region}.aliyuncs.com`,
        region,
        accessKeyId,
        accessKeySecret,
      });
      const tableId = opts.string("RouteTableID") || await systemRouteTable(client, vpcId, ctx.signal);
      const routes = new RouteEntries(client, ctx, tableId, instanceId, o);
      return {
        where: `VPC ${vpcId} in ${region}, route table ${tableId}, next hop instance ${instanceId}`,
        ensureRoute: (subnet, signal) => routes.ensure(subnet, signal ?? ctx.signal),
        deleteRoute: (subnet, signal) => routes.remove(subnet, signal ?? ctx.signal),
      };
    },
  };
}

/** The ali-vpc provider. */
export const aliVpcProvider: CloudRouteProvider = createAliVpcProvider();

/** The ali-vpc backend factory. */
export const aliVpcBackend = createCloudRouteBackend(aliVpcProvider);

/** Region, instance and VPC from the metadata service, in hardened mode when it offers a token. */
async function readMetadata(ctx: CloudContext) {
  const base = (ctx.env(ALI_METADATA_ENDPOINT_ENV) || DEFAULT_ALI_METADATA_ENDPOINT).replace(/\/+$/, "");
  let headers: Record<string, string> = {};
  try {
    const res = await ctx.fetch(`${base}/latest/api/token`, {
      method: "PUT",
      headers: { "X-aliyun-ecs-metadata-token-ttl-seconds": String(METADATA_TOKEN_TTL_S) },
      signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(METADATA_TIMEOUT_MS)]),
    });
    const token = (await res.text()).trim();
    if (res.ok && token) headers = { "X-aliyun-ecs-metadata-token": token };
  } catch {
    // Normal mode; if the service is unreachable, the GETs below say so.
  }
  const get = (path: string, what: string) =>
    metadataGet(ctx, CLOUD, `${base}/latest/meta-data/${path}`, what, { headers });
  return {
    region: await get("region-id", "the region"),
    instanceId: await get("instance-id", "the instance id"),
    vpcId: await get("vpc-id", "the VPC id"),
  };
}

/** The VPC's VRouter (DescribeVpcs), then that VRouter's system route table (DescribeRouteTableList). */
async function systemRouteTable(client: AliVpcClient, vpcId: string, signal: AbortSignal): Promise<string> {
  const vpcs = await client.call("DescribeVpcs", { VpcId: vpcId }, signal);
  const vpc = list<{ VpcId?: string; VRouterId?: string }>(vpcs, "Vpcs", "Vpc").find((v) =>
    v.VpcId === vpcId
  );
  if (!vpc?.VRouterId) {
    throw new CloudApiError(
      CLOUD,
      "DescribeVpcs",
      "InvalidVpcId.NotFound",
      `VPC ${vpcId} (from the metadata service) is not listed or has no VRouter; check the region and the RAM user's account`,
      false,
    );
  }
  for (let page = 1;; page++) {
    const r = await client.call("DescribeRouteTableList", {
      VpcId: vpcId,
      RouterType: "VRouter",
      RouterId: vpc.VRouterId,
      PageSize: String(PAGE_SIZE),
      PageNumber: String(page),
    }, signal);
    const tables = list<{ RouteTableId?: string; RouteTableType?: string }>(
      r,
      "RouterTableList",
      "RouterTableListType",
    );
    const system = tables.find((t) => t.RouteTableType === "System" && t.RouteTableId);
    if (system) return system.RouteTableId!;
    const total = typeof r.TotalCount === "number" ? r.TotalCount : 0;
    if (tables.length === 0 || page * PAGE_SIZE >= total) break;
  }
  throw new CloudApiError(
    CLOUD,
    "DescribeRouteTableList",
    "InvalidRouteTableId.NotFound",
    `VRouter ${vpc.VRouterId} of VPC ${vpcId} has no system route table; set Backend "RouteTableID"`,
    false,
  );
}

/** Our subnet's entry in one route table. */
class RouteEntries {
  readonly #waitMs: number;
  readonly #pollFirstMs: number;
  readonly #pollMaxMs: number;

  constructor(
    readonly client: AliVpcClient,
    readonly ctx: CloudContext,
    readonly tableId: string,
    readonly instanceId: string,
    o: AliVpcOptions,
  ) {
    this.#waitMs = o.waitMs ?? ROUTE_ENTRY_WAIT_MS;
    this.#pollFirstMs = o.pollFirstMs ?? ROUTE_ENTRY_POLL_FIRST_MS;
    this.#pollMaxMs = o.pollMaxMs ?? ROUTE_ENTRY_POLL_MAX_MS;
  }

  /** The entries whose destination is exactly `dst` (0 or 1 in a VRouter table). */
  async find(dst: string, signal: AbortSignal): Promise<AliRouteEntry | undefined> {
    // The server filters by destination; the pages are followed anyway, so a filter it ignored
    // cannot hide our entry behind NextToken.
    let next = "";
    for (let page = 0; page < MAX_ENTRY_PAGES; page++) {
      const params: Record<string, string> = { RouteTableId: this.tableId, DestinationCidrBlock: dst };
      if (next) params.NextToken = next;
      const r = await this.client.call("DescribeRouteEntryList", params, signal);
      const e = list<AliRouteEntry>(r, "RouteEntrys", "RouteEntry").find((e) =>
        e.DestinationCidrBlock === dst
      );
      next = typeof r.NextToken === "string" ? r.NextToken : "";
      if (e || !next) return e;
    }
    return undefined;
  }

  ours(e: AliRouteEntry): boolean {
    const h = hops(e);
    return h.length === 1 && h[0]!.NextHopType === "Instance" && h[0]!.NextHopId === this.instanceId;
  }

  /** Polls until `done(entry)`; the entry then. Times out with a retryable error. */
  async wait(
    dst: string,
    signal: AbortSignal,
    what: string,
    done: (e: AliRouteEntry | undefined) => boolean,
  ): Promise<AliRouteEntry | undefined> {
    const { clock } = this.ctx;
    const deadline = clock.now() + this.#waitMs;
    let pause = this.#pollFirstMs;
    let e: AliRouteEntry | undefined;
    for (;;) {
      e = await this.find(dst, signal);
      if (done(e)) return e;
      if (clock.now() + pause > deadline) break;
      await clock.sleep(pause, signal);
      pause = Math.min(pause * 2, this.#pollMaxMs);
    }
    throw new CloudApiError(
      CLOUD,
      "DescribeRouteEntryList",
      "RouteEntryNotReady",
      `the route entry for ${dst} in ${this.tableId} is ${e?.Status ?? "absent"}, not ${what}, after ${
        Math.round(this.#waitMs / 1000)
      }s`,
    );
  }

  async ensure(subnet: IP4Net, signal: AbortSignal): Promise<RouteOutcome> {
    const dst = subnet.toString();
    let e = await this.find(dst, signal);
    // Something is changing it (our earlier attempt, or someone else): let that finish first.
    if (e && e.Status !== "Available") e = await this.wait(dst, signal, "Available or gone", settled);
    if (e && this.ours(e)) return "kept";
    if (e) {
      if (e.Type && e.Type !== "Custom") {
        throw new CloudApiError(
          CLOUD,
          "DescribeRouteEntryList",
          "RouteEntryNotCustom",
          `${this.tableId} has a ${e.Type} route for ${dst}, which flannel must not replace; make Network not overlap the VPC's vSwitches and routes`,
          false,
        );
      }
      await this.delete(dst, e, signal);
      await this.wait(dst, signal, "gone", (x) => !x);
    }
    await this.create(dst, signal);
    return e ? "replaced" : "created";
  }

  /**
   * Uninstall: deletes our entry for `subnet` and waits until it is gone; true when there was one.
   * An entry that is changing is waited out first; one that then points elsewhere, or is not a
   * Custom entry, is left alone (false), as is an absent one.
   */
  async remove(subnet: IP4Net, signal: AbortSignal): Promise<boolean> {
    const dst = subnet.toString();
    let e = await this.find(dst, signal);
    if (e && e.Status !== "Available") e = await this.wait(dst, signal, "Available or gone", settled);
    if (!e || (e.Type && e.Type !== "Custom") || !this.ours(e)) return false;
    await this.delete(dst, e, signal);
    // Gone, or replaced meanwhile by someone else's entry (which is not ours to wait for).
    const id = e.RouteEntryId;
    await this.wait(
      dst,
      signal,
      "gone",
      (x) => !x || !this.ours(x) || (!!id && !!x.RouteEntryId && x.RouteEntryId !== id),
    );
    return true;
  }

  async delete(dst: string, e: AliRouteEntry, signal: AbortSignal): Promise<void> {
    const params: Record<string, string> = { RouteTableId: this.tableId, DestinationCidrBlock: dst };
    if (e.RouteEntryId) params.RouteEntryId = e.RouteEntryId;
    const h = hops(e);
    if (h.length === 1 && h[0]!.NextHopId) params.NextHopId = h[0]!.NextHopId;
    try {
      await this.client.call("DeleteRouteEntry", params, signal);
    } catch (err) {
      // Gone in the meantime: what we wanted.
      if (!(err instanceof CloudApiError && /NotFound/.test(err.code))) throw err;
    }
  }

  async create(dst: string, signal: AbortSignal): Promise<void> {
    try {
      await this.client.call("CreateRouteEntry", {
        RouteTableId: this.tableId,
        DestinationCidrBlock: dst,
        NextHopType: "Instance",
        NextHopId: this.instanceId,
      }, signal);
    } catch (err) {
      // Created meanwhile (a retried request whose answer was lost): fine if it is ours.
      if (!(err instanceof CloudApiError && err.code === "RouterEntryConflict.Duplicated")) throw err;
      const now = await this.find(dst, signal);
      if (!now || !this.ours(now)) throw err;
    }
    const e = await this.wait(dst, signal, "Available", (x) => x?.Status === "Available");
    if (!e || !this.ours(e)) {
      throw new CloudApiError(
        CLOUD,
        "CreateRouteEntry",
        "RouteEntryChanged",
        `the route entry for ${dst} in ${this.tableId} was changed by someone else while it was created`,
      );
    }
  }
}

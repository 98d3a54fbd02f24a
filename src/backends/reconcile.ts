/**
 * The shared reconciler: every backend computes the full desired kernel state from the leases,
 * and this diffs it against what the kernel has and applies the difference. Only entries we own
 * are ever deleted. Running it twice with the same desired state changes nothing.
 *
 * Order matters for vxlan (upstream adds the neighbour and FDB entry before the route that
 * needs them, and removes the route first): additions go neighbours → FDB → routes, deletions
 * routes → neighbours → FDB. A failed operation is logged and counted; the rest still run, and
 * the next pass (event, netlink change, or timer) retries it.
 *
 * @module
 */
import type { Logger } from "../log/logger.ts";
import { IP4 } from "../ip/mod.ts";
import { type Fdb, type KernelOps, MAIN_TABLE, type Neigh, type Route } from "../netlink/ops.ts";

/** The route protocol number that marks routes flannel-ts installed (`ip route … proto 91`). */
export const RTPROT_FLANNEL = 91;
/** RTPROT_KERNEL: routes the kernel adds for addresses; never ours. */
export const RTPROT_KERNEL = 2;

/** Everything a backend wants in the kernel besides its devices and addresses. */
export interface DesiredState {
  routes: Route[];
  neighs: Neigh[];
  fdbs: Fdb[];
}

/** Which observed entries belong to us (and may be deleted when not desired). */
export interface Ownership {
  /** Is this route one of ours? */
  route(r: Route): boolean;
  /** Devices whose permanent neighbour and FDB entries are all ours (e.g. flannel.1). */
  devices: readonly string[];
}

/** What one pass did. */
export interface ReconcileResult {
  added: number;
  updated: number;
  deleted: number;
  errors: Error[];
}

/** The kernel stores an IPv6 route added with metric 0 as metric 1024 (IP6_RT_PRIO_USER). */
export const IPV6_DEFAULT_METRIC = 1024;

/** The metric the kernel reports for a route added with `r.metric`. */
export function effectiveMetric(r: Route): number {
  return r.metric || (r.dst.ip instanceof IP4 ? 0 : IPV6_DEFAULT_METRIC);
}

/** Identity of a route for replace/delete: table, type, destination, metric (as the kernel keeps it). */
export function routeKey(r: Route): string {
  return `${r.table ?? MAIN_TABLE}|${r.type ?? "unicast"}|${r.dst.network()}|${effectiveMetric(r)}`;
}

function sameRoute(a: Route, b: Route): boolean {
  return String(a.gateway ?? "") === String(b.gateway ?? "") && (a.dev ?? "") === (b.dev ?? "") &&
    Boolean(a.onlink) === Boolean(b.onlink) && (a.protocol ?? 0) === (b.protocol ?? 0) &&
    String(a.src ?? "") === String(b.src ?? "");
}

const neighKey = (n: Neigh) => `${n.dev}|${n.ip}`;
const fdbKey = (f: Fdb) => `${f.dev}|${f.mac}|${f.dst}`;

/** Brings the kernel to `desired`. */
export async function reconcile(
  kernel: KernelOps,
  desired: DesiredState,
  owns: Ownership,
  log: Logger,
): Promise<ReconcileResult> {
  const res: ReconcileResult = { added: 0, updated: 0, deleted: 0, errors: [] };
  const run = async (what: string, fn: () => Promise<void>, count: "added" | "updated" | "deleted") => {
    try {
      await fn();
      res[count]++;
      log.v(2, what);
    } catch (e) {
      res.errors.push(e as Error);
      log.warn((e as Error).message);
    }
  };
  const devices = new Set(owns.devices);
  const tables = new Set([MAIN_TABLE, ...desired.routes.map((r) => r.table ?? MAIN_TABLE)]);

  // Observe.
  const haveRoutes = new Map<string, Route>();
  for (const t of tables) for (const r of await kernel.routeList(t)) haveRoutes.set(routeKey(r), r);
  const haveNeigh = new Map<string, Neigh>();
  const haveFdb = new Map<string, Fdb>();
  for (const dev of devices) {
    if (!(await kernel.linkGet(dev))) continue;
    for (const n of await kernel.neighList(dev)) if (n.permanent) haveNeigh.set(neighKey(n), n);
    for (const f of await kernel.fdbList(dev)) if (f.permanent) haveFdb.set(fdbKey(f), f);
  }
  const wantRoutes = new Map(desired.routes.map((r) => [routeKey(r), r]));
  const wantNeigh = new Map(desired.neighs.map((n) => [neighKey(n), n]));
  const wantFdb = new Map(desired.fdbs.map((f) => [fdbKey(f), f]));

  // Delete what is ours and no longer wanted: routes first.
  for (const [k, r] of haveRoutes) {
    if (!wantRoutes.has(k) && (r.type ?? "unicast") === "unicast" && owns.route(r)) {
      await run(`Deleted route ${k}`, () => kernel.routeDel(r), "deleted");
    }
  }
  for (const [k, n] of haveNeigh) {
    if (!wantNeigh.has(k)) await run(`Deleted neighbour ${k}`, () => kernel.neighDel(n), "deleted");
  }
  for (const [k, f] of haveFdb) {
    if (!wantFdb.has(k)) await run(`Deleted fdb entry ${k}`, () => kernel.fdbDel(f), "deleted");
  }

  // Add or fix what is wanted: neighbours, FDB, then routes.
  for (const [k, n] of wantNeigh) {
    const have = haveNeigh.get(k);
    if (have && have.mac === n.mac) continue;
    await run(`Set neighbour ${k} → ${n.mac}`, () => kernel.neighReplace(n), have ? "updated" : "added");
  }
  for (const [k, f] of wantFdb) {
    if (haveFdb.has(k)) continue;
    await run(`Set fdb entry ${k}`, () => kernel.fdbReplace(f), "added");
  }
  for (const [k, r] of wantRoutes) {
    const have = haveRoutes.get(k);
    if (have && sameRoute(have, r)) continue;
    await run(`Set route ${k}`, () => kernel.routeReplace(r), have ? "updated" : "added");
  }
  return res;
}

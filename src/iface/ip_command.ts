/**
 * A {@linkcode NetInfo} that asks iproute2 (`ip -j …`) instead of netlink.
 *
 * A stop-gap until the netlink layer can list links, addresses and routes: it runs
 * `ip -j addr show`, `ip [-6] -j route show default` and `ip -j route get <ip>` through an injected
 * command runner, so this file needs no runtime API and tests can feed it captured output.
 *
 * iproute2's JSON notes (checked against iproute2 6.1): address flags are boolean keys that are
 * present only when set (`dynamic`, `deprecated`, `temporary`; the IPv4 twin of `temporary` is
 * `secondary`, the same kernel bit); link flags are upper case (`UP`, `LOOPBACK`); a default route
 * prints `"dst":"default"`, and a multipath one lists its devices under `nexthops`.
 *
 * @module
 */

import { type IP4, type IP6, parseIP } from "../ip/mod.ts";
import type { LinkAddr, LinkInfo, NetInfo, RouteGetResult } from "./net_info.ts";

/** What a finished command left behind. */
export interface CommandResult {
  /** Exit code. */
  code: number;
  /** Standard output, decoded as UTF-8. */
  stdout: string;
  /** Standard error, decoded as UTF-8. */
  stderr: string;
}

/** Runs `argv[0]` with the remaining arguments (no shell) and waits for it to exit. */
export type CommandRunner = (argv: string[]) => Promise<CommandResult>;

/** Options of {@linkcode ipCommandNetInfo}. */
export interface IpCommandOptions {
  /** How to run `ip`. */
  run: CommandRunner;
  /** Query this named network namespace (`ip -n <netns> …`) instead of the caller's. */
  netns?: string;
  /** The `ip` binary; default `ip` (looked up in `PATH` by the runner). */
  ipPath?: string;
}

/**
 * Creates a {@linkcode NetInfo} backed by `ip -j`.
 *
 * @example
 * ```ts ignore
 * const net = ipCommandNetInfo({ run, netns: "node1" });
 * console.log((await net.defaultRouteLink(4))[0]); // "eth0"
 * ```
 */
export function ipCommandNetInfo(opts: IpCommandOptions): NetInfo {
  const prefix = [opts.ipPath ?? "ip", ...(opts.netns === undefined ? [] : ["-n", opts.netns])];
  const ipJson = async (args: string[]): Promise<unknown> => {
    const argv = [...prefix, ...args];
    const res = await opts.run(argv);
    if (res.code !== 0) {
      throw new Error(`Command "${argv.join(" ")}" failed with exit code ${res.code}: ${res.stderr.trim()}`);
    }
    try {
      return JSON.parse(res.stdout === "" ? "[]" : res.stdout);
    } catch (err) {
      throw new Error(`Cannot parse the output of "${argv.join(" ")}" as JSON`, { cause: err });
    }
  };
  return {
    async links() {
      return parseAddrShow(await ipJson(["-j", "addr", "show"]));
    },
    async defaultRouteLink(family) {
      return parseDefaultRoutes(await ipJson([`-${family}`, "-j", "route", "show", "default"]));
    },
    async routeGet(dst) {
      return parseRouteGet(await ipJson(["-j", "route", "get", dst.toString()]));
    },
  };
}

type Json = Record<string, unknown>;

function records(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter((x): x is Json => typeof x === "object" && x !== null) : [];
}

function ipOrUndefined(v: unknown): IP4 | IP6 | undefined {
  if (typeof v !== "string") return undefined;
  try {
    return parseIP(v);
  } catch {
    return undefined;
  }
}

/** `ip -j addr show` → links in kernel order; addresses that do not parse are left out. */
export function parseAddrShow(json: unknown): LinkInfo[] {
  return records(json).map((l) => {
    const addrs: LinkAddr[] = [];
    for (const a of records(l.addr_info)) {
      const ip = ipOrUndefined(a.local);
      if (!ip) continue;
      addrs.push({
        ip,
        prefixLen: typeof a.prefixlen === "number" ? a.prefixlen : 0,
        scope: typeof a.scope === "string" ? a.scope : String(a.scope ?? ""),
        dynamic: a.dynamic === true,
        temporary: a.temporary === true,
        deprecated: a.deprecated === true,
      });
    }
    return {
      name: String(l.ifname ?? ""),
      index: typeof l.ifindex === "number" ? l.ifindex : 0,
      mtu: typeof l.mtu === "number" ? l.mtu : 0,
      flags: Array.isArray(l.flags) ? l.flags.map((f) => String(f).toLowerCase()) : [],
      addrs,
    };
  });
}

/** `ip -j route show default` → devices in route order (multipath next hops in their order). */
export function parseDefaultRoutes(json: unknown): string[] {
  const names: string[] = [];
  const add = (dev: unknown) => {
    if (typeof dev === "string" && !names.includes(dev)) names.push(dev);
  };
  for (const r of records(json)) {
    if (r.dst !== undefined && r.dst !== "default" && r.dst !== "0.0.0.0/0" && r.dst !== "::/0") continue;
    add(r.dev);
    for (const nh of records(r.nexthops)) add(nh.dev);
  }
  return names;
}

/** `ip -j route get <ip>` → the device and preferred source of the first route. */
export function parseRouteGet(json: unknown): RouteGetResult | undefined {
  const r = records(json)[0];
  if (!r || typeof r.dev !== "string") return undefined;
  const src = ipOrUndefined(r.prefsrc);
  return src ? { link: r.dev, src } : { link: r.dev };
}

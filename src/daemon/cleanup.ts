/**
 * `flanneld --cleanup`: the uninstall upstream never had (flannel#886, closed "wontfix"). It
 * removes what flanneld made on this node and nothing else, then exits:
 *
 * 1. the node's lease, when it is provably ours (its PublicIP is an address of this host): in etcd
 *    the key (when it has a TTL: a reservation is the admin's), with `--kube-subnet-mgr` the
 *    annotations flanneld wrote on the Node; peers drop the node now, not in 24 h or never;
 * 2. the devices, by name and kind together: `flannel.<VNI>`/`flannel-v6.<VNI>` (vxlan),
 *    `flannel.ipip` (ipip), `flannel-wg`/`flannel-wg-v6` (WireGuard, kernel or wireguard-go's
 *    TUN), `flannel<N>` (udp's TUN): upstream's names too, so it also cleans up after upstream
 *    (cilium/cilium#3219: a leftover flannel.1 breaks the next CNI);
 * 3. every route carrying our protocol number (91: host-gw routes, the blackhole route, the
 *    Network routes), in both families;
 * 4. the ipsec xfrm policies with our reqid (11);
 * 5. the traffic rules of both modes (iptables chains and jumps, nftables tables);
 * 6. subnet.env, the WireGuard private key, and the CNI config when it is flannel's.
 *
 * Every step runs even when an earlier one failed; each failure is one line with the fix, and the
 * exit code is 1 if any step failed. Stop flanneld first: a running daemon puts it all back.
 *
 * @module
 */
import type { Options } from "../cli/flags.ts";
import type { SubnetManager } from "../lease/manager.ts";
import type { IP4Net } from "../ip/mod.ts";
import { type NetInfo, selectExternalInterface } from "../iface/mod.ts";
import type { CloudRouteProvider } from "../backends/cloud/route_backend.ts";
import type { Logger } from "../log/logger.ts";
import type { KernelOps, Link } from "../netlink/ops.ts";
import type { TrafficManager, TrafficManagerOptions } from "../rules/mod.ts";
import { ToolMissingError } from "../rules/mod.ts";
import type { Files } from "../runtime/fs.ts";
import type { Clock } from "../util/clock.ts";
import { readPreviousSubnets } from "./subnet_file.ts";
import { EXIT_FAILURE, EXIT_OK } from "./daemon.ts";

/** Our route protocol number (reconcile.ts's RTPROT_FLANNEL; repeated to keep this file light). */
const RTPROT_FLANNEL = 91;
/** The reqid of our xfrm policies (the ipsec backend's). */
const IPSEC_REQID = 11;
/** Where install-conf puts the CNI config (deploy/kube-flannel.yml). */
export const DEFAULT_CNI_CONF_FILE = "/etc/cni/net.d/10-flannel.conflist";
/** How long the lease release may take (an unreachable etcd must not hang the uninstall). */
export const RELEASE_TIMEOUT_MS = 10_000;
/** The WireGuard key file unless `$WIREGUARD_KEY_FILE` says otherwise. */
const DEFAULT_WG_KEY_FILE = "/run/flannel/wgkey";

/** What the cleanup needs; every part is optional so that what is missing is skipped, not fatal. */
export interface CleanupDeps {
  options: Options;
  log: Logger;
  clock: Clock;
  files: Files;
  kernel?: KernelOps;
  /** The environment (`WIREGUARD_KEY_FILE`). */
  env: (name: string) => string | undefined;
  /** Builds a traffic manager for one mode (both are cleaned). */
  createTrafficManager?: (o: Omit<TrafficManagerOptions, "run">) => TrafficManager;
  /** The subnet manager, to release our lease (etcd); absent or failing: the lease expires by itself. */
  createManager?: () => Promise<SubnetManager & { close?(): Promise<void> }>;
  /** The CNI config to remove when it is flannel's; default {@linkcode DEFAULT_CNI_CONF_FILE}. */
  cniConfFile?: string;
  /** With one of these backends, our route in the cloud is removed too. */
  cloudProviders?: readonly CloudRouteProvider[];
  /** Interface facts, to find the external address the cloud route names (as the daemon does). */
  netInfo?: NetInfo;
  /** HTTP for the cloud providers; default the global `fetch`. */
  fetch?: typeof fetch;
}

/** Is this link one flanneld makes (name and kind must both match)? */
export function isFlannelLink(l: Link): boolean {
  const kind = l.kind ?? "";
  if (/^flannel(-v6)?\.\d+$/.test(l.name)) return kind === "vxlan";
  if (l.name === "flannel.ipip") return kind === "ipip";
  if (/^flannel-wg(-v6)?$/.test(l.name)) return kind === "wireguard" || kind === "tun";
  if (/^flannel\d+$/.test(l.name)) return kind === "tun";
  return false;
}

/** Is this CNI config flannel's (a conflist whose first plugin has type "flannel")? */
export function isFlannelCniConf(text: string): boolean {
  try {
    const conf = JSON.parse(text) as { type?: unknown; plugins?: { type?: unknown }[] };
    return conf.plugins?.[0]?.type === "flannel" || conf.type === "flannel";
  } catch {
    return false;
  }
}

/**
 * Removes our route from the cloud when the network's backend is a cloud route backend: the
 * external address is found as the daemon finds it (same flags), the provider set up as at
 * start-up, and only a route that points at this node is removed. Undefined: nothing to say.
 */
async function removeCloudRoute(
  deps: CleanupDeps,
  manager: SubnetManager,
  subnet: IP4Net | undefined,
  signal: AbortSignal,
): Promise<string | undefined> {
  if (!deps.cloudProviders?.length || !deps.netInfo) return undefined;
  const config = await manager.getNetworkConfig(signal);
  const provider = deps.cloudProviders.find((p) => p.type === config.backendType.toLowerCase());
  if (!provider) return undefined;
  if (!subnet) return `No subnet in ${deps.options.subnetFile}: no ${provider.type} route to remove`;
  const o = deps.options;
  const ext = await selectExternalInterface(
    {
      iface: o.iface,
      ifaceRegex: o.ifaceRegex,
      ifaceCanReach: o.ifaceCanReach,
      publicIp: o.publicIp,
      publicIpv6: o.publicIpv6,
      enableIPv4: config.enableIPv4,
      enableIPv6: config.enableIPv6,
    },
    deps.netInfo,
    deps.log,
  );
  if (!ext.extAddr) return `No IPv4 address on ${ext.name}: no ${provider.type} route to remove`;
  const router = await provider.open({
    backend: config.backend,
    extAddr: ext.extAddr,
    env: deps.env,
    fetch: deps.fetch ?? ((input, init) => fetch(input, init)),
    log: deps.log,
    clock: deps.clock,
    signal,
  });
  return await router.deleteRoute(subnet, signal)
    ? `Removed the ${provider.type} route for ${subnet} (${router.where})`
    : `No ${provider.type} route for ${subnet} points at this node: nothing to remove`;
}

/** Runs the cleanup; resolves to the exit code (0: all steps succeeded or had nothing to do). */
export async function runCleanup(deps: CleanupDeps, signal?: AbortSignal): Promise<number> {
  const { options, log, files, kernel } = deps;
  let failures = 0;
  const removed: string[] = [];
  /** Runs one step; false (and one error line) when it failed. */
  const step = async (what: string, fix: string, fn: () => Promise<void>): Promise<boolean> => {
    try {
      await fn();
      return true;
    } catch (e) {
      failures++;
      log.error(`Cleanup: cannot ${what}: ${(e as Error).message}; ${fix}`);
      return false;
    }
  };
  /** Set when the lease or the cloud route could not be released: subnet.env then stays. */
  let storeFailed = false;

  // What our last run leased, before subnet.env goes.
  let subnetText: string | undefined;
  await step(`read ${options.subnetFile}`, "the lease is left to expire", async () => {
    subnetText = await files.readText(options.subnetFile);
  });
  const previous = readPreviousSubnets(subnetText, log);

  // 1. The lease, while the host still has the addresses that prove it is ours.
  if (deps.createManager && kernel) {
    let manager: (SubnetManager & { close?(): Promise<void> }) | undefined;
    storeFailed ||= !await step(
      "reach the subnet store",
      "the lease expires by itself within its TTL (24 h); peers keep routes to this node until then",
      async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${RELEASE_TIMEOUT_MS / 1000}s`)),
            RELEASE_TIMEOUT_MS,
          );
        });
        try {
          manager = await Promise.race([deps.createManager!(), late]);
        } finally {
          clearTimeout(timer);
        }
      },
    );
    if (manager) {
      const m = manager;
      const bounded = () => {
        const timeout = AbortSignal.timeout(RELEASE_TIMEOUT_MS);
        return signal ? AbortSignal.any([signal, timeout]) : timeout;
      };
      try {
        // 1a. With a cloud backend, the cloud's route to this node (before the lease goes).
        storeFailed ||= !await step(
          "remove the cloud route",
          `delete the route for ${previous.subnet ?? "this node's subnet"} in the cloud console`,
          async () => {
            const said = await removeCloudRoute(deps, m, previous.subnet, bounded());
            if (said) {
              log.info(`Cleanup: ${said}`);
              if (said.startsWith("Removed")) removed.push("cloud route");
            }
          },
        );
        // 1b. The lease.
        storeFailed ||= !await step(
          "release the lease",
          "it expires by itself within its TTL (24 h); peers keep routes to this node until then",
          async () => {
            if (!m.releaseLease) {
              log.info(`Cleanup: ${m.name} cannot release leases; ours expires by itself`);
              return;
            }
            const ownAddresses = new Set((await kernel.addrList()).map((a) => a.addr.ip.toString()));
            const said = await m.releaseLease({ ...previous, ownAddresses }, bounded());
            log.info(`Cleanup: ${said}`);
            if (/^(Released|Removed)/.test(said)) removed.push("lease");
          },
        );
      } finally {
        await m.close?.();
      }
    }
  }

  if (kernel) {
    // 2. Devices (their addresses, neighbours, FDB entries and routes go with them).
    await step("list links", "check CAP_NET_ADMIN", async () => {
      for (const l of (await kernel.linkList()).filter(isFlannelLink)) {
        await step(`delete ${l.name}`, `delete it with "ip link del ${l.name}"`, async () => {
          await kernel.linkDel(l.name);
          log.info(`Cleanup: deleted ${l.kind} device ${l.name}`);
          removed.push(l.name);
        });
      }
    });
    // 3. Routes with our protocol number, wherever they point.
    await step("list routes", "check CAP_NET_ADMIN", async () => {
      let n = 0;
      for (const r of await kernel.routeList()) {
        if (r.protocol !== RTPROT_FLANNEL) continue;
        await step(`delete route ${r.dst}`, `delete it with "ip route del ${r.dst} proto 91"`, async () => {
          await kernel.routeDel(r);
          n++;
        });
      }
      if (n > 0) {
        log.info(`Cleanup: deleted ${n} route${n === 1 ? "" : "s"} with protocol 91`);
        removed.push(`${n} route${n === 1 ? "" : "s"}`);
      }
    });
    // 4. ipsec policies (charon removes its SAs when it stops).
    await step(
      "list xfrm policies",
      `delete them with "ip xfrm policy deleteall reqid ${IPSEC_REQID}"`,
      async () => {
        let n = 0;
        for (const p of await kernel.xfrmPolicyList()) {
          if (p.reqid !== IPSEC_REQID) continue;
          await kernel.xfrmPolicyDel(p);
          n++;
        }
        if (n > 0) {
          log.info(`Cleanup: deleted ${n} xfrm polic${n === 1 ? "y" : "ies"} with reqid ${IPSEC_REQID}`);
          removed.push(`${n} xfrm polic${n === 1 ? "y" : "ies"}`);
        }
      },
    );
  }

  // 5. Traffic rules, both modes whatever the config says (a node may have switched).
  if (deps.createTrafficManager) {
    for (const enableNFTables of [false, true]) {
      const mode = enableNFTables ? "nftables" : "iptables";
      await step(`remove the ${mode} rules`, `see docs/rules.md for what to delete by hand`, async () => {
        const rules = deps.createTrafficManager!({
          enableNFTables,
          enableIPv4: true,
          enableIPv6: true,
          log,
          clock: deps.clock,
          resyncSeconds: options.iptablesResync,
          fullyRandomDisable: options.ipMasqFullyRandomDisable,
        });
        try {
          await rules.cleanup();
        } catch (e) {
          if (e instanceof ToolMissingError) {
            log.info(`Cleanup: no ${mode} rules to remove (${e.message})`);
            return;
          }
          throw e;
        }
      });
    }
  }

  // 6. Files. subnet.env names our lease and cloud route: while either could not be released, it
  // stays, so that a second --cleanup (the store back) can still find them.
  const leaseKept = storeFailed;
  const wgKey = deps.env("WIREGUARD_KEY_FILE") || DEFAULT_WG_KEY_FILE;
  if (leaseKept) {
    log.warn(
      `Cleanup: kept ${options.subnetFile}: it names the lease to release; run --cleanup again once the store answers`,
    );
  }
  for (const path of leaseKept ? [wgKey] : [options.subnetFile, wgKey]) {
    await step(`remove ${path}`, `remove it by hand`, async () => {
      if (await files.remove(path)) {
        log.info(`Cleanup: removed ${path}`);
        removed.push(path);
      }
    });
  }
  const cni = deps.cniConfFile ?? DEFAULT_CNI_CONF_FILE;
  await step(`remove ${cni}`, `remove it by hand`, async () => {
    const text = await files.readText(cni);
    if (text === undefined) return;
    if (!isFlannelCniConf(text)) {
      log.info(`Cleanup: kept ${cni}: it is not a flannel CNI config`);
      return;
    }
    await files.remove(cni);
    log.info(`Cleanup: removed ${cni}`);
    removed.push(cni);
  });

  if (failures > 0) {
    log.error(`Cleanup finished with ${failures} error${failures === 1 ? "" : "s"} (above)`);
    return EXIT_FAILURE;
  }
  log.info(
    removed.length
      ? `Cleanup done: removed ${removed.join(", ")}`
      : "Cleanup done: nothing of flannel's was left",
  );
  return EXIT_OK;
}

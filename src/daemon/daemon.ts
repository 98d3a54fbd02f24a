/**
 * The daemon's start-up order and lifetime, following upstream flanneld (§0 of the behaviour
 * reference) for the parts that exist: subnet manager, health server, network config (waited
 * for), IP family, br_netfilter, external interface, backend registration, subnet.env,
 * readiness, the backend's lease loop, and lease keeping until revoked, lost or signalled.
 *
 * Every dependency is injected; `src/cli/main.ts` wires the real ones.
 *
 * @module
 */
import type { BackendRegistry } from "../backends/registry.ts";
import type { Network } from "../backends/types.ts";
import type { Options } from "../cli/flags.ts";
import type { NetworkConfig } from "../config/network_config.ts";
import { type NetInfo, selectExternalInterface } from "../iface/mod.ts";
import type { SubnetManager } from "../lease/manager.ts";
import type { LeaseBatch } from "../lease/types.ts";
import type { KernelOps } from "../netlink/ops.ts";
import type { HostOps } from "../backends/host.ts";
import type { TrafficManager, TrafficManagerOptions } from "../rules/mod.ts";
import { RTPROT_FLANNEL } from "../backends/reconcile.ts";
import type { Logger } from "../log/logger.ts";
import type { Files } from "../runtime/fs.ts";
import type { Clock } from "../util/clock.ts";
import { healthHandler, type HealthState } from "./health.ts";
import { Metrics } from "./metrics.ts";
import { type PreviousSubnets, readPreviousSubnets, renderSubnetFile } from "./subnet_file.ts";

/** Serves the health handler; resolves once listening. */
export type HealthServe = (
  opts: { hostname: string; port: number; signal: AbortSignal },
  handler: (req: Request) => Response,
) => Promise<{ finished: Promise<void> }>;

/** What the daemon is built from. */
export interface DaemonDeps {
  options: Options;
  log: Logger;
  clock: Clock;
  files: Files;
  netInfo: NetInfo;
  registry: BackendRegistry;
  /** Creates the subnet manager for the options, given what the previous subnet.env said. */
  createManager(previous: PreviousSubnets): Promise<SubnetManager & { close?(): Promise<void> }>;
  serveHealth?: HealthServe;
  metrics?: Metrics;
  /** Kernel access for the backends that program it. */
  kernel?: KernelOps;
  /** Host access (files, processes, sockets) for the backends that need it. */
  host?: HostOps;
  /** systemd readiness (`sd_notify`); returns why it failed, if it did. */
  notifyReady?: () => string | undefined;
  /** Builds the iptables/nftables manager; without it no traffic rules are installed. */
  createTrafficManager?: (o: Omit<TrafficManagerOptions, "run">) => TrafficManager;
}

/** Exit codes, as upstream: 0 for a signal or a revoked lease, 1 for start-up failures. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;

const READY_HELP = "1 when subnet.env is written and the data path matches the leases";

/** Config fetch retry period (upstream: 1 s). */
export const CONFIG_RETRY_MS = 1000;

/** Runs the daemon until `signal` aborts or the lease ends; returns the process exit code. */
export async function runDaemon(deps: DaemonDeps, outer: AbortSignal): Promise<number> {
  const { options, log, files } = deps;
  // One controller for everything the daemon starts, so that a revoked lease stops it all.
  const ctl = new AbortController();
  const onOuterAbort = () => ctl.abort(outer.reason);
  if (outer.aborted) ctl.abort(outer.reason);
  else outer.addEventListener("abort", onOuterAbort, { once: true });
  const signal = ctl.signal;
  const metrics = deps.metrics ?? new Metrics();
  const health: HealthState = { ready: false };
  metrics.set("flannel_ready", READY_HELP, 0);

  // 6. The subnet manager, after reading what our previous run left in subnet.env.
  let previousText: string | undefined;
  try {
    previousText = await files.readText(options.subnetFile);
  } catch (e) {
    log.warn(`Cannot read previous subnet file ${options.subnetFile}: ${(e as Error).message}`);
  }
  const previous = readPreviousSubnets(previousText, log);
  let manager: SubnetManager & { close?(): Promise<void> };
  try {
    manager = await deps.createManager(previous);
  } catch (e) {
    log.error(`Failed to create SubnetManager: ${(e as Error).message}`);
    return EXIT_FAILURE;
  }
  log.info(`Created subnet manager: ${manager.name}`);

  const tasks: Promise<unknown>[] = [];
  let network: Network | undefined;
  try {
    // 8. The health server.
    if (options.healthzPort > 0 && deps.serveHealth) {
      try {
        const server = await deps.serveHealth(
          { hostname: options.healthzIp, port: options.healthzPort, signal },
          healthHandler(health, metrics),
        );
        tasks.push(server.finished);
        log.info(`Serving /healthz, /readyz and /metrics on ${options.healthzIp}:${options.healthzPort}`);
      } catch (e) {
        log.error(
          `Cannot serve health checks on ${options.healthzIp}:${options.healthzPort}: ${
            (e as Error).message
          }; ` +
            `choose a free --healthz-port`,
        );
        return EXIT_FAILURE;
      }
    }

    // 9. The network config, waited for.
    const config = await waitForConfig(manager, deps, metrics, signal);
    if (!config) return EXIT_OK;
    log.info(`Found network config - Backend type: ${config.backendType}`);

    // 10. IP family.
    if (!config.enableIPv4 && !config.enableIPv6) {
      log.error("none defined stack: set EnableIPv4 or EnableIPv6 to true in net-conf.json");
      return EXIT_FAILURE;
    }

    // 11. br_netfilter, which iptables mode needs to see bridged pod traffic.
    if (!config.enableNFTables) {
      const need = [
        ...(config.enableIPv4 ? ["/proc/sys/net/bridge/bridge-nf-call-iptables"] : []),
        ...(config.enableIPv6 ? ["/proc/sys/net/bridge/bridge-nf-call-ip6tables"] : []),
      ];
      for (const path of need) {
        const present = await files.readText(path).then((t) => t !== undefined, () => false);
        if (!present) {
          log.error(
            `Failed to check br_netfilter: stat ${path}: no such file or directory; ` +
              `load the module with: modprobe br_netfilter`,
          );
          return EXIT_FAILURE;
        }
      }
    }

    // 12. Public addresses the store holds for us (kube: node-public-ip annotations) override the flags.
    let publicIp = options.publicIp;
    let publicIpv6 = options.publicIpv6;
    if (manager.storedPublicIPs) {
      const stored = await manager.storedPublicIPs(signal).catch((e) => {
        log.warn(`Cannot read the stored public IPs, using the flags: ${(e as Error).message}`);
        return {} as { publicIp?: string; publicIpv6?: string };
      });
      if (stored.publicIp) {
        log.info(
          `Using the stored public IP ${stored.publicIp} instead of --public-ip="${options.publicIp}"`,
        );
        publicIp = stored.publicIp;
      }
      if (stored.publicIpv6) {
        log.info(
          `Using the stored public IPv6 ${stored.publicIpv6} instead of --public-ipv6="${options.publicIpv6}"`,
        );
        publicIpv6 = stored.publicIpv6;
      }
    }

    // 13. The external interface.
    let ext;
    try {
      ext = await selectExternalInterface(
        {
          iface: options.iface,
          ifaceRegex: options.ifaceRegex,
          ifaceCanReach: options.ifaceCanReach,
          publicIp,
          publicIpv6,
          enableIPv4: config.enableIPv4,
          enableIPv6: config.enableIPv6,
        },
        deps.netInfo,
        log,
      );
    } catch (e) {
      log.error((e as Error).message);
      return EXIT_FAILURE;
    }

    // 14. The backend: registration acquires the lease and sets up devices.
    let factory;
    try {
      factory = deps.registry.get(config.backendType);
    } catch (e) {
      log.error(`Error fetching backend: ${(e as Error).message}`);
      return EXIT_FAILURE;
    }
    let reconciled = false;
    let fileWritten = false;
    const updateReady = () => {
      health.ready = fileWritten && (reconciled || !network?.reconciles);
      metrics.set("flannel_ready", READY_HELP, health.ready ? 1 : 0);
    };
    try {
      network = await factory.register({
        ext,
        config,
        manager,
        log: log.child(`${factory.type}.ts`),
        clock: deps.clock,
        signal,
        ...(deps.kernel ? { kernel: deps.kernel } : {}),
        ...(deps.host ? { host: deps.host } : {}),
        onReconcile(r) {
          metrics.inc("flannel_reconcile_passes_total", "Reconcile passes of the backend", 1);
          metrics.inc(
            "flannel_reconcile_changes_total",
            "Kernel entries added, updated or deleted",
            r.added + r.updated + r.deleted,
          );
          metrics.inc(
            "flannel_reconcile_errors_total",
            "Kernel operations that failed (retried next pass)",
            r.errors.length,
          );
          if (!reconciled && r.errors.length === 0) {
            reconciled = true;
            updateReady();
            if (health.ready) log.info("Data path programmed for every known lease");
          }
        },
      });
    } catch (e) {
      if (signal.aborted) return EXIT_OK;
      log.error(`Error registering network: ${(e as Error).message}`);
      return EXIT_FAILURE;
    }
    const lease = network.lease;
    if (network.collectMetrics) {
      const n = network;
      metrics.collect((sink) => n.collectMetrics!(sink));
    }
    if (lease.expiration > 0) {
      metrics.set(
        "flannel_lease_expiration_timestamp_seconds",
        "When our lease expires",
        lease.expiration / 1000,
      );
    }

    // 15–18. Traffic rules: clean up the other mode, then masquerade, forward, blackhole.
    if (deps.createTrafficManager) {
      const rules = deps.createTrafficManager({
        enableNFTables: config.enableNFTables,
        enableIPv4: config.enableIPv4,
        enableIPv6: config.enableIPv6,
        resyncSeconds: options.iptablesResync,
        fullyRandomDisable: options.ipMasqFullyRandomDisable,
        log: log.child("trafficmngr.ts"),
        clock: deps.clock,
      });
      await rules.cleanupOtherMode();
      try {
        await rules.init();
        if (options.ipMasq) await rules.setupMasq(config, lease, previous);
      } catch (e) {
        log.error(`Failed to set up IP Masquerade: ${(e as Error).message}`);
        return EXIT_FAILURE;
      }
      if (options.iptablesForwardRules) {
        try {
          await rules.setupForward(config, previous);
        } catch (e) {
          log.error(`Failed to set up forward rules: ${(e as Error).message}`);
          return EXIT_FAILURE;
        }
      }
      if (options.ipBlackholeRoute) {
        const kernel = deps.kernel;
        if (kernel) {
          rules.setupBlackhole(
            config,
            lease,
            (subnet) => kernel.routeReplace({ dst: subnet, type: "blackhole", protocol: RTPROT_FLANNEL }),
          );
        } else {
          log.warn(
            "--ip-blackhole-route needs kernel access, which this build lacks; no blackhole route is kept",
          );
        }
      }
      tasks.push(
        rules.run(signal).catch((e) => {
          if (!signal.aborted) log.error(`Traffic rules resync stopped: ${(e as Error).message}`);
        }),
      );
    } else if (options.ipMasq || options.ipBlackholeRoute) {
      log.warn("--ip-masq and --ip-blackhole-route are accepted but this build installs no traffic rules");
    }

    // 19. subnet.env, then ready.
    const content = renderSubnetFile({
      ...(config.enableIPv4 && config.network ? { network: config.network, subnet: lease.subnet } : {}),
      ...(config.enableIPv6 && config.ipv6Network && lease.ipv6Subnet
        ? { ipv6Network: config.ipv6Network, ipv6Subnet: lease.ipv6Subnet }
        : {}),
      mtu: network.mtu,
      ipMasq: options.ipMasq,
    });
    try {
      await files.writeAtomic(options.subnetFile, content, 0o644);
      log.info(`Wrote subnet file to ${options.subnetFile}`);
      fileWritten = true;
      updateReady();
      log.info("flannel is ready");
    } catch (e) {
      log.warn(`Failed to write subnet file: ${(e as Error).message}`);
    }

    // 20. The backend's lease loop, in the background.
    const running = network.run(countPeers(manager.watchLeases(lease, signal), metrics), signal).catch(
      (e) => {
        if (!signal.aborted) log.error(`Backend ${factory.type} stopped: ${(e as Error).message}`);
      },
    );
    tasks.push(running);

    // 21. Tell systemd (a no-op without NOTIFY_SOCKET).
    const notifyFailed = deps.notifyReady?.();
    if (notifyFailed) log.warn(`Cannot notify systemd: ${notifyFailed}`);

    // 22. Keep the lease until it is revoked, lost, or we are signalled.
    const outcome = await manager.completeLease(lease, signal);
    return outcome === "lost" ? EXIT_FAILURE : EXIT_OK;
  } finally {
    health.ready = false;
    metrics.set("flannel_ready", READY_HELP, 0);
    outer.removeEventListener("abort", onOuterAbort);
    ctl.abort(new Error("daemon stopping"));
    // Let a reconcile pass in flight finish before closing the backend, or it would recreate
    // what close() just removed (a WireGuard device, a TUN).
    await Promise.allSettled(tasks);
    await network?.close().catch((e) => log.warn(`Closing the backend: ${(e as Error).message}`));
    await manager.close?.().catch(() => {});
    log.info("Exiting cleanly...");
  }
}

/**
 * Fetches the network config, retrying every second until it is there and valid. An error is
 * logged when it first appears or changes, not once a second (upstream logs every attempt).
 * Returns undefined when the signal aborts first.
 */
async function waitForConfig(
  manager: SubnetManager,
  deps: DaemonDeps,
  metrics: Metrics,
  signal: AbortSignal,
): Promise<NetworkConfig | undefined> {
  let last = "";
  let attempts = 0;
  while (!signal.aborted) {
    try {
      const config = await manager.getNetworkConfig(signal);
      if (attempts > 0) deps.log.info(`Network config is valid after ${attempts} failed attempts`);
      return config;
    } catch (e) {
      if (signal.aborted) return undefined;
      attempts++;
      metrics.inc("flannel_config_fetch_failures_total", "Failed attempts to read the network config", 1);
      const msg = (e as Error).message;
      if (msg !== last) deps.log.error(`Couldn't fetch network config: ${msg}`);
      else deps.log.v(2, `Couldn't fetch network config (attempt ${attempts}): ${msg}`);
      last = msg;
    }
    await deps.clock.sleep(CONFIG_RETRY_MS, signal).catch(() => {});
  }
  return undefined;
}

/** Passes batches through, recording the peer count. */
async function* countPeers(batches: AsyncIterable<LeaseBatch>, metrics: Metrics): AsyncGenerator<LeaseBatch> {
  for await (const batch of batches) {
    metrics.set("flannel_peer_leases", "Other nodes' leases currently known", batch.leases.size);
    metrics.inc("flannel_lease_events_total", "Lease events received", batch.events.length);
    yield batch;
  }
}

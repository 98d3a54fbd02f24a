/**
 * The `flanneld` entry point: parse flags, wire the real dependencies, run the daemon, exit.
 * The only file besides `src/runtime/` that reads the process environment or exits.
 *
 * @module
 */
import { formatOptions, parseFlags, validateOptions } from "./flags.ts";
import { createLogger } from "../log/mod.ts";
import { runDaemon } from "../daemon/daemon.ts";
import { defaultRegistry } from "../backends/registry.ts";
import { kernelNetInfo } from "../iface/kernel_net_info.ts";
import { denoFiles } from "../runtime/fs.ts";
import { denoServeHealth } from "../runtime/serve.ts";
import { shutdownSignal } from "../runtime/signals.ts";
import { systemClock } from "../util/clock.ts";
import { createEtcdManager } from "../lease/etcd/store.ts";
import type { EtcdAttempt } from "../lease/etcd/client.ts";
import { Metrics } from "../daemon/metrics.ts";
import { createFetch } from "../runtime/http.ts";
import { VERSION } from "../version.ts";
import { createKubeManager } from "../lease/kube/mod.ts";
import { denoKubeRuntime } from "../runtime/kube_http.ts";
import { NetlinkKernel } from "../netlink/kernel.ts";
import { openNetlink } from "../netlink/transport/deno_ffi.ts";
import { denoHost } from "../runtime/host.ts";
import { sdNotify } from "../runtime/sd_notify.ts";
import { createTrafficManager, type TrafficManagerOptions } from "../rules/mod.ts";
import { runCleanup } from "../daemon/cleanup.ts";
import { cloudRouteProviders } from "../backends/cloud/mod.ts";
import type { PreviousSubnets } from "../daemon/subnet_file.ts";
import { denoRunStdinCommand } from "../runtime/command_stdin.ts";

/** Runs flanneld with `argv` (without the program name); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const parsed = parseFlags(argv, Deno.env.toObject());
  switch (parsed.kind) {
    case "version":
      console.error(VERSION);
      return 0;
    case "help":
      console.error(parsed.text.trimEnd());
      return 0;
    case "error":
      console.error(`flanneld: ${parsed.message}`);
      console.error(parsed.usage.trimEnd());
      return 2;
  }
  const options = parsed.options;
  const log = createLogger({ verbosity: options.v, format: options.logFormat, vmodule: options.vmodule });
  const mainLog = log.child("main.ts");
  for (const w of parsed.envWarnings) mainLog.warn(`Failed to set flag FLANNELD from env: ${w}`);
  mainLog.info(`CLI flags config: ${formatOptions(options)}`);
  const invalid = validateOptions(options);
  if (invalid) {
    mainLog.error(invalid);
    return 1;
  }
  const metrics = new Metrics();
  /** Datastore health for /metrics: every etcd request attempt, answered or not. */
  /** Datastore health for /metrics (etcd, or the Kubernetes API in kube mode). */
  const observeStore = (a: { ok: boolean; ms: number }) => {
    const result = a.ok ? "answered" : "failed";
    metrics.inc(
      "flannel_datastore_requests_total",
      "Requests to the datastore (etcd or the Kubernetes API), by whether it answered",
      1,
      { result },
    );
    metrics.inc(
      "flannel_datastore_request_seconds_total",
      "Time spent in datastore requests (divided by the request count: the mean latency)",
      a.ms / 1000,
    );
    metrics.set("flannel_datastore_up", "1 when the last datastore request got an answer", a.ok ? 1 : 0);
  };
  const observeEtcd = (a: EtcdAttempt) => observeStore(a);
  /** The etcd subnet manager for the options, closing its HTTP client with it. */
  const etcdManager = (previous: PreviousSubnets) => {
    const etcdLog = log.child("etcd.ts");
    const tls = Boolean(options.etcdCertfile && options.etcdKeyfile);
    if (!tls) etcdLog.warn("no certificate provided: connecting to etcd with http. This is insecure");
    const fetch = createFetch({
      certFile: options.etcdCertfile,
      keyFile: options.etcdKeyfile,
      caFile: options.etcdCafile,
    });
    const manager = createEtcdManager({
      options,
      previousSubnet: previous.subnet,
      previousIPv6Subnet: previous.ipv6Subnet,
      fetch,
      log: etcdLog,
      clock: systemClock,
      observe: observeEtcd,
    });
    const close = manager.close;
    return Object.assign(manager, { close: () => close().finally(() => fetch.close()) });
  };
  const kubeManager = () =>
    createKubeManager(
      options,
      Deno.env.toObject(),
      log.child("kube.ts"),
      systemClock,
      denoKubeRuntime,
      observeStore,
    );
  const createRules = (o: Omit<TrafficManagerOptions, "run">) =>
    createTrafficManager({ ...o, run: denoRunStdinCommand });
  if (options.cleanup) {
    const kernel = new NetlinkKernel({ open: openNetlink, log: log.child("netlink.ts") });
    try {
      return await runCleanup({
        options,
        log: mainLog,
        clock: systemClock,
        files: denoFiles,
        kernel,
        env: (name) => Deno.env.get(name),
        createTrafficManager: createRules,
        cniConfFile: options.cniConfFile,
        createManager: () => options.kubeSubnetMgr ? kubeManager() : Promise.resolve(etcdManager({})),
        cloudProviders: cloudRouteProviders,
        netInfo: kernelNetInfo(kernel),
      });
    } finally {
      kernel.close();
    }
  }
  const signal = shutdownSignal((m) => mainLog.info(m));
  const kernel = new NetlinkKernel({ open: openNetlink, log: log.child("netlink.ts") });
  try {
    return await runDaemon({
      options,
      log: mainLog,
      clock: systemClock,
      files: denoFiles,
      netInfo: kernelNetInfo(kernel),
      registry: defaultRegistry(),
      metrics,
      serveHealth: denoServeHealth,
      kernel,
      host: denoHost,
      notifyReady: () => sdNotify(Deno.env.get("NOTIFY_SOCKET"), "READY=1"),
      createTrafficManager: createRules,
      createManager(previous) {
        if (options.kubeSubnetMgr) return kubeManager();
        return Promise.resolve(etcdManager(previous));
      },
    }, signal);
  } finally {
    kernel.close();
  }
}

if (import.meta.main) {
  const code = await main(Deno.args);
  Deno.exit(code);
}

/**
 * flannel in TypeScript: the library surface. Importing it has no side effects and touches no
 * runtime-specific API, so it runs under Deno and Node alike (the npm package is built from it).
 *
 * @example
 * ```ts
 * import { IP4Net, makeSubnetKey, parseAndCheckNetworkConfig } from "./mod.ts";
 * const config = parseAndCheckNetworkConfig(`{"Network":"10.5.0.0/16","Backend":{"Type":"vxlan"}}`);
 * console.assert(config.subnetLen === 24 && config.subnetMin?.toString() === "10.5.1.0");
 * console.assert(makeSubnetKey(IP4Net.parse("10.5.34.0/24")) === "10.5.34.0-24");
 * ```
 *
 * @module
 */

export { IP4, IP4Net, IP6, IP6Net, makeSubnetKey, parseCIDR, parseIP, parseSubnetKey } from "./src/ip/mod.ts";
export {
  checkNetworkConfig,
  type NetworkConfig,
  NetworkConfigError,
  parseAndCheckNetworkConfig,
  parseNetworkConfig,
} from "./src/config/mod.ts";
export type { Lease, LeaseAttrs, LeaseBatch, LeaseEvent } from "./src/lease/types.ts";
export { decodeLeaseAttrs, encodeLeaseAttrs, LeaseValueError } from "./src/lease/lease_json.ts";
export { LeaseWatcher } from "./src/lease/watcher.ts";
export { type KV, KVCompactedError, type KVEntry, type KVEvent, KVUnavailableError } from "./src/lease/kv.ts";
export { MemoryKV } from "./src/lease/memory/kv.ts";
export { KVSubnetManager, type KVSubnetManagerOptions, SUBNET_TTL_SECONDS } from "./src/lease/kv_manager.ts";
export {
  ConfigNotFoundError,
  type LeaseOutcome,
  OutOfSubnetsError,
  type SubnetManager,
} from "./src/lease/manager.ts";
export { EtcdClient, type EtcdClientOptions } from "./src/lease/etcd/client.ts";
export { createEtcdManager, EtcdKV } from "./src/lease/etcd/store.ts";
export { BackendRegistry, defaultBackends, UnknownBackendError } from "./src/backends/registry.ts";
export type { BackendContext, BackendFactory, Network } from "./src/backends/types.ts";
export { readPreviousSubnets, renderSubnetFile, type SubnetFileContent } from "./src/daemon/subnet_file.ts";
export { createLogger, type Logger, MemoryLogger, nullLogger } from "./src/log/mod.ts";
export { type Clock, systemClock } from "./src/util/clock.ts";
export { VERSION } from "./src/version.ts";

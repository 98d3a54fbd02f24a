/**
 * The network configuration (net-conf.json / etcd `<prefix>/config`): parsing, validation with
 * derived defaults, and the case-insensitive field lookup that backend options reuse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAndCheckNetworkConfig } from "./mod.ts";
 * const cfg = parseAndCheckNetworkConfig('{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}');
 * assert.equal(cfg.backendType, "vxlan");
 * assert.equal(cfg.subnetLen, 24);
 * ```
 *
 * @module
 */

export { getField, keyMatches } from "./case_insensitive.ts";
export {
  checkNetworkConfig,
  type NetworkConfig,
  NetworkConfigError,
  type NetworkConfigOptions,
  parseAndCheckNetworkConfig,
  parseNetworkConfig,
} from "./network_config.ts";

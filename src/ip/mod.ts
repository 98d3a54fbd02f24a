/**
 * IP value types for flannel: IPv4 and IPv6 addresses and networks, and the etcd subnet keys built
 * from them. Text and JSON forms match upstream flanneld (Go `net.IP` formatting), because other
 * flannel nodes read what we write.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IP4Net, makeSubnetKey, parseSubnetKey } from "./mod.ts";
 * const lease = IP4Net.parse("10.5.34.0/24");
 * const key = makeSubnetKey(lease);
 * assert(key === "10.5.34.0-24");
 * assert(parseSubnetKey(key)?.ip4.equals(lease));
 * ```
 *
 * @module
 */

export { IP4 } from "./ip4.ts";
export { IP6 } from "./ip6.ts";
export { IP4Net, IP6Net } from "./cidr.ts";
export { parseCIDR, parseIP } from "./parse.ts";
export { makeSubnetKey, parseSubnetKey, type SubnetKey } from "./subnet_key.ts";

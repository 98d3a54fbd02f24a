/**
 * A {@linkcode NetInfo} for tests: one link, eth0 (index 2, MTU 1500) with 192.168.1.10/24,
 * carrying the IPv4 default route.
 *
 * @module
 */
import type { NetInfo } from "../../src/iface/mod.ts";
import { IP4 } from "../../src/ip/mod.ts";

export const eth0NetInfo: NetInfo = {
  links: () =>
    Promise.resolve([{
      name: "eth0",
      index: 2,
      mtu: 1500,
      flags: ["UP"],
      addrs: [{
        ip: IP4.parse("192.168.1.10"),
        prefixLen: 24,
        scope: "global",
        dynamic: false,
        temporary: false,
        deprecated: false,
      }],
    }]),
  defaultRouteLink: (family) => Promise.resolve(family === 4 ? ["eth0"] : []),
  routeGet: () => Promise.resolve(undefined),
};

/**
 * `/run/flannel/subnet.env`: what the flannel CNI plugin and other tools read to learn this
 * node's subnet and MTU. The text is pinned by upstream (§5 of the behaviour reference):
 *
 * ```
 * FLANNEL_NETWORK=10.5.0.0/16
 * FLANNEL_SUBNET=10.5.72.1/24
 * FLANNEL_MTU=1450
 * FLANNEL_IPMASQ=false
 * ```
 *
 * @module
 */
import { IP4Net, IP6Net } from "../ip/mod.ts";
import type { Logger } from "../log/logger.ts";

/** What goes into subnet.env. */
export interface SubnetFileContent {
  network?: IP4Net;
  subnet?: IP4Net;
  ipv6Network?: IP6Net;
  ipv6Subnet?: IP6Net;
  mtu: number;
  ipMasq: boolean;
}

/** Renders subnet.env exactly as upstream: the subnet lines carry the first host address. */
export function renderSubnetFile(c: SubnetFileContent): string {
  let out = "";
  if (c.network && c.subnet) {
    out += `FLANNEL_NETWORK=${c.network}\n`;
    out += `FLANNEL_SUBNET=${c.subnet.firstHost()}\n`;
  }
  if (c.ipv6Network && c.ipv6Subnet) {
    out += `FLANNEL_IPV6_NETWORK=${c.ipv6Network}\n`;
    out += `FLANNEL_IPV6_SUBNET=${c.ipv6Subnet.firstHost()}\n`;
  }
  out += `FLANNEL_MTU=${c.mtu}\n`;
  out += `FLANNEL_IPMASQ=${c.ipMasq}\n`;
  return out;
}

/**
 * Parses dotenv text into key/value pairs: `KEY=value` lines, optional `export `, quotes
 * stripped, comments and blank lines ignored.
 */
export function parseDotenv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let value = m[2]!;
    const q = value[0];
    if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) value = value.slice(1, -1);
    else value = value.replace(/\s+#.*$/, "");
    out.set(m[1]!, value);
  }
  return out;
}

/** What a previous run left in subnet.env, as networks (host bits cleared). */
export interface PreviousSubnets {
  network?: IP4Net;
  subnet?: IP4Net;
  ipv6Network?: IP6Net;
  ipv6Subnet?: IP6Net;
}

/**
 * Reads the previous state (§5.3): each value is split on `,`, each piece parsed as a CIDR and
 * reduced to its network; invalid pieces are logged and skipped; exactly one valid CIDR is used,
 * none or several mean "no previous value".
 */
export function readPreviousSubnets(text: string | undefined, log: Logger): PreviousSubnets {
  const out: PreviousSubnets = {};
  if (text === undefined) return out;
  const env = parseDotenv(text);
  const one = <T>(key: string, parse: (s: string) => T): T | undefined => {
    const value = env.get(key);
    if (value === undefined || value === "") return undefined;
    const got: T[] = [];
    for (const piece of value.split(",")) {
      try {
        got.push(parse(piece.trim()));
      } catch (e) {
        log.warn(
          `Ignoring invalid CIDR ${JSON.stringify(piece)} in ${key} of the previous subnet file: ${
            (e as Error).message
          }`,
        );
      }
    }
    if (got.length !== 1) {
      if (got.length > 1) log.warn(`${key} in the previous subnet file has ${got.length} CIDRs; ignoring it`);
      return undefined;
    }
    return got[0];
  };
  const v4 = (s: string) => IP4Net.parse(s).network();
  const v6 = (s: string) => IP6Net.parse(s).network();
  const network = one("FLANNEL_NETWORK", v4);
  const subnet = one("FLANNEL_SUBNET", v4);
  const ipv6Network = one("FLANNEL_IPV6_NETWORK", v6);
  const ipv6Subnet = one("FLANNEL_IPV6_SUBNET", v6);
  if (network) out.network = network;
  if (subnet) out.subnet = subnet;
  if (ipv6Network) out.ipv6Network = ipv6Network;
  if (ipv6Subnet) out.ipv6Subnet = ipv6Subnet;
  return out;
}

/**
 * Node ↔ lease, as pure functions (§4.3–§4.5 of the behaviour reference):
 * - {@linkcode nodeToLease}: another node's lease, from its `spec.podCIDR(s)` and annotations;
 * - {@linkcode planOwnLease}: our own lease, and the annotations to patch onto our node;
 * - {@linkcode storedMacs}: the VTEP MACs our node published last time;
 * - {@linkcode networkUnavailablePatch}: the `NetworkUnavailable=False` condition.
 *
 * @module
 */
import type { NetworkConfig } from "../../config/network_config.ts";
import { getField } from "../../config/case_insensitive.ts";
import { IP4, IP4Net, IP6, IP6Net } from "../../ip/mod.ts";
import type { Logger } from "../../log/logger.ts";
import { parseMac } from "../../util/mac.ts";
import { sameAttrs } from "../lease_json.ts";
import type { Lease, LeaseAttrs } from "../types.ts";
import type { AnnotationNames } from "./annotations.ts";
import type { KubeNode } from "./types.ts";

/** A node whose pod CIDRs or annotations cannot make a lease; the message names the node. */
export class NodeLeaseError extends Error {
  override name = "NodeLeaseError";
}

/** Which families the local net-conf enables. */
export type Families = Pick<NetworkConfig, "enableIPv4" | "enableIPv6">;

/** The node's pod CIDRs: `spec.podCIDRs`, or `spec.podCIDR` when the list is empty. */
export interface PodCidrs {
  v4?: IP4Net;
  v6?: IP6Net;
  /** How many CIDRs the node has. */
  count: number;
}

/** Reads a node's pod CIDRs; the first of each family wins, as upstream. */
export function podCidrs(node: KubeNode): PodCidrs {
  const name = node.metadata.name ?? "";
  const list = node.spec?.podCIDRs?.length
    ? node.spec.podCIDRs
    : node.spec?.podCIDR
    ? [node.spec.podCIDR]
    : [];
  const out: PodCidrs = { count: list.length };
  for (const text of list) {
    const v4 = IP4Net.tryParse(text);
    const v6 = v4 ? undefined : IP6Net.tryParse(text);
    if (!v4 && !v6) {
      throw new NodeLeaseError(`node "${name}" has pod CIDR ${JSON.stringify(text)}: invalid CIDR address`);
    }
    if (v4 && !out.v4) out.v4 = v4.network();
    if (v6 && !out.v6) out.v6 = v6.network();
  }
  return out;
}

/** Whether flannel runs on the node (`kube-subnet-manager` is `"true"`). */
export function isFlannelNode(node: KubeNode, names: AnnotationNames): boolean {
  return node.metadata.annotations?.[names.kubeSubnetManager] === "true";
}

/**
 * Another node's lease. The enabled families are the local config's, as upstream.
 *
 * @throws {NodeLeaseError} naming the node and the bad field.
 */
export function nodeToLease(node: KubeNode, names: AnnotationNames, families: Families): Lease {
  const name = node.metadata.name ?? "";
  const ann = node.metadata.annotations ?? {};
  const cidrs = podCidrs(node);
  if (cidrs.count > 2) {
    throw new NodeLeaseError(`node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`);
  }
  const type = ann[names.backendType] ?? "";
  const attrs: LeaseAttrs = { publicIP: IP4.fromNumber(0) };
  if (type) attrs.backendType = type;
  const lease: Lease = {
    enableIPv4: families.enableIPv4,
    enableIPv6: families.enableIPv6,
    subnet: IP4Net.EMPTY,
    attrs,
    expiration: 0,
  };
  if (families.enableIPv4) {
    if (!cidrs.v4) throw new NodeLeaseError(`node "${name}": missing IPv4 address on n.Spec.PodCIDRs`);
    lease.subnet = cidrs.v4;
    attrs.publicIP = parseAnnotatedIP(name, names.publicIP, ann[names.publicIP], 4) as IP4;
    const data = parseAnnotatedJson(name, names.backendData, ann[names.backendData]);
    if (data !== undefined) attrs.backendData = data;
  }
  if (families.enableIPv6) {
    if (!cidrs.v6) throw new NodeLeaseError(`node "${name}": missing IPv6 address on n.Spec.PodCIDRs`);
    lease.ipv6Subnet = cidrs.v6;
    const text = ann[names.publicIPv6];
    if (text) attrs.publicIPv6 = parseAnnotatedIP(name, names.publicIPv6, text, 6) as IP6;
    const data = parseAnnotatedJson(name, names.backendV6Data, ann[names.backendV6Data]);
    if (data !== undefined) attrs.backendV6Data = data;
  }
  return lease;
}

function parseAnnotatedIP(node: string, key: string, text: string | undefined, family: 4 | 6): IP4 | IP6 {
  const ip = text === undefined ? undefined : family === 4 ? IP4.tryParse(text) : IP6.tryParse(text);
  if (ip) return ip;
  throw new NodeLeaseError(
    `node "${node}" annotation ${key} is ${text === undefined ? "missing" : JSON.stringify(text)}, ` +
      `must be an IPv${family} address`,
  );
}

/** Raw backend data: compact JSON text, or undefined for absent, empty or `null`. */
function parseAnnotatedJson(node: string, key: string, text: string | undefined): string | undefined {
  if (text === undefined || text === "" || text === "null") return undefined;
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    const shown = text.length > 80 ? `${text.slice(0, 77)}...` : text;
    throw new NodeLeaseError(`node "${node}" annotation ${key} is ${JSON.stringify(shown)}, must be JSON`);
  }
}

/** True when two leases would program the same data path. */
export function sameLease(a: Lease, b: Lease): boolean {
  return a.enableIPv4 === b.enableIPv4 && a.enableIPv6 === b.enableIPv6 && a.subnet.equals(b.subnet) &&
    (a.ipv6Subnet?.toString() ?? "") === (b.ipv6Subnet?.toString() ?? "") && sameAttrs(a.attrs, b.attrs);
}

/** What {@linkcode planOwnLease} decided. */
export interface OwnLeasePlan {
  lease: Lease;
  /** The annotations to change, or undefined when the node already carries them all. */
  annotations?: Record<string, string>;
}

/** Backends whose lease may carry an IPv6 subnet; others get an IPv4-only lease (upstream). */
const DUAL_STACK_BACKENDS = new Set(["vxlan", "host-gw", "wireguard"]);

/** Upstream's lease lifetime in kube mode: 24 h, never renewed. */
export const KUBE_LEASE_MS = 24 * 3600_000;

/**
 * Our own lease from our node, and the annotation changes that publish `attrs` (upstream's patch
 * is a two-way diff, so only changed keys are sent). `undefined` while the node has no pod CIDR.
 *
 * @throws {NodeLeaseError} for pod CIDRs that can never make a lease (too many, outside Network).
 */
export function planOwnLease(
  node: KubeNode,
  attrs: LeaseAttrs,
  names: AnnotationNames,
  config: NetworkConfig,
  now: number,
  log: Logger,
): OwnLeasePlan | undefined {
  const name = node.metadata.name ?? "";
  const cidrs = podCidrs(node);
  if (cidrs.count === 0) return undefined;
  if (cidrs.count > 2) {
    throw new NodeLeaseError(`node "${name}" pod cidrs should be IPv4/IPv6 only or dualstack`);
  }
  const type = attrs.backendType ?? "";
  const dual = DUAL_STACK_BACKENDS.has(type);
  const lease: Lease = {
    enableIPv4: dual ? config.enableIPv4 : true,
    enableIPv6: dual && config.enableIPv6,
    subnet: IP4Net.EMPTY,
    attrs,
    expiration: now + KUBE_LEASE_MS,
  };
  if (lease.enableIPv4) {
    if (!cidrs.v4) throw new NodeLeaseError(`node "${name}": missing IPv4 address on n.Spec.PodCIDRs`);
    if (config.network && !config.network.contains(cidrs.v4)) {
      throw new NodeLeaseError(
        `subnet "${config.network}" specified in the flannel net config doesn't contain "${cidrs.v4}" ` +
          `PodCIDR of the "${name}" node`,
      );
    }
    lease.subnet = cidrs.v4;
  }
  if (lease.enableIPv6) {
    if (!cidrs.v6) throw new NodeLeaseError(`node "${name}": missing IPv6 address on n.Spec.PodCIDRs`);
    if (config.ipv6Network && !config.ipv6Network.contains(cidrs.v6)) {
      throw new NodeLeaseError(
        `subnet "${config.ipv6Network}" specified in the flannel net config doesn't contain "${cidrs.v6}" ` +
          `IPv6 PodCIDR of the "${name}" node`,
      );
    }
    lease.ipv6Subnet = cidrs.v6;
  }
  const changes = annotationChanges(node, attrs, names, log);
  return changes ? { lease, annotations: changes } : { lease };
}

/**
 * The annotations that publish `attrs` on `node`, minus those already there. Which keys are
 * written follows upstream: the IPv4 pair unless vxlan has no IPv4 data; the IPv6 pair for vxlan
 * with IPv6 data, wireguard with IPv6 data and address, and host-gw or extension with an address.
 */
export function annotationChanges(
  node: KubeNode,
  attrs: LeaseAttrs,
  names: AnnotationNames,
  log: Logger,
): Record<string, string> | undefined {
  const ann = node.metadata.annotations ?? {};
  const name = node.metadata.name ?? "";
  const type = attrs.backendType ?? "";
  const data4 = attrs.backendData || "null";
  const data6 = attrs.backendV6Data || "null";
  const has6 = attrs.publicIPv6 !== undefined;
  const want: Record<string, string> = { [names.backendType]: type };
  if (!(type === "vxlan" && data4 === "null")) {
    want[names.backendData] = data4;
    want[names.publicIP] = overwrite(name, ann, names.publicIPOverwrite, 4, log) ?? attrs.publicIP.toString();
  }
  const v6 = (type === "vxlan" && data6 !== "null") ||
    (type === "wireguard" && data6 !== "null" && has6) ||
    ((type === "host-gw" || type === "extension") && has6);
  if (v6) {
    want[names.backendV6Data] = data6;
    want[names.publicIPv6] = overwrite(name, ann, names.publicIPv6Overwrite, 6, log) ??
      attrs.publicIPv6?.toString() ?? "";
  }
  want[names.kubeSubnetManager] = "true";
  const changes = Object.entries(want).filter(([k, v]) => ann[k] !== v);
  return changes.length ? Object.fromEntries(changes) : undefined;
}

/** The `…-overwrite` annotation's address, when set and valid (an invalid one is ignored, loudly). */
function overwrite(
  node: string,
  ann: Record<string, string>,
  key: string,
  family: 4 | 6,
  log: Logger,
): string | undefined {
  const text = ann[key];
  if (!text) return undefined;
  const ip = family === 4 ? IP4.tryParse(text) : IP6.tryParse(text);
  if (!ip) {
    log.error(
      `Ignoring annotation ${key}=${JSON.stringify(text)} on node "${node}": not an IPv${family} address; ` +
        `fix or remove it with: kubectl annotate node ${node} ${key}-`,
    );
    return undefined;
  }
  log.info(`Overriding public ip with ${ip} from node annotation ${key}`);
  return ip.toString();
}

/** The body of the strategic-merge patch that sets annotations. */
export function annotationsPatch(
  annotations: Record<string, string>,
): { metadata: { annotations: Record<string, string> } } {
  return { metadata: { annotations } };
}

/**
 * The status patch flannel sends once it is up (`--set-node-network-unavailable`, default true).
 * Times are RFC 3339 with seconds, as Kubernetes writes them.
 */
export function networkUnavailablePatch(now: number): { status: { conditions: Record<string, string>[] } } {
  const t = new Date(now).toISOString().replace(/\.\d{3}Z$/, "Z");
  return {
    status: {
      conditions: [{
        type: "NetworkUnavailable",
        status: "False",
        reason: "FlannelIsUp",
        message: "Flannel is running on this node",
        lastHeartbeatTime: t,
        lastTransitionTime: t,
      }],
    },
  };
}

/**
 * The VTEP MACs our node published last time (`VtepMAC` of `backend-data` and `backend-v6-data`),
 * so that a restarted vxlan backend can keep its MAC and peers need not relearn it.
 *
 * Deviation: upstream cut the text at `:"` instead of parsing JSON, and looked under the raw
 * prefix plus `/backend-data`, which misses with a prefix such as `example.com/net`.
 */
export function storedMacs(node: KubeNode, names: AnnotationNames): { mac?: string; macV6?: string } {
  const ann = node.metadata.annotations ?? {};
  const out: { mac?: string; macV6?: string } = {};
  const mac = vtepMac(ann[names.backendData]);
  const mac6 = vtepMac(ann[names.backendV6Data]);
  if (mac) out.mac = mac;
  if (mac6) out.macV6 = mac6;
  return out;
}

function vtepMac(text: string | undefined): string | undefined {
  if (!text) return undefined;
  try {
    const obj = JSON.parse(text);
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) return undefined;
    const mac = getField(obj as Record<string, unknown>, "VtepMAC");
    return typeof mac === "string" ? parseMac(mac) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `ipip` link kind: IFLA_IPTUN_* attributes of IFLA_INFO_DATA, following
 * include/uapi/linux/if_tunnel.h, limited to what the kernel's ipip driver accepts (the sit and
 * ip6tnl-only attributes stay raw in `unknown`). This machine's kernel has no ipip; the fixtures
 * come from the kernel lab (Debian 6.1).
 *
 * flannel's ipip backend creates `flannel.ipip` with local = the interface address and remote
 * any (no IFLA_IPTUN_REMOTE, or 0.0.0.0).
 *
 * @module
 */
import type { IP4 } from "../../ip/mod.ts";
import {
  bool,
  defineSchema,
  flag,
  ip4,
  type RawAttr,
  type Schema,
  u16,
  u16be,
  u32,
  u8,
} from "../route/schema.ts";
import { type LinkKindDriver, schemaDriver } from "./driver.ts";

export const IFLA_IPTUN_UNSPEC = 0;
export const IFLA_IPTUN_LINK = 1;
export const IFLA_IPTUN_LOCAL = 2;
export const IFLA_IPTUN_REMOTE = 3;
export const IFLA_IPTUN_TTL = 4;
export const IFLA_IPTUN_TOS = 5;
export const IFLA_IPTUN_ENCAP_LIMIT = 6;
export const IFLA_IPTUN_FLOWINFO = 7;
export const IFLA_IPTUN_FLAGS = 8;
export const IFLA_IPTUN_PROTO = 9;
export const IFLA_IPTUN_PMTUDISC = 10;
export const IFLA_IPTUN_6RD_PREFIX = 11;
export const IFLA_IPTUN_6RD_RELAY_PREFIX = 12;
export const IFLA_IPTUN_6RD_PREFIXLEN = 13;
export const IFLA_IPTUN_6RD_RELAY_PREFIXLEN = 14;
export const IFLA_IPTUN_ENCAP_TYPE = 15;
export const IFLA_IPTUN_ENCAP_FLAGS = 16;
export const IFLA_IPTUN_ENCAP_SPORT = 17;
export const IFLA_IPTUN_ENCAP_DPORT = 18;
export const IFLA_IPTUN_COLLECT_METADATA = 19;
export const IFLA_IPTUN_FWMARK = 20;

/** ipip IFLA_INFO_DATA. */
export interface IpipData {
  /** Underlay device index. */
  link?: number;
  local?: IP4;
  /** Absent or 0.0.0.0 means "any". */
  remote?: IP4;
  /** 0 means "inherit". */
  ttl?: number;
  tos?: number;
  /** IP protocol carried (IPPROTO_IPIP = 4; 0 = any, for the ipip driver's collect-md mode). */
  proto?: number;
  /** Path MTU discovery (sets DF on the outer header). */
  pmtudisc?: boolean;
  fwmark?: number;
  encapType?: number;
  encapFlags?: number;
  /** Encapsulation UDP source port (big-endian on the wire). */
  encapSport?: number;
  /** Encapsulation UDP destination port (big-endian on the wire). */
  encapDport?: number;
  /** Flag: `false` is not sent. */
  collectMetadata?: boolean;
  unknown?: RawAttr[];
}

/** The IFLA_IPTUN_* table for ipip, in the order iproute2 sends them (so requests compare byte for byte). */
export const IPIP_SCHEMA: Schema = defineSchema<IpipData>("IFLA_IPTUN_* (linux/if_tunnel.h)", (f) => [
  f(IFLA_IPTUN_PROTO, "IFLA_IPTUN_PROTO", "proto", u8),
  f(IFLA_IPTUN_LOCAL, "IFLA_IPTUN_LOCAL", "local", ip4),
  f(IFLA_IPTUN_REMOTE, "IFLA_IPTUN_REMOTE", "remote", ip4),
  f(IFLA_IPTUN_PMTUDISC, "IFLA_IPTUN_PMTUDISC", "pmtudisc", bool),
  f(IFLA_IPTUN_TOS, "IFLA_IPTUN_TOS", "tos", u8),
  f(IFLA_IPTUN_TTL, "IFLA_IPTUN_TTL", "ttl", u8),
  f(IFLA_IPTUN_LINK, "IFLA_IPTUN_LINK", "link", u32),
  f(IFLA_IPTUN_FWMARK, "IFLA_IPTUN_FWMARK", "fwmark", u32),
  f(IFLA_IPTUN_ENCAP_TYPE, "IFLA_IPTUN_ENCAP_TYPE", "encapType", u16),
  f(IFLA_IPTUN_ENCAP_FLAGS, "IFLA_IPTUN_ENCAP_FLAGS", "encapFlags", u16),
  f(IFLA_IPTUN_ENCAP_SPORT, "IFLA_IPTUN_ENCAP_SPORT", "encapSport", u16be),
  f(IFLA_IPTUN_ENCAP_DPORT, "IFLA_IPTUN_ENCAP_DPORT", "encapDport", u16be),
  f(IFLA_IPTUN_COLLECT_METADATA, "IFLA_IPTUN_COLLECT_METADATA", "collectMetadata", flag),
]);

/** The ipip driver. */
export const ipipKind: LinkKindDriver<IpipData> = schemaDriver<IpipData>("ipip", IPIP_SCHEMA);

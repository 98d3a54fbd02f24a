/**
 * The `bridge` link kind: IFLA_BR_* attributes of IFLA_INFO_DATA, following
 * include/uapi/linux/if_link.h (Linux 6.18; FDB_N_LEARNED and FDB_MAX_LEARNED are newer than
 * linux-libc-dev 6.1). Times are in hundredths of a second (USER_HZ), as the kernel reports them.
 * IFLA_BR_MCAST_QUERIER_STATE (nested, read-only) stays raw in `unknown`.
 *
 * @module
 */
import {
  bool,
  bytes,
  defineSchema,
  flag,
  type RawAttr,
  type Schema,
  u16,
  u16be,
  u32,
  u64,
  u8,
} from "../route/schema.ts";
import { type LinkKindDriver, schemaDriver } from "./driver.ts";

export const IFLA_BR_UNSPEC = 0;
export const IFLA_BR_FORWARD_DELAY = 1;
export const IFLA_BR_HELLO_TIME = 2;
export const IFLA_BR_MAX_AGE = 3;
export const IFLA_BR_AGEING_TIME = 4;
export const IFLA_BR_STP_STATE = 5;
export const IFLA_BR_PRIORITY = 6;
export const IFLA_BR_VLAN_FILTERING = 7;
export const IFLA_BR_VLAN_PROTOCOL = 8;
export const IFLA_BR_GROUP_FWD_MASK = 9;
export const IFLA_BR_ROOT_ID = 10;
export const IFLA_BR_BRIDGE_ID = 11;
export const IFLA_BR_ROOT_PORT = 12;
export const IFLA_BR_ROOT_PATH_COST = 13;
export const IFLA_BR_TOPOLOGY_CHANGE = 14;
export const IFLA_BR_TOPOLOGY_CHANGE_DETECTED = 15;
export const IFLA_BR_HELLO_TIMER = 16;
export const IFLA_BR_TCN_TIMER = 17;
export const IFLA_BR_TOPOLOGY_CHANGE_TIMER = 18;
export const IFLA_BR_GC_TIMER = 19;
export const IFLA_BR_GROUP_ADDR = 20;
export const IFLA_BR_FDB_FLUSH = 21;
export const IFLA_BR_MCAST_ROUTER = 22;
export const IFLA_BR_MCAST_SNOOPING = 23;
export const IFLA_BR_MCAST_QUERY_USE_IFADDR = 24;
export const IFLA_BR_MCAST_QUERIER = 25;
export const IFLA_BR_MCAST_HASH_ELASTICITY = 26;
export const IFLA_BR_MCAST_HASH_MAX = 27;
export const IFLA_BR_MCAST_LAST_MEMBER_CNT = 28;
export const IFLA_BR_MCAST_STARTUP_QUERY_CNT = 29;
export const IFLA_BR_MCAST_LAST_MEMBER_INTVL = 30;
export const IFLA_BR_MCAST_MEMBERSHIP_INTVL = 31;
export const IFLA_BR_MCAST_QUERIER_INTVL = 32;
export const IFLA_BR_MCAST_QUERY_INTVL = 33;
export const IFLA_BR_MCAST_QUERY_RESPONSE_INTVL = 34;
export const IFLA_BR_MCAST_STARTUP_QUERY_INTVL = 35;
export const IFLA_BR_NF_CALL_IPTABLES = 36;
export const IFLA_BR_NF_CALL_IP6TABLES = 37;
export const IFLA_BR_NF_CALL_ARPTABLES = 38;
export const IFLA_BR_VLAN_DEFAULT_PVID = 39;
export const IFLA_BR_PAD = 40;
export const IFLA_BR_VLAN_STATS_ENABLED = 41;
export const IFLA_BR_MCAST_STATS_ENABLED = 42;
export const IFLA_BR_MCAST_IGMP_VERSION = 43;
export const IFLA_BR_MCAST_MLD_VERSION = 44;
export const IFLA_BR_VLAN_STATS_PER_PORT = 45;
export const IFLA_BR_MULTI_BOOLOPT = 46;
export const IFLA_BR_MCAST_QUERIER_STATE = 47;
export const IFLA_BR_FDB_N_LEARNED = 48;
export const IFLA_BR_FDB_MAX_LEARNED = 49;

/** bridge IFLA_INFO_DATA. */
export interface BridgeData {
  forwardDelay?: number;
  helloTime?: number;
  maxAge?: number;
  ageingTime?: number;
  stpState?: number;
  priority?: number;
  vlanFiltering?: boolean;
  /** Ethertype, big-endian on the wire (0x8100 = 802.1Q). */
  vlanProtocol?: number;
  groupFwdMask?: number;
  /** struct ifla_bridge_id: 2 priority bytes and a MAC. */
  rootId?: Uint8Array;
  bridgeId?: Uint8Array;
  rootPort?: number;
  rootPathCost?: number;
  topologyChange?: boolean;
  topologyChangeDetected?: boolean;
  helloTimer?: bigint;
  tcnTimer?: bigint;
  topologyChangeTimer?: bigint;
  gcTimer?: bigint;
  groupAddr?: Uint8Array;
  /** Flag: flush the FDB (write only). */
  fdbFlush?: boolean;
  mcastRouter?: number;
  mcastSnooping?: boolean;
  mcastQueryUseIfaddr?: boolean;
  mcastQuerier?: boolean;
  mcastHashElasticity?: number;
  mcastHashMax?: number;
  mcastLastMemberCnt?: number;
  mcastStartupQueryCnt?: number;
  mcastLastMemberIntvl?: bigint;
  mcastMembershipIntvl?: bigint;
  mcastQuerierIntvl?: bigint;
  mcastQueryIntvl?: bigint;
  mcastQueryResponseIntvl?: bigint;
  mcastStartupQueryIntvl?: bigint;
  nfCallIptables?: boolean;
  nfCallIp6tables?: boolean;
  nfCallArptables?: boolean;
  vlanDefaultPvid?: number;
  vlanStatsEnabled?: boolean;
  mcastStatsEnabled?: boolean;
  mcastIgmpVersion?: number;
  mcastMldVersion?: number;
  vlanStatsPerPort?: boolean;
  /** struct br_boolopt_multi: optval and optmask, u32 each. */
  multiBoolopt?: Uint8Array;
  fdbNLearned?: number;
  fdbMaxLearned?: number;
  unknown?: RawAttr[];
}

/** The IFLA_BR_* table, in attribute-number order. */
export const BRIDGE_SCHEMA: Schema = defineSchema<BridgeData>("IFLA_BR_* (linux/if_link.h)", (f) => [
  f(IFLA_BR_FORWARD_DELAY, "IFLA_BR_FORWARD_DELAY", "forwardDelay", u32),
  f(IFLA_BR_HELLO_TIME, "IFLA_BR_HELLO_TIME", "helloTime", u32),
  f(IFLA_BR_MAX_AGE, "IFLA_BR_MAX_AGE", "maxAge", u32),
  f(IFLA_BR_AGEING_TIME, "IFLA_BR_AGEING_TIME", "ageingTime", u32),
  f(IFLA_BR_STP_STATE, "IFLA_BR_STP_STATE", "stpState", u32),
  f(IFLA_BR_PRIORITY, "IFLA_BR_PRIORITY", "priority", u16),
  f(IFLA_BR_VLAN_FILTERING, "IFLA_BR_VLAN_FILTERING", "vlanFiltering", bool),
  f(IFLA_BR_VLAN_PROTOCOL, "IFLA_BR_VLAN_PROTOCOL", "vlanProtocol", u16be),
  f(IFLA_BR_GROUP_FWD_MASK, "IFLA_BR_GROUP_FWD_MASK", "groupFwdMask", u16),
  f(IFLA_BR_ROOT_ID, "IFLA_BR_ROOT_ID", "rootId", bytes),
  f(IFLA_BR_BRIDGE_ID, "IFLA_BR_BRIDGE_ID", "bridgeId", bytes),
  f(IFLA_BR_ROOT_PORT, "IFLA_BR_ROOT_PORT", "rootPort", u16),
  f(IFLA_BR_ROOT_PATH_COST, "IFLA_BR_ROOT_PATH_COST", "rootPathCost", u32),
  f(IFLA_BR_TOPOLOGY_CHANGE, "IFLA_BR_TOPOLOGY_CHANGE", "topologyChange", bool),
  f(IFLA_BR_TOPOLOGY_CHANGE_DETECTED, "IFLA_BR_TOPOLOGY_CHANGE_DETECTED", "topologyChangeDetected", bool),
  f(IFLA_BR_HELLO_TIMER, "IFLA_BR_HELLO_TIMER", "helloTimer", u64),
  f(IFLA_BR_TCN_TIMER, "IFLA_BR_TCN_TIMER", "tcnTimer", u64),
  f(IFLA_BR_TOPOLOGY_CHANGE_TIMER, "IFLA_BR_TOPOLOGY_CHANGE_TIMER", "topologyChangeTimer", u64),
  f(IFLA_BR_GC_TIMER, "IFLA_BR_GC_TIMER", "gcTimer", u64),
  f(IFLA_BR_GROUP_ADDR, "IFLA_BR_GROUP_ADDR", "groupAddr", bytes),
  f(IFLA_BR_FDB_FLUSH, "IFLA_BR_FDB_FLUSH", "fdbFlush", flag),
  f(IFLA_BR_MCAST_ROUTER, "IFLA_BR_MCAST_ROUTER", "mcastRouter", u8),
  f(IFLA_BR_MCAST_SNOOPING, "IFLA_BR_MCAST_SNOOPING", "mcastSnooping", bool),
  f(IFLA_BR_MCAST_QUERY_USE_IFADDR, "IFLA_BR_MCAST_QUERY_USE_IFADDR", "mcastQueryUseIfaddr", bool),
  f(IFLA_BR_MCAST_QUERIER, "IFLA_BR_MCAST_QUERIER", "mcastQuerier", bool),
  f(IFLA_BR_MCAST_HASH_ELASTICITY, "IFLA_BR_MCAST_HASH_ELASTICITY", "mcastHashElasticity", u32),
  f(IFLA_BR_MCAST_HASH_MAX, "IFLA_BR_MCAST_HASH_MAX", "mcastHashMax", u32),
  f(IFLA_BR_MCAST_LAST_MEMBER_CNT, "IFLA_BR_MCAST_LAST_MEMBER_CNT", "mcastLastMemberCnt", u32),
  f(IFLA_BR_MCAST_STARTUP_QUERY_CNT, "IFLA_BR_MCAST_STARTUP_QUERY_CNT", "mcastStartupQueryCnt", u32),
  f(IFLA_BR_MCAST_LAST_MEMBER_INTVL, "IFLA_BR_MCAST_LAST_MEMBER_INTVL", "mcastLastMemberIntvl", u64),
  f(IFLA_BR_MCAST_MEMBERSHIP_INTVL, "IFLA_BR_MCAST_MEMBERSHIP_INTVL", "mcastMembershipIntvl", u64),
  f(IFLA_BR_MCAST_QUERIER_INTVL, "IFLA_BR_MCAST_QUERIER_INTVL", "mcastQuerierIntvl", u64),
  f(IFLA_BR_MCAST_QUERY_INTVL, "IFLA_BR_MCAST_QUERY_INTVL", "mcastQueryIntvl", u64),
  f(IFLA_BR_MCAST_QUERY_RESPONSE_INTVL, "IFLA_BR_MCAST_QUERY_RESPONSE_INTVL", "mcastQueryResponseIntvl", u64),
  f(IFLA_BR_MCAST_STARTUP_QUERY_INTVL, "IFLA_BR_MCAST_STARTUP_QUERY_INTVL", "mcastStartupQueryIntvl", u64),
  f(IFLA_BR_NF_CALL_IPTABLES, "IFLA_BR_NF_CALL_IPTABLES", "nfCallIptables", bool),
  f(IFLA_BR_NF_CALL_IP6TABLES, "IFLA_BR_NF_CALL_IP6TABLES", "nfCallIp6tables", bool),
  f(IFLA_BR_NF_CALL_ARPTABLES, "IFLA_BR_NF_CALL_ARPTABLES", "nfCallArptables", bool),
  f(IFLA_BR_VLAN_DEFAULT_PVID, "IFLA_BR_VLAN_DEFAULT_PVID", "vlanDefaultPvid", u16),
  f(IFLA_BR_VLAN_STATS_ENABLED, "IFLA_BR_VLAN_STATS_ENABLED", "vlanStatsEnabled", bool),
  f(IFLA_BR_MCAST_STATS_ENABLED, "IFLA_BR_MCAST_STATS_ENABLED", "mcastStatsEnabled", bool),
  f(IFLA_BR_MCAST_IGMP_VERSION, "IFLA_BR_MCAST_IGMP_VERSION", "mcastIgmpVersion", u8),
  f(IFLA_BR_MCAST_MLD_VERSION, "IFLA_BR_MCAST_MLD_VERSION", "mcastMldVersion", u8),
  f(IFLA_BR_VLAN_STATS_PER_PORT, "IFLA_BR_VLAN_STATS_PER_PORT", "vlanStatsPerPort", bool),
  f(IFLA_BR_MULTI_BOOLOPT, "IFLA_BR_MULTI_BOOLOPT", "multiBoolopt", bytes),
  f(IFLA_BR_FDB_N_LEARNED, "IFLA_BR_FDB_N_LEARNED", "fdbNLearned", u32),
  f(IFLA_BR_FDB_MAX_LEARNED, "IFLA_BR_FDB_MAX_LEARNED", "fdbMaxLearned", u32),
]);

/** The bridge driver. */
export const bridgeKind: LinkKindDriver<BridgeData> = schemaDriver<BridgeData>("bridge", BRIDGE_SCHEMA);

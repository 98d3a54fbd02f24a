/**
 * xfrm netlink constants (NETLINK_XFRM) with the kernel's names, from
 * include/uapi/linux/xfrm.h; sizes of its structs as laid out on x86_64 and aarch64 (both LP64,
 * the same padding), checked against the C compiler's sizeof/offsetof.
 *
 * @module
 */

/** Message types (xfrm.h). */
export const XFRM_MSG_BASE = 0x10;
export const XFRM_MSG_NEWSA = 0x10;
export const XFRM_MSG_DELSA = 0x11;
export const XFRM_MSG_GETSA = 0x12;
export const XFRM_MSG_NEWPOLICY = 0x13;
export const XFRM_MSG_DELPOLICY = 0x14;
export const XFRM_MSG_GETPOLICY = 0x15;
export const XFRM_MSG_ALLOCSPI = 0x16;
export const XFRM_MSG_ACQUIRE = 0x17;
export const XFRM_MSG_EXPIRE = 0x18;
export const XFRM_MSG_UPDPOLICY = 0x19;
export const XFRM_MSG_UPDSA = 0x1a;
export const XFRM_MSG_POLEXPIRE = 0x1b;
export const XFRM_MSG_FLUSHSA = 0x1c;
export const XFRM_MSG_FLUSHPOLICY = 0x1d;
export const XFRM_MSG_NEWAE = 0x1e;
export const XFRM_MSG_GETAE = 0x1f;
export const XFRM_MSG_REPORT = 0x20;
export const XFRM_MSG_MIGRATE = 0x21;
export const XFRM_MSG_NEWSADINFO = 0x22;
export const XFRM_MSG_GETSADINFO = 0x23;
export const XFRM_MSG_NEWSPDINFO = 0x24;
export const XFRM_MSG_GETSPDINFO = 0x25;
export const XFRM_MSG_MAPPING = 0x26;
export const XFRM_MSG_SETDEFAULT = 0x27;
export const XFRM_MSG_GETDEFAULT = 0x28;

/** Attributes (xfrm.h enum xfrm_attr_type_t). */
export const XFRMA_UNSPEC = 0;
export const XFRMA_ALG_AUTH = 1;
export const XFRMA_ALG_CRYPT = 2;
export const XFRMA_ALG_COMP = 3;
export const XFRMA_ENCAP = 4;
export const XFRMA_TMPL = 5;
export const XFRMA_SA = 6;
export const XFRMA_POLICY = 7;
export const XFRMA_SEC_CTX = 8;
export const XFRMA_LTIME_VAL = 9;
export const XFRMA_REPLAY_VAL = 10;
export const XFRMA_REPLAY_THRESH = 11;
export const XFRMA_ETIMER_THRESH = 12;
export const XFRMA_SRCADDR = 13;
export const XFRMA_COADDR = 14;
export const XFRMA_LASTUSED = 15;
export const XFRMA_POLICY_TYPE = 16;
export const XFRMA_MIGRATE = 17;
export const XFRMA_ALG_AEAD = 18;
export const XFRMA_KMADDRESS = 19;
export const XFRMA_ALG_AUTH_TRUNC = 20;
export const XFRMA_MARK = 21;
export const XFRMA_TFCPAD = 22;
export const XFRMA_REPLAY_ESN_VAL = 23;
export const XFRMA_SA_EXTRA_FLAGS = 24;
export const XFRMA_PROTO = 25;
export const XFRMA_ADDRESS_FILTER = 26;
export const XFRMA_PAD = 27;
export const XFRMA_OFFLOAD_DEV = 28;
export const XFRMA_SET_MARK = 29;
export const XFRMA_SET_MARK_MASK = 30;
export const XFRMA_IF_ID = 31;
export const XFRMA_MTIMER_THRESH = 32;

/** Modes (xfrm.h XFRM_MODE_*). */
export const XFRM_MODE_TRANSPORT = 0;
export const XFRM_MODE_TUNNEL = 1;
export const XFRM_MODE_ROUTEOPTIMIZATION = 2;
export const XFRM_MODE_IN_TRIGGER = 3;
export const XFRM_MODE_BEET = 4;

/** Policy directions (xfrm.h). */
export const XFRM_POLICY_IN = 0;
export const XFRM_POLICY_OUT = 1;
export const XFRM_POLICY_FWD = 2;

/** Policy actions and flags (xfrm.h, in struct xfrm_userpolicy_info). */
export const XFRM_POLICY_ALLOW = 0;
export const XFRM_POLICY_BLOCK = 1;
export const XFRM_POLICY_LOCALOK = 1;
export const XFRM_POLICY_ICMP = 2;

/** Policy types (xfrm.h, XFRMA_POLICY_TYPE). */
export const XFRM_POLICY_TYPE_MAIN = 0;
export const XFRM_POLICY_TYPE_SUB = 1;
export const XFRM_POLICY_TYPE_ANY = 255;

/** Sharing of a template (xfrm.h). */
export const XFRM_SHARE_ANY = 0;
export const XFRM_SHARE_SESSION = 1;
export const XFRM_SHARE_USER = 2;
export const XFRM_SHARE_UNIQUE = 3;

/** State flags (xfrm.h, in struct xfrm_usersa_info). */
export const XFRM_STATE_NOECN = 1;
export const XFRM_STATE_DECAP_DSCP = 2;
export const XFRM_STATE_NOPMTUDISC = 4;
export const XFRM_STATE_WILDRECV = 8;
export const XFRM_STATE_ICMP = 16;
export const XFRM_STATE_AF_UNSPEC = 32;
export const XFRM_STATE_ALIGN4 = 64;
export const XFRM_STATE_ESN = 128;

/** "No limit" in struct xfrm_lifetime_cfg (xfrm.h XFRM_INF). */
export const XFRM_INF = 0xffff_ffff_ffff_ffffn;

/** Multicast groups (xfrm.h enum xfrm_nlgroups). */
export const XFRMNLGRP_ACQUIRE = 1;
export const XFRMNLGRP_EXPIRE = 2;
export const XFRMNLGRP_SA = 3;
export const XFRMNLGRP_POLICY = 4;

/** IP protocols used in xfrm_id.proto (linux/in.h). */
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_COMP = 108;

/** ESP-in-UDP encapsulation type for XFRMA_ENCAP (linux/udp.h UDP_ENCAP_ESPINUDP). */
export const UDP_ENCAP_ESPINUDP = 2;

/** Struct sizes (x86_64, LP64), from sizeof in C. */
export const XFRM_ADDRESS_LEN = 16;
export const XFRM_SELECTOR_LEN = 56;
export const XFRM_ID_LEN = 24;
export const XFRM_LIFETIME_CFG_LEN = 64;
export const XFRM_LIFETIME_CUR_LEN = 32;
export const XFRM_STATS_LEN = 12;
export const XFRM_USERSA_INFO_LEN = 224;
export const XFRM_USERSA_ID_LEN = 24;
export const XFRM_USERPOLICY_INFO_LEN = 168;
export const XFRM_USERPOLICY_ID_LEN = 64;
export const XFRM_USER_TMPL_LEN = 64;
export const XFRM_ENCAP_TMPL_LEN = 24;
export const XFRM_ALGO_LEN = 68;
export const XFRM_ALGO_AEAD_LEN = 72;
export const XFRM_ALGO_AUTH_LEN = 72;
export const XFRM_MARK_LEN = 8;
export const XFRM_USERPOLICY_TYPE_LEN = 6;
export const XFRM_REPLAY_STATE_LEN = 12;
/** Length of the NUL-padded algorithm name in struct xfrm_algo*. */
export const XFRM_ALG_NAME_LEN = 64;

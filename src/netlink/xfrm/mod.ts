/**
 * xfrm (NETLINK_XFRM): IPsec states and policies as pure encode and decode functions, for the
 * ipsec backend's ESP tunnel-mode policies (reqid 11) and for reading them back.
 *
 * @example
 * ```ts
 * import { IP4, IP4Net } from "../../ip/mod.ts";
 * import {
 *   decodePolicy, espTunnelTmpl, updatePolicyRequest, XFRM_POLICY_OUT, xfrmLifetimeInfinite,
 *   xfrmLifetimeZero, xfrmSelector,
 * } from "./mod.ts";
 * const m = updatePolicyRequest({
 *   sel: xfrmSelector(IP4Net.parse("10.1.1.0/24"), IP4Net.parse("10.1.2.0/24")),
 *   lft: xfrmLifetimeInfinite(), curlft: xfrmLifetimeZero(),
 *   priority: 0, index: 0, dir: XFRM_POLICY_OUT, action: 0, flags: 0, share: 0,
 *   tmpls: [espTunnelTmpl(IP4.parse("192.168.1.1"), IP4.parse("192.168.1.2"), 11)],
 * });
 * console.assert(decodePolicy(m.payload).tmpls?.[0]?.reqid === 11);
 * ```
 *
 * @module
 */
export * from "./constants.ts";
export {
  espTunnelTmpl,
  type XfrmAddress,
  type XfrmId,
  type XfrmLifetimeCfg,
  type XfrmLifetimeCur,
  xfrmLifetimeInfinite,
  xfrmLifetimeZero,
  type XfrmMark,
  type XfrmSelector,
  xfrmSelector,
  type XfrmUserTmpl,
} from "./structs.ts";
export * from "./state.ts";
export * from "./policy.ts";

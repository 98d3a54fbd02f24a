/**
 * xfrm policies: XFRM_MSG_NEWPOLICY / UPDPOLICY / DELPOLICY / GETPOLICY with struct
 * xfrm_userpolicy_info or xfrm_userpolicy_id and XFRMA_TMPL, an array of struct xfrm_user_tmpl
 * (include/uapi/linux/xfrm.h). flannel's ipsec backend installs, per remote subnet, an OUT policy
 * and IN and FWD policies, each with one ESP tunnel-mode template with reqid 11.
 *
 * Struct fields are always sent; attributes are optional fields, sent only when present, in the
 * order the kernel writes them (as captured), then unmodelled ones in the order they were read.
 *
 * @module
 */
import {
  type Attr,
  AttrDecoder,
  AttrEncoder,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  type NlMsg,
} from "../codec/mod.ts";
import {
  XFRM_MSG_DELPOLICY,
  XFRM_MSG_GETPOLICY,
  XFRM_MSG_NEWPOLICY,
  XFRM_MSG_UPDPOLICY,
  XFRM_USERPOLICY_ID_LEN,
  XFRM_USERPOLICY_INFO_LEN,
  XFRM_USERPOLICY_TYPE_LEN,
  XFRMA_IF_ID,
  XFRMA_MARK,
  XFRMA_POLICY_TYPE,
  XFRMA_TMPL,
} from "./constants.ts";
import {
  decodeMark,
  decodeTmpls,
  encodeMark,
  encodeTmpls,
  getLifetimeCfg,
  getLifetimeCur,
  getSelector,
  need,
  putLifetimeCfg,
  putLifetimeCur,
  putSelector,
  rawType,
  view,
  type XfrmLifetimeCfg,
  type XfrmLifetimeCur,
  type XfrmMark,
  type XfrmSelector,
  type XfrmUserTmpl,
} from "./structs.ts";

/** The attributes policies and policy ids share. */
export interface XfrmPolicyAttrs {
  /** XFRMA_POLICY_TYPE (struct xfrm_userpolicy_type .type): XFRM_POLICY_TYPE_MAIN or _SUB. */
  policyType?: number;
  /** XFRMA_MARK */
  mark?: XfrmMark;
  /** XFRMA_IF_ID */
  ifId?: number;
  /** Attributes this codec does not model, in order; encoded after the modelled ones. */
  unknown?: Attr[];
}

/** A policy: struct xfrm_userpolicy_info and its attributes. */
export interface XfrmPolicy extends XfrmPolicyAttrs {
  sel: XfrmSelector;
  lft: XfrmLifetimeCfg;
  curlft: XfrmLifetimeCur;
  priority: number;
  /** Kernel-assigned on add; 0 in requests. */
  index: number;
  /** XFRM_POLICY_IN, _OUT or _FWD. */
  dir: number;
  /** XFRM_POLICY_ALLOW or _BLOCK. */
  action: number;
  /** XFRM_POLICY_LOCALOK, XFRM_POLICY_ICMP. */
  flags: number;
  share: number;
  /** XFRMA_TMPL: the transforms matching traffic must go through. */
  tmpls?: XfrmUserTmpl[];
}

/** Names a policy for DELPOLICY and GETPOLICY: by selector and direction, or by index. */
export interface XfrmPolicyId extends XfrmPolicyAttrs {
  sel: XfrmSelector;
  index: number;
  dir: number;
}

function policyAttrs(p: XfrmPolicyAttrs & { tmpls?: XfrmUserTmpl[] }): Uint8Array {
  const ae = new AttrEncoder();
  if (p.tmpls) ae.bytes(XFRMA_TMPL, encodeTmpls(p.tmpls));
  if (p.policyType !== undefined) {
    const b = new Uint8Array(XFRM_USERPOLICY_TYPE_LEN);
    b[0] = p.policyType;
    ae.bytes(XFRMA_POLICY_TYPE, b);
  }
  if (p.mark) ae.bytes(XFRMA_MARK, encodeMark(p.mark));
  if (p.ifId !== undefined) ae.u32(XFRMA_IF_ID, p.ifId);
  for (const a of p.unknown ?? []) ae.bytes(rawType(a), a.data);
  return ae.encode();
}

function readPolicyAttrs(b: Uint8Array, into: XfrmPolicyAttrs & { tmpls?: XfrmUserTmpl[] }): void {
  const unknown: Attr[] = [];
  const ad = new AttrDecoder(b);
  while (ad.next()) {
    switch (ad.type) {
      case XFRMA_TMPL:
        into.tmpls = decodeTmpls(ad.data);
        break;
      case XFRMA_POLICY_TYPE:
        need(ad.data, 1, "XFRMA_POLICY_TYPE");
        into.policyType = ad.data[0]!;
        break;
      case XFRMA_MARK:
        into.mark = decodeMark(ad.data);
        break;
      case XFRMA_IF_ID:
        into.ifId = ad.u32();
        break;
      default:
        unknown.push({ ...ad.attr, data: ad.bytes() });
    }
  }
  if (ad.err) throw ad.err;
  if (unknown.length) into.unknown = unknown;
}

/** Encodes a policy as a message payload: struct xfrm_userpolicy_info, then its attributes. */
export function encodePolicy(p: XfrmPolicy): Uint8Array {
  const attrs = policyAttrs(p);
  const out = new Uint8Array(XFRM_USERPOLICY_INFO_LEN + attrs.length);
  const dv = view(out);
  putSelector(out, 0, p.sel);
  putLifetimeCfg(out, 56, p.lft);
  putLifetimeCur(out, 120, p.curlft);
  dv.setUint32(152, p.priority, true);
  dv.setUint32(156, p.index, true);
  out[160] = p.dir;
  out[161] = p.action;
  out[162] = p.flags;
  out[163] = p.share;
  out.set(attrs, XFRM_USERPOLICY_INFO_LEN);
  return out;
}

/**
 * Decodes the payload of a message carrying a policy: a NEWPOLICY/UPDPOLICY request or
 * notification, or a GETPOLICY reply or dump part (the kernel answers with XFRM_MSG_NEWPOLICY).
 *
 * @throws {NetlinkDecodeError} on a short payload or malformed attributes.
 */
export function decodePolicy(b: Uint8Array): XfrmPolicy {
  need(b, XFRM_USERPOLICY_INFO_LEN, "xfrm_userpolicy_info");
  const dv = view(b);
  const p: XfrmPolicy = {
    sel: getSelector(b, 0),
    lft: getLifetimeCfg(b, 56),
    curlft: getLifetimeCur(b, 120),
    priority: dv.getUint32(152, true),
    index: dv.getUint32(156, true),
    dir: b[160]!,
    action: b[161]!,
    flags: b[162]!,
    share: b[163]!,
  };
  readPolicyAttrs(b.subarray(XFRM_USERPOLICY_INFO_LEN), p);
  return p;
}

/** Encodes struct xfrm_userpolicy_id and its attributes (the DELPOLICY / GETPOLICY payload). */
export function encodePolicyId(id: XfrmPolicyId): Uint8Array {
  const attrs = policyAttrs(id);
  const out = new Uint8Array(XFRM_USERPOLICY_ID_LEN + attrs.length);
  putSelector(out, 0, id.sel);
  view(out).setUint32(56, id.index, true);
  out[60] = id.dir;
  out.set(attrs, XFRM_USERPOLICY_ID_LEN);
  return out;
}

/**
 * Decodes the payload of a DELPOLICY or GETPOLICY request (struct xfrm_userpolicy_id and its
 * attributes).
 *
 * @throws {NetlinkDecodeError} on a short payload or malformed attributes.
 */
export function decodePolicyId(b: Uint8Array): XfrmPolicyId {
  need(b, XFRM_USERPOLICY_ID_LEN, "xfrm_userpolicy_id");
  const id: XfrmPolicyId = { sel: getSelector(b, 0), index: view(b).getUint32(56, true), dir: b[60]! };
  readPolicyAttrs(b.subarray(XFRM_USERPOLICY_ID_LEN), id);
  return id;
}

/** The id that names `p` for delete or get: its selector and direction, and its type and mark. */
export function policyIdOf(p: XfrmPolicy): XfrmPolicyId {
  const id: XfrmPolicyId = { sel: p.sel, index: 0, dir: p.dir };
  if (p.policyType !== undefined) id.policyType = p.policyType;
  if (p.mark) id.mark = p.mark;
  if (p.ifId !== undefined) id.ifId = p.ifId;
  return id;
}

const req = (type: number, flags: number, payload: Uint8Array): NlMsg => ({
  type,
  flags,
  seq: 0,
  pid: 0,
  payload,
});

/** XFRM_MSG_NEWPOLICY: adds a policy; EEXIST when one with the same selector and dir exists. */
export function newPolicyRequest(p: XfrmPolicy): NlMsg {
  return req(XFRM_MSG_NEWPOLICY, NLM_F_REQUEST | NLM_F_ACK, encodePolicy(p));
}

/** XFRM_MSG_UPDPOLICY: adds or replaces the policy with the same selector and dir. */
export function updatePolicyRequest(p: XfrmPolicy): NlMsg {
  return req(XFRM_MSG_UPDPOLICY, NLM_F_REQUEST | NLM_F_ACK, encodePolicy(p));
}

/** XFRM_MSG_DELPOLICY: deletes the policy `id` names; ENOENT when there is none. */
export function deletePolicyRequest(id: XfrmPolicyId): NlMsg {
  return req(XFRM_MSG_DELPOLICY, NLM_F_REQUEST | NLM_F_ACK, encodePolicyId(id));
}

/** XFRM_MSG_GETPOLICY for one policy; the answer is an XFRM_MSG_NEWPOLICY message. */
export function getPolicyRequest(id: XfrmPolicyId): NlMsg {
  return req(XFRM_MSG_GETPOLICY, NLM_F_REQUEST, encodePolicyId(id));
}

/** XFRM_MSG_GETPOLICY dump of all policies. */
export function dumpPoliciesRequest(): NlMsg {
  return req(XFRM_MSG_GETPOLICY, NLM_F_REQUEST | NLM_F_DUMP, new Uint8Array(0));
}

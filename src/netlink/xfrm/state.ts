/**
 * xfrm states (security associations): XFRM_MSG_NEWSA / UPDSA / DELSA / GETSA, with struct
 * xfrm_usersa_info or xfrm_usersa_id and the algorithm and encapsulation attributes
 * (include/uapi/linux/xfrm.h).
 *
 * Struct fields are always sent; attributes are optional fields, sent only when present. They
 * are written in the order the kernel writes them in a dump (as captured; the kernel accepts any
 * order), then any attributes this codec does not model, in the order they were read.
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
  XFRM_ALG_NAME_LEN,
  XFRM_ALGO_AEAD_LEN,
  XFRM_ALGO_LEN,
  XFRM_ENCAP_TMPL_LEN,
  XFRM_MSG_DELSA,
  XFRM_MSG_GETSA,
  XFRM_MSG_NEWSA,
  XFRM_MSG_UPDSA,
  XFRM_REPLAY_STATE_LEN,
  XFRM_USERSA_ID_LEN,
  XFRM_USERSA_INFO_LEN,
  XFRMA_ALG_AEAD,
  XFRMA_ALG_AUTH,
  XFRMA_ALG_AUTH_TRUNC,
  XFRMA_ALG_COMP,
  XFRMA_ALG_CRYPT,
  XFRMA_ENCAP,
  XFRMA_IF_ID,
  XFRMA_MARK,
  XFRMA_REPLAY_VAL,
  XFRMA_SA_EXTRA_FLAGS,
  XFRMA_SRCADDR,
} from "./constants.ts";
import {
  decodeMark,
  encodeMark,
  getAddress,
  getId,
  getLifetimeCfg,
  getLifetimeCur,
  getSelector,
  need,
  putAddress,
  putId,
  putLifetimeCfg,
  putLifetimeCur,
  putSelector,
  rawType,
  view,
  type XfrmAddress,
  type XfrmId,
  type XfrmLifetimeCfg,
  type XfrmLifetimeCur,
  type XfrmMark,
  type XfrmSelector,
} from "./structs.ts";

/** struct xfrm_algo (XFRMA_ALG_CRYPT, XFRMA_ALG_AUTH, XFRMA_ALG_COMP). */
export interface XfrmAlgo {
  /** Crypto API name, e.g. `cbc(aes)`; at most 63 bytes. */
  name: string;
  /** The key; alg_key_len is its length in bits. */
  key: Uint8Array;
}

/** struct xfrm_algo_aead (XFRMA_ALG_AEAD), e.g. `rfc4106(gcm(aes))`. */
export interface XfrmAlgoAead extends XfrmAlgo {
  /** ICV length in bits. */
  icvLen: number;
}

/** struct xfrm_algo_auth (XFRMA_ALG_AUTH_TRUNC). */
export interface XfrmAlgoAuth extends XfrmAlgo {
  /** Truncated ICV length in bits. */
  truncLen: number;
}

/** struct xfrm_encap_tmpl (XFRMA_ENCAP): ESP in UDP. */
export interface XfrmEncapTmpl {
  /** UDP_ENCAP_ESPINUDP. */
  type: number;
  sport: number;
  dport: number;
  /** Original address (NAT-OA). */
  oa: XfrmAddress;
}

/** struct xfrm_stats (output; zeros on input). */
export interface XfrmStats {
  replayWindow: number;
  replay: number;
  integrityFailed: number;
}

/** struct xfrm_replay_state (XFRMA_REPLAY_VAL). */
export interface XfrmReplayState {
  oseq: number;
  seq: number;
  bitmap: number;
}

/** A state: struct xfrm_usersa_info and its attributes. */
export interface XfrmState {
  sel: XfrmSelector;
  id: XfrmId;
  /** Tunnel source. */
  saddr: XfrmAddress;
  lft: XfrmLifetimeCfg;
  curlft: XfrmLifetimeCur;
  stats: XfrmStats;
  seq: number;
  reqid: number;
  /** Address family of `id.daddr` and `saddr`. */
  family: number;
  mode: number;
  replayWindow: number;
  /** XFRM_STATE_* */
  flags: number;
  /** XFRMA_SA_EXTRA_FLAGS */
  extraFlags?: number;
  /** XFRMA_ALG_AEAD */
  aead?: XfrmAlgoAead;
  /** XFRMA_ALG_AUTH (the kernel reports both this and XFRMA_ALG_AUTH_TRUNC) */
  auth?: XfrmAlgo;
  /** XFRMA_ALG_AUTH_TRUNC */
  authTrunc?: XfrmAlgoAuth;
  /** XFRMA_ALG_CRYPT */
  crypt?: XfrmAlgo;
  /** XFRMA_ALG_COMP */
  comp?: XfrmAlgo;
  /** XFRMA_ENCAP */
  encap?: XfrmEncapTmpl;
  /** XFRMA_MARK */
  mark?: XfrmMark;
  /** XFRMA_REPLAY_VAL (output) */
  replayState?: XfrmReplayState;
  /** XFRMA_IF_ID */
  ifId?: number;
  /** Attributes this codec does not model, in order; encoded after the modelled ones. */
  unknown?: Attr[];
}

/** Names a state for DELSA and GETSA: struct xfrm_usersa_id and its attributes. */
export interface XfrmStateId {
  daddr: XfrmAddress;
  spi: number;
  family: number;
  proto: number;
  /** XFRMA_SRCADDR */
  saddr?: XfrmAddress;
  /** XFRMA_MARK */
  mark?: XfrmMark;
  unknown?: Attr[];
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Encodes struct xfrm_algo, or xfrm_algo_aead / xfrm_algo_auth when `extra` (icv/trunc bits) is given. */
function encodeAlgo(a: XfrmAlgo, extra?: number): Uint8Array {
  const name = enc.encode(a.name);
  if (name.length >= XFRM_ALG_NAME_LEN) {
    throw new RangeError(`xfrm algorithm name "${a.name}" is ${name.length} bytes, must be at most 63`);
  }
  const head = extra === undefined ? XFRM_ALGO_LEN : XFRM_ALGO_AEAD_LEN;
  const out = new Uint8Array(head + a.key.length);
  out.set(name);
  view(out).setUint32(64, a.key.length * 8, true);
  if (extra !== undefined) view(out).setUint32(68, extra, true);
  out.set(a.key, head);
  return out;
}

function decodeAlgo(b: Uint8Array, what: string, withExtra: boolean): { algo: XfrmAlgo; extra: number } {
  const head = withExtra ? XFRM_ALGO_AEAD_LEN : XFRM_ALGO_LEN;
  need(b, head, what);
  const bits = view(b).getUint32(64, true);
  const keyLen = Math.ceil(bits / 8);
  need(b, head + keyLen, `${what} with a ${bits}-bit key`);
  const nul = b.subarray(0, XFRM_ALG_NAME_LEN).indexOf(0);
  return {
    algo: {
      name: dec.decode(b.subarray(0, nul < 0 ? XFRM_ALG_NAME_LEN : nul)),
      key: b.slice(head, head + keyLen),
    },
    extra: withExtra ? view(b).getUint32(68, true) : 0,
  };
}

/** Writes the attributes of a state, in the kernel's order. */
function stateAttrs(s: XfrmState): Uint8Array {
  const ae = new AttrEncoder();
  if (s.extraFlags !== undefined) ae.u32(XFRMA_SA_EXTRA_FLAGS, s.extraFlags);
  if (s.aead) ae.bytes(XFRMA_ALG_AEAD, encodeAlgo(s.aead, s.aead.icvLen));
  if (s.auth) ae.bytes(XFRMA_ALG_AUTH, encodeAlgo(s.auth));
  if (s.authTrunc) ae.bytes(XFRMA_ALG_AUTH_TRUNC, encodeAlgo(s.authTrunc, s.authTrunc.truncLen));
  if (s.crypt) ae.bytes(XFRMA_ALG_CRYPT, encodeAlgo(s.crypt));
  if (s.comp) ae.bytes(XFRMA_ALG_COMP, encodeAlgo(s.comp));
  if (s.encap) {
    const b = new Uint8Array(XFRM_ENCAP_TMPL_LEN);
    view(b).setUint16(0, s.encap.type, true);
    view(b).setUint16(2, s.encap.sport, false);
    view(b).setUint16(4, s.encap.dport, false);
    putAddress(b, 8, s.encap.oa);
    ae.bytes(XFRMA_ENCAP, b);
  }
  if (s.mark) ae.bytes(XFRMA_MARK, encodeMark(s.mark));
  if (s.replayState) {
    const b = new Uint8Array(XFRM_REPLAY_STATE_LEN);
    view(b).setUint32(0, s.replayState.oseq, true);
    view(b).setUint32(4, s.replayState.seq, true);
    view(b).setUint32(8, s.replayState.bitmap, true);
    ae.bytes(XFRMA_REPLAY_VAL, b);
  }
  if (s.ifId !== undefined) ae.u32(XFRMA_IF_ID, s.ifId);
  for (const a of s.unknown ?? []) ae.bytes(rawType(a), a.data);
  return ae.encode();
}

/**
 * Encodes a state as a message payload: struct xfrm_usersa_info, then its attributes.
 *
 * @throws {RangeError} when an algorithm name is longer than 63 bytes.
 */
export function encodeState(s: XfrmState): Uint8Array {
  const attrs = stateAttrs(s);
  const out = new Uint8Array(XFRM_USERSA_INFO_LEN + attrs.length);
  const dv = view(out);
  putSelector(out, 0, s.sel);
  putId(out, 56, s.id);
  putAddress(out, 80, s.saddr);
  putLifetimeCfg(out, 96, s.lft);
  putLifetimeCur(out, 160, s.curlft);
  dv.setUint32(192, s.stats.replayWindow, true);
  dv.setUint32(196, s.stats.replay, true);
  dv.setUint32(200, s.stats.integrityFailed, true);
  dv.setUint32(204, s.seq, true);
  dv.setUint32(208, s.reqid, true);
  dv.setUint16(212, s.family, true);
  out[214] = s.mode;
  out[215] = s.replayWindow;
  out[216] = s.flags;
  out.set(attrs, XFRM_USERSA_INFO_LEN);
  return out;
}

/**
 * Decodes the payload of a message carrying a state: a NEWSA/UPDSA request or notification, or
 * a GETSA reply or dump part (the kernel answers with type XFRM_MSG_NEWSA).
 *
 * @throws {NetlinkDecodeError} on a short payload or malformed attributes.
 */
export function decodeState(p: Uint8Array): XfrmState {
  need(p, XFRM_USERSA_INFO_LEN, "xfrm_usersa_info");
  const dv = view(p);
  const family = dv.getUint16(212, true);
  const s: XfrmState = {
    sel: getSelector(p, 0),
    id: getId(p, 56, family),
    saddr: getAddress(p, 80, family),
    lft: getLifetimeCfg(p, 96),
    curlft: getLifetimeCur(p, 160),
    stats: {
      replayWindow: dv.getUint32(192, true),
      replay: dv.getUint32(196, true),
      integrityFailed: dv.getUint32(200, true),
    },
    seq: dv.getUint32(204, true),
    reqid: dv.getUint32(208, true),
    family,
    mode: p[214]!,
    replayWindow: p[215]!,
    flags: p[216]!,
  };
  const unknown: Attr[] = [];
  const ad = new AttrDecoder(p.subarray(XFRM_USERSA_INFO_LEN));
  while (ad.next()) {
    const b = ad.data;
    switch (ad.type) {
      case XFRMA_SA_EXTRA_FLAGS:
        s.extraFlags = ad.u32();
        break;
      case XFRMA_ALG_AEAD: {
        const { algo, extra } = decodeAlgo(b, "XFRMA_ALG_AEAD", true);
        s.aead = { ...algo, icvLen: extra };
        break;
      }
      case XFRMA_ALG_AUTH:
        s.auth = decodeAlgo(b, "XFRMA_ALG_AUTH", false).algo;
        break;
      case XFRMA_ALG_AUTH_TRUNC: {
        const { algo, extra } = decodeAlgo(b, "XFRMA_ALG_AUTH_TRUNC", true);
        s.authTrunc = { ...algo, truncLen: extra };
        break;
      }
      case XFRMA_ALG_CRYPT:
        s.crypt = decodeAlgo(b, "XFRMA_ALG_CRYPT", false).algo;
        break;
      case XFRMA_ALG_COMP:
        s.comp = decodeAlgo(b, "XFRMA_ALG_COMP", false).algo;
        break;
      case XFRMA_ENCAP:
        need(b, XFRM_ENCAP_TMPL_LEN, "XFRMA_ENCAP");
        s.encap = {
          type: view(b).getUint16(0, true),
          sport: view(b).getUint16(2, false),
          dport: view(b).getUint16(4, false),
          oa: getAddress(b, 8, family),
        };
        break;
      case XFRMA_MARK:
        s.mark = decodeMark(b);
        break;
      case XFRMA_REPLAY_VAL:
        need(b, XFRM_REPLAY_STATE_LEN, "XFRMA_REPLAY_VAL");
        s.replayState = {
          oseq: view(b).getUint32(0, true),
          seq: view(b).getUint32(4, true),
          bitmap: view(b).getUint32(8, true),
        };
        break;
      case XFRMA_IF_ID:
        s.ifId = ad.u32();
        break;
      default:
        unknown.push({ ...ad.attr, data: ad.bytes() });
    }
  }
  if (ad.err) throw ad.err;
  if (unknown.length) s.unknown = unknown;
  return s;
}

/** Encodes struct xfrm_usersa_id and its attributes (the DELSA / GETSA payload). */
export function encodeStateId(id: XfrmStateId): Uint8Array {
  const ae = new AttrEncoder();
  if (id.saddr) {
    const b = new Uint8Array(16);
    putAddress(b, 0, id.saddr);
    ae.bytes(XFRMA_SRCADDR, b);
  }
  if (id.mark) ae.bytes(XFRMA_MARK, encodeMark(id.mark));
  for (const a of id.unknown ?? []) ae.bytes(rawType(a), a.data);
  const attrs = ae.encode();
  const out = new Uint8Array(XFRM_USERSA_ID_LEN + attrs.length);
  putAddress(out, 0, id.daddr);
  view(out).setUint32(16, id.spi, false);
  view(out).setUint16(20, id.family, true);
  out[22] = id.proto;
  out.set(attrs, XFRM_USERSA_ID_LEN);
  return out;
}

/**
 * Decodes the payload of a DELSA or GETSA request (struct xfrm_usersa_id and its attributes).
 *
 * @throws {NetlinkDecodeError} on a short payload or malformed attributes.
 */
export function decodeStateId(p: Uint8Array): XfrmStateId {
  need(p, XFRM_USERSA_ID_LEN, "xfrm_usersa_id");
  const family = view(p).getUint16(20, true);
  const id: XfrmStateId = {
    daddr: getAddress(p, 0, family),
    spi: view(p).getUint32(16, false),
    family,
    proto: p[22]!,
  };
  const unknown: Attr[] = [];
  const ad = new AttrDecoder(p.subarray(XFRM_USERSA_ID_LEN));
  while (ad.next()) {
    if (ad.type === XFRMA_SRCADDR) {
      need(ad.data, 16, "XFRMA_SRCADDR");
      id.saddr = getAddress(ad.data, 0, family);
    } else if (ad.type === XFRMA_MARK) id.mark = decodeMark(ad.data);
    else unknown.push({ ...ad.attr, data: ad.bytes() });
  }
  if (ad.err) throw ad.err;
  if (unknown.length) id.unknown = unknown;
  return id;
}

const req = (type: number, flags: number, payload: Uint8Array): NlMsg => ({
  type,
  flags,
  seq: 0,
  pid: 0,
  payload,
});

/** XFRM_MSG_NEWSA: adds a state; EEXIST when one with the same (daddr, spi, proto) exists. */
export function newStateRequest(s: XfrmState): NlMsg {
  return req(XFRM_MSG_NEWSA, NLM_F_REQUEST | NLM_F_ACK, encodeState(s));
}

/** XFRM_MSG_UPDSA: replaces an existing state; ESRCH when there is none. */
export function updateStateRequest(s: XfrmState): NlMsg {
  return req(XFRM_MSG_UPDSA, NLM_F_REQUEST | NLM_F_ACK, encodeState(s));
}

/** XFRM_MSG_DELSA: deletes the state `id` names; ESRCH when there is none. */
export function deleteStateRequest(id: XfrmStateId): NlMsg {
  return req(XFRM_MSG_DELSA, NLM_F_REQUEST | NLM_F_ACK, encodeStateId(id));
}

/** XFRM_MSG_GETSA for one state; the answer is an XFRM_MSG_NEWSA message. */
export function getStateRequest(id: XfrmStateId): NlMsg {
  return req(XFRM_MSG_GETSA, NLM_F_REQUEST, encodeStateId(id));
}

/** XFRM_MSG_GETSA dump of all states (no filter). */
export function dumpStatesRequest(): NlMsg {
  return req(XFRM_MSG_GETSA, NLM_F_REQUEST | NLM_F_DUMP, new Uint8Array(0));
}

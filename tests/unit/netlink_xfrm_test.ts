/**
 * xfrm codec: states and policies against bytes captured from real kernels
 * (tests/fixtures/netlink/xfrm/, see capture.sh there: policies on this machine's kernel, ESP
 * states in the kernel lab's Debian 6.1), both ways; struct layouts as literal bytes; round trips;
 * fuzzing of every decoder.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { IP4, IP4Net, IP6 } from "../../src/ip/mod.ts";
import {
  decodeError,
  decodeMessages,
  encodeMessage,
  encodeMessages,
  NetlinkDecodeError,
  NLM_F_MULTI,
  type NlMsg,
  NLMSG_DONE,
} from "../../src/netlink/codec/mod.ts";
import {
  decodePolicy,
  decodePolicyId,
  decodeState,
  decodeStateId,
  deletePolicyRequest,
  deleteStateRequest,
  dumpPoliciesRequest,
  dumpStatesRequest,
  encodePolicy,
  encodePolicyId,
  encodeState,
  encodeStateId,
  espTunnelTmpl,
  getPolicyRequest,
  getStateRequest,
  IPPROTO_ESP,
  newPolicyRequest,
  newStateRequest,
  policyIdOf,
  UDP_ENCAP_ESPINUDP,
  updatePolicyRequest,
  updateStateRequest,
  XFRM_MODE_TUNNEL,
  XFRM_MSG_GETSA,
  XFRM_MSG_NEWPOLICY,
  XFRM_MSG_NEWSA,
  XFRM_POLICY_ALLOW,
  XFRM_POLICY_FWD,
  XFRM_POLICY_IN,
  XFRM_POLICY_OUT,
  XFRM_POLICY_TYPE_MAIN,
  XFRM_SHARE_ANY,
  type XfrmAddress,
  xfrmLifetimeInfinite,
  xfrmLifetimeZero,
  type XfrmPolicy,
  type XfrmSelector,
  xfrmSelector,
  type XfrmState,
  type XfrmStateId,
} from "../../src/netlink/xfrm/mod.ts";

const DIR = new URL("../fixtures/netlink/xfrm/", import.meta.url);

/** The bytes of a fixture file: `#` lines are notes, the rest hex. */
function fixture(name: string): Uint8Array {
  const text = Deno.readTextFileSync(new URL(`${name}.hex`, DIR));
  const hex = text.split("\n").filter((l) => !l.startsWith("#")).join(" ").trim();
  return Uint8Array.from(hex.split(/\s+/), (h) => parseInt(h, 16));
}
const messages = (name: string): NlMsg[] => decodeMessages(fixture(name));
function one(name: string): NlMsg {
  const ms = messages(name);
  assert.equal(ms.length, 1, name);
  return ms[0]!;
}
/** `m` with the header fields a capture has and a codec cannot know (sequence, port id). */
const as = (m: NlMsg, captured: NlMsg): NlMsg => ({ ...m, seq: captured.seq, pid: captured.pid });
const ip4 = IP4.parse;
const bytes = (from: number, n: number) => Uint8Array.from({ length: n }, (_, i) => from + i);

// --- struct layouts ------------------------------------------------------------------------------

Deno.test("xfrm_selector is 56 bytes: addresses, big-endian ports, family, prefixes, proto, ifindex, user", () => {
  const sel: XfrmSelector = {
    daddr: ip4("10.1.2.0"),
    saddr: ip4("10.1.1.0"),
    dport: 4500,
    dportMask: 0xffff,
    sport: 500,
    sportMask: 0xff00,
    family: 2,
    prefixlenD: 24,
    prefixlenS: 16,
    proto: 17,
    ifindex: -1,
    user: 1000,
  };
  const want = Uint8Array.of(
    ...[10, 1, 2, 0, ...new Array(12).fill(0)], // daddr (xfrm_address_t, IPv4 in the first 4 bytes)
    ...[10, 1, 1, 0, ...new Array(12).fill(0)], // saddr
    ...[0x11, 0x94], // dport 4500, network order
    ...[0xff, 0xff], // dport_mask
    ...[0x01, 0xf4], // sport 500
    ...[0xff, 0x00], // sport_mask
    ...[0x02, 0x00], // family AF_INET, host order
    ...[24], // prefixlen_d
    ...[16], // prefixlen_s
    ...[17], // proto
    ...[0, 0, 0], // padding
    ...[0xff, 0xff, 0xff, 0xff], // ifindex -1
    ...[0xe8, 0x03, 0, 0], // user 1000
  );
  const id = { sel, index: 0x01020304, dir: XFRM_POLICY_FWD };
  const payload = encodePolicyId(id);
  assert.equal(payload.length, 64); // sizeof(struct xfrm_userpolicy_id)
  assert.deepEqual(payload.subarray(0, 56), want);
  assert.deepEqual(payload.subarray(56), Uint8Array.of(4, 3, 2, 1, XFRM_POLICY_FWD, 0, 0, 0));
  assert.deepEqual(decodePolicyId(payload), id);
});

Deno.test("xfrm_usersa_id is daddr, big-endian SPI, family, proto; XFRMA_SRCADDR follows", () => {
  const id: XfrmStateId = {
    daddr: ip4("192.168.1.2"),
    spi: 0x1000,
    family: 2,
    proto: IPPROTO_ESP,
    saddr: ip4("192.168.1.1"),
  };
  assert.deepEqual(
    encodeStateId(id),
    Uint8Array.of(
      ...[192, 168, 1, 2, ...new Array(12).fill(0)], // daddr
      ...[0x00, 0x00, 0x10, 0x00], // spi, network order
      ...[0x02, 0x00], // family
      ...[50], // proto ESP
      ...[0], // padding
      ...[0x14, 0x00, 0x0d, 0x00], // nlattr: length 20, XFRMA_SRCADDR
      ...[192, 168, 1, 1, ...new Array(12).fill(0)], // xfrm_address_t
    ),
  );
  assert.deepEqual(decodeStateId(encodeStateId(id)), id);
});

// --- policies ------------------------------------------------------------------------------------------

/** An ESP tunnel policy as flannel's ipsec backend installs them (reqid 11). */
function tunnelPolicy(src: string, dst: string, dir: number, from: string, to: string): XfrmPolicy {
  return {
    sel: xfrmSelector(IP4Net.parse(src), IP4Net.parse(dst)),
    lft: xfrmLifetimeInfinite(),
    curlft: xfrmLifetimeZero(),
    priority: 0,
    index: 0,
    dir,
    action: XFRM_POLICY_ALLOW,
    flags: 0,
    share: XFRM_SHARE_ANY,
    tmpls: [espTunnelTmpl(ip4(from), ip4(to), 11)],
  };
}
const OUT = tunnelPolicy("10.1.1.0/24", "10.1.2.0/24", XFRM_POLICY_OUT, "192.168.1.1", "192.168.1.2");
const IN = tunnelPolicy("10.1.2.0/24", "10.1.1.0/24", XFRM_POLICY_IN, "192.168.1.2", "192.168.1.1");
const FWD = tunnelPolicy("10.1.2.0/24", "10.1.1.0/24", XFRM_POLICY_FWD, "192.168.1.2", "192.168.1.1");

const POLICY_REQUESTS = [
  { name: "policy_add_out", policy: OUT, build: newPolicyRequest },
  { name: "policy_add_in", policy: IN, build: newPolicyRequest },
  { name: "policy_update_fwd", policy: FWD, build: updatePolicyRequest },
];

for (const c of POLICY_REQUESTS) {
  Deno.test(`${c.name}: our request is the bytes ip(8) sent, and decodes back`, () => {
    const m = one(`${c.name}.request`);
    assert.deepEqual(decodePolicy(m.payload), c.policy);
    assert.deepEqual(encodeMessage(as(c.build(c.policy), m)), fixture(`${c.name}.request`));
    assert(decodeError(one(`${c.name}.reply`)).errno === 0); // ACK (the core reports -0)
  });
}

/** What the kernel reports: its index, the add time, and the policy type. */
const reported = (p: XfrmPolicy, index: number): XfrmPolicy => ({
  ...p,
  index,
  curlft: { ...p.curlft, addTime: 1795308493n },
  policyType: XFRM_POLICY_TYPE_MAIN,
});

Deno.test("policy dump: request, three policies, DONE; each re-encodes exactly", () => {
  const req = one("policy_dump.request");
  assert.deepEqual(encodeMessage(as(dumpPoliciesRequest(), req)), fixture("policy_dump.request"));
  const ms = messages("policy_dump.reply");
  assert.deepEqual(ms.map((m) => [m.type, m.flags]), new Array(3).fill([XFRM_MSG_NEWPOLICY, NLM_F_MULTI]));
  const want = [reported(FWD, 18), reported(IN, 8), reported(OUT, 1)];
  assert.deepEqual(ms.map((m) => decodePolicy(m.payload)), want);
  const ours = want.map((p, i) =>
    as({ type: XFRM_MSG_NEWPOLICY, flags: NLM_F_MULTI, payload: encodePolicy(p) } as NlMsg, ms[i]!)
  );
  assert.deepEqual(encodeMessages(ours), fixture("policy_dump.reply"));
  assert.equal(one("policy_dump.reply2").type, NLMSG_DONE);
});

Deno.test("policy get and delete name the policy by selector and dir", () => {
  for (
    const [name, build] of [["policy_get", getPolicyRequest], ["policy_delete", deletePolicyRequest]] as const
  ) {
    const m = one(`${name}.request`);
    assert.deepEqual(decodePolicyId(m.payload), policyIdOf(OUT));
    assert.deepEqual(encodeMessage(as(build(policyIdOf(OUT)), m)), fixture(`${name}.request`));
  }
  const got = one("policy_get.reply");
  assert.equal(got.type, XFRM_MSG_NEWPOLICY);
  assert.deepEqual(decodePolicy(got.payload), reported(OUT, 1));
  assert.deepEqual(
    encodeMessage(as({ ...got, payload: encodePolicy(reported(OUT, 1)) }, got)),
    fixture("policy_get.reply"),
  );
  assert(decodeError(one("policy_delete.reply")).errno === 0);
  assert.equal(decodeError(one("policy_delete_missing.reply")).errno, 2); // ENOENT
});

// --- states ------------------------------------------------------------------------------------------

/** No selector, as `ip xfrm state add` sends it: family 0, which the kernel sets to the state's. */
const NO_SEL: XfrmSelector = {
  daddr: IP6.fromBigInt(0n), // family 0: all 16 bytes
  saddr: IP6.fromBigInt(0n),
  dport: 0,
  dportMask: 0,
  sport: 0,
  sportMask: 0,
  family: 0,
  prefixlenD: 0,
  prefixlenS: 0,
  proto: 0,
  ifindex: 0,
  user: 0,
};

function espState(from: string, to: string, spi: number, algs: Partial<XfrmState>): XfrmState {
  return {
    sel: NO_SEL,
    id: { daddr: ip4(to), spi, proto: IPPROTO_ESP },
    saddr: ip4(from),
    lft: xfrmLifetimeInfinite(),
    curlft: xfrmLifetimeZero(),
    stats: { replayWindow: 0, replay: 0, integrityFailed: 0 },
    seq: 0,
    reqid: 11,
    family: 2,
    mode: XFRM_MODE_TUNNEL,
    replayWindow: 0,
    flags: 0,
    ...algs,
  };
}
const AEAD = espState("192.168.1.1", "192.168.1.2", 0x1000, {
  aead: { name: "rfc4106(gcm(aes))", key: bytes(1, 28), icvLen: 128 },
});
const CBC = espState("192.168.1.2", "192.168.1.1", 0x2000, {
  authTrunc: { name: "hmac(sha256)", key: bytes(0, 32), truncLen: 128 },
  crypt: { name: "cbc(aes)", key: bytes(0, 16) },
  encap: { type: UDP_ENCAP_ESPINUDP, sport: 4500, dport: 4500, oa: ip4("0.0.0.0") },
});
/** What the kernel reports for a state: an IPv4 selector, the add time, the legacy XFRMA_ALG_AUTH, replay state. */
function reportedState(s: XfrmState, addTime: bigint): XfrmState {
  const out: XfrmState = {
    ...s,
    sel: { ...s.sel, daddr: ip4("0.0.0.0"), saddr: ip4("0.0.0.0"), family: 2 },
    curlft: { ...s.curlft, addTime },
    replayState: { oseq: 0, seq: 0, bitmap: 0 },
  };
  if (s.authTrunc) out.auth = { name: s.authTrunc.name, key: s.authTrunc.key };
  return out;
}

const STATE_REQUESTS = [
  { name: "state_add_aead", state: AEAD, build: newStateRequest },
  { name: "state_add_cbc", state: CBC, build: newStateRequest },
  { name: "state_update_aead", state: AEAD, build: updateStateRequest },
  { name: "state_add_no_esp", state: AEAD, build: newStateRequest },
];

for (const c of STATE_REQUESTS) {
  Deno.test(`${c.name}: our request is the bytes ip(8) sent, and decodes back`, () => {
    const m = one(`${c.name}.request`);
    assert.deepEqual(decodeState(m.payload), c.state);
    assert.deepEqual(encodeMessage(as(c.build(c.state), m)), fixture(`${c.name}.request`));
  });
}

Deno.test("a kernel without ESP refuses the state: ENOSYS with the kernel's reason", () => {
  const e = decodeError(one("state_add_no_esp.reply"));
  assert.equal(e.errno, 38); // ENOSYS
  assert.equal(e.message, "Requested AEAD algorithm not found");
  for (const n of ["state_add_aead", "state_add_cbc", "state_update_aead", "state_delete"]) {
    assert(decodeError(one(`${n}.reply`)).errno === 0, n);
  }
});

Deno.test("state dump: two states, DONE; each re-encodes exactly", () => {
  const ms = messages("state_dump.reply");
  const want = [reportedState(CBC, 1795308515n), reportedState(AEAD, 1795308506n)];
  assert.deepEqual(ms.map((m) => decodeState(m.payload)), want);
  const ours = want.map((s, i) =>
    as({ type: XFRM_MSG_NEWSA, flags: NLM_F_MULTI, payload: encodeState(s) } as NlMsg, ms[i]!)
  );
  assert.deepEqual(encodeMessages(ours), fixture("state_dump.reply"));
  assert.equal(one("state_dump.reply2").type, NLMSG_DONE);
  // ip(8) adds an empty XFRMA_ADDRESS_FILTER to its dump request; ours has no filter.
  assert.equal(one("state_dump.request").type, XFRM_MSG_GETSA);
  assert.deepEqual(dumpStatesRequest().payload, new Uint8Array(0));
});

Deno.test("state get and delete name the state by daddr, SPI, proto and source", () => {
  const id: XfrmStateId = {
    daddr: ip4("192.168.1.2"),
    spi: 0x1000,
    family: 2,
    proto: IPPROTO_ESP,
    saddr: ip4("192.168.1.1"),
  };
  for (
    const [name, build] of [["state_get", getStateRequest], ["state_delete", deleteStateRequest]] as const
  ) {
    const m = one(`${name}.request`);
    assert.deepEqual(decodeStateId(m.payload), id);
    assert.deepEqual(encodeMessage(as(build(id), m)), fixture(`${name}.request`));
  }
  const got = one("state_get.reply");
  assert.deepEqual(decodeState(got.payload), reportedState(AEAD, 1795308506n));
  assert.deepEqual(
    encodeMessage({ ...got, payload: encodeState(decodeState(got.payload)) }),
    fixture("state_get.reply"),
  );
});

Deno.test("an algorithm name must fit alg_name[64] with its NUL", () => {
  const s = { ...AEAD, crypt: { name: "x".repeat(64), key: new Uint8Array(16) } };
  assert.throws(() => encodeState(s), RangeError);
  assert.equal(
    decodeState(newStateRequest({ ...s, crypt: { name: "x".repeat(63), key: s.crypt.key } }).payload).crypt
      ?.name.length,
    63,
  );
});

// --- properties ---------------------------------------------------------------------------------------

const NN = { noNullPrototype: true } as const;
const u8 = fc.nat(255);
const u16 = fc.nat(65535);
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const u64 = fc.bigInt(0n, 2n ** 64n - 1n);
const family = fc.constantFrom(2, 10, 0);
/** An address as the decoder reads it for `f`: IPv4 for AF_INET, all 16 bytes otherwise. */
const addr = (f: number): fc.Arbitrary<XfrmAddress> =>
  f === 2 ? u32.map(IP4.fromNumber) : fc.bigInt(0n, 2n ** 128n - 1n).map(IP6.fromBigInt);
const arbSel = family.chain((f) =>
  fc.record({
    daddr: addr(f),
    saddr: addr(f),
    dport: u16,
    dportMask: u16,
    sport: u16,
    sportMask: u16,
    family: fc.constant(f),
    prefixlenD: u8,
    prefixlenS: u8,
    proto: u8,
    ifindex: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    user: u32,
  }, NN)
);
const arbLft = fc.record({
  softByteLimit: u64,
  hardByteLimit: u64,
  softPacketLimit: u64,
  hardPacketLimit: u64,
  softAddExpiresSeconds: u64,
  hardAddExpiresSeconds: u64,
  softUseExpiresSeconds: u64,
  hardUseExpiresSeconds: u64,
}, NN);
const arbCur = fc.record({ bytes: u64, packets: u64, addTime: u64, useTime: u64 }, NN);
const arbMark = fc.record({ v: u32, m: u32 }, NN);
const arbTmpl = family.chain((f) =>
  fc.record({
    id: fc.record({ daddr: addr(f), spi: u32, proto: u8 }, NN),
    family: fc.constant(f),
    saddr: addr(f),
    reqid: u32,
    mode: u8,
    share: u8,
    optional: u8,
    aalgos: u32,
    ealgos: u32,
    calgos: u32,
  }, NN)
);
const optional = { requiredKeys: [] as never[], noNullPrototype: true };
const arbPolicy: fc.Arbitrary<XfrmPolicy> = fc.tuple(
  fc.record({
    sel: arbSel,
    lft: arbLft,
    curlft: arbCur,
    priority: u32,
    index: u32,
    dir: u8,
    action: u8,
    flags: u8,
    share: u8,
  }, NN),
  fc.record(
    { tmpls: fc.array(arbTmpl, { maxLength: 4 }), policyType: u8, mark: arbMark, ifId: u32 },
    optional,
  ),
).map(([a, b]) => ({ ...a, ...b }));
const name = fc.stringMatching(/^[a-z0-9()]{1,63}$/);
const key = fc.uint8Array({ maxLength: 64 });
const arbState: fc.Arbitrary<XfrmState> = family.chain((f) =>
  fc.tuple(
    fc.record({
      sel: arbSel,
      id: fc.record({ daddr: addr(f), spi: u32, proto: u8 }, NN),
      saddr: addr(f),
      lft: arbLft,
      curlft: arbCur,
      stats: fc.record({ replayWindow: u32, replay: u32, integrityFailed: u32 }, NN),
      seq: u32,
      reqid: u32,
      family: fc.constant(f),
      mode: u8,
      replayWindow: u8,
      flags: u8,
    }, NN),
    fc.record({
      extraFlags: u32,
      aead: fc.record({ name, key, icvLen: u32 }, NN),
      auth: fc.record({ name, key }, NN),
      authTrunc: fc.record({ name, key, truncLen: u32 }, NN),
      crypt: fc.record({ name, key }, NN),
      comp: fc.record({ name, key }, NN),
      encap: fc.record({ type: u16, sport: u16, dport: u16, oa: addr(f) }, NN),
      mark: arbMark,
      replayState: fc.record({ oseq: u32, seq: u32, bitmap: u32 }, NN),
      ifId: u32,
    }, optional),
  ).map(([a, b]) => ({ ...a, ...b }))
);

Deno.test("decode(encode(x)) is x for policies, policy ids, states and state ids", () => {
  fc.assert(fc.property(arbPolicy, (p) => {
    assert.deepEqual(decodePolicy(encodePolicy(p)), p);
    const id = { ...policyIdOf(p), index: p.index };
    assert.deepEqual(decodePolicyId(encodePolicyId(id)), id);
  }));
  fc.assert(fc.property(arbState, (s) => {
    assert.deepEqual(decodeState(encodeState(s)), s);
    const id: XfrmStateId = {
      daddr: s.id.daddr,
      spi: s.id.spi,
      family: s.family,
      proto: s.id.proto,
      saddr: s.saddr,
    };
    assert.deepEqual(decodeStateId(encodeStateId(id)), id);
  }));
});

// --- fuzz: only NetlinkDecodeError -----------------------------------------------------------------

const CORPUS = [
  "policy_add_out.request",
  "policy_dump.reply",
  "policy_get.request",
  "state_add_cbc.request",
  "state_dump.reply",
  "state_get.request",
].map((n) => messages(n)[0]!.payload);

const arbPayload = fc.oneof(
  fc.uint8Array({ maxLength: 400 }),
  fc.tuple(
    fc.constantFrom(...CORPUS),
    fc.array(fc.tuple(fc.nat(), u8), { maxLength: 6 }),
    fc.option(fc.nat()),
  ).map(([p, edits, cut]) => {
    const b = cut === null ? p.slice() : p.slice(0, cut % (p.length + 1));
    for (const [at, v] of edits) if (b.length) b[at % b.length] = v;
    return b;
  }),
);

function onlyDecodeErrors(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof NetlinkDecodeError)) throw e;
  }
}

Deno.test("fuzz: the xfrm decoders throw nothing but NetlinkDecodeError", () => {
  fc.assert(
    fc.property(arbPayload, (payload) => {
      onlyDecodeErrors(() => decodePolicy(payload));
      onlyDecodeErrors(() => decodePolicyId(payload));
      onlyDecodeErrors(() => decodeState(payload));
      onlyDecodeErrors(() => decodeStateId(payload));
    }),
    { numRuns: 3000 },
  );
});

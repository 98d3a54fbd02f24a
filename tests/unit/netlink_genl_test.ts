/**
 * Generic netlink codec: the controller and the wireguard family, against bytes captured from
 * real kernels (tests/fixtures/netlink/genl/, see capture.sh there: the controller on this
 * machine's kernel, wireguard in the kernel lab's Debian 6.1), both ways, plus round trips,
 * the SET splitter, and fuzzing of every decoder.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { x25519 } from "@noble/curves/ed25519.js";
import { IP4, IP4Net, IP6, IP6Net } from "../../src/ip/mod.ts";
import {
  decodeError,
  decodeMessages,
  encodeMessage,
  encodeMessages,
  NetlinkDecodeError,
  type NlMsg,
  NLMSG_DONE,
} from "../../src/netlink/codec/mod.ts";
import {
  CTRL_CMD_GETFAMILY,
  decodeDeviceAttrs,
  decodeFamily,
  decodeGenl,
  decodeSockaddr,
  decodeWgDevice,
  encodeDeviceAttrs,
  encodeFamily,
  encodeGenl,
  encodeSockaddr,
  encodeWgDevice,
  GENL_ADMIN_PERM,
  GENL_CMD_CAP_DO,
  GENL_CMD_CAP_DUMP,
  GENL_CMD_CAP_HASPOL,
  GENL_ID_CTRL,
  GENL_UNS_ADMIN_PERM,
  type GenlFamily,
  getFamilyRequest,
  WG_CMD_GET_DEVICE,
  WG_GENL_NAME,
  WG_SET_DEVICE_MAX_BYTES,
  type WgDevice,
  WGDEVICE_F_REPLACE_PEERS,
  wgGetDeviceRequest,
  type WgPeer,
  WGPEER_F_REMOVE_ME,
  WGPEER_F_REPLACE_ALLOWEDIPS,
  WGPEER_F_UPDATE_ONLY,
  wgSetDeviceRequests,
} from "../../src/netlink/genl/mod.ts";

const DIR = new URL("../fixtures/netlink/genl/", import.meta.url);

/** The bytes of a fixture file: `#` lines are notes, the rest hex. */
function fixture(name: string): Uint8Array {
  const text = Deno.readTextFileSync(new URL(`${name}.hex`, DIR));
  const hex = text.split("\n").filter((l) => !l.startsWith("#")).join(" ").trim();
  return Uint8Array.from(hex.split(/\s+/), (h) => parseInt(h, 16));
}
const messages = (...names: string[]): NlMsg[] => names.flatMap((n) => decodeMessages(fixture(n)));
/** The one message of a fixture. */
function one(name: string): NlMsg {
  const ms = messages(name);
  assert.equal(ms.length, 1, name);
  return ms[0]!;
}
/** `m` with the header fields a capture has and a codec cannot know (sequence, port id). */
const as = (m: NlMsg, captured: NlMsg): NlMsg => ({ ...m, seq: captured.seq, pid: captured.pid });
const key = (b: number) => new Uint8Array(32).fill(b);

// --- genlmsghdr ------------------------------------------------------------------------------------

Deno.test("genlmsghdr is command, version and two reserved bytes before the attributes", () => {
  const payload = encodeGenl(CTRL_CMD_GETFAMILY, 1, Uint8Array.of(8, 0, 1, 0, 0x10, 0, 0, 0));
  assert.deepEqual(
    payload,
    Uint8Array.of(
      ...[0x03], // cmd: CTRL_CMD_GETFAMILY
      ...[0x01], // version
      ...[0x00, 0x00], // reserved
      ...[8, 0, 1, 0, 0x10, 0, 0, 0], // attributes
    ),
  );
  const d = decodeGenl(payload);
  assert.equal(d.cmd, CTRL_CMD_GETFAMILY);
  assert.equal(d.version, 1);
  assert.deepEqual(d.attrs, payload.subarray(4));
  assert.throws(() => decodeGenl(Uint8Array.of(3, 1, 0)), NetlinkDecodeError);
});

// --- controller ----------------------------------------------------------------------------------

const WG_FAMILY: GenlFamily = {
  id: 0x20,
  name: "wireguard",
  version: 1,
  hdrSize: 0,
  maxAttr: 8,
  ops: [
    { id: 0, flags: GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_HASPOL | GENL_CMD_CAP_DUMP }, // WG_CMD_GET_DEVICE
    { id: 1, flags: GENL_UNS_ADMIN_PERM | GENL_CMD_CAP_HASPOL | GENL_CMD_CAP_DO }, // WG_CMD_SET_DEVICE
  ],
  mcastGroups: [],
};

const FAMILY_CASES: { name: string; family: GenlFamily }[] = [
  {
    name: "ctrl_getfamily_nlctrl",
    family: {
      id: GENL_ID_CTRL,
      name: "nlctrl",
      version: 2,
      hdrSize: 0,
      maxAttr: 0,
      ops: [
        { id: CTRL_CMD_GETFAMILY, flags: GENL_CMD_CAP_HASPOL | GENL_CMD_CAP_DUMP | GENL_CMD_CAP_DO },
        { id: 10, /* CTRL_CMD_GETPOLICY */ flags: GENL_CMD_CAP_HASPOL | GENL_CMD_CAP_DUMP },
      ],
      mcastGroups: [{ name: "notify", id: 0x10 }],
    },
  },
  { name: "ctrl_getfamily_wireguard", family: WG_FAMILY },
  { name: "ctrl_getfamily_wg", family: WG_FAMILY },
];

for (const c of FAMILY_CASES) {
  Deno.test(`controller reply ${c.name} decodes and re-encodes to the captured bytes`, () => {
    const m = one(`${c.name}.reply`);
    assert.deepEqual(decodeFamily(m.payload), c.family);
    assert.deepEqual(encodeMessage({ ...m, payload: encodeFamily(c.family) }), fixture(`${c.name}.reply`));
  });
}

Deno.test("getFamilyRequest is the request wg(8) sends", () => {
  const captured = one("ctrl_getfamily_wg.request");
  assert.deepEqual(
    encodeMessage(as(getFamilyRequest(WG_GENL_NAME), captured)),
    fixture("ctrl_getfamily_wg.request"),
  );
  // genl(8) sends the same with version 0; the controller ignores the version.
  const genl = one("ctrl_getfamily_wireguard.request");
  assert.deepEqual(genl.payload.subarray(4), getFamilyRequest(WG_GENL_NAME).payload.subarray(4));
});

Deno.test("a family this kernel lacks is ENOENT, and a plain ACK follows wireguard requests", () => {
  assert.equal(decodeError(one("ctrl_getfamily_missing.reply")).errno, 2); // ENOENT: no wireguard here
  assert.equal(decodeError(one("wg_get_missing.reply")).errno, 19); // ENODEV: no such device
  // `=== 0`: the codec core reports an ACK's errno as -0.
  for (const n of ["wg_set", "wg_setconf", "wg_remove_peer"]) {
    assert(decodeError(one(`${n}.reply`)).errno === 0);
  }
});

Deno.test("decodeFamily requires the id and the name", () => {
  assert.throws(() => decodeFamily(encodeGenl(1, 2, new Uint8Array())), NetlinkDecodeError);
});

// --- wireguard: captured messages ------------------------------------------------------------------

const SET_CASES: { name: string; dev: WgDevice }[] = [
  {
    name: "wg_set", // wg set wg0 private-key … listen-port 51820 fwmark 0x1234 peer … peer …
    dev: {
      ifname: "wg0",
      privateKey: key(0x11),
      listenPort: 51820,
      fwmark: 0x1234,
      peers: [
        {
          publicKey: key(0x22),
          presharedKey: key(0x44),
          endpoint: { ip: IP4.parse("192.168.1.2"), port: 51820 },
          persistentKeepaliveInterval: 25,
          flags: WGPEER_F_REPLACE_ALLOWEDIPS,
          allowedIps: [IP4Net.parse("10.244.1.0/24"), IP6Net.parse("fd00:1::/64")],
        },
        {
          publicKey: key(0x33),
          endpoint: { ip: IP6.parse("fd00::2"), port: 51821 },
          flags: WGPEER_F_REPLACE_ALLOWEDIPS,
          allowedIps: [IP4Net.parse("10.244.2.0/24")],
        },
      ],
    },
  },
  {
    name: "wg_setconf", // wg setconf: replace peers
    dev: {
      ifname: "wg0",
      privateKey: key(0x11),
      listenPort: 51820,
      fwmark: 0,
      flags: WGDEVICE_F_REPLACE_PEERS,
      peers: [{
        publicKey: key(0x33),
        endpoint: { ip: IP4.parse("192.168.1.3"), port: 51820 },
        flags: WGPEER_F_REPLACE_ALLOWEDIPS,
        allowedIps: [IP4Net.parse("10.244.3.0/24")],
      }],
    },
  },
  {
    name: "wg_remove_peer", // wg set wg0 peer … remove
    dev: { ifname: "wg0", peers: [{ publicKey: key(0x33), flags: WGPEER_F_REMOVE_ME }] },
  },
];

for (const c of SET_CASES) {
  Deno.test(`WG_CMD_SET_DEVICE ${c.name} decodes and encodes to the bytes wg(8) sent`, () => {
    const m = one(`${c.name}.request`);
    assert.deepEqual(decodeWgDevice(m), c.dev);
    const ours = wgSetDeviceRequests(m.type, c.dev);
    assert.equal(ours.length, 1);
    assert.deepEqual(encodeMessage(as(ours[0]!, m)), fixture(`${c.name}.request`));
  });
}

/** What the kernel reported for the device wg_set configured. */
const GOT: WgDevice = {
  listenPort: 51820,
  fwmark: 0x1234,
  ifindex: 3,
  ifname: "wg0",
  // The kernel clamps the private key as Curve25519 requires.
  privateKey: Uint8Array.of(0x10, ...new Array(30).fill(0x11), 0x51),
  publicKey: x25519.getPublicKey(key(0x11)),
  peers: [
    {
      publicKey: key(0x22),
      presharedKey: key(0x44),
      lastHandshakeTime: { sec: 0n, nsec: 0n },
      persistentKeepaliveInterval: 25,
      txBytes: 0n,
      rxBytes: 0n,
      protocolVersion: 1,
      endpoint: { ip: IP4.parse("192.168.1.2"), port: 51820 },
      allowedIps: [IP4Net.parse("10.244.1.0/24"), IP6Net.parse("fd00:1::/64")],
    },
    {
      publicKey: key(0x33),
      presharedKey: key(0),
      lastHandshakeTime: { sec: 0n, nsec: 0n },
      persistentKeepaliveInterval: 0,
      txBytes: 0n,
      rxBytes: 0n,
      protocolVersion: 1,
      endpoint: { ip: IP6.parse("fd00::2"), port: 51821 },
      allowedIps: [IP4Net.parse("10.244.2.0/24")],
    },
  ],
};

Deno.test("WG_CMD_GET_DEVICE: the request is wg(8)'s, the reply decodes and re-encodes exactly", () => {
  const req = one("wg_get.request");
  assert.deepEqual(
    encodeMessage(as(wgGetDeviceRequest(req.type, { ifname: "wg0" }), req)),
    fixture("wg_get.request"),
  );
  const [reply, done, ...rest] = messages("wg_get.reply");
  assert.equal(done?.type, NLMSG_DONE);
  assert.equal(rest.length, 0);
  assert.deepEqual(decodeWgDevice([reply!, done!]), GOT);
  const ours = { ...encodeWgDevice(req.type, GOT, WG_CMD_GET_DEVICE), seq: reply!.seq, pid: reply!.pid };
  assert.deepEqual(encodeMessages([ours, done!]), fixture("wg_get.reply"));
});

Deno.test("a GET_DEVICE dump over several messages coalesces a peer continued across them", () => {
  const ms = messages("wg_get_large.reply", "wg_get_large.reply2", "wg_get_large.reply3");
  assert.equal(ms.length, 4); // three parts and NLMSG_DONE
  // Each part re-encodes exactly in the kernel's layout.
  for (const m of ms.slice(0, 3)) {
    const attrs = decodeGenl(m.payload).attrs;
    assert.deepEqual(encodeDeviceAttrs(decodeDeviceAttrs(attrs), "get"), attrs);
  }
  const dev = decodeWgDevice(ms);
  assert.equal(dev.ifname, "wg0");
  assert.deepEqual(dev.peers?.map((p) => p.publicKey[0]), [0x33, 0x55]);
  const want = Array.from({ length: 400 }, (_, i) => `10.250.${i >> 8}.${i & 255}/32`);
  assert.deepEqual(dev.peers![1]!.allowedIps!.map(String).sort(), want.sort());
});

// --- wireguard: sockaddr -------------------------------------------------------------------------------

Deno.test("endpoints are struct sockaddr_in and sockaddr_in6", () => {
  const v4 = { ip: IP4.parse("192.168.1.2"), port: 51820 };
  const v4b = Uint8Array.of(
    ...[0x02, 0x00], // sin_family AF_INET (host order)
    ...[0xca, 0x6c], // sin_port 51820 (network order)
    ...[192, 168, 1, 2], // sin_addr
    ...new Array(8).fill(0), // sin_zero
  );
  assert.deepEqual(encodeSockaddr(v4), v4b);
  assert.deepEqual(decodeSockaddr(v4b), v4);
  const v6 = { ip: IP6.parse("fe80::1"), port: 51821, flowInfo: 0x12345, scopeId: 7 };
  const v6b = Uint8Array.of(
    ...[0x0a, 0x00], // sin6_family AF_INET6
    ...[0xca, 0x6d], // sin6_port 51821
    ...[0x00, 0x01, 0x23, 0x45], // sin6_flowinfo (network order)
    ...[0xfe, 0x80, ...new Array(13).fill(0), 1], // sin6_addr
    ...[7, 0, 0, 0], // sin6_scope_id (host order)
  );
  assert.deepEqual(encodeSockaddr(v6), v6b);
  assert.deepEqual(decodeSockaddr(v6b), v6);
  assert.throws(() => decodeSockaddr(v6b.subarray(0, 27)), NetlinkDecodeError);
  assert.throws(() => decodeSockaddr(Uint8Array.of(1, 0, ...new Array(14).fill(0))), NetlinkDecodeError);
});

Deno.test("keys must be 32 bytes", () => {
  assert.throws(() => wgSetDeviceRequests(0x20, { ifname: "wg0", privateKey: new Uint8Array(31) }), {
    name: "RangeError",
    message: "WireGuard private key has 31 bytes, must be 32",
  });
});

// --- wireguard: splitting a large SET ------------------------------------------------------------------

const peerKey = (i: number) => Uint8Array.from({ length: 32 }, (_, j) => (i * 31 + j * 7 + (i >> 8)) & 255);
const v4 = (i: number) => new IP4Net(IP4.fromNumber(0x0a000000 + (i << 8)), 24);

Deno.test("a large SET is split by peers; only the first message replaces peers and sets keys", () => {
  const dev: WgDevice = {
    ifname: "flannel-wg",
    privateKey: key(1),
    listenPort: 51820,
    flags: WGDEVICE_F_REPLACE_PEERS,
    peers: Array.from({ length: 500 }, (_, i) => ({
      publicKey: peerKey(i),
      endpoint: { ip: IP4.fromNumber(0xc0a80000 + i), port: 51820 },
      persistentKeepaliveInterval: 25,
      flags: WGPEER_F_REPLACE_ALLOWEDIPS,
      allowedIps: [v4(i)],
    })),
  };
  const ms = wgSetDeviceRequests(0x20, dev);
  assert(ms.length > 1 && ms.length < 10, `${ms.length} messages`);
  const parts = ms.map((m) => decodeWgDevice(m));
  for (const m of ms) assert(encodeMessage(m).length <= WG_SET_DEVICE_MAX_BYTES);
  assert.equal(parts[0]!.flags, WGDEVICE_F_REPLACE_PEERS);
  for (const p of parts.slice(1)) assert.deepEqual(Object.keys(p).sort(), ["ifname", "peers"]);
  assert.deepEqual(decodeWgDevice(ms), dev);
});

Deno.test("a peer with too many allowed IPs continues without WGPEER_F_REPLACE_ALLOWEDIPS", () => {
  const peer: WgPeer = {
    publicKey: key(9),
    flags: WGPEER_F_REPLACE_ALLOWEDIPS | WGPEER_F_UPDATE_ONLY,
    allowedIps: Array.from({ length: 2000 }, (_, i) => new IP4Net(IP4.fromNumber(0x0a000000 + i), 32)),
  };
  const dev: WgDevice = { ifindex: 7, peers: [{ publicKey: key(8) }, peer, { publicKey: key(10) }] };
  const ms = wgSetDeviceRequests(0x20, dev, 4096);
  const parts = ms.map((m) => decodeWgDevice(m));
  assert(ms.length >= 14, `${ms.length} messages`);
  for (const m of ms) assert(encodeMessage(m).length <= 4096);
  const fragments = parts.flatMap((p) => p.peers ?? []).filter((p) => p.publicKey[0] === 9);
  assert.equal(fragments[0]!.flags, WGPEER_F_REPLACE_ALLOWEDIPS | WGPEER_F_UPDATE_ONLY);
  for (const f of fragments.slice(1)) assert.equal(f.flags, WGPEER_F_UPDATE_ONLY);
  for (const p of parts) assert.equal(p.ifindex, 7);
  assert.deepEqual(decodeWgDevice(ms), dev);
});

Deno.test("maxBytes too small for one peer is a RangeError", () => {
  const dev: WgDevice = { ifname: "wg0", peers: [{ publicKey: key(1), allowedIps: [v4(1)] }] };
  assert.throws(() => wgSetDeviceRequests(0x20, dev, 60), RangeError);
  assert.equal(wgSetDeviceRequests(0x20, dev, 120).length, 1);
  assert.equal(wgSetDeviceRequests(0x20, { ...dev, privateKey: key(2) }, 120).length, 2);
});

// --- properties -----------------------------------------------------------------------------------------

/** Plain objects, as the decoders build them. */
const NN = { noNullPrototype: true } as const;
const arbKey = fc.uint8Array({ minLength: 32, maxLength: 32 });
const arbNet: fc.Arbitrary<IP4Net | IP6Net> = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 32 }))
    .map(([v, p]) => new IP4Net(IP4.fromNumber(v), p)),
  fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }), fc.integer({ min: 0, max: 128 }))
    .map(([v, p]) => new IP6Net(IP6.fromBigInt(v), p)),
);
const arbEndpoint = fc.oneof(
  fc.record({ ip: fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(IP4.fromNumber), port: fc.nat(65535) }, NN),
  fc.record({
    ip: fc.bigInt({ min: 0n, max: 2n ** 128n - 1n }).map(IP6.fromBigInt),
    port: fc.nat(65535),
    flowInfo: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
    scopeId: fc.integer({ min: 1, max: 2 ** 32 - 1 }),
  }, { requiredKeys: ["ip", "port"], noNullPrototype: true }),
);
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const arbPeerBody = fc.record({
  presharedKey: arbKey,
  flags: fc.nat(7),
  endpoint: arbEndpoint,
  persistentKeepaliveInterval: fc.nat(65535),
  lastHandshakeTime: fc.record({
    sec: fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n),
    nsec: fc.bigInt(0n, 999999999n),
  }, NN),
  rxBytes: fc.bigInt(0n, 2n ** 64n - 1n),
  txBytes: fc.bigInt(0n, 2n ** 64n - 1n),
  allowedIps: fc.array(arbNet, { maxLength: 40 }),
  protocolVersion: u32,
}, { requiredKeys: [], noNullPrototype: true });
const arbDevice: fc.Arbitrary<WgDevice> = fc.record({
  ifindex: u32,
  ifname: fc.stringMatching(/^[a-z0-9-]{1,15}$/),
  privateKey: arbKey,
  publicKey: arbKey,
  flags: fc.nat(1),
  listenPort: fc.nat(65535),
  fwmark: u32,
  // Distinct public keys: adjacent entries with the same key are one peer continued.
  peers: fc.array(arbPeerBody, { maxLength: 12 }).map((bs) =>
    bs.map((b, i): WgPeer => ({ publicKey: peerKey(i), ...b }))
  ),
}, { requiredKeys: [], noNullPrototype: true });

Deno.test("decode(encode(device)) is the device, in both layouts", () => {
  fc.assert(fc.property(arbDevice, fc.constantFrom("set" as const, "get" as const), (dev, layout) => {
    assert.deepEqual(decodeDeviceAttrs(encodeDeviceAttrs(dev, layout)), dev);
  }));
});

Deno.test("split SET messages each fit and decode back to the device", () => {
  fc.assert(fc.property(arbDevice, fc.integer({ min: 700, max: 6000 }), (dev, max) => {
    const withPeers = { ...dev, peers: dev.peers ?? [] };
    const ms = wgSetDeviceRequests(0x20, withPeers, max);
    for (const m of ms) assert(encodeMessage(m).length <= max);
    assert.deepEqual(decodeWgDevice(ms), withPeers);
  }));
});

Deno.test("decode(encode(family)) is the family", () => {
  const arbFamily = fc.record({
    id: fc.nat(65535),
    name: fc.stringMatching(/^[a-z_]{1,15}$/),
    version: u32,
    hdrSize: u32,
    maxAttr: u32,
    ops: fc.array(fc.record({ id: u32, flags: fc.nat(31) }, NN)),
    mcastGroups: fc.array(fc.record({ name: fc.stringMatching(/^[a-z]{1,15}$/), id: u32 }, NN)),
  }, NN);
  fc.assert(fc.property(arbFamily, (f) => assert.deepEqual(decodeFamily(encodeFamily(f)), f)));
  const ops = GENL_ADMIN_PERM; // the admin flag survives as any other
  assert.equal(decodeFamily(encodeFamily({ ...WG_FAMILY, ops: [{ id: 5, flags: ops }] })).ops[0]!.flags, ops);
});

// --- fuzz: only NetlinkDecodeError -------------------------------------------------------------------

const CORPUS = [
  "ctrl_getfamily_nlctrl.reply",
  "ctrl_getfamily_wg.reply",
  "wg_set.request",
  "wg_setconf.request",
  "wg_get.reply",
  "wg_get_large.reply2",
].map((n) => messages(n)[0]!.payload);

/** Arbitrary payloads, and captured payloads with bytes overwritten or cut short. */
const arbPayload = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.tuple(
    fc.constantFrom(...CORPUS),
    fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }),
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

Deno.test("fuzz: the genl decoders throw nothing but NetlinkDecodeError", () => {
  fc.assert(
    fc.property(arbPayload, (payload) => {
      const m: NlMsg = { type: 0x20, flags: 0, seq: 0, pid: 0, payload };
      onlyDecodeErrors(() => decodeGenl(payload));
      onlyDecodeErrors(() => decodeFamily(payload));
      onlyDecodeErrors(() => decodeWgDevice(m));
      onlyDecodeErrors(() => decodeWgDevice([m, m]));
      onlyDecodeErrors(() => decodeDeviceAttrs(payload));
      onlyDecodeErrors(() => decodeSockaddr(payload));
    }),
    { numRuns: 3000 },
  );
});

/**
 * Property and fuzz tests for the rtnetlink codec, generated from the same attribute tables the
 * codec runs on:
 * - decode(encode(m)) deep-equals m for generated links (every kind), addresses, routes and
 *   neighbours;
 * - every decoder, fed arbitrary bytes, well-framed attributes with arbitrary payloads, or mutated
 *   captured messages, returns or throws NetlinkDecodeError, nothing else;
 * - the committed corpus (tests/fixtures/netlink/corpus/) of interesting inputs keeps its outcome.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { AttrDecoder, AttrEncoder, NetlinkDecodeError, NLA_F_NESTED } from "../../src/netlink/codec/mod.ts";
import { IP4, IP6 } from "../../src/ip/mod.ts";
import {
  ADDR_SCHEMA,
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  decodeAddrMessage,
  decodeLinkMessage,
  decodeNeighMessage,
  decodeRouteMessage,
  encodeAddrMessage,
  encodeLinkMessage,
  encodeNeighMessage,
  encodeRouteMessage,
  IFLA_LINKINFO,
  LINK_SCHEMA,
  NEIGH_SCHEMA,
  NEXTHOP_SCHEMA,
  ROUTE_SCHEMA,
} from "../../src/netlink/route/mod.ts";
import type { Codec, Schema } from "../../src/netlink/route/schema.ts";
import { linkCodecContext } from "../../src/netlink/route/link.ts";
import { LINK_KIND_DRIVERS, LINK_KINDS } from "../../src/netlink/link_kinds/mod.ts";
import { allMessages, fromHex } from "../fixtures/netlink/route/load.ts";

const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 300);

// --- Arbitraries from the attribute tables --------------------------------------------------------

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const s32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const ip4 = u32.map(IP4.fromNumber);
const ip6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }).map(IP6.fromBigInt);
const bytes = fc.uint8Array({ maxLength: 24 });
/** A record with every key. */
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(model, { noNullPrototype: true });
/** A record where every key may be absent (an optional attribute not sent). */
const opt = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) =>
  fc.record(model, { requiredKeys: [], noNullPrototype: true });

function ipFor(family: number): fc.Arbitrary<IP4 | IP6> {
  if (family === AF_INET) return ip4;
  if (family === AF_INET6) return ip6;
  return fc.oneof(ip4, ip6);
}

/** The arbitrary for one codec, by its name; custom codecs come from `custom`. */
function codecArb(
  codec: Codec<unknown>,
  family: number,
  custom: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<unknown> {
  const plain: Record<string, fc.Arbitrary<unknown>> = {
    u8,
    u16,
    u16be: u16,
    u32,
    u32be: u32,
    s32,
    u64: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    string: fc.string(),
    bytes,
    flag: fc.constant(true),
    flagOrU8: fc.constant(true),
    bool: fc.boolean(),
    ip4,
    ip6,
    ip: ipFor(family),
    rtvia: fc.oneof(ip4, ip6),
    ifa_cacheinfo: rec({ preferred: u32, valid: u32, cstamp: u32, tstamp: u32 }),
    nda_cacheinfo: rec({ confirmed: u32, used: u32, updated: u32, refcnt: u32 }),
    vxlanPortRange: rec({ low: u16, high: u16 }),
  };
  const arb = custom[codec.name] ?? plain[codec.name];
  if (!arb) throw new Error(`No arbitrary for codec ${codec.name}`);
  return arb;
}

/** Attributes a table does not name: they must come back in `unknown`. */
function unknownArb(
  schema: Schema,
  exclude: number[] = [],
): fc.Arbitrary<{ type: number; data: Uint8Array }[]> {
  const type = fc
    .tuple(fc.integer({ min: 0, max: 0x3fff }), fc.boolean())
    .filter(([t]) => !schema.byType.has(t) && !exclude.includes(t))
    .map(([t, nested]) => (nested ? t | NLA_F_NESTED : t));
  return fc.array(rec({ type, data: bytes }), { minLength: 1, maxLength: 3 });
}

/** The optional attribute fields of a table, plus optional unknown attributes. */
function fieldsArb(
  schema: Schema,
  family: number,
  custom: Record<string, fc.Arbitrary<unknown>> = {},
): fc.Arbitrary<Record<string, unknown>> {
  const model: Record<string, fc.Arbitrary<unknown>> = {};
  for (const s of schema.fields) model[s.field] = codecArb(s.codec, family, custom);
  model.unknown = unknownArb(schema);
  return opt(model);
}

const withFields = <H extends object>(header: fc.Arbitrary<H>, fields: (h: H) => fc.Arbitrary<object>) =>
  header.chain((h) => fields(h).map((f) => ({ ...h, ...f })));

const linkHeader = rec({ family: u8, type: u16, index: s32, flags: u32, change: u32 });

/** A link without link info: a veth peer. */
const shallowLink = withFields(
  linkHeader,
  () =>
    fieldsArb(LINK_SCHEMA, 0, { linkinfo: fc.constant(undefined) }).map((f) => {
      delete f.linkinfo;
      return f;
    }),
);

const kindDataArb = (kind: string) => {
  const driver = LINK_KINDS.get(kind)!;
  return fieldsArb(driver.schema!, 0, { vethPeer: shallowLink });
};

const linkinfoArb = fc.oneof(
  fc.constantFrom(...LINK_KINDS.kinds).chain((kind) =>
    rec({ kind: fc.constant(kind), data: kindDataArb(kind) }).chain((li) =>
      opt({
        xstats: bytes,
        slaveKind: fc.string(),
        slaveData: bytes,
        unknown: unknownArb(LINK_SCHEMA, [1, 2, 3, 4, 5]),
      })
        .map((rest) => ({ ...li, ...rest }))
    )
  ),
  opt({
    kind: fc.string().filter((k) => !LINK_KINDS.get(k)),
    data: rec({ raw: bytes }),
    slaveKind: fc.string(),
    slaveData: bytes,
  }),
);

const linkArb = withFields(linkHeader, () => fieldsArb(LINK_SCHEMA, 0, { linkinfo: linkinfoArb }));

const addrArb = withFields(
  rec({ family: fc.constantFrom(AF_INET, AF_INET6), prefixLen: u8, flags: u8, scope: u8, index: u32 }),
  (h) => fieldsArb(ADDR_SCHEMA, h.family),
);

const nextHopArb = (family: number) =>
  withFields(rec({ flags: u8, hops: u8, ifindex: s32 }), () => fieldsArb(NEXTHOP_SCHEMA, family));

const routeArb = withFields(
  rec({
    family: fc.constantFrom(AF_INET, AF_INET6),
    dstLen: u8,
    srcLen: u8,
    tos: u8,
    table: u8,
    protocol: u8,
    scope: u8,
    type: u8,
    flags: u32,
  }),
  (h) => fieldsArb(ROUTE_SCHEMA, h.family, { multipath: fc.array(nextHopArb(h.family), { maxLength: 3 }) }),
);

const neighArb = withFields(
  rec({ family: fc.constantFrom(AF_INET, AF_INET6, AF_BRIDGE), index: s32, state: u16, flags: u8, type: u8 }),
  (h) => fieldsArb(NEIGH_SCHEMA, h.family),
);

// deno-lint-ignore no-explicit-any
const ROUND_TRIPS: [string, fc.Arbitrary<any>, (m: any) => Uint8Array, (p: Uint8Array) => object][] = [
  ["link", linkArb, encodeLinkMessage, decodeLinkMessage],
  ["addr", addrArb, encodeAddrMessage, decodeAddrMessage],
  ["route", routeArb, encodeRouteMessage, decodeRouteMessage],
  ["neigh", neighArb, encodeNeighMessage, decodeNeighMessage],
];

for (const [name, arb, encode, decode] of ROUND_TRIPS) {
  Deno.test(`${name} messages: decode(encode(m)) deep-equals m`, () => {
    fc.assert(fc.property(arb, (m) => assert.deepEqual(decode(encode(m)), m)), { numRuns: RUNS });
  });
}

// --- Decoders only ever throw NetlinkDecodeError -------------------------------------------------

/** Every decoder, by the name the corpus files use. */
const DECODERS: Record<string, (b: Uint8Array) => unknown> = {
  link: decodeLinkMessage,
  addr: decodeAddrMessage,
  route: decodeRouteMessage,
  neigh: decodeNeighMessage,
  ...Object.fromEntries(LINK_KIND_DRIVERS.map((d) => [d.kind, (b: Uint8Array) => {
    const ad = new AttrDecoder(b);
    const v = d.decode(ad, linkCodecContext());
    if (ad.err) throw ad.err;
    return v;
  }])),
};

function onlyDecodeErrors(decode: (b: Uint8Array) => unknown, b: Uint8Array): void {
  try {
    decode(b);
  } catch (e) {
    if (!(e instanceof NetlinkDecodeError)) throw e;
  }
}

Deno.test("every decoder fed arbitrary bytes returns or throws NetlinkDecodeError", () => {
  for (const decode of Object.values(DECODERS)) {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (b) => onlyDecodeErrors(decode, b)), {
      numRuns: RUNS,
    });
  }
});

/** Well-framed attributes with the table's types (and others) and arbitrary payload sizes. */
function attrsArb(types: number[]): fc.Arbitrary<Uint8Array> {
  const type = types.length > 0 ? fc.oneof(fc.constantFrom(...types), u16) : u16;
  const one = fc.tuple(type, fc.uint8Array({ maxLength: 40 }));
  return fc.array(one, { maxLength: 8 }).map((as) => {
    const ae = new AttrEncoder();
    for (const [t, d] of as) ae.bytes(t, d);
    return ae.encode();
  });
}

const typesOf = (s: Schema) => s.fields.map((f) => f.type);
const HEADER_LEN: Record<string, [number, Schema]> = {
  link: [16, LINK_SCHEMA],
  addr: [8, ADDR_SCHEMA],
  route: [12, ROUTE_SCHEMA],
  neigh: [12, NEIGH_SCHEMA],
};

Deno.test("every decoder fed well-framed attributes with arbitrary payloads returns or throws NetlinkDecodeError", () => {
  for (const [name, [len, schema]] of Object.entries(HEADER_LEN)) {
    const msg = fc.tuple(fc.uint8Array({ minLength: len, maxLength: len }), attrsArb(typesOf(schema)))
      .map(([h, a]) => Uint8Array.from([...h, ...a]));
    fc.assert(fc.property(msg, (b) => onlyDecodeErrors(DECODERS[name]!, b)), { numRuns: RUNS });
  }
  for (const d of LINK_KIND_DRIVERS) {
    fc.assert(
      fc.property(attrsArb([...typesOf(d.schema!), 1]), (b) => onlyDecodeErrors(DECODERS[d.kind]!, b)),
      {
        numRuns: RUNS,
      },
    );
    // The same through a whole link message: IFLA_LINKINFO { KIND, DATA }.
    const link = attrsArb(typesOf(d.schema!)).map((data) => {
      const ae = new AttrEncoder().nested(IFLA_LINKINFO, (li) => li.string(1, d.kind).bytes(2, data));
      return Uint8Array.from([...new Uint8Array(16), ...ae.encode()]);
    });
    fc.assert(fc.property(link, (b) => onlyDecodeErrors(decodeLinkMessage, b)), { numRuns: RUNS });
  }
});

const CAPTURED = allMessages()
  .map(({ msg }) => {
    const t = msg.type;
    const name = t <= 19 ? "link" : t <= 22 ? "addr" : t <= 26 ? "route" : t <= 30 ? "neigh" : undefined;
    return name && t >= 16 ? { name, payload: msg.payload } : undefined;
  })
  .filter((x) => x !== undefined);

Deno.test("every decoder fed mutated captured messages returns or throws NetlinkDecodeError", () => {
  const mutation = fc.record({
    which: fc.nat(CAPTURED.length - 1),
    pos: fc.nat(),
    value: u16,
    cut: fc.nat(),
    kind: fc.constantFrom("byte", "u16", "truncate"),
  });
  fc.assert(
    fc.property(mutation, ({ which, pos, value, cut, kind }) => {
      const { name, payload } = CAPTURED[which]!;
      let b = payload.slice();
      const at = pos % b.length;
      if (kind === "byte") b[at] = value & 0xff;
      else if (kind === "u16" && at + 1 < b.length) new DataView(b.buffer).setUint16(at, value, true);
      else b = b.subarray(0, cut % (b.length + 1));
      onlyDecodeErrors(DECODERS[name]!, b);
    }),
    { numRuns: RUNS * 10 },
  );
});

// --- The corpus -----------------------------------------------------------------------------------

const CORPUS = new URL("../fixtures/netlink/corpus/", import.meta.url);

Deno.test("corpus: each input decodes (.ok) or fails with NetlinkDecodeError (.err), as recorded", () => {
  const files = [...Deno.readDirSync(CORPUS)].map((e) => e.name).filter((n) => n.endsWith(".hex")).sort();
  assert(files.length >= 20, `only ${files.length} corpus files`);
  for (const f of files) {
    const m = /^([a-z]+)_[a-z0-9-]+\.(ok|err)\.hex$/.exec(f);
    assert(m, `corpus file name ${f} is not <decoder>_<what>.<ok|err>.hex`);
    const decode = DECODERS[m[1]!];
    assert(decode, `corpus file ${f}: no decoder ${m[1]}`);
    const b = fromHex(Deno.readTextFileSync(new URL(f, CORPUS)).trim());
    if (m[2] === "ok") decode(b);
    else assert.throws(() => decode(b), NetlinkDecodeError, f);
  }
});

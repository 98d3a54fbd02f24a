import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CMD_REQUEST,
  CMD_RESPONSE,
  decodeViciPacket,
  encodeViciPacket,
  EVENT,
  ViciDecodeError,
  type ViciMessage,
  viciMessage,
} from "../../src/backends/ipsec/vici.ts";
import { ipsecBackend, parseIpsecConfig, peerConnection } from "../../src/backends/ipsec/mod.ts";
import { BackendRig, peer } from "../fakes/backend_harness.ts";
import { IP4, IP4Net } from "../../src/ip/mod.ts";

const bytes = (...xs: (number | string)[]) =>
  Uint8Array.from(xs.flatMap((x) => typeof x === "string" ? [...new TextEncoder().encode(x)] : [x]));

Deno.test("VICI: a command request, byte for byte (the layout of the vici README)", () => {
  const p = encodeViciPacket({
    type: CMD_REQUEST,
    name: "load-shared",
    message: viciMessage({ type: "IKE", data: "pw", owners: ["10.0.0.1"], sec: { k: "v" } }),
  });
  const body = bytes(
    0,
    11,
    "load-shared",
    3,
    4,
    "type",
    0,
    3,
    "IKE",
    3,
    4,
    "data",
    0,
    2,
    "pw",
    4,
    6,
    "owners",
    5,
    0,
    8,
    "10.0.0.1",
    6,
    1,
    3,
    "sec",
    3,
    1,
    "k",
    0,
    1,
    "v",
    2,
  );
  assert.deepEqual(p, Uint8Array.from([0, 0, 0, body.length, ...body]));
  assert.deepEqual(decodeViciPacket(p), {
    type: CMD_REQUEST,
    name: "load-shared",
    message: viciMessage({ type: "IKE", data: "pw", owners: ["10.0.0.1"], sec: { k: "v" } }),
  });
});

Deno.test("VICI: a response is unnamed", () => {
  const p = bytes(0, 0, 0, 15, CMD_RESPONSE, 3, 7, "success", 0, 3, "yes");
  assert.deepEqual(decodeViciPacket(p), { type: CMD_RESPONSE, message: new Map([["success", "yes"]]) });
});

Deno.test("VICI: decode(encode(p)) round-trips; arbitrary bytes only ever throw ViciDecodeError", () => {
  const value = fc.string({ maxLength: 20 });
  const msg: fc.Arbitrary<ViciMessage> = fc.letrec((tie) => ({
    m: fc.dictionary(
      fc.string({ minLength: 1, maxLength: 8 }),
      fc.oneof({ depthSize: "small" }, value, fc.array(value, { maxLength: 3 }), tie("m")),
      { maxKeys: 4 },
    )
      .map((o) => new Map(Object.entries(o)) as ViciMessage),
  })).m;
  fc.assert(
    fc.property(
      fc.constantFrom(CMD_REQUEST, CMD_RESPONSE, EVENT),
      fc.string({ maxLength: 10 }),
      msg,
      (type, name, message) => {
        const p = type === CMD_RESPONSE ? { type, message } : { type, name, message };
        assert.deepEqual(decodeViciPacket(encodeViciPacket(p)), p);
      },
    ),
    { numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      try {
        decodeViciPacket(b);
      } catch (e) {
        assert.ok(e instanceof ViciDecodeError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("ipsec options: a PSK shorter than 96 characters fails with upstream's message", () => {
  assert.throws(
    () => parseIpsecConfig({ PSK: "short" }),
    (e) => (e as Error).message.startsWith("config error, password is too short"),
  );
  assert.deepEqual(parseIpsecConfig({ psk: "x".repeat(96) }), {
    psk: "x".repeat(96),
    udpEncap: false,
    espProposal: "aes128gcm16-sha256-prfsha256-ecp256",
  });
});

Deno.test("ipsec: the connection charon gets is upstream's", () => {
  const own = peer("10.5.1.0/24", "192.168.1.10", { backendType: "ipsec" });
  const other = peer("10.5.2.0/24", "192.168.1.11", { backendType: "ipsec" });
  const { name, message } = peerConnection(
    { psk: "", udpEncap: false, espProposal: "aes128gcm16-sha256-prfsha256-ecp256" },
    own,
    other,
  );
  assert.equal(name, "192.168.1.10-10.5.1.0/24-10.5.2.0/24-192.168.1.11");
  const conn = message.get(name) as ViciMessage;
  assert.deepEqual([...conn.keys()], [
    "local_addrs",
    "remote_addrs",
    "proposals",
    "version",
    "keyingtries",
    "encap",
    "local",
    "remote",
    "children",
  ]);
  const child = (conn.get("children") as ViciMessage).get("10.5.1.0/24-10.5.2.0/24") as ViciMessage;
  assert.equal(child.get("reqid"), "11");
  assert.equal(child.get("policies"), "no");
  assert.deepEqual(child.get("esp_proposals"), ["aes128gcm16-sha256-prfsha256-ecp256"]);
});

Deno.test("ipsec backend: policies and charon connections follow the leases; stale policies go", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  r.host.binaries.add("charon");
  r.host.spawnable = true;
  const commands: string[] = [];
  r.host.unixHandler = (_path, req) => {
    const p = decodeViciPacket(req);
    commands.push(
      `${p.name} ${
        p.name === "load-conn"
          ? [...p.message.keys()][0]
          : p.name === "unload-conn"
          ? p.message.get("name")
          : ""
      }`.trim(),
    );
    return encodeViciPacket({ type: CMD_RESPONSE, message: viciMessage({ success: "yes" }) });
  };
  // A policy a previous run left for a node that is gone.
  await r.kernel.xfrmPolicyReplace({
    src: IP4Net.parse("10.5.9.0/24"),
    dst: IP4Net.parse("10.5.0.0/24"),
    dir: "in",
    tmplSrc: IP4.parse("192.168.1.99"),
    tmplDst: IP4.parse("192.168.1.10"),
    reqid: 11,
  });
  await r.start(
    ipsecBackend,
    JSON.stringify({ Network: "10.5.0.0/16", Backend: { Type: "ipsec", PSK: "k".repeat(96) } }),
    ext,
  );
  try {
    assert.equal(r.network.mtu, 1500 - 77);
    assert.deepEqual(r.host.spawned, [["/usr/bin/charon"]]);
    const own = r.network.lease.subnet.toString();
    r.leases(peer("10.5.2.0/24", "192.168.1.11", { backendType: "ipsec" }));
    const t = await r.until((t) => t.includes("dir fwd"));
    assert.ok(t.includes(`${own} 10.5.2.0/24 dir out tmpl 192.168.1.10 192.168.1.11 reqid 11`), t);
    assert.ok(t.includes(`10.5.2.0/24 ${own} dir in tmpl 192.168.1.11 192.168.1.10 reqid 11`), t);
    assert.ok(!t.includes("10.5.9.0"), "the stale policy is gone");
    assert.deepEqual(commands, [
      "load-shared",
      "load-shared",
      `load-conn 192.168.1.10-${own}-10.5.2.0/24-192.168.1.11`,
    ]);
    r.leases();
    await r.until((t) => !t.includes("# xfrm"));
    assert.equal(commands.at(-1), `unload-conn 192.168.1.10-${own}-10.5.2.0/24-192.168.1.11`);
  } finally {
    await r.stop();
  }
});

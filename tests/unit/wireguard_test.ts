/**
 * The wireguard backend: keys, key file, options, UAPI text, and peer planning against the fake
 * kernel for every Mode.
 */
import assert from "node:assert/strict";
import { wireguardBackend } from "../../src/backends/wireguard/mod.ts";
import {
  generatePrivateKey,
  keyFromBase64,
  loadOrCreatePrivateKey,
  publicKey,
  toBase64,
} from "../../src/backends/wireguard/keys.ts";
import { decodeWgData, encodeWgData, parseWgConfig } from "../../src/backends/wireguard/config.ts";
import { decodeUapiGet, encodeUapiSet } from "../../src/backends/wireguard/uapi.ts";
import { RTPROT_FLANNEL } from "../../src/backends/reconcile.ts";
import { IP4, IP4Net, IP6 } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { FakeHost } from "../fakes/fake_host.ts";
import { FakeKernel } from "../fakes/fake_kernel.ts";
import { Metrics } from "../../src/daemon/metrics.ts";
import { BackendRig, peer } from "../fakes/backend_harness.ts";

const wgAvailable = await new Deno.Command("wg", { args: ["--version"], stdout: "null", stderr: "null" })
  .output()
  .then((o) => o.success, () => false);
if (!wgAvailable) console.log("skip wg pubkey cross-check: wg (wireguard-tools) is not installed");

Deno.test({
  name: "wireguard keys: our public keys match wg pubkey",
  ignore: !wgAvailable,
  async fn() {
    for (let i = 0; i < 5; i++) {
      const priv = generatePrivateKey();
      const child = new Deno.Command("wg", { args: ["pubkey"], stdin: "piped", stdout: "piped" }).spawn();
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(toBase64(priv) + "\n"));
      await w.close();
      const out = new TextDecoder().decode((await child.output()).stdout).trim();
      assert.equal(toBase64(publicKey(priv)), out);
    }
  },
});

Deno.test("wireguard key file: created 0400 under a 0755 dir, then reused; $WIREGUARD_KEY_FILE wins", async () => {
  const host = new FakeHost();
  const log = new MemoryLogger();
  const a = await loadOrCreatePrivateKey(host, log);
  assert.equal(a.path, "/run/flannel/wgkey");
  const f = host.files.get("/run/flannel/wgkey")!;
  assert.equal(f.mode, 0o400);
  assert.equal(host.dirs.get("/run/flannel"), 0o755);
  assert.match(f.data, /^[A-Za-z0-9+/]{43}=$/, "base64 without a newline, as wg genkey");
  f.data += "\n";
  const b = await loadOrCreatePrivateKey(host, log);
  assert.deepEqual(b.key, a.key);
  host.envs.WIREGUARD_KEY_FILE = "/etc/flannel/key";
  assert.equal((await loadOrCreatePrivateKey(host, log)).path, "/etc/flannel/key");
});

Deno.test("wireguard key file: malformed is an error that does not leak it; readable by others warns", async () => {
  const host = new FakeHost();
  host.files.set("/run/flannel/wgkey", { data: "not-a-key-SECRET", mode: 0o400 });
  await assert.rejects(loadOrCreatePrivateKey(host, new MemoryLogger()), (e) => {
    const m = (e as Error).message;
    assert.match(m, /^The WireGuard key file \/run\/flannel\/wgkey is not valid base64; fix it or delete it/);
    assert.ok(!m.includes("SECRET"));
    return true;
  });
  host.files.set("/run/flannel/wgkey", { data: toBase64(generatePrivateKey()), mode: 0o644 });
  const log = new MemoryLogger();
  await loadOrCreatePrivateKey(host, log);
  assert.ok(log.messages("warn").some((m) => m.includes("mode 0644") && m.includes("chmod 0400")));
});

Deno.test("wireguard options: defaults, Mode and PSK errors", () => {
  assert.deepEqual(parseWgConfig({}), {
    listenPort: 51820,
    listenPortV6: 51821,
    mtu: 0,
    persistentKeepalive: 0,
    mode: "separate",
  });
  assert.throws(() => parseWgConfig({ Mode: "Auto" }), /^BackendConfigError: no valid Mode configured/);
  assert.throws(
    () => parseWgConfig({ PSK: "short" }),
    (e) => (e as Error).message.startsWith("could not parse psk:") && !(e as Error).message.includes("short"),
  );
  assert.equal(parseWgConfig({ psk: toBase64(new Uint8Array(32).fill(7)) }).psk?.length, 32);
});

Deno.test("wireguard BackendData: upstream's exact JSON", () => {
  const k = new Uint8Array(32).fill(1);
  const text = encodeWgData({ publicKey: k, port: 51820 });
  assert.equal(text, `{"PublicKey":"${toBase64(k)}","Port":51820}`);
  assert.deepEqual(decodeWgData(text), { publicKey: k, port: 51820 });
  assert.throws(() => decodeWgData(`{"PublicKey":"x"}`), /error decoding subnet lease JSON/);
});

Deno.test("wireguard UAPI: set and get text", () => {
  const k = (b: number) => new Uint8Array(32).fill(b);
  assert.equal(
    encodeUapiSet({
      privateKey: k(1),
      listenPort: 51820,
      replacePeers: true,
      peers: [
        {
          publicKey: k(2),
          endpoint: { ip: IP4.parse("192.0.2.2"), port: 51820 },
          persistentKeepalive: 25,
          replaceAllowedIPs: true,
          allowedIPs: [IP4Net.parse("10.5.2.0/24")],
        },
        { publicKey: k(3), endpoint: { ip: IP6.parse("2001:db8::3"), port: 51821 }, allowedIPs: [] },
        { publicKey: k(4), remove: true },
      ],
    }),
    `set=1\nprivate_key=${"01".repeat(32)}\nlisten_port=51820\nreplace_peers=true\n` +
      `public_key=${
        "02".repeat(32)
      }\nendpoint=192.0.2.2:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.5.2.0/24\n` +
      `public_key=${"03".repeat(32)}\nendpoint=[2001:db8::3]:51821\n` +
      `public_key=${"04".repeat(32)}\nremove=true\n\n`,
  );
  const dev = decodeUapiGet(
    "flannel-wg",
    `private_key=${"01".repeat(32)}\nlisten_port=51820\npublic_key=${"02".repeat(32)}\npreshared_key=${
      "00".repeat(32)
    }\nendpoint=[2001:db8::3]:51821\nlast_handshake_time_sec=0\npersistent_keepalive_interval=25\nallowed_ip=10.5.2.0/24\nallowed_ip=fd05:0:0:2::/64\nerrno=0\n\n`,
  );
  assert.equal(dev.listenPort, 51820);
  assert.equal(dev.peers.length, 1);
  assert.equal(dev.peers[0]!.presharedKey, undefined);
  assert.equal(String(dev.peers[0]!.endpoint?.ip), "2001:db8::3");
  assert.deepEqual(dev.peers[0]!.allowedIPs!.map(String), ["10.5.2.0/24", "fd05:0:0:2::/64"]);
});

const pk = (b: number) => toBase64(new Uint8Array(32).fill(b));
const wgPeer = (subnet: string, ip: string, key: number, extra: Record<string, unknown> = {}, v6?: string) =>
  peer(subnet, ip, {
    backendType: "wireguard",
    backendData: `{"PublicKey":"${pk(key)}","Port":51820}`,
    ...extra,
  }, v6);

Deno.test("wireguard separate mode: devices, lease, peers, Network route; stale peers removed; devices removed at close", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  await r.start(
    wireguardBackend,
    `{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard","PersistentKeepaliveInterval":25}}`,
    ext,
  );
  try {
    assert.equal(r.network.mtu, 1420);
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    const pub = toBase64(publicKey(keyFromBase64(r.host.files.get("/run/flannel/wgkey")!.data, "key")));
    assert.equal(
      entries[0]!.value,
      `{"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"wireguard","BackendData":{"PublicKey":"${pub}","Port":51820}}`,
    );
    r.leases(
      wgPeer("10.5.2.0/24", "192.168.1.11", 2),
      wgPeer("10.5.3.0/24", "192.168.1.12", 3, { backendData: `{"PublicKey":"${pk(3)}","Port":0}` }),
    );
    let t = await r.until((t) => t.includes("keepalive 25") && t.includes("192.168.1.12"));
    assert.ok(t.includes(`10.5.0.0/16 dev flannel-wg proto ${RTPROT_FLANNEL} scope link`), t);
    assert.ok(t.includes("flannel-wg listen-port 51820"), t);
    assert.ok(
      t.includes(`flannel-wg peer 02020202 endpoint 192.168.1.11:51820 allowed-ips 10.5.2.0/24 keepalive 25`),
      t,
    );
    assert.ok(
      t.includes(`flannel-wg peer 03030303 endpoint 192.168.1.12:51820 allowed-ips 10.5.3.0/24`),
      "Port 0 means our own port",
    );
    assert.match(t, /10\.5\.\d+\.0\/32 dev flannel-wg/);
    r.leases(wgPeer("10.5.3.0/24", "192.168.1.12", 3));
    t = await r.until((t) => !t.includes("peer 02020202"));
    // A peer whose endpoint roamed is pinned back to its lease.
    await r.kernel.wgConfigure("flannel-wg", {
      peers: [{
        publicKey: new Uint8Array(32).fill(3),
        endpoint: { ip: IP4.parse("203.0.113.9"), port: 4444 },
      }],
    });
    const pass = r.nextPass();
    r.leases(wgPeer("10.5.3.0/24", "192.168.1.12", 3));
    await pass;
    assert.ok(r.kernel.renderWireguard().some((l) => l.includes("endpoint 192.168.1.12:51820")));
  } finally {
    await r.stop();
  }
  assert.ok(!r.kernel.renderLinks().some((l) => l.startsWith("flannel-wg")), "devices removed at shutdown");
});

Deno.test("wireguard dual stack: separate devices per family, or one device in auto mode", async () => {
  const v6conf = (mode: string) =>
    `{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd05::/48","Backend":{"Type":"wireguard","Mode":"${mode}"}}`;
  const dual = wgPeer("10.5.2.0/24", "192.168.1.11", 2, {
    publicIPv6: IP6.parse("2001:db8::11"),
    backendV6Data: `{"PublicKey":"${pk(2)}","Port":51821}`,
  }, "fd05:0:0:2::/64");

  const r = new BackendRig();
  await r.start(wireguardBackend, v6conf("separate"), r.seedHost());
  try {
    r.leases(dual);
    const t = await r.until((t) => t.includes("flannel-wg-v6 peer"));
    assert.ok(
      t.includes("flannel-wg-v6 peer 02020202 endpoint 2001:db8::11:51821 allowed-ips fd05:0:0:2::/64"),
      t,
    );
    assert.ok(t.includes("flannel-wg peer 02020202 endpoint 192.168.1.11:51820 allowed-ips 10.5.2.0/24"), t);
    assert.ok(t.includes(`fd05::/48 dev flannel-wg-v6 proto ${RTPROT_FLANNEL} scope link`), t);
  } finally {
    await r.stop();
  }

  // auto: one device; the peer's IPv4 is private and both IPv6 addresses are global, so IPv6.
  const a = new BackendRig();
  const ext = a.seedHost();
  ext.extV6Addr = IP6.parse("2001:db8::10");
  await a.start(wireguardBackend, v6conf("auto"), ext);
  try {
    a.leases(dual);
    const t = await a.until((t) => t.includes("flannel-wg peer"));
    assert.ok(
      t.includes(
        "flannel-wg peer 02020202 endpoint 2001:db8::11:51821 allowed-ips 10.5.2.0/24,fd05:0:0:2::/64",
      ),
      t,
    );
    assert.ok(!t.includes("flannel-wg-v6"), t);
  } finally {
    await a.stop();
  }

  // ipv4: one device, IPv4 endpoint.
  const b = new BackendRig();
  await b.start(wireguardBackend, v6conf("ipv4"), b.seedHost());
  try {
    b.leases(dual);
    const t = await b.until((t) => t.includes("flannel-wg peer"));
    assert.ok(
      t.includes(
        "flannel-wg peer 02020202 endpoint 192.168.1.11:51820 allowed-ips 10.5.2.0/24,fd05:0:0:2::/64",
      ),
      t,
    );
  } finally {
    await b.stop();
  }
});

Deno.test("wireguard: without kernel support and without wireguard-go, the error names both fixes", async () => {
  const r = new BackendRig(new FakeKernel({ missingKinds: ["wireguard"] }));
  await assert.rejects(
    r.start(wireguardBackend, `{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}}`, r.seedHost()),
    (e) => {
      assert.match(
        (e as Error).message,
        /the kernel has no WireGuard .*modprobe wireguard.*apt-get install wireguard-go/,
      );
      return true;
    },
  );
  r.kv.close();
});

Deno.test("wireguard: /metrics counts peers by handshake (recent, old, never), not a series per peer", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  await r.start(wireguardBackend, `{"Network":"10.5.0.0/16","Backend":{"Type":"wireguard"}}`, ext);
  try {
    r.leases(
      wgPeer("10.5.2.0/24", "192.168.1.11", 2),
      wgPeer("10.5.3.0/24", "192.168.1.12", 3),
      wgPeer("10.5.4.0/24", "192.168.1.13", 4),
    );
    await r.until((t) => t.includes("192.168.1.13"));
    const now = Math.floor(Date.now() / 1000);
    r.kernel.wgHandshake("flannel-wg", "02020202", now - 10);
    r.kernel.wgHandshake("flannel-wg", "03030303", now - 600);
    let pass = r.nextPass();
    r.leases(
      wgPeer("10.5.2.0/24", "192.168.1.11", 2),
      wgPeer("10.5.3.0/24", "192.168.1.12", 3),
      wgPeer("10.5.4.0/24", "192.168.1.13", 4),
    );
    await pass;
    const metrics = new Metrics();
    metrics.collect((sink) => r.network.collectMetrics!(sink));
    const text = metrics.render();
    for (const [state, n] of [["recent", 1], ["old", 1], ["never", 1]] as const) {
      assert.ok(
        text.includes(`flannel_wireguard_peers{device="flannel-wg",handshake="${state}"} ${n}\n`),
        text,
      );
    }
    // A peer that leaves stops counting.
    pass = r.nextPass();
    r.leases(wgPeer("10.5.2.0/24", "192.168.1.11", 2));
    await pass;
    await r.until((t) => !t.includes("192.168.1.13"));
    pass = r.nextPass();
    r.leases(wgPeer("10.5.2.0/24", "192.168.1.11", 2));
    await pass;
    const after = metrics.render();
    assert.ok(after.includes(`flannel_wireguard_peers{device="flannel-wg",handshake="never"} 0\n`), after);
    assert.ok(after.includes(`flannel_wireguard_peers{device="flannel-wg",handshake="recent"} 1\n`), after);
  } finally {
    await r.stop();
  }
});

/**
 * The WireGuard cross-platform userspace API (what `wg` speaks to wireguard-go over
 * `/var/run/wireguard/<dev>.sock`): `key=value` lines, keys in hex, a blank line ends a
 * request or a response, `errno=N` reports the result.
 *
 * @module
 */
import { IP4Net, IP6Net, parseIP } from "../../ip/mod.ts";
import type { WgConfig, WgDevice, WgPeer } from "../../netlink/ops.ts";

// Lower-case hex of bytes (UAPI keys; also how peers are compared).
import { hex } from "../../util/hex.ts";
export { hex };
const unhex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

/** A `set=1` request; only fields that are set are sent. */
export function encodeUapiSet(cfg: WgConfig): string {
  let s = "set=1\n";
  if (cfg.privateKey) s += `private_key=${hex(cfg.privateKey)}\n`;
  if (cfg.listenPort !== undefined) s += `listen_port=${cfg.listenPort}\n`;
  if (cfg.replacePeers) s += "replace_peers=true\n";
  for (const p of cfg.peers ?? []) {
    s += `public_key=${hex(p.publicKey)}\n`;
    if (p.remove) {
      s += "remove=true\n";
      continue;
    }
    if (p.presharedKey) s += `preshared_key=${hex(p.presharedKey)}\n`;
    if (p.endpoint) {
      const ip = p.endpoint.ip.toString();
      s += `endpoint=${ip.includes(":") ? `[${ip}]` : ip}:${p.endpoint.port}\n`;
    }
    if (p.persistentKeepalive !== undefined) s += `persistent_keepalive_interval=${p.persistentKeepalive}\n`;
    if (p.replaceAllowedIPs) s += "replace_allowed_ips=true\n";
    for (const a of p.allowedIPs ?? []) s += `allowed_ip=${a}\n`;
  }
  return s + "\n";
}

/** The errno of a response (`errno=0`); throws when there is none. */
export function uapiErrno(response: string): number {
  const m = /(?:^|\n)errno=(-?\d+)\n/.exec(response);
  if (!m) {
    // Never echo the response: a get reply starts with the private key.
    throw new SyntaxError(
      `WireGuard UAPI response of ${response.length} bytes has no errno line (did wireguard-go exit?)`,
    );
  }
  return Number(m[1]);
}

/** Decodes a `get=1` response into a device (keys raw bytes). */
export function decodeUapiGet(name: string, response: string): WgDevice {
  const dev: WgDevice = { name, peers: [] };
  let peer: WgPeer | undefined;
  for (const line of response.split("\n")) {
    const eq = line.indexOf("=");
    if (eq < 0) continue;
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    switch (k) {
      case "listen_port":
        dev.listenPort = Number(v);
        break;
      case "public_key":
        peer = { publicKey: unhex(v), allowedIPs: [] };
        dev.peers.push(peer);
        break;
      case "preshared_key":
        if (peer && /[^0]/.test(v)) peer.presharedKey = unhex(v);
        break;
      case "endpoint":
        if (peer) {
          const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(v);
          if (m) peer.endpoint = { ip: parseIP(m[1]!), port: Number(m[2]) };
        }
        break;
      case "persistent_keepalive_interval":
        if (peer) peer.persistentKeepalive = Number(v);
        break;
      case "allowed_ip":
        if (peer) peer.allowedIPs!.push(v.includes(":") ? IP6Net.parse(v) : IP4Net.parse(v));
        break;
      case "last_handshake_time_sec":
        if (peer) peer.lastHandshake = Number(v);
        break;
    }
  }
  return dev;
}

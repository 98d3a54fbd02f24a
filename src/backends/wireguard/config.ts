/**
 * wireguard backend options and BackendData (§7.3 of the behaviour reference).
 *
 * @module
 */
import { getField } from "../../config/case_insensitive.ts";
import { BackendConfigError, OptionReader } from "../options.ts";
import { keyFromBase64, toBase64 } from "./keys.ts";

/** How IPv4 and IPv6 travel: one device per family, or one device for both. */
export type WgMode = "separate" | "auto" | "ipv4" | "ipv6";

/** `Backend` options of type wireguard. */
export interface WgConfig {
  listenPort: number;
  listenPortV6: number;
  /** Underlay MTU to derive from; 0 means the external interface's. */
  mtu: number;
  psk?: Uint8Array;
  /** Seconds; 0 disables. */
  persistentKeepalive: number;
  mode: WgMode;
}

/** WireGuard over IPv4/UDP takes 80 bytes of the underlay MTU (upstream's figure for both families). */
export const WG_OVERHEAD = 80;

/** Parses the Backend object with upstream's errors. */
export function parseWgConfig(backend: Record<string, unknown>): WgConfig {
  const r = new OptionReader(backend, "error decoding backend config");
  const modeText = r.string("Mode", "separate");
  if (!["separate", "auto", "ipv4", "ipv6"].includes(modeText)) {
    throw new BackendConfigError(
      `no valid Mode configured: Backend "Mode" is ${
        JSON.stringify(modeText)
      }, must be separate, auto, ipv4 or ipv6`,
    );
  }
  const cfg: WgConfig = {
    listenPort: r.int("ListenPort", 51820, 0, 65535),
    listenPortV6: r.int("ListenPortV6", 51821, 0, 65535),
    mtu: r.int("MTU", 0, 0, 65535),
    persistentKeepalive: r.int("PersistentKeepaliveInterval", 0, 0, 65535),
    mode: modeText as WgMode,
  };
  const psk = r.string("PSK", "");
  if (psk) {
    try {
      cfg.psk = keyFromBase64(psk, `Backend "PSK"`);
    } catch (e) {
      throw new BackendConfigError(`could not parse psk: ${(e as Error).message}; make one with: wg genpsk`);
    }
  }
  return cfg;
}

/** What a wireguard lease publishes: `{"PublicKey":"…","Port":51820}`. */
export interface WgLeaseData {
  publicKey: Uint8Array;
  port: number;
}

/** Encodes BackendData exactly as upstream. */
export function encodeWgData(d: WgLeaseData): string {
  return JSON.stringify({ PublicKey: toBase64(d.publicKey), Port: d.port });
}

/** Decodes a peer's BackendData (one-line errors). */
export function decodeWgData(text: string): WgLeaseData {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`error decoding subnet lease JSON: ${(e as Error).message}`);
  }
  if (typeof obj !== "object" || obj === null) {
    throw new SyntaxError(`error decoding subnet lease JSON: ${text} is not an object`);
  }
  const rec = obj as Record<string, unknown>;
  const key = getField(rec, "PublicKey");
  const port = getField(rec, "Port");
  if (typeof key !== "string") {
    throw new SyntaxError(
      `error decoding subnet lease JSON: "PublicKey" is ${JSON.stringify(key) ?? "missing"}`,
    );
  }
  try {
    return { publicKey: keyFromBase64(key, `"PublicKey"`), port: typeof port === "number" ? port : 0 };
  } catch (e) {
    throw new SyntaxError(`error decoding subnet lease JSON: ${(e as Error).message}`);
  }
}

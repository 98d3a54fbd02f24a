/**
 * WireGuard keys: Curve25519 with @noble/curves, base64 as `wg genkey` / `wg pubkey` write them,
 * and the key file (`/run/flannel/wgkey` or `$WIREGUARD_KEY_FILE`).
 *
 * Private keys and PSKs never appear in logs, errors or metrics: errors name the file, never
 * its content.
 *
 * @module
 */
import { x25519 } from "@noble/curves/ed25519.js";
import type { HostOps } from "../host.ts";
import type { Logger } from "../../log/logger.ts";

/** Where upstream keeps the private key. */
export const DEFAULT_KEY_FILE = "/run/flannel/wgkey";

/** Base64 of bytes (standard alphabet, padded). */
export function toBase64(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

/** A 32-byte key from base64; throws a SyntaxError that does not contain the text. */
export function keyFromBase64(text: string, what: string): Uint8Array {
  const t = text.replace(/\s+/g, "");
  let bin: string;
  try {
    bin = atob(t);
  } catch {
    throw new SyntaxError(`${what} is not valid base64`);
  }
  if (bin.length !== 32) throw new SyntaxError(`${what} has ${bin.length} bytes, a WireGuard key has 32`);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** A new private key, clamped as `wg genkey` does. */
export function generatePrivateKey(): Uint8Array {
  const k = x25519.utils.randomSecretKey();
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

/** The public key of a private key. */
export function publicKey(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey);
}

/** Loads the private key, creating the file (0400, parent 0755) when it does not exist. */
export async function loadOrCreatePrivateKey(
  host: HostOps,
  log: Logger,
): Promise<{ key: Uint8Array; path: string }> {
  const path = host.env("WIREGUARD_KEY_FILE") || DEFAULT_KEY_FILE;
  const text = await host.readFile(path);
  if (text === undefined) {
    const key = generatePrivateKey();
    await host.writeFile(path, toBase64(key), 0o400, 0o755);
    log.info(`Created a WireGuard private key in ${path}`);
    return { key, path };
  }
  let key: Uint8Array;
  try {
    key = keyFromBase64(text, `The WireGuard key file ${path}`);
  } catch (e) {
    throw new SyntaxError(
      `${
        (e as Error).message
      }; fix it or delete it (a new key is generated, and every peer learns it from the lease)`,
    );
  }
  const mode = await host.fileMode(path);
  if (mode !== undefined && (mode & 0o077) !== 0) {
    log.warn(
      `The WireGuard key file ${path} has mode ${
        mode.toString(8).padStart(4, "0")
      }: others can read the private key; chmod 0400 ${path}`,
    );
  }
  return { key, path };
}

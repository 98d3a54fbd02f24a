/**
 * MAC addresses as lower-case `aa:bb:cc:dd:ee:ff` text, and a stable one derived from a node's
 * identity so that a recreated VXLAN device keeps the MAC its peers' FDB entries point at.
 *
 * @module
 */

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Normalises MAC text (case, `-` separators); throws a SyntaxError naming the value. */
export function parseMac(s: string): string {
  const m = s.trim().toLowerCase().replaceAll("-", ":");
  if (!MAC_RE.test(m)) {
    throw new SyntaxError(`Cannot parse MAC address ${JSON.stringify(s)}: want aa:bb:cc:dd:ee:ff`);
  }
  return m;
}

/** Formats 6 bytes. */
export function formatMac(b: Uint8Array): string {
  return [...b.subarray(0, 6)].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

/**
 * A locally administered unicast MAC derived from `identity` (SHA-256), so the same node gets
 * the same VTEP MAC after a reboot or a device recreation.
 */
export async function stableMac(identity: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(identity)));
  const b = digest.slice(0, 6);
  b[0] = (b[0]! & 0xfe) | 0x02; // unicast, locally administered
  return formatMac(b);
}

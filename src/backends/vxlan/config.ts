/**
 * vxlan backend options and BackendData (§7.1 of the behaviour reference).
 *
 * @module
 */
import { getField } from "../../config/case_insensitive.ts";
import { OptionReader } from "../options.ts";
import { parseMac } from "../../util/mac.ts";

/** `Backend` options of type vxlan. */
export interface VxlanConfig {
  vni: number;
  /** UDP port; 0 means the kernel default (8472). */
  port: number;
  /** Underlay MTU to derive from; 0 means the external interface's. */
  mtu: number;
  gbp: boolean;
  learning: boolean;
  directRouting: boolean;
}

/** Parses the Backend object; errors start with upstream's `error decoding VXLAN backend config`. */
export function parseVxlanConfig(backend: Record<string, unknown>): VxlanConfig {
  const r = new OptionReader(backend, "error decoding VXLAN backend config");
  return {
    vni: r.int("VNI", 1, 0, 0xffffff),
    port: r.int("Port", 0, 0, 65535),
    mtu: r.int("MTU", 0, 0, 65535),
    gbp: r.bool("GBP"),
    learning: r.bool("Learning"),
    directRouting: r.bool("DirectRouting"),
  };
}

/** The VXLAN header and outer IPv4/UDP/Ethernet headers take 50 bytes of the underlay MTU. */
export const VXLAN_OVERHEAD = 50;
/** Over an IPv6 underlay the outer header is 20 bytes longer; the kernel caps the device at −70. */
export const VXLAN6_OVERHEAD = 70;

/** What a vxlan lease publishes: `{"VNI":1,"VtepMAC":"aa:bb:cc:dd:ee:ff"}`. */
export interface VxlanLeaseData {
  vni: number;
  vtepMac: string;
}

/** Encodes BackendData exactly as upstream. */
export function encodeVxlanData(d: VxlanLeaseData): string {
  return JSON.stringify({ VNI: d.vni, VtepMAC: d.vtepMac });
}

/** Decodes a peer's BackendData; throws a one-line error (`error decoding subnet lease JSON: …`). */
export function decodeVxlanData(text: string): VxlanLeaseData {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`error decoding subnet lease JSON: ${(e as Error).message}`);
  }
  if (typeof obj !== "object" || obj === null) {
    throw new SyntaxError(`error decoding subnet lease JSON: BackendData ${text} is not an object`);
  }
  const rec = obj as Record<string, unknown>;
  const vni = getField(rec, "VNI");
  const mac = getField(rec, "VtepMAC");
  if (typeof mac !== "string") {
    throw new SyntaxError(
      `error decoding subnet lease JSON: "VtepMAC" is ${
        JSON.stringify(mac) ?? "missing"
      }, must be a MAC address`,
    );
  }
  try {
    return { vni: typeof vni === "number" ? vni : 0, vtepMac: parseMac(mac) };
  } catch (e) {
    throw new SyntaxError(`error decoding subnet lease JSON: ${(e as Error).message}`);
  }
}

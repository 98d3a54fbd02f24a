/**
 * Link kinds as drivers in one explicit list. A registry refuses a duplicate kind; a link whose
 * kind has no driver decodes its IFLA_INFO_DATA to raw bytes, so nothing is lost.
 *
 * @module
 */
import type { Link } from "../route/link.ts";
import { isRawLinkData, type LinkKindDriver, type RawLinkData } from "./driver.ts";
import { type BridgeData, bridgeKind } from "./bridge.ts";
import { type IpipData, ipipKind } from "./ipip.ts";
import { type TunData, tunKind } from "./tun.ts";
import { type VethData, vethKind } from "./veth.ts";
import { type VxlanData, vxlanKind } from "./vxlan.ts";
import { type WireguardData, wireguardKind } from "./wireguard.ts";

/** The data type of each kind we have a driver for. */
export interface LinkDataByKind {
  vxlan: VxlanData;
  veth: VethData;
  bridge: BridgeData;
  tun: TunData;
  ipip: IpipData;
  wireguard: WireguardData;
}

/** IFLA_INFO_DATA: a driver's object, or raw bytes for a kind without a driver. */
export type LinkData = LinkDataByKind[keyof LinkDataByKind] | RawLinkData;

/**
 * A set of link-kind drivers, keyed by kind.
 *
 * @example
 * ```ts
 * import { LinkKindRegistry } from "./registry.ts";
 * import { vxlanKind } from "./vxlan.ts";
 * const kinds = new LinkKindRegistry([vxlanKind]);
 * console.assert(kinds.get("vxlan") === vxlanKind && kinds.get("veth") === undefined);
 * ```
 */
export class LinkKindRegistry {
  readonly #drivers = new Map<string, LinkKindDriver>();

  /** @throws {TypeError} when two drivers have the same kind. */
  constructor(drivers: readonly LinkKindDriver[]) {
    for (const d of drivers) {
      if (this.#drivers.has(d.kind)) {
        throw new TypeError(
          `Cannot register link kind "${d.kind}" twice: known kinds are ${
            drivers.map((x) => x.kind).join(", ")
          }`,
        );
      }
      this.#drivers.set(d.kind, d);
    }
  }

  /** The driver for `kind`, if any. */
  get(kind: string): LinkKindDriver | undefined {
    return this.#drivers.get(kind);
  }

  /** The registered kinds, in registration order. */
  get kinds(): string[] {
    return [...this.#drivers.keys()];
  }
}

/** Every link-kind driver we ship, in one list. */
export const LINK_KIND_DRIVERS: readonly LinkKindDriver[] = [
  vxlanKind,
  vethKind,
  bridgeKind,
  tunKind,
  wireguardKind,
  ipipKind,
];

/** The registry the link codec uses unless given another. Immutable. */
export const LINK_KINDS: LinkKindRegistry = new LinkKindRegistry(LINK_KIND_DRIVERS);

/**
 * The link's IFLA_INFO_DATA as `kind`'s data type, when the link is of that kind and its data was
 * decoded by a driver (not kept raw).
 *
 * @example
 * ```ts
 * import { linkData } from "./registry.ts";
 * const link = { family: 0, type: 1, index: 5, flags: 0, change: 0, linkinfo: { kind: "vxlan", data: { id: 1 } } };
 * console.assert(linkData(link, "vxlan")?.id === 1 && linkData(link, "veth") === undefined);
 * ```
 */
export function linkData<K extends keyof LinkDataByKind>(link: Link, kind: K): LinkDataByKind[K] | undefined {
  const info = link.linkinfo;
  if (info?.kind !== kind || info.data === undefined || isRawLinkData(info.data)) return undefined;
  return info.data as LinkDataByKind[K];
}

/**
 * The `wireguard` link kind. A wireguard device has no IFLA_INFO_DATA attributes: it is created
 * with IFLA_INFO_KIND alone, and keys, port and peers are configured over the `wireguard` generic
 * netlink family (see ../genl/). The driver is here so the kind is known: any IFLA_INFO_DATA a
 * future kernel sends is kept raw in `unknown`.
 *
 * @module
 */
import { defineSchema, type RawAttr, type Schema } from "../route/schema.ts";
import { type LinkKindDriver, schemaDriver } from "./driver.ts";

/** wireguard IFLA_INFO_DATA: no attributes of its own. */
export interface WireguardData {
  unknown?: RawAttr[];
}

/** The (empty) attribute table. */
export const WIREGUARD_SCHEMA: Schema = defineSchema<WireguardData>(
  "wireguard (no IFLA_INFO_DATA attributes)",
  () => [],
);

/** The wireguard driver. */
export const wireguardKind: LinkKindDriver<WireguardData> = schemaDriver<WireguardData>(
  "wireguard",
  WIREGUARD_SCHEMA,
);

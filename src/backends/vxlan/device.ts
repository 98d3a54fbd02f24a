/**
 * The VXLAN device and its address: created when missing, reused when compatible, recreated
 * when not (keeping the MAC, so peers' FDB entries stay valid).
 *
 * @module
 */
import type { Logger } from "../../log/logger.ts";
import type { IP, KernelOps, Link } from "../../netlink/ops.ts";
import { isErrno } from "../../netlink/codec/mod.ts";

/** What the device must be. */
export interface VxlanDeviceSpec {
  name: string;
  vni: number;
  local?: IP;
  /** Underlay device index. */
  link: number;
  port: number;
  learning: boolean;
  gbp: boolean;
  mtu: number;
  /** The MAC to create it with (kept if the device exists). */
  mac: string;
}

function incompatibility(have: Link, want: VxlanDeviceSpec): string | undefined {
  if (have.kind !== "vxlan" || !have.vxlan) return `type ${have.kind ?? "unknown"}, want vxlan`;
  const v = have.vxlan;
  if (v.vni !== want.vni) return `VNI ${v.vni}, want ${want.vni}`;
  if (v.link !== undefined && v.link !== want.link) {
    return `underlay device index ${v.link}, want ${want.link}`;
  }
  if (v.local !== undefined && want.local !== undefined && String(v.local) !== String(want.local)) {
    return `local ${v.local}, want ${want.local}`;
  }
  if (v.port && want.port && v.port !== want.port) return `port ${v.port}, want ${want.port}`;
  if (Boolean(v.gbp) !== want.gbp) return `GBP ${Boolean(v.gbp)}, want ${want.gbp}`;
  if (v.group !== undefined) return `group ${v.group}, want none`;
  return undefined;
}

/** Makes the device exist as specified, up, with the MTU; returns its MAC. */
export async function ensureVxlanDevice(
  kernel: KernelOps,
  spec: VxlanDeviceSpec,
  log: Logger,
  /** MTUs the kernel refused, kept by the caller so the warning is not repeated every pass. */
  refusedMtu: Set<string> = new Set(),
): Promise<string> {
  let have = await kernel.linkGet(spec.name);
  if (have) {
    const why = incompatibility(have, spec);
    if (why) {
      log.warn(`${spec.name} already exists with incompatible configuration: ${why}; recreating device`);
      await kernel.linkDel(spec.name);
      have = undefined;
    }
  }
  if (!have) {
    await kernel.linkAdd({
      name: spec.name,
      kind: "vxlan",
      mtu: spec.mtu,
      address: spec.mac,
      vxlan: {
        vni: spec.vni,
        link: spec.link,
        learning: spec.learning,
        gbp: spec.gbp,
        ...(spec.local ? { local: spec.local } : {}),
        ...(spec.port ? { port: spec.port } : {}),
      },
    });
    have = await kernel.linkGet(spec.name);
    if (!have) throw new Error(`${spec.name} vanished right after it was created`);
  } else if (have.mtu !== spec.mtu && !refusedMtu.has(`${spec.name}|${spec.mtu}`)) {
    log.info(`Setting ${spec.name} MTU from ${have.mtu} to ${spec.mtu}`);
    try {
      await kernel.linkSet(spec.name, { mtu: spec.mtu });
    } catch (e) {
      // The kernel caps a VXLAN device at the underlay MTU minus its headers when creating it,
      // and refuses (EINVAL) to raise it later: keep what it allows instead of failing every pass.
      if (!isErrno(e, "EINVAL")) throw e;
      refusedMtu.add(`${spec.name}|${spec.mtu}`);
      log.warn(
        `The kernel refuses MTU ${spec.mtu} on ${spec.name} (the underlay is too small for it); keeping ${have.mtu}. ` +
          "Lower Backend.MTU in net-conf.json",
      );
    }
  }
  if (!have.up) await kernel.linkSet(spec.name, { up: true });
  return have.address ?? spec.mac;
}

export { ensureDeviceAddress } from "../addresses.ts";

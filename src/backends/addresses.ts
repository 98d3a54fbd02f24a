/**
 * Interface addresses that backends put on their devices.
 *
 * @module
 */
import type { IP4Net, IP6Net } from "../ip/mod.ts";
import { IP4Net as IP4NetClass } from "../ip/mod.ts";
import type { KernelOps } from "../netlink/ops.ts";

/**
 * Puts exactly `addr` (our subnet's network address, /32 or /128) on the device: other
 * addresses of that family inside `network` are removed (IPv6: every non-link-local one).
 */
export async function ensureDeviceAddress(
  kernel: KernelOps,
  dev: string,
  addr: IP4Net | IP6Net,
  network: IP4Net | IP6Net | undefined,
): Promise<void> {
  const v4 = addr instanceof IP4NetClass;
  let present = false;
  for (const a of await kernel.addrList(dev)) {
    if ((a.addr instanceof IP4NetClass) !== v4) continue;
    if (a.addr.toString() === addr.toString()) {
      present = true;
      continue;
    }
    const stale = v4
      ? network === undefined || (network as IP4Net).contains(a.addr.ip as never)
      : !a.addr.ip.toString().startsWith("fe80:");
    if (stale) await kernel.addrDel(a);
  }
  if (!present) await kernel.addrAdd({ dev, addr });
}

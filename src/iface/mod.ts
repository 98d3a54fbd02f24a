/**
 * External interface selection (`--iface`, `--iface-regex`, `--iface-can-reach`, public IPs) over
 * an injected view of the host's links.
 *
 * @example
 * ```ts ignore
 * import { ipCommandNetInfo, selectExternalInterface } from "./mod.ts";
 *
 * const ext = await selectExternalInterface(opts, ipCommandNetInfo({ run }), log);
 * console.log(ext.name, ext.ifaceAddr?.toString());
 * ```
 *
 * @module
 */

export type { AddrScope, LinkAddr, LinkInfo, NetInfo, RouteGetResult } from "./net_info.ts";
export {
  type ExtIface,
  InterfaceSelectionError,
  preferredAddress,
  selectExternalInterface,
  type SelectOptions,
} from "./select.ts";
export { kernelNetInfo } from "./kernel_net_info.ts";
export {
  type CommandResult,
  type CommandRunner,
  ipCommandNetInfo,
  type IpCommandOptions,
} from "./ip_command.ts";

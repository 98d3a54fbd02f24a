/**
 * WireGuard devices, two ways: the kernel's (a `wireguard` link configured over genetlink) when
 * the kernel has it, else `wireguard-go` (a TUN device configured over its UAPI socket) when it
 * is installed, else a clear error naming both fixes. Upstream supports only the kernel device.
 *
 * @module
 */
import { isErrno } from "../../netlink/codec/mod.ts";
import type { KernelOps, WgConfig, WgDevice } from "../../netlink/ops.ts";
import type { Logger } from "../../log/logger.ts";
import type { Child, HostOps } from "../host.ts";
import { decodeUapiGet, encodeUapiSet, uapiErrno } from "./uapi.ts";

/** One way of running WireGuard devices. */
export interface WgDriver {
  readonly kind: "kernel" | "wireguard-go";
  /** Creates the device (deleting any existing one first, as upstream does). */
  create(name: string, mtu: number): Promise<void>;
  configure(name: string, cfg: WgConfig): Promise<void>;
  get(name: string): Promise<WgDevice | undefined>;
  /** Removes the device (and stops its process). */
  remove(name: string): Promise<void>;
}

/** Where wireguard-go puts its control sockets. */
export const UAPI_DIR = "/var/run/wireguard";

class KernelDriver implements WgDriver {
  readonly kind = "kernel" as const;
  constructor(private readonly kernel: KernelOps) {}
  async create(name: string, mtu: number) {
    if (await this.kernel.linkGet(name)) await this.kernel.linkDel(name);
    await this.kernel.linkAdd({ name, kind: "wireguard", mtu });
  }
  configure(name: string, cfg: WgConfig) {
    return this.kernel.wgConfigure(name, cfg);
  }
  get(name: string) {
    return this.kernel.wgGet(name);
  }
  async remove(name: string) {
    if (await this.kernel.linkGet(name)) await this.kernel.linkDel(name);
  }
}

class UserspaceDriver implements WgDriver {
  readonly kind = "wireguard-go" as const;
  readonly #children = new Map<string, Child>();
  constructor(
    private readonly kernel: KernelOps,
    private readonly host: HostOps,
    private readonly binary: string,
    private readonly log: Logger,
  ) {}

  async create(name: string, mtu: number) {
    await this.remove(name);
    const child = this.host.spawn([this.binary, "-f", name], {
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
      log: (line) => this.log.info(`wireguard-go ${name}: ${line}`),
    });
    this.#children.set(name, child);
    let exited: number | undefined;
    child.exited.then((code) => (exited = code));
    const sock = `${UAPI_DIR}/${name}.sock`;
    const deadline = Date.now() + 10_000;
    while (!(await this.host.exists(sock)) || !(await this.kernel.linkGet(name))) {
      if (exited !== undefined) {
        throw new Error(`wireguard-go for ${name} exited with code ${exited} before it was ready`);
      }
      if (Date.now() > deadline) {
        child.kill();
        throw new Error(`wireguard-go did not create ${name} and ${sock} within 10 s`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.kernel.linkSet(name, { mtu });
  }

  async configure(name: string, cfg: WgConfig) {
    const res = await this.#uapi(`${UAPI_DIR}/${name}.sock`, encodeUapiSet(cfg));
    const errno = uapiErrno(res);
    if (errno !== 0) {
      throw new Error(`Cannot configure WireGuard device ${name} through wireguard-go: errno ${errno}`);
    }
  }

  async get(name: string) {
    const sock = `${UAPI_DIR}/${name}.sock`;
    if (!(await this.host.exists(sock))) return undefined;
    const res = await this.#uapi(sock, "get=1\n\n");
    if (uapiErrno(res) !== 0) return undefined;
    return decodeUapiGet(name, res);
  }

  /** One UAPI exchange: a request, and the response up to its blank line. */
  async #uapi(sock: string, request: string): Promise<string> {
    const endsBlank = (r: Uint8Array) => r.length >= 2 && r[r.length - 1] === 10 && r[r.length - 2] === 10;
    const res = await this.host.unixRequest(sock, new TextEncoder().encode(request), endsBlank);
    return new TextDecoder().decode(res);
  }

  async remove(name: string) {
    const child = this.#children.get(name);
    this.#children.delete(name);
    if (child) {
      child.kill("SIGTERM");
      await child.exited;
    }
    if (await this.kernel.linkGet(name)) await this.kernel.linkDel(name);
  }
}

/**
 * Picks the driver: tries to create a kernel WireGuard device named `probeName`; when the kernel
 * refuses the device type, falls back to wireguard-go.
 */
export async function chooseWgDriver(
  kernel: KernelOps,
  host: HostOps,
  log: Logger,
  probeName: string,
  mtu: number,
): Promise<WgDriver> {
  const k = new KernelDriver(kernel);
  try {
    await k.create(probeName, mtu);
    log.info("Using the kernel's WireGuard");
    return k;
  } catch (e) {
    if (!isErrno(e, "EOPNOTSUPP", "EINVAL", "ENOENT")) throw e;
    const bin = await host.which("wireguard-go", ["/usr/bin", "/usr/local/bin", "/usr/sbin"]);
    if (!bin) {
      throw new Error(
        `the kernel has no WireGuard (${(e as Error).message}) and wireguard-go is not installed: ` +
          "load the module (modprobe wireguard) or install wireguard-go (apt-get install wireguard-go)",
        { cause: e },
      );
    }
    log.info(`The kernel has no WireGuard; using ${bin}`);
    const u = new UserspaceDriver(kernel, host, bin, log);
    await u.create(probeName, mtu);
    return u;
  }
}

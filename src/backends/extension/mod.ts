/**
 * The `extension` backend: flannel's lease machinery driving operator-supplied commands.
 *
 * Design notes. Nothing goes into the kernel by us. `PreStartupCommand` runs before the lease and
 * its output becomes our BackendData (as a JSON string); `PostStartupCommand` runs after it with
 * NETWORK, SUBNET, IPV6SUBNET, PUBLIC_IP and PUBLIC_IPV6 set; `SubnetAddCommand` and
 * `SubnetRemoveCommand` run per peer lease of type extension, with the peer's BackendData on
 * stdin and SUBNET and PUBLIC_IP set. Commands are split on white space and `$VAR`/`${VAR}` are
 * expanded per word; they run without a shell (upstream's current behaviour: quotes, `;`, `&&`
 * and `$(…)` mean nothing). Better than upstream: a failed SubnetAddCommand is retried on the next
 * batch instead of being forgotten, and a peer whose data changed gets its add command again.
 *
 * @module
 */
import { IP4 } from "../../ip/mod.ts";
import type { Lease } from "../../lease/types.ts";
import { leaseIdentity } from "../../lease/watcher.ts";
import type { HostOps } from "../host.ts";
import { OptionReader } from "../options.ts";
import {
  acquireLease,
  type BackendContext,
  type BackendFactory,
  type Network,
  requireHost,
} from "../types.ts";

/** Expands `$NAME` and `${NAME}` from `vars` (unknown names become empty, as Go's os.Expand). */
export function expandVars(word: string, vars: Record<string, string | undefined>): string {
  return word.replace(
    /\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_m, a, b) => vars[(a ?? b) as string] ?? "",
  );
}

/** Runs one extension command: split on white space, expand, exec without a shell. */
export async function runExtensionCommand(
  host: HostOps,
  command: string,
  stdin: string,
  extra: Record<string, string>,
): Promise<string> {
  const vars: Record<string, string | undefined> = { ...extra };
  const words = command.trim().split(/\s+/).filter(Boolean).map((w) =>
    expandVars(
      w,
      new Proxy(vars, {
        get: (t, k: string) => t[k] ?? host.env(k),
      }),
    )
  );
  if (words.length === 0) throw new Error("empty command");
  const { code, output } = await host.run(words, { env: extra, stdin: stdin + "\n" });
  const out = output.trim();
  if (code !== 0) {
    throw new Error(`${words[0]} exited with code ${code}: ${out.split("\n").slice(-3).join(" | ")}`);
  }
  return out;
}

/** The extension backend factory. */
export const extensionBackend: BackendFactory = {
  type: "extension",
  async register(ctx: BackendContext): Promise<Network> {
    const host = requireHost(ctx, "extension");
    const { ext, log, config } = ctx;
    const r = new OptionReader(config.backend, "error decoding extension backend config");
    const pre = r.string("PreStartupCommand");
    const post = r.string("PostStartupCommand");
    const add = r.string("SubnetAddCommand");
    const remove = r.string("SubnetRemoveCommand");

    let backendData: string | undefined;
    if (pre) {
      const out = await runExtensionCommand(host, pre, "", {}).catch((e) => {
        throw new Error(`failed to run command: ${pre}: ${(e as Error).message}`);
      });
      backendData = JSON.stringify(out);
      log.info(`Ran PreStartupCommand, got BackendData ${backendData.length} bytes`);
    }
    const lease = await acquireLease(ctx, {
      publicIP: ext.ifaceAddr ?? ext.extAddr ?? IP4.fromNumber(0),
      ...(ext.ifaceV6Addr ? { publicIPv6: ext.ifaceV6Addr } : {}),
      backendType: "extension",
      ...(backendData !== undefined ? { backendData } : {}),
    });
    if (post) {
      const env = {
        NETWORK: String(config.network ?? ""),
        SUBNET: String(lease.subnet),
        IPV6SUBNET: String(lease.ipv6Subnet ?? ""),
        PUBLIC_IP: String(lease.attrs.publicIP),
        PUBLIC_IPV6: String(lease.attrs.publicIPv6 ?? ""),
      };
      await runExtensionCommand(host, post, "", env).catch((e) => {
        throw new Error(`failed to run command: ${post}: ${(e as Error).message}`);
      });
    }

    const applied = new Map<string, Lease>();
    const stdinOf = (l: Lease) => {
      try {
        const v = JSON.parse(l.attrs.backendData ?? '""');
        return typeof v === "string" ? v : JSON.stringify(v);
      } catch {
        return l.attrs.backendData ?? "";
      }
    };
    const env = (l: Lease) => ({ SUBNET: String(l.subnet), PUBLIC_IP: String(l.attrs.publicIP) });
    return {
      lease,
      mtu: ext.mtu,
      async run(batches, signal) {
        for await (const batch of batches) {
          if (signal.aborted) break;
          const want = new Map<string, Lease>();
          for (const l of batch.leases.values()) {
            if (l.attrs.backendType === "extension") want.set(leaseIdentity(l), l);
          }
          for (const [id, l] of applied) {
            if (want.has(id)) continue;
            applied.delete(id);
            if (!remove) continue;
            await runExtensionCommand(host, remove, stdinOf(l), env(l)).then(
              () => log.info(`Ran SubnetRemoveCommand for ${l.subnet}`),
              (e) => log.error(`failed to run command: ${remove}: ${(e as Error).message}`),
            );
          }
          for (const [id, l] of want) {
            const had = applied.get(id);
            if (
              had && had.attrs.backendData === l.attrs.backendData &&
              had.attrs.publicIP.equals(l.attrs.publicIP)
            ) continue;
            if (!add) {
              applied.set(id, l);
              continue;
            }
            await runExtensionCommand(host, add, stdinOf(l), env(l)).then(
              () => {
                applied.set(id, l);
                log.info(`Ran SubnetAddCommand for ${l.subnet}`);
              },
              (e) =>
                log.error(
                  `failed to run command: ${add}: ${(e as Error).message} (retried on the next lease change)`,
                ),
            );
          }
        }
      },
      close: () => Promise.resolve(),
    };
  },
};

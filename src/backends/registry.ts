/**
 * The one explicit list of backends. Tests build their own registries; nothing is global.
 *
 * @module
 */
import type { BackendFactory } from "./types.ts";
import { allocBackend } from "./alloc/mod.ts";
import { extensionBackend } from "./extension/mod.ts";
import { hostGwBackend } from "./host_gw/mod.ts";
import { ipipBackend } from "./ipip/mod.ts";
import { ipsecBackend } from "./ipsec/mod.ts";
import { udpBackend } from "./udp/mod.ts";
import { vxlanBackend } from "./vxlan/mod.ts";
import { wireguardBackend } from "./wireguard/mod.ts";
import { cloudRouteProviders, createCloudRouteBackend } from "./cloud/mod.ts";

/** Net-conf names a backend type that no factory provides. */
export class UnknownBackendError extends Error {
  override name = "UnknownBackendError";
}

/** Backend factories by type. */
export class BackendRegistry {
  readonly #byType = new Map<string, BackendFactory>();

  /** @throws {TypeError} when two factories share a type. */
  constructor(factories: readonly BackendFactory[]) {
    for (const f of factories) {
      if (this.#byType.has(f.type)) throw new TypeError(`Backend type "${f.type}" is registered twice`);
      this.#byType.set(f.type, f);
    }
  }

  /** The known types, sorted. */
  get types(): string[] {
    return [...this.#byType.keys()].sort();
  }

  /** The factory for `type` (case-insensitive). */
  get(type: string): BackendFactory {
    const f = this.#byType.get(type.toLowerCase());
    if (!f) {
      throw new UnknownBackendError(
        `unknown backend type: ${type}: set Backend.Type in net-conf.json to one of ${this.types.join(", ")}`,
      );
    }
    return f;
  }
}

/** Every backend this build ships. */
export const defaultBackends: readonly BackendFactory[] = [
  allocBackend,
  extensionBackend,
  hostGwBackend,
  ipipBackend,
  ipsecBackend,
  udpBackend,
  vxlanBackend,
  wireguardBackend,
  ...cloudRouteProviders.map((p) => createCloudRouteBackend(p)),
];

/** A registry with every backend this build ships. */
export function defaultRegistry(): BackendRegistry {
  return new BackendRegistry(defaultBackends);
}

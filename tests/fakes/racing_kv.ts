/**
 * A {@linkcode KV} in which another node's lease lands just before our first create under
 * `<prefix>/subnets/`: a different IPv4 subnet with the very IPv6 subnet we are about to take.
 * It makes the dual-stack allocation race certain, over any store (memory or etcd).
 *
 * @module
 */
import type { KV } from "../../src/lease/kv.ts";

export function racingKV(inner: KV, prefix: string): KV {
  let raced = false;
  return {
    get: (k, s) => inner.get(k, s),
    list: (p, s) => inner.list(p, s),
    update: (k, v, t, r, s) => inner.update(k, v, t, r, s),
    delete: (k, r, s) => inner.delete(k, r, s),
    ttl: (l, s) => inner.ttl(l, s),
    watch: (p, r, s) => inner.watch(p, r, s),
    async create(key, value, ttl, signal) {
      if (!raced && key.startsWith(`${prefix}/subnets/`) && key.includes("&")) {
        raced = true;
        const v6 = key.slice(key.indexOf("&") + 1);
        await inner.create(
          `${prefix}/subnets/10.5.250.0-24&${v6}`,
          `{"PublicIP":"192.0.2.99","PublicIPv6":null}`,
          ttl,
          signal,
        );
      }
      return inner.create(key, value, ttl, signal);
    },
  };
}

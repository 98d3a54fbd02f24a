/**
 * Dual-stack allocation under a race: two nodes that pick different IPv4 subnets but the same
 * IPv6 subnet at the same moment both create their keys (the keys differ), so the key's
 * compare-and-swap alone cannot fence the IPv6 subnet. The younger key must give it up.
 */
import assert from "node:assert/strict";
import { IP4, parseSubnetKey } from "../../src/ip/mod.ts";
import type { KVEntry } from "../../src/lease/kv.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import { MemoryKV } from "../../src/lease/memory/kv.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";

const PREFIX = "/coreos.com/network";
const CONF =
  `{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:5::/48","Backend":{"Type":"alloc"}}`;

/** A MemoryKV where another node's create lands just before ours (the race, made certain). */
class RacingKV extends MemoryKV {
  raced = false;
  override async create(key: string, value: string, ttl: number): Promise<KVEntry | undefined> {
    if (!this.raced && key.startsWith(`${PREFIX}/subnets/`)) {
      this.raced = true;
      // The other node: another IPv4 subnet, the very IPv6 subnet we are about to take.
      const v6 = key.slice(key.indexOf("&") + 1);
      await super.create(
        `${PREFIX}/subnets/10.5.250.0-24&${v6}`,
        `{"PublicIP":"192.0.2.99","PublicIPv6":null}`,
        ttl,
      );
    }
    return super.create(key, value, ttl);
  }
}

Deno.test("kv manager: two nodes that lease one IPv6 subnet at once: the younger key gives it up and allocates again", async () => {
  const kv = new RacingKV();
  kv.put(`${PREFIX}/config`, CONF);
  const log = new MemoryLogger();
  try {
    const m = new KVSubnetManager({ kv, prefix: PREFIX, log, clock: systemClock, random: () => 0 });
    const lease = await m.acquireLease({ publicIP: IP4.parse("192.0.2.11") });
    const { entries } = await kv.list(`${PREFIX}/subnets/`);
    const v6s = entries.map((e) => parseSubnetKey(e.key.slice(`${PREFIX}/subnets/`.length))!.ip6?.toString());
    assert.equal(entries.length, 2, entries.map((e) => e.key).join("\n"));
    assert.equal(new Set(v6s).size, 2, `every IPv6 subnet held once: ${v6s.join(", ")}`);
    const theirs = entries.find((e) => e.key.includes("10.5.250.0-24"))!;
    assert.ok(
      !theirs.key.endsWith(lease.ipv6Subnet!.toString().replace("/", "-")),
      "ours is another IPv6 subnet",
    );
    assert.ok(
      log.messages("warn").some((m) =>
        /was leased by another node at the same time; allocating again/.test(m)
      ),
    );
  } finally {
    kv.close();
  }
});

/**
 * The dual-stack allocation race, checked over any store: a node acquires a lease while another
 * node's create with the same IPv6 subnet lands just before its own (racing_kv.ts). Afterwards
 * every IPv6 subnet must be held once, ours being another one, and the log must say why.
 *
 * @module
 */
import assert from "node:assert/strict";
import { IP4, parseSubnetKey } from "../../src/ip/mod.ts";
import type { KV } from "../../src/lease/kv.ts";
import { KVSubnetManager } from "../../src/lease/kv_manager.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { systemClock } from "../../src/util/clock.ts";
import { racingKV } from "./racing_kv.ts";

export const PREFIX = "/coreos.com/network";
export const DUAL_CONF =
  `{"Network":"10.5.0.0/16","EnableIPv6":true,"IPv6Network":"fd00:5::/48","Backend":{"Type":"alloc"}}`;

/** Runs the race over `store` (holding DUAL_CONF at `<PREFIX>/config`) and checks the outcome. */
export async function checkDualStackRace(store: KV): Promise<void> {
  const kv = racingKV(store, PREFIX);
  const log = new MemoryLogger();
  const m = new KVSubnetManager({ kv, prefix: PREFIX, log, clock: systemClock, random: () => 0 });
  const lease = await m.acquireLease({ publicIP: IP4.parse("192.0.2.11") });
  const { entries } = await store.list(`${PREFIX}/subnets/`);
  const v6s = entries.map((e) => parseSubnetKey(e.key.slice(`${PREFIX}/subnets/`.length))!.ip6?.toString());
  assert.equal(entries.length, 2, entries.map((e) => e.key).join("\n"));
  assert.equal(new Set(v6s).size, 2, `every IPv6 subnet held once: ${v6s.join(", ")}`);
  const theirs = entries.find((e) => e.key.includes("10.5.250.0-24"))!;
  assert.ok(
    !theirs.key.endsWith(lease.ipv6Subnet!.toString().replace("/", "-")),
    "ours is another IPv6 subnet",
  );
  assert.ok(
    log.messages("warn").some((m) => /was leased by another node at the same time; allocating again/.test(m)),
  );
}

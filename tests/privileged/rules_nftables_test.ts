// nftables mode on the real nft (1.0.6 here), inside a throwaway network namespace: never the
// host's own. Needs root, a working `ip netns`, and Debian's nftables and iptables packages;
// otherwise skipped with one printed reason.
//
// Golden text: upstream's e2e expectations for `nft list chain ip flannel-ipv4 postrtg|forward`,
// and the same for `ip6 flannel-ipv6`, with and without fully-random.

import assert from "node:assert/strict";
import { IP4Net, IP6Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import {
  createTrafficManager,
  type TrafficManager,
  type TrafficManagerOptions,
} from "../../src/rules/mod.ts";
import { iptablesTools } from "../../src/rules/iptables.ts";
import { netnsRunner, type StdinCommand, type StdinCommandRunner } from "../../src/runtime/command_stdin.ts";
import { systemClock } from "../../src/util/clock.ts";
import { dataPath, enter, nsName, privilegedSkipReason, resetNamespace } from "./rules_netns_test.ts";

const LEGACY = { ipv4: iptablesTools("ipv4", "legacy"), ipv6: iptablesTools("ipv6", "legacy") };
const NFT = { ipv4: iptablesTools("ipv4", "nft"), ipv6: iptablesTools("ipv6", "nft") };
const reason = await privilegedSkipReason([
  "nft",
  "iptables-nft",
  ...Object.values(LEGACY.ipv4),
  ...Object.values(LEGACY.ipv6),
]);
if (reason !== undefined) console.log(`skipping privileged nftables rules tests: ${reason}`);

const config = {
  enableIPv4: true,
  enableIPv6: true,
  network: IP4Net.parse("10.42.0.0/16"),
  ipv6Network: IP6Net.parse("fd00:10:244::/56"),
};
const lease = { subnet: IP4Net.parse("10.42.1.0/24"), ipv6Subnet: IP6Net.parse("fd00:10:244:1::/64") };

function goldenPostrtg(family: "ipv4" | "ipv6", fullyRandom: boolean): string {
  const [f, t, n, p, mc] = family === "ipv4"
    ? ["ip", "flannel-ipv4", "10.42.0.0/16", "10.42.1.0/24", "224.0.0.0/4"]
    : ["ip6", "flannel-ipv6", "fd00:10:244::/56", "fd00:10:244:1::/64", "ff00::/8"];
  const r = fullyRandom ? " fully-random" : "";
  return `table ${f} ${t} {
	chain postrtg {
		comment "chain to manage traffic masquerading by flannel"
		type nat hook postrouting priority srcnat; policy accept;
		meta mark 0x00004000 return
		${f} saddr ${p} ${f} daddr ${n} return
		${f} saddr ${n} ${f} daddr ${p} return
		${f} saddr != ${p} ${f} daddr ${n} return
		${f} saddr ${n} ${f} daddr != ${mc} masquerade${r}
		${f} saddr != ${n} ${f} daddr ${n} masquerade${r}
	}
}`;
}

function goldenForward(family: "ipv4" | "ipv6"): string {
  const [f, t, n] = family === "ipv4"
    ? ["ip", "flannel-ipv4", "10.42.0.0/16"]
    : ["ip6", "flannel-ipv6", "fd00:10:244::/56"];
  return `table ${f} ${t} {
	chain forward {
		comment "chain to accept flannel traffic"
		type filter hook forward priority filter; policy accept;
		${f} saddr ${n} accept
		${f} daddr ${n} accept
	}
}`;
}

Deno.test({
  name: "nftables mode on the real nft",
  ignore: reason !== undefined,
  async fn(t) {
    const ns = nsName("nft");
    await enter(ns);
    try {
      const inNs = netnsRunner(ns);
      const calls: string[] = [];
      const run: StdinCommandRunner = (c: StdinCommand) => {
        calls.push(c.argv.join(" "));
        return inNs(c);
      };
      const sh = async (...argv: string[]) => {
        const res = await inNs({ argv });
        assert.equal(res.code, 0, `${argv.join(" ")}: ${res.stderr}`);
        return res.stdout;
      };
      const make = (o: Partial<TrafficManagerOptions> = {}): TrafficManager =>
        createTrafficManager({
          enableNFTables: true,
          enableIPv4: true,
          enableIPv6: true,
          run,
          log: new MemoryLogger(),
          clock: systemClock,
          resyncSeconds: 5,
          fullyRandomDisable: false,
          iptablesTools: LEGACY,
          ...o,
        });
      const install = async (m: TrafficManager) => {
        await m.cleanupOtherMode();
        await m.init();
        await m.setupMasq(config, lease);
        await m.setupForward(config);
      };
      const chain = async (family: "ipv4" | "ipv6", name: string) =>
        (await sh("nft", "list", "chain", family === "ipv4" ? "ip" : "ip6", `flannel-${family}`, name))
          .trimEnd();
      const assertGolden = async (fullyRandom = true) => {
        for (const f of ["ipv4", "ipv6"] as const) {
          assert.equal(await chain(f, "postrtg"), goldenPostrtg(f, fullyRandom));
          assert.equal(await chain(f, "forward"), goldenForward(f));
        }
      };

      await t.step("golden text for IPv4 and IPv6; iptables-nft's cleanup creates no table", async () => {
        await resetNamespace(inNs);
        await install(make({ iptablesTools: NFT }));
        await assertGolden();
        assert.equal(await sh("nft", "list", "tables"), "table ip flannel-ipv4\ntable ip6 flannel-ipv6\n");
      });

      await t.step("without fully-random", async () => {
        await install(make({ fullyRandomDisable: true }));
        await assertGolden(false);
      });

      await t.step("an idle reconcile lists one table per family and writes nothing", async () => {
        const m = make();
        await install(m);
        calls.length = 0;
        assert.deepEqual(await m.reconcile(), { changed: false, repairs: [] });
        assert.deepEqual(calls, ["nft list table ip flannel-ipv4", "nft list table ip6 flannel-ipv6"]);
      });

      await t.step(
        "deleted, duplicated and reordered rules and a foreign chain are repaired in one reconcile",
        async () => {
          const m = make();
          await install(m);
          const handles = (await sh("nft", "-a", "list", "chain", "ip", "flannel-ipv4", "postrtg")).matchAll(
            /return # handle (\d+)/g,
          );
          await sh("nft", "delete", "rule", "ip", "flannel-ipv4", "postrtg", "handle", [...handles][2]![1]!);
          await sh("nft", "add", "rule", "ip", "flannel-ipv4", "postrtg", "meta", "mark", "0x4000", "return");
          await sh(
            "nft",
            "insert",
            "rule",
            "ip",
            "flannel-ipv4",
            "forward",
            "ip",
            "daddr",
            "10.42.0.0/16",
            "accept",
          );
          await sh("nft", "add", "chain", "ip", "flannel-ipv4", "intruder");
          await sh("nft", "delete", "chain", "ip6", "flannel-ipv6", "forward");
          calls.length = 0;
          const report = await m.reconcile();
          assert.equal(report.changed, true);
          assert.deepEqual(report.repairs.map((r) => r.split(" differs")[0]), [
            "IPv4 table ip flannel-ipv4",
            "IPv6 table ip6 flannel-ipv6",
          ]);
          assert.equal(calls.filter((c) => c === "nft -f -").length, 2, "one transaction per family");
          await assertGolden();
          assert.doesNotMatch(await sh("nft", "list", "table", "ip", "flannel-ipv4"), /intruder/);
          assert.deepEqual(await m.reconcile(), { changed: false, repairs: [] });
        },
      );

      await t.step("a deleted table is rebuilt", async () => {
        const m = make();
        await install(m);
        await sh("nft", "delete", "table", "ip", "flannel-ipv4");
        assert.deepEqual((await m.reconcile()).repairs, ["IPv4 table ip flannel-ipv4 missing"]);
        await assertGolden();
      });

      await t.step("switching from iptables mode removes every iptables trace, and back", async () => {
        await resetNamespace(inNs);
        await install(make({ enableNFTables: false }));
        assert.match(await sh("iptables-legacy-save"), /FLANNEL-POSTRTG/);
        await install(make());
        for (const save of ["iptables-legacy-save", "ip6tables-legacy-save"]) {
          assert.doesNotMatch(await sh(save), /FLANNEL|flanneld/);
        }
        await assertGolden();
        await install(make({ enableNFTables: false }));
        assert.doesNotMatch(await sh("nft", "list", "tables"), /flannel/);
      });

      await t.step("cleanup deletes both tables", async () => {
        const m = make();
        await install(m);
        await m.cleanup();
        assert.doesNotMatch(await sh("nft", "list", "tables"), /flannel/);
      });

      await t.step("a pod's traffic leaving the network is masqueraded, pod to pod is not", async () => {
        await resetNamespace(inNs);
        await install(make({ enableIPv6: false }));
        await dataPath(ns, { iptables: "iptables-nft" });
      });
    } finally {
      await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
    }
  },
});

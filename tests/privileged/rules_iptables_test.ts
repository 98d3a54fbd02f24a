// iptables mode on the real iptables 1.8 (nf_tables and legacy backends), inside throwaway network
// namespaces: never the host's own. Needs root, a working `ip netns`, and Debian's iptables and
// nftables packages; otherwise skipped with one printed reason.
//
// Golden text: upstream's e2e expectations (`iptables -t nat -S POSTROUTING` flannel lines +
// `-S FLANNEL-POSTRTG`; `-t filter -S FORWARD` + `-S FLANNEL-FWD` beside kube-proxy's jumps), for
// IPv4 and IPv6, with and without --random-fully.

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

const VARIANTS = ["nft", "legacy"] as const;
const reason = await privilegedSkipReason([
  ...VARIANTS.flatMap((v) => Object.values({ ...iptablesTools("ipv4", v), ...iptablesTools("ipv6", v) })),
  "nft",
]);
if (reason !== undefined) console.log(`skipping privileged iptables rules tests: ${reason}`);

const config = {
  enableIPv4: true,
  enableIPv6: true,
  network: IP4Net.parse("10.42.0.0/16"),
  ipv6Network: IP6Net.parse("fd00:10:244::/56"),
};
const lease = { subnet: IP4Net.parse("10.42.1.0/24"), ipv6Subnet: IP6Net.parse("fd00:10:244:1::/64") };

function goldenPostrouting(family: "ipv4" | "ipv6", randomFully: boolean): string {
  const [n, p, mc] = family === "ipv4"
    ? ["10.42.0.0/16", "10.42.1.0/24", "224.0.0.0/4"]
    : ["fd00:10:244::/56", "fd00:10:244:1::/64", "ff00::/8"];
  const r = randomFully ? " --random-fully" : "";
  return `-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
-N FLANNEL-POSTRTG
-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s ${p} -d ${n} -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s ${n} -d ${p} -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG ! -s ${n} -d ${p} -m comment --comment "flanneld masq" -j RETURN
-A FLANNEL-POSTRTG -s ${n} ! -d ${mc} -m comment --comment "flanneld masq" -j MASQUERADE${r}
-A FLANNEL-POSTRTG ! -s ${n} -d ${n} -m comment --comment "flanneld masq" -j MASQUERADE${r}`;
}

function goldenForward(family: "ipv4" | "ipv6"): string {
  const n = family === "ipv4" ? "10.42.0.0/16" : "fd00:10:244::/56";
  return `-P FORWARD ACCEPT
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD
-N FLANNEL-FWD
-A FLANNEL-FWD -s ${n} -m comment --comment "flanneld forward" -j ACCEPT
-A FLANNEL-FWD -d ${n} -m comment --comment "flanneld forward" -j ACCEPT`;
}

/** kube-proxy's jumps, installed before flannel's as on a real node. */
const KUBE_PROXY = `*filter
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES
COMMIT
*nat
:KUBE-POSTROUTING - [0:0]
-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING
COMMIT
`;

Deno.test({
  name: "iptables mode on the real iptables, nf_tables and legacy backends",
  ignore: reason !== undefined,
  async fn(t) {
    const ns = nsName("ipt");
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
      for (const v of VARIANTS) {
        const tools = { ipv4: iptablesTools("ipv4", v), ipv6: iptablesTools("ipv6", v) };
        const make = (o: Partial<TrafficManagerOptions> = {}): TrafficManager =>
          createTrafficManager({
            enableNFTables: false,
            enableIPv4: true,
            enableIPv6: true,
            run,
            log: new MemoryLogger(),
            clock: systemClock,
            resyncSeconds: 5,
            fullyRandomDisable: false,
            iptablesTools: tools,
            ...o,
          });
        const install = async (m: TrafficManager) => {
          await m.cleanupOtherMode();
          await m.init();
          await m.setupMasq(config, lease);
          await m.setupForward(config);
        };
        const listing = async (family: "ipv4" | "ipv6", table: string, builtin: string, chain: string) => {
          const ipt = tools[family].iptables;
          const b = (await sh(ipt, "-t", table, "-S", builtin)).trimEnd().split("\n");
          const c = (await sh(ipt, "-t", table, "-S", chain)).trimEnd();
          return { builtin: b, chain: c };
        };
        const natGolden = async (family: "ipv4" | "ipv6") => {
          const l = await listing(family, "nat", "POSTROUTING", "FLANNEL-POSTRTG");
          return [...l.builtin.filter((x) => x.includes("FLANNEL")), l.chain].join("\n");
        };
        const fwdGolden = async (family: "ipv4" | "ipv6") => {
          const l = await listing(family, "filter", "FORWARD", "FLANNEL-FWD");
          return [...l.builtin, l.chain].join("\n");
        };
        const noTrace = async () => {
          for (const f of ["ipv4", "ipv6"] as const) {
            const saved = await sh(tools[f].save);
            assert.doesNotMatch(saved, /FLANNEL|flanneld/, `${tools[f].save} still shows flannel`);
          }
        };

        await t.step(`${v}: golden text for IPv4 and IPv6, appended after kube-proxy's jumps`, async () => {
          await resetNamespace(inNs);
          for (const f of ["ipv4", "ipv6"] as const) {
            await inNs({ argv: [tools[f].restore, "--noflush"], stdin: KUBE_PROXY });
          }
          await install(make());
          for (const f of ["ipv4", "ipv6"] as const) {
            assert.equal(await natGolden(f), goldenPostrouting(f, true));
            assert.equal(await fwdGolden(f), goldenForward(f));
          }
        });

        await t.step(`${v}: an idle reconcile reads and writes nothing`, async () => {
          calls.length = 0;
          const m = make();
          await install(m);
          calls.length = 0;
          assert.deepEqual(await m.reconcile(), { changed: false, repairs: [] });
          assert.ok(calls.every((c) => !c.includes("-restore")), calls.join("\n"));
        });

        await t.step(
          `${v}: a deleted rule, a duplicate and moved jumps are repaired in one reconcile`,
          async () => {
            const m = make();
            await install(m);
            const ipt4 = tools.ipv4.iptables;
            const jump = ["-m", "comment", "--comment", "flanneld masq", "-j", "FLANNEL-POSTRTG"];
            await sh(ipt4, "-t", "nat", "-D", "FLANNEL-POSTRTG", "3");
            await sh(
              ipt4,
              "-t",
              "nat",
              "-A",
              "FLANNEL-POSTRTG",
              "-m",
              "mark",
              "--mark",
              "0x4000/0x4000",
              "-m",
              "comment",
              "--comment",
              "flanneld masq",
              "-j",
              "RETURN",
            );
            await sh(ipt4, "-t", "nat", "-D", "POSTROUTING", ...jump);
            await sh(ipt4, "-t", "nat", "-I", "POSTROUTING", "1", ...jump);
            await sh(
              ipt4,
              "-I",
              "FORWARD",
              "2",
              "-m",
              "comment",
              "--comment",
              "flanneld forward",
              "-j",
              "FLANNEL-FWD",
            );
            await sh(tools.ipv6.iptables, "-D", "FLANNEL-FWD", "1");
            calls.length = 0;
            const report = await m.reconcile();
            assert.equal(report.changed, true);
            assert.deepEqual(report.repairs, [
              "IPv4 nat/FLANNEL-POSTRTG: 1 missing, 1 extra or duplicated",
              "IPv4 nat/POSTROUTING: jump not last",
              "IPv4 filter/FORWARD: jump duplicated (2)",
              "IPv6 filter/FLANNEL-FWD: 1 missing",
            ]);
            assert.equal(calls.filter((c) => c.includes("-restore")).length, 2, "one transaction per family");
            for (const f of ["ipv4", "ipv6"] as const) {
              assert.equal(await natGolden(f), goldenPostrouting(f, true));
              assert.equal(await fwdGolden(f), goldenForward(f));
            }
            assert.deepEqual(await m.reconcile(), { changed: false, repairs: [] });
          },
        );

        await t.step(
          `${v}: --ip-masq-fully-random-disable, and a new network replaces the old rules`,
          async () => {
            const m = make({ fullyRandomDisable: true });
            await m.init();
            await m.setupMasq(config, lease, {
              network: IP4Net.parse("10.9.0.0/16"),
              subnet: IP4Net.parse("10.9.9.0/24"),
            });
            for (const f of ["ipv4", "ipv6"] as const) {
              assert.equal(await natGolden(f), goldenPostrouting(f, false));
            }
          },
        );

        await t.step(`${v}: switching to nftables mode leaves no iptables trace, and back`, async () => {
          await install(make());
          const nftMode = make({ enableNFTables: true });
          await install(nftMode);
          await noTrace();
          assert.match(await sh("nft", "list", "tables"), /table ip flannel-ipv4/);
          await install(make());
          assert.doesNotMatch(await sh("nft", "list", "tables"), /flannel/);
          for (const f of ["ipv4", "ipv6"] as const) {
            assert.equal(await natGolden(f), goldenPostrouting(f, true));
          }
        });

        await t.step(`${v}: cleanup removes exactly ours; kube-proxy's rules stay`, async () => {
          const m = make();
          await install(m);
          await m.cleanup();
          await noTrace();
          const fwd = (await sh(tools.ipv4.iptables, "-S", "FORWARD")).trimEnd().split("\n");
          assert.deepEqual(fwd, goldenForward("ipv4").split("\n").slice(0, 5));
        });

        await t.step(
          `${v}: a pod's traffic leaving the network is masqueraded, pod to pod is not`,
          async () => {
            await resetNamespace(inNs);
            await install(make({ enableIPv6: false }));
            await dataPath(ns, tools.ipv4);
          },
        );
      }
    } finally {
      await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
    }
  },
});

Deno.test({
  name: "netnsRunner runs inside the namespace and reports a missing program as 127",
  ignore: reason !== undefined,
  async fn() {
    const ns = nsName("runner");
    await enter(ns);
    try {
      const inNs = netnsRunner(ns);
      const links = await inNs({ argv: ["ip", "-o", "link", "show"] });
      assert.equal(links.code, 0);
      assert.deepEqual(links.stdout.trim().split("\n").map((l) => l.split(": ")[1]), ["lo"]);
      assert.equal((await inNs({ argv: ["flannel-no-such-program"] })).code, 127);
      const cat = await inNs({ argv: ["cat"], stdin: "payload\n" });
      assert.equal(cat.stdout, "payload\n");
    } finally {
      await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
    }
  },
});

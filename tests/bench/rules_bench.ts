/**
 * Rules bench: prints numbers, asserts nothing.
 *
 * - time to install the full rule set (masquerade + forward, IPv4 + IPv6, after the other mode's
 *   cleanup), per mode and iptables backend;
 * - one idle resync: wall time, CPU of the tools it runs (children's user+sys from
 *   /proc/self/stat) and of this process, on an empty node and beside a kube-proxy-sized nat table
 *   (3000 services, 12 000 rules), next to upstream's way of checking (one `iptables -C` process
 *   per rule, 10 per family).
 *
 * Runs itself inside a throwaway network namespace (`ip netns exec`), so the host's rules are
 * never touched; needs root and Debian's iptables and nftables packages, otherwise says why.
 */
import { IP4Net, IP6Net } from "../../src/ip/mod.ts";
import { nullLogger } from "../../src/log/logger.ts";
import { createTrafficManager, type TrafficManager } from "../../src/rules/mod.ts";
import {
  FORWARD_CHAIN,
  forwardRules,
  jumpRule,
  MASQ_CHAIN,
  masqRules,
} from "../../src/rules/iptables_rules.ts";
import { type IptablesTools, iptablesTools } from "../../src/rules/iptables.ts";
import { denoRunStdinCommand } from "../../src/runtime/command_stdin.ts";
import { systemClock } from "../../src/util/clock.ts";

const INSIDE = "--inside-netns";

if (!Deno.args.includes(INSIDE)) {
  if (Deno.uid() !== 0) {
    console.log("rules bench skipped: not running as root");
    Deno.exit(0);
  }
  const ns = `flt-rules-bench-${Deno.pid}`;
  const add = await new Deno.Command("ip", { args: ["netns", "add", ns], stderr: "piped" }).output();
  if (!add.success) {
    console.log(
      `rules bench skipped: "ip netns add" is unusable: ${new TextDecoder().decode(add.stderr).trim()}`,
    );
    Deno.exit(0);
  }
  try {
    const self = new URL(import.meta.url).pathname;
    await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "-A",
        self,
        INSIDE,
        await Deno.readLink("/proc/self/ns/net"),
      ],
      stdout: "inherit",
      stderr: "inherit",
    }).output();
  } finally {
    await new Deno.Command("ip", { args: ["netns", "del", ns] }).output();
  }
  Deno.exit(0);
}

// Inside the namespace from here on. Refuse to run in the namespace we were started from.
const outer = Deno.args[Deno.args.indexOf(INSIDE) + 1];
if (!outer || (await Deno.readLink("/proc/self/ns/net")) === outer) {
  throw new Error("rules bench: refusing to run outside its own network namespace");
}

const run = denoRunStdinCommand;
for (const tool of ["nft", "iptables-nft", "iptables-legacy", "ip6tables-nft", "ip6tables-legacy"]) {
  if ((await run({ argv: [tool, "--version"] })).code === 127) {
    console.log(
      `rules bench skipped: ${tool} is not installed (on Debian: apt-get install iptables nftables)`,
    );
    Deno.exit(0);
  }
}

const TICKS_PER_S = 100; // USER_HZ on Linux
/** This process's and its waited-for children's CPU time, in ms. */
async function cpu(): Promise<{ self: number; children: number }> {
  const stat = await Deno.readTextFile("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
  // Fields 14–17 of proc(5) (utime, stime, cutime, cstime) are 12–15 after the command name.
  const ms = (ticks: number) => (ticks * 1000) / TICKS_PER_S;
  return { self: ms(f[11]! + f[12]!), children: ms(f[13]! + f[14]!) };
}

const config = {
  enableIPv4: true,
  enableIPv6: true,
  network: IP4Net.parse("10.42.0.0/16"),
  ipv6Network: IP6Net.parse("fd00:10:244::/56"),
};
const lease = { subnet: IP4Net.parse("10.42.1.0/24"), ipv6Subnet: IP6Net.parse("fd00:10:244:1::/64") };

function manager(nft: boolean, variant: "nft" | "legacy"): TrafficManager {
  return createTrafficManager({
    enableNFTables: nft,
    enableIPv4: true,
    enableIPv6: true,
    run,
    log: nullLogger,
    clock: systemClock,
    resyncSeconds: 5,
    fullyRandomDisable: false,
    iptablesTools: { ipv4: iptablesTools("ipv4", variant), ipv6: iptablesTools("ipv6", variant) },
  });
}

async function install(m: TrafficManager): Promise<void> {
  await m.cleanupOtherMode();
  await m.init();
  await m.setupMasq(config, lease);
  await m.setupForward(config);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measureInstall(nft: boolean, variant: "nft" | "legacy", runs = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const m = manager(nft, variant);
    const t0 = performance.now();
    await install(m);
    times.push(performance.now() - t0);
    await m.cleanup();
  }
  return median(times);
}

/** Mean wall, children CPU and own CPU of `fn` over `n` calls. */
async function measure(fn: () => Promise<unknown>, n: number): Promise<string> {
  const c0 = await cpu();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn();
  const wall = (performance.now() - t0) / n;
  const c1 = await cpu();
  const kids = (c1.children - c0.children) / n;
  const self = (c1.self - c0.self) / n;
  return `${wall.toFixed(1)} ms wall, ${kids.toFixed(1)} ms CPU in tools, ${
    self.toFixed(1)
  } ms CPU in flanneld`;
}

/** Upstream's check: one `iptables -C` per rule (the jump and the chain's rules), per family. */
function upstreamCheck(tools: Record<"ipv4" | "ipv6", IptablesTools>): () => Promise<void> {
  const checks: string[][] = [];
  for (const [family, t] of Object.entries(tools) as Array<["ipv4" | "ipv6", IptablesTools]>) {
    const net = family === "ipv4" ? config.network : config.ipv6Network;
    const sub = family === "ipv4" ? lease.subnet : lease.ipv6Subnet;
    const sets = [
      [MASQ_CHAIN, [jumpRule(MASQ_CHAIN), ...masqRules(family, net, sub, true)]],
      [FORWARD_CHAIN, [jumpRule(FORWARD_CHAIN), ...forwardRules(net)]],
    ] as const;
    for (const [spec, rules] of sets) {
      for (const r of rules) {
        const args = r.slice(3).match(/"[^"]*"|\S+/g)!.map((a) => a.replaceAll('"', ""));
        checks.push([t.iptables, "-w", "-t", spec.table, "-C", ...args]);
      }
    }
  }
  return async () => {
    for (const argv of checks) await run({ argv });
  };
}

/** kube-proxy-like nat table: 3000 services, each a KUBE-SVC and a KUBE-SEP chain, 4 rules. */
function kubeProxyNat(services: number): string {
  const l = ["*nat", ":KUBE-SERVICES - [0:0]"];
  const rules: string[] = ["-A PREROUTING -j KUBE-SERVICES"];
  for (let i = 0; i < services; i++) {
    const id = String(i).padStart(5, "0");
    const ip = `${(i >> 8) & 255}.${(i & 255) + 0}`;
    l.push(`:KUBE-SVC-${id} - [0:0]`, `:KUBE-SEP-${id} - [0:0]`);
    const c = `-m comment --comment "ns/svc${i}:http"`;
    rules.push(
      `-A KUBE-SERVICES -d 10.96.${ip}/32 -p tcp ${c} -m tcp --dport 80 -j KUBE-SVC-${id}`,
      `-A KUBE-SVC-${id} ${c} -j KUBE-SEP-${id}`,
      `-A KUBE-SEP-${id} -s 10.244.${ip}/32 ${c} -j MARK --set-xmark 0x4000/0x4000`,
      `-A KUBE-SEP-${id} -p tcp ${c} -m tcp -j DNAT --to-destination 10.244.${ip}:8080`,
    );
  }
  return [...l, ...rules, "COMMIT", ""].join("\n");
}

async function flush(): Promise<void> {
  for (const b of ["iptables-legacy", "ip6tables-legacy"]) {
    for (const a of [["-t", "nat", "-F"], ["-t", "nat", "-X"], ["-F"], ["-X"]]) {
      await run({ argv: [b, ...a] });
    }
  }
  await run({ argv: ["nft", "flush", "ruleset"] });
}

const N = 40;
console.log(`rules bench (per family: IPv4 + IPv6; resync figures are the mean of ${N})`);
for (const variant of ["nft", "legacy"] as const) {
  await flush();
  const tools = { ipv4: iptablesTools("ipv4", variant), ipv6: iptablesTools("ipv6", variant) };
  console.log(`iptables mode, ${variant} backend:`);
  console.log(`  install full rule set: ${(await measureInstall(false, variant)).toFixed(1)} ms (median)`);
  const m = manager(false, variant);
  await install(m);
  console.log(`  idle resync, empty node: ${await measure(() => m.reconcile(), N)}`);
  console.log(
    `  upstream-style check (20 x iptables -C), empty node: ${await measure(upstreamCheck(tools), N / 4)}`,
  );
  await run({ argv: [tools.ipv4.restore, "--noflush"], stdin: kubeProxyNat(3000) });
  await m.reconcile();
  console.log(`  idle resync, 12k kube-proxy nat rules: ${await measure(() => m.reconcile(), N)}`);
  const save = await measure(() => run({ argv: [tools.ipv4.save, "-t", "nat"] }), 10);
  console.log(`    (for scale: one ${tools.ipv4.save} -t nat there: ${save})`);
  console.log(
    `  upstream-style check, 12k kube-proxy nat rules: ${await measure(upstreamCheck(tools), N / 4)}`,
  );
  await m.cleanup();
}
await flush();
console.log("nftables mode:");
console.log(`  install full rule set: ${(await measureInstall(true, "nft")).toFixed(1)} ms (median)`);
const m = manager(true, "nft");
await install(m);
console.log(`  idle resync: ${await measure(() => m.reconcile(), N)}`);
await m.cleanup();
await flush();

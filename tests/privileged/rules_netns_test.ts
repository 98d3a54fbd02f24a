// Namespace helpers for the privileged rules tests (rules_iptables_test.ts, rules_nftables_test.ts);
// no tests of its own. Everything runs inside throwaway namespaces made here; the host's own rules
// are never read or written.

import assert from "node:assert/strict";
import { netnsRunner, type StdinCommandRunner } from "../../src/runtime/command_stdin.ts";

/** A namespace name unique to this process and call. */
export function nsName(tag: string): string {
  return `flt-rules-${tag}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
}

async function run(...argv: string[]): Promise<{ code: number; stderr: string }> {
  const [cmd = "", ...args] = argv;
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
}

async function must(...argv: string[]): Promise<void> {
  const r = await run(...argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")}: ${r.stderr}`);
}

async function onPath(name: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      if ((await Deno.stat(`${dir}/${name}`)).isFile) return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** Why the privileged rules tests cannot run here, or `undefined` when they can. */
export async function privilegedSkipReason(binaries: string[]): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "not running as root";
  for (const b of new Set(binaries)) {
    if (!(await onPath(b))) return `${b} is not installed (on Debian: apt-get install iptables nftables)`;
  }
  const probe = nsName("probe");
  const r = await run("ip", "netns", "add", probe);
  if (r.code !== 0) return `"ip netns add" is unusable: ${r.stderr}`;
  await run("ip", "netns", "del", probe);
  return undefined;
}

/** Creates the namespace with `lo` up. */
export async function enter(ns: string): Promise<void> {
  await must("ip", "netns", "add", ns);
  await must("ip", "-n", ns, "link", "set", "lo", "up");
}

/** Empties every table of both backends in the namespace the runner enters. */
export async function resetNamespace(inNs: StdinCommandRunner): Promise<void> {
  for (const base of ["iptables-legacy", "ip6tables-legacy"]) {
    for (const args of [["-t", "nat", "-F"], ["-t", "nat", "-X"], ["-F"], ["-X"]]) {
      await inNs({ argv: [base, ...args] });
    }
  }
  const r = await inNs({ argv: ["nft", "flush", "ruleset"] });
  assert.equal(r.code, 0, r.stderr);
}

/** ICMP packets counted by `-A INPUT -s <src>/32 -p icmp -j ACCEPT` in `ns`. */
async function icmpFrom(ns: string, iptables: string, src: string): Promise<number> {
  const res = await netnsRunner(ns)({ argv: [`${iptables}-save`, "-c", "-t", "filter"] });
  const m = new RegExp(`\\[(\\d+):\\d+\\] -A INPUT -s ${src.replaceAll(".", "\\.")}/32 -p icmp`).exec(
    res.stdout,
  );
  return Number(m?.[1] ?? -1);
}

/**
 * The data path through node `node`, whose masquerade rules are installed: pod1 (10.42.1.2) pings
 * an outside host (192.168.77.2, which has no route back to the pod network, so only a
 * masqueraded ping can be answered) and pod2 (10.42.2.2). Counters on the receivers show the
 * source each saw: the node's address outside, the pod's own address inside the network.
 */
export async function dataPath(node: string, tools: { iptables: string }): Promise<void> {
  const names = { pod1: `${node}-p1`, pod2: `${node}-p2`, out: `${node}-o` };
  try {
    for (const ns of Object.values(names)) await enter(ns);
    const links = [["n1", names.pod1, "10.42.1.1/24", "10.42.1.2/24"], [
      "n2",
      names.pod2,
      "10.42.2.1/24",
      "10.42.2.2/24",
    ], [
      "n3",
      names.out,
      "192.168.77.1/24",
      "192.168.77.2/24",
    ]] as const;
    for (const [dev, peerNs, nodeAddr, peerAddr] of links) {
      await must(
        "ip",
        "-n",
        node,
        "link",
        "add",
        dev,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        peerNs,
      );
      await must("ip", "-n", node, "addr", "add", nodeAddr, "dev", dev);
      await must("ip", "-n", node, "link", "set", dev, "up");
      await must("ip", "-n", peerNs, "addr", "add", peerAddr, "dev", "eth0");
      await must("ip", "-n", peerNs, "link", "set", "eth0", "up");
    }
    await must("ip", "-n", names.pod1, "route", "add", "default", "via", "10.42.1.1");
    await must("ip", "-n", names.pod2, "route", "add", "default", "via", "10.42.2.1");
    await must("ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1");
    const count = async (ns: string, src: string) =>
      await must(
        "ip",
        "netns",
        "exec",
        ns,
        tools.iptables,
        "-A",
        "INPUT",
        "-s",
        src,
        "-p",
        "icmp",
        "-j",
        "ACCEPT",
      );
    for (const src of ["192.168.77.1", "10.42.1.2"]) await count(names.out, src);
    for (const src of ["10.42.2.1", "10.42.1.2"]) await count(names.pod2, src);

    await must("ip", "netns", "exec", names.pod1, "ping", "-c", "2", "-W", "2", "192.168.77.2");
    await must("ip", "netns", "exec", names.pod1, "ping", "-c", "2", "-W", "2", "10.42.2.2");
    assert.equal(
      await icmpFrom(names.out, tools.iptables, "192.168.77.1"),
      2,
      "outside sees the node's address",
    );
    assert.equal(
      await icmpFrom(names.out, tools.iptables, "10.42.1.2"),
      0,
      "outside never sees the pod's address",
    );
    assert.equal(await icmpFrom(names.pod2, tools.iptables, "10.42.1.2"), 2, "pod2 sees pod1's own address");
    assert.equal(await icmpFrom(names.pod2, tools.iptables, "10.42.2.1"), 0, "pod to pod is not masqueraded");
  } finally {
    for (const ns of Object.values(names)) await run("ip", "netns", "del", ns);
  }
}

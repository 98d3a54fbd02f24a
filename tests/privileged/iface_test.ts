// External interface selection on a real kernel, through both NetInfo implementations (`ip -j`
// and our netlink stack, which must agree), inside a throwaway network namespace: never the
// host's own. Needs root and a working `ip netns`; otherwise skipped
// with one printed reason. (This kernel has no `dummy` links, so the test uses a veth pair.)

import assert from "node:assert/strict";
import { MemoryLogger } from "../../src/log/logger.ts";
import { kernelNetInfo } from "../../src/iface/kernel_net_info.ts";
import { NetlinkKernel } from "../../src/netlink/kernel.ts";
import { openNetlink } from "../../src/netlink/transport/deno_ffi.ts";
import {
  type CommandResult,
  ipCommandNetInfo,
  type NetInfo,
  selectExternalInterface,
  type SelectOptions,
} from "../../src/iface/mod.ts";

async function run(argv: string[]): Promise<CommandResult> {
  const [cmd = "", ...args] = argv;
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `ip …` and throws on a non-zero exit. */
async function ip(...args: string[]): Promise<void> {
  const res = await run(["ip", ...args]);
  if (res.code !== 0) throw new Error(`ip ${args.join(" ")}: ${res.stderr.trim()}`);
}

function uniqueName(tag: string): string {
  return `flt-${tag}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
}

/** Why the test cannot run here, or `undefined` when it can. */
async function skipReason(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "not running as root";
  const probe = uniqueName("probe");
  try {
    await ip("netns", "add", probe);
  } catch (err) {
    return `"ip netns add" is unusable: ${(err as Error).message}`;
  }
  await ip("netns", "del", probe);
  return undefined;
}

const reason = await skipReason();
if (reason !== undefined) console.log(`skipping privileged iface tests: ${reason}`);

function options(o: Partial<SelectOptions>): SelectOptions {
  return {
    iface: [],
    ifaceRegex: [],
    ifaceCanReach: "",
    publicIp: "",
    publicIpv6: "",
    enableIPv4: true,
    enableIPv6: false,
    ...o,
  };
}

/**
 * ve0 (10.50.0.2/24, fd50::2/64) carries both default routes; its peer ve1 (10.60.0.2/24,
 * fd60::2/64) is the "other" link that only explicit flags select.
 */
async function setUp(ns: string): Promise<void> {
  await ip("netns", "add", ns);
  await ip("-n", ns, "link", "add", "ve0", "type", "veth", "peer", "name", "ve1");
  await ip("-n", ns, "link", "set", "ve1", "mtu", "1400");
  for (const dev of ["lo", "ve0", "ve1"]) await ip("-n", ns, "link", "set", dev, "up");
  await ip("-n", ns, "addr", "add", "10.50.0.2/24", "dev", "ve0");
  await ip("-n", ns, "addr", "add", "fd50::2/64", "dev", "ve0", "nodad");
  await ip("-n", ns, "addr", "add", "10.60.0.2/24", "dev", "ve1");
  await ip("-n", ns, "addr", "add", "fd60::2/64", "dev", "ve1", "nodad");
  await ip("-n", ns, "route", "add", "default", "via", "10.50.0.1", "dev", "ve0");
  await ip("-n", ns, "-6", "route", "add", "default", "via", "fd50::1", "dev", "ve0");
  // Flags that selection weighs: an IPv4 secondary, a dynamic IPv6 address already deprecated.
  await ip("-n", ns, "addr", "add", "10.50.0.3/24", "dev", "ve0");
  await ip(
    "-n",
    ns,
    "addr",
    "add",
    "fd50::9/64",
    "dev",
    "ve0",
    "nodad",
    "valid_lft",
    "300",
    "preferred_lft",
    "0",
  );
}

Deno.test({
  name: "iface: the netlink NetInfo reads what ip -j reads",
  ignore: reason !== undefined,
  async fn() {
    const ns = uniqueName("iface-nl");
    const kernel = new NetlinkKernel({ open: openNetlink, netns: ns, log: new MemoryLogger() });
    try {
      await setUp(ns);
      const viaIp = ipCommandNetInfo({ run, netns: ns });
      const viaNetlink = kernelNetInfo(kernel);
      // `ip` names every link flag; ours only `up` (selection reads none of them).
      const strip = (ls: Awaited<ReturnType<NetInfo["links"]>>) =>
        ls.map((l) => ({ ...l, flags: l.flags.filter((f) => f === "up") }));
      const fromIp = strip(await viaIp.links());
      assert.deepEqual(strip(await viaNetlink.links()), fromIp);
      const ve0 = fromIp.find((l) => l.name === "ve0")!;
      const fd509 = ve0.addrs.find((a) => a.ip.toString() === "fd50::9")!;
      assert.deepEqual([fd509.dynamic, fd509.deprecated], [true, true], "the flags were really exercised");
      for (const family of [4, 6] as const) {
        assert.deepEqual(await viaNetlink.defaultRouteLink(family), await viaIp.defaultRouteLink(family));
      }
      // A multipath default route (no RTA_OIF, one device per next hop): both see its devices.
      await ip(
        "-n",
        ns,
        "route",
        "replace",
        "default",
        "nexthop",
        "via",
        "10.50.0.1",
        "dev",
        "ve0",
        "nexthop",
        "via",
        "10.60.0.1",
        "dev",
        "ve1",
      );
      assert.deepEqual(await viaIp.defaultRouteLink(4), ["ve0", "ve1"]);
      assert.deepEqual(await viaNetlink.defaultRouteLink(4), ["ve0", "ve1"]);
      const { IP4, IP6 } = await import("../../src/ip/mod.ts");
      for (const dst of [IP4.parse("10.60.0.254"), IP4.parse("192.0.2.77"), IP6.parse("fd60::99")]) {
        assert.deepEqual(await viaNetlink.routeGet(dst), await viaIp.routeGet(dst), String(dst));
      }
    } finally {
      kernel.close();
      await ip("netns", "del", ns).catch((err) => console.error(`cannot delete netns ${ns}: ${err}`));
    }
  },
});

Deno.test({
  name: "iface selection in a namespace through ip -j",
  ignore: reason !== undefined,
  async fn(t) {
    const ns = uniqueName("iface");
    try {
      await setUp(ns);
      const net: NetInfo = ipCommandNetInfo({ run, netns: ns });
      const pick = async (o: Partial<SelectOptions>) => {
        const e = await selectExternalInterface(options(o), net, new MemoryLogger());
        return [e.name, e.mtu, e.ifaceAddr?.toString(), e.ifaceV6Addr?.toString()];
      };

      await t.step("links are read from the namespace, not the host", async () => {
        const names = (await net.links()).map((l) => l.name).sort();
        assert.deepEqual(names, ["lo", "ve0", "ve1"]);
      });
      await t.step("default route", async () => {
        assert.deepEqual(await pick({}), ["ve0", 1500, "10.50.0.2", undefined]);
        assert.deepEqual(await pick({ enableIPv6: true }), ["ve0", 1500, "10.50.0.2", "fd50::2"]);
      });
      await t.step("by name", async () => {
        assert.deepEqual(await pick({ iface: ["ve1"] }), ["ve1", 1400, "10.60.0.2", undefined]);
      });
      await t.step("by IP", async () => {
        assert.deepEqual(await pick({ iface: ["10.60.0.2"] }), ["ve1", 1400, "10.60.0.2", undefined]);
        assert.deepEqual(
          await pick({ iface: ["fd60::2"], enableIPv4: false, enableIPv6: true }),
          ["ve1", 1400, undefined, "fd60::2"],
        );
      });
      await t.step("by regex over addresses and names", async () => {
        assert.deepEqual(await pick({ ifaceRegex: ["10\\.60\\."] }), ["ve1", 1400, "10.60.0.2", undefined]);
        assert.deepEqual(
          await pick({ ifaceRegex: ["^ve1$"], enableIPv6: true }),
          ["ve1", 1400, "10.60.0.2", "fd60::2"],
        );
      });
      await t.step("can-reach", async () => {
        assert.deepEqual(await pick({ ifaceCanReach: "10.60.0.254" }), ["ve1", 1400, "10.60.0.2", undefined]);
        assert.deepEqual(await pick({ ifaceCanReach: "192.0.2.77" }), ["ve0", 1500, "10.50.0.2", undefined]);
        assert.deepEqual(
          await pick({ ifaceCanReach: "fd60::99", enableIPv6: true }),
          ["ve1", 1400, "10.60.0.2", "fd60::2"],
        );
      });
    } finally {
      await ip("netns", "del", ns).catch((err) => console.error(`cannot delete netns ${ns}: ${err}`));
    }
  },
});

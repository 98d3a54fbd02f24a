/**
 * The real KernelOps (src/netlink/kernel.ts) on this kernel, inside a throwaway network
 * namespace, every operation cross-checked with `ip -j` / `bridge -j`. Needs root and a working
 * `ip netns`; otherwise skipped with one printed reason.
 */
import assert from "node:assert/strict";
import { IP4, IP4Net, IP6, IP6Net } from "../../src/ip/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { isErrno } from "../../src/netlink/codec/mod.ts";
import { NetlinkKernel } from "../../src/netlink/kernel.ts";
import { openNetlink } from "../../src/netlink/transport/deno_ffi.ts";

const NS = `flt-kernel-${Deno.pid}`;

function sh(...argv: string[]): { ok: boolean; out: string } {
  const r = new Deno.Command(argv[0]!, { args: argv.slice(1), stdout: "piped", stderr: "piped" })
    .outputSync();
  return { ok: r.success, out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
}
const ipj = (...args: string[]) => JSON.parse(sh("ip", "-n", NS, "-j", ...args).out || "[]");

const skip = (() => {
  if (Deno.uid() !== 0) return "not root";
  const r = sh("ip", "netns", "add", NS);
  if (!r.ok) return `"ip netns add" is unusable: ${r.out.trim()}`;
  return undefined;
})();
if (skip) console.log(`skip netlink kernel ops tests: ${skip}`);

Deno.test({
  name: "netlink kernel ops in a namespace, cross-checked with ip -j and bridge -j",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const log = new MemoryLogger();
    const k = new NetlinkKernel({ open: openNetlink, netns: NS, log });
    const ctl = new AbortController();
    try {
      const events: string[] = [];
      const watching = (async () => {
        for await (const e of k.events(ctl.signal)) {
          if (e.kind === "link") events.push(`${e.op} link ${e.link.name}`);
          if (e.kind === "route") events.push(`${e.op} route ${e.route.dst}`);
        }
      })();

      await t.step("links: veth pair, up, MTU; vxlan with flannel's attributes", async () => {
        await k.linkAdd({ name: "eth0", kind: "veth", vethPeer: "peer0", mtu: 1500 });
        await k.linkSet("eth0", { up: true });
        await k.linkSet("peer0", { up: true });
        await k.addrAdd({ dev: "eth0", addr: IP4Net.parse("192.0.2.1/24") });
        await k.addrAdd({ dev: "eth0", addr: IP6Net.parse("2001:db8::1/64") });
        const eth0 = (await k.linkGet("eth0"))!;
        assert.equal(eth0.kind, "veth");
        assert.equal(eth0.up, true);
        await k.linkAdd({
          name: "flannel.1",
          kind: "vxlan",
          mtu: 1450,
          address: "02:aa:bb:cc:dd:01",
          vxlan: { vni: 1, local: IP4.parse("192.0.2.1"), link: eth0.index!, port: 8472, learning: false },
        });
        await k.linkSet("flannel.1", { up: true });
        const [j] = ipj("-d", "link", "show", "flannel.1");
        assert.equal(j.address, "02:aa:bb:cc:dd:01");
        assert.equal(j.mtu, 1450);
        assert.equal(j.linkinfo.info_kind, "vxlan");
        assert.equal(j.linkinfo.info_data.id, 1);
        assert.equal(j.linkinfo.info_data.local, "192.0.2.1");
        assert.equal(j.linkinfo.info_data.port, 8472);
        assert.equal(j.linkinfo.info_data.learning, false);
        const got = (await k.linkGet("flannel.1"))!;
        assert.deepEqual(
          {
            vni: got.vxlan?.vni,
            local: String(got.vxlan?.local),
            link: got.vxlan?.link,
            port: got.vxlan?.port,
            learning: got.vxlan?.learning,
            gbp: got.vxlan?.gbp,
          },
          { vni: 1, local: "192.0.2.1", link: eth0.index, port: 8472, learning: false, gbp: false },
        );
        assert.equal(got.address, "02:aa:bb:cc:dd:01");
        assert.ok((await k.linkList()).some((l) => l.name === "flannel.1" && l.up));
      });

      await t.step("addresses", async () => {
        await k.addrAdd({ dev: "flannel.1", addr: IP4Net.parse("10.5.1.0/32") });
        const [j] = ipj("addr", "show", "flannel.1");
        assert.ok(
          j.addr_info.some((a: { local: string; prefixlen: number }) =>
            a.local === "10.5.1.0" && a.prefixlen === 32
          ),
        );
        const ours = await k.addrList("flannel.1");
        assert.ok(ours.some((a) => a.addr.toString() === "10.5.1.0/32" && a.permanent), JSON.stringify(ours));
        await assert.rejects(
          k.addrAdd({ dev: "flannel.1", addr: IP4Net.parse("10.5.1.0/32") }),
          (e) => isErrno(e, "EEXIST"),
        );
      });

      await t.step("routes: onlink via the device, proto 91; blackhole; lookup", async () => {
        await k.routeReplace({
          dst: IP4Net.parse("10.5.2.0/24"),
          gateway: IP4.parse("10.5.2.0"),
          dev: "flannel.1",
          onlink: true,
          protocol: 91,
        });
        await k.routeReplace({ dst: IP4Net.parse("10.5.9.0/24"), type: "blackhole", protocol: 91 });
        await k.routeReplace({
          dst: IP6Net.parse("2001:db8:5::/64"),
          gateway: IP6.parse("2001:db8::2"),
          dev: "eth0",
          protocol: 91,
        });
        const rs = ipj("route", "show", "proto", "91");
        const onlink = rs.find((r: { dst: string }) => r.dst === "10.5.2.0/24");
        assert.equal(onlink.gateway, "10.5.2.0");
        assert.equal(onlink.dev, "flannel.1");
        assert.ok(onlink.flags.includes("onlink"));
        assert.ok(
          rs.some((r: { dst: string; type?: string }) => r.dst === "10.5.9.0/24" && r.type === "blackhole"),
        );
        assert.ok(
          ipj("-6", "route", "show", "proto", "91").some((r: { dst: string }) => r.dst === "2001:db8:5::/64"),
        );
        const listed = (await k.routeList()).filter((r) => r.protocol === 91).map((r) =>
          `${r.type ?? ""} ${r.dst} ${r.gateway ?? ""} ${r.dev ?? ""} ${r.onlink ? "onlink" : ""}`.trim()
        ).sort();
        assert.deepEqual(listed, [
          "10.5.2.0/24 10.5.2.0 flannel.1 onlink",
          "2001:db8:5::/64 2001:db8::2 eth0",
          "blackhole 10.5.9.0/24",
        ]);
        assert.deepEqual(await k.routeGet(IP4.parse("192.0.2.7")), {
          dev: "eth0",
          src: IP4.parse("192.0.2.1"),
        });
        const via = await k.routeGet(IP4.parse("10.5.2.9"));
        assert.equal(via?.dev, "flannel.1");
        assert.equal(String(via?.gateway), "10.5.2.0");
        assert.equal(await k.routeGet(IP4.parse("203.0.113.1")), undefined, "no default route: unreachable");
      });

      await t.step("neighbours and FDB", async () => {
        await k.neighReplace({
          dev: "flannel.1",
          ip: IP4.parse("10.5.2.0"),
          mac: "02:aa:bb:cc:dd:02",
          permanent: true,
        });
        await k.fdbReplace({
          dev: "flannel.1",
          mac: "02:aa:bb:cc:dd:02",
          dst: IP4.parse("192.0.2.2"),
          self: true,
          permanent: true,
        });
        const [n] = ipj("neigh", "show", "dev", "flannel.1");
        assert.deepEqual([n.dst, n.lladdr, n.state[0]], ["10.5.2.0", "02:aa:bb:cc:dd:02", "PERMANENT"]);
        const fdb = JSON.parse(sh("bridge", "-n", NS, "-j", "fdb", "show", "dev", "flannel.1").out);
        assert.ok(
          fdb.some((f: { mac: string; dst: string; flags: string[]; state: string }) =>
            f.mac === "02:aa:bb:cc:dd:02" && f.dst === "192.0.2.2" && f.flags.includes("self") &&
            f.state === "permanent"
          ),
          JSON.stringify(fdb),
        );
        assert.deepEqual(
          (await k.neighList("flannel.1")).filter((x) => x.permanent).map((x) => `${x.ip} ${x.mac}`),
          ["10.5.2.0 02:aa:bb:cc:dd:02"],
        );
        assert.ok(
          (await k.fdbList("flannel.1")).some((f) =>
            f.mac === "02:aa:bb:cc:dd:02" && String(f.dst) === "192.0.2.2" && f.self && f.permanent
          ),
        );
      });

      await t.step("deletions", async () => {
        await k.fdbDel({ dev: "flannel.1", mac: "02:aa:bb:cc:dd:02", dst: IP4.parse("192.0.2.2") });
        await k.neighDel({ dev: "flannel.1", ip: IP4.parse("10.5.2.0"), mac: "" });
        await k.routeDel({ dst: IP4Net.parse("10.5.2.0/24") });
        await k.routeDel({ dst: IP4Net.parse("10.5.9.0/24"), type: "blackhole" });
        await k.addrDel({ dev: "flannel.1", addr: IP4Net.parse("10.5.1.0/32") });
        assert.equal(ipj("route", "show", "proto", "91").length, 0);
        assert.equal(ipj("neigh", "show", "dev", "flannel.1").length, 0);
        await assert.rejects(k.routeDel({ dst: IP4Net.parse("10.5.2.0/24") }), (e) => isErrno(e, "ESRCH"));
      });

      await t.step("the kernel's refusals are clear", async () => {
        await assert.rejects(k.linkAdd({ name: "flannel.1", kind: "vxlan", vxlan: { vni: 1 } }), (e) => {
          assert.ok(isErrno(e, "EEXIST"));
          assert.match(
            (e as Error).message,
            /^Cannot add link flannel\.1 type vxlan: File exists \(EEXIST\)/,
          );
          return true;
        });
        const ipip = await k.linkAdd({
          name: "flannel.ipip",
          kind: "ipip",
          ipip: { local: IP4.parse("192.0.2.1") },
        }).then(() => "created", (e) => e);
        if (ipip !== "created") {
          assert.match((ipip as Error).message, /Operation not supported \(EOPNOTSUPP\).*module ipip/);
        }
        await assert.rejects(k.linkSet("nonexistent0", { up: true }), (e) => isErrno(e, "ENODEV"));
        assert.equal(await k.linkGet("nonexistent0"), undefined);
      });

      await t.step("xfrm policies (the ipsec backend's), cross-checked with ip xfrm", async () => {
        const pol = {
          src: IP4Net.parse("10.5.1.0/24"),
          dst: IP4Net.parse("10.5.2.0/24"),
          dir: "out" as const,
          tmplSrc: IP4.parse("192.0.2.1"),
          tmplDst: IP4.parse("192.0.2.2"),
          reqid: 11,
        };
        await k.xfrmPolicyReplace(pol);
        await k.xfrmPolicyReplace(pol); // update of an existing one
        const out = sh("ip", "-n", NS, "xfrm", "policy").out;
        assert.match(
          out,
          /src 10\.5\.1\.0\/24 dst 10\.5\.2\.0\/24\s+dir out[\s\S]*tmpl src 192\.0\.2\.1 dst 192\.0\.2\.2\s+proto esp reqid 11 mode tunnel/,
        );
        assert.deepEqual(
          (await k.xfrmPolicyList()).map((p) =>
            `${p.src} ${p.dst} ${p.dir} ${p.tmplSrc} ${p.tmplDst} ${p.reqid}`
          ),
          ["10.5.1.0/24 10.5.2.0/24 out 192.0.2.1 192.0.2.2 11"],
        );
        await k.xfrmPolicyDel(pol);
        assert.equal(sh("ip", "-n", NS, "xfrm", "policy").out.trim(), "");
      });

      await t.step("wireguard over genetlink: a kernel without it says so", async () => {
        const got = await k.wgGet("flannel-wg").then((d) => d, (e) => e as Error);
        if (got instanceof Error) assert.match(got.message, /WireGuard \(module wireguard\)|No such device/);
      });

      await t.step("events for changes made by ip", async () => {
        sh("ip", "-n", NS, "link", "del", "flannel.1");
        const deadline = Date.now() + 5000;
        while (!events.includes("del link flannel.1")) {
          assert.ok(Date.now() < deadline, `no link deletion event; got ${JSON.stringify(events)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      });
      ctl.abort();
      await watching;
    } finally {
      ctl.abort();
      k.close();
      sh("ip", "netns", "del", NS);
    }
  },
});

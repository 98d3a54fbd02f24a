// The netlink transport on the real kernel, inside a throwaway network namespace: one table of cases,
// run here by Deno through the FFI transport, and by Node through koffi from
// netlink_transport_node_test.mjs (which bundles this file with node_koffi.ts). Requests are built by
// hand here; the rtnetlink codecs live elsewhere.
// Needs root and a working `ip netns`; otherwise skipped with one printed reason.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readlinkSync } from "node:fs";
import {
  AttrDecoder,
  AttrEncoder,
  encodeMessage,
  NETLINK_ROUTE,
  NetlinkError,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  type NlMsg,
} from "../../src/netlink/codec/mod.ts";
import {
  type BatchRequest,
  createNetlinkSocket,
  inNetns,
  isEventsLost,
  type NetlinkSocket,
  type SocketOptions,
  type Syscalls,
} from "../../src/netlink/transport/mod.ts";
import { MemoryLogger } from "../../src/log/logger.ts";

// include/uapi/linux/rtnetlink.h, if_link.h, veth.h, if.h
const RTM_NEWLINK = 16;
const RTM_GETLINK = 18;
const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;
const IFLA_IFNAME = 3;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const RTA_DST = 1;
const RTA_OIF = 4;
const IFF_UP = 1;
const RTNLGRP_LINK = 1;
const RTNLGRP_IPV4_ROUTE = 7;
const AF_INET = 2;

/** What each case gets: a way to open sockets over one runtime's syscalls, and the namespace. */
export interface Harness {
  ns: string;
  sys: Syscalls;
  open(proto: number, opts?: SocketOptions): NetlinkSocket;
}

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** struct ifinfomsg: family, pad, type, index, flags, change. */
function ifinfomsg(index = 0, flags = 0, change = 0): Uint8Array {
  const b = new Uint8Array(16);
  const dv = new DataView(b.buffer);
  dv.setInt32(4, index, true);
  dv.setUint32(8, flags, true);
  dv.setUint32(12, change, true);
  return b;
}

/** struct rtmsg for a main-table static unicast route of scope link. */
function rtmsg(dstLen: number): Uint8Array {
  return new Uint8Array([AF_INET, dstLen, 0, 0, 254, 4, 253, 1, 0, 0, 0, 0]);
}

function addRoute(dst: number[], len: number, oif: number, op?: string): BatchRequest {
  const attrs = new AttrEncoder().bytes(RTA_DST, new Uint8Array(dst)).u32(RTA_OIF, oif).encode();
  return {
    type: RTM_NEWROUTE,
    flags: NLM_F_CREATE | NLM_F_EXCL,
    payload: cat(rtmsg(len), attrs),
    op: op ?? `add route ${dst.join(".")}/${len}`,
  };
}

/** Index and name of an RTM_NEWLINK. */
function linkOf(m: NlMsg): { index: number; name: string } {
  const index = new DataView(m.payload.buffer, m.payload.byteOffset).getInt32(4, true);
  const ad = new AttrDecoder(m.payload.subarray(16));
  let name = "";
  while (ad.next()) if (ad.type === IFLA_IFNAME) name = ad.string();
  return { index, name };
}

async function linkIndex(nl: NetlinkSocket, name: string): Promise<number> {
  const payload = cat(ifinfomsg(), new AttrEncoder().string(IFLA_IFNAME, name).encode());
  const [reply] = await nl.request({ type: RTM_GETLINK, payload }, { op: `get link ${name}` });
  assert.ok(reply, `no reply for link ${name}`);
  return linkOf(reply).index;
}

function routesOn(ns: string, dev: string): { dst: string; dev: string }[] {
  return JSON.parse(ip("-n", ns, "-j", "route", "show", "dev", dev)).map((r: { dst: string }) => ({
    ...r,
    dev,
  }));
}

function hostRoutes(prefix: number, count: number, oif: number): BatchRequest[] {
  return Array.from({ length: count }, (_, i) => addRoute([10, prefix, i >> 8, i & 0xff], 32, oif));
}

/** Reads a subscription with timeouts; a read that times out stays pending for the next call. */
class EventReader {
  readonly #it: AsyncIterator<NlMsg[]>;
  #pending: Promise<IteratorResult<NlMsg[]>> | undefined;

  constructor(events: AsyncIterable<NlMsg[]>) {
    this.#it = events[Symbol.asyncIterator]();
  }

  /** The next batch, or undefined when none came within `ms`. */
  async next(ms: number): Promise<NlMsg[] | undefined> {
    this.#pending ??= this.#it.next();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms));
    try {
      const r = await Promise.race([this.#pending, timeout]);
      if (r === undefined) return undefined;
      this.#pending = undefined;
      if (r.done) throw new Error("the subscription ended");
      return r.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Reads until `pred` holds for a batch; fails after `ms`. Returns every batch read. */
  async until(pred: (batch: NlMsg[]) => boolean, ms = 5000): Promise<NlMsg[][]> {
    const seen: NlMsg[][] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const b = await this.next(Math.max(1, deadline - Date.now()));
      if (b === undefined) throw new Error(`no matching event within ${ms} ms`);
      seen.push(b);
      if (pred(b)) return seen;
    }
  }

  /** Reads until nothing arrives for `quietMs`. */
  async drain(quietMs = 200): Promise<void> {
    while (await this.next(quietMs) !== undefined) { /* discard */ }
  }
}

const isLink = (name: string) => (b: NlMsg[]) =>
  b.some((m) => m.type === RTM_NEWLINK && linkOf(m).name === name);

/** The cases, run once per runtime. Each leaves what it creates behind; the namespace goes at the end. */
export const cases: { name: string; run(h: Harness): Promise<void> }[] = [
  {
    name: "dump links: lo is there, names and indexes match ip -j link",
    async run({ ns, open }) {
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        const links = (await nl.dump({ type: RTM_GETLINK, payload: ifinfomsg() })).map(linkOf);
        assert.ok(links.some((l) => l.name === "lo"));
        const want = JSON.parse(ip("-n", ns, "-j", "link")).map((l: { ifindex: number; ifname: string }) => ({
          index: l.ifindex,
          name: l.ifname,
        }));
        assert.deepEqual(links, want);
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "veth pair and route by request, seen by ip -j; EEXIST names errno and op",
    async run({ ns, open }) {
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        const peer = cat(ifinfomsg(), new AttrEncoder().string(IFLA_IFNAME, "nlt1").encode());
        const attrs = new AttrEncoder()
          .string(IFLA_IFNAME, "nlt0")
          .nested(
            IFLA_LINKINFO,
            (li) =>
              li.string(IFLA_INFO_KIND, "veth").nested(IFLA_INFO_DATA, (d) => d.bytes(VETH_INFO_PEER, peer)),
          )
          .encode();
        const add = { type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, payload: cat(ifinfomsg(), attrs) };
        assert.deepEqual(await nl.request(add, { op: "add link nlt0 type veth" }), []);
        const index = await linkIndex(nl, "nlt0");
        await nl.request({ type: RTM_NEWLINK, payload: ifinfomsg(index, IFF_UP, IFF_UP) }, {
          op: "set nlt0 up",
        });
        const route = addRoute([10, 77, 1, 0], 24, index, "add route 10.77.1.0/24 dev nlt0");
        await nl.request(route, { op: route.op });
        assert.deepEqual(routesOn(ns, "nlt0").map((r) => r.dst), ["10.77.1.0/24"]);
        const link = JSON.parse(ip("-n", ns, "-j", "link", "show", "nlt0"))[0];
        assert.equal(link.ifindex, index);
        assert.ok(link.flags.includes("UP"));

        const err = await nl.request(route, { op: route.op }).then(() => undefined, (e) => e);
        assert.ok(err instanceof NetlinkError, `expected a NetlinkError, got ${err}`);
        assert.equal(err.errnoName, "EEXIST");
        assert.equal(err.op, "add route 10.77.1.0/24 dev nlt0");
        assert.match(err.message, /^Cannot add route 10\.77\.1\.0\/24 dev nlt0: File exists \(EEXIST\)/);
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "a bad attribute returns the kernel's extended ACK; a bad dump header too",
    async run({ ns, open }) {
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        // RTA_DST of 2 bytes for an IPv4 route: the attribute policy rejects it.
        const payload = cat(
          rtmsg(24),
          new AttrEncoder().bytes(RTA_DST, new Uint8Array([10, 1])).u32(RTA_OIF, 1).encode(),
        );
        const err = await nl.request({ type: RTM_NEWROUTE, flags: NLM_F_CREATE, payload }, {
          op: "add route 10.1/24",
        })
          .then(() => undefined, (e) => e);
        assert.ok(err instanceof NetlinkError);
        assert.equal(err.errnoName, "ERANGE");
        assert.equal(err.kernelMessage, "Attribute failed policy validation");
        assert.equal(err.offset, 16 + 12, "the offset points at RTA_DST, after nlmsghdr and rtmsg");
        // With NETLINK_GET_STRICT_CHK a dump with a short header is refused, with the kernel's reason.
        const dumpErr = await nl.dump({ type: RTM_GETROUTE, payload: new Uint8Array([AF_INET]) }, {
          op: "dump routes",
        })
          .then(() => undefined, (e) => e);
        assert.ok(dumpErr instanceof NetlinkError);
        assert.equal(dumpErr.errnoName, "EINVAL");
        assert.equal(dumpErr.kernelMessage, "Invalid header for FIB dump request");
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "batch: 1000 routes in one send; a refused message does not stop the others",
    async run({ ns, open }) {
      ip("-n", ns, "link", "add", "nlb0", "type", "veth", "peer", "name", "nlb1");
      ip("-n", ns, "link", "set", "nlb0", "up");
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        const oif = await linkIndex(nl, "nlb0");
        const res = await nl.batch(hostRoutes(101, 1000, oif));
        assert.deepEqual(res, { ok: 1000, failed: [], chunks: 1 });
        assert.equal(routesOn(ns, "nlb0").length, 1000);

        const mixed = [
          addRoute([10, 102, 0, 1], 32, oif),
          addRoute([10, 101, 0, 5], 32, oif),
          addRoute([10, 102, 0, 2], 32, oif),
        ];
        const res2 = await nl.batch(mixed);
        assert.equal(res2.ok, 2);
        assert.equal(res2.failed.length, 1);
        assert.equal(res2.failed[0]!.index, 1);
        assert.equal(res2.failed[0]!.error.errnoName, "EEXIST");
        assert.equal(res2.failed[0]!.error.op, "add route 10.101.0.5/32");
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "batch: 10 000 routes are chunked and none hits ENOBUFS",
    async run({ ns, open }) {
      ip("-n", ns, "link", "add", "nlc0", "type", "veth", "peer", "name", "nlc1");
      ip("-n", ns, "link", "set", "nlc0", "up");
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        const res = await nl.batch(hostRoutes(110, 10_000, await linkIndex(nl, "nlc0")));
        assert.deepEqual(res.failed, []);
        assert.equal(res.ok, 10_000);
        assert.ok(res.chunks >= 5, `10 000 ACKs need several chunks, got ${res.chunks}`);
        assert.equal(routesOn(ns, "nlc0").length, 10_000);
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "multicast: RTNLGRP_LINK shows ip link add; close and abort end a subscription",
    async run({ ns, open }) {
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        const events = new EventReader(nl.subscribe([RTNLGRP_LINK]));
        ip("-n", ns, "link", "add", "nle0", "type", "veth", "peer", "name", "nle1");
        await events.until(isLink("nle0"));

        const ac = new AbortController();
        const it = nl.subscribe([RTNLGRP_LINK], { signal: ac.signal })[Symbol.asyncIterator]();
        const pending = it.next();
        ac.abort();
        assert.equal((await pending).done, true);

        const it2 = nl.subscribe([RTNLGRP_LINK])[Symbol.asyncIterator]();
        const pending2 = it2.next();
        nl.close();
        assert.equal((await pending2).done, true);
        await assert.rejects(nl.request({ type: 1, payload: new Uint8Array(0) }), /closed/);
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "multicast: ENOBUFS is reported as events lost, and the stream goes on",
    async run({ ns, open }) {
      ip("-n", ns, "link", "add", "nlo0", "type", "veth", "peer", "name", "nlo1");
      ip("-n", ns, "link", "set", "nlo0", "up");
      const small = open(NETLINK_ROUTE, { netns: ns, rcvbuf: 4096 });
      const nl = open(NETLINK_ROUTE, { netns: ns });
      try {
        const events = new EventReader(small.subscribe([RTNLGRP_IPV4_ROUTE, RTNLGRP_LINK]));
        const res = await nl.batch(hostRoutes(120, 300, await linkIndex(nl, "nlo0")));
        assert.equal(res.ok, 300);
        // 300 route events overflow a 4 KiB buffer: the reader is told, once, then reads on.
        await events.until(isEventsLost);
        await events.drain();
        ip("-n", ns, "link", "add", "nlo2", "type", "veth", "peer", "name", "nlo3");
        const after = await events.until(isLink("nlo2"));
        assert.ok(!after.some(isEventsLost));
      } finally {
        small.close();
        nl.close();
      }
    },
  },
  {
    name: "sequence numbers wrap; replies for other seqs are dropped with a v(2) line",
    async run({ ns, open, sys }) {
      const log = new MemoryLogger();
      const nl = open(NETLINK_ROUTE, { netns: ns, log, firstSeq: 0xffffffff });
      try {
        const getLo = { type: RTM_GETLINK, payload: cat(ifinfomsg(1)) };
        assert.equal((await nl.request(getLo))[0]!.seq, 0xffffffff);
        assert.equal((await nl.request(getLo))[0]!.seq, 1, "0 is skipped: multicast events carry it");

        // A stray message with another seq, unicast to our port from a second socket (root may).
        const fd = inNetns(sys, ns, () => sys.socket(16, 3, NETLINK_ROUTE));
        try {
          assert.ok(fd >= 0);
          const to = new Uint8Array(12);
          new DataView(to.buffer).setUint16(0, 16, true);
          new DataView(to.buffer).setUint32(4, nl.portId, true);
          const stray = encodeMessage({
            type: RTM_NEWLINK,
            flags: NLM_F_REQUEST,
            seq: 777,
            pid: 0,
            payload: ifinfomsg(),
          });
          assert.equal(sys.sendto(fd, stray, 0, to), stray.length);
        } finally {
          sys.close(fd);
        }
        assert.equal((await nl.request(getLo))[0]!.seq, 2);
        assert.ok(log.records.some((r) => r.level === "v" && r.verbosity === 2 && /seq 777/.test(r.msg)));
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "dump: NLM_F_DUMP_INTR is retried, and gives EINTR when it never settles",
    async run({ ns, sys }) {
      // The kernel sets NLM_F_DUMP_INTR when a table changes mid-dump; we cannot time that, so the
      // syscalls are wrapped to set it on the replies of the first `interrupted` dumps.
      let interrupted = 0;
      const wrapped: Syscalls = {
        ...sys,
        recvfrom(fd, buf, flags) {
          const n = sys.recvfrom(fd, buf, flags);
          if (n <= 0 || interrupted <= 0) return n;
          const dv = new DataView(buf.buffer, buf.byteOffset);
          let done = false;
          for (let off = 0; off + 16 <= n; off += (dv.getUint32(off, true) + 3) & ~3) {
            dv.setUint16(off + 6, dv.getUint16(off + 6, true) | 0x10, true); // NLM_F_DUMP_INTR
            if (dv.getUint16(off + 4, true) === 3) done = true; // NLMSG_DONE
          }
          if (done) interrupted--;
          return n;
        },
      };
      const log = new MemoryLogger();
      const nl = createNetlinkSocket(wrapped, NETLINK_ROUTE, { netns: ns, log });
      try {
        interrupted = 2;
        const links = await nl.dump({ type: RTM_GETLINK, payload: ifinfomsg() }, { op: "dump links" });
        assert.ok(links.map(linkOf).some((l) => l.name === "lo"));
        assert.equal(log.messages("v").filter((m) => /interrupted by a concurrent change/.test(m)).length, 2);
        interrupted = Infinity;
        const err = await nl.dump({ type: RTM_GETLINK, payload: ifinfomsg() }, { op: "dump links" })
          .then(() => undefined, (e) => e);
        assert.ok(err instanceof NetlinkError);
        assert.equal(err.errnoName, "EINTR");
        assert.match(
          err.message,
          /^Cannot dump links: Interrupted system call \(EINTR\); the dump was interrupted 10 times/,
        );
      } finally {
        nl.close();
      }
    },
  },
  {
    name: "netns: a missing namespace fails cleanly and the thread stays where it was",
    // deno-lint-ignore require-await
    async run({ open }) {
      const before = readlinkSync("/proc/thread-self/ns/net");
      assert.throws(() => open(NETLINK_ROUTE, { netns: "flt-no-such-netns" }), (e: unknown) => {
        assert.ok(e instanceof NetlinkError);
        assert.equal(e.errnoName, "ENOENT");
        assert.equal(e.op, "open network namespace flt-no-such-netns");
        return true;
      });
      assert.throws(() => open(NETLINK_ROUTE, { netns: "../x" }), RangeError);
      assert.equal(readlinkSync("/proc/thread-self/ns/net"), before);
    },
  },
  {
    name: "debug switch: every message sent and received is hex-dumped to the logger",
    async run({ ns, open }) {
      const log = new MemoryLogger();
      const nl = open(NETLINK_ROUTE, { netns: ns, log, debug: true });
      try {
        await nl.request({ type: 1, /* NLMSG_NOOP */ payload: new Uint8Array(0) });
        const lines = log.messages("info");
        assert.match(lines[0]!, /^netlink send len=16 type=NLMSG_NOOP flags=0x5 seq=1 pid=\d+$/);
        assert.match(lines[1]!, /^ {2}0000 {2}10 00 00 00 01 00 05 00 {2}01 00 00 00 /);
        assert.ok(lines.some((l) => /^netlink recv len=36 type=NLMSG_ERROR/.test(l)));
      } finally {
        nl.close();
      }
    },
  },
];

/** Runs every case in order, printing one line each and a `N passed, N failed` summary. */
export async function runCases(h: Harness, print: (line: string) => void): Promise<number> {
  let failed = 0;
  for (const c of cases) {
    try {
      await c.run(h);
      print(`ok - ${c.name}`);
    } catch (e) {
      failed++;
      print(`not ok - ${c.name}: ${e instanceof Error ? e.stack : e}`);
    }
  }
  print(`${cases.length - failed} passed, ${failed} failed`);
  return failed;
}

if ("Deno" in globalThis) await registerDenoTests();

async function registerDenoTests(): Promise<void> {
  const { denoSyscalls, openNetlink } = await import("../../src/netlink/transport/deno_ffi.ts");
  const uniqueName = (tag: string) => `flt-${tag}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
  const skip = (() => {
    if (Deno.uid() !== 0) return "not running as root";
    const probe = uniqueName("probe");
    try {
      ip("netns", "add", probe);
      ip("netns", "del", probe);
    } catch (e) {
      return `"ip netns add" is unusable: ${(e as Error).message.split("\n")[0]}`;
    }
  })();
  if (skip) console.log(`skipping privileged netlink transport tests: ${skip}`);

  Deno.test({
    name: "netlink transport (Deno FFI) on the real kernel",
    ignore: skip !== undefined,
    async fn(t) {
      const ns = uniqueName("nlt");
      try {
        ip("netns", "add", ns);
        const sys = denoSyscalls();
        const h: Harness = {
          ns,
          sys,
          open: (proto, opts = {}) =>
            opts.firstSeq === undefined ? openNetlink(proto, opts) : createNetlinkSocket(sys, proto, opts),
        };
        for (const c of cases) await t.step(c.name, () => c.run(h));
      } finally {
        try {
          ip("netns", "del", ns);
        } catch (e) {
          console.error(`cannot delete netns ${ns}: ${e}`);
        }
      }
    },
  });
}

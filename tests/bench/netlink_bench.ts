/**
 * Netlink transport benchmark, in a throwaway network namespace (needs root; skipped otherwise).
 * Prints numbers, asserts nothing:
 *
 * - 1000 route adds: our batch (build + send + ACKs) vs `ip -batch` with the same routes
 * - 10 000 route replaces: the same two, as ops/s; then the time to dump those 10 000 routes
 * - request round trip (RTM_GETLINK of lo): MSG_DONTWAIT on the JS thread vs every receive as a
 *   blocking recvfrom on a worker thread (Deno `nonblocking` FFI)
 * - why batches are chunked: ACKs of 10 000 messages in one send against a 1 MiB receive buffer
 *
 * Run: `deno run -A tests/bench/netlink_bench.ts`
 */
import {
  AttrEncoder,
  encodeMessage,
  NETLINK_ROUTE,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
} from "../../src/netlink/codec/mod.ts";
import { type BatchRequest, inNetns, type NetlinkSocket } from "../../src/netlink/transport/mod.ts";
import { denoSyscalls, openNetlink } from "../../src/netlink/transport/deno_ffi.ts";

const RTM_GETLINK = 18;
const RTM_NEWROUTE = 24;
const RTM_GETROUTE = 26;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_TABLE = 15;
const NLMSG_NOOP = 1;
const RUNS = 7;

function ip(...args: string[]): void {
  const r = new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).outputSync();
  if (!r.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(r.stderr).trim()}`);
}

if (Deno.uid() !== 0) {
  console.log("netlink bench skipped: not running as root");
  Deno.exit(0);
}

const stats = (xs: number[], unit = "ms", digits = 1) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return `median ${q(0.5).toFixed(digits)} ${unit}, min ${s[0]!.toFixed(digits)} ${unit}, p90 ${
    q(0.9).toFixed(digits)
  } ${unit} (n=${s.length})`;
};

/**
 * An IPv4 /32 route in the main table, scope link, through `oif`: rtmsg, RTA_DST, RTA_OIF written
 * into one buffer. (Under Deno each typed array costs ~0.5 µs to allocate, so a builder that makes
 * one per attribute, like AttrEncoder, costs more than the kernel's work; see `encoder` below.)
 */
function route(i: number, prefix: number, oif: number, replace: boolean): BatchRequest {
  const payload = new Uint8Array(28);
  const dv = new DataView(payload.buffer);
  payload.set([2, 32, 0, 0, 254, 4, 253, 1]); // family, dst_len, src_len, tos, table, protocol, scope, type
  dv.setUint16(12, 8, true);
  dv.setUint16(14, RTA_DST, true);
  payload.set([10, prefix, i >> 8, i & 0xff], 16);
  dv.setUint16(20, 8, true);
  dv.setUint16(22, RTA_OIF, true);
  dv.setUint32(24, oif, true);
  const flags = NLM_F_CREATE | (replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return { type: RTM_NEWROUTE, flags, payload, op: "add route" };
}

/** The same route built with the codec's AttrEncoder, to show what the builder costs. */
function routeWithEncoder(i: number, prefix: number, oif: number): Uint8Array {
  const rtmsg = new Uint8Array([2, 32, 0, 0, 254, 4, 253, 1, 0, 0, 0, 0]);
  const attrs = new AttrEncoder().bytes(RTA_DST, new Uint8Array([10, prefix, i >> 8, i & 0xff])).u32(
    RTA_OIF,
    oif,
  )
    .encode();
  const payload = new Uint8Array(rtmsg.length + attrs.length);
  payload.set(rtmsg);
  payload.set(attrs, rtmsg.length);
  return payload;
}

function batchFile(count: number, prefix: number, dev: string, verb: string): string {
  const lines = [];
  for (let i = 0; i < count; i++) {
    lines.push(`route ${verb} 10.${prefix}.${i >> 8}.${i & 0xff}/32 dev ${dev}`);
  }
  return lines.join("\n") + "\n";
}

async function timeIpBatch(ns: string, file: string): Promise<number> {
  const t0 = performance.now();
  const r = await new Deno.Command("ip", {
    args: ["-n", ns, "-batch", file],
    stdout: "null",
    stderr: "piped",
  })
    .output();
  const ms = performance.now() - t0;
  if (!r.success) throw new Error(`ip -batch: ${new TextDecoder().decode(r.stderr).trim()}`);
  return ms;
}

async function timeOurBatch(nl: NetlinkSocket, count: number, prefix: number, oif: number, replace: boolean) {
  const t0 = performance.now();
  const msgs = Array.from({ length: count }, (_, i) => route(i, prefix, oif, replace));
  const res = await nl.batch(msgs);
  const ms = performance.now() - t0;
  if (res.ok !== count) {
    throw new Error(`batch: ${res.failed.length} failed, first: ${res.failed[0]?.error.message}`);
  }
  return { ms, chunks: res.chunks };
}

const ns = `flt-bench-nl-${Deno.pid}`;
const dir = await Deno.makeTempDir({ prefix: "flannel-nl-bench-" });
ip("netns", "add", ns);
try {
  ip("-n", ns, "link", "add", "nlb0", "type", "veth", "peer", "name", "nlb1");
  ip("-n", ns, "link", "set", "nlb0", "up");
  ip("-n", ns, "link", "set", "lo", "up");
  const nl = openNetlink(NETLINK_ROUTE, { netns: ns });
  const oif = Number(
    JSON.parse(
      new TextDecoder().decode(
        new Deno.Command("ip", { args: ["-n", ns, "-j", "link", "show", "nlb0"], stdout: "piped" })
          .outputSync()
          .stdout,
      ),
    )[0].ifindex,
  );

  // 1000 route adds, each run from an empty table.
  const file1k = `${dir}/add1k.batch`;
  await Deno.writeTextFile(file1k, batchFile(1000, 200, "nlb0", "add"));
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    ours.push((await timeOurBatch(nl, 1000, 200, oif, false)).ms);
    ip("-n", ns, "route", "flush", "dev", "nlb0");
    theirs.push(await timeIpBatch(ns, file1k));
    ip("-n", ns, "route", "flush", "dev", "nlb0");
  }
  console.log(`1000 route adds, our FFI batch: ${stats(ours)}`);
  console.log(`1000 route adds, ip -batch:     ${stats(theirs)}`);
  const encoder: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) routeWithEncoder(i, 200, oif);
    encoder.push(performance.now() - t0);
  }
  console.log(`(building those 1000 payloads with AttrEncoder instead: ${stats(encoder)})`);

  // 10 000 route replaces over 10 000 existing routes, as ops/s.
  const file10k = `${dir}/replace10k.batch`;
  await Deno.writeTextFile(file10k, batchFile(10_000, 210, "nlb0", "replace"));
  await timeOurBatch(nl, 10_000, 210, oif, true);
  const ours10k: number[] = [];
  const theirs10k: number[] = [];
  let chunks = 0;
  for (let r = 0; r < RUNS; r++) {
    const o = await timeOurBatch(nl, 10_000, 210, oif, true);
    ours10k.push(10_000 / (o.ms / 1000));
    chunks = o.chunks;
    theirs10k.push(10_000 / ((await timeIpBatch(ns, file10k)) / 1000));
  }
  console.log(`10 000 route replaces, our FFI batch (${chunks} sends): ${stats(ours10k, "ops/s", 0)}`);
  console.log(`10 000 route replaces, ip -batch:                ${stats(theirs10k, "ops/s", 0)}`);

  // Dump the main table (10 000 routes) with a strict-check route dump header.
  const dumpTimes: number[] = [];
  let dumped = 0;
  const rtmsg = new Uint8Array(12);
  rtmsg[0] = 2;
  const dumpPayload = new Uint8Array([...rtmsg, ...new AttrEncoder().u32(RTA_TABLE, 254).encode()]);
  for (let r = 0; r < RUNS; r++) {
    const t0 = performance.now();
    dumped = (await nl.dump({ type: RTM_GETROUTE, payload: dumpPayload })).length;
    dumpTimes.push(performance.now() - t0);
  }
  console.log(`dump of ${dumped} routes: ${stats(dumpTimes)}`);

  // Request round trip: dontwait (default) vs a blocking recvfrom on a worker thread.
  const getLo = {
    type: RTM_GETLINK,
    payload: new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
  };
  const noop = { type: NLMSG_NOOP, payload: new Uint8Array(0) };
  const thread = openNetlink(NETLINK_ROUTE, { netns: ns, recvMode: "thread" });
  for (
    const [label, sock] of [["MSG_DONTWAIT on the JS thread", nl], [
      "recvfrom on a worker thread",
      thread,
    ]] as const
  ) {
    for (const [what, req] of [["RTM_GETLINK lo", getLo], ["NLMSG_NOOP ACK", noop]] as const) {
      for (let i = 0; i < 2000; i++) await sock.request(req); // warm up
      const lat: number[] = [];
      for (let i = 0; i < 5000; i++) {
        const t0 = performance.now();
        await sock.request(req);
        lat.push((performance.now() - t0) * 1000);
      }
      console.log(`round trip ${what}, ${label}: ${stats(lat, "µs", 0)}`);
    }
  }
  thread.close();
  nl.close();

  // Why batches are chunked: 10 000 messages in one send, ACKs into a 1 MiB (2 MiB counted) buffer.
  const sys = denoSyscalls();
  const fd = inNetns(sys, ns, () => sys.socket(16, 3 | 0o2000000, NETLINK_ROUTE));
  try {
    const addr = new Uint8Array(12);
    addr[0] = 16;
    sys.bind(fd, addr);
    sys.setsockopt(fd, 1, 33, 1 << 20); // SO_RCVBUFFORCE
    sys.setsockopt(fd, 1, 32, 4 << 20); // SO_SNDBUFFORCE
    const one = encodeMessage({
      type: NLMSG_NOOP,
      flags: NLM_F_REQUEST | NLM_F_ACK,
      seq: 1,
      pid: 0,
      payload: new Uint8Array(0),
    });
    const all = new Uint8Array(one.length * 10_000);
    for (let i = 0; i < 10_000; i++) all.set(one, i * one.length);
    sys.sendto(fd, all, 0, addr);
    const buf = new Uint8Array(65536);
    let acks = 0;
    let enobufs = false;
    for (;;) {
      const n = sys.recvfrom(fd, buf, 0x40);
      if (n === -105) enobufs = true;
      else if (n < 0) break;
      else acks++;
    }
    console.log(`10 000 messages in one send: ${acks} ACKs arrived${enobufs ? ", then ENOBUFS" : ""}`);
  } finally {
    sys.close(fd);
  }
} finally {
  ip("netns", "del", ns);
  await Deno.remove(dir, { recursive: true });
}

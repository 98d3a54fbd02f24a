// The netlink transport cases of netlink_transport_test.ts, run by Node through the koffi transport,
// as a child process of this Deno test, in a throwaway network namespace of its own.
//
// How: koffi (the version deno.json pins) is installed once into .tmp/koffi (git-ignored); a
// three-line entry that runs the cases with node_koffi.ts is bundled next to it with `deno bundle`,
// koffi kept external so that Node resolves it from that node_modules; Node runs the bundle, which
// prints one line per case and `N passed, N failed`.
// Needs root, a working `ip netns` and `node`; otherwise skipped with one printed reason.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rmSync } from "node:fs";

const root = new URL("../../", import.meta.url).pathname;
const dir = `${root}.tmp/koffi`;
const uniqueName = (tag) => `flt-${tag}-${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
const ip = (...args) => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** Why the test cannot run here, or undefined when it can. */
function skipReason() {
  if (Deno.uid() !== 0) return "not running as root";
  try {
    execFileSync("node", ["--version"], { stdio: "ignore" });
  } catch {
    return "no node on PATH";
  }
  const probe = uniqueName("probe");
  try {
    ip("netns", "add", probe);
    ip("netns", "del", probe);
  } catch (e) {
    return `"ip netns add" is unusable: ${e.message.split("\n")[0]}`;
  }
  return undefined;
}

const skip = skipReason();
if (skip) console.log(`skipping the Node (koffi) netlink transport tests: ${skip}`);

/** Installs koffi at the version deno.json maps, unless that version is there already. */
function ensureKoffi() {
  const spec = JSON.parse(Deno.readTextFileSync(`${root}deno.json`)).imports?.koffi?.replace(/^npm:/, "");
  assert.ok(spec, "deno.json maps koffi");
  let installed;
  try {
    installed = JSON.parse(Deno.readTextFileSync(`${dir}/node_modules/koffi/package.json`)).version;
  } catch {
    installed = undefined;
  }
  if (`koffi@${installed}` === spec) return;
  Deno.mkdirSync(dir, { recursive: true });
  execFileSync("npm", ["install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error", spec], {
    cwd: dir,
  });
}

Deno.test({
  name: "netlink transport (Node, koffi) on the real kernel: the same cases",
  ignore: skip !== undefined,
  async fn() {
    ensureKoffi();
    const ns = uniqueName("nlt-node");
    const tag = `${Deno.pid}-${Math.floor(Math.random() * 1e6)}`;
    const entry = `${dir}/suite-${tag}.ts`;
    const bundle = `${dir}/suite-${tag}.mjs`;
    Deno.writeTextFileSync(
      entry,
      `import process from "node:process";
import { createNetlinkSocket } from "${root}src/netlink/transport/socket.ts";
import { koffiSyscalls, openNetlink } from "${root}src/netlink/transport/node_koffi.ts";
import { runCases } from "${root}tests/privileged/netlink_transport_test.ts";
const sys = koffiSyscalls();
const open = (p, o = {}) => o.firstSeq === undefined ? openNetlink(p, o) : createNetlinkSocket(sys, p, o);
process.exitCode = await runCases({ ns: process.argv[2], sys, open }, (l) => console.log(l)) ? 1 : 0;
`,
    );
    try {
      ip("netns", "add", ns);
      const b = await new Deno.Command(Deno.execPath(), {
        args: ["bundle", "--quiet", "--external", "koffi", "-o", bundle, entry],
        cwd: root,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(b.success, `deno bundle failed: ${new TextDecoder().decode(b.stderr)}`);
      const r = await new Deno.Command("node", { args: [bundle, ns], stdout: "piped", stderr: "piped" })
        .output();
      const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
      for (const line of out.trimEnd().split("\n")) console.log(`  node: ${line}`);
      assert.ok(r.success, "the cases failed under Node (see the lines above)");
    } finally {
      for (const f of [entry, bundle]) rmSync(f, { force: true });
      try {
        ip("netns", "del", ns);
      } catch (e) {
        console.error(`cannot delete netns ${ns}: ${e}`);
      }
    }
  },
});

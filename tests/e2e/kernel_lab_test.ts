/**
 * The kernel lab from the host: scripts/kernel_lab.sh boots Debian's stock kernel under qemu and
 * runs tests/kernel_lab/lab_test.ts inside it (ipip with and without DirectRouting, ipsec with
 * charon and ESP, the kernel WireGuard device; each end to end on dist/flanneld). This test
 * asserts that the lab ran and passed. It is ignored, with one printed reason, when not root, with
 * KLAB_SKIP=1, or when no VM can boot here (a probe boot exits 125).
 */
import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url).pathname;
const SCRIPT = `${ROOT}scripts/kernel_lab.sh`;
/** The status of tests/kernel_lab/run.sh and scripts/kernel_lab.sh when no VM can boot here. */
const NOT_RUN = 125;

/**
 * Why the lab cannot run here, or undefined. Whether a VM boots is only known by booting one: a
 * probe VM runs `true` (about 5 s; the first use on a machine also installs qemu and fetches the
 * kernel package, about 40 s, which the lab then reuses).
 */
async function unavailable(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "not running as root";
  if (Deno.env.get("KLAB_SKIP")) return "KLAB_SKIP is set";
  const out = await new Deno.Command("bash", {
    args: [`${ROOT}tests/kernel_lab/run.sh`, "true"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== NOT_RUN) return undefined; // booted (or failed otherwise: the test will say how)
  const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
  return (lines.findLast((l) => l.startsWith("kernel-lab: cannot boot")) ?? lines.at(-1) ??
    "no VM boots here")
    .replace(/^kernel-lab: /, "");
}

const skip = await unavailable();
if (skip) console.log(`skip e2e kernel lab: ${skip}`);

Deno.test({
  name: "e2e kernel lab: ipip (3 nodes, with and without DirectRouting), ipsec and kernel wireguard in a VM",
  ignore: skip !== undefined,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const started = performance.now();
    const out = await new Deno.Command("bash", {
      args: [SCRIPT],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const dec = new TextDecoder();
    const text = `${dec.decode(out.stdout)}${dec.decode(out.stderr)}`;
    const secs = ((performance.now() - started) / 1000).toFixed(0);
    const verdict = text.split("\n").filter((l) => l.startsWith("kernel-lab: ")).at(-1) ??
      "(no verdict line)";
    // The scenario timings and the verdict, without the inner runner's own summary line.
    for (const l of text.split("\n")) {
      if (/^(lab-timing:|kernel-lab: | {2}(cluster|restarted))/.test(l)) console.log(l);
    }
    console.log(`kernel lab took ${secs} s`);
    assert.equal(out.code, 0, `${verdict}\n--- lab output ---\n${text}`);
    assert.match(verdict, /^kernel-lab: PASS/);
    for (const scenario of ["ipip, 3 nodes", "ipsec, 2 nodes", "wireguard kernel device, 2 nodes"]) {
      assert.match(
        text,
        new RegExp(`kernel lab: ${scenario}.* \\.\\.\\. ok`),
        `${scenario} did not pass\n${text}`,
      );
    }
  },
});

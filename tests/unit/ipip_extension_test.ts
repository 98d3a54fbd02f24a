import assert from "node:assert/strict";
import { ipipBackend } from "../../src/backends/ipip/mod.ts";
import { expandVars, extensionBackend } from "../../src/backends/extension/mod.ts";
import { RTPROT_FLANNEL } from "../../src/backends/reconcile.ts";
import { BackendRig, peer } from "../fakes/backend_harness.ts";

Deno.test("ipip: device, /32, routes via peers' public IPs; DirectRouting for directly connected peers", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  await r.start(ipipBackend, `{"Network":"10.5.0.0/16","Backend":{"Type":"ipip","DirectRouting":true}}`, ext);
  try {
    assert.equal(r.network.mtu, 1480);
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.equal(entries[0]!.value, `{"PublicIP":"192.168.1.10","PublicIPv6":null,"BackendType":"ipip"}`);
    r.leases(
      peer("10.5.2.0/24", "192.168.1.11", { backendType: "ipip" }),
      peer("10.5.3.0/24", "10.99.0.3", { backendType: "ipip" }),
    );
    const t = await r.until((t) => t.includes("10.5.3.0/24"));
    assert.ok(t.includes("flannel.ipip ipip local 192.168.1.10 mtu 1480"), t);
    assert.ok(t.includes(`10.5.2.0/24 via 192.168.1.11 dev eth0 proto ${RTPROT_FLANNEL}`), t);
    assert.ok(t.includes(`10.5.3.0/24 via 10.99.0.3 dev flannel.ipip proto ${RTPROT_FLANNEL} onlink`), t);
    assert.match(t, /10\.5\.\d+\.0\/32 dev flannel\.ipip/);
  } finally {
    await r.stop();
  }
});

Deno.test("ipip: a foreign device of that name is refused with upstream's message", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  await r.kernel.linkAdd({ name: "flannel.ipip", kind: "veth" });
  await assert.rejects(r.start(ipipBackend, `{"Network":"10.5.0.0/16","Backend":{"Type":"ipip"}}`, ext), {
    message: "flannel.ipip isn't an ipip mode device, please remove device and try again",
  });
  r.kv.close();
});

Deno.test("extension: commands run without a shell, with upstream's variables and stdin", async () => {
  const r = new BackendRig();
  const ext = r.seedHost();
  const calls: string[] = [];
  r.host.runResult = (argv, stdin) => {
    calls.push(`${argv.join(" ")} <${JSON.stringify(stdin)}`);
    if (argv[0] === "/bin/pre") return { code: 0, output: "  my-data\n" };
    if (argv[0] === "/bin/add" && argv[1] === "10.5.3.0/24") return { code: 1, output: "boom" };
    return { code: 0, output: "" };
  };
  r.host.envs.HOME = "/root";
  await r.start(
    extensionBackend,
    JSON.stringify({
      Network: "10.5.0.0/16",
      Backend: {
        Type: "extension",
        PreStartupCommand: "/bin/pre $HOME",
        PostStartupCommand: "/bin/post ${SUBNET} $NETWORK ;echo",
        SubnetAddCommand: "/bin/add $SUBNET $PUBLIC_IP",
        SubnetRemoveCommand: "/bin/remove $SUBNET",
      },
    }),
    ext,
  );
  try {
    const { entries } = await r.kv.list("/coreos.com/network/subnets/");
    assert.match(entries[0]!.value, /"BackendType":"extension","BackendData":"my-data"\}$/);
    assert.equal(calls[0], `/bin/pre /root <"\\n"`);
    assert.match(
      calls[1]!,
      /^\/bin\/post 10\.5\.\d+\.0\/24 10\.5\.0\.0\/16 ;echo <"\\n"$/,
      "no shell: ;echo is a plain word",
    );
    const ext2 = { backendType: "extension", backendData: `"peer-data"` };
    r.leases(peer("10.5.2.0/24", "192.168.1.11", ext2), peer("10.5.3.0/24", "192.168.1.12", ext2));
    await until(() => calls.filter((c) => c.startsWith("/bin/add")).length >= 2);
    assert.ok(calls.includes(`/bin/add 10.5.2.0/24 192.168.1.11 <"peer-data\\n"`), JSON.stringify(calls));
    assert.ok(r.log.messages("error").some((m) => m.includes("boom")));
    // The failed add is retried with the next batch; a departed peer gets the remove command.
    r.host.runResult = (argv, stdin) => {
      calls.push(`${argv.join(" ")} <${JSON.stringify(stdin)}`);
      return { code: 0, output: "" };
    };
    r.leases(peer("10.5.3.0/24", "192.168.1.12", ext2));
    await until(() =>
      calls.includes(`/bin/remove 10.5.2.0/24 <"peer-data\\n"`) &&
      calls.filter((c) => c.startsWith("/bin/add 10.5.3.0/24")).length === 2
    );
  } finally {
    await r.stop();
  }
});

Deno.test("extension: variable expansion is Go's os.Expand for $NAME and ${NAME}", () => {
  assert.equal(expandVars("a$X-${Y}z$UNSET.", { X: "1", Y: "2" }), "a1-2z.");
});

async function until(cond: () => boolean) {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met within 5 s");
    await new Promise((r) => setTimeout(r, 5));
  }
}

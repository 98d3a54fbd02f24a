import assert from "node:assert/strict";
import {
  createLogger,
  formatKlogLine,
  type LoggerOptions,
  parseVmodule,
  vmoduleLevel,
} from "../../src/log/mod.ts";

// Built with the local-time constructor, so the klog (local time) fields are the same in every TZ.
const T = new Date(2024, 10, 21, 4, 8, 5, 7);

function collect(opts: Partial<LoggerOptions> = {}) {
  const lines: string[] = [];
  const log = createLogger({
    verbosity: 0,
    format: "klog",
    write: (l) => lines.push(l),
    now: () => T,
    pid: 5522,
    ...opts,
  });
  return { log, lines };
}

Deno.test("klog line format with a fixed clock and pid", () => {
  const { log, lines } = collect();
  log.info("started");
  log.child("etcd.ts").warn("slow");
  log.child("kube.ts").error("gone");
  assert.deepEqual(lines, [
    "I1121 04:08:05.007000    5522 main.ts:0] started",
    "W1121 04:08:05.007000    5522 etcd.ts:0] slow",
    "E1121 04:08:05.007000    5522 kube.ts:0] gone",
  ]);
});

Deno.test("klog pads the pid to 7 columns, right-aligned", () => {
  const line = (pid: number) =>
    formatKlogLine({ time: T, level: "info", component: "main.go", msg: "m", pid });
  assert.equal(line(1), "I1121 04:08:05.007000       1 main.go:0] m");
  assert.equal(line(1234567), "I1121 04:08:05.007000 1234567 main.go:0] m");
  assert.equal(line(12345678), "I1121 04:08:05.007000 12345678 main.go:0] m");
});

Deno.test("klog lines never span lines", () => {
  const { log, lines } = collect();
  log.info("a\nb\r\nc\n");
  assert.deepEqual(lines, ["I1121 04:08:05.007000    5522 main.ts:0] a\\nb\\r\\nc"]);
});

Deno.test("the root component is configurable", () => {
  const { log, lines } = collect({ component: "flanneld" });
  log.info("x");
  assert.equal(lines[0], "I1121 04:08:05.007000    5522 flanneld:0] x");
});

Deno.test("verbose lines print as I lines up to the verbosity", () => {
  const { log, lines } = collect({ verbosity: 2 });
  log.v(1, "one");
  log.v(2, "two");
  log.v(3, "three");
  log.child("etcd.ts").v(3, "etcd three");
  log.child("etcd.ts").v(0, "etcd zero");
  assert.deepEqual(lines, [
    "I1121 04:08:05.007000    5522 main.ts:0] one",
    "I1121 04:08:05.007000    5522 main.ts:0] two",
    "I1121 04:08:05.007000    5522 etcd.ts:0] etcd zero",
  ]);
});

Deno.test("vmodule raises verbosity per component, never lowers it", () => {
  const { log, lines } = collect({ verbosity: 1, vmodule: "etcd=4,kube*=0,sub?et.ts=2" });
  log.child("etcd.ts").v(4, "etcd 4");
  log.child("etcd.ts").v(5, "etcd 5");
  log.child("kube_client.ts").v(1, "kube 1");
  log.child("subnet.ts").v(2, "subnet 2");
  log.child("other.ts").v(2, "other 2");
  log.v(1, "main 1");
  assert.deepEqual(lines.map((l) => l.slice(l.indexOf("] ") + 2)), [
    "etcd 4",
    "kube 1",
    "subnet 2",
    "main 1",
  ]);
});

Deno.test("vmodule parsing and matching", () => {
  assert.deepEqual(parseVmodule(""), []);
  assert.deepEqual(parseVmodule(",,").length, 0);
  const rules = parseVmodule("etcd=3,e*=1");
  assert.equal(vmoduleLevel(rules, "etcd.ts"), 3);
  assert.equal(vmoduleLevel(rules, "etcd"), 3);
  assert.equal(vmoduleLevel(rules, "ext.ts"), 1);
  assert.equal(vmoduleLevel(rules, "kube.ts"), undefined);
  assert.equal(vmoduleLevel(parseVmodule("a.b=1"), "axb.ts"), undefined); // "." is literal
  assert.throws(() => parseVmodule("x"), /pattern=N/);
  assert.throws(() => parseVmodule("=1"), /pattern=N/);
  assert.throws(() => parseVmodule("x=y"), /pattern=N/);
  assert.throws(
    () => createLogger({ verbosity: 0, format: "klog", vmodule: "x=-1" }),
    /must not be negative/,
  );
});

Deno.test("json format: one object per line", () => {
  const now = new Date(Date.UTC(2024, 10, 21, 14, 28, 35, 866));
  const { log, lines } = collect({ format: "json", now: () => now, verbosity: 3 });
  log.info("hello");
  log.child("etcd.ts").warn('multi\nline "quoted"');
  log.child("kube.ts").error("bad");
  log.child("kube.ts").v(3, "chatty");
  log.child("kube.ts").v(4, "hidden");
  assert.deepEqual(lines, [
    '{"ts":"2024-11-21T14:28:35.866Z","level":"info","component":"main.ts","msg":"hello"}',
    '{"ts":"2024-11-21T14:28:35.866Z","level":"warn","component":"etcd.ts","msg":"multi\\nline \\"quoted\\""}',
    '{"ts":"2024-11-21T14:28:35.866Z","level":"error","component":"kube.ts","msg":"bad"}',
    '{"ts":"2024-11-21T14:28:35.866Z","level":"info","v":3,"component":"kube.ts","msg":"chatty"}',
  ]);
  for (const l of lines) assert.equal(typeof JSON.parse(l), "object");
});

Deno.test("loggers are independent: no shared global state", () => {
  const a = collect({ verbosity: 0 });
  const b = collect({ verbosity: 5, format: "json" });
  a.log.v(3, "a");
  b.log.v(3, "b");
  assert.equal(a.lines.length, 0);
  assert.equal(b.lines.length, 1);
});

/**
 * The etcd client against a real etcd (Debian's 3.4), one throwaway etcd per test.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  EtcdClient,
  type EtcdClientOptions,
  EtcdCompactedError,
  EtcdError,
  EtcdUnavailableError,
  GrpcCode,
  type WatchBatch,
} from "../../src/lease/etcd/client.ts";
import { MemoryLogger } from "../../src/log/logger.ts";
import { createFetch } from "../../src/runtime/http.ts";
import { etcdAvailable, type EtcdHandle, freePort, startEtcd } from "../harness/etcd.ts";

const skip = etcdAvailable();
const skipTls = etcdAvailable({ tls: true });
if (skip) console.log(`Skipping etcd client tests: ${skip}`);
else if (skipTls) console.log(`Skipping etcd TLS test: ${skipTls}`);

function client(etcd: EtcdHandle, opts: Partial<EtcdClientOptions> = {}): EtcdClient {
  return new EtcdClient({ endpoints: [etcd.endpoint], log: new MemoryLogger(), ...opts });
}

/** Polls `check` until it returns true, failing after `ms`. */
async function eventually(what: string, ms: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Reads batches from a watch iterator until `n` events arrived. */
async function takeEvents(it: AsyncIterator<WatchBatch>, n: number): Promise<WatchBatch["events"]> {
  const events: WatchBatch["events"] = [];
  while (events.length < n) {
    const r = await it.next();
    assert.equal(r.done, false, "watch ended early");
    events.push(...r.value.events);
  }
  return events;
}

const t = (name: string, fn: () => Promise<void>, ignore = skip !== undefined) =>
  Deno.test({ name: `etcd client: ${name}`, ignore, fn });

t("range, put and delete, with prefix", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const r1 = await c.put("/p/a", "1");
  await c.put("/p/b", "2");
  await c.put("/p0", "outside");
  await c.put("/p/ü", "unicode ✓");
  const all = await c.range("/p/", { prefix: true });
  assert.deepEqual(all.kvs.map((kv) => [kv.key, kv.value]), [["/p/a", "1"], ["/p/b", "2"], [
    "/p/ü",
    "unicode ✓",
  ]]);
  assert.equal(all.count, 3);
  const a = all.kvs[0]!;
  assert.deepEqual(a, {
    key: "/p/a",
    value: "1",
    createRevision: r1.revision,
    modRevision: r1.revision,
    version: 1n,
    lease: 0n,
  });
  assert.equal((await c.range("/p/", { prefix: true, countOnly: true })).count, 3);
  assert.deepEqual((await c.range("/p/a", { revision: r1.revision })).kvs.map((kv) => kv.value), ["1"]);
  assert.deepEqual((await c.range("/missing")).kvs, []);
  await c.put("/p/empty", "");
  assert.equal((await c.range("/p/empty")).kvs[0]?.value, "");

  const del = await c.delete("/p/", { prefix: true });
  assert.equal(del.deleted, 4);
  assert.equal((await c.delete("/p/a")).deleted, 0);
  assert.deepEqual((await c.range("/p", { prefix: true })).kvs.map((kv) => kv.key), ["/p0"]);
  c.close();
});

t("txn create-if-absent succeeds once, then fails", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const create = (value: string) =>
    c.txn({
      compare: [{ key: "/subnets/10.5.1.0-24", target: "VERSION", result: "EQUAL", value: 0n }],
      success: [{ op: "put", key: "/subnets/10.5.1.0-24", value }],
      failure: [{ op: "range", key: "/subnets/10.5.1.0-24" }],
    });
  const first = await create("node-a");
  assert.equal(first.succeeded, true);
  assert.deepEqual(first.responses, [{ op: "put", revision: first.revision }]);
  const second = await create("node-b");
  assert.equal(second.succeeded, false);
  const got = second.responses[0];
  assert.equal(got?.op, "range");
  assert.deepEqual(got.op === "range" && got.kvs.map((kv) => kv.value), ["node-a"]);
  c.close();
});

t("txn compare-and-swap on mod revision, and on value", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const { revision } = await c.put("/k", "v1");
  const cas = (expect: bigint, value: string) =>
    c.txn({
      compare: [{ key: "/k", target: "MOD", result: "EQUAL", value: expect }],
      success: [{ op: "put", key: "/k", value }],
    });
  const ok = await cas(revision, "v2");
  assert.equal(ok.succeeded, true);
  const stale = await cas(revision, "v3");
  assert.equal(stale.succeeded, false);
  assert.deepEqual(stale.responses, []);
  assert.equal((await c.range("/k")).kvs[0]?.value, "v2");
  const del = await c.txn({
    compare: [{ key: "/k", target: "VALUE", result: "EQUAL", value: "v2" }],
    success: [{ op: "delete", key: "/k" }],
  });
  assert.deepEqual(del.responses, [{ op: "delete", deleted: 1, revision: del.revision }]);
  c.close();
});

t("lease grant, attach, timeToLive and revoke", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const lease = await c.grant(600);
  assert.equal(lease.ttl, 600);
  assert.ok(lease.id > 0n);
  await c.put("/leased", "x", { lease: lease.id });
  assert.equal((await c.range("/leased")).kvs[0]?.lease, lease.id);
  const ttl = await c.timeToLive(lease.id);
  assert.ok(ttl > 590 && ttl <= 600, `ttl ${ttl}`);
  await c.revoke(lease.id);
  assert.deepEqual((await c.range("/leased")).kvs, []);
  assert.equal(await c.timeToLive(lease.id), -1);
  assert.equal(await c.timeToLive(0n), -1);
  await assert.rejects(c.revoke(lease.id), (e) => e instanceof EtcdError && e.code === GrpcCode.NotFound);
  c.close();
});

t("a key on a short lease expires", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const lease = await c.grant(1);
  await c.put("/short", "x", { lease: lease.id });
  await eventually("lease expiry", 10_000, async () => (await c.range("/short")).kvs.length === 0);
  assert.equal(await c.timeToLive(lease.id), -1);
  c.close();
});

t("watch from a revision sees puts and deletes", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const { revision: r1 } = await c.put("/w/a", "1");
  await c.put("/other", "ignored");
  const ac = new AbortController();
  const it = c.watch("/w/", { prefix: true, startRevision: r1 }, ac.signal)[Symbol.asyncIterator]();
  assert.deepEqual((await takeEvents(it, 1)).map((e) => [e.type, e.kv.key, e.kv.value]), [[
    "put",
    "/w/a",
    "1",
  ]]);
  const { revision: r2 } = await c.put("/w/b", "2");
  const { revision: r3 } = await c.delete("/w/a");
  const events = await takeEvents(it, 2);
  assert.deepEqual(events.map((e) => [e.type, e.kv.key, e.kv.value, e.kv.modRevision]), [
    ["put", "/w/b", "2", r2],
    ["delete", "/w/a", "", r3],
  ]);
  ac.abort();
  assert.equal((await it.next()).done, true, "an aborted watch ends");
  c.close();
});

t("abort closes a watch that is waiting for events", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const ac = new AbortController();
  const it = c.watch("/idle", { startRevision: 0n }, ac.signal)[Symbol.asyncIterator]();
  const next = it.next();
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  ac.abort();
  assert.equal((await next).done, true);
  assert.ok(performance.now() - t0 < 500, "abort took too long");
  // Breaking out of for-await closes the stream too.
  await c.put("/x", "1");
  for await (const _ of c.watch("/x", { startRevision: 1n }, new AbortController().signal)) break;
  c.close();
});

t("watch from a compacted revision throws EtcdCompactedError", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd);
  const { revision: r1 } = await c.put("/c", "1");
  await c.put("/c", "2");
  const { revision: r3 } = await c.put("/c", "3");
  await c.compact(r3);
  const it = c.watch("/c", { startRevision: r1 }, new AbortController().signal)[Symbol.asyncIterator]();
  await assert.rejects(it.next(), (e) => {
    assert.ok(e instanceof EtcdCompactedError, String(e));
    assert.equal(e.compactRevision, r3);
    return true;
  });
  c.close();
});

t("watch throws EtcdUnavailableError when etcd dies, and works after restart", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd, { requestTimeoutMs: 2_000 });
  const { revision } = await c.put("/r", "1");
  const ac = new AbortController();
  const it = c.watch("/r", { startRevision: revision }, ac.signal)[Symbol.asyncIterator]();
  await takeEvents(it, 1);
  const broke = assert.rejects(it.next(), EtcdUnavailableError);
  await etcd.kill();
  await broke;
  await assert.rejects(
    c.watch("/r", { startRevision: revision + 1n }, ac.signal)[Symbol.asyncIterator]().next(),
    EtcdUnavailableError,
  );
  await etcd.restart();
  const again = c.watch("/r", { startRevision: revision }, ac.signal)[Symbol.asyncIterator]();
  assert.deepEqual((await takeEvents(again, 1)).map((e) => e.kv.value), ["1"]);
  await c.put("/r", "2");
  assert.deepEqual((await takeEvents(again, 1)).map((e) => e.kv.value), ["2"]);
  ac.abort();
  await again.next();
  c.close();
});

t("username and password authentication, with re-authentication", async () => {
  await using etcd = await startEtcd();
  await etcd.etcdctl(["user", "add", "root:rootpw"]);
  await etcd.etcdctl(["auth", "enable"]);
  const log = new MemoryLogger();
  const c = client(etcd, { username: "root", password: "rootpw", log });
  const { revision } = await c.put("/auth/a", "1");
  assert.equal((await c.range("/auth/a")).kvs[0]?.value, "1");

  // Disabling and re-enabling auth drops every token: the client must log in again.
  await etcd.etcdctl(["auth", "disable"], { user: "root:rootpw" });
  await etcd.etcdctl(["auth", "enable"]);
  assert.equal((await c.range("/auth/a")).kvs[0]?.value, "1");
  assert.ok(log.messages("v").some((m) => m.includes("authenticating again")));
  const it = c.watch("/auth/a", { startRevision: revision }, new AbortController().signal)
    [Symbol.asyncIterator]();
  assert.equal((await it.next()).value?.events[0]?.kv.value, "1");
  await it.return?.();

  const anon = client(etcd);
  await assert.rejects(
    anon.range("/auth/a"),
    (e) => e instanceof EtcdError && e.code === GrpcCode.InvalidArgument,
  );
  const wrong = client(etcd, { username: "root", password: "nope" });
  await assert.rejects(wrong.range("/auth/a"), (e) => {
    assert.ok(e instanceof EtcdError && !(e instanceof EtcdUnavailableError));
    assert.match(e.message, /^Cannot authenticate to etcd as "root": /);
    return true;
  });
  c.close();
  anon.close();
  wrong.close();
});

t("credentials are ignored when etcd has auth disabled", async () => {
  await using etcd = await startEtcd();
  const c = client(etcd, { username: "root", password: "x" });
  await c.put("/noauth", "1");
  assert.equal((await c.range("/noauth")).kvs[0]?.value, "1");
  c.close();
});

t("TLS with a client certificate", async () => {
  await using etcd = await startEtcd({ tls: true });
  const files = etcd.tls!;
  using tlsFetch = createFetch(files);
  const c = client(etcd, { fetch: tlsFetch });
  await c.put("/tls", "1");
  assert.equal((await c.range("/tls")).kvs[0]?.value, "1");
  c.close();
  // Without a client certificate the server refuses the handshake.
  using caOnly = createFetch({ caFile: files.caFile });
  const noCert = client(etcd, { fetch: caOnly, requestTimeoutMs: 2_000 });
  await assert.rejects(noCert.range("/tls"), EtcdUnavailableError);
  noCert.close();
}, skipTls !== undefined);

t("createFetch names the flag of an unreadable file", () => {
  assert.throws(
    () => createFetch({ certFile: "/nonexistent/cert.pem", keyFile: "/nonexistent/key.pem" }),
    { name: "TypeError", message: /^Cannot read --etcd-certfile "\/nonexistent\/cert.pem": / },
  );
  assert.throws(() => createFetch({ caFile: "/nonexistent/ca.pem" }), { message: /--etcd-cafile/ });
  using plain = createFetch({ certFile: "/nonexistent/cert.pem" }); // cert without key: plain HTTP
  assert.equal(typeof plain, "function");
  return Promise.resolve();
}, false);

t("unreachable endpoints fail fast with EtcdUnavailableError naming them", async () => {
  const endpoints = [`http://127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
  const c = new EtcdClient({ endpoints, log: new MemoryLogger(), requestTimeoutMs: 2_000 });
  const t0 = performance.now();
  await assert.rejects(c.range("/x"), (e) => {
    assert.ok(e instanceof EtcdUnavailableError, String(e));
    assert.equal(e.code, GrpcCode.Unavailable);
    assert.ok(e.message.includes(endpoints[0]!) && e.message.includes(`http://${endpoints[1]}`), e.message);
    assert.match(e.message, /check --etcd-endpoints$/);
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  assert.ok(performance.now() - t0 < 1_000, "took too long");
  await assert.rejects(
    c.watch("/x", { startRevision: 0n }, new AbortController().signal)[Symbol.asyncIterator]().next(),
    EtcdUnavailableError,
  );
  c.close();
}, false);

t("fails over to the next endpoint and remembers it", async () => {
  await using etcd = await startEtcd();
  const log = new MemoryLogger();
  const dead = `http://127.0.0.1:${await freePort()}`;
  const c = new EtcdClient({ endpoints: [dead, etcd.endpoint], log });
  await c.put("/f", "1");
  assert.equal(log.messages("warn").length, 1);
  assert.match(
    log.messages("warn")[0]!,
    /^Using etcd endpoint http:\/\/127.0.0.1:\d+ after http:\/\/127.0.0.1:\d+ \(.+\) failed$/,
  );
  assert.equal((await c.range("/f")).kvs[0]?.value, "1");
  assert.equal(log.messages("warn").length, 1, "the working endpoint is tried first");
  c.close();
  await assert.rejects(c.range("/f"), (e) => e instanceof EtcdError && /closed/.test(e.message));
});

t("observe hears of every attempt: a dead endpoint as failed, the live one as answered", async () => {
  await using etcd = await startEtcd();
  const dead = `http://127.0.0.1:${await freePort()}`;
  const seen: { endpoint: string; ok: boolean; ms: number }[] = [];
  const c = new EtcdClient({
    endpoints: [dead, etcd.endpoint],
    log: new MemoryLogger(),
    observe: (a) => seen.push(a),
  });
  await c.put("/o", "1");
  await c.range("/o");
  assert.deepEqual(seen.map((a) => [a.endpoint, a.ok]), [[dead, false], [etcd.endpoint, true], [
    etcd.endpoint,
    true,
  ]]);
  assert.ok(seen.every((a) => a.ms >= 0 && a.ms < 10_000), JSON.stringify(seen));
  c.close();
});

t("progress notifications arrive as empty batches with the current revision", async () => {
  await using etcd = await startEtcd({ args: ["--experimental-watch-progress-notify-interval=100ms"] });
  const c = client(etcd);
  const { revision } = await c.put("/other", "1");
  const ac = new AbortController();
  for await (const batch of c.watch("/quiet", { startRevision: 0n, progressNotify: true }, ac.signal)) {
    assert.deepEqual(batch, { revision, events: [] });
    ac.abort();
  }
  c.close();
});

/** A fake gateway whose range body never finishes, whose put never answers, and whose watch is confirmed but idle. */
function stallingServer(): { endpoint: string; [Symbol.asyncDispose](): Promise<void> } {
  const ac = new AbortController();
  const enc = new TextEncoder();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req, info) => {
      const path = new URL(req.url).pathname;
      const stall = (first: string) =>
        new Response(new ReadableStream({ start: (c) => c.enqueue(enc.encode(first)) }));
      if (path === "/v3/kv/range") return stall("{");
      if (path === "/v3/watch") return stall('{"result":{"header":{"revision":"5"},"created":true}}\n');
      return info.completed.then(() => new Response("{}"));
    },
  );
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    async [Symbol.asyncDispose]() {
      ac.abort();
      await server.finished;
    },
  };
}

t("a stalled endpoint times out, and the next endpoint is tried", async () => {
  await using stalled = stallingServer();
  const c = new EtcdClient({ endpoints: [stalled.endpoint], log: new MemoryLogger(), requestTimeoutMs: 200 });
  for (const call of [() => c.range("/a"), () => c.put("/a", "b")]) {
    const t0 = performance.now();
    await assert.rejects(call(), (e) => {
      assert.ok(e instanceof EtcdUnavailableError, String(e));
      assert.match(e.message, /\(timed out after 200 ms\); check --etcd-endpoints$/);
      return true;
    });
    assert.ok(performance.now() - t0 < 1_500, "timeout not applied");
  }
  // An idle but confirmed watch stays open until aborted, and then closes at once.
  const ac = new AbortController();
  const next = c.watch("/a", { startRevision: 0n }, ac.signal)[Symbol.asyncIterator]().next();
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  assert.equal((await next).done, true);
  c.close();

  if (skip) return;
  await using etcd = await startEtcd();
  const log = new MemoryLogger();
  const both = new EtcdClient({ endpoints: [stalled.endpoint, etcd.endpoint], log, requestTimeoutMs: 200 });
  await both.put("/a", "1");
  assert.equal((await both.range("/a")).kvs[0]?.value, "1");
  assert.match(
    log.messages("warn").join("\n"),
    /after http:\/\/127.0.0.1:\d+ \(timed out after 200 ms\) failed/,
  );
  both.close();
}, false);

/**
 * EtcdKV's guarded writes when the reply is lost: the write may have landed, and revoking its
 * etcd lease would delete our own key (found in review). A stub client applies the transaction
 * and then fails, as a timeout or a connection reset after etcd committed would.
 */
import assert from "node:assert/strict";
import { EtcdKV } from "../../src/lease/etcd/store.ts";
import type { EtcdClient } from "../../src/lease/etcd/client.ts";

function stub(opts: { applyThenThrow?: boolean; failGuard?: boolean }) {
  const store = new Map<string, { value: string; lease: bigint; mod: bigint }>();
  let rev = 10n;
  const revoked: bigint[] = [];
  let nextLease = 100n;
  const client = {
    grant: () => Promise.resolve({ id: nextLease++, ttl: 60 }),
    revoke: (id: bigint) => {
      revoked.push(id);
      for (const [k, v] of store) if (v.lease === id) store.delete(k);
      return Promise.resolve();
    },
    txn: (t: { success: { key: string; value: string; lease?: bigint }[] }) => {
      const put = t.success[0]!;
      if (opts.failGuard) return Promise.resolve({ succeeded: false, revision: rev, responses: [] });
      store.set(put.key, { value: put.value, lease: put.lease ?? 0n, mod: ++rev });
      if (opts.applyThenThrow) return Promise.reject(new Error("connection reset after commit"));
      return Promise.resolve({ succeeded: true, revision: rev, responses: [] });
    },
    range: (key: string) => {
      const v = store.get(key);
      return Promise.resolve({
        kvs: v
          ? [{ key, value: v.value, createRevision: v.mod, modRevision: v.mod, version: 1n, lease: v.lease }]
          : [],
        count: v ? 1 : 0,
        revision: rev,
      });
    },
  };
  return { kv: new EtcdKV(client as unknown as EtcdClient), store, revoked };
}

Deno.test("etcd kv: a write whose reply was lost but which landed is kept, not revoked", async () => {
  const s = stub({ applyThenThrow: true });
  const entry = await s.kv.create("/k", "v", 60);
  assert.equal(entry?.value, "v");
  assert.deepEqual(s.revoked, []);
  assert.equal(s.store.get("/k")?.value, "v");
});

Deno.test("etcd kv: a guard that fails for real revokes the fresh lease", async () => {
  const s = stub({ failGuard: true });
  assert.equal(await s.kv.create("/k", "v", 60), undefined);
  assert.deepEqual(s.revoked, [100n]);
});

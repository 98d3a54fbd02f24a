#!/usr/bin/env bash
# The first walking skeleton, kept as a small check without namespaces: a throwaway etcd on loopback, a
# net-conf, run two flanneld (the bundled dist/flanneld, alloc backend), show their leases in
# etcd, their subnet.env files and their health endpoints, then stop everything and clean up.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
# shellcheck source=setup.sh
. scripts/setup.sh
deno task bundle >/dev/null 2>&1 || deno task bundle

work=$(mktemp -d /tmp/flannel-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
cport=$(port); pport=$(port)
endpoint="http://127.0.0.1:$cport"
etcd --data-dir "$work/etcd" --name demo \
  --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "demo=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
pids+=($!)
etcdctl() { ETCDCTL_API=3 command etcdctl --endpoints="$endpoint" "$@"; }
for _ in $(seq 1 100); do etcdctl endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
echo "== etcd is up at $endpoint"

config='{"Network":"10.5.0.0/16","Backend":{"Type":"alloc"}}'
etcdctl put /coreos.com/network/config "$config" >/dev/null
echo "== net-conf: $config"

for n in 1 2; do
  ./dist/flanneld --etcd-endpoints="$endpoint" --iface-can-reach=127.0.0.1 --public-ip="10.10.0.$n" \
    --subnet-file="$work/node$n/subnet.env" --healthz-ip=127.0.0.1 --healthz-port="$(port)" \
    >"$work/node$n.log" 2>&1 &
  pids+=($!)
done
for n in 1 2; do
  for _ in $(seq 1 100); do [ -s "$work/node$n/subnet.env" ] && break; sleep 0.1; done
done

echo "== leases in etcd (etcdctl get --prefix /coreos.com/network/subnets)"
etcdctl get --prefix /coreos.com/network/subnets
for n in 1 2; do
  echo "== node $n: $work/node$n/subnet.env"
  cat "$work/node$n/subnet.env"
  hp=$(grep -Eo 'healthz-port=[0-9]+|on 127.0.0.1:[0-9]+' "$work/node$n.log" | grep -Eo '[0-9]+$' | head -1)
  echo "== node $n: /readyz says: $(curl -s "http://127.0.0.1:$hp/readyz"); peers known: $(curl -s "http://127.0.0.1:$hp/metrics" | awk '/^flannel_peer_leases /{print $2}')"
done
echo "== node 1 log"
sed 's/^/  /' "$work/node1.log"
echo "== stopping"
for p in "${pids[@]:1}"; do kill -TERM "$p"; done
for p in "${pids[@]:1}"; do wait "$p" && echo "flanneld $p exited 0"; done
pids=("${pids[0]}")
echo "== done"

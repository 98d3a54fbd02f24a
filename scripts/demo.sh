#!/usr/bin/env bash
# The main job: a virtual cluster on this machine. Installs what it needs (scripts/setup.sh),
# builds dist/flanneld, then brings up 3 nodes (network namespaces on a bridge, a real etcd,
# one flanneld per node, a pod per node made by the CNI bridge plugin), prints the leases,
# each node's subnet.env, the pod-to-pod ping matrix and iperf3 throughput, and tears it all down.
# Options pass through: --backend vxlan|host-gw|wireguard|alloc|… --nodes N --ipv6 --direct-routing
# Needs root (network namespaces).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
# shellcheck source=setup.sh
. scripts/setup.sh
deno task bundle >/dev/null
exec deno run -A scripts/cluster_demo.ts "$@"

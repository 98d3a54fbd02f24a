#!/usr/bin/env bash
# Installs what the virtual cluster (tests/harness/cluster.ts, scripts/cluster_demo.ts) needs from
# apt, as root: the CNI reference plugins (Debian's containernetworking-plugins, in /usr/lib/cni),
# iperf3, iproute2, ping, tcpdump (for debugging a data path), etcd and etcdctl.
# Idempotent: only what is missing is installed. Needs no network beyond the Debian mirror.
set -euo pipefail

need_apt=()
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || need_apt+=(containernetworking-plugins)
command -v iperf3 >/dev/null 2>&1 || need_apt+=(iperf3)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v ping >/dev/null 2>&1 || need_apt+=(iputils-ping)
command -v tcpdump >/dev/null 2>&1 || need_apt+=(tcpdump)
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
if [ ${#need_apt[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "cluster_setup: need root to install ${need_apt[*]} with apt-get" >&2
  exit 1
fi
echo "cluster_setup: installing ${need_apt[*]} from apt" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null

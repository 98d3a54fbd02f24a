#!/usr/bin/env bash
# Installs what flannel-ts needs on a fresh Debian machine with Node and npm, as root:
# Deno and TypeScript from npm (pinned in tools/deno/package.json), and from apt what the tests
# and the demo run for real (listed below with the reason).
# Idempotent: what is already there is not installed again. Source it to get deno on PATH.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need_apt=()
want() { # command-or-path package
  case "$1" in
    /*) [ -e "$1" ] || need_apt+=("$2") ;;
    *) command -v "$1" >/dev/null 2>&1 || need_apt+=("$2") ;;
  esac
}
want etcd etcd-server                              # the lease store for tests and the demo
want etcdctl etcd-client
want ip iproute2                                   # namespaces, interface selection
want openssl openssl                               # TLS test certificates
want curl curl
want /usr/lib/cni/bridge containernetworking-plugins   # pods in the virtual cluster
want iperf3 iperf3
want ping iputils-ping
want tcpdump tcpdump
want iptables iptables                             # traffic rules (nf_tables and legacy)
want nft nftables
want wg wireguard-tools
want wireguard-go wireguard-go                     # WireGuard where the kernel has none
want strace strace                                 # netlink fixture capture
want /usr/lib/ipsec/charon strongswan-charon       # the ipsec backend's IKE daemon
want /usr/lib/ipsec/plugins/libstrongswan-vici.so strongswan-swanctl   # charon's VICI plugin
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install ${need_apt[*]} with apt-get" >&2
    exit 1
  fi
  echo "setup: installing ${need_apt[*]} from apt" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$here/tools/deno/node_modules/.bin/deno" ] || [ ! -x "$here/tools/deno/node_modules/.bin/tsc" ]; then
  echo "setup: installing deno and typescript from npm" >&2
  (cd "$here/tools/deno" && npm install --no-audit --no-fund --loglevel=error >&2)
fi
export PATH="$here/tools/deno/node_modules/.bin:$PATH"
# Deno must not look for updates on dl.deno.land (no traffic leaves this machine but to registries).
export DENO_NO_UPDATE_CHECK=1

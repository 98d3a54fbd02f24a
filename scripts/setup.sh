#!/usr/bin/env bash
# Installs what flannel-ts needs on a fresh Debian machine with Node and npm, as root:
# Deno and TypeScript from npm (pinned in tools/deno/package.json), and from apt etcd (server and
# etcdctl) for the tests and the demo, iproute2, and openssl for the TLS tests.
# Idempotent: what is already there is not installed again. Source it to get deno on PATH.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
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

#!/usr/bin/env bash
# The kernel lab: the data paths this machine's kernel cannot run (ipip, ipsec's ESP, the kernel
# WireGuard device), end to end on dist/flanneld inside a qemu VM that boots Debian's stock kernel
# (tests/kernel_lab/run.sh; scenarios in tests/kernel_lab/lab_test.ts; see tests/kernel_lab/README.md).
#
# usage: scripts/kernel_lab.sh [deno test args, e.g. --filter ipsec]
#
# Prints what it does and ends with exactly one of:
#   kernel-lab: PASS ...                 exit 0
#   kernel-lab: FAIL ...                 exit 1 (or the lab's own non-zero status; 124: VM timeout)
#   kernel-lab: NOT RUN: <reason>        exit 125: no VM can boot here (not root, no qemu, no kernel
#                                        package, the VM does not boot) or KLAB_SKIP=1 was set
# Environment: KLAB_SKIP=1 to skip; KLAB_VERBOSE=1 to print every daemon's log; KLAB_TIMEOUT (s,
# default 900) for the whole VM; the other KLAB_* variables of tests/kernel_lab/run.sh.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
t0=$SECONDS
not_run() { echo "kernel-lab: NOT RUN: $*"; exit 125; }
[ -z "${KLAB_SKIP:-}" ] || not_run "KLAB_SKIP is set"
[ "$(id -u)" = 0 ] || not_run "not root (the lab installs qemu and shares / into the VM)"

# What the VM runs from the host's root, installed here if missing (scripts/setup.sh does too).
need_apt=()
want() { [ -e "$1" ] || command -v "$1" >/dev/null 2>&1 || need_apt+=("$2"); }
want qemu-system-x86_64 qemu-system-x86
want /usr/lib/ipsec/charon strongswan-charon                           # the ipsec backend's IKE daemon
want /usr/lib/ipsec/plugins/libstrongswan-vici.so strongswan-swanctl   # charon's VICI plugin
want /usr/lib/ipsec/plugins/libstrongswan-openssl.so libstrongswan-standard-plugins # ecp256, gcm
want wg wireguard-tools
want etcd etcd-server
want etcdctl etcd-client
want /usr/lib/cni/bridge containernetworking-plugins
want curl curl
want ping iputils-ping
want iptables iptables
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "kernel-lab: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; } ||
    echo "kernel-lab: could not install ${need_apt[*]}; the scenarios that need them will fail"
  command -v qemu-system-x86_64 >/dev/null || not_run "qemu-system-x86_64 is missing and cannot be installed"
fi

deno=$here/tools/deno/node_modules/.bin/deno
[ -x "$deno" ] || "$here/scripts/deno" --version >/dev/null || not_run "cannot install deno (scripts/deno)"
# The lab runs the bundle, as every e2e test does; rebuild it when a source file is newer.
if [ ! -x dist/flanneld ] || [ -n "$(find src scripts/permissions -newer dist/flanneld -print -quit)" ]; then
  echo "kernel-lab: building dist/flanneld"
  PATH="$here/tools/deno/node_modules/.bin:$PATH" "$deno" task bundle >/dev/null ||
    { echo "kernel-lab: FAIL: deno task bundle failed"; exit 1; }
fi

# Warm Deno's caches (module analysis, V8 code cache) on the host: the VM sees them through its
# read-only share of /, and the first parse of the bundle costs 10-20 s more under emulation.
PATH="$here/tools/deno/node_modules/.bin:$PATH" dist/flanneld --version >/dev/null 2>&1 || true
"$deno" test --no-check --no-run tests/kernel_lab/lab_test.ts >/dev/null 2>&1 || true

echo "kernel-lab: booting Debian's kernel under qemu (tests/kernel_lab/run.sh) for the ipip, ipsec and wireguard scenarios"
export KLAB_TIMEOUT=${KLAB_TIMEOUT:-900}
export KLAB_ENV="${KLAB_ENV:-} KLAB_VERBOSE"   # KLAB_VERBOSE=1: every daemon's log after each scenario
# Inside the VM, dist/flanneld is first copied into the VM's own overlay: the VM caches the host's
# files (9p, cache=loose) and would read a torn file if the host rebuilt the bundle meanwhile.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
tests/kernel_lab/run.sh env NO_COLOR=1 PATH="$here/tools/deno/node_modules/.bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  bash -c 'cp dist/flanneld /tmp/flanneld && cp /tmp/flanneld dist/flanneld && exec "$@"' lab \
  "$deno" test -A --no-check tests/kernel_lab/lab_test.ts "$@" 2>&1 | tee "$out" || rc=${PIPESTATUS[0]}
took=$((SECONDS - t0))
# deno test's summary: "ok | 3 passed | 0 failed | 1 filtered out (…)"
passed=$(grep -Eo '\| [0-9]+ passed' "$out" | tail -1 | grep -Eo '[0-9]+' || echo 0)
total=$(grep -Eo '^running [0-9]+ tests? from' "$out" | tail -1 | grep -Eo '[0-9]+' || echo 0)
if [ "$rc" = 0 ] && [ "$passed" = 0 ]; then
  echo "kernel-lab: FAIL: no scenario ran in the VM (${took} s)"
  exit 1
fi
case $rc in
  0) echo "kernel-lab: PASS: $passed of $total scenarios ran and passed in the VM (${took} s)" ;;
  125) not_run "no VM can boot here (see the kernel-lab line above)" ;;
  124) echo "kernel-lab: FAIL: the VM ran past KLAB_TIMEOUT=${KLAB_TIMEOUT} s (${took} s)" ;;
  *) echo "kernel-lab: FAIL: the lab ran in the VM and exited with $rc (${took} s)" ;;
esac
exit "$rc"

#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: setup, format/lint/type checks, the bundle,
# every test tier (unit, conformance with a real etcd, integration, privileged in throwaway
# network namespaces, end to end on the bundled dist/flanneld), and the npm package build with
# its Node smoke test. Exits non-zero on any failure and ends with "N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
# shellcheck source=setup.sh
. scripts/setup.sh
export NO_COLOR=1

echo "== checks: fmt, lint, types"
deno fmt --check
deno lint
deno check mod.ts src tests scripts

echo "== bundle: dist/flanneld"
deno task bundle

echo "== tests"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
# The fast tiers in parallel; then the end-to-end tiers one file at a time, since their latency
# assertions (a node reachable within 2 s, a device healed within 2 s) are about our daemon, not
# about a 2-core machine shared with a parallel test run.
set +e
deno test -A --parallel tests/unit tests/conformance tests/integration tests/privileged 2>&1 | tee -a "$log"
r1=${PIPESTATUS[0]}
deno test -A tests/e2e 2>&1 | tee -a "$log"
r2=${PIPESTATUS[0]}
set -e
[ "$r1" = 0 ] && [ "$r2" = 0 ] || rc=1
summary=$(grep -E '^(ok|FAILED) \|' "$log" || true)
count() { { echo "$summary" | grep -Eo "[0-9]+ $1" || true; } | awk '{s+=$1} END {print s+0}'; }
passed=$(count passed)
failed=$(count failed)
ignored=$(count ignored)
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi

echo "== npm package"
if ! deno task build:npm; then
  failed=$((failed + 1))
  rc=1
fi

echo "tests: $passed passed, $failed failed, $ignored skipped"
[ "$rc" = 0 ] && [ "$passed" -gt 0 ]

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
set +e
deno test -A --parallel tests/unit tests/conformance tests/integration tests/privileged tests/e2e 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
failed=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
ignored=$(grep -Eo '[0-9]+ ignored' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi

echo "== npm package"
if ! deno task build:npm; then
  failed=$((failed + 1))
  rc=1
fi

echo "tests: $passed passed, $failed failed, $ignored skipped"
[ "$rc" = 0 ] && [ "$passed" -gt 0 ]

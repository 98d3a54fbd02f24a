#!/usr/bin/env bash
# Kept for the cluster harness's instructions: everything is installed by scripts/setup.sh.
set -euo pipefail
exec bash "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/setup.sh"

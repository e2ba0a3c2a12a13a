#!/usr/bin/env bash
# Run the shared acceptance checks that imaforge already passes, so they keep
# passing. Usage: scripts/acceptance.sh [SHARED_DIR]  (default ../shared)
# The checks run from the project root, as root, after `make build`.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${1:-../shared}
if [ ! -d "$shared/acceptance" ]; then
  echo "acceptance: $shared/acceptance not present, nothing to run"
  exit 0
fi
# Checks listed here pass today; add one when it starts passing.
checks=(
  01-evmctl-interop.sh
  02-squashfs-peer.sh
  03-build.sh
)
passed=0 failed=0
for c in "${checks[@]}"; do
  echo "acceptance: $c"
  if bash "$shared/acceptance/$c"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "acceptance: $c FAILED"
  fi
done
echo "acceptance: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

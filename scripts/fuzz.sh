#!/usr/bin/env bash
# Run every Go fuzz target of the module for a short while (default 30s each).
# New crashers land in the package's testdata/fuzz/FuzzXxx/ directory, where
# `go test` then replays them as regression cases: commit them with the fix.
# usage: scripts/fuzz.sh [FUZZTIME] [PACKAGE-PATTERN]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-30s}
pattern=${2:-./...}
status=0
for pkg in $(go list "$pattern"); do
  for target in $(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true); do
    echo "fuzz: $pkg $target ($fuzztime)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime 3s "$pkg"; then
      echo "fuzz: $pkg $target FAILED: see the crasher under $pkg's testdata/fuzz/$target" >&2
      status=1
    fi
  done
done
exit $status

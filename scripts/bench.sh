#!/usr/bin/env bash
# `make bench`: every figure of issue 22 in one table, each a ratio to the
# peer or the limit measured in the same run (scripts/bench-lib.sh describes
# a row), written as JSON to $BENCH_OUT (default out/bench.json) and printed.
# `scripts/bench-report.sh readme out/bench.json` puts the table into README.md.
#
# usage: scripts/bench.sh [--quick] [PART...]
#   PART: peer squashfs million cache service (default: all; a helper adding a part adds
#   it to PARTS below). --quick shrinks every tree for development
#   (5,000 small files, 2 large files of 10-14 MiB, a 100,000-file "million"
#   row, the Go tree's runtime and crypto sources); the full mode is for a
#   quiet machine and takes about an hour on 2 cores.
# Needs root (evmctl writes security.ima) and the peers from `make deps`.
set -euo pipefail
cd "$(dirname "$0")/.."
PARTS=(peer squashfs million cache service)
mode=full
if [ "${1:-}" = --quick ]; then
  mode=quick; shift
  export SMALL_FILES=${SMALL_FILES:-5000} LARGE_FILES=${LARGE_FILES:-2} LARGE_SCALE=${LARGE_SCALE:-0.1}
  export BENCH_SCALE=${BENCH_SCALE:-0.1} BENCH_COMPS=${BENCH_COMPS:-"zstd:15 zstd:3 xz:0"}
  export LEVELS=${LEVELS:-3} PEER_TREES=${PEER_TREES:-"small large"}
  export FILES=${FILES:-100000} RATIO_FILES=${RATIO_FILES:-5000}
  CACHE_TREE=${CACHE_TREE:-$(go env GOROOT)/src}; export CACHE_TREE CACHE_COMPS=${CACHE_COMPS:-zstd:15}
  export SERVICE_FILES=${SERVICE_FILES:-5000}
fi
[ $# -gt 0 ] && PARTS=("$@")
out=${BENCH_OUT:-out/bench.json}
mkdir -p "$(dirname "$out")"
export BENCH_JSON
BENCH_JSON=$(mktemp "${TMPDIR:-/tmp}/bench-rows.XXXXXX")
trap 'rm -f "$BENCH_JSON"' EXIT
failed=0
for p in "${PARTS[@]}"; do
  echo "==> scripts/bench-$p.sh ($mode)"
  case $p in
  peer) scripts/bench-peer.sh ${PEER_TREES:-} || failed=1 ;;
  *) "scripts/bench-$p.sh" || failed=1 ;;
  esac
done
scripts/bench-report.sh collect "$BENCH_JSON" "$out" "$mode"
echo
scripts/bench-report.sh table "$out"
echo
echo "rows: $out (scripts/bench-report.sh readme $out updates README.md)"
exit $failed

#!/usr/bin/env bash
# `make bench`: every figure of issue 22 in one table, each a ratio to the
# peer or the limit measured in the same run (scripts/bench-lib.sh describes
# a row), written as JSON to $BENCH_OUT (default out/bench.json) and printed.
# `scripts/bench-report.sh readme out/bench.json` puts the table into README.md.
#
# usage: scripts/bench.sh [--quick] [--runs N] [PART...]
#   PART: peer squashfs million cache service (default: all; a helper adding
#   a part adds it to PARTS below).
#   --runs N (or BENCH_RUNS=N): every part N times, one run after the other
#   (run 1 of every part, then run 2, ...); every row is measured in every
#   run, the table has a column per run and the JSON keeps them all. The
#   trees are generated once, in $BENCH_DIR, and shared by the runs.
#   --quick shrinks every tree for development (5,000 small files, 2 large
#   files of 10-14 MiB, a 100,000-file "million" row, the Go tree's runtime
#   and crypto sources). The full mode is for a quiet machine: one run takes
#   about 15 minutes on 2 cores, the trees about 4 more once (docs/bench.md
#   has the time of each part).
# env: BENCH_DIR (the trees and scratch files of every part; default a
#   temporary directory removed at the end; a directory given is kept, so a
#   second invocation reuses its trees: one directory per mode),
#   BENCH_OUT, and each part's own variables (its script's header).
# Needs root (evmctl writes security.ima) and the peers from `make deps`.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/.."
PARTS=(peer squashfs million cache service)
usage() { sed -n '7,23p' "$self" >&2; exit 2; }
mode=full runs=${BENCH_RUNS:-1}
while [ $# -gt 0 ]; do
  case $1 in
  --quick) mode=quick; shift ;;
  --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
  --runs=*) runs=${1#--runs=}; shift ;;
  -h | --help) usage ;;
  -*) echo "bench: unknown option $1" >&2; usage ;;
  *) break ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: --runs wants a positive number, not \"$runs\"" >&2; exit 2; }
[ $# -gt 0 ] && PARTS=("$@")
for p in "${PARTS[@]}"; do
  [ -x "scripts/bench-$p.sh" ] || { echo "bench: no part \"$p\" (scripts/bench-$p.sh)" >&2; exit 2; }
done
if [ $mode = quick ]; then
  export SMALL_FILES=${SMALL_FILES:-5000} LARGE_FILES=${LARGE_FILES:-2} LARGE_SCALE=${LARGE_SCALE:-0.1}
  export BENCH_SCALE=${BENCH_SCALE:-0.1} BENCH_COMPS=${BENCH_COMPS:-"zstd:15 zstd:3 xz:0"}
  export LEVELS=${LEVELS:-3} PEER_TREES=${PEER_TREES:-"small large"}
  export FILES=${FILES:-100000} RATIO_FILES=${RATIO_FILES:-5000}
  CACHE_TREE=${CACHE_TREE:-$(go env GOROOT)/src}; export CACHE_TREE CACHE_COMPS=${CACHE_COMPS:-zstd:15}
  export SERVICE_FILES=${SERVICE_FILES:-5000}
fi
out=${BENCH_OUT:-out/bench.json}
mkdir -p "$(dirname "$out")"
scratch=
if [ -z "${BENCH_DIR:-}" ]; then
  BENCH_DIR=$(mktemp -d "${TMPDIR:-/tmp}/imaforge-bench.XXXXXX") scratch=$BENCH_DIR
fi
mkdir -p "$BENCH_DIR"
export BENCH_DIR BENCH_JSON BENCH_RUN
BENCH_JSON=$(mktemp "${TMPDIR:-/tmp}/bench-rows.XXXXXX")
parts_log=$(mktemp "${TMPDIR:-/tmp}/bench-parts.XXXXXX")
trap 'rm -rf "$BENCH_JSON" "$parts_log" $scratch' EXIT
[ -x bin/imaforge ] || make build >/dev/null
failed=0
for BENCH_RUN in $(seq "$runs"); do
  for p in "${PARTS[@]}"; do
    echo "==> scripts/bench-$p.sh ($mode, run $BENCH_RUN of $runs; load $(cut -d' ' -f1-3 /proc/loadavg))"
    t0=$(date +%s) rc=0
    case $p in
    peer)
      read -ra trees <<<"${PEER_TREES:-}"
      scripts/bench-peer.sh "${trees[@]}" || rc=$? ;;
    *) "scripts/bench-$p.sh" || rc=$? ;;
    esac
    s=$(($(date +%s) - t0))
    echo "<== scripts/bench-$p.sh: ${s} s, exit $rc"
    jq -nc --argjson run "$BENCH_RUN" --arg part "$p" --argjson s "$s" --argjson rc "$rc" \
      '{run: $run, part: $part, seconds: $s, rc: $rc}' >>"$parts_log"
    [ $rc = 0 ] || failed=1
  done
done
scripts/bench-report.sh collect "$BENCH_JSON" "$out" "$mode" "$parts_log"
echo
scripts/bench-report.sh table "$out"
echo
echo "rows: $out (scripts/bench-report.sh readme $out updates README.md)"
exit $failed

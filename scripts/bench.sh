#!/usr/bin/env bash
# `make bench`: every figure of issue 22 in one table, each a ratio to the
# peer or the limit measured in the same run (scripts/bench-lib.sh describes
# a row), written as JSON to $BENCH_OUT (default out/bench.json) and printed.
# `scripts/bench-report.sh readme out/bench.json` puts the table into README.md.
#
# usage: scripts/bench.sh [--quick] [--runs N] [--trees-only] [PART...]
#   PART: peer squashfs million cache service (default: all; a helper adding
#   a part adds it to PARTS below).
#   First the trees of every part are generated, together, in $BENCH_DIR
#   (a part's script does that when BENCH_TREES_ONLY=1), then synced to
#   disk; nothing is measured meanwhile. --trees-only stops there (with
#   BENCH_DIR set, to generate them ahead of a quiet window).
#   --runs N (or BENCH_RUNS=N): every part N times, one run after the other
#   (run 1 of every part, then run 2, ...); every row is measured in every
#   run, the table has a column per run and the JSON keeps them all; the
#   trees are shared by the runs.
#   --quick shrinks every tree for development (5,000 small files, 2 large
#   files of 10-14 MiB, a 100,000-file "million" row, the Go tree's runtime
#   and crypto sources). The full mode is for a quiet machine; docs/bench.md
#   has the time of each part.
# env: BENCH_DIR (the trees and scratch files of every part; default a
#   temporary directory removed at the end; a directory given is kept, so a
#   second invocation reuses its trees: one directory per mode and sizes;
#   remove it after an interrupted --trees-only), BENCH_OUT, and each part's
#   own variables (its script's header; LEVELS defaults to 3 here, see
#   docs/bench.md).
# Needs root (evmctl writes security.ima) and the peers from `make deps`.
set -euo pipefail
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$self")/.."
PARTS=(peer squashfs million cache service)
usage() { sed -n '7,28p' "$self" >&2; exit 2; }
mode=full runs=${BENCH_RUNS:-1} trees_only=0
while [ $# -gt 0 ]; do
  case $1 in
  --quick) mode=quick; shift ;;
  --trees-only) trees_only=1; shift ;;
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
[ $trees_only = 0 ] || [ -n "${BENCH_DIR:-}" ] || { echo "bench: --trees-only needs BENCH_DIR (where to keep them)" >&2; exit 2; }
# The peer's zstd-15 cells are left out (LEVELS=3): a zstd-15 build is the
# zstd-3 build's work (every row at zstd-3) plus compression at 15, which the
# pack rows compare with mksquashfs; LEVELS="15 3" puts them back.
export LEVELS=${LEVELS:-3}
if [ $mode = quick ]; then
  export SMALL_FILES=${SMALL_FILES:-5000} LARGE_FILES=${LARGE_FILES:-2} LARGE_SCALE=${LARGE_SCALE:-0.1}
  export BENCH_SCALE=${BENCH_SCALE:-0.1} BENCH_COMPS=${BENCH_COMPS:-"zstd:15 zstd:3 xz:0"}
  export PEER_TREES=${PEER_TREES:-"small large"}
  export FILES=${FILES:-100000} RATIO_FILES=${RATIO_FILES:-5000}
  CACHE_TREE=${CACHE_TREE:-$(go env GOROOT)/src}; export CACHE_TREE CACHE_COMPS=${CACHE_COMPS:-zstd:15}
  export SERVICE_FILES=${SERVICE_FILES:-5000} BENCH_REPS=${BENCH_REPS:-1}
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
if [ ! -x bin/imaforge ] || [ ! -x bin/imaforge-serve ]; then make build >/dev/null; fi

part() { # PART: runs its script
  local trees
  case $1 in
  peer)
    read -ra trees <<<"${PEER_TREES:-}"
    scripts/bench-peer.sh "${trees[@]}" ;;
  *) "scripts/bench-$1.sh" ;;
  esac
}
log_part() { # RUN PART SECONDS RC: one line of the parts' timings (run 0: the trees)
  jq -nc --argjson run "$1" --arg part "$2" --argjson s "$3" --argjson rc "$4" \
    '{run: $run, part: $part, seconds: $s, rc: $rc}' >>"$parts_log"
}

echo "==> the trees of ${PARTS[*]} in $BENCH_DIR"
t0=$(date +%s) rc=0 pids=()
for p in "${PARTS[@]}"; do
  grep -q BENCH_TREES_ONLY "scripts/bench-$p.sh" || continue
  BENCH_TREES_ONLY=1 part "$p" >"$BENCH_DIR/trees-$p.log" 2>&1 &
  pids+=("$!:$p")
done
for pp in "${pids[@]}"; do
  wait "${pp%%:*}" || { rc=1; echo "bench: the trees of ${pp#*:} failed:" >&2; tail -5 "$BENCH_DIR/trees-${pp#*:}.log" >&2; }
done
sync
s=$(($(date +%s) - t0))
echo "<== the trees: ${s} s, exit $rc"
log_part 0 trees "$s" "$rc"
[ $rc = 0 ] || exit 1
[ $trees_only = 0 ] || exit 0

failed=0
for BENCH_RUN in $(seq "$runs"); do
  for p in "${PARTS[@]}"; do
    echo "==> scripts/bench-$p.sh ($mode, run $BENCH_RUN of $runs; load $(cut -d' ' -f1-3 /proc/loadavg))"
    t0=$(date +%s) rc=0
    part "$p" || rc=$?
    s=$(($(date +%s) - t0))
    echo "<== scripts/bench-$p.sh: ${s} s, exit $rc"
    log_part "$BENCH_RUN" "$p" "$s" "$rc"
    [ $rc = 0 ] || failed=1
  done
done
scripts/bench-report.sh collect "$BENCH_JSON" "$out" "$mode" "$parts_log"
echo
scripts/bench-report.sh table "$out"
echo
echo "rows: $out (scripts/bench-report.sh readme $out updates README.md)"
exit $failed

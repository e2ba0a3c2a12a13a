#!/usr/bin/env bash
# imaforge squashfs pack against mksquashfs, same trees, same compressor, level
# and block size, in the same run: wall time, CPU time (user+sys), peak RSS
# (/usr/bin/time -v) and image size, with ratios ours/mksquashfs.
#
# usage: scripts/bench-squashfs.sh [TREE...]
#   With no TREE, builds the issue's trees under $BENCH_DIR (default a temp
#   dir): "go" (a copy of the Go toolchain, GOROOT), "small" (50,000 files of
#   1-8 KiB), "large" (8 files of 64-256 MiB). BENCH_SCALE=0.1 shrinks the
#   generated ones (small: 5,000 files; large: 8 files of 6-25 MiB; go: GOROOT/src/{runtime,crypto}
#   and pkg/tool) for a loaded machine.
#   BENCH_COMPS overrides the list of "comp:level" pairs.
#   BENCH_REPEAT_UNDER (seconds, default 30): a cell whose first pair of
#   builds (mksquashfs and ours) took less wall time is measured BENCH_REPS
#   times in all (default 3, scripts/bench-lib.sh), alternating which tool
#   goes first, and each side's median is reported (peak RSS: the largest);
#   at full size that is every cell but xz's.
#   BENCH_JSON: two rows per cell for `make bench` (scripts/bench-lib.sh),
#   ours/mksquashfs wall time and CPU time (user+sys), goal <= 1 each (issue
#   22 item 3). Both are shown because on a machine shared with other work
#   the wall time also measures how many threads compete for the CPUs
#   (mksquashfs runs two deflator threads per CPU plus reader, writer and
#   main; pack a block and a fragment compressor per CPU, one for both with
#   zstd, plus readers), while the CPU time is
#   the work done. Our time includes the fsync of the atomic publish
#   (temporary file, fsync, rename), which mksquashfs does not do.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
IMAFORGE=${IMAFORGE:-bin/imaforge}
[ -x "$IMAFORGE" ] || make build >/dev/null
for t in mksquashfs /usr/bin/time python3; do command -v "$t" >/dev/null || { echo "missing $t (make deps)"; exit 1; }; done
SCALE=${BENCH_SCALE:-1}
COMPS=${BENCH_COMPS:-"zstd:15 zstd:3 gzip:9 xz:0 lz4:0"}
BS=${BENCH_BLOCK_SIZE:-128K}
REPEAT_UNDER=${BENCH_REPEAT_UNDER:-30}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-squashfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DATA=${BENCH_DIR:-$WORK/trees}
mkdir -p "$DATA"

trees=("$@")
if [ ${#trees[@]} -eq 0 ]; then
  GOROOT=$(go env GOROOT)
  if [ ! -d "$DATA/go" ]; then
    if [ "$SCALE" = 1 ]; then cp -a "$GOROOT" "$DATA/go"
    else mkdir -p "$DATA/go"; cp -a "$GOROOT/src/runtime" "$GOROOT/src/crypto" "$GOROOT/pkg/tool" "$DATA/go/"; fi
  fi
  [ -d "$DATA/small" ] || python3 - "$DATA/small" "$SCALE" <<'EOF'
import os, random, sys
root, scale = sys.argv[1], float(sys.argv[2])
rnd = random.Random(1)
words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randrange(2, 9))) for _ in range(2000)]
for i in range(int(50000 * scale)):
    d = f"{root}/d{i % 100:02d}/e{i % 7}"
    os.makedirs(d, exist_ok=True)
    n = rnd.randrange(1024, 8193)
    if i % 3 == 0:   # random bytes
        data = rnd.randbytes(n)
    else:            # text-like
        data = b" ".join(rnd.choice(words) for _ in range(n // 4))[:n]
    with open(f"{d}/f{i}", "wb") as f:
        f.write(data)
EOF
  [ -d "$DATA/large" ] || python3 - "$DATA/large" "$SCALE" <<'EOF'
import os, random, sys
root, scale = sys.argv[1], float(sys.argv[2])
os.makedirs(root, exist_ok=True)
rnd = random.Random(2)
chunk = b"".join(rnd.randbytes(512) + bytes(512) + b"log line %d of something\n" % i for i in range(1024))
for i in range(8):
    size = int((64 + 192 * i / 7) * (1 << 20) * scale)
    with open(f"{root}/big{i}", "wb") as f:
        left = size
        while left > 0:
            f.write(chunk[:left])
            left -= len(chunk)
EOF
  trees=("$DATA/go" "$DATA/small" "$DATA/large")
fi
[ -z "${BENCH_TREES_ONLY:-}" ] || exit 0 # scripts/bench.sh: the trees only

# measure NAME CMD...: prints "wall cpu rss_kb" from /usr/bin/time -v (after
# bench_settle: no timed command pays for another's writeback)
measure() {
  local log=$WORK/time.log
  bench_settle
  /usr/bin/time -v "$@" >/dev/null 2>"$log" || { cat "$log"; return 1; }
  awk -F': ' '
    /Elapsed \(wall clock\)/ { n=split($2,p,":"); w=0; for(i=1;i<=n;i++) w=w*60+p[i] }
    /User time/ { u=$2 } /System time/ { s=$2 } /Maximum resident/ { m=$2 }
    END { printf "%.2f %.2f %d\n", w, u+s, m }' "$log"
}

printf "%-8s %-8s | %8s %8s %7s %11s | %8s %8s %7s %11s | %6s %6s %6s %6s\n" \
  tree comp "mksq s" "cpu s" "MiB" bytes "ours s" "cpu s" "MiB" bytes wall cpu mem size
turn=0
for tree in "${trees[@]}"; do
  name=$(basename "$tree")
  for cl in $COMPS; do
    comp=${cl%%:*} level=${cl#*:}
    margs=(-comp "$comp") oargs=(--comp "$comp")
    if [ "$level" != 0 ]; then
      case $comp in
        lz4) margs+=(-Xhc); oargs+=(--level "$level") ;;
        *) margs+=(-Xcompression-level "$level"); oargs+=(--level "$level") ;;
      esac
    fi
    run_mksquashfs() {
      read -r mw mc mm < <(measure mksquashfs "$tree" "$WORK/m.sqsh" -noappend -no-progress -quiet \
        -reproducible -mkfs-time 0 -all-time 0 -all-root -b "$BS" "${margs[@]}")
    }
    run_ours() {
      read -r ow oc om < <(measure "$IMAFORGE" squashfs pack -q --epoch 0 --all-root --block-size "$BS" \
        "${oargs[@]}" "$tree" "$WORK/o.sqsh")
    }
    # alternate which runs first, so that neither always finds the tree
    # in the page cache from the other or meets the same phase of the load;
    # a cell whose first pair took under BENCH_REPEAT_UNDER seconds is
    # measured BENCH_REPS times (scripts/bench-lib.sh), medians reported
    mws=() mcs=() mms=() ows=() ocs=() oms=() n=1 rep=0
    while [ "$rep" -lt "$n" ]; do
      if [ $((turn++ % 2)) = 0 ]; then run_mksquashfs; run_ours; else run_ours; run_mksquashfs; fi
      mws+=("$mw") mcs+=("$mc") mms+=("$mm") ows+=("$ow") ocs+=("$oc") oms+=("$om")
      if [ $rep = 0 ] && [ "$(echo "$mw + $ow < $REPEAT_UNDER" | bc)" = 1 ]; then n=$BENCH_REPS; fi
      rep=$((rep + 1))
    done
    mw=$(bench_median "${mws[@]}") mc=$(bench_median "${mcs[@]}") mm=$(bench_max "${mms[@]}")
    ow=$(bench_median "${ows[@]}") oc=$(bench_median "${ocs[@]}") om=$(bench_max "${oms[@]}")
    ms=$(stat -c %s "$WORK/m.sqsh") os=$(stat -c %s "$WORK/o.sqsh")
    reps=; [ "$n" = 1 ] || reps="   medians of $n: mksquashfs ${mws[*]}; ours ${ows[*]}"
    printf "%-8s %-8s | %8s %8s %7d %11d | %8s %8s %7d %11d | %6.3f %6.3f %6.3f %6.4f%s\n" \
      "$name" "$comp:$level" "$mw" "$mc" $((mm / 1024)) "$ms" "$ow" "$oc" $((om / 1024)) "$os" \
      "$(echo "$ow / $mw" | bc -l)" "$(echo "$oc / $mc" | bc -l)" "$(echo "$om / $mm" | bc -l)" "$(echo "$os / $ms" | bc -l)" "$reps"
    cell="$name ($(find "$tree" -type f | wc -l) files), $comp:$level"
    reps=; [ "$n" = 1 ] || reps="; medians of $n alternating pairs"
    bench_row pack "$cell" "wall s" "$ow" "$mw" "mksquashfs" 1 \
      "CPU ${oc} s vs ${mc} s; size ratio $(printf %.4f "$(echo "$os / $ms" | bc -l)")$reps"
    bench_row pack "$cell" "CPU s" "$oc" "$mc" "mksquashfs" 1 "user+sys; peak RSS $((om / 1024)) MiB vs $((mm / 1024)) MiB$reps"
    rm -f "$WORK/m.sqsh" "$WORK/o.sqsh"
  done
done
echo "ratios are ours/mksquashfs (wall, cpu, peak RSS, size); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

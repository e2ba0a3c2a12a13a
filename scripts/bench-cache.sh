#!/usr/bin/env bash
# Incremental rebuilds (issue 22 item 5): `imaforge build --cache DIR` after
# one file of the tree changed, against the cold build, in the same run.
#
#   scripts/bench-cache.sh [TREE]     # run from the project root
#
#   TREE   default $CACHE_TREE, else the Go toolchain tree, $(go env GOROOT)
#          (copied, so one file can be changed); $(go env GOROOT)/src is a
#          quicker one (scripts/bench.sh --quick uses it)
#   CACHE_COMPS  compressor:level pairs (default "zstd:15 xz:0")
#   FILE   the file changed, relative to TREE (default src/fmt/print.go, or
#          fmt/print.go in a src tree: a file in a fragment block in the
#          middle of the image order)
#
# Rows, per compressor (CPU = user+sys seconds of the whole build, with
# /usr/bin/time; wall in seconds):
#   fill        build with an empty --cache (cold, plus storing every block
#               and signature)
#   same-size   after overwriting one byte of FILE (its size unchanged):
#               one block compressed, one signature made
#   grown       after appending a line to FILE: its fragment block and
#               every later one (their packing shifted) compressed again
#   cold        after each rebuild, the build of the same tree without a
#               cache: the reference of that rebuild's row, and its image
#               must equal the rebuild's (the script fails if they differ)
# Each rebuild is measured BENCH_REPS times (default 3, scripts/bench-lib.sh),
# from a copy of the cache as it was before, and the medians are its figures;
# the cold build (25-50 CPU-s) once. The goal is rebuild/cold <= 0.10 (CPU
# and wall). The machine may be
# shared: the load is printed and put in each row. With BENCH_DIR set
# (scripts/bench.sh), the cache as filled by the first run is kept there and
# later runs (BENCH_RUN > 1) start from a copy of it instead of filling
# again (the fill is not a row).
set -euo pipefail
ROOT=$(pwd)
TREE=${1:-${CACHE_TREE:-$(go env GOROOT)}}
COMPS=${CACHE_COMPS:-"zstd:15 xz:0"}
if [ -z "${FILE:-}" ]; then
  FILE=src/fmt/print.go; [ -f "$TREE/$FILE" ] || FILE=fmt/print.go
fi
label="Go tree"; [ "$(cd "$TREE" && pwd)" = "$(cd "$(go env GOROOT)" && pwd)" ] || label=$(basename "$TREE")
IMAFORGE=${IMAFORGE:-$ROOT/bin/imaforge}
for t in openssl /usr/bin/time cmp; do
  command -v $t >/dev/null || { echo "bench-cache: missing $t (make deps)" >&2; exit 1; }
done
[ -x "$IMAFORGE" ] || make build >/dev/null
# shellcheck source=scripts/bench-lib.sh
. "$(dirname "$0")/bench-lib.sh"
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-cache.XXXXXX")
trap 'rm -rf "$W"' EXIT
# the key (and the filled caches) kept in BENCH_DIR for the later runs: a
# cache's signatures are those of its key
K=${BENCH_DIR:+$BENCH_DIR/cache-filled}; K=${K:-$W}
mkdir -p "$K"
[ -f "$K/k.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$K/k.key" -out "$K/k.pem" -days 30 -subj "/CN=bench" \
  -addext subjectKeyIdentifier=hash -addext keyUsage=critical,digitalSignature 2>/dev/null
[ -z "${BENCH_TREES_ONLY:-}" ] || exit 0 # scripts/bench.sh: a copy of TREE is made each run
cp -a "$TREE/." "$W/tree"
[ -f "$W/tree/$FILE" ] || { echo "bench-cache: no $FILE in $TREE (set FILE)" >&2; exit 1; }
files=$(find "$W/tree" -type f | wc -l)
bytes=$(du -sb "$W/tree" | cut -f1)

# run LABEL ARGS...: one build; prints "wall cpu" and checks nothing.
run() {
  local label=$1; shift
  bench_settle
  /usr/bin/time -f "%e %U %S" -o "$W/time" "$IMAFORGE" build --quiet "$@" "$W/m.yaml"
  read -r wall user sys <"$W/time"
  echo "$wall $(echo "$user + $sys" | bc)"
}

echo "bench-cache: $TREE ($files files, $((bytes >> 20)) MiB), changing $FILE; load $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
printf '%-10s %-10s %8s %8s %8s %8s\n' comp row wall_s cpu_s wall/cold cpu/cold
for cl in $COMPS; do
  comp=${cl%%:*} level=${cl#*:}
  lv=""; [ "$level" != 0 ] && lv=", level: $level"
  cat >"$W/m.yaml" <<YAML
version: 1
image: {output: $W/out/image.sqsh, compression: $comp$lv, epoch: 0, owner: {uid: 0, gid: 0}}
hash: sha256
keys: {k: {cert: $K/k.pem, key: $K/k.key}}
sources: [{from: $W/tree/, to: /}]
rules: [{match: "/**", key: k}]
YAML
  name="$comp${level/#0/}"; [ "$level" != 0 ] && name="$comp-$level"
  cp "$W/tree/$FILE" "$W/orig"
  rm -rf "$W/cache"
  filled=${BENCH_DIR:+$BENCH_DIR/cache-filled/$label-$name}
  if [ -n "$filled" ] && [ "${BENCH_RUN:-1}" != 1 ] && [ -d "$filled" ]; then
    cp -a "$filled" "$W/cache"
    printf '%-10s %-10s %8s %8s   (the cache filled by run 1)\n' "$name" fill - -
  else
    read -r fw fc < <(run fill --cache "$W/cache")
    printf '%-10s %-10s %8.2f %8.2f\n' "$name" fill "$fw" "$fc"
    if [ -n "$filled" ]; then rm -rf "$filled"; mkdir -p "${filled%/*}"; cp -a "$W/cache" "$filled"; fi
  fi
  for change in same-size grown; do
    cp "$W/orig" "$W/tree/$FILE"
    case $change in
    same-size) printf 'X' | dd of="$W/tree/$FILE" bs=1 seek=100 conv=notrunc 2>/dev/null ;;
    grown) echo "// changed" >>"$W/tree/$FILE" ;;
    esac
    # the rebuild BENCH_REPS times (scripts/bench-lib.sh), each from the
    # cache as it was before the first, medians reported; every image must
    # equal the cold build's
    rm -rf "$W/cache.before"; cp -a "$W/cache" "$W/cache.before"
    wws=() wcs=()
    for rep in $(seq "$BENCH_REPS"); do
      rm -rf "$W/cache"; cp -a "$W/cache.before" "$W/cache"
      read -r ww wc < <(run "$change" --cache "$W/cache")
      wws+=("$ww") wcs+=("$wc")
      cp "$W/out/image.sqsh" "$W/warm-$rep.sqsh"
    done
    ww=$(bench_median "${wws[@]}") wc=$(bench_median "${wcs[@]}")
    read -r cw cc < <(run cold) # the cold build of the changed tree: the reference
    for rep in $(seq "$BENCH_REPS"); do
      cmp -s "$W/warm-$rep.sqsh" "$W/out/image.sqsh" || { echo "bench-cache: $name $change: the cached rebuild differs from the cold build" >&2; exit 1; }
      rm -f "$W/warm-$rep.sqsh"
    done
    reps=; [ "$BENCH_REPS" = 1 ] || reps=", median of $BENCH_REPS rebuilds: wall ${wws[*]}"
    printf '%-10s %-10s %8.2f %8.2f %8.2f %8.2f   (image = cold build%s)\n' "$name" "$change" "$ww" "$wc" "$(echo "$ww / $cw" | bc -l)" "$(echo "$wc / $cc" | bc -l)" "$reps"
    printf '%-10s %-10s %8.2f %8.2f   (the same tree without a cache)\n' "$name" "cold" "$cw" "$cc"
    reps=; [ "$BENCH_REPS" = 1 ] || reps="the rebuild's median of $BENCH_REPS, the cold build once"
    bench_row incremental "$label $name, --cache rebuild, one file $change" "CPU s" "$wc" "$cc" "cold build of the changed tree, same run" 0.10 "$reps"
    bench_row incremental "$label $name, --cache rebuild, one file $change" "wall s" "$ww" "$cw" "cold build of the changed tree, same run" 0.10 "$reps"
  done
  cp "$W/orig" "$W/tree/$FILE"
done
echo "cache: $(du -sh "$W/cache" | cut -f1) after the last compressor; load $(cut -d' ' -f1-3 /proc/loadavg)"

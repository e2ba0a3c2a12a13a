#!/usr/bin/env bash
# Issue 22 item 4: a build of a million small files in bounded memory.
# Generates FILES small files (1-8 KiB, half compressible, 1,000 per
# directory) and RATIO_FILES more in a second tree, builds both (zstd, ECDSA
# P-256 key: the figures are about per-file state, not RSA) and reports:
#   - peak RSS (getrusage, via the hidden build --runtime-stats) against 512 MiB;
#   - the peak live heap per file (runtime/metrics /gc/heap/live:bytes);
#   - CPU time per file against the RATIO_FILES build's (goal <= 1.25x; that
#     build is measured BENCH_REPS times, default 3, and its median taken);
#   - the garbage collector's share of CPU (runtime/metrics; goal <= 10%).
# Peak RSS and bytes per file do not depend on the machine's load; CPU
# seconds somewhat, wall seconds a lot: every row carries the load. Each
# tree is read once, untimed, before its build, so that both builds read
# from the page cache (a cold tree's disk reads cost CPU too).
#
# usage: scripts/bench-million.sh
# env:   FILES=1000000 RATIO_FILES=50000 LEVEL=3, BENCH_DIR (trees kept there
#        between runs; default a temp dir removed at the end), BENCH_JSON
#        (scripts/bench-lib.sh), MEMPROFILE=DIR (heap profiles at the peak)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
IMAFORGE=${IMAFORGE:-$PWD/bin/imaforge}
[ -x "$IMAFORGE" ] || make build >/dev/null
for t in openssl /usr/bin/time python3 jq; do
  command -v "$t" >/dev/null || { echo "bench-million: missing $t (make deps)" >&2; exit 1; }
done
FILES=${FILES:-1000000} RATIO_FILES=${RATIO_FILES:-50000} LEVEL=${LEVEL:-3}
work=$(mktemp -d "${TMPDIR:-/tmp}/imaforge-million.XXXXXX")
trap 'rm -rf "$work"' EXIT
trees=${BENCH_DIR:-$work}
mkdir -p "$trees"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/k.key" 2>/dev/null
openssl req -x509 -new -key "$work/k.key" -out "$work/k.pem" -days 30 -subj /CN=bench \
  -addext subjectKeyIdentifier=hash -addext keyUsage=critical,digitalSignature 2>/dev/null

# make_tree N: a tree of N files under $trees/small-N (kept if complete)
make_tree() {
  local dir=$trees/small-$1
  [ -f "$dir.done" ] && { echo "$dir"; return; }
  rm -rf "$dir"
  python3 - "$dir" "$1" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2]); r = random.Random(1)
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:04d}")
    if i % 1000 == 0: os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:07d}"), "wb") as f:
        f.write(r.randbytes(r.randrange(512, 4096)) * 2)
PY
  touch "$dir.done"
  echo "$dir"
}

# build N: builds the N-file tree; prints "wall cpu maxrss_bytes live_peak gc_cpu gc_fraction"
build() {
  local n=$1 src
  src=$(make_tree "$n")
  cat >"$work/m.yaml" <<YAML
version: 1
image: {output: $work/o.sqsh, compression: zstd, level: $LEVEL, block_size: 128K, epoch: 0, owner: {uid: 0, gid: 0}}
hash: sha256
keys: {k: {cert: $work/k.pem, key: $work/k.key}}
sources: [{from: $src/, to: /}]
rules: [{match: "/**", key: k}]
YAML
  local prof=()
  [ -n "${MEMPROFILE:-}" ] && prof=(--memprofile "$MEMPROFILE/heap-$n.pprof")
  bench_settle
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$IMAFORGE" build --quiet --runtime-stats "$work/st.json" "${prof[@]}" "$work/m.yaml" >&2
  rm -f "$work"/o.sqsh*
  read -r wall user sys <"$work/time"
  echo "$wall $(printf %.2f "$(echo "$user + $sys" | bc)") $(jq -r '"\(.max_rss_bytes) \(.live_heap_peak_bytes) \(.gc_cpu_s) \(.gc_fraction)"' "$work/st.json")"
}

if [ -n "${BENCH_TREES_ONLY:-}" ]; then # scripts/bench.sh: the trees only
  make_tree "$RATIO_FILES" >/dev/null; make_tree "$FILES" >/dev/null; exit 0
fi
# Every build reads its tree from the page cache: the tree is read once,
# untimed, just before (warm). Without it the first build of a tree paid its
# disk reads: a cold 50,000-file build took 5.78 CPU-s and two warm ones
# 3.37 and 3.44, and a cold million-file build 103 s against 73 s warm.
warm() { find "$(make_tree "$1")" -type f -print0 | xargs -0 -P 2 cat >/dev/null; }
# The reference build is cheap (~3 s): BENCH_REPS builds (scripts/bench-lib.sh),
# one before the million-file build and the rest after it, and the medians of
# their wall and CPU (its memory figures are the first's); the million once.
warm "$RATIO_FILES"
read -r sw sc srss slive sgc sfrac < <(build "$RATIO_FILES")
warm "$FILES"
read -r bw bc brss blive bgc bfrac < <(build "$FILES")
sws=("$sw") scs=("$sc")
for _ in $(seq 2 "$BENCH_REPS"); do
  warm "$RATIO_FILES"
  read -r w c _ < <(build "$RATIO_FILES")
  sws+=("$w") scs+=("$c")
done
sw=$(bench_median "${sws[@]}") sc=$(bench_median "${scs[@]}")
n=$(printf "%'d" "$FILES") rn=$(printf "%'d" "$RATIO_FILES")
printf '%-16s %9s %9s %10s %12s %8s %8s\n' files wall_s cpu_s peak_mib live_B/file gc_cpu_s gc_share
printf '%-16s %9s %9s %10d %12d %8.2f %8.3f\n' "$rn" "$sw" "$sc" $((srss >> 20)) $((slive / RATIO_FILES)) "$sgc" "$sfrac"
printf '%-16s %9s %9s %10d %12d %8.2f %8.3f\n' "$n" "$bw" "$bc" $((brss >> 20)) $((blive / FILES)) "$bgc" "$bfrac"
perfile=$(echo "$bc * 1000000 / $FILES" | bc -l) rperfile=$(echo "$sc * 1000000 / $RATIO_FILES" | bc -l)
echo "per-file CPU: $(printf %.1f "$perfile") us vs $(printf %.1f "$rperfile") us ($rn files): $(printf %.3f "$(echo "$perfile / $rperfile" | bc -l)")x; load $(cut -d' ' -f1-3 /proc/loadavg)"
name="$n files of 1-8 KiB, zstd-$LEVEL, ECDSA P-256"
bench_row million "$name" "peak RSS MiB" "$(echo "$brss / 1048576" | bc -l)" 512 "limit: 512 MiB" 1 \
  "live heap $((blive / FILES)) B/file at peak ($((slive / RATIO_FILES)) B/file with $rn files)"
bench_row million "$name" "CPU us per file" "$perfile" "$rperfile" "the $rn-file build's" 1.25 \
  "wall ${bw}s vs ${sw}s$([ "$BENCH_REPS" = 1 ] || echo "; the reference the median of $BENCH_REPS builds (CPU ${scs[*]} s)")"
bench_row million "$name" "GC share of CPU" "$bfrac" 1 "all CPU" 0.10 "GC $(printf %.1f "$bgc") CPU s of $(printf %.1f "$bc"); with $rn files $(printf %.3f "$sfrac")"

#!/usr/bin/env bash
# Benchmark the tar output against the SquashFS output of `imaforge build` on
# the same tree, in the same run: SquashFS zstd level 3, tar.zst level 3 and
# plain tar, every file signed (RSA-2048) and, for the tar runs, also
# EVM-signed as a tenant package would be. Reports wall and CPU seconds
# (user+sys), peak memory, output size, and the ratio of each tar run to the
# SquashFS run (goal: within 1.2x).
#
# usage: scripts/bench-tar.sh [TREE]   TREE: a directory (default: $(go env GOROOT))
# env:   RUNS=3 (the best of RUNS per variant), BENCH_DIR (scratch)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAFORGE=${IMAFORGE:-$PWD/bin/imaforge}
[ -x "$IMAFORGE" ] || make build >/dev/null
tree=${1:-$(go env GOROOT)}
tree=$(cd "$tree" && pwd)
RUNS=${RUNS:-3}
# a directory of its own under BENCH_DIR (removed at the end: BENCH_DIR may
# hold scripts/bench.sh's trees)
work=${BENCH_DIR:+$BENCH_DIR/tar}
work=${work:-$(mktemp -d "${TMPDIR:-/tmp}/imaforge-bench-tar.XXXXXX")}
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/keys"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/keys/k.key" -out "$work/keys/k.pem" -days 30 \
  -subj "/CN=bench" -addext subjectKeyIdentifier=hash -addext keyUsage=critical,digitalSignature 2>/dev/null

manifest() { # FORMAT OUTPUT EVM
  local fmtline="  compression: zstd" evm="" level="  level: 3"
  [ "$1" = squashfs ] || fmtline="  format: $1"
  [ "$1" = tar ] && level=""
  [ "$3" = evm ] && evm="    evm: true"
  cat <<EOM
version: 1
image:
  output: $2
$fmtline
$level
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
hash: sha256
keys:
  k: {cert: $work/keys/k.pem, key: $work/keys/k.key}
sources:
  - from: $tree/
    to: /
rules:
  - match: /**
    key: k
$evm
EOM
}

run() { # LABEL FORMAT EVM: prints "wall cpu peak_mib bytes" (best CPU of RUNS)
  manifest "$2" "$work/out.$1" "$3" >"$work/$1.yaml"
  local best=""
  for _ in $(seq 1 "$RUNS"); do
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$IMAFORGE" build "$work/$1.yaml" >"$work/$1.log" 2>&1 ||
      { echo "bench-tar: $1 failed" >&2; tail -5 "$work/$1.log" >&2; exit 1; }
    local r; r=$(awk -v s="$(stat -c %s "$work/out.$1")" '{ printf "%.2f %.2f %d %d\n", $1, $2 + $3, $4 / 1024, s }' "$work/time")
    if [ -z "$best" ] || awk -v a="$r" -v b="$best" 'BEGIN { split(a, x); split(b, y); exit !(x[2] < y[2]) }'; then best=$r; fi
  done
  echo "$best"
}

echo "tree: $tree ($(find "$tree" -type f | wc -l) files, $(du -sb "$tree" | cut -f1) bytes); load: $(cut -d' ' -f1-3 /proc/loadavg); runs: best CPU of $RUNS"
printf '%-22s %8s %8s %9s %12s %10s %10s\n' variant wall_s cpu_s peak_mib bytes wall/sqfs cpu/sqfs
read -r bw bc bm bb <<<"$(run sqfs squashfs no)"
printf '%-22s %8s %8s %9s %12s %10s %10s\n' "squashfs zstd-3" "$bw" "$bc" "$bm" "$bb" 1.00 1.00
for v in "tar.zst-3:tar.zst:no" "tar.zst-3+evm:tar.zst:evm" "tar:tar:no" "tar+evm:tar:evm"; do
  IFS=: read -r label format evm <<<"$v"
  read -r w c m b <<<"$(run "$label" "$format" "$evm")"
  printf '%-22s %8s %8s %9s %12s %10s %10s\n' "$label" "$w" "$c" "$m" "$b" "$(echo "scale=2; $w / $bw" | bc)" "$(echo "scale=2; $c / $bc" | bc)"
done

#!/usr/bin/env bash
# shellcheck disable=SC2154 # WALL_x, CPU_x and LOAD_x are set by name (printf -v) for each measured run
# Signing throughput: `imaforge file sign` against `evmctl ima_sign -r` on the
# same small files with the same RSA-2048 key, measured in the same run.
#
#   scripts/bench-sign.sh [N]     # N files (default 10000); run from the project root
#
# Rows (each on its own copy of the N files):
#   evmctl        evmctl ima_sign -r --key /abs/rsa2048.key -a sha256 DIR: one
#                 process walks DIR and re-reads the key for every file
#   imaforge      bin/imaforge file sign (all cores; RSA through the system
#                 libcrypto: the default cgo build)
#   purego        the same built with CGO_ENABLED=0 (crypto/rsa)
#   dedup         imaforge on N files with only N/10 distinct contents (each
#                 distinct digest is signed once)
#   sigfile       imaforge writing FILE.sig (temp file + rename) instead
# As root every row but "sigfile" writes the security.ima xattr, as evmctl
# does: with --sigfile, evmctl -r also signs the .sig files it creates while
# walking (evmctl 1.4), so its count would be off. As another user everything
# uses --sigfile and evmctl's rate counts every .sig it wrote.
#
# Besides files/s (wall clock) it prints the CPU time (user+sys) per file,
# which depends less on how loaded the machine is, and it checks that every
# imaforge row produced exactly evmctl's bytes (RSA PKCS#1 v1.5 is
# deterministic).
set -euo pipefail
N=${1:-10000}
ROOT=$(pwd)
IMAFORGE=${IMAFORGE:-$ROOT/bin/imaforge}
KEY=$ROOT/testdata/signer/keys/rsa2048.key
CERT=$ROOT/testdata/signer/keys/rsa2048.pem
for t in evmctl python3 go; do
  command -v $t >/dev/null || { echo "bench-sign: missing $t (make deps)" >&2; exit 1; }
done
[ -x "$IMAFORGE" ] || make build >/dev/null
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-sign.XXXXXX")
trap 'rm -rf "$W"' EXIT
if [ "$(id -u)" = 0 ]; then MODE=--xattr; else MODE=--sigfile; fi

echo "bench-sign: $N small files, RSA-2048, sha256, $MODE; $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg)"
python3 - "$W" "$N" <<'PY'
import os, random, sys
w, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
trees = ("evmctl", "imaforge", "purego", "sigfile")
for d in trees + ("dedup",):
    os.makedirs(os.path.join(w, d))
for i in range(n):
    data = rnd.randbytes(rnd.randrange(0, 4096))
    for d in trees:
        with open(os.path.join(w, d, "f%05d" % i), "wb") as f:
            f.write(data)
for i in range(n):  # N/10 distinct contents
    with open(os.path.join(w, "dedup", "f%05d" % i), "wb") as f:
        f.write(b"content %d\n" % (i % max(1, n // 10)))
PY
CGO_ENABLED=0 go build -trimpath -o "$W/imaforge-purego" ./cmd/imaforge

# timed NAME CMD...: runs CMD; sets WALL_NAME (s) and CPU_NAME (user+sys s)
timed() {
  local name=$1 t0 t1 TIMEFORMAT='%U %S'; shift
  t0=$(date +%s.%N)
  { time "$@" >/dev/null 2>&1; } 2>"$W/t" || { echo "bench-sign: $name failed: $*" >&2; exit 1; }
  t1=$(date +%s.%N)
  printf -v "WALL_$name" '%s' "$(python3 -c "print($t1 - $t0)")"
  printf -v "CPU_$name" '%s' "$(python3 -c "import sys; u,s=map(float,open(sys.argv[1]).read().split()); print(u+s)" "$W/t")"
}
# values DIR MODE: number of values and the sha256 of all of them in name order
values() {
  python3 - "$1" "$2" <<'PY'
import hashlib, os, sys
d, mode = sys.argv[1], sys.argv[2]
h, n = hashlib.sha256(), 0
for f in sorted(os.listdir(d)):
    if f.endswith(".sig") or f.startswith("."):
        continue
    p = os.path.join(d, f)
    try:
        v = os.getxattr(p, "security.ima") if mode == "--xattr" else open(p + ".sig", "rb").read()
    except OSError:
        continue
    h.update(v); n += 1
print(n, h.hexdigest())
PY
}

if [ "$MODE" = --xattr ]; then
  timed evmctl evmctl ima_sign -r --key "$KEY" -a sha256 "$W/evmctl"
  EVN=$N
else
  timed evmctl evmctl ima_sign -r --sigfile --key "$KEY" -a sha256 "$W/evmctl"
  EVN=$(find "$W/evmctl" -name '*.sig' | wc -l)   # includes .sig files it signed while walking
fi
timed imaforge "$IMAFORGE" file sign --key "$KEY" --cert "$CERT" $MODE "$W"/imaforge/f*
timed purego "$W/imaforge-purego" file sign --key "$KEY" --cert "$CERT" $MODE "$W"/purego/f*
timed dedup "$IMAFORGE" file sign --key "$KEY" --cert "$CERT" $MODE "$W"/dedup/f*
timed sigfile "$IMAFORGE" file sign --key "$KEY" --cert "$CERT" --sigfile "$W"/sigfile/f*

ref=$(values "$W/evmctl" "$MODE")
[ "${ref%% *}" = "$N" ] || { echo "bench-sign: evmctl signed ${ref%% *} of $N files" >&2; exit 1; }
for row in imaforge:$MODE purego:$MODE sigfile:--sigfile; do
  got=$(values "$W/${row%%:*}" "${row#*:}")
  [ "$got" = "$ref" ] || { echo "bench-sign: FAIL: ${row%%:*} values differ from evmctl's ($got vs $ref)" >&2; exit 1; }
done

python3 - "$N" "$EVN" "$WALL_evmctl" "$CPU_evmctl" "$WALL_imaforge" "$CPU_imaforge" "$WALL_purego" "$CPU_purego" \
  "$WALL_dedup" "$CPU_dedup" "$WALL_sigfile" "$CPU_sigfile" "$MODE" <<'PY'
import sys
a = sys.argv[1:]
n, evn = int(a[0]), int(a[1])
rows = [("evmctl ima_sign -r", evn, float(a[2]), float(a[3]))]
mode = a[12]
rows += [("imaforge file sign " + mode, n, float(a[4]), float(a[5])),
         ("imaforge CGO_ENABLED=0 " + mode, n, float(a[6]), float(a[7])),
         ("imaforge 10% distinct " + mode, n, float(a[8]), float(a[9])),
         ("imaforge file sign --sigfile", n, float(a[10]), float(a[11]))]
ev = evn / rows[0][2]
evcpu = rows[0][3] * 1000 / evn
print("%-34s %10s %8s %14s" % ("", "files/s", "vs evmctl", "CPU ms/file"))
for name, cnt, wall, cpu in rows:
    r = cnt / wall
    c = cpu * 1000 / cnt
    print("%-34s %10.0f %8.1fx %8.3f (%.1fx less)" % (name, r, r / ev, c, evcpu / c))
PY
echo "bench-sign: every imaforge value equals evmctl's, byte for byte ($N files)"

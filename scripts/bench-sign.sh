#!/usr/bin/env bash
# Signing throughput: `imaforge file sign` against `evmctl ima_sign -r` on the
# same small files with the same RSA-2048 key, measured in the same run.
#
#   scripts/bench-sign.sh [N]     # N files (default 10000); run from the project root
#
# Reports files/s for:
#   evmctl      evmctl ima_sign -r --key /abs/key.pem -a sha256 DIR
#               (one process walks DIR; it re-reads the key for every file). As
#               root it sets security.ima only: with --sigfile, -r also signs
#               the .sig files it creates while walking (seen with 1.4). As
#               another user it uses --sigfile and counts every .sig written.
#   imaforge    bin/imaforge file sign --sigfile (all cores; RSA through the
#               system libcrypto when built with cgo, the default)
#   purego      the same built with CGO_ENABLED=0 (crypto/rsa), for comparison
#   dedup       imaforge on N files with only N/10 distinct contents (each
#               distinct digest is signed once)
# and checks that imaforge's N signature files equal evmctl's byte for byte
# (RSA PKCS#1 v1.5 is deterministic).
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

echo "bench-sign: making $N small files in 4 trees ($(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg))"
python3 - "$W" "$N" <<'PY'
import os, random, sys
w, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(1)
for d in ("evmctl", "imaforge", "purego", "dedup"):
    os.makedirs(os.path.join(w, d))
for i in range(n):
    data = rnd.randbytes(rnd.randrange(0, 4096))
    for d in ("evmctl", "imaforge", "purego"):
        with open(os.path.join(w, d, "f%05d" % i), "wb") as f:
            f.write(data)
for i in range(n):  # dedup: N/10 distinct contents
    with open(os.path.join(w, "dedup", "f%05d" % i), "wb") as f:
        f.write(b"content %d\n" % (i % max(1, n // 10)))
PY
echo "bench-sign: building the CGO_ENABLED=0 variant"
CGO_ENABLED=0 go build -trimpath -o "$W/imaforge-purego" ./cmd/imaforge

now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.0f' % ($N / ($2 - $1)))" "$1" "$2"; }
count() { find "$1" -name '*.sig' | wc -l; }

if [ "$(id -u)" = 0 ]; then
  t0=$(now); evmctl ima_sign -r --key "$KEY" -a sha256 "$W/evmctl" >/dev/null 2>&1; t1=$(now)
  # dump the xattrs as FILE.sig for the comparison below
  n=$(python3 - "$W/evmctl" <<'PY'
import os, sys
d, n = sys.argv[1], 0
for f in os.listdir(d):
    try:
        v = os.getxattr(os.path.join(d, f), "security.ima")
    except OSError:
        continue
    open(os.path.join(d, f + ".sig"), "wb").write(v)
    n += 1
print(n)
PY
)
  [ "$n" -eq "$N" ] || { echo "bench-sign: evmctl signed $n of $N files" >&2; exit 1; }
  ev=$(rate "$t0" "$t1")
else
  t0=$(now); evmctl ima_sign -r --sigfile --key "$KEY" -a sha256 "$W/evmctl" >/dev/null 2>&1; t1=$(now)
  n=$(count "$W/evmctl")   # includes .sig files it signed while walking
  ev=$(python3 -c "import sys; print('%.0f' % ($n / ($t1 - $t0)))")
fi

t0=$(now); "$IMAFORGE" file sign --key "$KEY" --cert "$CERT" --sigfile "$W"/imaforge/f* >/dev/null; t1=$(now)
[ "$(count "$W/imaforge")" -eq "$N" ] || { echo "bench-sign: imaforge signed $(count "$W/imaforge") of $N files" >&2; exit 1; }
im=$(rate "$t0" "$t1")

t0=$(now); "$W/imaforge-purego" file sign --key "$KEY" --cert "$CERT" --sigfile "$W"/purego/f* >/dev/null; t1=$(now)
pg=$(rate "$t0" "$t1")

t0=$(now); "$IMAFORGE" file sign --key "$KEY" --cert "$CERT" --sigfile "$W"/dedup/f* >/dev/null; t1=$(now)
dd=$(rate "$t0" "$t1")

# Same bytes as evmctl for every file.
a=$(cat "$W"/evmctl/f?????.sig | sha256sum) b=$(cat "$W"/imaforge/f*.sig | sha256sum) c=$(cat "$W"/purego/f*.sig | sha256sum)
if [ "$a" != "$b" ] || [ "$a" != "$c" ]; then
  echo "bench-sign: FAIL: imaforge's signatures differ from evmctl's" >&2; exit 1
fi

ratio() { python3 -c "import sys; print('%.1f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
printf '%-34s %8s files/s\n' "evmctl ima_sign -r" "$ev"
printf '%-34s %8s files/s  (%sx evmctl)\n' "imaforge file sign (libcrypto)" "$im" "$(ratio "$im" "$ev")"
printf '%-34s %8s files/s  (%sx evmctl)\n' "imaforge file sign (CGO_ENABLED=0)" "$pg" "$(ratio "$pg" "$ev")"
printf '%-34s %8s files/s  (%sx evmctl)\n' "imaforge, 10% distinct contents" "$dd" "$(ratio "$dd" "$ev")"
echo "bench-sign: all $N signatures identical to evmctl's"

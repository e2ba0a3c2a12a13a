#!/usr/bin/env bash
# make release-test: make the release with a throwaway key, then check it as
# a user would (docs/release.md):
#   - SHA256SUMS and every .sig verify; a changed byte fails both;
#   - each binary needs no shared library but glibc's;
#   - in a clean Debian 12 (minbase) chroot, which has no -dev package, the
#     release binary runs and builds a compressed image with its statically
#     linked codecs, and the Dockerfile's RUN line installs the .deb, which
#     puts imaforge, its man pages and its completions in place;
#   - the arm64 binary runs under qemu-aarch64 (when built).
# The chroot comes from debootstrap (deb.debian.org) once, then from
# .cache/release/debian12-minbase.tar.zst.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_CFLAGS=${CGO_CFLAGS:--O3}

fail() { echo "release-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (chroot)"

work=$(mktemp -d /var/tmp/imaforge-release-test.XXXXXX)
root=$work/root
cleanup() {
  for m in proc dev; do mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The release, signed with a throwaway Ed25519 key.
openssl genpkey -algorithm ed25519 -out "$work/key.pem" 2>/dev/null
openssl pkey -in "$work/key.pem" -pubout -out "$work/pub.pem"
RELEASE_SIGNING_KEY=$work/key.pem RELEASE_DIR=$work/dist scripts/release.sh
dist=$work/dist

# 2. Checksums and signatures, and that they can fail.
(cd "$dist" && sha256sum --quiet -c SHA256SUMS) || fail "SHA256SUMS does not verify"
n=0
for f in "$dist"/*; do
  case $f in *.sig) continue ;; esac
  openssl pkeyutl -verify -pubin -inkey "$work/pub.pem" -rawin -in "$f" -sigfile "$f.sig" >/dev/null ||
    fail "$(basename "$f").sig does not verify"
  n=$((n + 1))
done
deb=$(ls "$dist"/imaforge_*_amd64.deb)
cp "$deb" "$work/tampered.deb"
printf '\x00' | dd of="$work/tampered.deb" bs=1 seek=100 conv=notrunc status=none
if openssl pkeyutl -verify -pubin -inkey "$work/pub.pem" -rawin -in "$work/tampered.deb" -sigfile "$deb.sig" >/dev/null 2>&1; then
  fail "a changed .deb still verifies"
fi
(cd "$work" && sed "s|$(basename "$deb")|tampered.deb|" "$dist/SHA256SUMS" | grep tampered.deb | sha256sum --quiet -c - 2>/dev/null) &&
  fail "a changed .deb still matches SHA256SUMS"
echo "release-test: $n signatures and SHA256SUMS verify; a changed byte fails both"

# 3. The chroot: a clean Debian 12, cached.
cache=.cache/release/debian12-minbase.tar.zst
mkdir -p "$root" .cache/release
if [ ! -s "$cache" ]; then
  echo "release-test: debootstrap --variant=minbase bookworm (once; cached in $cache)"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -6 > "$cache.tmp" && mv "$cache.tmp" "$cache"
else
  zstd -dc "$cache" | tar -C "$root" --numeric-owner -xf -
fi
if chroot "$root" dpkg-query -W -f '${Package}\n' | grep -- '-dev$'; then
  fail "the chroot has -dev packages"
fi
for h in /usr/include/zlib.h /usr/include/lzma.h /usr/include/lz4.h /usr/include/openssl/evp.h; do
  [ ! -e "$root$h" ] || fail "the chroot has $h"
done
mount -t proc proc "$root/proc"

# 4. The bare binary in the chroot: version, and a zstd and an xz image.
bin=$(ls "$dist"/imaforge-*-linux-amd64)
install -m 0755 "$bin" "$root/usr/local/bin/imaforge-bare"
chroot "$root" /usr/local/bin/imaforge-bare version | grep -q '^imaforge ' || fail "the bare binary does not run in the chroot"
chroot "$root" /bin/sh -ec '
  cd /tmp && imaforge-bare init proj >/dev/null
  cd proj && sed -i "s/^\(  *compression:\).*/\1 xz/" firmware.yaml
  grep -q "compression: xz" firmware.yaml || { echo "no compression line in the starter manifest"; exit 1; }
  imaforge-bare build --quiet firmware.yaml
' || fail "the bare binary cannot build an image in the chroot"
rec=$(ls "$root"/tmp/proj/out/*.record.json 2>/dev/null | head -1)
[ -n "$rec" ] || rec=$(find "$root/tmp/proj" -name '*.record.json' | head -1)
grep -q '"library": "liblzma"' "$rec" && grep -q '"linkage": "static"' "$rec" ||
  fail "the record does not name liblzma linked statically: $(grep -A4 '"codec"' "$rec")"
echo "release-test: the release binary runs in a clean Debian 12 and builds an xz image ($(grep -A3 '"codec"' "$rec" | tr -d ' \n'))"
rm "$root/usr/local/bin/imaforge-bare"

# 5. The Dockerfile's RUN line installs the .deb in the chroot.
debversion=$(basename "$deb" | sed 's/^imaforge_\(.*\)_amd64\.deb$/\1/')
src=$(sed -n 's/^COPY \(.*\) \/tmp\/imaforge.deb$/\1/p' Dockerfile)
src=${src//\$\{VERSION\}/$debversion}
src=${src//\$\{TARGETARCH\}/amd64}
[ "$src" = "dist/$(basename "$deb")" ] || fail "the Dockerfile copies $src, the release is dist/$(basename "$deb")"
cp "$deb" "$root/tmp/imaforge.deb"
run=$(sed -n 's/^RUN //p' Dockerfile)
chroot "$root" /bin/sh -ec "$run" || fail "the Dockerfile's RUN line fails in the chroot"
chroot "$root" imaforge version | grep -q "^imaforge " || fail "imaforge version"
files=$(chroot "$root" dpkg -L imaforge)
for f in /usr/bin/imaforge /usr/share/man/man1/imaforge.1.gz /usr/share/man/man1/imaforge-build.1.gz \
  /usr/share/bash-completion/completions/imaforge /usr/share/zsh/vendor-completions/_imaforge \
  /usr/share/fish/vendor_completions.d/imaforge.fish /usr/share/doc/imaforge/copyright; do
  grep -qx "$f" <<<"$files" || fail "the .deb does not install $f"
  [ -s "$root$f" ] || fail "$f is empty"
done
chroot "$root" dpkg -r imaforge >/dev/null
[ ! -e "$root/usr/bin/imaforge" ] || fail "dpkg -r left /usr/bin/imaforge"
echo "release-test: the .deb installs (the Dockerfile's RUN line) in a clean Debian 12; imaforge version runs; dpkg -r removes it"

# 6. arm64, when built: it runs under qemu-user.
if arm=$(ls "$dist"/imaforge-*-linux-arm64 2>/dev/null); then
  command -v qemu-aarch64 >/dev/null || fail "qemu-aarch64 missing (qemu-user; scripts/install-deps.sh)"
  timeout 300 qemu-aarch64 -L /usr/aarch64-linux-gnu "$arm" version | grep -q '^imaforge ' ||
    fail "the arm64 binary does not run under qemu-aarch64 (within 300 s)"
  dpkg-deb -I "$dist"/imaforge_*_arm64.deb | grep -q 'Architecture: arm64' || fail "arm64 .deb"
  echo "release-test: the arm64 binary runs under qemu-aarch64"
fi
echo "release-test: OK"

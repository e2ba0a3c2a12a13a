#!/usr/bin/env bash
# make release-test: make the release with a throwaway key, then check it as
# a user would (docs/release.md):
#   - SHA256SUMS and every .sig verify; a changed byte fails both;
#   - each binary needs no shared library but glibc's;
#   - for each architecture built (RELEASE_ARCHES, "amd64 arm64" by
#     default), in a clean Debian 12 (minbase) chroot of that architecture,
#     which has no -dev package, the release binary runs and builds a
#     compressed image with its statically linked codecs, and the
#     Dockerfile's RUN line installs the .deb, which puts imaforge, its man
#     pages and its completions in place; the arm64 chroot runs under
#     qemu-user (qemu-aarch64-static, registered with binfmt_misc for the
#     run), and its image is byte for byte the one the amd64 binary builds.
# Each chroot comes from debootstrap (deb.debian.org) once, then from
# .cache/release/debian12[-ARCH]-minbase.tar.zst.
set -euo pipefail
cd "$(dirname "$0")/.."
export CGO_CFLAGS=${CGO_CFLAGS:--O3}

fail() { echo "release-test: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (chroot)"
ARCHES=${RELEASE_ARCHES:-amd64 arm64}
export RELEASE_ARCHES=$ARCHES

work=$(mktemp -d /var/tmp/imaforge-release-test.XXXXXX)
binfmt=/proc/sys/fs/binfmt_misc
binfmt_entry=""
cleanup() {
  # Every process still running in one of our chroots is ours (an emulated
  # one is a qemu-aarch64-static process); it ignores no SIGKILL.
  local p
  for p in /proc/[0-9]*; do
    case $(readlink "$p/root" 2>/dev/null) in "$work"/root-*) kill -KILL "${p#/proc/}" 2>/dev/null || true ;; esac
  done
  for r in "$work"/root-*; do
    for m in proc dev; do mountpoint -q "$r/$m" 2>/dev/null && umount -l "$r/$m"; done
  done
  if [ -n "$binfmt_entry" ] && [ -e "$binfmt/$binfmt_entry" ]; then echo -1 > "$binfmt/$binfmt_entry"; fi
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
deb=$(find "$dist" -maxdepth 1 -name 'imaforge_*.deb' | LC_ALL=C sort | head -1)
cp "$deb" "$work/tampered.deb"
printf '\x00' | dd of="$work/tampered.deb" bs=1 seek=100 conv=notrunc status=none
if openssl pkeyutl -verify -pubin -inkey "$work/pub.pem" -rawin -in "$work/tampered.deb" -sigfile "$deb.sig" >/dev/null 2>&1; then
  fail "a changed .deb still verifies"
fi
(cd "$work" && sed "s|$(basename "$deb")|tampered.deb|" "$dist/SHA256SUMS" | grep tampered.deb | sha256sum --quiet -c - >/dev/null 2>&1) &&
  fail "a changed .deb still matches SHA256SUMS"
echo "release-test: $n signatures and SHA256SUMS verify; a changed byte fails both"

# binfmt_aarch64: the kernel runs aarch64 ELF files with
# qemu-aarch64-static, for this run only (flag F: the interpreter is opened
# now, so it works inside a chroot that lacks it). binfmt_misc is mounted if
# it is not (as systemd does at boot, and left so); the entry, named for this
# run and newest so it is the one that matches, is removed at exit.
binfmt_aarch64() {
  local qemu=/usr/bin/qemu-aarch64-static
  [ -x "$qemu" ] || fail "$qemu missing (qemu-user-static; scripts/install-deps.sh)"
  mountpoint -q "$binfmt" || mount -t binfmt_misc binfmt_misc "$binfmt" ||
    fail "cannot mount binfmt_misc on $binfmt: the arm64 chroot needs it (docs/release.md)"
  binfmt_entry=imaforge-release-test-$$
  printf ':%s:M::%s:%s:%s:F' "$binfmt_entry" \
    '\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00' \
    '\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff' \
    "$qemu" > "$binfmt/register" || fail "cannot register qemu-aarch64-static with binfmt_misc"
}

# chroot_for ARCH: a clean Debian 12 minbase of ARCH in $work/root-ARCH,
# from the cache or debootstrap (once; for arm64 its second stage runs
# under qemu-user, about 3 CPU minutes).
chroot_for() {
  local arch=$1 root=$work/root-$1 cache
  cache=.cache/release/debian12-minbase.tar.zst
  [ "$arch" = amd64 ] || cache=.cache/release/debian12-$arch-minbase.tar.zst
  mkdir -p "$root" .cache/release
  if [ ! -s "$cache" ]; then
    echo "release-test: debootstrap --arch=$arch --variant=minbase bookworm (once; cached in $cache)"
    timeout -s KILL 2400 debootstrap --arch="$arch" --variant=minbase bookworm "$root" http://deb.debian.org/debian \
      >"$work/debootstrap-$arch.log" 2>&1 ||
      { tail -20 "$work/debootstrap-$arch.log"; fail "debootstrap $arch"; }
    tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -6 > "$cache.tmp" && mv "$cache.tmp" "$cache"
  else
    zstd -dc "$cache" | tar -C "$root" --numeric-owner -xf -
  fi
  [ "$(chroot "$root" dpkg --print-architecture)" = "$arch" ] || fail "the $arch chroot is not $arch"
  # shellcheck disable=SC2016 # ${Package} is dpkg-query's format, not the shell's
  if chroot "$root" dpkg-query -W -f '${Package}\n' | grep -- '-dev$'; then
    fail "the $arch chroot has -dev packages"
  fi
  local h
  for h in /usr/include/libdeflate.h /usr/include/lzma.h /usr/include/lz4.h /usr/include/openssl/evp.h; do
    [ ! -e "$root$h" ] || fail "the $arch chroot has $h"
  done
  mount -t proc proc "$root/proc"
}

# check ARCH: the release binary and .deb of ARCH in its clean chroot.
check() {
  local arch=$1 root=$work/root-$1 bin deb
  bin=$(ls "$dist"/imaforge-*-linux-"$arch")
  deb=$(ls "$dist"/imaforge_*_"$arch".deb)

  # The bare binary: version, init, and an xz image.
  install -m 0755 "$bin" "$root/usr/local/bin/imaforge-bare"
  chroot "$root" /usr/local/bin/imaforge-bare version | grep -q '^imaforge ' || fail "the bare $arch binary does not run in the chroot"
  chroot "$root" /bin/sh -ec '
    cd /tmp && imaforge-bare init proj >/dev/null
    cd proj && sed -i "s/^\(  *compression:\).*/\1 xz/" firmware.yaml
    grep -q "compression: xz" firmware.yaml || { echo "no compression line in the starter manifest"; exit 1; }
    imaforge-bare build --quiet firmware.yaml
  ' || fail "the bare $arch binary cannot build an image in the chroot"
  # Reading it back checks every file's signature with this architecture's
  # reader (pure Go: the vendored liblzma 5.8.3 decoder, internal/xzdec,
  # runs only for the block cache's hits, which this does not reach).
  chroot "$root" /bin/sh -ec '
    cd /tmp/proj && imaforge-bare verify --trust-manifest firmware.yaml out/firmware.sqsh | tail -1 | grep -qx "result: OK"
  ' || fail "the bare $arch binary cannot verify the xz image it built"
  # Built again from a block cache: every hit is checked by decoding it with
  # the vendored liblzma 5.8.3 decoder (internal/xzdec) built for this
  # architecture; none may be damaged and the image is the cold one.
  chroot "$root" /bin/sh -ec '
    cd /tmp/proj && cp out/firmware.sqsh /tmp/cold.sqsh
    imaforge-bare build --cache /tmp/blockcache firmware.yaml >/dev/null 2>&1
    imaforge-bare build --cache /tmp/blockcache firmware.yaml >/tmp/warm.txt 2>&1
    grep -q "block cache /tmp/blockcache/blocks: [1-9][0-9]* reused, [0-9]* compressed (0 damaged" /tmp/warm.txt
    cmp out/firmware.sqsh /tmp/cold.sqsh
  ' || fail "the bare $arch binary's xz rebuild from its block cache differs or found damaged blocks"
  local rec
  rec=$(find "$root/tmp/proj" -name '*.record.json' | head -1)
  [ -n "$rec" ] || fail "no build record in the $arch chroot"
  if ! grep -q '"library": "liblzma"' "$rec" || ! grep -q '"linkage": "static"' "$rec"; then
    fail "the $arch record does not name liblzma linked statically: $(grep -A4 '"codec"' "$rec")"
  fi
  echo "release-test: the $arch release binary runs in a clean Debian 12 $arch and builds an xz image ($(grep -A3 '"codec"' "$rec" | tr -d ' \n')), which it verifies and builds again from its block cache"
  rm "$root/usr/local/bin/imaforge-bare"

  # The Dockerfile's RUN line installs the .deb.
  local debversion src run files f
  debversion=$(basename "$deb" | sed "s/^imaforge_\(.*\)_$arch\.deb\$/\1/")
  src=$(sed -n 's/^COPY \(.*\) \/tmp\/imaforge.deb$/\1/p' Dockerfile)
  src=${src//\$\{VERSION\}/$debversion}
  src=${src//\$\{TARGETARCH\}/$arch}
  [ "$src" = "dist/$(basename "$deb")" ] || fail "the Dockerfile copies $src, the release is dist/$(basename "$deb")"
  cp "$deb" "$root/tmp/imaforge.deb"
  run=$(sed -n 's/^RUN //p' Dockerfile)
  chroot "$root" /bin/sh -ec "$run" || fail "the Dockerfile's RUN line fails in the $arch chroot"
  chroot "$root" imaforge version | grep -q "^imaforge " || fail "imaforge version ($arch)"
  files=$(chroot "$root" dpkg -L imaforge)
  for f in /usr/bin/imaforge /usr/share/man/man1/imaforge.1.gz /usr/share/man/man1/imaforge-build.1.gz \
    /usr/share/bash-completion/completions/imaforge /usr/share/zsh/vendor-completions/_imaforge \
    /usr/share/fish/vendor_completions.d/imaforge.fish /usr/share/doc/imaforge/copyright; do
    grep -qx "$f" <<<"$files" || fail "the $arch .deb does not install $f"
    [ -s "$root$f" ] || fail "$f is empty ($arch)"
  done
  chroot "$root" dpkg -r imaforge >/dev/null
  [ ! -e "$root/usr/bin/imaforge" ] || fail "dpkg -r left /usr/bin/imaforge ($arch)"
  echo "release-test: the $arch .deb installs (the Dockerfile's RUN line) in a clean Debian 12 $arch; imaforge version runs; dpkg -r removes it"
}

# 3. Each architecture in its own clean Debian 12.
for arch in $ARCHES; do
  [ "$arch" = amd64 ] || [ -n "$binfmt_entry" ] || binfmt_aarch64
  chroot_for "$arch"
  check "$arch"
done

# 4. One build, one image: the project the arm64 binary built (its keys
# included: RSA signatures are deterministic), built again by the amd64
# binary, gives the same image bytes.
if [[ " $ARCHES " == *" arm64 "* && " $ARCHES " == *" amd64 "* ]]; then
  cp -a "$work/root-arm64/tmp/proj" "$work/proj-again"
  rm -rf "$work/proj-again/out"
  amd64bin=$(ls "$dist"/imaforge-*-linux-amd64)
  (cd "$work/proj-again" && "$amd64bin" build --quiet firmware.yaml) ||
    fail "the amd64 binary cannot build the arm64 chroot's project"
  cmp "$work/root-arm64/tmp/proj/out/firmware.sqsh" "$work/proj-again/out/firmware.sqsh" ||
    fail "the arm64 and amd64 release binaries build different images from the same inputs"
  echo "release-test: the arm64 and amd64 release binaries build the same image bytes ($(sha256sum < "$work/proj-again/out/firmware.sqsh" | cut -c1-16))"
  # gzip's encoder (libdeflate) has code for each architecture: the same
  # tree packed at gzip by both binaries gives the same bytes too.
  install -m 0755 "$(ls "$dist"/imaforge-*-linux-arm64)" "$work/root-arm64/usr/local/bin/imaforge-arm64"
  chroot "$work/root-arm64" imaforge-arm64 squashfs pack -q --comp gzip --epoch 0 --all-root /tmp/proj /tmp/proj-gzip.sqsh ||
    fail "the arm64 binary cannot pack a gzip image"
  "$amd64bin" squashfs pack -q --comp gzip --epoch 0 --all-root "$work/root-arm64/tmp/proj" "$work/proj-gzip.sqsh" ||
    fail "the amd64 binary cannot pack a gzip image"
  cmp "$work/root-arm64/tmp/proj-gzip.sqsh" "$work/proj-gzip.sqsh" ||
    fail "the arm64 and amd64 release binaries pack different gzip images from the same tree"
  echo "release-test: the arm64 and amd64 release binaries pack the same gzip image bytes ($(sha256sum < "$work/proj-gzip.sqsh" | cut -c1-16))"
fi
echo "release-test: OK"

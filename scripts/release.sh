#!/usr/bin/env bash
# make release: the release artifacts of imaforge in dist/ (docs/release.md).
#
#   imaforge-VERSION-linux-ARCH          the binary: cgo, with libdeflate, liblzma,
#                                        liblz4 and libcrypto linked in
#                                        statically (libzstd is bundled by
#                                        github.com/DataDog/zstd) and glibc
#                                        shared, so PKCS#11 modules still load
#   imaforge_DEBVERSION_ARCH.deb         the binary, man pages, completions
#   SHA256SUMS                           sha256sum of every artifact
#   FILE.sig                             Ed25519 signature of each file above
#                                        and of SHA256SUMS (openssl pkeyutl)
#
# Environment:
#   RELEASE_ARCHES       "amd64 arm64" (default); arm64 is cross-compiled
#                        (gcc-aarch64-linux-gnu, the :arm64 -dev packages)
#   RELEASE_SIGNING_KEY  the Ed25519 private key (PEM) that signs; required
#   RELEASE_DIR          output directory (default dist)
#   VERSION, COMMIT      as the Makefile sets them
#   SOURCE_DATE_EPOCH    file times in the .deb (default: the commit's time)
set -euo pipefail
cd "$(dirname "$0")/.."

ARCHES=${RELEASE_ARCHES:-amd64 arm64}
OUT=${RELEASE_DIR:-dist}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
COMMIT=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
export CGO_CFLAGS=${CGO_CFLAGS:--O3}
GO=${GO:-go}

die() { echo "release: $*" >&2; exit 1; }
key=${RELEASE_SIGNING_KEY:-}
[ -n "$key" ] || die "RELEASE_SIGNING_KEY is not set: name the Ed25519 release key (PEM) that signs the artifacts (docs/release.md)"
[ -r "$key" ] || die "RELEASE_SIGNING_KEY $key: not readable"
openssl pkey -in "$key" -noout -text 2>/dev/null | grep -q '^ED25519 Private-Key' ||
  die "RELEASE_SIGNING_KEY $key: not an Ed25519 private key in PEM"

# A Debian version must start with a digit: v1.2.3 -> 1.2.3, a bare commit
# (no tag yet) -> 0.0~git<hash>, -dirty -> +dirty.
debversion() {
  local v=${1#v}
  v=${v/-dirty/+dirty}
  if [[ ! $v =~ ^[0-9] ]] || [[ ${v%+dirty} =~ ^[0-9a-f]{7,40}$ && ! ${v%+dirty} =~ ^[0-9.]+$ ]]; then
    v="0.0~git$v"
  fi
  echo "${v//-/.}"
}
DEBVERSION=$(debversion "$VERSION")

triplet() { case $1 in amd64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; *) die "unsupported arch $1" ;; esac; }
host=$($GO env GOHOSTARCH)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"

build() { # arch -> $OUT/imaforge-VERSION-linux-arch
  local arch=$1 tri cc static bin
  tri=$(triplet "$arch")
  cc=gcc
  [ "$arch" = "$host" ] || cc=$tri-gcc
  command -v "$cc" >/dev/null || die "$cc not found (scripts/install-deps.sh installs the cross compiler)"
  # Only the static archives in a directory searched first: ld then takes
  # libdeflate.a for -ldeflate instead of libdeflate.so (glibc stays shared: a static glibc
  # cannot dlopen PKCS#11 modules).
  static=$work/static-$arch
  mkdir -p "$static"
  for lib in deflate lzma lz4 crypto; do
    [ -e "/usr/lib/$tri/lib$lib.a" ] || die "/usr/lib/$tri/lib$lib.a missing (the $arch -dev package; scripts/install-deps.sh)"
    ln -s "/usr/lib/$tri/lib$lib.a" "$static/lib$lib.a"
  done
  bin=$OUT/imaforge-$VERSION-linux-$arch
  echo "release: building $bin"
  # Native: the -L goes to the final link only (-extldflags), so the cgo
  # packages compile as in make build and come from the Go build cache.
  # Cross: pkg-config gives -L/usr/lib/TRIPLET for the target's libcrypto,
  # which would precede ours and link libcrypto.so, and the go command does
  # not key its cache on pkg-config's output; so the -L goes first, in
  # CGO_LDFLAGS (a fixed path, to keep the cache), and pkg-config is told
  # that directory is a system one.
  local benv=(CGO_ENABLED=1 GOOS=linux GOARCH="$arch")
  if [ "$arch" != "$host" ]; then
    local fixed=$PWD/.cache/release/static-$arch
    mkdir -p "$fixed"
    rm -f "$fixed"/*.a
    for lib in deflate lzma lz4 crypto; do ln -sfn "/usr/lib/$tri/lib$lib.a" "$fixed/lib$lib.a"; done
    benv+=(CC="$cc" CGO_LDFLAGS="-L$fixed" PKG_CONFIG_LIBDIR="/usr/lib/$tri/pkgconfig:/usr/share/pkgconfig"
      PKG_CONFIG_SYSTEM_LIBRARY_PATH="/usr/lib/$tri")
  fi
  env "${benv[@]}" "$GO" build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT -linkmode=external '-extldflags=-L$static'" \
    -o "$bin" ./cmd/imaforge
  # Self-contained: the only shared libraries are glibc's.
  local needed
  needed=$(readelf -dW "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
  for n in $needed; do
    case $n in libc.so.6 | libm.so.6 | ld-linux-*.so.* | libresolv.so.2) ;; *) die "$bin needs $n: not self-contained" ;; esac
  done
  echo "release: $bin needs only: $needed"
}

# libc6 (>= the newest GLIBC_x.y symbol version the binary uses).
glibc_min() {
  readelf -W --dyn-syms "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1
}

deb() { # arch
  local arch=$1 bin root size
  bin=$OUT/imaforge-$VERSION-linux-$arch
  root=$work/deb-$arch
  install -D -m 0755 "$bin" "$root/usr/bin/imaforge"
  # Man pages and completions come from the CLI itself (the host build).
  local hostbin=$OUT/imaforge-$VERSION-linux-$host
  [ -x "$hostbin" ] || hostbin=$work/imaforge-host
  if [ ! -x "$hostbin" ]; then
    $GO build -trimpath -o "$hostbin" ./cmd/imaforge
  fi
  mkdir -p "$root/usr/share/man/man1"
  "$hostbin" man "$work/man-$arch"
  for f in "$work/man-$arch"/*.1; do gzip -9 -n -c "$f" > "$root/usr/share/man/man1/$(basename "$f").gz"; done
  install -d "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
    "$root/usr/share/fish/vendor_completions.d" "$root/usr/share/doc/imaforge"
  "$hostbin" completion bash > "$root/usr/share/bash-completion/completions/imaforge"
  "$hostbin" completion zsh > "$root/usr/share/zsh/vendor-completions/_imaforge"
  "$hostbin" completion fish > "$root/usr/share/fish/vendor_completions.d/imaforge.fish"
  {
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: imaforge"
    echo
    echo "Files: *"
    echo "License: Apache-2.0"
    echo " The binary links libdeflate (MIT), liblzma (0BSD/public domain), liblz4 (BSD-2-Clause),"
    echo " libzstd (BSD-3-Clause, via github.com/DataDog/zstd) and OpenSSL libcrypto (Apache-2.0)."
    echo
    sed 's/^$/./; s/^/ /' LICENSE
  } > "$root/usr/share/doc/imaforge/copyright"
  size=$(du -sk --apparent-size "$root/usr" | cut -f1)
  mkdir -p "$root/DEBIAN"
  cat > "$root/DEBIAN/control" <<EOF
Package: imaforge
Version: $DEBVERSION
Architecture: $arch
Maintainer: imaforge maintainers <imaforge@invalid>
Installed-Size: $size
Depends: libc6 (>= $(glibc_min "$bin"))
Section: admin
Priority: optional
Description: signed, reproducible SquashFS images for Linux IMA/EVM
 imaforge builds SquashFS and tar images whose files carry security.ima
 (and security.evm) signatures that a Linux kernel with IMA appraisal
 accepts, with a PKI of manufacturer, owner and tenant keys, an offline
 HSM ceremony, verify, dm-verity and CMS image signatures.
EOF
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "$OUT/imaforge_${DEBVERSION}_$arch.deb" >/dev/null
  echo "release: $OUT/imaforge_${DEBVERSION}_$arch.deb (Depends: libc6 >= $(glibc_min "$bin"))"
}

# The host architecture first: its binary makes the man pages.
ordered=$(for a in $ARCHES; do [ "$a" = "$host" ] && echo "$a"; done; for a in $ARCHES; do [ "$a" = "$host" ] || echo "$a"; done)
for arch in $ordered; do
  build "$arch"
done
for arch in $ordered; do
  deb "$arch"
done

# Checksums, then an Ed25519 signature of each file (deterministic: the same
# key and bytes give the same signature).
# shellcheck disable=SC2094 # find leaves SHA256SUMS out of the list it hashes
(cd "$OUT" && find . -maxdepth 1 -type f ! -name SHA256SUMS ! -name '*.sig' -printf '%f\n' | LC_ALL=C sort |
  xargs sha256sum > SHA256SUMS)
for f in "$OUT"/*; do
  case $f in *.sig) continue ;; esac
  openssl pkeyutl -sign -rawin -inkey "$key" -in "$f" -out "$f.sig"
done
openssl pkey -in "$key" -pubout -out "$work/release.pub.pem"
echo "release: signed with the key whose public half is:"
cat "$work/release.pub.pem"
echo "release: $(find "$OUT" -maxdepth 1 -type f | wc -l) files in $OUT"

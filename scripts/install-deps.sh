#!/usr/bin/env bash
# Install what imaforge's tests need, idempotently. On Debian as root it
# installs the missing packages; as any other user it names them and fails.
set -euo pipefail

# package:command-that-proves-it-is-installed
PKGS=(
  ima-evm-utils:evmctl
  squashfs-tools:mksquashfs
  squashfs-tools-ng:sqfs2tar
  libarchive-tools:bsdtar
  e2fsprogs:mkfs.ext4
  softhsm2:softhsm2-util
  opensc:pkcs11-tool
  keyutils:keyctl
  attr:getfattr
  openssl:openssl
  libssl-dev:/usr/include/openssl/evp.h
  libdeflate-dev:/usr/include/libdeflate.h
  liblzma-dev:/usr/include/lzma.h
  liblz4-dev:/usr/include/lz4hc.h
  gcc:gcc
  pkg-config:pkg-config
  libc6-dev:/usr/lib/x86_64-linux-gnu/libc.a
  linux-libc-dev:/usr/include/linux/dm-ioctl.h
  python3:python3
  qemu-system-x86:qemu-system-x86_64
  busybox-static:/bin/busybox
  cpio:cpio
  zstd:zstd
  xz-utils:xz
  cryptsetup-bin:veritysetup
  rauc:rauc
  util-linux:setpriv
  hyperfine:hyperfine
  bc:bc
  time:/usr/bin/time
  zsh:zsh
  fish:fish
  swtpm:swtpm
  swtpm-tools:swtpm_setup
  tpm2-tools:tpm2_quote
  libtss2-tcti-swtpm0:/usr/lib/x86_64-linux-gnu/libtss2-tcti-swtpm.so.0
  libtss2-tcti-device0:/usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0
  # keys held in a TPM, as a PKCS#11 token (docs/keys.md)
  libtpm2-pkcs11-1:/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so
  libtpm2-pkcs11-tools:tpm2_ptool
  tpm2-abrmd:tpm2-abrmd
  libtss2-tcti-tabrmd0:/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0
  dbus-daemon:dbus-daemon
  xxd:xxd
  jq:jq
  shellcheck:shellcheck
  # the second judge kernel of the e2e (scripts/kernel-e2e/build-kernel.sh)
  linux-source-6.1:/usr/src/linux-source-6.1.tar.xz
  flex:flex
  bison:bison
  libelf-dev:/usr/include/libelf.h
  # make release and release-test (docs/release.md): the arm64 cross build
  # (its static libraries via Debian multiarch), debootstrap for the clean
  # Debian 12 chroots the .debs are installed in, and qemu-user-static to
  # run the arm64 one (registered with binfmt_misc by release-test.sh)
  debootstrap:debootstrap
  gcc-aarch64-linux-gnu:aarch64-linux-gnu-gcc
  libc6-dev-arm64-cross:/usr/aarch64-linux-gnu/lib/libc.so
  qemu-user-static:qemu-aarch64-static
  libdeflate-dev:arm64:/usr/lib/aarch64-linux-gnu/libdeflate.a
  liblzma-dev:arm64:/usr/lib/aarch64-linux-gnu/liblzma.a
  liblz4-dev:arm64:/usr/lib/aarch64-linux-gnu/liblz4.a
  libssl-dev:arm64:/usr/lib/aarch64-linux-gnu/libcrypto.a
)

missing=()
for entry in "${PKGS[@]}"; do
  # package[:arch]:probe (the probe is a command or an absolute path)
  pkg=${entry%:*} probe=${entry##*:}
  if [[ $probe == /* ]]; then
    [ -e "$probe" ] || missing+=("$pkg")
  else
    command -v "$probe" >/dev/null 2>&1 || missing+=("$pkg")
  fi
done

# staticcheck for make lint, from the Go module proxy (v0.8 knows Go 1.26).
staticcheck_version=v0.8.2
if [ ! -x "$(go env GOPATH)/bin/staticcheck" ] || ! "$(go env GOPATH)/bin/staticcheck" -version 2>/dev/null | grep -q "${staticcheck_version#v}"; then
  echo "install-deps: go install honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
  GOFLAGS="" go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all test dependencies present"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: missing packages: ${missing[*]}" >&2
  echo "install-deps: as root on Debian run: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# apt verifies indexes as the _apt user in $TMPDIR: /tmp must be sticky and
# world-writable for that, which some containers' /tmp is not.
if [ ! -k "${TMPDIR:-/tmp}" ]; then export TMPDIR=/var/tmp; fi
if [[ " ${missing[*]}" == *:arm64* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

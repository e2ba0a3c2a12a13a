#!/usr/bin/env bash
# Builds the second judge kernel of the e2e (issue 23): Debian's own
# linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz, from the Debian package)
# configured as `make allnoconfig` + judge-kernel.config, which adds what the
# e2e needs and CONFIG_IMA_WRITE_POLICY / CONFIG_IMA_READ_POLICY, everything
# built in. The bzImage is cached under
#   $KERNEL_BUILD_CACHE/<key>/bzImage   (default .cache/kernel-build)
# where <key> hashes the source package's version, the config fragment and
# this script; a cached key is not built again.
#
#   scripts/kernel-e2e/build-kernel.sh          # prints the bzImage path (last line)
#   scripts/kernel-e2e/build-kernel.sh --key    # prints the key only
#
# The build runs under `nice -n 19` with KERNEL_BUILD_JOBS jobs (default: the
# number of CPUs). Its wall and CPU time go to <key>/build-time.
# Exit status: 0 ok (path printed), 1 build failure, 3 missing source or tools
# (the caller decides whether that is a skip or, under CI=true, a failure).
set -Eeuo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${KERNEL_BUILD_CACHE:-$ROOT/.cache/kernel-build}
FRAG=$HERE/judge-kernel.config
SRCPKG=linux-source-6.1
TARBALL=/usr/src/$SRCPKG.tar.xz
JOBS=${KERNEL_BUILD_JOBS:-$(nproc)}

log() { echo "build-kernel: $*" >&2; }
missing() { log "missing: $*"; exit 3; }

ver=$(dpkg-query -W -f '${Version}' "$SRCPKG" 2>/dev/null || true)
if [ -z "$ver" ] || [ ! -f "$TARBALL" ]; then
  missing "$TARBALL (apt-get install $SRCPKG; make deps installs it)"
fi
for t in make gcc flex bison bc perl xz tar sha256sum flock; do
  command -v "$t" >/dev/null 2>&1 || missing "tool $t (make deps installs it)"
done
[ -e /usr/include/libelf.h ] || missing "libelf headers (libelf-dev; objtool needs them)"
[ -e /usr/include/openssl/evp.h ] || missing "openssl headers (libssl-dev)"

key=$( { echo "$SRCPKG $ver"; cat "$FRAG" "$0"; } | sha256sum | cut -c1-16)
if [ "${1:-}" = --key ]; then echo "$key"; exit 0; fi
out=$CACHE/$key
if [ -f "$out/bzImage" ]; then
  log "cached: $out/bzImage ($SRCPKG $ver)"
  echo "$out/bzImage"
  exit 0
fi

mkdir -p "$CACHE"
# one build at a time per cache (make test and a developer's run)
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$out/bzImage" ]; then echo "$out/bzImage"; exit 0; fi

# the source tree and object directory are kept per source version, so a
# changed fragment rebuilds only what changed
src=$CACHE/src-$ver
if [ ! -f "$src/.extracted" ]; then
  log "extracting $TARBALL into $src"
  rm -rf "$src"; mkdir -p "$src"
  tar -xf "$TARBALL" -C "$src" --strip-components=1
  touch "$src/.extracted"
fi
obj=$CACHE/obj-$ver
mkdir -p "$obj"

log "configuring: allnoconfig + ${FRAG##*/}"
make -s -C "$src" O="$obj" ARCH=x86_64 KCONFIG_ALLCONFIG="$FRAG" allnoconfig >/dev/null
# every line of the fragment must be in the result as written
bad=0
while IFS= read -r line; do
  case $line in
    CONFIG_*=*) want=$line; name=${line%%=*} ;;
    "# CONFIG_"*" is not set") want=$line; name=${line#\# }; name=${name%% *} ;;
    *) continue ;;
  esac
  got=$(grep -E "^(# )?${name}[= ]" "$obj/.config" || true)
  if [ "$got" != "$want" ] && ! { [[ $want == *"is not set" ]] && [ -z "$got" ]; }; then
    log "config: want '$want', got '${got:-absent}' (a dependency is missing?)"
    bad=1
  fi
done <"$FRAG"
[ "$bad" = 0 ] || { log "the configuration does not hold what ${FRAG##*/} asks"; exit 1; }

log "building bzImage of $SRCPKG $ver with $JOBS jobs (nice 19); this takes a while"
load=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/time -f '%e %U %S' -o "$obj/.time" \
  nice -n 19 make -C "$src" O="$obj" ARCH=x86_64 -j"$JOBS" bzImage >"$obj/build.log" 2>&1 || {
  tail -n 40 "$obj/build.log" >&2
  log "build failed; full log: $obj/build.log"
  exit 1
}
read -r wall user sys <"$obj/.time"
mkdir -p "$out.tmp"
cp "$obj/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$obj/.config" "$out.tmp/config"
echo "$SRCPKG $ver" >"$out.tmp/source"
printf 'wall %ss user %ss sys %ss jobs %s loadavg-at-start %s nproc %s\n' \
  "$wall" "$user" "$sys" "$JOBS" "$load" "$(nproc)" >"$out.tmp/build-time"
rm -rf "$out"; mv "$out.tmp" "$out"
log "built in $(cat "$out/build-time")"
echo "$out/bzImage"

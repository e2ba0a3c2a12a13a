# shellcheck shell=bash
# Host side of the kernel end-to-end test: fetch Debian's kernel, build a busybox
# initramfs, boot it under qemu with a SquashFS image as a read-only virtio disk,
# and judge the machine-readable lines the guest prints. Sourced by run.sh.
#
# Guest protocol (one line each, on the serial console):
#   E2E BEGIN scenario=NAME
#   E2E CHECK name=NAME want=WANT got=GOT result=PASS|FAIL [path=PATH]
#   E2E END scenario=NAME
# The host does not trust the guest's result field: it recomputes PASS as
# want == got, requires exactly one line for every check the guest script
# declares, and requires the END marker (a boot that stops early fails).

E2E_ROOT=${E2E_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
E2E_DIR=$E2E_ROOT/scripts/kernel-e2e
E2E_CACHE=${E2E_CACHE:-$E2E_ROOT/.cache/kernel-e2e}
E2E_TIMEOUT=${E2E_TIMEOUT:-240}   # seconds per boot; a TCG boot takes 7-18 s here
E2E_ACCEL=${E2E_ACCEL:-tcg}       # tcg is what CI has; kvm where /dev/kvm works
IMAFORGE=${IMAFORGE:-$E2E_ROOT/bin/imaforge}

# Modules the guest loads, in order, after their dependencies (resolved from
# each module's .modinfo "depends=" field, since the package ships no modules.dep).
E2E_MODULES=(virtio_pci virtio_blk squashfs loop dm-verity crc32c_generic ext4)
# Modules copied into the initramfs but loaded only by a check.
E2E_EXTRA_MODULES=(sha512_generic)

e2e_log() { echo "e2e: $*" >&2; }
e2e_die() { echo "e2e: error: $*" >&2; exit 1; }

# e2e_missing WHAT: a missing prerequisite fails under CI and skips elsewhere.
e2e_missing() {
  if [ "${CI:-}" = true ]; then e2e_die "$* (CI=true: a missing prerequisite is a failure)"; fi
  echo "e2e: SKIP: $* (set CI=true to make this a failure)"
  # shellcheck disable=SC2034 # run.sh's exit trap reads it
  SUMMARY_DONE=skip
  exit 0
}

e2e_need_tools() {
  local t miss=()
  for t in "$@"; do command -v "$t" >/dev/null 2>&1 || miss+=("$t"); done
  [ ${#miss[@]} -eq 0 ] || e2e_missing "missing tools: ${miss[*]} (make deps installs them)"
}

# e2e_fetch_kernel: sets KVER, VMLINUZ, MODDIR. Downloads the package that
# linux-image-amd64 depends on (once; cached in $E2E_CACHE) and extracts it.
e2e_fetch_kernel() {
  mkdir -p "$E2E_CACHE"
  local pkg deb old
  # one run at a time fetches and extracts (make test and a developer's run)
  exec 9>"$E2E_CACHE/.lock"
  flock 9
  pkg=${E2E_KERNEL_PKG:-}
  if [ -z "$pkg" ]; then
    pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    if [ -z "$pkg" ]; then
      apt-get update -qq >/dev/null 2>&1 || true
      pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
    fi
  fi
  if [ -z "$pkg" ]; then
    # offline: use the newest kernel already in the cache
    # shellcheck disable=SC2012 # Debian package file names, sorted by version
    deb=$(ls -1 "$E2E_CACHE"/linux-image-*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$deb" ] || e2e_missing "cannot resolve linux-image-amd64 (apt-get update failed?) and no cached kernel"
  else
    # shellcheck disable=SC2012 # Debian package file names, sorted by version
    deb=$(ls -1 "$E2E_CACHE"/"$pkg"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$deb" ]; then
      e2e_log "downloading $pkg into $E2E_CACHE"
      (cd "$E2E_CACHE" && apt-get download "$pkg" >/dev/null 2>&1) ||
        (apt-get update -qq >/dev/null 2>&1; cd "$E2E_CACHE" && apt-get download "$pkg" >/dev/null) ||
        e2e_missing "apt-get download $pkg failed"
      # shellcheck disable=SC2012 # Debian package file names, sorted by version
      deb=$(ls -1 "$E2E_CACHE"/"$pkg"_*_amd64.deb 2>/dev/null | sort -V | tail -1 || true)
      [ -n "$deb" ] || e2e_missing "apt-get download $pkg produced no .deb"
      # a new kernel replaces the cached ones (70 MB each)
      for old in "$E2E_CACHE"/linux-image-*_amd64.deb; do
        [ "$old" = "$deb" ] || rm -rf "$old" "${old%.deb}"
      done
    fi
  fi
  local x=${deb%.deb}
  if [ ! -f "$x/.extracted" ]; then
    rm -rf "$x"; mkdir -p "$x"
    dpkg-deb -x "$deb" "$x" || e2e_die "cannot extract $deb"
    touch "$x/.extracted"
  fi
  # shellcheck disable=SC2012 # one kernel per Debian package
  VMLINUZ=$(ls -1 "$x"/boot/vmlinuz-* | head -1)
  KVER=${VMLINUZ##*/vmlinuz-}
  MODDIR=$x/lib/modules/$KVER
  if [ ! -f "$VMLINUZ" ] || [ ! -f "$MODDIR/modules.order" ]; then
    e2e_die "unexpected layout in $deb"
  fi
  # shellcheck disable=SC2034 # run.sh logs it
  KDEB=$deb
  flock -u 9
}

# e2e_module_path NAME: the .ko of a module name (- and _ are the same).
e2e_module_path() {
  local n=${1//-/_} line base
  while IFS= read -r line; do
    base=${line##*/}; base=${base%.ko*}; base=${base//-/_}
    if [ "$base" = "$n" ]; then echo "$MODDIR/$line"; return 0; fi
  done <"$MODDIR/modules.order"
  return 1
}

# e2e_module_order NAME...: prints module file paths, dependencies first.
e2e_module_order() {
  local -A seen=()
  local out=()
  _visit() {
    local n=${1//-/_} p deps d
    [ -n "${seen[$n]:-}" ] && return 0
    seen[$n]=1
    p=$(e2e_module_path "$n") || e2e_die "module $1 not found in $MODDIR"
    case $p in
      *.ko.xz) deps=$(xz -dc "$p" | tr '\0' '\n' | sed -n 's/^depends=//p') ;;
      *.ko.zst) deps=$(zstd -dc "$p" | tr '\0' '\n' | sed -n 's/^depends=//p') ;;
      *) deps=$(tr '\0' '\n' <"$p" | sed -n 's/^depends=//p') ;;
    esac
    for d in ${deps//,/ }; do _visit "$d"; done
    out+=("$p")
  }
  local m
  for m in "$@"; do _visit "$m"; done
  printf '%s\n' "${out[@]}"
}

# e2e_build_tools DIR: compiles the guest helper and the test program.
e2e_build_tools() {
  local d=$1
  mkdir -p "$d"
  gcc -static -Os -Wall -Werror -o "$d/e2e-tool" "$E2E_DIR/guest/e2e-tool.c" ||
    e2e_die "cannot compile guest/e2e-tool.c (gcc -static needs libc6-dev)"
  gcc -static -nostdlib -Os -fno-asynchronous-unwind-tables -Wl,--build-id=none \
    -o "$d/prog" "$E2E_DIR/guest/prog.c" || e2e_die "cannot compile guest/prog.c"
}

# e2e_prog OUT MARKER: a test program with a unique trailer (distinct digest,
# and a marker the tamper step can find in an image stored uncompressed).
e2e_prog() {
  cp "$TOOLS/prog" "$1"
  printf '\nE2E-TRAILER %s E2E-TRAILER-END\n' "$2" >>"$1"
  chmod 0755 "$1"
}

# e2e_initramfs_base DIR: busybox, keyctl with its libraries, the helper,
# the modules (decompressed, in load order) and the generic /init.
e2e_initramfs_base() {
  local r=$1 f lib
  mkdir -p "$r"/{bin,sbin,proc,sys,dev,mnt,tmp,etc,e2e,lib/modules}
  cp /bin/busybox "$r/bin/busybox"
  cp "$TOOLS/e2e-tool" "$r/bin/e2e-tool"
  cp "$(command -v keyctl)" "$r/bin/keyctl"
  for lib in $(ldd "$(command -v keyctl)" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
  : >"$r/lib/modules/order"
  while IFS= read -r f; do
    local base=${f##*/}; base=${base%.xz}; base=${base%.zst}
    case $f in
      *.xz) xz -dc "$f" >"$r/lib/modules/$base" ;;
      *.zst) zstd -qdc "$f" >"$r/lib/modules/$base" ;;
      *) cp "$f" "$r/lib/modules/$base" ;;
    esac
    echo "$base" >>"$r/lib/modules/order"
  done < <(e2e_module_order "${E2E_MODULES[@]}")
  for f in "${E2E_EXTRA_MODULES[@]}"; do
    f=$(e2e_module_path "$f") || e2e_die "module $f not found in $MODDIR"
    case $f in
      *.xz) xz -dc "$f" >"$r/lib/modules/$(basename "${f%.xz}")" ;;
      *.zst) zstd -qdc "$f" >"$r/lib/modules/$(basename "${f%.zst}")" ;;
      *) cp "$f" "$r/lib/modules/" ;;
    esac
  done
  cp "$E2E_DIR/guest/init" "$r/init"
  cp "$E2E_DIR/guest/lib.sh" "$r/e2e/lib.sh"
  chmod 0755 "$r/init"
}

# e2e_cpio DIR OUT: a newc archive of DIR (uncompressed: nothing to inflate at boot).
e2e_cpio() {
  (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) >"$2"
}

# e2e_boot NAME INITRD CMDLINE_EXTRA [DISK...]: boots, keeps the console log
# (E2E_QEMU_EXTRA: more qemu arguments, split on spaces, e.g. a TPM device)
# in $WORK/NAME.console.log, prints the boot's wall time, never fails by itself
# (the verdict comes from e2e_judge).
e2e_boot() {
  local name=$1 initrd=$2 extra=$3; shift 3
  local drives=() d t0 t1 rc
  for d in "$@"; do drives+=(-drive "file=$d,if=virtio,format=raw,readonly=on"); done
  local log=$WORK/$name.console.log try
  t0=$(date +%s.%N)
  # no_timer_check: under TCG on a busy host the kernel's IO-APIC timer
  # check can fail ("IO-APIC + timer doesn't work!") and panic at 0.02 s.
  # A boot that never reaches /init (no "E2E BEGIN") touched no image and
  # says nothing about imaforge: it is retried once, visibly.
  for try in 1 2; do
    rc=0
    # shellcheck disable=SC2086 # E2E_QEMU_EXTRA: extra qemu arguments, split on purpose
    timeout -k 5 "$E2E_TIMEOUT" qemu-system-x86_64 -accel "$E2E_ACCEL" -machine q35 -cpu max -smp 1 -m 512M \
      -nodefaults -no-user-config -display none -serial stdio -no-reboot \
      -kernel "$VMLINUZ" -initrd "$initrd" ${E2E_QEMU_EXTRA:-} \
      -append "console=ttyS0 panic=-1 loglevel=4 no_timer_check rdinit=/init e2e.scenario=$name $extra" \
      "${drives[@]}" </dev/null >"$log" 2>&1 || rc=$?
    if grep -aq '^E2E BEGIN' "$log" || [ "$try" = 2 ]; then break; fi
    echo "e2e: note: the $name boot did not reach /init (qemu exit $rc; $(grep -a -m1 -i 'panic' "$log" | tr -d '\r' | cut -c1-120)); retrying once"
    cp "$log" "$log.first-try"
  done
  t1=$(date +%s.%N)
  BOOT_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
  BOOT_RC=$rc
  [ "$rc" = 124 ] && echo "E2E HOST qemu killed after ${E2E_TIMEOUT}s timeout" >>"$log"
  echo "$name ${BOOT_SECONDS}s" >>"$WORK/timings"
  return 0
}

# e2e_expected_checks SCRIPT: the check names a guest script declares (every
# line of the form `check NAME WANT ...`).
e2e_expected_checks() {
  sed -n 's/^[[:space:]]*check[[:space:]]\{1,\}\([^[:space:]]\{1,\}\)[[:space:]].*/\1/p' "$1"
}

# e2e_judge NAME SCRIPT: parses $WORK/NAME.console.log. Adds to PASSED/FAILED,
# prints one line per failed check and the console tail when anything failed.
e2e_judge() {
  local name=$1 script=$2 log=$WORK/$1.console.log
  local line n want got path bad=0 fields
  local -A seen=()
  tr -d '\r' <"$log" >"$log.clean"
  while IFS= read -r line; do
    fields=${line#*E2E CHECK }
    n=$(sed -n 's/.*\bname=\([^ ]*\).*/\1/p' <<<"$fields")
    want=$(sed -n 's/.*\bwant=\([^ ]*\).*/\1/p' <<<"$fields")
    got=$(sed -n 's/.*\bgot=\([^ ]*\).*/\1/p' <<<"$fields")
    [ -n "$n" ] || continue
    if [ -n "${seen[$n]:-}" ]; then
      echo "FAIL $n: reported twice"; FAILED=$((FAILED + 1)); bad=1; continue
    fi
    seen[$n]=1
    if [ -n "$want" ] && [ "$want" = "$got" ]; then
      PASSED=$((PASSED + 1))
      [ -n "${E2E_VERBOSE:-}" ] && echo "PASS $n (want=$want got=$got)"
    else
      echo "FAIL $n: want=$want got=$got  [$name boot, log $log]"
      FAILED=$((FAILED + 1)); bad=1
      path=$(sed -n 's/.*\bpath=\([^ ]*\).*/\1/p' <<<"$fields")
      if [ -n "$path" ]; then
        # what the kernel logged about that file (IMA's audit records name it)
        grep -aF "name=\"$path\"" "$log.clean" | tail -n 3 | sed 's/^/    kernel: /' || true
      fi
    fi
    if ! grep -qxF "$n" <(e2e_expected_checks "$script"); then
      echo "FAIL $n: not declared by $script"; FAILED=$((FAILED + 1)); bad=1
    fi
  done < <(grep -a 'E2E CHECK ' "$log.clean")
  while IFS= read -r n; do
    if [ -z "${seen[$n]:-}" ]; then
      echo "FAIL $n: no result (the $name boot never reached it)"; FAILED=$((FAILED + 1)); bad=1
    fi
  done < <(e2e_expected_checks "$script")
  if ! grep -aq "^E2E END scenario=$name\$" "$log.clean"; then
    echo "FAIL $name: no end marker (qemu exit $BOOT_RC after ${BOOT_SECONDS}s: panic, hang, timeout or a guest script error)"
    FAILED=$((FAILED + 1)); bad=1
  fi
  if [ "$bad" = 1 ]; then
    echo "---- last 40 console lines of $name ($log) ----"
    tail -n 40 "$log.clean"
    echo "---- end of $name console ----"
  fi
  return $bad
}

# --- the peer route (evmctl + mksquashfs: the control disk) and byte patching ---

# e2e_evm_sign KEY FILE: evmctl sets security.ima (v2 signature, sha256).
e2e_evm_sign() {
  evmctl ima_sign -a sha256 --key "$1" "$2" >/dev/null 2>&1 || e2e_die "evmctl ima_sign $2 failed"
  getfattr -n security.ima "$2" >/dev/null 2>&1 || e2e_die "evmctl left no security.ima on $2"
}

# e2e_ima_hex FILE: FILE's security.ima value as lowercase hex (no 0x).
e2e_ima_hex() {
  getfattr -e hex -n security.ima "$1" 2>/dev/null | sed -n 's/^security.ima=0x//p'
}

# e2e_copy_sig FROM TO: TO gets FROM's security.ima (a valid signature of other bytes).
e2e_copy_sig() {
  local v
  v=$(e2e_ima_hex "$1")
  [ -n "$v" ] || e2e_die "no security.ima on $1 to copy"
  setfattr -n security.ima -v "0x$v" "$2"
}

# e2e_mksquashfs DIR OUT: the peer image, data and fragments stored
# uncompressed so the tamper step can find a file's bytes.
e2e_mksquashfs() {
  mksquashfs "$1" "$2" -noappend -xattrs -all-root -noD -noF -reproducible -mkfs-time 0 -all-time 0 \
    -quiet >/dev/null 2>&1 || e2e_die "mksquashfs $1 failed"
}

# e2e_patch_once FILE OLD NEW: replaces the only occurrence of OLD in FILE
# with NEW (same length) in place.
e2e_patch_once() {
  local f=$1 old=$2 new=$3 offs n
  [ ${#old} = ${#new} ] || e2e_die "patch: '$old' and '$new' differ in length"
  offs=$(grep -obUaF "$old" "$f" | cut -d: -f1 || true)
  n=$(printf '%s\n' "$offs" | grep -c . || true)
  [ "$n" = 1 ] || e2e_die "patch: '$old' found $n times in $f (need exactly 1)"
  printf '%s' "$new" | dd of="$f" bs=1 seek="$offs" conv=notrunc status=none
}

# e2e_tamper IMAGE MARKER: flips one byte of the only occurrence of MARKER
# (a file's data, stored uncompressed) in IMAGE.
e2e_tamper() {
  local img=$1 marker=$2 offs n
  offs=$(grep -obUaF "$marker" "$img" | cut -d: -f1 || true)
  n=$(printf '%s\n' "$offs" | grep -c . || true)
  [ "$n" = 1 ] || e2e_die "tamper: marker $marker found $n times in $img (need exactly 1; is the file stored compressed?)"
  printf 'X' | dd of="$img" bs=1 seek="$offs" conv=notrunc status=none
  ! grep -qaF "$marker" "$img" || e2e_die "tamper: marker still present in $img"
}

# --- imaforge: the tool under test ---------------------------------------------

# imaforge_has WORDS...: true when `imaforge WORDS... --help` succeeds.
imaforge_has() { [ -x "$IMAFORGE" ] && "$IMAFORGE" "$@" --help >/dev/null 2>&1; }

# forge CMD...: runs imaforge, output appended to $WORK/imaforge.log; dies
# naming the command on failure.
forge() {
  echo "+ imaforge $*" >>"$WORK/imaforge.log"
  "$IMAFORGE" "$@" >>"$WORK/imaforge.log" 2>&1 || {
    tail -n 20 "$WORK/imaforge.log" >&2
    e2e_die "imaforge $* failed"
  }
}

# pki_root DIR NAME: a manufacturer root in DIR/root.{key,pem,der}
# (RSA-2048: Debian's 6.1 kernel verifies RSA only).
pki_root() { forge pki init --name "$2" --out "$1" --key-type rsa2048; }

# pki_issue ROLE CA OUTDIR BASE NAME: an owner CA or IMA certificate signed by
# CA.{pem,key}, written to OUTDIR/BASE.{key,pem,der}.
pki_issue() {
  forge pki issue --role "$1" --name "$5" --out "$3" --basename "$4" \
    --ca "$2.pem" --ca-key "$2.key" --key-type rsa2048
}

# manifest_head OUT: the image section every e2e manifest shares. Data stored
# uncompressed (compression: none) so the tamper step finds a file's bytes.
manifest_head() {
  cat <<EOF
version: 1
image:
  output: $1
  compression: none
  block_size: 128K
  epoch: 0
  owner: {uid: 0, gid: 0}
hash: sha256
EOF
}

# image_ima_hex IMAGE PATH: the security.ima of PATH in IMAGE as a peer reader
# (squashfs-tools-ng's rdsquashfs) sees it, lowercase hex.
image_ima_hex() {
  rdsquashfs -x "$2" "$1" 2>/dev/null | sed -n 's/^security.ima=0x//p' | tr 'A-F' 'a-f'
}

# e2e_patch_hex FILE OLDHEX NEWHEX: replaces the only occurrence of the bytes
# OLDHEX in FILE by NEWHEX (same length).
e2e_patch_hex() {
  python3 - "$@" <<'PY' || e2e_die "patch of $1 failed"
import sys
path, old, new = sys.argv[1], bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])
data = bytearray(open(path, "rb").read())
n = data.count(old)
if n != 1 or len(old) != len(new):
    sys.exit("e2e: the bytes to patch occur %d times in %s (need exactly 1)" % (n, path))
i = data.find(old)
data[i:i + len(old)] = new
open(path, "wb").write(data)
PY
}

# flip_byte_hex HEX POS: HEX with the byte at index POS xored with 0x5a.
flip_byte_hex() {
  local h=$1 p=$(($2 * 2))
  printf '%s%02x%s' "${h:0:$p}" $((0x${h:$p:2} ^ 0x5a)) "${h:$((p + 2))}"
}

#!/usr/bin/env bash
# The Linux kernel as the judge (issue 9): boots Debian's linux-image-amd64
# under qemu (TCG) with images built by imaforge as read-only virtio disks and
# checks that IMA appraisal in enforce mode runs what imaforge signed and
# refuses everything else. `make e2e` runs it; `make test` too.
#
#   scripts/kernel-e2e/run.sh [--self-test] [--only NAME[,NAME]] [--keep]
#
#   --self-test  only the test of the test: break a signature, keep expecting
#                the binary to run, and require that the harness reports FAIL
#                for exactly that check (the default run does this too)
#   --only       run the named scenarios (enforce, hierarchy, policy, verity,
#                attest, evm, dynpolicy, selftest)
#   --keep       keep the work directory (console logs, images, keys)
#
# Environment: E2E_CACHE (downloads, default .cache/kernel-e2e), E2E_TIMEOUT
# (seconds per boot, default 240), E2E_ACCEL (tcg, the default; kvm hangs on
# this kind of machine), E2E_VERBOSE=1 (print passing checks too),
# E2E_FORMATS (default "zstd gzip xz lz4 zstd-sha384 zstd-sha512"), E2E_ARTIFACTS (where the
# enforce boot's image, record and measurement list are kept), IMAFORGE.
# Exit status: 0 when every check passed, 1 otherwise. The last line is
# `e2e: N passed, M failed`.
set -Eeuo pipefail
# shellcheck source=scripts/kernel-e2e/lib.sh
. "$(dirname "$0")/lib.sh"
# name the command and line when set -e stops the run (not inside $(...))
trap 'rc=$?; [ "$BASH_SUBSHELL" != 0 ] || echo "e2e: error: exit $rc at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND" >&2' ERR

ONLY="" KEEP="" SELFTEST_ONLY=""
while [ $# -gt 0 ]; do
  case $1 in
    --self-test) SELFTEST_ONLY=1 ;;
    --only) ONLY=$2; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) e2e_die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
want_scenario() {
  if [ -n "$SELFTEST_ONLY" ]; then [ "$1" = selftest ]; return; fi
  [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]
}

[ "$(id -u)" = 0 ] || e2e_missing "must run as root (security.ima xattrs on the staging trees)"
e2e_need_tools qemu-system-x86_64 apt-get apt-cache dpkg-deb cpio gcc openssl evmctl mksquashfs rdsquashfs getfattr setfattr keyctl busybox timeout python3 sha256sum flock
[ -x /bin/busybox ] || e2e_missing "/bin/busybox (busybox-static) missing"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kernel-e2e.XXXXXX")
SUMMARY_DONE=""
cleanup() {
  local rc=$?
  if [ -z "$SUMMARY_DONE" ]; then
    # an error stopped the run (e2e_die, set -e): it is a failure, say so
    echo "e2e: stopped early (exit $rc) after ${PASSED:-0} passed checks"
    echo "e2e: ${PASSED:-0} passed, $(( ${FAILED:-0} + 1 )) failed"
    [ "$rc" != 0 ] || rc=1
  fi
  if [ -n "$KEEP" ] || [ "$rc" != 0 ]; then echo "e2e: work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}
trap cleanup EXIT
PASSED=0 FAILED=0
E2E_ARTIFACTS=${E2E_ARTIFACTS:-$E2E_CACHE/artifacts}

[ -x "$IMAFORGE" ] || e2e_missing "$IMAFORGE not built (make build)"
for c in "build" "pki init" "pki issue" "pki revoke" "pki export" "pki verify" "squashfs pack" "file sign" "verify" "policy lint"; do
  # shellcheck disable=SC2086
  imaforge_has $c || e2e_die "$IMAFORGE has no '$c' command"
done

T0=$(date +%s)
e2e_fetch_kernel
e2e_log "kernel $KVER from ${KDEB##*/}"
TOOLS=$WORK/tools
e2e_build_tools "$TOOLS"
BASE=$WORK/initramfs-base
e2e_initramfs_base "$BASE"

# host_check NAME WANT GOT: a check judged on the host (e.g. of the guest's
# measurement list), counted like the guest's.
host_check() {
  if [ "$2" = "$3" ]; then
    PASSED=$((PASSED + 1)); [ -n "${E2E_VERBOSE:-}" ] && echo "PASS $1 (want=${2:0:100})"
  else
    FAILED=$((FAILED + 1)); echo "FAIL $1: want=$2 got=$3"
  fi
  return 0
}

# new_initramfs NAME: a copy of the base tree for one boot; prints its path.
new_initramfs() {
  local r=$WORK/$1/initramfs
  mkdir -p "$WORK/$1"
  cp -a "$BASE" "$r"
  echo "$r"
}

# shellcheck source=scripts/kernel-e2e/scenarios.sh
. "$E2E_DIR/scenarios.sh"
# shellcheck source=scripts/kernel-e2e/attest.sh
. "$E2E_DIR/attest.sh"
# shellcheck source=scripts/kernel-e2e/dynpolicy.sh
. "$E2E_DIR/dynpolicy.sh"
# shellcheck source=scripts/kernel-e2e/evm.sh
. "$E2E_DIR/evm.sh"

# dynpolicy boots the second judge kernel (build-kernel.sh, built once per
# cache key; see README.md)
for s in enforce hierarchy policy verity attest evm dynpolicy selftest; do
  if want_scenario "$s"; then
    "scenario_$s"
  fi
done

T1=$(date +%s)
if [ -f "$WORK/timings" ]; then
  echo "e2e: boot wall times: $(tr '\n' ' ' <"$WORK/timings")(total $((T1 - T0))s)"
fi
SUMMARY_DONE=1
# shellcheck disable=SC2031 # scenario_selftest counts in a subshell on purpose
echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]

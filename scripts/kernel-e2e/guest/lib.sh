# shellcheck shell=dash
# Guest helpers for the scenario scripts (busybox sh).
#
#   check NAME WANT KIND ARGS...   runs one probe and prints
#     E2E CHECK name=NAME want=WANT got=GOT result=PASS|FAIL [path=PATH]
#   KIND: exec PATH      run PATH; ok when it prints E2E-RAN, else the errno name
#         read PATH      open and read PATH
#         insmod PATH    finit_module PATH
#         sh 'CMD'       run a shell command; ok when it exits 0, else the errno
#                        whose message it printed (keyctl, echo > securityfs)
#   The host re-judges every line; `result` is for a human reading the console.

# errno_of MESSAGE: glibc strerror text -> errno name.
errno_of() {
  case $1 in
    *"Permission denied"*) echo EACCES ;;
    *"Operation not permitted"*) echo EPERM ;;
    *"Required key not available"*) echo ENOKEY ;;
    *"Key was rejected by service"*) echo EKEYREJECTED ;;
    *"Key has been revoked"*) echo EKEYREVOKED ;;
    *"Invalid argument"*) echo EINVAL ;;
    *"Bad message"*) echo EBADMSG ;;
    *"No such file or directory"*) echo ENOENT ;;
    *"Exec format error"*) echo ENOEXEC ;;
    *"No data available"*) echo ENODATA ;;
    *"Input/output error"*) echo EIO ;;
    *"No such device or address"*) echo ENXIO ;;
    *"Device or resource busy"*) echo EBUSY ;;
    *) echo "error:$(echo "$1" | tr -c 'A-Za-z0-9:_.-' '_' | cut -c1-60)" ;;
  esac
}

check() {
  name=$1 want=$2 kind=$3
  shift 3
  case $kind in
    exec)
      out=$(e2e-tool exec "$@" 2>&1) || true
      if [ "$out" = "E2E-RAN" ]; then got=ok; else got=$(echo "$out" | tail -n 1 | tr -c 'A-Za-z0-9_\n' '_'); fi ;;
    read | insmod)
      got=$(e2e-tool "$kind" "$@" 2>&1 | tail -n 1) ;;
    sh)
      if out=$(sh -c "$1" 2>&1); then got=ok; else got=$(errno_of "$out"); fi ;;
    *) got="bad-kind:$kind" ;;
  esac
  [ -n "$got" ] || got=empty
  if [ "$got" = "$want" ]; then r=PASS; else r=FAIL; fi
  case $kind in
    exec | read | insmod) echo "E2E CHECK name=$name want=$want got=$got result=$r path=$1" ;;
    *) echo "E2E CHECK name=$name want=$want got=$got result=$r" ;;
  esac
}

# load_modules: loads /lib/modules/*.ko in the host-resolved order with
# finit_module (IMA appraises a module only through a file descriptor).
load_modules() {
  while read -r m || [ -n "$m" ]; do
    r=$(e2e-tool insmod "/lib/modules/$m" </dev/null) || true
    [ "$r" = ok ] || { echo "E2E NOTE insmod $m: $r"; return 1; }
  done </lib/modules/order
}

# restore_sigs DIR: the cpio archive cannot carry xattrs; each DIR/X.sig
# (a raw security.ima value) goes back onto DIR/X.
restore_sigs() {
  for s in "$1"/*.sig; do
    [ -e "$s" ] || continue
    r=$(e2e-tool setima "${s%.sig}" "$s") || true
    [ "$r" = ok ] || { echo "E2E NOTE setima ${s%.sig}: $r"; return 1; }
  done
}

# mount_image DEV DIR: the image under test, read-only.
mount_image() {
  mkdir -p "$2"
  mount -t squashfs -o ro "$1" "$2"
}

# set_policy FILE: writes the rules in FILE to the IMA policy in one write.
set_policy() {
  r=$(e2e-tool writefile /sys/kernel/security/ima/policy "$1") || true
  [ "$r" = ok ] || { echo "E2E NOTE policy write: $r"; return 1; }
}

# dm_dev NAME: the /dev/dm-N node of device-mapper device NAME.
dm_dev() {
  for n in /sys/block/dm-*/dm/name; do
    [ "$(cat "$n")" = "$1" ] && { d=${n%/dm/name}; echo "/dev/${d##*/}"; return 0; }
  done
  return 1
}

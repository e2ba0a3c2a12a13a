#!/usr/bin/env bash
# Asks a real kernel which policy rules it accepts: boots KERNEL under qemu
# with a busybox initramfs whose /init opens /sys/kernel/security/ima/policy
# once and writes each line of rules.txt with its own write(2), recording
# the result, then writes one invalid rule so the policy is never committed
# (a failed write marks the whole write session invalid: ima_release_policy
# then drops the rules, so nothing is replaced, even without
# CONFIG_IMA_WRITE_POLICY). Prints "OK<TAB>rule" or "EINVAL<TAB>rule" per line.
#
#   testdata/policy/kernel/run.sh VMLINUZ [RULES] > RESULTS
#
# VMLINUZ: e.g. .cache/kernel-e2e/linux-image-6.1.0-56-amd64_6.1.192-2_amd64/boot/vmlinuz-6.1.0-56-amd64
# (the Debian kernel the e2e harness downloads). Needs qemu-system-x86_64,
# busybox-static and cpio. debian-6.1.0-56.txt was made with:
#   testdata/policy/kernel/run.sh "$VMLINUZ" > testdata/policy/kernel/debian-6.1.0-56.txt
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kernel=${1:?usage: run.sh VMLINUZ [RULES]}
rules=${2:-$here/rules.txt}
work=$(mktemp -d "${TMPDIR:-/tmp}/policy-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/proc" "$work/root/sys" "$work/root/tmp"
cp /bin/busybox "$work/root/bin/busybox"
cp "$rules" "$work/root/rules.txt"
cat >"$work/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t securityfs securityfs /sys/kernel/security
echo "POLICY-BEGIN $(cat /proc/version)"
if exec 3>/sys/kernel/security/ima/policy; then
  n=0
  while IFS= read -r line; do
    n=$((n+1))
    if echo "$line" >&3 2>/tmp/err; then echo "RULE $n OK"; else echo "RULE $n FAIL $(cat /tmp/err)"; fi
  done </rules.txt
  echo "not-a-rule" >&3 2>/dev/null || true
  exec 3>&-
  echo "POLICY-END $n"
else
  echo "POLICY-ABORT cannot open the policy file"
fi
poweroff -f
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/initrd.gz"
timeout 300 qemu-system-x86_64 -m 512 -nographic -no-reboot -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 loglevel=1" >"$work/console.log" 2>&1 || true
tr -d '\r' <"$work/console.log" >"$work/console.txt"
grep -q '^POLICY-END' "$work/console.txt" || { cat "$work/console.txt" >&2; echo "run.sh: the guest did not finish" >&2; exit 1; }
echo "# kernel: $(sed -n 's/.*POLICY-BEGIN //p' "$work/console.txt")"
n=0
while IFS= read -r rule; do
  n=$((n+1))
  verdict=$(sed -n "s/^RULE $n \([A-Z]*\).*/\1/p" "$work/console.txt")
  case $verdict in
    OK) printf 'OK\t%s\n' "$rule" ;;
    FAIL) printf 'EINVAL\t%s\n' "$rule" ;;
    *) echo "run.sh: no verdict for rule $n" >&2; exit 1 ;;
  esac
done <"$rules"

# shellcheck shell=bash
# The evm scenario (issue 21), sourced by run.sh after scenarios.sh.
#
# Kernel mechanism: a tenant package built by `imaforge build` as a pax
# archive (image.format: tar) with portable EVM signatures is installed on the
# host with GNU tar --xattrs into a staging tree, which mkfs.ext4 -d copies
# with owners, modes and xattrs into an ext4 disk image. In the guest the IMA
# and EVM certificates go into the `_ima` and `_evm` keyrings (made from user
# space; integrity_digsig_verify finds them by name), `echo 2 >
# /sys/kernel/security/evm` (EVM_INIT_X509) switches on EVM signature
# verification, and the rule
#   appraise func=BPRM_CHECK fsmagic=0xef53 appraise_type=imasig
# makes execve of a file on ext4 go through ima_appraise_measurement, which
# asks evm_verifyxattr about security.ima: evm_calc_hash over the protected
# xattrs, uid, gid and mode, then the portable signature (type 0x05) against
# `_evm`. Offline changes made on the host before mkfs: chmod u+s, chown, a
# security.ima replaced by another valid signature of the same content (by a
# second IMA key that `_ima` also trusts), and a file without security.evm.
scenario_evm() {
  local d=$WORK/evm k=$WORK/evm/pki f
  mkdir -p "$k" "$d/stage/bin"
  pki_root "$k/root" "E2E Manufacturer"
  pki_issue ima "$k/root/root" "$k/ima" ima "E2E tenant IMA"
  pki_issue ima "$k/root/root" "$k/ima2" ima "E2E second IMA"
  # *-pre: the same tampering, run before EVM is on (IMA caches a verdict
  # per file, so a file run then would keep running)
  for f in good suid chowned swapped noevm unsigned good-pre suid-pre swapped-pre; do e2e_prog "$d/stage/bin/$f" "evm-$f"; done
  for key in ima ima2; do
    {
      sed -e "s|^  output: .*|  output: pkg-$key.tar|" -e 's|^  compression: none$|  format: tar|' -e '/^  block_size:/d' \
        <(manifest_head x)
      cat <<EOF
keys:
  ima: {cert: pki/$key/ima.pem, key: pki/$key/ima.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/unsigned
    sign: false
  - match: /bin/noevm
    key: ima
  - match: /**
    key: ima
    evm: true
EOF
    } >"$d/m-$key.yaml"
    forge build -q "$d/m-$key.yaml"
  done
  # install the package as root, with its xattrs
  mkdir -p "$d/root" "$d/other"
  tar --xattrs --xattrs-include='security.*' -xpf "$d/pkg-ima.tar" -C "$d/root"
  tar --xattrs --xattrs-include='security.*' -xpf "$d/pkg-ima2.tar" -C "$d/other"
  for f in good suid chowned swapped; do
    getfattr -n security.evm "$d/root/bin/$f" >/dev/null 2>&1 || e2e_die "evm: bin/$f has no security.evm after tar -x"
  done
  # offline tampering
  chmod u+s "$d/root/bin/suid" "$d/root/bin/suid-pre"
  chown 1000:1000 "$d/root/bin/chowned"
  local other
  for f in swapped swapped-pre; do
    other=$(getfattr -n security.ima -e hex "$d/other/bin/$f" 2>/dev/null | sed -n 's/^security.ima=//p')
    [ -n "$other" ] || e2e_die "evm: no second signature for bin/$f"
    setfattr -n security.ima -v "$other" "$d/root/bin/$f"
  done
  mkfs.ext4 -q -F -O ^metadata_csum,^has_journal -d "$d/root" "$d/ext4.img" 16M >/dev/null 2>&1 ||
    e2e_die "evm: mkfs.ext4 -d failed"

  local r; r=$(new_initramfs evm)
  mkdir -p "$r/e2e/keys"
  cp "$k/ima/ima.der" "$r/e2e/keys/ima.der"
  cp "$k/ima2/ima.der" "$r/e2e/keys/ima2.der"
  echo 'appraise func=BPRM_CHECK fsmagic=0xef53 appraise_type=imasig' >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<'EOF'
load_modules
check evm.ima-keyring ok sh "keyctl newring _ima @u >/dev/null && keyctl padd asymmetric '' %keyring:_ima </e2e/keys/ima.der >/dev/null && keyctl padd asymmetric '' %keyring:_ima </e2e/keys/ima2.der >/dev/null"
check evm.evm-keyring ok sh "keyctl newring _evm @u >/dev/null && keyctl padd asymmetric '' %keyring:_evm </e2e/keys/ima.der >/dev/null"
check evm.mount-ext4 ok sh "mkdir -p /d && mount -t ext4 -o ro /dev/vda /d"
set_policy /e2e/policy
# IMA alone: every file with a valid security.ima runs, whatever its metadata
check evm.ima-only.good-runs ok exec /d/bin/good-pre
check evm.ima-only.suid-runs ok exec /d/bin/suid-pre
check evm.ima-only.swapped-runs ok exec /d/bin/swapped-pre
check evm.ima-only.unsigned-refused EACCES exec /d/bin/unsigned
check evm.enable ok sh "echo 2 >/sys/kernel/security/evm"
check evm.enabled ok sh "test \$(cat /sys/kernel/security/evm) = 2"
check evm.good-runs ok exec /d/bin/good
check evm.chmod-suid-refused EACCES exec /d/bin/suid
check evm.chown-refused EACCES exec /d/bin/chowned
check evm.swapped-ima-refused EACCES exec /d/bin/swapped
check evm.missing-evm-refused EACCES exec /d/bin/noevm
check evm.unsigned-refused EACCES exec /d/bin/unsigned
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot evm "$d/initrd.cpio" "ima_appraise=enforce" "$d/ext4.img"
  e2e_judge evm "$r/e2e/scenario.sh" || true
}

# The e2e scenarios, one function each; sourced by run.sh after the kernel,
# the tools and the base initramfs are ready. Each function prepares keys,
# images and a guest script, boots once and judges the console.

APPRAISE_SQUASHFS='appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig'
MEASURE_SQUASHFS='measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig'

# --- enforce: _ima with the IMA certificate, appraisal of squashfs executables.
# Kernel mechanism: ima_appraise=enforce + the BPRM_CHECK appraise rule; the
# signature is checked by integrity_digsig_verify against the `_ima` keyring
# (created from user space, found by name on first use); the measure rule
# with template=ima-sig records each executed file with its signature.
# Disk vda is the image under test ($ROUTE); with ROUTE=imaforge, disk vdb is
# the same tree signed by evmctl and packed by mksquashfs, as a control.
# With E2E_BREAK_SIG=1 (the self-test) the signature of bin/good is broken
# after signing while the checks still expect it to run.
scenario_enforce() {
  local name=${1:-enforce}
  local d=$WORK/$name k=$WORK/$name/keys r
  mkdir -p "$k"
  e2e_mkkey "$k" ima
  e2e_mkkey "$k" rogue

  # enforce_tree ROUTE DIR IMAGE: the test tree, signed and packed by ROUTE.
  enforce_tree() {
    local route=$1 st=$2 img=$3 f
    mkdir -p "$st/bin"
    for f in good good2 unsigned tampered wrongkey copied; do e2e_prog "$st/bin/$f" "$f"; done
    sign_as "$route" "$k" ima "$st/bin/good" "$st/bin/good2" "$st/bin/tampered"
    sign_as "$route" "$k" rogue "$st/bin/wrongkey"
    e2e_copy_sig "$st/bin/good" "$st/bin/copied"
    [ -z "${E2E_BREAK_SIG:-}" ] || e2e_break_sig "$st/bin/good"
    pack_as "$route" "$st" "$img"
    e2e_tamper "$img" "E2E-TRAILER tampered E2E-TRAILER-END"
  }
  local disks=("$d/image.sqsh") mounts="/mnt:enforce"
  enforce_tree "$ROUTE" "$d/stage" "$d/image.sqsh"
  ROUTE_NOTES+=("enforce: signed by $ROUTE, packed by $PACKED_BY")
  if [ "$ROUTE" != peer ] && [ -z "${E2E_BREAK_SIG:-}" ]; then
    enforce_tree peer "$d/control" "$d/control.sqsh"
    disks+=("$d/control.sqsh"); mounts="$mounts /control:control"
  fi

  r=$(new_initramfs "$name")
  mkdir -p "$r/e2e/certs"
  cp "$k/ima.der" "$r/e2e/certs/"
  printf '%s\n%s\n' "$MEASURE_SQUASHFS" "$APPRAISE_SQUASHFS" >"$r/e2e/policy"
  {
    echo "load_modules"
    local m dev=a mp p
    for m in $mounts; do echo "mount_image /dev/vd$dev ${m%%:*}"; dev=$(echo $dev | tr a-y b-z); done
    echo "# controls: before any policy every test program runs (a refusal later is IMA's)"
    for m in $mounts; do
      mp=${m%%:*} p=${m#*:}
      for f in unsigned wrongkey copied tampered; do echo "check $p.pre-policy.$f-runs ok exec $mp/bin/$f"; done
    done
    cat <<'EOF2'
IMA=$(keyctl newring _ima @u)
keyctl padd asymmetric '' "$IMA" </e2e/certs/ima.der >/dev/null
set_policy /e2e/policy
EOF2
    for m in $mounts; do
      mp=${m%%:*} p=${m#*:}
      cat <<EOF2
check $p.signed-runs ok exec $mp/bin/good
check $p.signed2-runs ok exec $mp/bin/good2
check $p.unsigned-refused EACCES exec $mp/bin/unsigned
check $p.tampered-refused EACCES exec $mp/bin/tampered
check $p.wrongkey-refused EACCES exec $mp/bin/wrongkey
check $p.copied-signature-refused EACCES exec $mp/bin/copied
check $p.signed-runs-again ok exec $mp/bin/good
EOF2
    done
    echo 'echo "---- ascii_runtime_measurements ----"'
    echo "sed 's/^/E2E MEASURE /' /sys/kernel/security/ima/ascii_runtime_measurements"
  } >"$r/e2e/scenario.sh"
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot "$name" "$d/initrd.cpio" "ima_appraise=enforce" "${disks[@]}"
  e2e_judge "$name" "$r/e2e/scenario.sh" || true

  # measurement: the guest's list must hold the signed program with its digest
  # and the exact security.ima value the image carries.
  local clean=$WORK/$name.console.log.clean meas=$d/ascii_runtime_measurements
  sed -n 's/^E2E MEASURE //p' "$clean" >"$meas" || true
  local dig sig entry
  dig=$(sha256sum "$d/stage/bin/good" | cut -d' ' -f1)
  sig=$(e2e_ima_hex "$d/stage/bin/good")
  entry=$(awk '$5 == "/mnt/bin/good" {print $3, $4, $6; exit}' "$meas")
  host_check measure.signed-entry "ima-sig sha256:$dig $sig" "${entry:-none}"
  host_check measure.unsigned-entry-has-no-signature "ima-sig" \
    "$(awk '$5 == "/mnt/bin/unsigned" && NF == 5 {print $3; exit}' "$meas")"
  if [ "$name" = enforce ]; then
    mkdir -p "$E2E_ARTIFACTS"
    cp "$meas" "$E2E_ARTIFACTS/enforce.ascii_runtime_measurements"
    cp "$k/ima.der" "$E2E_ARTIFACTS/enforce.ima.der"
  fi
}

# --- hierarchy: manufacturer root -> owner CA -> tenant IMA keys, enforced by
# user-space restricted keyrings (keyctl restrict_keyring ... key_or_keyring:,
# the kernel's restrict_link_by_key_or_keyring): every certificate added to a
# ring is verified against the keys of the ring above it at add time; the root
# ring is locked (restrict_keyring without a restriction refuses all adds) and
# `_ima` is frozen with setperm (no write, link or setattr). Revocation on this
# kernel is "the export does not load the revoked tenant's certificate": its
# binaries then fail integrity_digsig_verify for want of the key (-ENOKEY inside
# IMA, EACCES to the caller). The kernel does not check dates, keyUsage or
# basicConstraints here, so those are imaforge's job when it signs and exports.
scenario_hierarchy() {
  local d=$WORK/hierarchy k=$WORK/hierarchy/keys st=$WORK/hierarchy/stage img=$WORK/hierarchy/image.sqsh r
  mkdir -p "$k" "$st/bin"
  local ca=("basicConstraints=critical,CA:TRUE" "keyUsage=critical,keyCertSign,cRLSign")
  e2e_mkkey "$k" root "" "${ca[@]}"
  e2e_mkkey "$k" owner root "${ca[@]}"
  e2e_mkkey "$k" tenant owner
  e2e_mkkey "$k" tenant-revoked owner
  e2e_mkkey "$k" tenant-late owner
  e2e_mkkey "$k" tenant-by-root root          # skips the owner layer
  e2e_mkkey "$k" rogue-root "" "${ca[@]}"
  e2e_mkkey "$k" rogue-owner rogue-root "${ca[@]}"
  e2e_mkkey "$k" rogue-tenant rogue-owner
  # tenant certificates signed by the owner CA, then altered: one with its
  # subject edited (the signed digest no longer matches: EKEYREJECTED), one
  # with a byte of the signature value changed (the RSA block no longer
  # decodes; 6.1 answers EINVAL)
  cp "$k/tenant-late.der" "$k/tenant-tampered.der"
  e2e_patch_once "$k/tenant-tampered.der" "e2e tenant-late" "e2e tenant-evil"
  cp "$k/tenant-late.der" "$k/tenant-badsig.der"
  local sz; sz=$(stat -c %s "$k/tenant-badsig.der")
  printf '\x55' | dd of="$k/tenant-badsig.der" bs=1 seek=$((sz - 8)) conv=notrunc status=none

  e2e_prog "$st/bin/tenant-app" tenant-app
  e2e_prog "$st/bin/revoked-app" revoked-app
  e2e_prog "$st/bin/rogue-app" rogue-app
  e2e_prog "$st/bin/late-app" late-app
  sign_as "$ROUTE" "$k" tenant "$st/bin/tenant-app"
  sign_as "$ROUTE" "$k" tenant-revoked "$st/bin/revoked-app"
  sign_as "$ROUTE" "$k" rogue-tenant "$st/bin/rogue-app"
  sign_as "$ROUTE" "$k" tenant-late "$st/bin/late-app"
  pack_as "$ROUTE" "$st" "$img"
  ROUTE_NOTES+=("hierarchy: signed by $ROUTE, packed by $PACKED_BY")

  r=$(new_initramfs hierarchy)
  mkdir -p "$r/e2e/certs"
  local c
  for c in root owner tenant tenant-late tenant-tampered tenant-badsig tenant-by-root rogue-root rogue-owner rogue-tenant; do
    cp "$k/$c.der" "$r/e2e/certs/"
  done
  echo "$APPRAISE_SQUASHFS" >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<'EOF2'
load_modules
C=/e2e/certs
MFR=$(keyctl newring mfr @u)
check hier.root-loaded ok sh "keyctl padd asymmetric '' $MFR <$C/root.der"
keyctl restrict_keyring "$MFR"
check hier.locked-root-ring-refuses-second-root EPERM sh "keyctl padd asymmetric '' $MFR <$C/rogue-root.der"
OWN=$(keyctl newring owner @u)
keyctl restrict_keyring "$OWN" asymmetric "key_or_keyring:$MFR"
check hier.rogue-owner-ca-refused ENOKEY sh "keyctl padd asymmetric '' $OWN <$C/rogue-owner.der"
check hier.owner-ca-signed-by-root-accepted ok sh "keyctl padd asymmetric '' $OWN <$C/owner.der"
IMA=$(keyctl newring _ima @u)
keyctl restrict_keyring "$IMA" asymmetric "key_or_keyring:$OWN"
check hier.rogue-tenant-refused ENOKEY sh "keyctl padd asymmetric '' $IMA <$C/rogue-tenant.der"
check hier.tenant-signed-by-root-skipping-owner-refused ENOKEY sh "keyctl padd asymmetric '' $IMA <$C/tenant-by-root.der"
check hier.tampered-tenant-cert-refused EKEYREJECTED sh "keyctl padd asymmetric '' $IMA <$C/tenant-tampered.der"
check hier.bad-signature-tenant-cert-refused EINVAL sh "keyctl padd asymmetric '' $IMA <$C/tenant-badsig.der"
check hier.tenant-signed-by-owner-accepted ok sh "keyctl padd asymmetric '' $IMA <$C/tenant.der"
keyctl setperm "$IMA" 0x0b0b0000
check hier.frozen-ima-refuses-valid-tenant EACCES sh "keyctl padd asymmetric '' $IMA <$C/tenant-late.der"
mount_image /dev/vda /mnt
set_policy /e2e/policy
check hier.tenant-binary-runs ok exec /mnt/bin/tenant-app
check hier.revoked-tenant-binary-refused EACCES exec /mnt/bin/revoked-app
check hier.rogue-tenant-binary-refused EACCES exec /mnt/bin/rogue-app
check hier.late-tenant-binary-refused EACCES exec /mnt/bin/late-app
EOF2
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot hierarchy "$d/initrd.cpio" "ima_appraise=enforce" "$img"
  e2e_judge hierarchy "$r/e2e/scenario.sh" || true
}

# --- policy: boot with ima_policy=secure_boot. The built-in rules appraise
# MODULE_CHECK, FIRMWARE_CHECK, KEXEC_* and POLICY_CHECK with signatures
# required (IMA_DIGSIG_REQUIRED), so: the modules the guest loads need
# security.ima (restored from .sig files: a cpio cannot carry xattrs), rule
# text written to the policy file is refused (ima_write_policy: "signed policy
# file (specified as an absolute pathname) required"), a policy *path* is read
# with kernel_read_file(READING_POLICY) and appraised, and only a validly
# signed file replaces the rules. Without CONFIG_IMA_WRITE_POLICY that happens
# once; failed writes do not use it up. The loaded rules are then enforced.
scenario_policy() {
  local d=$WORK/policy k=$WORK/policy/keys st=$WORK/policy/stage img=$WORK/policy/image.sqsh r f
  mkdir -p "$k" "$st/bin" "$st/etc/ima"
  e2e_mkkey "$k" ima
  e2e_mkkey "$k" rogue
  e2e_prog "$st/bin/signed" signed
  e2e_prog "$st/bin/unsigned" unsigned
  sign_as "$ROUTE" "$k" ima "$st/bin/signed"
  local rules
  rules=$(printf '%s\n' \
    "appraise func=MODULE_CHECK appraise_type=imasig" \
    "appraise func=POLICY_CHECK appraise_type=imasig" \
    "$MEASURE_SQUASHFS" "$APPRAISE_SQUASHFS")
  for f in signed unsigned tampered wrongkey; do
    printf '# imaforge e2e policy\n# E2E-TRAILER policy-%s E2E-TRAILER-END\n%s\n' "$f" "$rules" >"$st/etc/ima/policy.$f"
  done
  sign_as "$ROUTE" "$k" ima "$st/etc/ima/policy.signed"
  sign_as "$ROUTE" "$k" ima "$st/etc/ima/policy.tampered"
  sign_as "$ROUTE" "$k" rogue "$st/etc/ima/policy.wrongkey"
  pack_as "$ROUTE" "$st" "$img"
  ROUTE_NOTES+=("policy: files and modules signed by $ROUTE, packed by $PACKED_BY")
  e2e_tamper "$img" "E2E-TRAILER policy-tampered E2E-TRAILER-END"

  r=$(new_initramfs policy)
  mkdir -p "$r/e2e/certs"
  cp "$k/ima.der" "$r/e2e/certs/"
  # every module the guest loads is signed; loop.ko stays unsigned and out of
  # the load order, as the probe for MODULE_CHECK
  local mods=()
  for f in "$r"/lib/modules/*.ko; do [ "${f##*/}" = loop.ko ] || mods+=("$f"); done
  sigfile_as "$ROUTE" "$k" ima "${mods[@]}"
  grep -vx loop.ko "$r/lib/modules/order" >"$r/lib/modules/order.new" && mv "$r/lib/modules/order.new" "$r/lib/modules/order"
  cat >"$r/e2e/scenario.sh" <<EOF2
IMA=\$(keyctl newring _ima @u)
keyctl padd asymmetric '' "\$IMA" </e2e/certs/ima.der >/dev/null
restore_sigs /lib/modules
check policy.unsigned-module-refused EACCES insmod /lib/modules/loop.ko
check policy.signed-modules-load ok sh ". /e2e/lib.sh; load_modules"
mount_image /dev/vda /mnt
check policy.before-load.unsigned-binary-runs ok exec /mnt/bin/unsigned
P=/sys/kernel/security/ima/policy
check policy.rule-text-refused EACCES sh "echo '$APPRAISE_SQUASHFS' >\$P"
check policy.unsigned-file-refused EACCES sh "echo /mnt/etc/ima/policy.unsigned >\$P"
check policy.tampered-file-refused EACCES sh "echo /mnt/etc/ima/policy.tampered >\$P"
check policy.wrongkey-file-refused EACCES sh "echo /mnt/etc/ima/policy.wrongkey >\$P"
check policy.still-unenforced.unsigned-binary-runs ok exec /mnt/bin/unsigned
check policy.no-update-before-signed-file ok sh "! dmesg | grep -q 'ima: policy update completed'"
check policy.signed-file-accepted ok sh "echo /mnt/etc/ima/policy.signed >\$P"
check policy.update-completed-logged ok sh "dmesg | grep -q 'ima: policy update completed'"
check policy.loaded-rules.signed-binary-runs ok exec /mnt/bin/signed
check policy.loaded-rules.unsigned-binary-refused EACCES exec /mnt/bin/unsigned
check policy.loaded-rules.unsigned-module-still-refused EACCES insmod /lib/modules/loop.ko
EOF2
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot policy "$d/initrd.cpio" "ima_appraise=enforce ima_policy=secure_boot" "$img"
  e2e_judge policy "$r/e2e/scenario.sh" || true
}

# --- selftest: the test of the test. The enforce scenario again, with the
# signature of bin/good broken (one byte of the RSA value changed) while its
# checks still expect it to run: the harness must count failures, and they
# must be exactly the two checks that run bin/good (every other guest check
# still passes, so the boot itself was fine). Then the parser alone: the same
# console log without its end marker and last check must fail too.
scenario_selftest() {
  local out fails expect
  out=$(PASSED=0 FAILED=0 E2E_BREAK_SIG=1 E2E_VERBOSE=1; scenario_enforce selftest 2>&1; echo "E2E-SELFTEST-COUNTS $PASSED $FAILED") ||
    { echo "$out"; e2e_die "the self-test's enforce run stopped with an error"; }
  echo "$out" >"$WORK/selftest.harness.out"
  fails=$(sed -n 's/^FAIL \(enforce\.[^:]*\):.*/\1/p' <<<"$out" | sort | tr '\n' ' ')
  expect="enforce.signed-runs enforce.signed-runs-again "
  host_check selftest.broken-signature-fails-exactly-its-checks "$expect" "${fails:-none}"
  host_check selftest.failure-names-want-and-got yes \
    "$(grep -q '^FAIL enforce.signed-runs: want=ok got=EACCES ' <<<"$out" && echo yes || echo no)"
  host_check selftest.failure-prints-console-tail yes \
    "$(grep -q '^---- last 40 console lines of selftest' <<<"$out" && echo yes || echo no)"
  host_check selftest.other-checks-passed 9 \
    "$(grep -c '^PASS enforce\.' <<<"$out" || true)"

  # parser: a console log cut short (no end marker, last check missing) fails
  local script=$WORK/selftest/initramfs/e2e/scenario.sh cut=$WORK/selftest-cut.console.log
  grep -av -e '^E2E END' -e 'name=enforce.signed-runs-again ' "$WORK/selftest.console.log" >"$cut" || true
  out=$(PASSED=0 FAILED=0 BOOT_RC=0 BOOT_SECONDS=0; e2e_judge selftest-cut "$script"; echo "rc=$?")
  host_check selftest.truncated-log-fails-without-end-marker yes \
    "$(grep -q '^FAIL selftest-cut: no end marker' <<<"$out" && echo yes || echo no)"
  host_check selftest.truncated-log-names-missing-check yes \
    "$(grep -q '^FAIL enforce.signed-runs-again: no result' <<<"$out" && echo yes || echo no)"
  host_check selftest.truncated-log-judged-failed rc=1 "$(tail -n 1 <<<"$out")"
}

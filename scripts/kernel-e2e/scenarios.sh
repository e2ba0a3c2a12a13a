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
scenario_enforce() {
  local d=$WORK/enforce k=$WORK/enforce/keys st=$WORK/enforce/stage img=$WORK/enforce/image.sqsh r
  mkdir -p "$k" "$st/bin"
  e2e_mkkey "$k" ima
  e2e_mkkey "$k" rogue
  e2e_prog "$st/bin/good" good
  e2e_prog "$st/bin/good2" good2
  e2e_prog "$st/bin/unsigned" unsigned
  e2e_prog "$st/bin/tampered" tampered
  e2e_prog "$st/bin/wrongkey" wrongkey
  e2e_prog "$st/bin/copied" copied
  local f
  for f in good good2 tampered; do e2e_evm_sign "$k/ima.key" "$st/bin/$f"; done
  e2e_evm_sign "$k/rogue.key" "$st/bin/wrongkey"
  e2e_copy_sig "$st/bin/good" "$st/bin/copied"
  e2e_mksquashfs "$st" "$img"
  e2e_tamper "$img" "E2E-TRAILER tampered E2E-TRAILER-END"

  r=$(new_initramfs enforce)
  mkdir -p "$r/e2e/certs"
  cp "$k/ima.der" "$r/e2e/certs/"
  printf '%s\n%s\n' "$MEASURE_SQUASHFS" "$APPRAISE_SQUASHFS" >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<'EOF'
load_modules
mount_image /dev/vda /mnt
# controls: before any policy every test program runs (so a refusal later is IMA's)
check enforce.pre-policy.unsigned-runs ok exec /mnt/bin/unsigned
check enforce.pre-policy.wrongkey-runs ok exec /mnt/bin/wrongkey
check enforce.pre-policy.copied-runs ok exec /mnt/bin/copied
check enforce.pre-policy.tampered-runs ok exec /mnt/bin/tampered
IMA=$(keyctl newring _ima @u)
keyctl padd asymmetric '' "$IMA" </e2e/certs/ima.der >/dev/null
set_policy /e2e/policy
check enforce.signed-runs ok exec /mnt/bin/good
check enforce.signed2-runs ok exec /mnt/bin/good2
check enforce.unsigned-refused EACCES exec /mnt/bin/unsigned
check enforce.tampered-refused EACCES exec /mnt/bin/tampered
check enforce.wrongkey-refused EACCES exec /mnt/bin/wrongkey
check enforce.copied-signature-refused EACCES exec /mnt/bin/copied
check enforce.signed-runs-again ok exec /mnt/bin/good
echo "---- ascii_runtime_measurements ----"
sed 's/^/E2E MEASURE /' /sys/kernel/security/ima/ascii_runtime_measurements
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot enforce "$d/initrd.cpio" "ima_appraise=enforce" "$img"
  e2e_judge enforce "$r/e2e/scenario.sh" || true

  # measurement: the guest's list must hold the signed program with its digest
  # and the exact security.ima value the image carries.
  local clean=$WORK/enforce.console.log.clean meas=$d/ascii_runtime_measurements
  sed -n 's/^E2E MEASURE //p' "$clean" >"$meas" || true
  local dig sig entry
  dig=$(sha256sum "$st/bin/good" | cut -d' ' -f1)
  sig=$(e2e_ima_hex "$st/bin/good")
  entry=$(awk '$5 == "/mnt/bin/good" {print $3, $4, $6; exit}' "$meas")
  host_check measure.signed-entry "ima-sig sha256:$dig $sig" "${entry:-none}"
  host_check measure.unsigned-entry-has-no-signature "ima-sig" \
    "$(awk '$5 == "/mnt/bin/unsigned" && NF == 5 {print $3; exit}' "$meas")"
  mkdir -p "$E2E_ARTIFACTS"
  cp "$meas" "$E2E_ARTIFACTS/enforce.ascii_runtime_measurements"
  cp "$k/ima.der" "$E2E_ARTIFACTS/enforce.ima.der"
}

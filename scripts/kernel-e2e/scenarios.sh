# shellcheck shell=bash
# The e2e scenarios, one function each; sourced by run.sh after the kernel,
# the tools and the base initramfs are ready. Each function makes its keys
# with `imaforge pki`, its images with `imaforge build`, writes a guest script,
# boots once and judges the console. evmctl and mksquashfs appear only as the
# control disk of the enforce boot.

APPRAISE_SQUASHFS='appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig'
MEASURE_SQUASHFS='measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig'

# put_export INITRAMFS EXPORTDIR: the `imaforge pki export` output goes to
# /e2e/keys in the guest; the guest runs its load-keys.sh as written.
put_export() {
  mkdir -p "$1/e2e/keys"
  cp -a "$2"/. "$1/e2e/keys/"
  [ -x "$1/e2e/keys/load-keys.sh" ] || chmod 0755 "$1/e2e/keys/load-keys.sh"
}

# --- enforce ----------------------------------------------------------------
# Kernel mechanism: ima_appraise=enforce and the rule
#   appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig
# make execve of a file on SquashFS go through ima_appraise_measurement, which
# checks security.ima with integrity_digsig_verify against the keys in the
# `_ima` keyring (created from user space by load-keys.sh; IMA finds it by
# name at first use). The measure rule with template=ima-sig logs every
# executed file with its signature.
# Disks: vda = the image `imaforge build` made (signed, unsigned, wrong-key and
# a file tampered after the build); vdb = the attack image, `imaforge squashfs
# pack` of a file carrying a signature copied from the built image; vdc = the
# control, the same tree signed by evmctl and packed by mksquashfs.
# E2E_BREAK_SIG=1 (the self-test): one byte of bin/good's signature is changed
# in the built image while the checks still expect bin/good to run.
scenario_enforce() {
  local name=${1:-enforce}
  local d=$WORK/$name k=$WORK/$name/pki r f
  mkdir -p "$k" "$d/stage/bin" "$d/attack/bin" "$d/control/bin"
  pki_root "$k/root" "E2E Manufacturer"
  pki_issue ima "$k/root/root" "$k/ima" ima "E2E IMA"
  pki_root "$k/rogue-root" "E2E Rogue"
  pki_issue ima "$k/rogue-root/root" "$k/rogue" rogue "E2E Rogue IMA"
  forge pki export --out "$d/export" --root "$k/root/root.pem" --cert "$k/ima/ima.pem"

  for f in good good2 unsigned tampered wrongkey; do e2e_prog "$d/stage/bin/$f" "$f"; done
  {
    manifest_head image.sqsh
    cat <<EOF
keys:
  ima: {cert: pki/ima/ima.pem, key: pki/ima/ima.key}
  rogue: {cert: pki/rogue/rogue.pem, key: pki/rogue/rogue.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/unsigned
    sign: false
  - match: /bin/wrongkey
    key: rogue
  - match: /**
    key: ima
EOF
  } >"$d/m.yaml"
  forge build -q "$d/m.yaml"
  local img=$d/image.sqsh good_sig
  [ -s "$img" ] || e2e_die "imaforge build wrote no $img"
  good_sig=$(image_ima_hex "$img" /bin/good)
  [ -n "$good_sig" ] || e2e_die "rdsquashfs finds no security.ima on /bin/good in $img"
  e2e_tamper "$img" "E2E-TRAILER tampered E2E-TRAILER-END"
  if [ -n "${E2E_BREAK_SIG:-}" ]; then
    e2e_patch_hex "$img" "${good_sig:40:64}" "$(flip_byte_hex "${good_sig:40:64}" 20)"
  fi

  # the attack: bin/good's signature, read from the built image, on other bytes
  e2e_prog "$d/attack/bin/copied" copied
  setfattr -n security.ima -v "0x$good_sig" "$d/attack/bin/copied"
  forge squashfs pack --comp none --epoch 0 --all-root "$d/attack" "$d/attack.sqsh"

  # the control: the same tree through evmctl and mksquashfs
  for f in good unsigned tampered wrongkey copied; do e2e_prog "$d/control/bin/$f" "$f"; done
  e2e_evm_sign "$k/ima/ima.key" "$d/control/bin/good"
  e2e_evm_sign "$k/ima/ima.key" "$d/control/bin/tampered"
  e2e_evm_sign "$k/rogue/rogue.key" "$d/control/bin/wrongkey"
  e2e_copy_sig "$d/control/bin/good" "$d/control/bin/copied"
  e2e_mksquashfs "$d/control" "$d/control.sqsh"
  e2e_tamper "$d/control.sqsh" "E2E-TRAILER tampered E2E-TRAILER-END"

  r=$(new_initramfs "$name")
  put_export "$r" "$d/export"
  printf '%s\n%s\n' "$MEASURE_SQUASHFS" "$APPRAISE_SQUASHFS" >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<'EOF'
load_modules
mount_image /dev/vda /mnt
mount_image /dev/vdb /attack
mount_image /dev/vdc /control
# before any policy every test program runs: a refusal later is IMA's
check enforce.pre-policy.unsigned-runs ok exec /mnt/bin/unsigned
check enforce.pre-policy.wrongkey-runs ok exec /mnt/bin/wrongkey
check enforce.pre-policy.tampered-runs ok exec /mnt/bin/tampered
check enforce.pre-policy.copied-runs ok exec /attack/bin/copied
check enforce.load-keys-script ok sh "/e2e/keys/load-keys.sh"
set_policy /e2e/policy
check enforce.signed-runs ok exec /mnt/bin/good
check enforce.signed2-runs ok exec /mnt/bin/good2
check enforce.unsigned-refused EACCES exec /mnt/bin/unsigned
check enforce.tampered-refused EACCES exec /mnt/bin/tampered
check enforce.wrongkey-refused EACCES exec /mnt/bin/wrongkey
check enforce.copied-signature-refused EACCES exec /attack/bin/copied
check enforce.signed-runs-again ok exec /mnt/bin/good
check control.signed-runs ok exec /control/bin/good
check control.unsigned-refused EACCES exec /control/bin/unsigned
check control.tampered-refused EACCES exec /control/bin/tampered
check control.wrongkey-refused EACCES exec /control/bin/wrongkey
check control.copied-signature-refused EACCES exec /control/bin/copied
EOF
  # every compressor imaforge writes and the larger hashes, read by the
  # kernel (vdd onwards). Debian builds sha384/sha512 as a module
  # (CONFIG_CRYPTO_SHA512=m): until sha512_generic is loaded IMA cannot hash
  # with them ("ima: Can not allocate sha512") and refuses such files; a
  # device whose initramfs does not load it refuses every sha384/512 image.
  local fdisks=() c dev=d big=""
  if [ -z "${E2E_BREAK_SIG:-}" ]; then
    for c in $E2E_FORMATS; do
      format_image "$d" "$c"
      fdisks+=("$d/format-$c.sqsh")
      echo "mount_image /dev/vd$dev /f-$c" >>"$r/e2e/scenario.sh"
      case $c in
        *-sha384 | *-sha512)
          big=1
          echo "check format.$c.refused-until-sha512-module-loaded EACCES exec /f-$c/bin/good" >>"$r/e2e/scenario.sh" ;;
      esac
      dev=$(echo "$dev" | tr a-y b-z)
    done
    [ -z "$big" ] || echo "check format.sha512-module-loads ok insmod /lib/modules/sha512_generic.ko" >>"$r/e2e/scenario.sh"
    for c in $E2E_FORMATS; do
      cat >>"$r/e2e/scenario.sh" <<EOF
check format.$c.signed-runs ok exec /f-$c/bin/good
check format.$c.unsigned-refused EACCES exec /f-$c/bin/unsigned
check format.$c.multiblock-file-runs ok exec /f-$c/bin/big
check format.$c.large-directory-lookup-runs ok exec /f-$c/many/zz-run
check format.$c.symlink-to-signed-runs ok exec /f-$c/bin/link
EOF
    done
  fi
  cat >>"$r/e2e/scenario.sh" <<'EOF'
echo "---- ascii_runtime_measurements ----"
sed 's/^/E2E MEASURE /' /sys/kernel/security/ima/ascii_runtime_measurements
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot "$name" "$d/initrd.cpio" "ima_appraise=enforce" "$img" "$d/attack.sqsh" "$d/control.sqsh" "${fdisks[@]}"
  e2e_judge "$name" "$r/e2e/scenario.sh" || true

  # measurement: the guest's list holds bin/good with the digest of its bytes
  # and the exact security.ima value the built image carries (read back by a
  # peer reader), and bin/unsigned with an empty signature field.
  local meas=$d/ascii_runtime_measurements dig entry
  sed -n 's/^E2E MEASURE //p' "$WORK/$name.console.log.clean" >"$meas" || true
  dig=$(sha256sum "$d/stage/bin/good" | cut -d' ' -f1)
  entry=$(awk '$5 == "/mnt/bin/good" {print $3, $4, $6; exit}' "$meas")
  host_check measure.signed-entry "ima-sig sha256:$dig $(image_ima_hex "$img" /bin/good)" "${entry:-none}"
  # RSA PKCS#1 v1.5 is deterministic: imaforge's signature of bin/good must be
  # evmctl's, byte for byte (same key, same bytes, same key id)
  host_check enforce.imaforge-signature-equals-evmctl "$(e2e_ima_hex "$d/control/bin/good")" "$good_sig"
  host_check measure.unsigned-entry-has-no-signature "ima-sig" \
    "$(awk '$5 == "/mnt/bin/unsigned" && NF == 5 {print $3; exit}' "$meas")"
  if [ "$name" = enforce ]; then
    mkdir -p "$E2E_ARTIFACTS"
    cp "$meas" "$E2E_ARTIFACTS/enforce.ascii_runtime_measurements"
    cp "$img" "$E2E_ARTIFACTS/enforce.image.sqsh"
    cp "$img.record.json" "$E2E_ARTIFACTS/enforce.image.record.json"
    rm -rf "$E2E_ARTIFACTS/enforce.export"
    cp -a "$d/export" "$E2E_ARTIFACTS/enforce.export"
    verify_agrees "$d"
  fi
}

# format_image DIR FORMAT: DIR/format-FORMAT.sqsh, built by `imaforge build`;
# FORMAT is COMPRESSOR or COMPRESSOR-HASH (hash: sha256 unless named). The
# tree: a signed and an unsigned program, a signed program of 1 MiB and a bit
# (several data blocks and a fragment tail), a symlink to the signed program,
# and a directory of 1000 entries (large enough for a directory index) with a
# signed program sorted last.
E2E_FORMATS=${E2E_FORMATS:-zstd gzip xz lz4 zstd-sha384 zstd-sha512}
format_image() {
  local d=$1 c=$2 st=$1/format-src i
  if [ ! -d "$st" ]; then
    mkdir -p "$st/bin" "$st/many"
    e2e_prog "$st/bin/good" format-good
    e2e_prog "$st/bin/unsigned" format-unsigned
    e2e_prog "$st/bin/big" format-big
    head -c $((1024 * 1024 + 1000)) /dev/urandom >>"$st/bin/big"
    ln -s good "$st/bin/link"
    for i in $(seq -w 1 1000); do echo "entry $i" >"$st/many/file-with-a-longish-name-$i"; done
    e2e_prog "$st/many/zz-run" format-zz-run
  fi
  {
    local comp=${c%%-*} hash=sha256
    [ "$comp" = "$c" ] || hash=${c#*-}
    manifest_head "format-$c.sqsh" | sed -e "s/compression: none/compression: $comp/" -e "s/^hash: sha256$/hash: $hash/"
    cat <<EOF
keys:
  ima: {cert: pki/ima/ima.pem, key: pki/ima/ima.key}
sources:
  - from: format-src/
    to: /
rules:
  - match: /bin/unsigned
    sign: false
  - match: /**
    key: ima
EOF
  } >"$d/m-$c.yaml"
  forge build -q "$d/m-$c.yaml"
}

# verify_agrees DIR: issue 8's "the set of files the kernel refuses equals
# the set `imaforge verify` reports", for each disk of the enforce boot (the
# built image, the attack image, mksquashfs's control image, one image per
# compressor). Every file that is not validly signed is executed by a guest
# check, so the kernel's set is complete: the paths whose exec check got
# EACCES under that mount point (the 1000 signed directory entries of the
# compressor images are not executed; verify must not flag them). imaforge
# verify gets the trust the device has (the root and the IMA certificate)
# and the policy the guest wrote, and reports per file whether the kernel
# would refuse it (--json: files[].appraisal.refused).
verify_agrees() {
  local d=$1 disk
  local c extra=""
  for c in $E2E_FORMATS; do extra+=" format-$c.sqsh:/f-$c"; done
  for disk in image.sqsh:/mnt attack.sqsh:/attack control.sqsh:/control $extra; do
    verify_agrees_disk "enforce" "${disk%%.*}" "$d/${disk%%:*}" "${disk#*:}" "$d/initramfs/e2e/policy" \
      --root "$d/pki/root/root.pem" --cert "$d/pki/ima/ima.pem"
  done
  host_check verify.kernel-refused-set.image "/bin/tampered /bin/unsigned /bin/wrongkey " \
    "$(sed -n 's|^E2E CHECK .*got=EACCES .*path=/mnt\(/[^ ]*\).*|\1|p' "$WORK/enforce.console.log.clean" | sort -u | tr '\n' ' ')"
}

# verify_agrees_disk BOOT LABEL IMAGE MOUNTPOINT POLICY VERIFY-TRUST-ARGS...:
# one host check comparing the kernel's refusals under MOUNTPOINT in BOOT's
# console with the files `imaforge verify --json` says the kernel would refuse.
verify_agrees_disk() {
  local boot=$1 label=$2 img=$3 mp=$4 pol=$5 kset vset rc=0
  shift 5
  # the kernel's last word on each path (a file refused before a module or
  # the keys were loaded and run afterwards counts as run)
  kset=$(awk -v mp="$mp" '
    /^E2E CHECK / {
      got = ""; path = ""
      for (i = 3; i <= NF; i++) {
        if ($i ~ /^got=/) got = substr($i, 5)
        if ($i ~ /^path=/) path = substr($i, 6)
      }
      if (index(path, mp "/") == 1) last[substr(path, length(mp) + 1)] = got
    }
    END { for (p in last) if (last[p] == "EACCES") print p }' "$WORK/$boot.console.log.clean" | sort | tr '\n' ' ')
  "$IMAFORGE" verify --json "$@" --policy "$pol" "$img" >"$img.verify.json" 2>"$img.verify.err" || rc=$?
  if [ "$rc" -gt 1 ]; then
    host_check "verify.runs.$boot.$label" "exit 0 or 1" "exit $rc: $(head -c 200 "$img.verify.err")"
    return 0
  fi
  vset=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(" ".join(sorted(f["path"] for f in r.get("files", []) if (f.get("appraisal") or {}).get("refused"))), end=" ")
' "$img.verify.json" 2>&1)
  host_check "verify.agrees-with-kernel.$boot.$label" "${kset:-none}" "${vset:-none}"
}

# --- hierarchy ----------------------------------------------------------------
# manufacturer root -> owner CA -> tenant IMA keys, made by `imaforge pki` and
# loaded by the load-keys.sh `imaforge pki export` writes: three user-space
# keyrings, imaforge-mfr (roots, then locked by restrict_keyring with no
# restriction: later adds EPERM), imaforge-owner (restrict_keyring asymmetric
# key_or_keyring:<mfr>), _ima (key_or_keyring:<owner>, then frozen with
# setperm 0x0b0b0000: later adds EACCES). The kernel's
# restrict_link_by_key_or_keyring verifies each certificate's signature with
# the ring above as it is added: issuer key absent ENOKEY, digest mismatch
# EKEYREJECTED, undecodable signature EINVAL (as seen on 6.1).
# Revocation on this kernel: `imaforge pki revoke` puts the tenant in the
# owner CA's CRL, `pki export` leaves its certificate out, so its binaries fail
# integrity_digsig_verify for want of the key (EACCES to the caller); the
# kernel itself has no run-time revocation list a user can add to (FACTS.md).
# `imaforge pki verify` (what build checks) refuses the revoked key on the host.
# The kernel does not check dates, keyUsage or basicConstraints here.
scenario_hierarchy() {
  local d=$WORK/hierarchy k=$WORK/hierarchy/pki r f
  mkdir -p "$k" "$d/stage/bin" "$d/probe"
  pki_root "$k/root" "E2E Manufacturer"
  pki_issue owner-ca "$k/root/root" "$k/owner" owner "E2E Owner"
  pki_issue ima "$k/owner/owner" "$k/tenant" tenant "E2E Tenant"
  pki_issue ima "$k/owner/owner" "$k/tenant" revoked "E2E Revoked Tenant"
  pki_issue ima "$k/owner/owner" "$k/tenant" late "E2E Late Tenant"
  pki_issue ima "$k/root/root" "$k/tenant" by-root "E2E Tenant Signed By Root"
  pki_root "$k/rogue-root" "E2E Rogue"
  pki_issue owner-ca "$k/rogue-root/root" "$k/rogue" rogue-owner "E2E Rogue Owner"
  pki_issue ima "$k/rogue/rogue-owner" "$k/rogue" rogue-tenant "E2E Rogue Tenant"

  # the image is built while every tenant key is still good
  for f in tenant-app revoked-app rogue-app late-app; do e2e_prog "$d/stage/bin/$f" "$f"; done
  {
    manifest_head image.sqsh
    cat <<EOF
keys:
  tenant: {cert: pki/tenant/tenant.pem, key: pki/tenant/tenant.key}
  revoked: {cert: pki/tenant/revoked.pem, key: pki/tenant/revoked.key}
  late: {cert: pki/tenant/late.pem, key: pki/tenant/late.key}
  rogue: {cert: pki/rogue/rogue-tenant.pem, key: pki/rogue/rogue-tenant.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/revoked-app
    key: revoked
  - match: /bin/late-app
    key: late
  - match: /bin/rogue-app
    key: rogue
  - match: /**
    key: tenant
EOF
  } >"$d/m.yaml"
  forge build -q "$d/m.yaml"

  # then the owner revokes one tenant; the export leaves it out
  forge pki revoke --cert "$k/tenant/revoked.pem" --ca "$k/owner/owner.pem" --ca-key "$k/owner/owner.key" --reason keyCompromise
  forge pki export --out "$d/export" --root "$k/root/root.pem" --intermediate "$k/owner/owner.pem" \
    --crl "$k/owner/owner.crl" --cert "$k/tenant/tenant.pem" --cert "$k/tenant/revoked.pem"
  local subjects=""
  for f in "$d"/export/certs/*.der; do subjects+="$(openssl x509 -inform DER -in "$f" -noout -subject 2>/dev/null | sed 's/.*CN *= *//');"; done
  host_check hier.export-loads-root-owner-tenant-only "E2E Manufacturer;E2E Owner;E2E Tenant;" "$subjects"
  local vargs=(--root "$k/root/root.pem" --intermediate "$k/owner/owner.pem" --crl "$k/root/root.crl" --crl "$k/owner/owner.crl")
  host_check hier.pki-verify-accepts-tenant ok \
    "$("$IMAFORGE" pki verify "${vargs[@]}" "$k/tenant/tenant.pem" >/dev/null 2>&1 && echo ok || echo refused)"
  host_check hier.pki-verify-refuses-revoked refused \
    "$("$IMAFORGE" pki verify "${vargs[@]}" "$k/tenant/revoked.pem" >/dev/null 2>&1 && echo ok || echo refused)"

  # after the revocation, a build whose manifest names the trust store must
  # refuse to sign with the revoked key (and leave no image behind)
  mkdir -p "$d/rebuild"
  {
    manifest_head rebuild/image.sqsh
    cat <<EOF
trust:
  roots: [pki/root/root.pem]
  intermediates: [pki/owner/owner.pem]
  crls: [pki/root/root.crl, pki/owner/owner.crl]
keys:
  tenant: {cert: pki/tenant/tenant.pem, key: pki/tenant/tenant.key}
  revoked: {cert: pki/tenant/revoked.pem, key: pki/tenant/revoked.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/revoked-app
    key: revoked
  - match: /**
    key: tenant
EOF
  } >"$d/m-trust.yaml"
  local got
  if "$IMAFORGE" build -q "$d/m-trust.yaml" >"$d/rebuild.log" 2>&1; then got=signed; else got=refused; fi
  [ ! -e "$d/rebuild/image.sqsh" ] || got="$got+image-left"
  host_check hier.build-refuses-revoked-key refused "$got"
  host_check hier.build-refusal-names-revoked-cert yes \
    "$(grep -qi 'revoked' "$d/rebuild.log" && echo yes || echo "no:$(head -c 120 "$d/rebuild.log" | tr -c 'A-Za-z0-9:._-' _)")"

  # probes for the restrictions: certificates load-keys.sh never loads
  cp "$k/rogue-root/root.der" "$d/probe/rogue-root.der"
  cp "$k/rogue/rogue-owner.der" "$d/probe/rogue-owner.der"
  cp "$k/rogue/rogue-tenant.der" "$d/probe/rogue-tenant.der"
  cp "$k/tenant/by-root.der" "$d/probe/by-root.der"
  cp "$k/tenant/late.der" "$d/probe/late.der"
  cp "$k/tenant/revoked.der" "$d/probe/revoked.der"
  # late.der with its subject edited (the signed digest no longer matches) and
  # with one byte of its signature value changed (the RSA block no longer decodes)
  cp "$k/tenant/late.der" "$d/probe/tampered.der"
  e2e_patch_once "$d/probe/tampered.der" "E2E Late Tenant" "E2E Evil Tenant"
  cp "$k/tenant/late.der" "$d/probe/badsig.der"
  local sz; sz=$(stat -c %s "$d/probe/badsig.der")
  printf '\x55' | dd of="$d/probe/badsig.der" bs=1 seek=$((sz - 8)) conv=notrunc status=none

  r=$(new_initramfs hierarchy)
  put_export "$r" "$d/export"
  mkdir -p "$r/e2e/probe"; cp "$d"/probe/*.der "$r/e2e/probe/"
  echo "$APPRAISE_SQUASHFS" >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<'EOF'
load_modules
check hier.load-keys-script ok sh "/e2e/keys/load-keys.sh"
P=/e2e/probe
MFR=$(keyctl search @u keyring imaforge-mfr)
OWN=$(keyctl search @u keyring imaforge-owner)
IMA=$(keyctl search @u keyring _ima)
check hier.locked-root-ring-refuses-rogue-root EPERM sh "keyctl padd asymmetric '' $MFR <$P/rogue-root.der"
check hier.owner-ring-refuses-rogue-owner-ca ENOKEY sh "keyctl padd asymmetric '' $OWN <$P/rogue-owner.der"
check hier.owner-ring-refuses-tenant-cert ENOKEY sh "keyctl padd asymmetric '' $OWN <$P/late.der"
check hier.frozen-ima-refuses-valid-tenant EACCES sh "keyctl padd asymmetric '' $IMA <$P/late.der"
check hier.frozen-ima-refuses-revoked-tenant EACCES sh "keyctl padd asymmetric '' $IMA <$P/revoked.der"
TENANT_KEY=$(keyctl rlist "$IMA" | cut -d' ' -f1)
check hier.frozen-ima-refuses-unlinking-its-key EACCES sh "keyctl unlink $TENANT_KEY $IMA"
# the same restriction on a probe ring (not frozen), to see the signature checks
PROBE=$(keyctl newring probe-ima @u)
keyctl restrict_keyring "$PROBE" asymmetric "key_or_keyring:$OWN"
check hier.restriction-refuses-rogue-tenant ENOKEY sh "keyctl padd asymmetric '' $PROBE <$P/rogue-tenant.der"
check hier.restriction-refuses-tenant-signed-by-root ENOKEY sh "keyctl padd asymmetric '' $PROBE <$P/by-root.der"
check hier.restriction-refuses-edited-cert EKEYREJECTED sh "keyctl padd asymmetric '' $PROBE <$P/tampered.der"
check hier.restriction-refuses-bad-signature EINVAL sh "keyctl padd asymmetric '' $PROBE <$P/badsig.der"
check hier.restriction-accepts-owner-signed-tenant ok sh "keyctl padd asymmetric '' $PROBE <$P/late.der"
keyctl unlink "$PROBE" @u >/dev/null
mount_image /dev/vda /mnt
set_policy /e2e/policy
check hier.tenant-binary-runs ok exec /mnt/bin/tenant-app
check hier.revoked-tenant-binary-refused EACCES exec /mnt/bin/revoked-app
check hier.rogue-tenant-binary-refused EACCES exec /mnt/bin/rogue-app
check hier.late-tenant-binary-refused EACCES exec /mnt/bin/late-app
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot hierarchy "$d/initrd.cpio" "ima_appraise=enforce" "$d/image.sqsh"
  e2e_judge hierarchy "$r/e2e/scenario.sh" || true
  # imaforge verify, given exactly what the export loads (and the CRL),
  # predicts the kernel's refusals: revoked, rogue and late tenants
  verify_agrees_disk hierarchy image "$d/image.sqsh" /mnt "$r/e2e/policy" \
    --root "$k/root/root.pem" --intermediate "$k/owner/owner.pem" --crl "$k/root/root.crl" --crl "$k/owner/owner.crl" \
    --cert "$k/tenant/tenant.pem"
}

# --- policy ---------------------------------------------------------------------
# Boot with ima_policy=secure_boot. The built-in rules appraise MODULE_CHECK,
# FIRMWARE_CHECK, KEXEC_* and POLICY_CHECK with signatures required
# (IMA_DIGSIG_REQUIRED): the modules the guest loads need security.ima
# (`imaforge file sign --sigfile`, restored in the guest: a cpio cannot carry
# xattrs), rule text written to the policy file is refused (ima_write_policy:
# "signed policy file (specified as an absolute pathname) required"), a
# policy *path* is read with kernel_read_file(READING_POLICY) and appraised,
# and only a validly signed file replaces the rules. Without
# CONFIG_IMA_WRITE_POLICY that happens once; failed writes do not use it up.
# The loaded rules are then enforced. The signed, tampered and wrong-key
# policy files are the manifest's `policy:` fragments (linted and signed by
# `imaforge build`); the unsigned one is a plain source file; the rules pass
# `imaforge policy lint --kernel 6.1` first.
scenario_policy() {
  local d=$WORK/policy k=$WORK/policy/pki r f
  mkdir -p "$k" "$d/stage/bin" "$d/stage/etc/ima"
  pki_root "$k/root" "E2E Manufacturer"
  pki_issue ima "$k/root/root" "$k/ima" ima "E2E IMA"
  pki_root "$k/rogue-root" "E2E Rogue"
  pki_issue ima "$k/rogue-root/root" "$k/rogue" rogue "E2E Rogue IMA"
  forge pki export --out "$d/export" --root "$k/root/root.pem" --cert "$k/ima/ima.pem"

  e2e_prog "$d/stage/bin/signed" signed
  e2e_prog "$d/stage/bin/unsigned" unsigned
  local rules
  rules=$(printf '%s\n' \
    "appraise func=MODULE_CHECK appraise_type=imasig" \
    "appraise func=POLICY_CHECK appraise_type=imasig" \
    "$MEASURE_SQUASHFS" "$APPRAISE_SQUASHFS")
  # the unsigned fragment is a plain source file; the others are the
  # manifest's policy: fragments, which the build lints and signs
  printf '# E2E-TRAILER policy-unsigned E2E-TRAILER-END\n%s\n' "$rules" >"$d/stage/etc/ima/policy.unsigned"
  printf '%s\n' "$rules" >"$d/rules.policy"
  if imaforge_has policy lint; then
    host_check policy.lint-6.1-clean ok \
      "$("$IMAFORGE" policy lint --kernel 6.1 "$d/rules.policy" >"$d/lint.out" 2>&1 && echo ok || echo "lint-failed:$(head -c 200 "$d/lint.out" | tr -c 'A-Za-z0-9:._-' _)")"
  fi
  {
    manifest_head image.sqsh
    cat <<EOF
keys:
  ima: {cert: pki/ima/ima.pem, key: pki/ima/ima.key}
  rogue: {cert: pki/rogue/rogue.pem, key: pki/rogue/rogue.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/unsigned
    sign: false
  - match: /etc/ima/policy.unsigned
    sign: false
  - match: /**
    key: ima
policy:
EOF
    for f in signed:ima tampered:ima wrongkey:rogue; do
      printf '  - name: e2e-%s\n    path: /etc/ima/policy.%s\n    key: %s\n    rules: |\n' "${f%%:*}" "${f%%:*}" "${f#*:}"
      printf '      # E2E-TRAILER policy-%s E2E-TRAILER-END\n' "${f%%:*}"
      printf '%s\n' "$rules" | sed 's/^/      /'
    done
  } >"$d/m.yaml"
  forge build -q "$d/m.yaml"
  e2e_tamper "$d/image.sqsh" "E2E-TRAILER policy-tampered E2E-TRAILER-END"

  r=$(new_initramfs policy)
  put_export "$r" "$d/export"
  # every module the guest loads is signed; loop.ko stays unsigned and out of
  # the load order, as the probe for MODULE_CHECK
  local mods=()
  for f in "$r"/lib/modules/*.ko; do [ "${f##*/}" = loop.ko ] || mods+=("$f"); done
  forge file sign --key "$k/ima/ima.key" --cert "$k/ima/ima.pem" --hash sha256 --sigfile "${mods[@]}"
  for f in "${mods[@]}"; do [ -s "$f.sig" ] || e2e_die "imaforge file sign wrote no $f.sig"; done
  grep -vx loop.ko "$r/lib/modules/order" >"$r/lib/modules/order.new" && mv "$r/lib/modules/order.new" "$r/lib/modules/order"
  cat >"$r/e2e/scenario.sh" <<EOF
check policy.load-keys-script ok sh "/e2e/keys/load-keys.sh"
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
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot policy "$d/initrd.cpio" "ima_appraise=enforce ima_policy=secure_boot" "$d/image.sqsh"
  e2e_judge policy "$r/e2e/scenario.sh" || true
}

# --- selftest -------------------------------------------------------------------
# The test of the test. The enforce scenario again, with one byte of bin/good's
# signature changed in the built image while its checks still expect it to
# run: the harness must count failures, and they must be exactly the two
# checks that run bin/good (every other guest check still passes, so the boot
# itself was fine). Then the parser alone: the same console log without its
# end marker and last check must fail too.
scenario_selftest() {
  local out fails expect
  # shellcheck disable=SC2034 # read by the scenario and e2e_judge it calls
  out=$(PASSED=0 FAILED=0 E2E_BREAK_SIG=1 E2E_VERBOSE=1; scenario_enforce selftest 2>&1; echo "E2E-SELFTEST-COUNTS $PASSED $FAILED") ||
    { echo "$out"; e2e_die "the self-test's enforce run stopped with an error"; }
  echo "$out" >"$WORK/selftest.harness.out"
  fails=$(sed -n 's/^FAIL \([a-z]*\.[^:]*\):.*/\1/p' <<<"$out" | sort | tr '\n' ' ')
  expect="enforce.signed-runs enforce.signed-runs-again "
  host_check selftest.broken-signature-fails-exactly-its-checks "$expect" "${fails:-none}"
  host_check selftest.failure-names-want-and-got yes \
    "$(grep -q '^FAIL enforce.signed-runs: want=ok got=EACCES ' <<<"$out" && echo yes || echo no)"
  host_check selftest.failure-prints-console-tail yes \
    "$(grep -q '^---- last 40 console lines of selftest' <<<"$out" && echo yes || echo no)"
  local declared
  declared=$(e2e_expected_checks "$WORK/selftest/initramfs/e2e/scenario.sh" | wc -l)
  host_check selftest.other-guest-checks-passed $((declared - 2)) \
    "$(grep -c '^PASS \(enforce\|control\)\..* got=' <<<"$out" || true)"

  # parser: a console log cut short (no end marker, last check missing) fails
  local script=$WORK/selftest/initramfs/e2e/scenario.sh cut=$WORK/selftest-cut.console.log last
  last=$(e2e_expected_checks "$script" | tail -n 1)
  grep -av -e '^E2E END' -e "name=$last " "$WORK/selftest.console.log" >"$cut" || true
  # shellcheck disable=SC2034 # read by e2e_judge
  out=$(PASSED=0 FAILED=0 BOOT_RC=0 BOOT_SECONDS=0; e2e_judge selftest-cut "$script"; echo "rc=$?")
  host_check selftest.truncated-log-fails-without-end-marker yes \
    "$(grep -q '^FAIL selftest-cut: no end marker' <<<"$out" && echo yes || echo no)"
  host_check selftest.truncated-log-names-missing-check yes \
    "$(grep -q "^FAIL $last: no result" <<<"$out" && echo yes || echo no)"
  host_check selftest.truncated-log-judged-failed rc=1 "$(tail -n 1 <<<"$out")"
}

# --- verity (issue 11's image.verity, judged by the kernel) ------------------
# `imaforge build` with image.verity: true appends a dm-verity hash tree; the
# guest maps the image through the kernel's dm-verity target (DM_DEV_CREATE,
# DM_TABLE_LOAD, resume: e2e-tool dmcreate) with the table line built from
# the build record (verity.data_blocks, hash_offset, salt, root_hash; hash
# start = hash_offset/4096 + 1, past the verity superblock: docs/integrity.md).
# Every 4 KiB block is checked against the tree when it is read (EIO on a
# mismatch), and IMA appraisal still judges each program on top.
# Disks: vda = the image as built; vdb = the same image with one byte of
# /bin/victim's data changed after the build, mapped through dm-verity; vdc =
# that file again, mounted directly (dm holds vdb exclusively).
scenario_verity() {
  local d=$WORK/verity k=$WORK/verity/pki r f
  mkdir -p "$k" "$d/stage/bin"
  pki_root "$k/root" "E2E Manufacturer"
  pki_issue ima "$k/root/root" "$k/ima" ima "E2E IMA"
  forge pki export --out "$d/export" --root "$k/root/root.pem" --cert "$k/ima/ima.pem"
  for f in good unsigned; do e2e_prog "$d/stage/bin/$f" "verity-$f"; done
  head -c 300000 /dev/urandom >>"$d/stage/bin/good"
  # the victim's marker sits in its first 128 KiB data block, far from the
  # fragments and the metadata at the end of the image (a corrupted block
  # that shares 4 KiB with the inode table would fail the mount instead)
  cp "$TOOLS/prog" "$d/stage/bin/victim"
  printf '\nE2E-TRAILER verity-victim E2E-TRAILER-END\n' >>"$d/stage/bin/victim"
  head -c 300000 /dev/urandom >>"$d/stage/bin/victim"
  chmod 0755 "$d/stage/bin/victim"
  {
    manifest_head image.sqsh | sed 's/^  compression: none$/  compression: none\n  verity: true/'
    cat <<EOF
keys:
  ima: {cert: pki/ima/ima.pem, key: pki/ima/ima.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/unsigned
    sign: false
  - match: /**
    key: ima
EOF
  } >"$d/m.yaml"
  forge build -q "$d/m.yaml"
  python3 - "$d/image.sqsh.record.json" "$d" <<'PY' || e2e_die "no verity section in the build record"
import json, sys
v = json.load(open(sys.argv[1]))["verity"]
bs = v["data_block_size"]
assert bs == 4096 and v["hash_block_size"] == 4096 and v["hash"] == "sha256", v
def table(dev, root):
    return "0 %d verity 1 %s %s 4096 4096 %d %d sha256 %s %s\n" % (
        v["data_blocks"] * bs // 512, dev, dev, v["data_blocks"], v["hash_offset"] // bs + 1,
        root, v["salt"] or "-")
root = v["root_hash"]
bad = root[:-1] + ("0" if root[-1] != "0" else "1")
open(sys.argv[2] + "/vda.table", "w").write(table("/dev/vda", root))
open(sys.argv[2] + "/vdb.table", "w").write(table("/dev/vdb", root))
open(sys.argv[2] + "/badroot.table", "w").write(table("/dev/vda", bad))
PY
  cp "$d/image.sqsh" "$d/tampered.sqsh"
  e2e_tamper "$d/tampered.sqsh" "E2E-TRAILER verity-victim E2E-TRAILER-END"

  r=$(new_initramfs verity)
  put_export "$r" "$d/export"
  cp "$d"/*.table "$r/e2e/"
  echo "$APPRAISE_SQUASHFS" >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<'EOF'
load_modules
check verity.load-keys-script ok sh "/e2e/keys/load-keys.sh"
set_policy /e2e/policy
check verity.table-loads ok sh "e2e-tool dmcreate good /e2e/vda.table"
check verity.mount ok sh "mkdir -p /v && mount -t squashfs -o ro $(dm_dev good) /v"
check verity.signed-multiblock-runs ok exec /v/bin/good
check verity.victim-runs ok exec /v/bin/victim
check verity.unsigned-refused-by-ima EACCES exec /v/bin/unsigned
check verity.tampered-table-loads ok sh "e2e-tool dmcreate tampered /e2e/vdb.table"
check verity.tampered-mount ok sh "mkdir -p /t && mount -t squashfs -o ro $(dm_dev tampered) /t"
check verity.tampered-block-read-fails EIO read /t/bin/victim
check verity.tampered-untouched-file-runs ok exec /t/bin/good
mount_image /dev/vdc /raw
check verity.tampered-without-verity-refused-by-ima EACCES exec /raw/bin/victim
check verity.wrong-root-hash-table-loads ok sh "e2e-tool dmcreate badroot /e2e/badroot.table"
check verity.wrong-root-hash-mount-fails EIO sh "mkdir -p /b && mount -t squashfs -o ro $(dm_dev badroot) /b"
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  e2e_boot verity "$d/initrd.cpio" "ima_appraise=enforce" "$d/image.sqsh" "$d/tampered.sqsh" "$d/tampered.sqsh"
  e2e_judge verity "$r/e2e/scenario.sh" || true
}

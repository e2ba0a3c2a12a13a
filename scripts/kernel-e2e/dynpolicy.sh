# shellcheck shell=bash
# The dynpolicy scenario (issue 23), sourced by run.sh: tenant images mounted
# at run time bring policy fragments that the device appends to the running
# policy, on the second judge kernel (build-kernel.sh: Debian's
# linux-source-6.1 with CONFIG_IMA_WRITE_POLICY and CONFIG_IMA_READ_POLICY).
#
# Kernel mechanism: with CONFIG_IMA_WRITE_POLICY the first policy write
# replaces the built-in (ima_policy=secure_boot) rules and every later write
# appends (ima_update_policy). The base policy keeps
# "appraise func=POLICY_CHECK appraise_type=imasig", so each later write must
# be the path of a file whose security.ima verifies against _ima
# (ima_read_policy -> kernel_read_file(READING_POLICY)); rule text gets
# EACCES. Tenants' files are told apart by owner (fowner=), since SquashFS
# has no filesystem UUID.
# Keys: manufacturer root -> base key (root-issued, signs the base system and
# the base policy); root -> owner CA -> owner policy key (no scope, signs
# tenant rules) and tenant keys A and B (scoped to /opt/a/**, /opt/b/**).
# Disks: vda base image, vdb tenant A (uid 2001), vdc tenant B (uid 2002).

DYN_BASE_RULES='appraise func=POLICY_CHECK appraise_type=imasig
measure func=BPRM_CHECK fsmagic=0x73717368 fowner=0 template=ima-sig
appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=0 appraise_type=imasig'

# dyn_tenant_rules UID: a tenant's fragment.
dyn_tenant_rules() {
  printf '%s\n' "measure func=BPRM_CHECK fsmagic=0x73717368 fowner=$1 template=ima-sig" \
    "appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=$1 appraise_type=imasig"
}

# dyn_fragment NAME PATH KEY [TENANT-UID] < RULES: one manifest policy entry.
dyn_fragment() {
  printf '  - name: %s\n    path: %s\n    key: %s\n' "$1" "$2" "$3"
  [ -z "${4:-}" ] || printf '    tenant: {fowner: %s, fgroup: %s}\n' "$4" "$4"
  printf '    rules: |\n'
  sed 's/^/      /'
}

# dyn_tenant_image T UID OUT: tenant T's image, its files owned by UID: a
# signed and an unsigned program, its fragment, and (for A) the bad ones.
dyn_tenant_image() {
  local t=$1 uid=$2 out=$3 d=$WORK/dynpolicy/$1
  mkdir -p "$d/stage/opt/$t/bin"
  e2e_prog "$d/stage/opt/$t/bin/signed" "dyn-$t-signed"
  e2e_prog "$d/stage/opt/$t/bin/unsigned" "dyn-$t-unsigned"
  {
    manifest_head "$out"
    cat <<EOF
keys:
  policy: {cert: ../pki/policy.pem, key: ../pki/policy.key}
  tenant: {cert: ../pki/tenant-$t.pem, key: ../pki/tenant-$t.key}
sources:
  - from: stage/
    to: /
overrides:
  - match: /opt/$t/bin/*
    uid: $uid
    gid: $uid
rules:
  - match: /opt/$t/bin/unsigned
    sign: false
  - match: /opt/$t/etc/unsigned.policy
    sign: false
  - match: /**
    key: tenant
policy:
EOF
    dyn_tenant_rules "$uid" | dyn_fragment "tenant-$t" "/opt/$t/etc/$t.policy" policy "$uid"
    if [ "$t" = a ]; then
      # not tenant fragments to the build (each would fail it): made as a
      # careless or hostile signer would, for the device's loader to refuse
      { echo "# E2E-TRAILER dyn-tampered E2E-TRAILER-END"; dyn_tenant_rules "$uid"; } |
        dyn_fragment a-tampered "/opt/a/etc/tampered.policy" policy
      dyn_tenant_rules "$uid" | dyn_fragment a-by-tenant "/opt/a/etc/by-tenant.policy" tenant
      echo "dont_appraise fsmagic=0x73717368" | dyn_fragment a-exempt "/opt/a/etc/exempt.policy" policy
      dyn_tenant_rules 2002 | dyn_fragment a-reaches-b "/opt/a/etc/reaches-b.policy" policy
    fi
  } >"$d/m.yaml"
  if [ "$t" = a ]; then
    # a plain, unsigned copy of the good fragment, as a source file
    mkdir -p "$d/stage/opt/a/etc"
    dyn_tenant_rules "$uid" >"$d/stage/opt/a/etc/unsigned.policy"
  fi
  forge build -q "$d/m.yaml"
}

scenario_dynpolicy() {
  local d=$WORK/dynpolicy k=$WORK/dynpolicy/pki r
  mkdir -p "$k" "$d/base/stage/bin"
  # the judge kernel: E2E_JUDGE_KERNEL, or built (or reused) by build-kernel.sh
  local JUDGE_BZIMAGE=${E2E_JUDGE_KERNEL:-} rc=0 t0
  if [ -z "$JUDGE_BZIMAGE" ]; then
    t0=$(date +%s)
    JUDGE_BZIMAGE=$("$E2E_DIR/build-kernel.sh" 2>"$WORK/build-kernel.log" | tail -n 1) || rc=$?
    sed 's/^/e2e: /' "$WORK/build-kernel.log"
    if [ "$rc" = 3 ] && [ "${CI:-}" != true ]; then
      echo "e2e: SKIP dynpolicy: the judge kernel cannot be built here (set CI=true to make this a failure)"
      return 0
    elif [ "$rc" != 0 ] || [ ! -f "$JUDGE_BZIMAGE" ]; then
      echo "FAIL dynpolicy: build-kernel.sh exit $rc (log: $WORK/build-kernel.log)"
      FAILED=$((FAILED + 1))
      return 0
    fi
    echo "e2e: judge kernel $JUDGE_BZIMAGE ($(($(date +%s) - t0))s)"
  fi
  pki_root "$k/root" "E2E Manufacturer"
  pki_issue ima "$k/root/root" "$k" base "E2E Base System"
  pki_issue owner-ca "$k/root/root" "$k" owner "E2E Owner"
  pki_issue ima "$k/owner" "$k" policy "E2E Owner Policy"
  forge pki issue --role ima --name "E2E Tenant A" --out "$k" --basename tenant-a --scope '/opt/a/**' \
    --ca "$k/owner.pem" --ca-key "$k/owner.key" --key-type rsa2048
  forge pki issue --role ima --name "E2E Tenant B" --out "$k" --basename tenant-b --scope '/opt/b/**' \
    --ca "$k/owner.pem" --ca-key "$k/owner.key" --key-type rsa2048
  forge pki crl --ca "$k/owner.pem" --ca-key "$k/owner.key"
  forge pki export --out "$d/export" --root "$k/root/root.pem" --intermediate "$k/owner.pem" \
    --crl "$k/root/root.crl" --crl "$k/owner.crl" --cert "$k/base.pem" --cert "$k/policy.pem" --cert "$k/tenant-a.pem" --cert "$k/tenant-b.pem"
  [ -x "$d/export/load-policy.sh" ] || e2e_die "pki export wrote no load-policy.sh"

  # the manufacturer's base image: its policy and two programs owned by root
  e2e_prog "$d/base/stage/bin/signed" dyn-base-signed
  e2e_prog "$d/base/stage/bin/unsigned" dyn-base-unsigned
  {
    manifest_head "$d/base.sqsh"
    cat <<EOF
keys:
  base: {cert: ../pki/base.pem, key: ../pki/base.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /bin/unsigned
    sign: false
  - match: /**
    key: base
policy:
EOF
    printf '%s\n' "$DYN_BASE_RULES" | dyn_fragment base /etc/ima/base.policy base
  } >"$d/base/m.yaml"
  forge build -q "$d/base/m.yaml"
  dyn_tenant_image a 2001 "$d/a.sqsh"
  dyn_tenant_image b 2002 "$d/b.sqsh"
  e2e_tamper "$d/a.sqsh" "E2E-TRAILER dyn-tampered E2E-TRAILER-END"

  # the build itself refuses the bad fragments as tenant fragments
  local bad
  for bad in "dont_appraise fsmagic=0x73717368" \
    "appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2002 appraise_type=imasig"; do
    sed -e "/name: tenant-a\$/,/rules: |/!b" -e '/rules: |/a\      '"$bad" "$d/a/m.yaml" >"$d/a/bad.yaml"
    sed -i "s#output: .*#output: $d/bad.sqsh#" "$d/a/bad.yaml"
    host_check "dyn.build-refuses:${bad%% *}" refused \
      "$("$IMAFORGE" build -q "$d/a/bad.yaml" >"$d/bad.out" 2>&1 && echo built || echo refused)"
  done
  # the error names the bad rule's own line and column in the rules: | block
  # (the first line after it, indented 6)
  local rule_line
  rule_line=$(( $(grep -n 'rules: |' "$d/a/bad.yaml" | head -1 | cut -d: -f1) + 1 ))
  host_check dyn.build-refused-at-rule-line yes \
    "$(grep -q "bad.yaml:$rule_line:7:" "$d/bad.out" && echo yes || echo "no:$(head -c 160 "$d/bad.out" | tr -c 'A-Za-z0-9:._-' _)")"

  r=$(new_initramfs dynpolicy)
  put_export "$r" "$d/export"
  # no ACPI in the judge kernel: end with a reset (qemu -no-reboot exits)
  sed 's/^poweroff -f$/reboot -f/' "$E2E_DIR/guest/init" >"$r/init"
  chmod 0755 "$r/init"
  local lib
  cp "$(command -v getfattr)" "$r/bin/getfattr"
  for lib in $(ldd "$(command -v getfattr)" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}'); do
    mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"
  done
  cat >"$r/e2e/scenario.sh" <<'EOF'
P=/sys/kernel/security/ima/policy
L=/e2e/keys/load-policy.sh
A="sh $L --fowner 2001 --fgroup 2001"
check dyn.load-keys ok sh "/e2e/keys/load-keys.sh"
mount_image /dev/vda /mnt/base
mount_image /dev/vdb /mnt/a
mount_image /dev/vdc /mnt/b
check dyn.before.base-unsigned-runs ok exec /mnt/base/bin/unsigned
check dyn.base-policy-loaded ok sh "echo /mnt/base/etc/ima/base.policy >$P"
check dyn.base.signed-runs ok exec /mnt/base/bin/signed
check dyn.base.unsigned-refused EACCES exec /mnt/base/bin/unsigned
check dyn.rule-text-refused EACCES sh "echo 'appraise func=BPRM_CHECK fowner=2001 appraise_type=imasig' >$P"
check dyn.a.before.unsigned-runs ok exec /mnt/a/opt/a/bin/unsigned
cat $P >/tmp/policy.base
# refused by the loader before any write; the kernel itself refuses the
# unsigned and the tampered file too
check dyn.a.unsigned-fragment-refused ok sh "! $A /mnt/a/opt/a/etc/unsigned.policy 2>/tmp/e; grep -q 'no security.ima' /tmp/e"
check dyn.a.unsigned-fragment-kernel-refuses EACCES sh "echo /mnt/a/opt/a/etc/unsigned.policy >$P"
check dyn.a.tampered-fragment-refused ok sh "! $A /mnt/a/opt/a/etc/tampered.policy 2>/tmp/e; grep -q 'does not verify' /tmp/e"
check dyn.a.tampered-fragment-kernel-refuses EACCES sh "echo /mnt/a/opt/a/etc/tampered.policy >$P"
check dyn.a.tenant-signed-fragment-refused ok sh "! $A /mnt/a/opt/a/etc/by-tenant.policy 2>/tmp/e; grep -q 'not one of the owner' /tmp/e"
check dyn.a.exempting-fragment-refused ok sh "! $A /mnt/a/opt/a/etc/exempt.policy 2>/tmp/e; grep -q 'dont_appraise is not allowed' /tmp/e"
check dyn.a.fragment-reaching-b-refused ok sh "! $A /mnt/a/opt/a/etc/reaches-b.policy 2>/tmp/e; grep -q 'fowner=2002 reaches' /tmp/e"
check dyn.a.fragment-for-wrong-tenant-refused ok sh "! sh $L --fowner 2002 --fgroup 2002 /mnt/a/opt/a/etc/a.policy 2>/tmp/e; grep -q 'reaches' /tmp/e"
check dyn.refusals-wrote-nothing ok sh "cat $P | cmp -s - /tmp/policy.base"
check dyn.a.still-unenforced.unsigned-runs ok exec /mnt/a/opt/a/bin/unsigned
# tenant A's fragment, signed by the owner
check dyn.a.fragment-appended ok sh "$A /mnt/a/opt/a/etc/a.policy"
check dyn.a.after.signed-runs ok exec /mnt/a/opt/a/bin/signed
check dyn.a.after.unsigned-refused EACCES exec /mnt/a/opt/a/bin/unsigned
check dyn.b.before.unsigned-runs ok exec /mnt/b/opt/b/bin/unsigned
check dyn.b.fragment-appended ok sh "sh $L --fowner 2002 --fgroup 2002 /mnt/b/opt/b/etc/b.policy"
check dyn.b.after.signed-runs ok exec /mnt/b/opt/b/bin/signed
check dyn.b.after.unsigned-refused EACCES exec /mnt/b/opt/b/bin/unsigned
check dyn.base.still-refused EACCES exec /mnt/base/bin/unsigned
echo "E2E POLICY BEGIN"
cat $P
echo "E2E POLICY END"
EOF
  e2e_cpio "$r" "$d/initrd.cpio"
  # shellcheck disable=SC2034 # e2e_boot boots $VMLINUZ: the judge kernel here
  local VMLINUZ=$JUDGE_BZIMAGE
  e2e_boot dynpolicy "$d/initrd.cpio" "ima_appraise=enforce ima_policy=secure_boot" "$d/base.sqsh" "$d/a.sqsh" "$d/b.sqsh"
  e2e_judge dynpolicy "$r/e2e/scenario.sh" || true

  # the policy read back is the base, then A's, then B's fragment, in order
  tr -d '\r' <"$WORK/dynpolicy.console.log" | sed -n '/^E2E POLICY BEGIN$/,/^E2E POLICY END$/p' | sed '1d;$d' >"$d/readback.policy"
  cat "$d/base.sqsh.policy/base.policy" "$d/a.sqsh.policy/a.policy" "$d/b.sqsh.policy/b.policy" >"$d/expected.policy"
  local want got
  want=$({ "$IMAFORGE" policy fmt "$d/expected.policy" 2>&1 || true; } | sha256sum | cut -c1-16)
  got=$({ "$IMAFORGE" policy fmt "$d/readback.policy" 2>&1 || true; } | sha256sum | cut -c1-16)
  host_check dyn.policy-readback-is-base-a-b "$want" "$got"
  host_check dyn.policy-readback-rules 7 "$(grep -c . "$d/readback.policy" || true)"
}

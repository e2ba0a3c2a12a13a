# shellcheck shell=bash
# The attest scenario (issue 19): remote attestation against the real kernel
# and a software TPM. Sourced by run.sh.
#
# Kernel mechanism: with a TPM (swtpm over a unix socket, qemu's tpm-tis
# device; Debian 6.1 has CONFIG_TCG_TIS=y), IMA extends PCR 10 of every bank
# with each measurement's template hash and records boot_aggregate, the hash
# of PCRs 0-9 (sha256 bank). The policy measures executions on SquashFS and on
# tmpfs (template=ima-sig), the certificates loaded into _ima and imaforge-mfr
# (KEY_CHECK, template=ima-buf), and appraises SquashFS. root=/dev/ram0 makes the
# initramfs a ramfs (init/do_mounts.c: rootfs is tmpfs only without root=), so
# its own programs (busybox, tpm2) are not measured; /tmp stays a tmpfs.
# The guest makes an EK and two AKs with tpm2-tools (through /dev/tpmrm0, the
# kernel's resource manager), quotes PCR 10 over host nonces, and prints the
# quotes, the lists and tpm2_pcrread's values; `imaforge attest verify` judges
# them on the host against the reference values of `imaforge attest policy`.

# attest_guest_tpm2 INITRAMFS: tpm2-tools (one binary, tpm2_* links), its
# libraries and the device TCTI (dlopened, so ldd does not list it).
attest_guest_tpm2() {
  local r=$1 lib t
  local tcti=/usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0
  cp "$(readlink -f "$(command -v tpm2)")" "$r/bin/tpm2"
  for t in createek createak quote pcrread flushcontext; do ln -sf tpm2 "$r/bin/tpm2_$t"; done
  for lib in $(ldd "$(command -v tpm2)" "$tcti" | awk '/=>/ {print $3} /^\t\/lib/ {print $1}' | sort -u) "$tcti"; do
    mkdir -p "$r$(dirname "$lib")"
    cp -L "$lib" "$r$lib"
  done
}

# attest_get NAME OUT: the guest's file NAME (printed as "E2E FILE NAME hex...")
# from the console log.
attest_get() {
  sed -n "s/^E2E FILE $1 //p" "$WORK/attest.console.log.clean" | tr -d ' \n' | xxd -r -p >"$2"
}

# attest_verify OUT ARGS...: imaforge attest verify --json; the exit code goes
# to OUT.rc, the report to OUT.
attest_verify() {
  local out=$1 rc=0; shift
  "$IMAFORGE" attest verify --json "$@" >"$out" 2>"$out.err" || rc=$?
  echo "$rc" >"$out.rc"
}

scenario_attest() {
  local d=$WORK/attest k=$WORK/attest/pki r t
  for t in swtpm tpm2 xxd jq; do
    if ! command -v "$t" >/dev/null 2>&1; then
      [ "${CI:-}" != true ] || e2e_die "attest: $t missing (make deps installs swtpm, tpm2-tools)"
      echo "e2e: SKIP attest: $t missing (make deps installs it)"; return 0
    fi
  done
  mkdir -p "$k" "$d/stage/bin" "$d/tpm"
  pki_root "$k/root" "E2E Attest Manufacturer"
  pki_issue ima "$k/root/root" "$k/ima" ima "E2E Attest IMA"
  pki_root "$k/rogue-root" "E2E Attest Rogue"
  pki_issue ima "$k/rogue-root/root" "$k/rogue" rogue "E2E Attest Rogue IMA"
  forge pki export --out "$d/export" --root "$k/root/root.pem" --cert "$k/ima/ima.pem"
  for t in good good2; do e2e_prog "$d/stage/bin/$t" "attest-$t"; done
  {
    manifest_head image.sqsh
    cat <<EOF
keys:
  ima: {cert: pki/ima/ima.pem, key: pki/ima/ima.key}
sources:
  - from: stage/
    to: /
rules:
  - match: /**
    key: ima
EOF
  } >"$d/m.yaml"
  forge build -q "$d/m.yaml"
  local img=$d/image.sqsh
  [ -s "$img.record.json" ] || e2e_die "imaforge build wrote no $img.record.json"

  local n1 n2
  n1=$(openssl rand -hex 16) n2=$(openssl rand -hex 16)
  r=$(new_initramfs attest)
  put_export "$r" "$d/export"
  attest_guest_tpm2 "$r"
  e2e_prog "$r/e2e/evil" attest-evil # not in the build: run from a tmpfs
  cp "$k/rogue/rogue.der" "$r/e2e/rogue.der" # not in the trust store: loaded into a measured keyring
  printf '%s\n' 'measure func=KEY_CHECK keyrings=_ima|imaforge-mfr|e2e-rogue template=ima-buf' \
    'measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig' \
    'measure func=BPRM_CHECK fsmagic=0x01021994 template=ima-sig' \
    'appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig' >"$r/e2e/policy"
  cat >"$r/e2e/scenario.sh" <<EOF
N1=$n1
N2=$n2
EOF
  cat >>"$r/e2e/scenario.sh" <<'EOF'
export TPM2TOOLS_TCTI=device:/dev/tpmrm0 LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
M=/sys/kernel/security/ima
# put NAME FILE: the file as hex lines for the host
put() { od -An -tx1 -v "$2" | sed "s/^/E2E FILE $1 /"; }
load_modules
mount_image /dev/vda /mnt
check attest.tpm-device ok sh "test -c /dev/tpmrm0"
# the policy first: the keys loaded next are measured (KEY_CHECK, ima-buf)
set_policy /e2e/policy
check attest.load-keys-script ok sh "/e2e/keys/load-keys.sh"
check attest.signed-runs ok exec /mnt/bin/good
check attest.signed2-runs ok exec /mnt/bin/good2
check attest.createek ok sh "tpm2_createek -c /tmp/ek.ctx -G rsa -u /tmp/ek.pub"
check attest.createak ok sh "tpm2_createak -C /tmp/ek.ctx -c /tmp/ak.ctx -G rsa -g sha256 -s rsassa -u /tmp/ak.pem -f pem"
check attest.createak-other ok sh "tpm2_createak -C /tmp/ek.ctx -c /tmp/ak2.ctx -G rsa -g sha256 -s rsassa -u /tmp/ak2.pem -f pem"
# the clean device: quote first, then read the list (it covers the quote)
check attest.quote-clean ok sh "tpm2_quote -c /tmp/ak.ctx -l sha256:10 -q $N1 -m /tmp/q1.msg -s /tmp/q1.sig -g sha256"
cat $M/binary_runtime_measurements >/tmp/ml1.bin
cat $M/ascii_runtime_measurements >/tmp/ml1.txt
check attest.pcrread ok sh "tpm2_pcrread sha256:10 -o /tmp/pcr10.bin"
check attest.pcrread-boot ok sh "tpm2_pcrread sha256:0,1,2,3,4,5,6,7,8,9 -o /tmp/pcr0-9.bin"
# an unknown program run from a tmpfs, a certificate of no trust store loaded
# into a measured keyring, then a second quote
cp /e2e/evil /tmp/evil
chmod 0755 /tmp/evil
check attest.tmpfs-program-runs ok exec /tmp/evil
check attest.rogue-key-loads ok sh "keyctl padd asymmetric '' \$(keyctl newring e2e-rogue @u) </e2e/rogue.der"
check attest.quote-after ok sh "tpm2_quote -c /tmp/ak.ctx -l sha256:10 -q $N2 -m /tmp/q2.msg -s /tmp/q2.sig -g sha256"
cat $M/binary_runtime_measurements >/tmp/ml2.bin
for f in ak.pem ak2.pem q1.msg q1.sig ml1.bin ml1.txt pcr10.bin pcr0-9.bin q2.msg q2.sig ml2.bin; do put $f /tmp/$f; done
EOF
  e2e_cpio "$r" "$d/initrd.cpio"

  # the software TPM: started here, stopped after the boot
  swtpm socket --tpm2 --tpmstate dir="$d/tpm" --ctrl type=unixio,path="$d/tpm/sock" \
    --log file="$d/tpm/swtpm.log" >/dev/null 2>&1 &
  local swtpm_pid=$!
  for t in $(seq 50); do [ -S "$d/tpm/sock" ] && break; sleep 0.1; done
  [ -S "$d/tpm/sock" ] || { kill "$swtpm_pid" 2>/dev/null; e2e_die "swtpm did not create $d/tpm/sock"; }
  E2E_QEMU_EXTRA="-chardev socket,id=chrtpm,path=$d/tpm/sock -tpmdev emulator,id=tpm0,chardev=chrtpm -device tpm-tis,tpmdev=tpm0" \
    e2e_boot attest "$d/initrd.cpio" "ima_appraise=enforce root=/dev/ram0" "$img"
  kill "$swtpm_pid" 2>/dev/null || true
  wait "$swtpm_pid" 2>/dev/null || true
  e2e_judge attest "$r/e2e/scenario.sh" || true

  local f
  for f in ak.pem ak2.pem q1.msg q1.sig ml1.bin ml1.txt pcr10.bin pcr0-9.bin q2.msg q2.sig ml2.bin; do
    attest_get "$f" "$d/$f"
  done
  # boot_aggregate (sha256 bank) = sha256(PCR 0 | ... | PCR 9) (ima_crypto.c)
  local agg
  agg=$(sha256sum <"$d/pcr0-9.bin" | cut -d' ' -f1)
  host_check attest.boot-aggregate-is-pcr0-9 "sha256:$agg" "$(awk '$5 == "boot_aggregate" {print $4; exit}' "$d/ml1.txt")"
  forge attest policy --image "$img.record.json=/mnt" --cert "$k/ima/ima.der" \
    --boot-aggregate "sha256:$agg" --out "$d/ref.json" --keylime "$d/keylime.json"
  local trust=(--reference "$d/ref.json" --root "$k/root/root.pem" --crl "$k/root/root.crl" --cert "$k/ima/ima.pem")

  # clean device: trusted, and the replayed PCR 10 is the TPM's
  attest_verify "$d/v-clean" "${trust[@]}" --quote "$d/q1.msg" --quote-sig "$d/q1.sig" --ak "$d/ak.pem" --nonce "$n1" "$d/ml1.bin"
  host_check attest.clean-trusted "0 true" "$(cat "$d/v-clean.rc") $(jq -r .trusted "$d/v-clean" 2>/dev/null)"
  host_check attest.replay-equals-pcrread "$(xxd -p -c 64 "$d/pcr10.bin")" "$(jq -r .pcr10 "$d/v-clean" 2>/dev/null)"
  host_check attest.clean-signed-by-reference "reference" \
    "$(jq -r '.entries[] | select(.path == "/mnt/bin/good") | .basis' "$d/v-clean" 2>/dev/null)"
  # the certificates loaded into the measured keyrings are keys of the trust store
  host_check attest.key-measurements-trusted "imaforge-mfr:key _ima:key" \
    "$(jq -r '[.entries[] | select(.template == "ima-buf") | "\(.path):\(.basis)"] | join(" ")' "$d/v-clean" 2>/dev/null)"
  # the program run from the tmpfs is named, the rest still trusted
  attest_verify "$d/v-evil" "${trust[@]}" --quote "$d/q2.msg" --quote-sig "$d/q2.sig" --ak "$d/ak.pem" --nonce "$n2" --previous-quote "$d/q1.msg" --previous-quote-sig "$d/q1.sig" "$d/ml2.bin"
  host_check attest.tmpfs-program-named "1 unknown 1 true" \
    "$(cat "$d/v-evil.rc") $(jq -r '[.entries[] | select(.path == "/tmp/evil") | .verdict][0]' "$d/v-evil" 2>/dev/null) $(jq -r '.summary.unknown' "$d/v-evil" 2>/dev/null) $(jq -r '.quote.verified' "$d/v-evil" 2>/dev/null)"
  # the rogue certificate loaded into a measured keyring is named
  host_check attest.rogue-key-named "failed untrusted-key" \
    "$(jq -r '[.entries[] | select(.path == "e2e-rogue") | "\(.verdict) \(.reason)"][0]' "$d/v-evil" 2>/dev/null)"
  # an edited line (bin/good's digest) is named at its entry
  local idx
  idx=$(awk '$5 == "/mnt/bin/good" {print NR - 1; exit}' "$d/ml1.txt")
  python3 - "$d/ml1.txt" "$d/ml1-edited.txt" "$idx" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
i = int(sys.argv[3])
f = lines[i].split(" ")
d = f[3]  # sha256:HEX
f[3] = d[:7] + ("0" if d[7] != "0" else "1") + d[8:]
lines[i] = " ".join(f)
open(sys.argv[2], "w").write("\n".join(lines))
PY
  attest_verify "$d/v-edited" "${trust[@]}" --quote "$d/q1.msg" --quote-sig "$d/q1.sig" --ak "$d/ak.pem" --nonce "$n1" "$d/ml1-edited.txt"
  host_check attest.edited-line-named "1 template-hash replay $idx" \
    "$(cat "$d/v-edited.rc") $(jq -r ".entries[$idx].reason" "$d/v-edited" 2>/dev/null) $(jq -r '.problems[0].reason, .problems[0].entry' "$d/v-edited" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
  # the last entry dropped: named after the last entry left
  local n
  n=$(wc -l <"$d/ml1.txt")
  head -n $((n - 1)) "$d/ml1.txt" >"$d/ml1-dropped.txt"
  attest_verify "$d/v-dropped" "${trust[@]}" --quote "$d/q1.msg" --quote-sig "$d/q1.sig" --ak "$d/ak.pem" --nonce "$n1" "$d/ml1-dropped.txt"
  host_check attest.dropped-entry-named "1 replay $((n - 1))" \
    "$(cat "$d/v-dropped.rc") $(jq -r '.problems[0].reason, .problems[0].entry' "$d/v-dropped" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
  # the first quote offered for the second nonce: refused
  attest_verify "$d/v-oldnonce" "${trust[@]}" --quote "$d/q1.msg" --quote-sig "$d/q1.sig" --ak "$d/ak.pem" --nonce "$n2" "$d/ml1.bin"
  host_check attest.old-nonce-refused "1 false nonce" \
    "$(cat "$d/v-oldnonce.rc") $(jq -r .quote.verified "$d/v-oldnonce" 2>/dev/null) $(jq -r '.quote.problems[0]' "$d/v-oldnonce" 2>/dev/null | grep -o nonce | head -1)"
  # the quote checked with the other AK of the same TPM: refused
  attest_verify "$d/v-otherak" "${trust[@]}" --quote "$d/q1.msg" --quote-sig "$d/q1.sig" --ak "$d/ak2.pem" --nonce "$n1" "$d/ml1.bin"
  host_check attest.other-ak-refused "1 false signature" \
    "$(cat "$d/v-otherak.rc") $(jq -r .quote.verified "$d/v-otherak" 2>/dev/null) $(jq -r '.quote.problems[0]' "$d/v-otherak" 2>/dev/null | grep -o signature | head -1)"
  # an older quote presented after a newer one: the clock went back
  attest_verify "$d/v-replayed" "${trust[@]}" --quote "$d/q1.msg" --quote-sig "$d/q1.sig" --ak "$d/ak.pem" --nonce "$n1" --previous-quote "$d/q2.msg" --previous-quote-sig "$d/q2.sig" "$d/ml1.bin"
  host_check attest.replayed-quote-refused "1 false" "$(cat "$d/v-replayed.rc") $(jq -r .quote.verified "$d/v-replayed" 2>/dev/null)"
  # the Keylime policy lists every signed file of the image at its device path
  host_check attest.keylime-policy-has-files "$(jq -r '.files | length' "$img.record.json")" \
    "$(jq -r '[.digests | keys[] | select(startswith("/mnt/"))] | length' "$d/keylime.json" 2>/dev/null)"
}

#!/usr/bin/env bash
# `make demo`: build the testdata manifest into a signed image with a
# throwaway development PKI (manufacturer root -> owner CA -> tenant), then
# show what was built. Everything lands in out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAFORGE=${IMAFORGE:-$PWD/bin/imaforge}
work=out/demo
rm -rf "$work"
mkdir -p "$work"
cp -a testdata/demo/firmware.yaml testdata/demo/rootfs "$work/"
cd "$work"

step() { printf '\n==> %s\n' "$*"; }

step "a throwaway development PKI in $work/pki"
"$IMAFORGE" pki init --name "Demo Manufacturing" --out pki --key-type rsa2048
"$IMAFORGE" pki issue --role ima --name "Demo Manufacturing IMA" --basename mfr-ima \
  --ca pki/root.pem --ca-key pki/root.key --key-type rsa2048 --out pki
"$IMAFORGE" pki issue --role owner-ca --name "Demo Owner CA" \
  --ca pki/root.pem --ca-key pki/root.key --key-type rsa2048 --out pki
"$IMAFORGE" pki issue --role ima --name "ACME tenant IMA" --basename acme-ima --scope '/opt/acme/**' \
  --ca pki/owner-ca.pem --ca-key pki/owner-ca.key --key-type rsa2048 --out pki
# the manifest names the certificates as .crt
for k in mfr-ima acme-ima; do cp "pki/$k.pem" "pki/$k.crt"; done

step "imaforge build firmware.yaml"
"$IMAFORGE" build firmware.yaml

step "what the image holds (imaforge squashfs ls -l --xattrs)"
"$IMAFORGE" squashfs ls -l --xattrs out/firmware.sqsh

step "building again gives the same bytes"
first=$(sha256sum out/firmware.sqsh | cut -d' ' -f1)
"$IMAFORGE" build --quiet firmware.yaml
second=$(sha256sum out/firmware.sqsh | cut -d' ' -f1)
if [ "$first" != "$second" ]; then
  echo "demo: the rebuild differs: $first vs $second" >&2
  exit 1
fi
echo "sha256 $first (twice)"

step "imaforge verify: every signature, chain, scope, policy coverage and the image signature"
"$IMAFORGE" verify --trust-manifest firmware.yaml out/firmware.sqsh

step "what a device loads (imaforge pki export)"
"$IMAFORGE" pki export --out device --root pki/root.pem --intermediate pki/owner-ca.pem \
  --crl pki/root.crl --crl pki/owner-ca.crl --cert pki/mfr-ima.pem --cert pki/acme-ima.pem
ls device
printf '\ndemo: done; image, record and keys are in %s\n' "$work"

#!/usr/bin/env bash
# Regenerates the fixtures of verify/golden_test.go (run from the project root
# after `make build`, then `go test ./verify -run Golden -update`):
#   root.pem, owner.pem, mfr.pem, tenant.pem  the trust material (no private keys kept)
#   clean.sqsh       built by `imaforge build` from tree/ with a policy fragment,
#                    compression none, the tenant key scoped to /opt/acme/**
#   tampered.sqsh    clean.sqsh with
#                    /usr/bin/tool's data changed (one byte) and the signatures of
#                    /usr/bin/tool and /usr/bin/other swapped in the xattr table
#   device.policy    a device policy appraising every read on SquashFS
set -euo pipefail
IMAFORGE=${IMAFORGE:-$PWD/bin/imaforge}
out=$PWD/testdata/verify
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$IMAFORGE" pki init --name "Verify Fixture Root" --out pki --key-type rsa2048 >/dev/null
"$IMAFORGE" pki issue --role owner-ca --name "Verify Fixture Owner" --basename owner \
  --ca pki/root.pem --ca-key pki/root.key --key-type rsa2048 --out pki >/dev/null
"$IMAFORGE" pki issue --role ima --name "Verify Fixture Manufacturer IMA" --basename mfr \
  --ca pki/root.pem --ca-key pki/root.key --key-type rsa2048 --out pki >/dev/null
"$IMAFORGE" pki issue --role ima --name "Verify Fixture Tenant IMA" --basename tenant --scope '/opt/acme/**' \
  --ca pki/owner.pem --ca-key pki/owner.key --key-type rsa2048 --out pki >/dev/null
mkdir -p tree/usr/bin tree/opt/acme/bin tree/etc tree/var/log
printf 'TOOL-MARKER tool\n' >tree/usr/bin/tool
printf 'OTHER-MARKER other\n' >tree/usr/bin/other
printf 'APP-MARKER app\n' >tree/opt/acme/bin/app
printf 'key=value\n' >tree/etc/conf
printf 'booted\n' >tree/var/log/boot.log
chmod 755 tree/usr/bin/* tree/opt/acme/bin/*
chmod 644 tree/etc/conf tree/var/log/boot.log
cat >m.yaml <<'YAML'
version: 1
image: {output: out/clean.sqsh, compression: none, block_size: 4K, epoch: 1700000000, owner: {uid: 0, gid: 0}}
hash: sha256
kernel: "6.1"
trust: {roots: [pki/root.pem], intermediates: [pki/owner.pem], crls: [pki/root.crl, pki/owner.crl]}
keys:
  manufacturer: {cert: pki/mfr.pem, key: pki/mfr.key}
  tenant: {cert: pki/tenant.pem, key: pki/tenant.key}
sources: [{from: tree/, to: /}]
rules:
  - {match: /opt/acme/**, key: tenant}
  - {match: /var/**, sign: false}
  - {match: /**, key: manufacturer}
policy:
  - {name: exec, path: /etc/ima/policy.d/50-exec.policy, key: manufacturer, presets: [squashfs-exec]}
YAML
"$IMAFORGE" build --quiet m.yaml
"$IMAFORGE" squashfs ls -l --xattrs out/clean.sqsh >listing
python3 - out/clean.sqsh listing "$out/tampered.sqsh" <<'PY'
import sys
img = bytearray(open(sys.argv[1], "rb").read())
vals, path = {}, None
for line in open(sys.argv[2]):
    if line.startswith("\tsecurity.ima=0x"):
        vals[path] = bytes.fromhex(line.strip().split("=0x")[1])
    else:
        path = line.split()[-1]
def once(b):
    assert img.count(b) == 1, b
    return img.index(b)
i = once(b"TOOL-MARKER"); img[i + 10] ^= 0x01   # TOOL-MARKER -> TOOL-MARKEQ
a, b = vals["/usr/bin/tool"], vals["/usr/bin/other"]
assert len(a) == len(b)
ia, ib = once(a), once(b)
img[ia:ia + len(a)], img[ib:ib + len(b)] = b, a
open(sys.argv[3], "wb").write(img)
PY
cp out/clean.sqsh "$out/clean.sqsh"
for c in root owner mfr tenant; do cp "pki/$c.pem" "$out/$c.pem"; done
printf 'appraise func=FILE_CHECK mask=^MAY_READ fsmagic=0x73717368 appraise_type=imasig\n' >"$out/device.policy"

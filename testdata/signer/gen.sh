#!/usr/bin/env bash
# Regenerates the signer known-answer vectors in this directory.
#
#   testdata/signer/gen.sh          # vectors.txt from the existing keys and files
#   testdata/signer/gen.sh --keys   # also new keys (then every vector changes)
#
# Run from the project root as root (evmctl ima_sign also sets security.ima on
# the file it signs), with openssl, evmctl (ima-evm-utils) and bin/imaforge
# built (`make build`).
#
# How each vector is made:
#   RSA:   evmctl ima_sign --sigfile --key keys/K.key -a HASH FILE; the vector
#          is FILE.sig in hex. PKCS#1 v1.5 is deterministic, so imaforge must
#          produce the same bytes (signer/kat_test.go checks it).
#   ECDSA: evmctl's ECDSA signatures are random, so the vector is imaforge's
#          deterministic (RFC 6979) value from `imaforge file sign --sigfile`,
#          accepted only if `evmctl ima_verify --sigfile --key keys/K.der`
#          verifies it.
set -euo pipefail
cd "$(dirname "$0")"
PASS=imaforge-test   # passphrase of the encrypted test keys (test data only)

if [ "${1:-}" = --keys ]; then
  mkdir -p keys
  mk() { # name, openssl -newkey argument(s), extra -addext
    local n=$1; shift
    openssl req -x509 "$@" -nodes -keyout keys/$n.key -out keys/$n.pem -days 36500 \
      -subj "/CN=imaforge test $n" -addext "keyUsage=critical,digitalSignature" \
      ${SKID:+-addext "$SKID"} 2>/dev/null
    openssl x509 -in keys/$n.pem -outform DER -out keys/$n.der
  }
  SKID=subjectKeyIdentifier=hash
  mk rsa2048 -newkey rsa:2048
  mk rsa3072 -newkey rsa:3072
  mk rsa4096 -newkey rsa:4096
  mk p256 -newkey ec -pkeyopt ec_paramgen_curve:P-256
  mk p384 -newkey ec -pkeyopt ec_paramgen_curve:P-384
  mk rsa1024 -newkey rsa:1024                       # unsupported: too small
  mk ed25519 -newkey ed25519                        # unsupported: IMA has no Ed25519
  mk p521 -newkey ec -pkeyopt ec_paramgen_curve:P-521 # unsupported curve
  # the rsa2048 key in a certificate without SubjectKeyIdentifier, and in one
  # with an arbitrary SubjectKeyIdentifier (key id = its last 4 bytes)
  for v in noskid:subjectKeyIdentifier=none skid:subjectKeyIdentifier=00112233445566778899aabbccddeeff01020304; do
    n=rsa2048-${v%%:*}
    openssl req -x509 -key keys/rsa2048.key -out keys/$n.pem -days 36500 -subj "/CN=imaforge test $n" \
      -addext "${v#*:}" -addext "keyUsage=critical,digitalSignature"
    openssl x509 -in keys/$n.pem -outform DER -out keys/$n.der
  done
  # the same keys in other encodings
  openssl pkey -in keys/rsa2048.key -traditional -out keys/rsa2048-pkcs1.key          # RSA PRIVATE KEY
  openssl pkey -in keys/p256.key -traditional -out keys/p256-sec1.key                 # EC PRIVATE KEY
  openssl pkey -in keys/p256.key -outform DER -out keys/p256-pkcs8.der                # DER PKCS#8
  openssl pkey -in keys/rsa2048.key -traditional -aes256 -passout pass:$PASS \
    -out keys/rsa2048-legacy-enc.key                                                 # Proc-Type: 4,ENCRYPTED
  openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -in keys/p256.key -passout pass:$PASS \
    -out keys/p256-pkcs8-enc.key                                                     # ENCRYPTED PRIVATE KEY
  openssl pkcs8 -topk8 -v2 aes-128-cbc -v2prf hmacWithSHA1 -in keys/rsa3072.key -passout pass:$PASS \
    -out keys/rsa3072-pkcs8-enc.key
  chmod 600 keys/*.key
fi

IMAFORGE=${IMAFORGE:-../../bin/imaforge}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
out=vectors.txt.new
{
  echo "# Known-answer vectors for signer/kat_test.go, made by testdata/signer/gen.sh."
  echo "# key hash file security.ima-value-hex"
  for k in rsa2048 rsa3072 rsa4096 p256 p384; do
    for h in sha256 sha384 sha512; do
      for f in files/*; do
        c=$tmp/${f##*/}; cp "$f" "$c"; rm -f "$c.sig"
        case $k in
          rsa*) evmctl ima_sign --sigfile --key "$PWD/keys/$k.key" -a $h "$c" >/dev/null 2>&1 ;;
          *)    "$IMAFORGE" file sign --key keys/$k.key --cert keys/$k.pem --hash $h --sigfile "$c" >/dev/null ;;
        esac
        evmctl ima_verify --sigfile --key "$PWD/keys/$k.der" "$c" >/dev/null 2>&1 \
          || { echo "gen.sh: evmctl does not verify $k $h $f" >&2; exit 1; }
        echo "$k $h ${f#files/} $(od -An -v -tx1 "$c.sig" | tr -d ' \n')"
      done
    done
  done
} >"$out"
mv "$out" vectors.txt
echo "gen.sh: wrote $(grep -vc '^#' vectors.txt) vectors"

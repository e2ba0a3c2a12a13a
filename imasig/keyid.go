package imasig

import (
	"crypto"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

// KeyID returns the 4-byte key id IMA uses for cert, as evmctl derives it
// (ima-evm-utils libimaevm.c read_keyid_from_cert): the last 4 bytes of the
// certificate's SubjectKeyIdentifier. Without a SubjectKeyIdentifier of at
// least 4 bytes evmctl falls back to calc_keyid_v2, and so does KeyID: see
// KeyIDFromPublicKey.
//
// The kernel finds the verifying key by matching "id:<8 hex digits>" against
// the tail of the key's identifiers, the SKID among them, so certificates
// loaded into the IMA keyring should carry a SKID (openssl:
// subjectKeyIdentifier=hash gives the same 4 bytes as the fallback).
func KeyID(cert *x509.Certificate) [4]byte {
	var id [4]byte
	if n := len(cert.SubjectKeyId); n >= 4 {
		copy(id[:], cert.SubjectKeyId[n-4:])
		return id
	}
	if k, err := keyIDFromSPKI(cert.RawSubjectPublicKeyInfo); err == nil {
		return k
	}
	return id
}

// KeyIDFromPublicKey returns evmctl's calc_keyid_v2 key id for pub: bytes
// 16..19 of the SHA-1 of the subjectPublicKey BIT STRING contents of its
// SubjectPublicKeyInfo (for RSA the PKCS#1 RSAPublicKey DER, for ECDSA the
// uncompressed point). This equals the SKID method 1 of RFC 5280 4.2.1.2
// that openssl's subjectKeyIdentifier=hash uses, truncated to its tail.
func KeyIDFromPublicKey(pub crypto.PublicKey) ([4]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return [4]byte{}, fmt.Errorf("%w: %T: %w", ErrUnsupportedKey, pub, err)
	}
	return keyIDFromSPKI(der)
}

func keyIDFromSPKI(der []byte) ([4]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	var id [4]byte
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) != 0 {
		return id, fmt.Errorf("%w: malformed SubjectPublicKeyInfo", ErrUnsupportedKey)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	copy(id[:], sum[16:20])
	return id, nil
}

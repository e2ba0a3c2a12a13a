package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeyType names a key algorithm and size that the kernel's X.509 parser
// accepts: RSA, or ECDSA on NIST P-256 or P-384 (x509_extract_key_data;
// P-521 is not supported there). Debian's 6.1 kernel lacks
// CONFIG_CRYPTO_ECDSA, so RSA is the portable choice and the default.
type KeyType string

// The key types imaforge creates.
const (
	RSA2048 KeyType = "rsa2048"
	RSA3072 KeyType = "rsa3072"
	RSA4096 KeyType = "rsa4096"
	P256    KeyType = "p256"
	P384    KeyType = "p384"
)

// DefaultKeyType is used when no key type is given.
const DefaultKeyType = RSA3072

// KeyTypes lists the accepted key types in the order help texts show them.
var KeyTypes = []KeyType{RSA2048, RSA3072, RSA4096, P256, P384}

// ErrKeyType reports an unknown or unsupported key type.
var ErrKeyType = errors.New("unsupported key type")

// ParseKeyType returns the KeyType named s (case-insensitive).
func ParseKeyType(s string) (KeyType, error) {
	for _, k := range KeyTypes {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	return "", fmt.Errorf("%w %q (want one of %s)", ErrKeyType, s, keyTypeList())
}

func keyTypeList() string {
	names := make([]string, len(KeyTypes))
	for i, k := range KeyTypes {
		names[i] = string(k)
	}
	return strings.Join(names, ", ")
}

// GenerateKey creates a new private key of type t, reading randomness from r.
func GenerateKey(r io.Reader, t KeyType) (crypto.Signer, error) {
	switch t {
	case RSA2048, RSA3072, RSA4096:
		bits := map[KeyType]int{RSA2048: 2048, RSA3072: 3072, RSA4096: 4096}[t]
		return rsa.GenerateKey(r, bits)
	case P256:
		return ecdsa.GenerateKey(elliptic.P256(), r)
	case P384:
		return ecdsa.GenerateKey(elliptic.P384(), r)
	}
	return nil, fmt.Errorf("%w %q", ErrKeyType, t)
}

// checkPublicKey rejects public keys the kernel cannot load.
func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("%w: RSA key of %d bits (at least 2048)", ErrUnsupportedKey, k.N.BitLen())
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("%w: ECDSA curve %s (the kernel accepts P-256 and P-384)", ErrUnsupportedKey, k.Curve.Params().Name)
	}
	return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
}

// SubjectKeyID returns the SHA-1 hash of the subjectPublicKey BIT STRING of
// pub (RFC 5280 section 4.2.1.2, method 1), which is what openssl writes for
// subjectKeyIdentifier=hash and what evmctl derives a key id from when it has
// no certificate. The IMA key id is its last four bytes.
//
// Go's x509.CreateCertificate fills a missing SubjectKeyId with a truncated
// SHA-256 since Go 1.25, so imaforge always sets it explicitly.
func SubjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("subject key id: %w", err)
	}
	var spki struct {
		Algorithm asn1.RawValue
		PublicKey asn1.BitString
	}
	if rest, err := asn1.Unmarshal(der, &spki); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("subject key id: malformed SubjectPublicKeyInfo: %v", err)
	}
	sum := sha1.Sum(spki.PublicKey.Bytes)
	return sum[:], nil
}

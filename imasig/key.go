package imasig

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
)

// Supported RSA modulus sizes. The kernel verifies larger keys too, but
// evmctl's MAX_SIGNATURE_SIZE (1024 bytes, ima-evm-utils imaevm.h) caps
// interoperable RSA at 8192 bits; below 2048 bits a key is too weak to sign
// firmware.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// CheckKey accepts the public key types IMA signatures are made and
// verified with: RSA 2048-8192 bits (PKCS#1 v1.5) and ECDSA P-256/P-384
// (security/integrity/digsig_asymmetric.c hands both to the kernel's
// public_key_verify_signature; Ed25519 is not available to IMA). Other keys
// are an error wrapping ErrUnsupportedKey.
func CheckKey(pub crypto.PublicKey) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if n := p.N.BitLen(); n < MinRSABits || n > MaxRSABits {
			return fmt.Errorf("%w: %s (want RSA 2048, 3072 or 4096 bits, or up to 8192)", ErrUnsupportedKey, DescribeKey(pub))
		}
		return nil
	case *ecdsa.PublicKey:
		if p.Curve == elliptic.P256() || p.Curve == elliptic.P384() {
			return nil
		}
	}
	return fmt.Errorf("%w: %s (want RSA 2048/3072/4096 or ECDSA P-256/P-384)", ErrUnsupportedKey, DescribeKey(pub))
}

// DescribeKey names a public key's type and size for messages: "RSA-2048",
// "ECDSA P-256".
func DescribeKey(pub crypto.PublicKey) string {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", p.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + p.Curve.Params().Name
	case nil:
		return "no key"
	}
	return fmt.Sprintf("%T", pub)
}

package signer

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/imaforge/imaforge/imasig"
)

// RSAVerifier checks RSA PKCS#1 v1.5 signatures (over a DigestInfo) by one
// public key, as imasig.VerifyDigest does, through the system libcrypto
// where the build has it. crypto/rsa rebuilds the modulus's Montgomery
// constants on every verification: an RSA-2048 verify cost 46 µs there, 15%
// of a libcrypto signature, where OpenSSL's is about 3% (BenchmarkVerifyRSA).
// A client that checks every value a signing service returns verifies as
// often as it signs. It is safe for concurrent use.
type RSAVerifier struct {
	pub  *rsa.PublicKey
	fast func(h crypto.Hash, digest, sig []byte) bool
}

// NewRSAVerifier returns the RSAVerifier of pub.
func NewRSAVerifier(pub *rsa.PublicKey) *RSAVerifier {
	v := &RSAVerifier{pub: pub}
	if f, err := newLibcryptoRSAVerifier(pub); err == nil {
		v.fast = f
	}
	return v
}

// Backend is "libcrypto" or "go".
func (v *RSAVerifier) Backend() string {
	if v.fast != nil {
		return "libcrypto"
	}
	return "go"
}

// Verify checks sig over digest, made with h; a signature that does not
// verify is an error wrapping imasig.ErrBadSignature.
func (v *RSAVerifier) Verify(h imasig.Hash, digest, sig []byte) error {
	if v.fast == nil {
		return imasig.VerifyDigest(v.pub, h, digest, sig)
	}
	if !v.fast(h.CryptoHash(), digest, sig) {
		return fmt.Errorf("%w (RSA-%d, %s)", imasig.ErrBadSignature, v.pub.N.BitLen(), h)
	}
	return nil
}

// NewVerifier returns an imasig.Verifier over certs that checks the
// signatures of RSA keys through their RSAVerifier (libcrypto where the
// build has it) and the others as imasig does.
func NewVerifier(certs ...*x509.Certificate) (*imasig.Verifier, error) {
	v, err := imasig.NewVerifier()
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		var dv imasig.DigestVerifier
		if pub, ok := c.PublicKey.(*rsa.PublicKey); ok {
			dv = NewRSAVerifier(pub)
		}
		if err := v.AddWith(c, dv); err != nil {
			return nil, err
		}
	}
	return v, nil
}

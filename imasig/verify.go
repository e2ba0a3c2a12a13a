package imasig

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"io"
)

// DigestSigner makes complete security.ima signature values (type 0x03,
// version 2) over digests made with h; *signer.Signer is one. Packages that
// only need signatures (policy files, ceremony responses) take this instead
// of a key backend.
type DigestSigner interface {
	SignDigest(h Hash, digest []byte) ([]byte, error)
}

// Verifier checks security.ima signatures against a set of certificates,
// selected by key id as the kernel selects keys in its IMA keyring. SHA-1
// signatures verify (old images); new ones are never made with it.
type Verifier struct {
	byID map[[4]byte][]verifierKey
}

// DigestVerifier checks signatures of one public key over a digest, as
// VerifyDigest does (an error wrapping ErrBadSignature when sig does not
// verify); *signer.RSAVerifier is one, through libcrypto.
type DigestVerifier interface {
	Verify(h Hash, digest, sig []byte) error
}

type verifierKey struct {
	cert *x509.Certificate
	dv   DigestVerifier // nil: VerifyDigest
}

// NewVerifier returns a Verifier over certs. A certificate whose key IMA
// cannot use (Ed25519, RSA-1024, ...) is an error wrapping ErrUnsupportedKey.
func NewVerifier(certs ...*x509.Certificate) (*Verifier, error) {
	v := &Verifier{byID: make(map[[4]byte][]verifierKey)}
	for _, c := range certs {
		if err := v.Add(c); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Add adds a certificate.
func (v *Verifier) Add(cert *x509.Certificate) error {
	return v.AddWith(cert, nil)
}

// AddWith adds a certificate whose signatures dv checks instead of
// VerifyDigest (nil: VerifyDigest).
func (v *Verifier) AddWith(cert *x509.Certificate, dv DigestVerifier) error {
	if err := CheckKey(cert.PublicKey); err != nil {
		return fmt.Errorf("certificate %q: %w", cert.Subject.String(), err)
	}
	id := KeyID(cert)
	v.byID[id] = append(v.byID[id], verifierKey{cert: cert, dv: dv})
	return nil
}

// Verify checks that value, a complete security.ima value of type 0x03
// version 2, is a valid signature over digest by one of the certificates
// with its key id. digest must have been made with the algorithm the value
// names (see ParseSignature; VerifyReader hashes for you). Failures are
// *InvalidSignatureError wrapping ErrUnknownKeyID, ErrBadSignature,
// ErrUnsupportedHash or a *FormatError.
func (v *Verifier) Verify(value, digest []byte) error {
	sig, err := ParseSignature(value)
	if err != nil {
		return &InvalidSignatureError{Err: err}
	}
	if err := v.verify(sig, digest); err != nil {
		return &InvalidSignatureError{KeyID: sig.KeyID, Err: err}
	}
	return nil
}

// VerifyReader hashes r with the algorithm value names and verifies value
// over the digest.
func (v *Verifier) VerifyReader(value []byte, r io.Reader) error {
	sig, err := ParseSignature(value)
	if err != nil {
		return &InvalidSignatureError{Err: err}
	}
	d, err := DigestReader(sig.Hash, r)
	if err != nil {
		if !sig.Hash.Available() {
			return &InvalidSignatureError{KeyID: sig.KeyID, Err: err}
		}
		return err
	}
	if err := v.verify(sig, d); err != nil {
		return &InvalidSignatureError{KeyID: sig.KeyID, Err: err}
	}
	return nil
}

func (v *Verifier) verify(sig *Signature, digest []byte) error {
	if !sig.Hash.Available() {
		return fmt.Errorf("%w: %s", ErrUnsupportedHash, sig.Hash)
	}
	if len(digest) != sig.Hash.Size() {
		return fmt.Errorf("%w: %s digest of %d bytes (want %d)", ErrFormat, sig.Hash, len(digest), sig.Hash.Size())
	}
	keys := v.byID[sig.KeyID]
	if len(keys) == 0 {
		return fmt.Errorf("%w %x", ErrUnknownKeyID, sig.KeyID[:])
	}
	var err error
	for _, k := range keys {
		if k.dv != nil {
			err = k.dv.Verify(sig.Hash, digest, sig.Sig)
		} else {
			err = VerifyDigest(k.cert.PublicKey, sig.Hash, digest, sig.Sig)
		}
		if err == nil {
			return nil
		}
	}
	return err
}

// Verify is a one-shot Verifier.Verify over certs.
func Verify(value, digest []byte, certs ...*x509.Certificate) error {
	v, err := NewVerifier(certs...)
	if err != nil {
		return err
	}
	return v.Verify(value, digest)
}

// VerifyDigest checks a bare signature sig (the bytes after a v2 header:
// RSA PKCS#1 v1.5 over DigestInfo, or ECDSA ASN.1 DER) by pub over digest,
// made with h, as the kernel's public_key_verify_signature does. A signature
// that does not verify is an error wrapping ErrBadSignature.
func VerifyDigest(pub crypto.PublicKey, h Hash, digest, sig []byte) error {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(p, h.CryptoHash(), digest, sig); err != nil {
			return fmt.Errorf("%w (RSA-%d, %s)", ErrBadSignature, p.N.BitLen(), h)
		}
		return nil
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(p, digest, sig) {
			return fmt.Errorf("%w (ECDSA %s, %s)", ErrBadSignature, p.Curve.Params().Name, h)
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrUnsupportedKey, DescribeKey(pub))
}

// CheckDigestNG checks a digest-only value (type 0x04, see DigestNG) against
// the content of r. It proves integrity only, not origin: anyone can make
// such a value, which is why IMA's appraise_type=imasig refuses it.
func CheckDigestNG(value []byte, r io.Reader) error {
	var d DigestNG
	if err := d.UnmarshalBinary(value); err != nil {
		return err
	}
	got, err := DigestReader(d.Hash, r)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, d.Digest) {
		return fmt.Errorf("%w: %s %x, content has %x", ErrDigestMismatch, d.Hash, d.Digest, got)
	}
	return nil
}

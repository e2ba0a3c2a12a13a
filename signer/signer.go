package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/imaforge/imaforge/imasig"
)

// Signer makes security.ima signature values (type 0x03, version 2) with one
// key and its certificate. Any crypto.Signer works (file keys, PKCS#11 and
// KMS backends). It is safe for concurrent use if the key is.
type Signer struct {
	key   crypto.Signer
	cert  *x509.Certificate
	keyID [4]byte
	pub   crypto.PublicKey

	// rsaFast signs with the system libcrypto when the key is an
	// *rsa.PrivateKey and the program was built with cgo; nil otherwise.
	rsaFast rsaBackend
	// rsaCheck verifies what an external RSA key (an HSM) makes, through
	// libcrypto; nil for other keys.
	rsaCheck *RSAVerifier

	detOnce sync.Once
	det     bool
}

// New returns a Signer for key and cert. It fails with ErrKeyMismatch when
// the key is not the certificate's, and with ErrUnsupportedKey for keys other
// than RSA 2048-8192 bits or ECDSA P-256/P-384 (the kernel verifies IMA
// signatures with RSA PKCS#1 v1.5 and, where built with it, ECDSA; Ed25519 is
// not available to IMA).
func New(key crypto.Signer, cert *x509.Certificate) (*Signer, error) {
	if key == nil || cert == nil {
		return nil, errors.New("signer.New: nil key or certificate")
	}
	pub := key.Public()
	if err := imasig.CheckKey(pub); err != nil {
		return nil, err
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: key is %s, certificate %q has %s",
			ErrKeyMismatch, imasig.DescribeKey(pub), cert.Subject.String(), imasig.DescribeKey(cert.PublicKey))
	}
	return newSigner(key, cert, imasig.KeyID(cert)), nil
}

// NewKeyOnly returns a Signer for key without a certificate: its key id is
// the one evmctl gives a key without --keyid or --keyid-from-cert
// (imasig.KeyIDFromPublicKey, calc_keyid_v2), which is also the tail of the
// SubjectKeyIdentifier of a certificate made with openssl's
// subjectKeyIdentifier=hash (and by imaforge pki). Cert returns nil. It is
// for signing single files (file sign, policy sign); a build needs the
// certificate for its trust and scope checks.
func NewKeyOnly(key crypto.Signer) (*Signer, error) {
	if key == nil {
		return nil, errors.New("signer.NewKeyOnly: nil key")
	}
	pub := key.Public()
	if err := imasig.CheckKey(pub); err != nil {
		return nil, err
	}
	id, err := imasig.KeyIDFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return newSigner(key, nil, id), nil
}

func newSigner(key crypto.Signer, cert *x509.Certificate, keyID [4]byte) *Signer {
	s := &Signer{key: key, cert: cert, keyID: keyID, pub: key.Public()}
	if k, ok := key.(*rsa.PrivateKey); ok {
		if b, err := newLibcryptoRSA(k); err == nil {
			s.rsaFast = b
		}
	} else if p, ok := s.pub.(*rsa.PublicKey); ok {
		s.rsaCheck = NewRSAVerifier(p)
	}
	return s
}

// CryptoSigner returns the key s signs with, for signatures other than
// security.ima values (the CMS signatures of whole images, package
// integrity).
func (s *Signer) CryptoSigner() crypto.Signer { return s.key }

// KeyID returns the key id written into every signature (see KeyID).
func (s *Signer) KeyID() [4]byte { return s.keyID }

// Cert returns the signing certificate (nil for NewKeyOnly).
func (s *Signer) Cert() *x509.Certificate { return s.cert }

// Public returns the signing public key.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// KeyType describes the key: "RSA-2048", "ECDSA P-256".
func (s *Signer) KeyType() string { return imasig.DescribeKey(s.pub) }

// Backend names the implementation making the signatures: "libcrypto" (the
// system OpenSSL through cgo, for RSA file keys), "go" (crypto/rsa,
// crypto/ecdsa) or "external" (another crypto.Signer, such as an HSM).
func (s *Signer) Backend() string {
	switch s.key.(type) {
	case *rsa.PrivateKey:
		if s.rsaFast != nil {
			return "libcrypto"
		}
		return "go"
	case *ecdsa.PrivateKey:
		return "go"
	}
	return "external"
}

// Deterministic reports whether signing the same digest twice gives the same
// bytes, which reproducible images need. RSA PKCS#1 v1.5 always is; ECDSA
// keys held by Go sign with RFC 6979 nonces. For another ECDSA crypto.Signer
// (an HSM) the first call signs a probe digest twice and compares: unequal
// proves randomized nonces, equal is taken as deterministic.
func (s *Signer) Deterministic() bool {
	s.detOnce.Do(func() {
		switch s.key.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
			s.det = true
			return
		}
		if _, ok := s.pub.(*rsa.PublicKey); ok {
			s.det = true
			return
		}
		probe := bytes.Repeat([]byte{0x5a}, imasig.SHA256.Size())
		a, err1 := s.SignDigest(imasig.SHA256, probe)
		b, err2 := s.SignDigest(imasig.SHA256, probe)
		s.det = err1 == nil && err2 == nil && bytes.Equal(a, b)
	})
	return s.det
}

// SignDigest signs digest, made with h, and returns the complete
// security.ima value: 03 02 <h> <key id> <len> <signature>. h must be one of
// the SHA-2 or SHA-3 algorithms (sha256, sha384, sha512 in practice); SHA-1
// is refused (ErrUnsupportedHash).
func (s *Signer) SignDigest(h imasig.Hash, digest []byte) ([]byte, error) {
	sig, err := s.Sign(h, digest)
	if err != nil {
		return nil, err
	}
	return sig.MarshalBinary()
}

// SignDigests is SignDigest for several digests, all made with h: one
// security.ima value per digest, the same bytes SignDigest gives. An RSA key
// signed with libcrypto makes them in one call into C (BatchSize digests at
// a time pay one cgo transition); other keys sign one after another.
func (s *Signer) SignDigests(h imasig.Hash, digests [][]byte) ([][]byte, error) {
	bb, ok := s.rsaFast.(rsaBatchBackend)
	if _, isRSA := s.key.(*rsa.PrivateKey); !ok || !isRSA || len(digests) < 2 {
		vals := make([][]byte, len(digests))
		for i, d := range digests {
			v, err := s.SignDigest(h, d)
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		return vals, nil
	}
	for _, d := range digests {
		if err := checkDigest(h, d); err != nil {
			return nil, err
		}
	}
	raws, err := bb.signPKCS1v15Batch(h.CryptoHash(), digests)
	if err != nil {
		return nil, fmt.Errorf("sign %s digests with %s: %w", h, imasig.DescribeKey(s.pub), err)
	}
	vals := make([][]byte, len(raws))
	for i, raw := range raws {
		sig := imasig.Signature{Kind: imasig.TypeSignature, Version: imasig.SigVersion2, Hash: h, KeyID: s.keyID, Sig: raw}
		if vals[i], err = sig.MarshalBinary(); err != nil {
			return nil, err
		}
	}
	return vals, nil
}

// BatchSize is the most digests SignDigests is best given at once: with an
// RSA key signed with libcrypto, one hand-off to a signing thread and back
// per batch (two eventfd system calls and a wake-up of the waiting
// goroutine). 64 RSA-2048 signatures take about 17 ms of one core; a
// caller that waits for each signature as it comes (a tar image) gives
// fewer at a time.
const BatchSize = 64

// Sign is SignDigest returning the decoded Signature.
func (s *Signer) Sign(h imasig.Hash, digest []byte) (*imasig.Signature, error) {
	if err := checkDigest(h, digest); err != nil {
		return nil, err
	}
	var raw []byte
	var err error
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		if s.rsaFast != nil {
			raw, err = s.rsaFast.signPKCS1v15(h.CryptoHash(), digest)
		} else {
			raw, err = rsa.SignPKCS1v15(nil, k, h.CryptoHash(), digest)
		}
	case *ecdsa.PrivateKey:
		// A nil reader selects RFC 6979 deterministic nonces (Go >= 1.26).
		raw, err = k.Sign(nil, digest, h.CryptoHash())
	default:
		raw, err = s.key.Sign(rand.Reader, digest, h.CryptoHash())
		if err == nil {
			// Catch backends returning another encoding (PKCS#11 gives raw
			// r||s for ECDSA) before a bad value reaches an image.
			var verr error
			if s.rsaCheck != nil {
				verr = s.rsaCheck.Verify(h, digest, raw)
			} else {
				verr = imasig.VerifyDigest(s.pub, h, digest, raw)
			}
			if verr != nil {
				return nil, fmt.Errorf("key backend %T made a signature that does not verify: %w", s.key, verr)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sign %s digest with %s: %w", h, imasig.DescribeKey(s.pub), err)
	}
	return &imasig.Signature{Kind: imasig.TypeSignature, Version: imasig.SigVersion2, Hash: h, KeyID: s.keyID, Sig: raw}, nil
}

// checkDigest refuses a hash that may not sign and a digest not of its size.
func checkDigest(h imasig.Hash, digest []byte) error {
	if !h.SigningAllowed() || !h.Available() {
		return fmt.Errorf("%w: %s cannot be used to sign (use sha256, sha384 or sha512)", imasig.ErrUnsupportedHash, h)
	}
	if len(digest) != h.Size() {
		return fmt.Errorf("%w: %s digest of %d bytes (want %d)", imasig.ErrFormat, h, len(digest), h.Size())
	}
	return nil
}

// rsaBackend is an alternative RSA PKCS#1 v1.5 implementation; it must give
// the same bytes as crypto/rsa.
type rsaBackend interface {
	signPKCS1v15(h crypto.Hash, digest []byte) ([]byte, error)
}

// rsaBatchBackend is an rsaBackend that signs several digests at once.
type rsaBatchBackend interface {
	rsaBackend
	signPKCS1v15Batch(h crypto.Hash, digests [][]byte) ([][]byte, error)
}

// Close ends the sessions of a token key (one that Open returned); for
// other keys it does nothing.
func (s *Signer) Close() error {
	if c, ok := s.key.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

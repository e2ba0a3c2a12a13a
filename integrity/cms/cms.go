// Package cms makes and checks the CMS (PKCS#7, RFC 5652) SignedData
// signatures of whole images, dm-verity root hashes and RAUC manifests.
//
// A signature made here has one SignerInfo (version 1, signer identified by
// issuer and serial number), digest algorithm SHA-256, RSA PKCS#1 v1.5 or
// ECDSA, NO signed attributes (so no signing time: the same key, content
// and chain always give the same bytes with RSA and with Go-held ECDSA keys,
// which sign with RFC 6979 nonces), and the certificates given (signer
// first, then its intermediates; roots belong in the verifier's trust store,
// not in the message). Without signed attributes the signature is directly
// over the content digest (RFC 5652 5.4), so a detached signature can be
// made from a digest computed while the content was written, and what
// `openssl cms -sign -noattr` makes. The Linux kernel's PKCS#7 parser
// (crypto/asymmetric_keys/pkcs7_*.c, used for dm-verity root hash
// signatures) and OpenSSL's CMS_verify (openssl cms -verify, RAUC) read it.
//
// The encoding uses relic's lib/pkcs7 (github.com/sassoftware/relic/v8, a
// chosen dependency of imaforge, maintained and used for code signing by
// SAS); verification of a detached signature takes the content's digest
// instead of its bytes, so an image of gigabytes is never held in memory.
package cms

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"

	"github.com/sassoftware/relic/v8/lib/pkcs7"
	"github.com/sassoftware/relic/v8/lib/x509tools"
)

// Errors matched with errors.Is.
var (
	// ErrFormat: not a CMS SignedData imaforge reads.
	ErrFormat = errors.New("malformed CMS signature")
	// ErrInvalid: the signature does not verify over the content.
	ErrInvalid = errors.New("CMS signature does not verify")
)

// Hash is the digest algorithm of every signature made here.
const Hash = crypto.SHA256

// Digest returns the SHA-256 of r's content.
func Digest(r io.Reader) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// SignDetached returns a DER CMS SignedData without encapsulated content
// over the content whose SHA-256 is digest, signed by key, carrying certs
// (certs[0] is key's certificate).
func SignDetached(digest []byte, key crypto.Signer, certs []*x509.Certificate) ([]byte, error) {
	sb := pkcs7.NewBuilder(deterministic(key), certs, Hash)
	if err := sb.SetDetachedContent(pkcs7.OidData, digest); err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	return sign(sb)
}

// SignAttached returns a DER CMS SignedData that encapsulates content (an
// id-data OCTET STRING), as RAUC's verity bundles carry their manifest.
func SignAttached(content []byte, key crypto.Signer, certs []*x509.Certificate) ([]byte, error) {
	sb := pkcs7.NewBuilder(deterministic(key), certs, Hash)
	if err := sb.SetContentData(content); err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	return sign(sb)
}

func sign(sb *pkcs7.SignatureBuilder) ([]byte, error) {
	psd, err := sb.Sign()
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	der, err := psd.Marshal()
	if err != nil {
		return nil, fmt.Errorf("cms: %w", err)
	}
	return der, nil
}

// deterministic makes a Go-held ECDSA key sign with RFC 6979 nonces (a nil
// random source, Go 1.24+); other keys are used as they are (RSA PKCS#1
// v1.5 is deterministic; a token decides for itself).
func deterministic(key crypto.Signer) crypto.Signer {
	if k, ok := key.(*ecdsa.PrivateKey); ok {
		return rfc6979{k}
	}
	return key
}

type rfc6979 struct{ k *ecdsa.PrivateKey }

func (r rfc6979) Public() crypto.PublicKey { return r.k.Public() }
func (r rfc6979) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return r.k.Sign(nil, digest, opts)
}

// Signature is a parsed, cryptographically verified CMS signature. The
// signer's certificate chain is NOT checked here: pass Signer and
// Certificates to a trust store (pki.TrustStore.CheckSigner).
type Signature struct {
	// Signer is the certificate whose key made the signature.
	Signer *x509.Certificate
	// Certificates are all certificates the message carries (Signer among
	// them).
	Certificates []*x509.Certificate
	// Content is the encapsulated content, nil for a detached signature.
	Content []byte
	// SignedAttributes reports whether the signer signed attributes
	// (signing time, ...) rather than the content digest directly.
	SignedAttributes bool
}

// Parse decodes a DER SignedData with exactly one SignerInfo.
func Parse(der []byte) (*pkcs7.ContentInfoSignedData, error) {
	psd, err := pkcs7.Unmarshal(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if !psd.ContentType.Equal(pkcs7.OidSignedData) {
		return nil, fmt.Errorf("%w: content type %v, not signedData", ErrFormat, psd.ContentType)
	}
	if n := len(psd.Content.SignerInfos); n != 1 {
		return nil, fmt.Errorf("%w: %d signers, want 1", ErrFormat, n)
	}
	if !psd.Content.ContentInfo.ContentType.Equal(pkcs7.OidData) {
		return nil, fmt.Errorf("%w: encapsulated content type %v, not id-data", ErrFormat, psd.Content.ContentInfo.ContentType)
	}
	return psd, nil
}

// VerifyDetached checks a detached signature over the content whose
// SHA-256 is digest.
func VerifyDetached(der, digest []byte) (*Signature, error) {
	psd, err := Parse(der)
	if err != nil {
		return nil, err
	}
	content, err := psd.Content.ContentInfo.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if content != nil {
		return nil, fmt.Errorf("%w: the signature encapsulates its content; expected a detached signature", ErrFormat)
	}
	return verify(psd, digest)
}

// VerifyAttached checks a signature that encapsulates its content and
// returns it in Signature.Content.
func VerifyAttached(der []byte) (*Signature, error) {
	psd, err := Parse(der)
	if err != nil {
		return nil, err
	}
	content, err := psd.Content.ContentInfo.Bytes()
	if err != nil || content == nil {
		return nil, fmt.Errorf("%w: no encapsulated content", ErrFormat)
	}
	// The content is id-data: the bytes of its OCTET STRING are signed.
	octets := content
	d := sha256.Sum256(octets)
	s, err := verify(psd, d[:])
	if err != nil {
		return nil, err
	}
	s.Content = append([]byte(nil), octets...)
	return s, nil
}

func verify(psd *pkcs7.ContentInfoSignedData, digest []byte) (*Signature, error) {
	si := &psd.Content.SignerInfos[0]
	h, err := x509tools.PkixDigestToHashE(si.DigestAlgorithm)
	if err != nil || h != Hash {
		return nil, fmt.Errorf("%w: digest algorithm %v, want SHA-256", ErrFormat, si.DigestAlgorithm.Algorithm)
	}
	if len(digest) != Hash.Size() {
		return nil, fmt.Errorf("cms: digest of %d bytes", len(digest))
	}
	certs, err := psd.Content.Certificates.Parse()
	if err != nil {
		return nil, fmt.Errorf("%w: certificates: %w", ErrFormat, err)
	}
	cert, err := si.FindCertificate(certs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	signed := digest
	attrs := len(si.AuthenticatedAttributes) != 0
	if attrs {
		var md []byte
		if err := si.AuthenticatedAttributes.GetOne(pkcs7.OidAttributeMessageDigest, &md); err != nil {
			return nil, fmt.Errorf("%w: signed attributes without a message digest: %w", ErrFormat, err)
		}
		if !bytes.Equal(md, digest) {
			return nil, fmt.Errorf("%w: the content's digest is not the signed message digest", ErrInvalid)
		}
		ab, err := si.AuthenticatedAttributesBytes()
		if err != nil {
			return nil, fmt.Errorf("%w: signed attributes: %w", ErrFormat, err)
		}
		d := sha256.Sum256(ab)
		signed = d[:]
	}
	if err := x509tools.PkixVerify(cert.PublicKey, si.DigestAlgorithm, si.DigestEncryptionAlgorithm, signed, si.EncryptedDigest); err != nil {
		return nil, fmt.Errorf("%w: signer %q: %w", ErrInvalid, cert.Subject.String(), err)
	}
	return &Signature{Signer: cert, Certificates: certs, SignedAttributes: attrs}, nil
}

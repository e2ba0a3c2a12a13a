package pki

import (
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

// Reasons a certificate is refused, matched with errors.Is through
// *CertError and every wrapping layer above it.
var (
	ErrExpired        = errors.New("certificate expired")
	ErrNotYetValid    = errors.New("certificate not yet valid")
	ErrRevoked        = errors.New("certificate revoked")
	ErrUnknownIssuer  = errors.New("certificate issuer not trusted")
	ErrBadSignature   = errors.New("certificate signature does not verify")
	ErrKeyUsage       = errors.New("certificate not allowed for this use")
	ErrKeyMismatch    = signer.ErrKeyMismatch // the same sentinels as package signer
	ErrDuplicateKeyID = errors.New("two certificates share an IMA key id")
	ErrOutOfScope     = errors.New("path outside the key's scope")
	ErrUnsupportedKey = imasig.ErrUnsupportedKey
	ErrUnknownKeyID   = imasig.ErrUnknownKeyID
	ErrChainRejected  = errors.New("chain rejected by crypto/x509")
	// ErrRevocationUnknown: a CA of the chain has no CRL in the trust
	// store, or only CRLs whose nextUpdate has passed, so whether the
	// certificate it issued is revoked is not known (an error unless the
	// store's revocation mode is RevocationBestEffort).
	ErrRevocationUnknown = errors.New("revocation status unknown")
)

// CertError reports why a certificate is refused. Cert names the
// certificate at fault, which is not always the one being checked (an expired
// owner CA fails its IMA certificates); Err is one of the sentinels above.
type CertError struct {
	Cert   *x509.Certificate
	Reason string
	Err    error
}

func (e *CertError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("certificate %s: %v", subjectOf(e.Cert), e.Err)
	}
	return fmt.Sprintf("certificate %s: %s", subjectOf(e.Cert), e.Reason)
}

func (e *CertError) Unwrap() error { return e.Err }

// ReasonOf names why err refused a certificate, in the words of verify's
// reports and `pki verify --json`: "revoked", "revocation-unknown",
// "expired", "not-yet-valid", "out-of-scope", "key-mismatch",
// "duplicate-key-id", "unknown-issuer", "bad-signature", "key-usage",
// "unsupported-key", "chain-rejected", or "error" for anything else.
func ReasonOf(err error) string {
	for _, r := range []struct {
		err  error
		name string
	}{
		{ErrRevoked, "revoked"}, {ErrRevocationUnknown, "revocation-unknown"}, {ErrExpired, "expired"},
		{ErrNotYetValid, "not-yet-valid"}, {ErrOutOfScope, "out-of-scope"}, {ErrKeyMismatch, "key-mismatch"},
		{ErrDuplicateKeyID, "duplicate-key-id"}, {ErrUnknownIssuer, "unknown-issuer"}, {ErrBadSignature, "bad-signature"},
		{ErrKeyUsage, "key-usage"}, {ErrUnsupportedKey, "unsupported-key"}, {ErrChainRejected, "chain-rejected"},
	} {
		if errors.Is(err, r.err) {
			return r.name
		}
	}
	return "error"
}

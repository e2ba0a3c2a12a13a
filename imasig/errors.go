package imasig

import (
	"errors"
	"fmt"
)

// Sentinel errors, matched with errors.Is through every wrapping layer.
var (
	// ErrFormat: a security.ima value is malformed (see FormatError).
	ErrFormat = errors.New("malformed security.ima value")
	// ErrTruncated: a value ends before its header or payload does.
	ErrTruncated = errors.New("truncated security.ima value")
	// ErrWrongType: a value is of another type than the operation needs
	// (for example a digest where a signature is required).
	ErrWrongType = errors.New("wrong security.ima type")
	// ErrUnsupportedHash: an algorithm that is unknown, not available, or
	// not allowed for the operation (SHA-1 may verify but never sign).
	ErrUnsupportedHash = errors.New("unsupported hash algorithm")
	// ErrUnsupportedKey: a key type or size IMA signing does not support here
	// (supported: RSA 2048-8192 bits with PKCS#1 v1.5, ECDSA P-256 and P-384).
	ErrUnsupportedKey = errors.New("unsupported key")
	// ErrUnknownKeyID: no certificate given has the signature's key id.
	ErrUnknownKeyID = errors.New("no certificate with the signature's key id")
	// ErrBadSignature: the signature does not verify over the digest.
	ErrBadSignature = errors.New("signature does not verify")
	// ErrDigestMismatch: a digest-only value does not match the content.
	ErrDigestMismatch = errors.New("digest does not match")
)

// FormatError describes a malformed security.ima value: what is wrong and
// at which byte offset. It wraps ErrFormat, ErrTruncated or ErrWrongType.
type FormatError struct {
	Off int    // byte offset in the value where the problem is
	Msg string // what is wrong
	Err error  // the sentinel: ErrFormat, ErrTruncated, ErrWrongType, ErrUnsupportedHash
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d", e.Err, e.Msg, e.Off)
}

func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(sentinel error, off int, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// InvalidSignatureError reports a signature that failed verification. Path
// is the file it is about (empty when verifying a bare digest), KeyID the key
// id the value names (zero when the value could not be parsed).
type InvalidSignatureError struct {
	Path  string
	KeyID [4]byte
	Err   error
}

func (e *InvalidSignatureError) Error() string {
	p := e.Path
	if p == "" {
		p = "security.ima"
	}
	if e.KeyID != ([4]byte{}) {
		return fmt.Sprintf("%s: invalid signature (key id %x): %v", p, e.KeyID[:], e.Err)
	}
	return fmt.Sprintf("%s: invalid signature: %v", p, e.Err)
}

func (e *InvalidSignatureError) Unwrap() error { return e.Err }

package signer

import (
	"errors"
	"fmt"
)

// Sentinel errors of key loading and signature storage, matched with
// errors.Is through every wrapping layer. Errors about the security.ima
// format and verification are imasig's (imasig.ErrFormat,
// imasig.ErrBadSignature, ...).
var (
	// ErrKeyMismatch: the private key does not belong to the certificate.
	ErrKeyMismatch = errors.New("private key does not match the certificate")
	// ErrNoValue: the file has no signature (no .sig file, no xattr).
	ErrNoValue = errors.New("no security.ima value")
	// ErrPassphrase: an encrypted key needs a passphrase that was not
	// given, or the one given does not decrypt it.
	ErrPassphrase = errors.New("wrong or missing passphrase")
)

// FileError is an error about a named file (a key, a certificate, a file
// being signed) that is not a verification failure.
type FileError struct {
	Path string
	Op   string // what was being done: "read key", "sign", "write signature"
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("%s: %s: %v", e.Path, e.Op, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

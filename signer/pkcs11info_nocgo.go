//go:build !cgo

package signer

import (
	"errors"
	"fmt"
)

func moduleLoadError(path string) error {
	return &ModuleLoadError{Path: path, Reason: "imaforge was built without cgo"}
}

// PKCS11Tokens needs cgo.
func PKCS11Tokens(module string) ([]TokenInfo, error) {
	return nil, fmt.Errorf("%w: %w", ErrToken, errors.New("PKCS#11 needs a cgo build of imaforge"))
}

func reportedToken(module, label, serial string) *TokenInfo { return nil }

// InstalledPKCS11Modules returns nothing without cgo.
func InstalledPKCS11Modules() []string { return nil }

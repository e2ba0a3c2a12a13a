//go:build !cgo

package signer

import (
	"errors"
	"fmt"
)

// TokenInfo is what a PKCS#11 token reports about itself (see the cgo
// build; without cgo no PKCS#11 module can be loaded).
type TokenInfo struct {
	Module       string        `json:"module"`
	Slot         uint          `json:"slot"`
	Label        string        `json:"label"`
	Serial       string        `json:"serial"`
	Manufacturer string        `json:"manufacturer,omitempty"`
	Model        string        `json:"model,omitempty"`
	Objects      []TokenObject `json:"objects,omitempty"`
}

func (t TokenInfo) String() string {
	return fmt.Sprintf("slot %d label %q serial %q (%s %s)", t.Slot, t.Label, t.Serial, t.Manufacturer, t.Model)
}

// TokenObject is a public key or certificate object of a token.
type TokenObject struct {
	Class string `json:"class"`
	Label string `json:"label"`
	ID    string `json:"id"`
}

// ModuleLoadError is a PKCS#11 module that does not load.
type ModuleLoadError struct {
	Path   string
	Reason string
}

func (e *ModuleLoadError) Error() string {
	return fmt.Sprintf("PKCS#11 module %s does not load: %s", e.Path, e.Reason)
}

func (e *ModuleLoadError) Unwrap() error { return ErrToken }

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

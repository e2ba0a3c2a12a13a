package signer

import "fmt"

// TokenInfo is what a PKCS#11 token reports about itself (PKCS#11 v2.40
// C_GetTokenInfo) and the key objects anyone may see on it (public keys and
// certificates: private keys are listed only after a login).
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
	Class string `json:"class"` // "public-key", "certificate"
	Label string `json:"label"`
	ID    string `json:"id"` // CKA_ID, hex
}

// ModuleLoadError is a PKCS#11 module that does not load, with the
// dynamic loader's reason.
type ModuleLoadError struct {
	Path   string
	Reason string
}

func (e *ModuleLoadError) Error() string {
	return fmt.Sprintf("PKCS#11 module %s does not load: %s", e.Path, e.Reason)
}

func (e *ModuleLoadError) Unwrap() error { return ErrToken }

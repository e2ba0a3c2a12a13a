package verify

import (
	"errors"
	"fmt"
	"testing"

	"github.com/imaforge/imaforge/pki"
)

// TestChainReason: a refused chain reports pki's reason where verify's
// vocabulary has it (wrapped as pki.Chain wraps it), and untrusted-chain
// for every other refusal.
func TestChainReason(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Reason
	}{
		{pki.ErrRevoked, ReasonRevoked},
		{pki.ErrRevocationUnknown, ReasonRevocationUnknown},
		{pki.ErrExpired, ReasonExpired},
		{pki.ErrNotYetValid, ReasonNotYetValid},
		{pki.ErrOutOfScope, ReasonOutOfScope},
		{pki.ErrUnknownIssuer, ReasonUntrustedChain},
		{pki.ErrBadSignature, ReasonUntrustedChain},
		{pki.ErrKeyUsage, ReasonUntrustedChain},
		{errors.New("other"), ReasonUntrustedChain},
	} {
		err := fmt.Errorf("key 1234: %w", &pki.CertError{Reason: "test", Err: c.err})
		if got := chainReason(err); got != c.want {
			t.Errorf("chainReason(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

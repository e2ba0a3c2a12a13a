// Package testpki issues throwaway certificate hierarchies for tests with
// package pki (see docs/pki.md): a manufacturer root CA, an owner CA it
// signed, and IMA signing keys under either, each failing the test on error
// instead of returning it.
package testpki

import (
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/pki"
)

// Hierarchy is a root CA and an owner CA under it, both P-256 with pki's
// default lifetimes from now.
type Hierarchy struct {
	Root, Owner *pki.Issued
}

// New issues a root CA named rootName and an owner CA named ownerName
// under it.
func New(t testing.TB, rootName, ownerName string) *Hierarchy {
	t.Helper()
	root, err := pki.NewRoot(pki.Request{Role: pki.RoleRoot, Name: rootName, KeyType: pki.P256}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &Hierarchy{Root: root}
	h.Owner = Issue(t, pki.Request{Role: pki.RoleOwnerCA, Name: ownerName, KeyType: pki.P256}, h.RootIssuer(), pki.Options{})
	return h
}

// RootIssuer returns the root CA as an issuer.
func (h *Hierarchy) RootIssuer() pki.Issuer { return pki.Issuer{Cert: h.Root.Cert, Key: h.Root.Key} }

// OwnerIssuer returns the owner CA as an issuer.
func (h *Hierarchy) OwnerIssuer() pki.Issuer { return pki.Issuer{Cert: h.Owner.Cert, Key: h.Owner.Key} }

// Issue is pki.Issue failing t on error.
func Issue(t testing.TB, req pki.Request, iss pki.Issuer, opts pki.Options) *pki.Issued {
	t.Helper()
	c, err := pki.Issue(req, iss, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Write is pki.WriteIssued with unencrypted keys, failing t on error: it
// writes dir/base.key, base.der and base.pem.
func Write(t testing.TB, dir, base string, iss *pki.Issued, overwrite bool) {
	t.Helper()
	if _, err := pki.WriteIssued(dir, base, iss, pki.KeyFileOptions{}, overwrite); err != nil {
		t.Fatal(err)
	}
}

// CRLs returns an empty, current CRL of the root and one of the owner CA:
// what a trust store needs to know that nothing under them is revoked
// (pki.RevocationRequired).
func (h *Hierarchy) CRLs(t testing.TB) []*x509.RevocationList {
	t.Helper()
	return []*x509.RevocationList{CRL(t, h.RootIssuer()), CRL(t, h.OwnerIssuer())}
}

// WriteCRLs writes the empty CRLs of CRLs to dir/rootBase.crl and
// dir/ownerBase.crl.
func (h *Hierarchy) WriteCRLs(t testing.TB, dir, rootBase, ownerBase string) {
	t.Helper()
	for i, c := range h.CRLs(t) {
		base := []string{rootBase, ownerBase}[i]
		if err := pki.WriteCRL(filepath.Join(dir, base+".crl"), c); err != nil {
			t.Fatal(err)
		}
	}
}

// CRL is an empty CRL of iss from now, with pki's default validity.
func CRL(t testing.TB, iss pki.Issuer) *x509.RevocationList {
	t.Helper()
	c, _, err := pki.UpdateCRL(nil, iss, pki.CRLUpdate{}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

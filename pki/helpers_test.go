package pki

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// t0 is the injected "now" of the test hierarchy: certificates are issued
// at t0 and checked at t0 + checkDelay (openssl verify -attime the same).
var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

const checkDelay = 24 * time.Hour

func at(t time.Time) Options { return Options{Now: func() time.Time { return t }} }

// hierarchy is a root, an owner CA and an IMA certificate under it.
type hierarchy struct {
	root, owner, ima *Issued
}

func (h *hierarchy) rootIssuer() Issuer  { return Issuer{Cert: h.root.Cert, Key: h.root.Key} }
func (h *hierarchy) ownerIssuer() Issuer { return Issuer{Cert: h.owner.Cert, Key: h.owner.Key} }

func mustIssue(t testing.TB, req Request, issuer *Issuer, opts Options) *Issued {
	t.Helper()
	var out *Issued
	var err error
	if issuer == nil {
		out, err = NewRoot(req, opts)
	} else {
		out, err = Issue(req, *issuer, opts)
	}
	if err != nil {
		t.Fatalf("issue %s %q: %v", req.Role, req.Name, err)
	}
	return out
}

func newHierarchy(t testing.TB, kt KeyType) *hierarchy {
	t.Helper()
	h := &hierarchy{}
	h.root = mustIssue(t, Request{Name: "ACME Manufacturing", KeyType: kt}, nil, at(t0))
	ri := h.rootIssuer()
	h.owner = mustIssue(t, Request{Role: RoleOwnerCA, Name: "Owner One", KeyType: kt}, &ri, at(t0))
	oi := h.ownerIssuer()
	scope, err := NewScope([]string{"/opt/acme/**"})
	if err != nil {
		t.Fatal(err)
	}
	h.ima = mustIssue(t, Request{Role: RoleIMA, Name: "Tenant ACME", KeyType: kt, Scope: scope}, &oi, at(t0))
	return h
}

// rawCert signs tmpl with parent/parentKey, bypassing Issue's rules, for
// certificates imaforge refuses to make (wrong key usage and such).
func rawCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	}
	if tmpl.SubjectKeyId == nil {
		skid, err := SubjectKeyID(pub)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.SubjectKeyId = skid
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func name(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

// writePEM writes certs to dir/name as PEM and returns the path.
func writePEM(t testing.TB, dir, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, EncodeCertificatePEM(c)...)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs a command and returns its combined output and error.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

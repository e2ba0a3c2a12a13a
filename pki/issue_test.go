package pki

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

func TestIssueHierarchy(t *testing.T) {
	for _, kt := range []KeyType{RSA2048, P256, P384} {
		t.Run(string(kt), func(t *testing.T) {
			h := newHierarchy(t, kt)
			root, owner, ima := h.root.Cert, h.owner.Cert, h.ima.Cert

			if !root.IsCA || root.MaxPathLen != 1 || root.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("root: IsCA %v MaxPathLen %d KeyUsage %b", root.IsCA, root.MaxPathLen, root.KeyUsage)
			}
			if !owner.IsCA || owner.MaxPathLen != 0 || !owner.MaxPathLenZero || owner.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
				t.Errorf("owner: IsCA %v MaxPathLen %d KeyUsage %b", owner.IsCA, owner.MaxPathLen, owner.KeyUsage)
			}
			if ima.IsCA || !ima.BasicConstraintsValid || ima.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("ima: IsCA %v KeyUsage %b", ima.IsCA, ima.KeyUsage)
			}
			for _, c := range []*x509.Certificate{root, owner, ima} {
				skid, err := SubjectKeyID(c.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(c.SubjectKeyId, skid) {
					t.Errorf("%s: SKID %x, want SHA-1 of the key %x", c.Subject, c.SubjectKeyId, skid)
				}
				id, err := imasig.KeyIDFromPublicKey(c.PublicKey)
				if err != nil || id != imasig.KeyID(c) {
					t.Errorf("%s: KeyID %x != evmctl's key id without certificate %x (%v)", c.Subject, imasig.KeyID(c), id, err)
				}
				if c.SignatureAlgorithm != x509.SHA256WithRSA && c.SignatureAlgorithm != x509.ECDSAWithSHA256 {
					t.Errorf("%s: signed with %v, want SHA-256", c.Subject, c.SignatureAlgorithm)
				}
				if got := c.NotBefore; !got.Equal(t0.Add(-Backdate)) {
					t.Errorf("%s: NotBefore %v", c.Subject, got)
				}
			}
			if !bytes.Equal(owner.AuthorityKeyId, root.SubjectKeyId) || !bytes.Equal(ima.AuthorityKeyId, owner.SubjectKeyId) || !bytes.Equal(root.AuthorityKeyId, root.SubjectKeyId) {
				t.Error("AuthorityKeyIdentifier does not name the issuer's SKID")
			}
			if got, want := root.NotAfter.Sub(t0), DefaultRootDays*Day; got != want {
				t.Errorf("root lifetime %v, want %v", got, want)
			}
			if got, want := owner.NotAfter.Sub(t0), DefaultOwnerCADays*Day; got != want {
				t.Errorf("owner lifetime %v, want %v", got, want)
			}
			if got, want := ima.NotAfter.Sub(t0), DefaultIMADays*Day; got != want {
				t.Errorf("ima lifetime %v, want %v", got, want)
			}
			if s, err := ParseScope(ima); err != nil || !s.Allows("/opt/acme/bin/x") || s.Allows("/usr/bin/x") {
				t.Errorf("scope %v %v", s, err)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	h := newHierarchy(t, P256)
	ri, oi := h.rootIssuer(), h.ownerIssuer()
	imaIssuer := Issuer{Cert: h.ima.Cert, Key: h.ima.Key}
	scope, _ := NewScope([]string{"/x/**"})
	tests := []struct {
		name   string
		req    Request
		issuer Issuer
	}{
		{"owner CA from owner CA", Request{Role: RoleOwnerCA, Name: "sub"}, oi},
		{"IMA from IMA cert", Request{Role: RoleIMA, Name: "x"}, imaIssuer},
		{"wrong issuer key", Request{Role: RoleIMA, Name: "x"}, Issuer{Cert: ri.Cert, Key: oi.Key}},
		{"empty name", Request{Role: RoleIMA, Name: " "}, oi},
		{"root via Issue", Request{Role: RoleRoot, Name: "r"}, ri},
		{"issuer expired", Request{Role: RoleIMA, Name: "late"}, oi},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := at(t0)
			if tt.name == "issuer expired" {
				opts = at(t0.Add(20 * 365 * Day))
			}
			if _, err := Issue(tt.req, tt.issuer, opts); err == nil {
				t.Fatal("issued")
			}
		})
	}
	if _, err := NewRoot(Request{Name: "r", Scope: scope}, at(t0)); err == nil {
		t.Error("root with a scope issued")
	}
	if _, err := NewRoot(Request{Name: "r", KeyType: "ed25519"}, at(t0)); !errors.Is(err, ErrKeyType) {
		t.Errorf("ed25519 root: %v", err)
	}
}

func TestIssueCapsAtIssuerExpiry(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	got := mustIssue(t, Request{Role: RoleIMA, Name: "long", Lifetime: 20 * 365 * Day}, &oi, at(t0))
	if !got.Capped || !got.Cert.NotAfter.Equal(h.owner.Cert.NotAfter) {
		t.Errorf("Capped %v NotAfter %v, owner CA NotAfter %v", got.Capped, got.Cert.NotAfter, h.owner.Cert.NotAfter)
	}
	short := mustIssue(t, Request{Role: RoleIMA, Name: "short", Lifetime: 7 * Day}, &oi, at(t0))
	if short.Capped || !short.Cert.NotAfter.Equal(t0.Add(7*Day)) {
		t.Errorf("7-day cert: Capped %v NotAfter %v", short.Capped, short.Cert.NotAfter)
	}
}

func TestIssueExistingPublicKey(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	key, err := GenerateKey(rand.Reader, P256)
	if err != nil {
		t.Fatal(err)
	}
	got := mustIssue(t, Request{Role: RoleIMA, Name: "hsm key", PublicKey: key.Public()}, &oi, at(t0))
	if got.Key != nil || !samePublicKey(got.Cert.PublicKey, key.Public()) {
		t.Error("certificate is not for the given public key")
	}
	if serials := got.Cert.SerialNumber.Cmp(h.ima.Cert.SerialNumber); serials == 0 {
		t.Error("two certificates share a serial")
	}
}

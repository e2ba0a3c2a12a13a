package pki

import (
	"crypto/x509"
	"errors"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

func TestUpdateCRL(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	second := mustIssue(t, Request{Role: RoleIMA, Name: "Second", KeyType: P256}, &oi, at(t0)).Cert

	first, added, err := UpdateCRL(nil, oi, CRLUpdate{}, at(t0))
	if err != nil || added != 0 || first.Number.Cmp(big.NewInt(1)) != 0 || len(first.RevokedCertificateEntries) != 0 {
		t.Fatalf("first CRL: number %v entries %d added %d err %v", first.Number, len(first.RevokedCertificateEntries), added, err)
	}
	crl2, added, err := UpdateCRL(first, oi, CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert}, Reason: 1}, at(t0.Add(Day)))
	if err != nil || added != 1 || crl2.Number.Int64() != 2 {
		t.Fatalf("second CRL: number %v added %d err %v", crl2.Number, added, err)
	}
	// Revoking again changes nothing but the number and dates.
	crl3, added, err := UpdateCRL(crl2, oi, CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert, second}}, at(t0.Add(2*Day)))
	if err != nil || added != 1 || crl3.Number.Int64() != 3 || len(crl3.RevokedCertificateEntries) != 2 {
		t.Fatalf("third CRL: number %v added %d entries %d err %v", crl3.Number, added, len(crl3.RevokedCertificateEntries), err)
	}
	e := crl3.RevokedCertificateEntries[0]
	if e.SerialNumber.Cmp(h.ima.Cert.SerialNumber) != 0 || e.ReasonCode != 1 || !e.RevocationTime.Equal(t0.Add(Day)) {
		t.Errorf("first entry kept badly: %+v", e)
	}
	if !crl3.NextUpdate.Equal(t0.Add(2*Day+DefaultCRLDays*Day)) || crl3.CheckSignatureFrom(h.owner.Cert) != nil {
		t.Errorf("nextUpdate %v or signature wrong", crl3.NextUpdate)
	}
	// Refusals: a certificate of another CA, a CRL of another CA.
	if _, _, err := UpdateCRL(crl3, oi, CRLUpdate{Revoke: []*x509.Certificate{h.owner.Cert}}, at(t0)); !errors.Is(err, ErrUnknownIssuer) {
		t.Errorf("revoking a certificate the CA did not issue: %v", err)
	}
	rootCRL, _, _ := UpdateCRL(nil, h.rootIssuer(), CRLUpdate{}, at(t0))
	if _, _, err := UpdateCRL(rootCRL, oi, CRLUpdate{}, at(t0)); !errors.Is(err, ErrCRL) {
		t.Errorf("continuing another CA's CRL: %v", err)
	}
}

func TestParseReason(t *testing.T) {
	for s, want := range map[string]int{"keyCompromise": 1, "KEYCOMPROMISE": 1, "superseded": 4, "unspecified": 0} {
		if got, err := ParseReason(s); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %d, %v", s, got, err)
		}
	}
	if _, err := ParseReason("certificateHold"); err == nil {
		t.Error("certificateHold accepted")
	}
}

// TestCRLOpenssl: openssl reads the CRL, verifies its signature with the CA
// and lists the revoked serial and the CRL number.
func TestCRLOpenssl(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	h := newHierarchy(t, RSA2048)
	oi := h.ownerIssuer()
	crl, _, err := UpdateCRL(nil, oi, CRLUpdate{}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	crl, _, err = UpdateCRL(crl, oi, CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert}, Reason: 1}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "owner.crl")
	if err := WriteCRL(p, crl); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCRL(p)
	if err != nil || back.Number.Cmp(crl.Number) != 0 {
		t.Fatalf("ReadCRL: %v", err)
	}
	out, err := run(openssl, "crl", "-in", p, "-noout", "-text", "-CAfile", writePEM(t, dir, "owner.pem", h.owner.Cert))
	if err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, out)
	}
	serial := strings.ToUpper(h.ima.Cert.SerialNumber.Text(16))
	if len(serial)%2 == 1 {
		serial = "0" + serial
	}
	for _, want := range []string{"verify OK", "X509v3 CRL Number: \n                2", "Serial Number: " + serial, "Key Compromise", "X509v3 Authority Key Identifier", "sha256"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl crl -text lacks %q:\n%s", want, out)
		}
	}
}

package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/imasig"
)

func TestCheckSignerLeafRules(t *testing.T) {
	h := newHierarchy(t, P256)
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
	now := t0.Add(checkDelay)
	other, err := GenerateKey(nil, P256)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(cn string, ku x509.KeyUsage, eku []x509.ExtKeyUsage) *x509.Certificate {
		return rawCert(t, &x509.Certificate{
			Subject: name(cn), NotBefore: t0, NotAfter: t0.Add(30 * Day),
			BasicConstraintsValid: true, KeyUsage: ku, ExtKeyUsage: eku,
		}, h.owner.Cert, other.Public(), h.owner.Key)
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		pub  any
		want error
	}{
		{"valid with its key", h.ima.Cert, h.ima.Key.Public(), nil},
		{"another key", h.ima.Cert, other.Public(), ErrKeyMismatch},
		// openssl verify (no -purpose) accepts these leaves: OpenSSL 3.0 has
		// no code-signing purpose. The kernel (6.4+) and imaforge refuse them.
		{"no digitalSignature", leaf("certsign only", x509.KeyUsageCertSign, nil), nil, ErrKeyUsage},
		{"no keyUsage", leaf("no key usage", 0, nil), nil, ErrKeyUsage},
		{"EKU without codeSigning", leaf("server", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}), nil, ErrKeyUsage},
		{"EKU any", leaf("any", x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageAny}), nil, nil},
		{"CA as signer", h.owner.Cert, nil, ErrKeyUsage},
		{"root as signer", h.root.Cert, nil, ErrKeyUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := ts.CheckSigner(tt.cert, tt.pub, now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err != nil {
				var ce *CertError
				if !errors.As(err, &ce) || ce.Cert == nil || !strings.Contains(err.Error(), ce.Cert.Subject.CommonName) {
					t.Errorf("error %q does not name the certificate", err)
				}
				return
			}
			if len(ch.Certs) != 3 || !ch.Root().Equal(h.root.Cert) || !ch.Leaf().Equal(tt.cert) || ch.KeyID() != imasig.KeyID(tt.cert) {
				t.Errorf("chain %v", ch.Certs)
			}
		})
	}
}

func TestCheckSignerDates(t *testing.T) {
	h := newHierarchy(t, P256)
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
	for _, tt := range []struct {
		now  time.Time
		want error
	}{
		{t0, nil},
		{t0.Add(-2 * time.Hour), ErrNotYetValid},
		{t0.Add(DefaultIMADays*Day + time.Second), ErrExpired},
		{t0.Add(DefaultRootDays * Day * 2), ErrExpired},
		{time.Time{}, nil}, // dates not checked
	} {
		if _, err := ts.CheckSigner(h.ima.Cert, nil, tt.now); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("at %v: got %v, want %v", tt.now, err, tt.want)
		}
	}
	// The error names the expired certificate, the root here.
	_, err = ts.CheckSigner(h.ima.Cert, nil, t0.Add(DefaultRootDays*Day*2))
	var ce *CertError
	if !errors.As(err, &ce) || !ce.Cert.Equal(h.ima.Cert) {
		// The leaf expires first and is checked first.
		t.Errorf("error names %v", ce)
	}
}

func TestDuplicateKeyID(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	// A renewal: the same key in a new certificate.
	renewed := mustIssue(t, Request{Role: RoleIMA, Name: "Tenant ACME 2031", PublicKey: h.ima.Key.Public()}, &oi, at(t0.Add(300*Day))).Cert
	// A different key whose SKID was made to end like the tenant's.
	other, _ := GenerateKey(nil, P256)
	skid := append([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, h.ima.Cert.SubjectKeyId[16:]...)
	clash := rawCert(t, &x509.Certificate{
		Subject: name("Clash"), NotBefore: t0, NotAfter: t0.Add(30 * Day), SubjectKeyId: skid,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
	}, h.owner.Cert, other.Public(), h.owner.Key)
	if imasig.KeyID(clash) != imasig.KeyID(h.ima.Cert) {
		t.Fatal("test setup: key ids differ")
	}
	// The renewal of one key coexists with the old certificate (a
	// rotation overlap): one key, so no ambiguity on a device.
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, h.ima.Cert, renewed}, nil)
	if err != nil {
		t.Fatalf("renewal beside the old certificate: %v", err)
	}
	ts.SetRevocation(RevocationBestEffort)
	if _, err := ts.CheckSigner(renewed, nil, t0.Add(301*Day)); err != nil {
		t.Errorf("CheckSigner renewal: %v", err)
	}
	if _, err := ts.CheckSigner(h.ima.Cert, nil, t0.Add(checkDelay)); err != nil {
		t.Errorf("CheckSigner old certificate: %v", err)
	}
	for _, dup := range []*x509.Certificate{clash} {
		ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, h.ima.Cert}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
		if err := ts.Add(h.ima.Cert); err != nil {
			t.Errorf("adding the same certificate twice: %v", err)
		}
		if err := ts.Add(dup); !errors.Is(err, ErrDuplicateKeyID) {
			t.Errorf("Add %s: %v, want ErrDuplicateKeyID", dup.Subject, err)
		}
		if _, err := ts.CheckSigner(dup, nil, t0.Add(checkDelay)); !errors.Is(err, ErrDuplicateKeyID) {
			t.Errorf("CheckSigner %s: %v, want ErrDuplicateKeyID", dup.Subject, err)
		}
		if _, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, h.ima.Cert, dup}, nil); !errors.Is(err, ErrDuplicateKeyID) {
			t.Errorf("NewTrustStore with %s: %v", dup.Subject, err)
		}
	}
}

func TestResolveKeyID(t *testing.T) {
	h := newHierarchy(t, RSA2048)
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, h.ima.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
	got, err := ts.ResolveKeyID(imasig.KeyID(h.ima.Cert))
	if err != nil || !got.Equal(h.ima.Cert) {
		t.Fatalf("ResolveKeyID: %v %v", got, err)
	}
	if _, err := ts.ResolveKeyID([4]byte{0xde, 0xad, 0xbe, 0xef}); !errors.Is(err, ErrUnknownKeyID) {
		t.Errorf("unknown id: %v", err)
	}
}

func TestTrustStoreRefuses(t *testing.T) {
	h := newHierarchy(t, P256)
	other := newHierarchy(t, P256)
	otherCRL, _, err := UpdateCRL(nil, other.rootIssuer(), CRLUpdate{}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewTrustStore([]*x509.Certificate{h.owner.Cert}, nil, nil); !errors.Is(err, ErrUnknownIssuer) {
		t.Errorf("owner CA as root: %v", err)
	}
	if _, err := NewTrustStore(nil, nil, nil); err == nil {
		t.Error("no roots accepted")
	}
	if _, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, nil, []*x509.RevocationList{otherCRL}); !errors.Is(err, ErrCRL) {
		t.Errorf("CRL of a foreign CA: %v", err)
	}
	// A CRL claiming to be the root's, signed by another key.
	fake, _, err := UpdateCRL(nil, Issuer{Cert: h.root.Cert, Key: h.root.Key}, CRLUpdate{}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	tampered := *fake
	tampered.Signature = append([]byte(nil), fake.Signature...)
	tampered.Signature[len(tampered.Signature)-3] ^= 1
	if _, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, nil, []*x509.RevocationList{&tampered}); !errors.Is(err, ErrCRL) {
		t.Errorf("CRL with a bad signature: %v", err)
	}
}

func TestChainScope(t *testing.T) {
	h := newHierarchy(t, P256)
	ri := h.rootIssuer()
	optScope, _ := NewScope([]string{"/opt/**"})
	owner := mustIssue(t, Request{Role: RoleOwnerCA, Name: "Scoped owner", KeyType: P256, Scope: optScope}, &ri, at(t0))
	oi := Issuer{Cert: owner.Cert, Key: owner.Key}
	// Issue refuses both (TestIssueScopeWithin); made by hand, the chain
	// check still bounds them.
	wide, _ := NewScope([]string{"/opt/acme/**", "/usr/**"})
	if _, err := Issue(Request{Role: RoleIMA, Name: "Tenant wide", KeyType: P256, Scope: wide}, oi, at(t0)); !errors.Is(err, ErrOutOfScope) {
		t.Errorf("issue beyond the owner's scope: %v", err)
	}
	ext, _ := wide.Extension()
	tenantKey, _ := GenerateKey(nil, P256)
	leaf := func(cn string, exts ...pkix.Extension) *Issued {
		c := rawCert(t, &x509.Certificate{Subject: name(cn), NotBefore: t0, NotAfter: t0.Add(30 * Day), BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature, AuthorityKeyId: owner.Cert.SubjectKeyId, ExtraExtensions: exts}, owner.Cert, tenantKey.Public(), owner.Key)
		return &Issued{Cert: c}
	}
	ima, free := leaf("Tenant wide", ext), leaf("Tenant free")
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{owner.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
	now := t0.Add(checkDelay)
	for _, tt := range []struct {
		cert *x509.Certificate
		path string
		want *x509.Certificate // the certificate whose scope refuses, nil: allowed
	}{
		{ima.Cert, "/opt/acme/bin/app", nil},
		{ima.Cert, "opt/acme/bin/app", nil},
		{ima.Cert, "/usr/bin/ls", owner.Cert}, // the IMA scope allows it, the owner's does not
		{ima.Cert, "/opt/other/x", ima.Cert},
		{ima.Cert, "/opt/acme/../../usr/bin/ls", owner.Cert},
		{free.Cert, "/opt/x/y", nil},
		{free.Cert, "/etc/passwd", owner.Cert},
	} {
		ch, err := ts.CheckSigner(tt.cert, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		err = ch.CheckPath(tt.path)
		var ce *CertError
		switch {
		case tt.want == nil && err != nil:
			t.Errorf("%s %s: %v", tt.cert.Subject.CommonName, tt.path, err)
		case tt.want != nil && (!errors.Is(err, ErrOutOfScope) || !errors.As(err, &ce) || !ce.Cert.Equal(tt.want)):
			t.Errorf("%s %s: %v, want ErrOutOfScope from %s", tt.cert.Subject.CommonName, tt.path, err, tt.want.Subject.CommonName)
		}
		if ch.Allows(tt.path) != (tt.want == nil) {
			t.Errorf("Allows(%s) disagrees with CheckPath", tt.path)
		}
	}
}

func TestLoadTrustStore(t *testing.T) {
	h := newHierarchy(t, P256)
	dir := t.TempDir()
	writePEM(t, dir, "root.pem", h.root.Cert)
	if err := os.WriteFile(filepath.Join(dir, "owner.der"), h.owner.Cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	crl, _, err := UpdateCRL(nil, h.ownerIssuer(), CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert}}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.crl"), crl.Raw, 0o644); err != nil { // DER
		t.Fatal(err)
	}
	ts, err := LoadTrustStore(TrustConfig{Roots: []string{"root.pem"}, Intermediates: []string{"owner.der"}, CRLs: []string{"owner.crl"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.CheckSigner(h.ima.Cert, h.ima.Key.Public(), t0.Add(checkDelay)); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked certificate: %v", err)
	}
	_, err = LoadTrustStore(TrustConfig{Roots: []string{"missing.pem"}}, dir)
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckSignerMalformedScope(t *testing.T) {
	h := newHierarchy(t, P256)
	key, _ := GenerateKey(nil, P256)
	bad := rawCert(t, &x509.Certificate{
		Subject: name("Bad scope"), NotBefore: t0, NotAfter: t0.Add(Day),
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtraExtensions: []pkix.Extension{{Id: OIDScope, Value: []byte{0x30, 0x03, 0x0c, 0x01, 'x'}}}, // relative pattern
	}, h.owner.Cert, key.Public(), h.owner.Key)
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
	if _, err := ts.CheckSigner(bad, nil, t0.Add(checkDelay)); !errors.Is(err, ErrScope) {
		t.Errorf("malformed scope: %v", err)
	}
}

// TestRevocationUnknown: a CA of the chain without a CRL in the store, or
// with only a CRL whose nextUpdate has passed, leaves the revocation of
// what it issued unknown: ErrRevocationUnknown under the default
// (required) mode, naming the CA; a warning on the chain under
// best-effort; a revoked certificate on the CRLs given fails in both
// modes. (Was: a store with the root's CRL but not the owner CA's accepted
// the tenant key without a word, and so did a stale CRL.)
func TestRevocationUnknown(t *testing.T) {
	h := newHierarchy(t, P256)
	crl := func(iss Issuer, now time.Time, revoke ...*x509.Certificate) *x509.RevocationList {
		c, _, err := UpdateCRL(nil, iss, CRLUpdate{Revoke: revoke, Validity: 10 * Day}, at(now))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	rootCRL, ownerCRL := crl(h.rootIssuer(), t0), crl(h.ownerIssuer(), t0)
	now := t0.Add(checkDelay)
	for _, tt := range []struct {
		name    string
		crls    []*x509.RevocationList
		at      time.Time
		want    error
		warning string
	}{
		{"both CRLs", []*x509.RevocationList{rootCRL, ownerCRL}, now, nil, ""},
		{"root CRL only", []*x509.RevocationList{rootCRL}, now, ErrRevocationUnknown, `no CRL of its issuer "CN=Owner One"`},
		{"owner CRL only", []*x509.RevocationList{ownerCRL}, now, ErrRevocationUnknown, `no CRL of its issuer "CN=ACME Manufacturing"`},
		{"none", nil, now, ErrRevocationUnknown, "no CRL"},
		{"stale owner CRL", []*x509.RevocationList{rootCRL, ownerCRL}, t0.Add(11 * Day), ErrRevocationUnknown, "is stale"},
		{"stale, dates not checked", []*x509.RevocationList{rootCRL, ownerCRL}, time.Time{}, nil, ""},
		{"revoked on a stale CRL", []*x509.RevocationList{rootCRL, crl(h.ownerIssuer(), t0, h.ima.Cert)}, t0.Add(11 * Day), ErrRevoked, ""},
	} {
		for _, mode := range []string{"", RevocationBestEffort} {
			ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert}, tt.crls)
			if err != nil {
				t.Fatal(err)
			}
			if err := ts.SetRevocation(mode); err != nil {
				t.Fatal(err)
			}
			ch, err := ts.CheckSigner(h.ima.Cert, nil, tt.at)
			want := tt.want
			if mode == RevocationBestEffort && want == ErrRevocationUnknown {
				want = nil
				if err == nil && (len(ch.Warnings) == 0 || !strings.Contains(ch.Warnings[0], tt.warning)) {
					t.Errorf("%s, best-effort: warnings %q, want one with %q", tt.name, ch.Warnings, tt.warning)
				}
			}
			if (want == nil) != (err == nil) || !errors.Is(err, want) {
				t.Errorf("%s, mode %q: %v, want %v", tt.name, mode, err, want)
			}
			if want == ErrRevocationUnknown && !strings.Contains(err.Error(), tt.warning) {
				t.Errorf("%s: %v, want it to say %q", tt.name, err, tt.warning)
			}
		}
	}
	if err := (&TrustStore{}).SetRevocation("sometimes"); err == nil {
		t.Error("unknown revocation mode accepted")
	}
}

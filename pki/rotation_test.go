package pki

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScopeWithin(t *testing.T) {
	for _, tt := range []struct {
		inner, outer []string // nil: unrestricted
		want         bool
	}{
		{[]string{"/opt/acme/**"}, nil, true},
		{nil, []string{"/opt/**"}, false},
		{nil, []string{"/**"}, true},
		{[]string{"/usr/**"}, []string{"/**"}, true},
		{[]string{"/opt/acme/**"}, []string{"/opt/acme/**"}, true},
		{[]string{"/opt/acme/**"}, []string{"/opt/**"}, true},
		{[]string{"/opt/acme/bin/*", "/opt/acme"}, []string{"/opt/acme/**"}, true},
		{[]string{"/opt/acme/bin/app"}, []string{"/opt/*/bin/*"}, true},
		{[]string{"/opt/acme/**"}, []string{"/opt/*/**"}, true},
		{[]string{"/opt/{a,b}/**"}, []string{"/opt/a/**", "/opt/b/**"}, true},
		{[]string{"/opt/a/**"}, []string{"/opt/{a,b}/**"}, true},
		{[]string{"/opt/{a,c}/**"}, []string{"/opt/a/**", "/opt/b/**"}, false},
		{[]string{"/opt/acme/**", "/usr/**"}, []string{"/opt/**"}, false},
		{[]string{"/opt/**"}, []string{"/opt/acme/**"}, false},
		{[]string{"/opt/*/bin/**"}, []string{"/opt/acme/**"}, false},
		{[]string{"/opt/acme2/**"}, []string{"/opt/acme/**"}, false},
		{[]string{"/**"}, []string{"/opt/**"}, false},
		{[]string{"/opt/acme/*"}, []string{"/opt/acme/*"}, true},
		{[]string{"/opt/acme/x/y"}, []string{"/opt/acme/*"}, false},
		{[]string{"/opt/acme/bin"}, []string{"/opt/**/bin/**"}, true},    // a literal path: matched
		{[]string{"/opt/acme/bin/*"}, []string{"/opt/**/bin/**"}, false}, // "**" inside: not shown, so refused
	} {
		var inner, outer *Scope
		if tt.inner != nil {
			inner = mustScope(t, tt.inner...)
		}
		if tt.outer != nil {
			outer = mustScope(t, tt.outer...)
		}
		if _, got := inner.Within(outer); got != tt.want {
			t.Errorf("%v within %v: %v, want %v", tt.inner, tt.outer, got, tt.want)
		}
	}
}

// TestIssueScopeWithin: an issuer never makes a certificate outside its own
// scope; the error names both scopes.
func TestIssueScopeWithin(t *testing.T) {
	h := newHierarchy(t, P256)
	ri := h.rootIssuer()
	owner := mustIssue(t, Request{Role: RoleOwnerCA, Name: "Scoped owner", KeyType: P256, Scope: mustScope(t, "/opt/**")}, &ri, at(t0))
	oi := Issuer{Cert: owner.Cert, Key: owner.Key}
	for _, tt := range []struct {
		scope []string
		ok    bool
	}{
		{[]string{"/opt/acme/**"}, true},
		{[]string{"/opt/**"}, true},
		{[]string{"/usr/**"}, false},
		{[]string{"/opt/acme/**", "/etc/x"}, false},
		{nil, false}, // unrestricted is outside /opt/**
	} {
		var s *Scope
		if tt.scope != nil {
			s = mustScope(t, tt.scope...)
		}
		_, err := Issue(Request{Role: RoleIMA, Name: "Tenant", KeyType: P256, Scope: s}, oi, at(t0))
		if tt.ok != (err == nil) {
			t.Errorf("scope %v under /opt/**: %v", tt.scope, err)
		}
		if err != nil && (!errors.Is(err, ErrOutOfScope) || !errors.Is(err, ErrIssue) || !strings.Contains(err.Error(), "/opt/**") || !strings.Contains(err.Error(), "Scoped owner")) {
			t.Errorf("scope %v: error %q does not name the issuer's scope", tt.scope, err)
		}
		if err != nil && tt.scope != nil && !strings.Contains(err.Error(), tt.scope[0]) {
			t.Errorf("scope %v: error %q does not name the scope asked for", tt.scope, err)
		}
	}
	// The root has no scope: anything goes under it.
	if _, err := Issue(Request{Role: RoleOwnerCA, Name: "Free owner", KeyType: P256}, ri, at(t0)); err != nil {
		t.Error(err)
	}
}

func TestIssueValidity(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	nb, na := t0.Add(100*Day), t0.Add(200*Day)
	for _, tt := range []struct {
		name     string
		req      Request
		nb, na   time.Time
		errMatch string
	}{
		{"explicit", Request{NotBefore: nb, NotAfter: na}, nb, na, ""},
		{"start only", Request{NotBefore: nb}, nb, nb.Add(DefaultIMADays * Day), ""},
		{"end only", Request{NotAfter: na}, t0.Add(-Backdate), na, ""},
		{"start after end", Request{NotBefore: na, NotAfter: nb}, time.Time{}, time.Time{}, "is after notAfter"},
		{"end beyond issuer", Request{NotAfter: h.owner.Cert.NotAfter.Add(time.Second)}, time.Time{}, time.Time{}, "is after the notAfter"},
		{"end and lifetime", Request{NotAfter: na, Lifetime: Day}, time.Time{}, time.Time{}, "not both"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req
			req.Role, req.Name, req.KeyType = RoleIMA, "Tenant", P256
			iss, err := Issue(req, oi, at(t0))
			if tt.errMatch != "" {
				if !errors.Is(err, ErrIssue) || !strings.Contains(err.Error(), tt.errMatch) {
					t.Errorf("got %v, want an error with %q", err, tt.errMatch)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !iss.Cert.NotBefore.Equal(tt.nb) || !iss.Cert.NotAfter.Equal(tt.na) || iss.Capped {
				t.Errorf("validity %v to %v (capped %v), want %v to %v", iss.Cert.NotBefore, iss.Cert.NotAfter, iss.Capped, tt.nb, tt.na)
			}
		})
	}
}

// csrFor makes a PKCS#10 request for key, asking for CA:TRUE and a scope
// of "/**", which the CA must not grant.
func csrFor(t testing.TB, cn string) ([]byte, *x509.CertificateRequest) {
	t.Helper()
	key, err := GenerateKey(nil, P256)
	if err != nil {
		t.Fatal(err)
	}
	bc, _ := asn1.Marshal(struct {
		CA bool
	}{true})
	scope, _ := mustScope(t, "/**").Extension()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: cn, Organization: []string{"Tenant Org"}, Country: []string{"DE"}},
		ExtraExtensions: []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: bc}, scope},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return der, csr
}

func TestIssueCSR(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	der, want := csrFor(t, "Tenant CSR")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	for _, data := range [][]byte{der, pemData} {
		csr, err := ParseCSR(data)
		if err != nil {
			t.Fatal(err)
		}
		req := Request{Role: RoleIMA, Scope: mustScope(t, "/opt/csr/**")}
		req.FromCSR(csr)
		iss, err := Issue(req, oi, at(t0))
		if err != nil {
			t.Fatal(err)
		}
		c := iss.Cert
		if string(c.RawSubject) != string(want.RawSubject) || c.Subject.Country[0] != "DE" || !samePublicKey(c.PublicKey, want.PublicKey) || iss.Key != nil {
			t.Errorf("subject %s, key from the request: %v", c.Subject, samePublicKey(c.PublicKey, want.PublicKey))
		}
		// The extensions asked for are not granted.
		if s, _ := ParseScope(c); c.IsCA || s.String() != "/opt/csr/**" {
			t.Errorf("IsCA %v, scope %s: the request's extensions leaked in", c.IsCA, s)
		}
	}
	// A request whose signature does not verify proves nothing.
	bad := append([]byte(nil), der...)
	bad[len(bad)-5] ^= 0x40
	if _, err := ParseCSR(bad); !errors.Is(err, ErrCSR) {
		t.Errorf("tampered request: %v", err)
	}
	// The subject of another request, with this request's signature: a
	// signature over other bytes fails too.
	der2, _ := csrFor(t, "Someone else")
	var r1, r2 struct {
		Info asn1.RawValue
		Alg  asn1.RawValue
		Sig  asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &r1); err != nil {
		t.Fatal(err)
	}
	if _, err := asn1.Unmarshal(der2, &r2); err != nil {
		t.Fatal(err)
	}
	r2.Sig = r1.Sig
	spliced, _ := asn1.Marshal(r2)
	if _, err := ParseCSR(spliced); !errors.Is(err, ErrCSR) {
		t.Errorf("spliced request: %v", err)
	}
	if _, err := ParseCSR(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})); !errors.Is(err, ErrCSR) {
		t.Errorf("wrong PEM type: %v", err)
	}
}

// TestRotationOverlap: an old and a renewed certificate of one key, and a
// superseded revoked one, coexist in the store; the newest valid is used
// (ResolveKeyID, export) and the revoked one is blacklisted.
func TestRotationOverlap(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	pub := h.ima.Key.Public()
	scope := mustScope(t, "/opt/acme/**")
	renewed := mustIssue(t, Request{Role: RoleIMA, Name: "Tenant ACME", PublicKey: pub, Scope: scope}, &oi, at(t0.Add(300*Day))).Cert
	superseded := mustIssue(t, Request{Role: RoleIMA, Name: "Tenant ACME", PublicKey: pub, Scope: scope}, &oi, at(t0.Add(200*Day))).Cert
	crl, _, err := UpdateCRL(nil, oi, CRLUpdate{Revoke: []*x509.Certificate{superseded}, Reason: reasonCodes["superseded"]}, at(t0.Add(301*Day)))
	if err != nil {
		t.Fatal(err)
	}
	rootCRL, _, err := UpdateCRL(nil, h.rootIssuer(), CRLUpdate{}, at(t0.Add(301*Day)))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, h.ima.Cert, superseded, renewed}, []*x509.RevocationList{crl, rootCRL})
	if err != nil {
		t.Fatalf("old, superseded and renewed certificates of one key: %v", err)
	}
	got, err := ts.ResolveKeyID(renewedID(renewed))
	if err != nil || !got.Equal(renewed) {
		t.Errorf("ResolveKeyID: %v %v, want the renewal", got.Subject, err)
	}
	now := t0.Add(302 * Day)
	if _, err := ts.CheckSigner(superseded, nil, now); !errors.Is(err, ErrRevoked) {
		t.Errorf("superseded: %v", err)
	}
	if _, err := ts.CheckSigner(renewed, nil, now); err != nil {
		t.Errorf("renewed: %v", err)
	}
	res, err := Export(ts, t.TempDir(), now)
	if err != nil {
		t.Fatal(err)
	}
	var imas []string
	for _, e := range res.Loaded {
		if e.Role == "ima" {
			imas = append(imas, e.Serial)
		}
	}
	if len(imas) != 1 || imas[0] != serialHex(renewed) {
		t.Errorf("loaded IMA certificates %v, want only the renewal %s", imas, serialHex(renewed))
	}
	if len(res.Revoked) != 1 || res.Revoked[0].Serial != serialHex(superseded) || len(res.Blacklist) == 0 {
		t.Errorf("revoked %+v", res.Revoked)
	}
	if len(res.Skipped) != 1 || res.Skipped[0].Serial != serialHex(h.ima.Cert) || !strings.Contains(strings.Join(res.Skipped[0].Warnings, " "), "superseded by serial "+serialHex(renewed)) {
		t.Errorf("skipped %+v", res.Skipped)
	}
}

// TestRenewedOwnerCA: an owner CA renewed with the same key; its CRL counts
// for both certificates, and chains go through the one valid now.
func TestRenewedOwnerCA(t *testing.T) {
	h := newHierarchy(t, P256)
	ri := h.rootIssuer()
	old := mustIssue(t, Request{Role: RoleOwnerCA, Name: "Owner One", PublicKey: h.owner.Key.Public(), Lifetime: 30 * Day}, &ri, at(t0)).Cert
	renewed := mustIssue(t, Request{Role: RoleOwnerCA, Name: "Owner One", PublicKey: h.owner.Key.Public()}, &ri, at(t0.Add(20*Day))).Cert
	oi := Issuer{Cert: renewed, Key: h.owner.Key}
	crl, _, _ := UpdateCRL(nil, oi, CRLUpdate{}, at(t0.Add(40*Day)))
	rootCRL, _, _ := UpdateCRL(nil, ri, CRLUpdate{}, at(t0.Add(40*Day)))
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{old, renewed}, []*x509.RevocationList{crl, rootCRL})
	if err != nil {
		t.Fatal(err)
	}
	// h.ima was signed by the owner key under the first certificate; at
	// t0+40d the old owner certificate has expired, the renewal has not.
	ch, err := ts.CheckSigner(h.ima.Cert, nil, t0.Add(41*Day))
	if err != nil {
		t.Fatalf("chain through the renewed owner CA: %v", err)
	}
	if !ch.Certs[1].Equal(renewed) {
		t.Errorf("chain goes through %v, want the renewal", ch.Certs[1].NotAfter)
	}
}

func renewedID(c *x509.Certificate) [4]byte {
	var id [4]byte
	copy(id[:], c.SubjectKeyId[len(c.SubjectKeyId)-4:])
	return id
}

func serialHex(c *x509.Certificate) string { return describe(c, RoleIMA).Serial }

// TestExportFromInventory: a revoked certificate whose file is not given is
// blacklisted from its CA's inventory; a revoked serial nobody knows is a
// warning; a revocation only the inventory knows (an older CRL given) keeps
// the certificate out and blacklists it.
func TestExportFromInventory(t *testing.T) {
	h := newHierarchy(t, P256)
	oi := h.ownerIssuer()
	dir := t.TempDir()
	path := filepath.Join(dir, "owner-ca.index")
	f, err := OpenInventory(path, h.owner.Cert, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gone, err := f.Issue(Request{Role: RoleIMA, Name: "Lost tenant", KeyType: P256, Scope: mustScope(t, "/opt/x/**")}, oi, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	unknown := mustIssue(t, Request{Role: RoleIMA, Name: "Unrecorded", KeyType: P256, Scope: mustScope(t, "/opt/y/**")}, &oi, at(t0)).Cert
	crl, _, err := f.UpdateCRL(nil, oi, CRLUpdate{Revoke: []*x509.Certificate{gone.Cert}, Reason: 1}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	// unknown is revoked on the CRL but its certificate is dropped from the
	// inventory, as for one revoked before the inventory existed.
	crl, _, err = UpdateCRL(crl, oi, CRLUpdate{Revoke: []*x509.Certificate{unknown}}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	// h.ima is revoked in the inventory after the CRL given was signed.
	olderCRL := crl
	if _, _, err := f.UpdateCRL(crl, oi, CRLUpdate{Revoke: []*x509.Certificate{h.ima.Cert}}, at(t0)); err != nil {
		t.Fatal(err)
	}
	inv, err := ReadInventory(path, h.owner.Cert)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range inv.Entries {
		if e.Cert != nil && e.Cert.Equal(unknown) {
			inv.Entries[i].Cert = nil
		}
	}
	rootCRL, _, _ := UpdateCRL(nil, h.rootIssuer(), CRLUpdate{}, at(t0))
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, h.ima.Cert}, []*x509.RevocationList{olderCRL, rootCRL})
	if err != nil {
		t.Fatal(err)
	}
	before, err := Export(ts.clone(), filepath.Join(dir, "before"), t0.Add(Day))
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.AddInventory(inv); err != nil {
		t.Fatal(err)
	}
	res, err := Export(ts, filepath.Join(dir, "device"), t0.Add(Day))
	if err != nil {
		t.Fatal(err)
	}
	revoked := map[string]bool{}
	for _, e := range res.Revoked {
		revoked[e.Serial] = true
	}
	if len(before.Revoked) != 0 || !revoked[serialHex(gone.Cert)] || !revoked[serialHex(h.ima.Cert)] || len(res.Revoked) != 2 {
		t.Errorf("revoked without inventory %d, with %+v", len(before.Revoked), res.Revoked)
	}
	for _, e := range res.Loaded {
		if e.Role == "ima" {
			t.Errorf("loaded %s, revoked in the inventory", e.Subject)
		}
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], serialHex(unknown)) {
		t.Errorf("warnings %q, want one naming serial %s", res.Warnings, serialHex(unknown))
	}
	js, _ := os.ReadFile(filepath.Join(dir, "device", "export.json"))
	var back ExportResult
	if err := json.Unmarshal(js, &back); err != nil || len(back.Warnings) != 1 {
		t.Errorf("export.json warnings: %v", err)
	}
	bl, _ := os.ReadFile(filepath.Join(dir, "device", "blacklist-hashes.txt"))
	for _, c := range []*x509.Certificate{gone.Cert, h.ima.Cert} {
		if !strings.Contains(string(bl), TBSHash(c)) {
			t.Errorf("blacklist lacks %s", c.Subject)
		}
	}
}

package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

func TestScopeAllows(t *testing.T) {
	s, err := NewScope([]string{"/opt/acme/**", "/usr/lib/acme-*.so", "/etc/acme/{a,b}.conf"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want bool
	}{
		{"/opt/acme/bin/app", true},
		{"/opt/acme/a/b/c/d", true},
		{"opt/acme/bin/app", true},      // made absolute
		{"/opt/acme", true},             // ** matches nothing too
		{"/opt/acmeX/bin", false},       // no prefix matching
		{"/opt/acme/../other/x", false}, // cleaned first
		{"/opt/other/../acme/x", true},  // cleaned first
		{"/usr/lib/acme-1.so", true},    // * within one element
		{"/usr/lib/acme-1/x.so", false}, // * does not cross /
		{"/etc/acme/a.conf", true},      // alternatives
		{"/etc/acme/c.conf", false},
		{"/", false},
		{"", false},
	} {
		if got := s.Allows(tt.path); got != tt.want {
			t.Errorf("Allows(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
	var unrestricted *Scope
	if !unrestricted.Allows("/anything") || unrestricted.Patterns() != nil {
		t.Error("a nil scope must allow everything")
	}
}

func TestNewScopeRejects(t *testing.T) {
	for _, p := range []string{"opt/**", "/opt/../etc", "/opt//x", "/opt/", "/opt/./x", "/opt/[", "/x\xff"} {
		if _, err := NewScope([]string{p}); !errors.Is(err, ErrScope) {
			t.Errorf("NewScope(%q): %v", p, err)
		}
	}
	if _, err := NewScope(nil); !errors.Is(err, ErrScope) {
		t.Error("empty scope accepted")
	}
}

func TestScopeExtensionRoundTrip(t *testing.T) {
	patterns := []string{"/opt/acme/**", "/srv/données/*"}
	s, err := NewScope(patterns)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := s.Extension()
	if err != nil {
		t.Fatal(err)
	}
	if ext.Critical || !ext.Id.Equal(OIDScope) {
		t.Errorf("extension %v critical %v", ext.Id, ext.Critical)
	}
	// Known answer: SEQUENCE { UTF8String "/opt/acme/**", UTF8String "/srv/données/*" }.
	want := append([]byte{0x30, 0x1f, 0x0c, 0x0c}, "/opt/acme/**"...)
	want = append(append(want, 0x0c, 0x0f), "/srv/données/*"...)
	if !bytes.Equal(ext.Value, want) {
		t.Errorf("encoding %x, want %x", ext.Value, want)
	}
	back, err := ParseScopeExtension(ext.Value)
	if err != nil || strings.Join(back.Patterns(), "|") != strings.Join(patterns, "|") {
		t.Errorf("round trip: %v %v", back.Patterns(), err)
	}
	// Not DER: a BER long-form length.
	ber := append([]byte{0x30, 0x81, 0x1f}, ext.Value[2:]...)
	if _, err := ParseScopeExtension(ber); !errors.Is(err, ErrScope) {
		t.Errorf("BER accepted: %v", err)
	}
	// Wrong string type.
	ia5String, _ := asn1.MarshalWithParams("/opt/**", "ia5")
	ia5, _ := asn1.Marshal([]asn1.RawValue{{FullBytes: ia5String}})
	if _, err := ParseScopeExtension(ia5); !errors.Is(err, ErrScope) {
		t.Errorf("non-UTF8String accepted: %v", err)
	}
	empty, _ := asn1.Marshal([]asn1.RawValue{})
	if _, err := ParseScopeExtension(empty); !errors.Is(err, ErrScope) {
		t.Errorf("empty SEQUENCE accepted: %v", err)
	}
}

func FuzzParseScopeExtension(f *testing.F) {
	s, _ := NewScope([]string{"/opt/acme/**", "/usr/{a,b}/*"})
	ext, _ := s.Extension()
	f.Add(ext.Value)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		s, err := ParseScopeExtension(der)
		if err != nil {
			return
		}
		again, err := s.Extension()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Value, der) {
			t.Fatalf("re-encoding differs: %x -> %x", der, again.Value)
		}
		for _, p := range s.Patterns() {
			s.Allows(p)
		}
	})
}

// TestOpensslShowsExtensions: openssl parses generated certificates and
// shows the extensions the kernel needs, with the scope as an unknown,
// non-critical extension under imaforge's OID.
func TestOpensslShowsExtensions(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	h := newHierarchy(t, RSA2048)
	dir := t.TempDir()
	for _, tt := range []struct {
		cert *x509.Certificate
		want []string
	}{
		{h.root.Cert, []string{
			"X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:1",
			"X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign",
			"X509v3 Subject Key Identifier:", "X509v3 Authority Key Identifier:",
			"Signature Algorithm: sha256WithRSAEncryption",
		}},
		{h.owner.Cert, []string{
			"X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0",
			"X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign",
		}},
		{h.ima.Cert, []string{
			"X509v3 Basic Constraints: critical\n                CA:FALSE",
			"X509v3 Key Usage: critical\n                Digital Signature",
			"X509v3 Extended Key Usage: \n                Code Signing",
			OIDScope.String() + ": \n", "/opt/acme/**",
		}},
	} {
		p := writePEM(t, dir, "c.pem", tt.cert)
		out, err := run(openssl, "x509", "-in", p, "-noout", "-text")
		if err != nil {
			t.Fatalf("openssl x509: %v\n%s", err, out)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: openssl x509 -text lacks %q:\n%s", tt.cert.Subject.CommonName, w, out)
			}
		}
		skid := strings.ToUpper(strings.Join(hexPairs(tt.cert.SubjectKeyId), ":"))
		if !strings.Contains(out, "X509v3 Subject Key Identifier: \n                "+skid) {
			t.Errorf("%s: openssl shows another SKID than %s", tt.cert.Subject.CommonName, skid)
		}
	}
}

func hexPairs(b []byte) []string {
	out := make([]string, len(b))
	for i, c := range b {
		out[i] = strings.ToUpper(string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15]))
	}
	return out
}

// TestSKIDMatchesOpenssl: a certificate made by openssl with
// subjectKeyIdentifier=hash (testdata/pki/openssl-skid.pem, see
// testdata/pki/README.md) has the SKID SubjectKeyID computes.
func TestSKIDMatchesOpenssl(t *testing.T) {
	for _, f := range []string{"openssl-skid-rsa.pem", "openssl-skid-p256.pem"} {
		data, err := os.ReadFile(filepath.Join("..", "testdata", "pki", f))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(data)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		skid, err := SubjectKeyID(c.PublicKey)
		if err != nil || !bytes.Equal(skid, c.SubjectKeyId) {
			t.Errorf("%s: SubjectKeyID %x, openssl wrote %x (%v)", f, skid, c.SubjectKeyId, err)
		}
	}
}

// TestGoRejects2_25ExtensionOID keeps the evidence for not using a
// 2.25.<uuid> OID: Go's crypto/x509 refuses any certificate carrying an
// extension whose OID has an arc of 2^31 or more, while openssl makes and
// reads it. If this test starts failing, Go has lifted the limit.
func TestGoRejects2_25ExtensionOID(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	dir := t.TempDir()
	cnf := filepath.Join(dir, "ext.cnf")
	err := os.WriteFile(cnf, []byte(`[req]
distinguished_name = dn
[dn]
[ext]
basicConstraints = critical,CA:FALSE
2.25.103098606570847571222116701505933160345.1 = ASN1:SEQUENCE:scope
[scope]
p1 = UTF8:/opt/acme/**
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "c.der")
	out, err := run(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "k.pem"), "-subj", "/CN=uuid oid", "-config", cnf, "-extensions", "ext",
		"-outform", "DER", "-out", certPath)
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	if out, err := run(openssl, "x509", "-inform", "DER", "-in", certPath, "-noout", "-text"); err != nil || !strings.Contains(out, "2.25.103098606570847571222116701505933160345.1") {
		t.Fatalf("openssl does not show the 2.25 extension: %v\n%s", err, out)
	}
	der, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = x509.ParseCertificate(der)
	if err == nil || !strings.Contains(err.Error(), "extension OID") {
		t.Fatalf("Go parsed a certificate with a 2.25.<uuid> extension OID (err %v): consider the 2.25 arc", err)
	}
}

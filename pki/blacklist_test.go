package pki

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// opensslTBSHash computes "tbs:<hex digest of the TBSCertificate>" with
// openssl only: asn1parse finds the TBSCertificate (the first element of the
// outer SEQUENCE), -strparse writes it out, dgst hashes it.
func opensslTBSHash(t *testing.T, openssl string, cert *x509.Certificate, digest string) string {
	t.Helper()
	dir := t.TempDir()
	der := filepath.Join(dir, "c.der")
	if err := os.WriteFile(der, cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(openssl, "asn1parse", "-inform", "DER", "-in", der)
	if err != nil {
		t.Fatalf("asn1parse: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^\s*(\d+):d=1\s+hl=\s*\d+\s+l=\s*\d+\s+cons: SEQUENCE`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no TBSCertificate in:\n%s", out)
	}
	tbs := filepath.Join(dir, "tbs.der")
	if out, err := run(openssl, "asn1parse", "-inform", "DER", "-in", der, "-strparse", m[1], "-noout", "-out", tbs); err != nil {
		t.Fatalf("asn1parse -strparse: %v\n%s", err, out)
	}
	out, err = run(openssl, "dgst", "-"+digest, "-r", tbs)
	if err != nil {
		t.Fatalf("dgst: %v\n%s", err, out)
	}
	return "tbs:" + strings.Fields(out)[0]
}

func TestTBSHashMatchesOpenssl(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	h := newHierarchy(t, RSA2048)
	for _, c := range []*x509.Certificate{h.root.Cert, h.owner.Cert, h.ima.Cert} {
		want := opensslTBSHash(t, openssl, c, "sha256")
		if got := TBSHash(c); got != want {
			t.Errorf("%s: TBSHash %s, openssl %s", c.Subject.CommonName, got, want)
		}
		if got := BlacklistEntries(c); len(got) != 1 || got[0] != want {
			t.Errorf("%s: BlacklistEntries %v, want only %s (SHA-256 signed)", c.Subject.CommonName, got, want)
		}
	}
	// A certificate signed with ECDSA-SHA384: Linux 6.1 looks up the
	// SHA-384 TBS hash, newer kernels the SHA-256 one; both are listed.
	p384 := newHierarchy(t, P384)
	c := rawCert(t, &x509.Certificate{
		Subject: name("sha384 signed"), NotBefore: t0, NotAfter: t0.Add(Day),
		SignatureAlgorithm: x509.ECDSAWithSHA384, KeyUsage: x509.KeyUsageDigitalSignature,
	}, p384.owner.Cert, p384.ima.Key.Public(), p384.owner.Key)
	got := BlacklistEntries(c)
	want := []string{opensslTBSHash(t, openssl, c, "sha256"), opensslTBSHash(t, openssl, c, "sha384")}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("SHA-384 signed: %v, want %v", got, want)
	}
}

func TestBlacklistFormat(t *testing.T) {
	a := "tbs:" + strings.Repeat("ab", 32)
	b := "bin:" + strings.Repeat("01", 64)
	data, err := FormatBlacklist([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if want := `"` + a + `",` + "\n" + `"` + b + `"` + "\n"; string(data) != want {
		t.Errorf("got %q, want %q", data, want)
	}
	back, err := ParseBlacklist(data)
	if err != nil || len(back) != 2 || back[0] != a || back[1] != b {
		t.Errorf("round trip: %v %v", back, err)
	}
	if _, err := FormatBlacklist(nil); !errors.Is(err, ErrBlacklist) {
		t.Error("empty list accepted: the kernel build would not compile it")
	}
	// The kernel's rules (blacklist_vet_description, check-blacklist-hashes.awk).
	for _, tt := range []struct {
		entry string
		ok    bool
	}{
		{"tbs:00ff", true},
		{"bin:abcdef", true},
		{"tbs:" + strings.Repeat("a", 128), true},
		{"tbs:" + strings.Repeat("a", 130), false},
		{"tbs:", false},
		{"tbs:0", false},
		{"tbs:AA", false},
		{"bad:00", false},
		{"tbs:0g", false},
		{" tbs:00", false},
	} {
		if err := CheckBlacklistEntry(tt.entry); (err == nil) != tt.ok {
			t.Errorf("CheckBlacklistEntry(%q): %v", tt.entry, err)
		}
	}
	for _, bad := range []string{"", `"tbs:00",`, `tbs:00`, `"tbs:00" "tbs:11"`, `"tbs:00",,"tbs:11"`} {
		if _, err := ParseBlacklist([]byte(bad)); err == nil {
			t.Errorf("ParseBlacklist(%q) accepted", bad)
		}
	}
	if got, err := ParseBlacklist([]byte(" \"tbs:00\" ,\n\t\"bin:11\"\n")); err != nil || len(got) != 2 {
		t.Errorf("whitespace around items: %v %v", got, err)
	}
}

func FuzzParseBlacklist(f *testing.F) {
	f.Add([]byte("\"tbs:00ff\",\n\"bin:abcd\"\n"))
	f.Add([]byte(`"tbs:0"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseBlacklist(data)
		if err != nil {
			return
		}
		out, err := FormatBlacklist(entries)
		if err != nil {
			t.Fatalf("parsed entries do not format: %v", err)
		}
		again, err := ParseBlacklist(out)
		if err != nil || strings.Join(again, ",") != strings.Join(entries, ",") {
			t.Fatalf("round trip: %v %v", again, err)
		}
	})
}

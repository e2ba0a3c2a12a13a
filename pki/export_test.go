package pki

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/pki")

// exportFixture is a hierarchy with a manufacturer signing key, a scoped
// tenant key, a revoked tenant key, and a key under a revoked owner CA.
type exportFixture struct {
	*hierarchy
	mfrIMA, revoked, ownerB, underB *Issued
	ts                              *TrustStore
}

func newExportFixture(t *testing.T, kt KeyType) *exportFixture {
	f := &exportFixture{hierarchy: newHierarchy(t, kt)}
	ri, oi := f.rootIssuer(), f.ownerIssuer()
	f.mfrIMA = mustIssue(t, Request{Role: RoleIMA, Name: "ACME base system", KeyType: kt}, &ri, at(t0))
	f.revoked = mustIssue(t, Request{Role: RoleIMA, Name: "Tenant leaked", KeyType: kt}, &oi, at(t0))
	f.ownerB = mustIssue(t, Request{Role: RoleOwnerCA, Name: "Owner Two", KeyType: kt}, &ri, at(t0))
	bi := Issuer{Cert: f.ownerB.Cert, Key: f.ownerB.Key}
	f.underB = mustIssue(t, Request{Role: RoleIMA, Name: "Tenant of Owner Two", KeyType: kt}, &bi, at(t0))
	ownerCRL, _, err := UpdateCRL(nil, oi, CRLUpdate{Revoke: []*x509.Certificate{f.revoked.Cert}, Reason: 1}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	rootCRL, _, err := UpdateCRL(nil, ri, CRLUpdate{Revoke: []*x509.Certificate{f.ownerB.Cert}, Reason: 2}, at(t0))
	if err != nil {
		t.Fatal(err)
	}
	f.ts, err = NewTrustStore([]*x509.Certificate{f.root.Cert},
		[]*x509.Certificate{f.underB.Cert, f.ima.Cert, f.revoked.Cert, f.owner.Cert, f.mfrIMA.Cert, f.ownerB.Cert},
		[]*x509.RevocationList{ownerCRL, rootCRL})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestExport(t *testing.T) {
	f := newExportFixture(t, P256)
	dir := t.TempDir()
	res, err := Export(f.ts, dir, t0.Add(checkDelay))
	if err != nil {
		t.Fatal(err)
	}
	var loaded []string
	for _, c := range res.Loaded {
		loaded = append(loaded, c.File)
		data, err := os.ReadFile(filepath.Join(dir, c.File))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x509.ParseCertificate(data); err != nil {
			t.Errorf("%s is not a DER certificate: %v", c.File, err)
		}
	}
	want := []string{
		"certs/01-root-acme-manufacturing.der",
		"certs/02-owner-ca-owner-one.der",
		"certs/03-ima-acme-base-system.der",
		"certs/04-ima-tenant-acme.der",
	}
	if strings.Join(loaded, " ") != strings.Join(want, " ") {
		t.Errorf("loaded %v, want %v", loaded, want)
	}
	if !res.RootSignedIMA {
		t.Error("RootSignedIMA not set")
	}
	if len(res.Revoked) != 2 || len(res.Skipped) != 1 || res.Skipped[0].Subject != "CN=Tenant of Owner Two" {
		t.Errorf("revoked %v skipped %v", res.Revoked, res.Skipped)
	}
	bl, err := os.ReadFile(filepath.Join(dir, "blacklist-hashes.txt"))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseBlacklist(bl)
	wantBL := []string{TBSHash(f.ownerB.Cert), TBSHash(f.revoked.Cert)}
	if err != nil || strings.Join(entries, " ") != strings.Join(wantBL, " ") {
		t.Errorf("blacklist %v (%v), want %v", entries, err, wantBL)
	}
	roots, err := os.ReadFile(filepath.Join(dir, "trusted-keys.pem"))
	if err != nil || strings.Count(string(roots), "BEGIN CERTIFICATE") != 1 {
		t.Errorf("trusted-keys.pem: %v", err)
	}
	var js ExportResult
	data, err := os.ReadFile(filepath.Join(dir, "export.json"))
	if err != nil || json.Unmarshal(data, &js) != nil || len(js.Loaded) != 4 || js.Loaded[3].Scope[0] != "/opt/acme/**" {
		t.Errorf("export.json: %v\n%s", err, data)
	}
	if fi, err := os.Stat(filepath.Join(dir, "load-keys.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("load-keys.sh: %v", err)
	}
	for _, shell := range []string{"sh", "bash", "busybox"} {
		p, err := exec.LookPath(shell)
		if err != nil {
			continue
		}
		args := []string{"-n", filepath.Join(dir, "load-keys.sh")}
		if shell == "busybox" {
			args = append([]string{"sh"}, args...)
		}
		if out, err := run(p, args...); err != nil {
			t.Errorf("%s -n load-keys.sh: %v\n%s", shell, err, out)
		}
	}
}

func TestExportRefusesBadCertificate(t *testing.T) {
	h := newHierarchy(t, P256)
	stranger := newHierarchy(t, P256)
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert, stranger.ima.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Export(ts, t.TempDir(), t0); !errors.Is(err, ErrBadSignature) { // same names, other keys
		t.Errorf("export with a certificate of an unknown issuer: %v", err)
	}
}

func TestLoadKeysScriptGolden(t *testing.T) {
	res := &ExportResult{
		Loaded: []ExportedCert{
			{File: "certs/01-root-acme.der", Role: "root"},
			{File: "certs/02-owner-ca-owner.der", Role: "owner-ca"},
			{File: "certs/03-ima-base.der", Role: "ima"},
			{File: "certs/04-ima-tenant.der", Role: "ima"},
		},
		Revoked:       []ExportedCert{{Subject: "CN=Tenant leaked", Serial: "0a1b", KeyID: "deadbeef"}},
		RootSignedIMA: true,
	}
	got, err := LoadKeysScript(res)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("..", "testdata", "pki", "load-keys.golden.sh")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("load-keys.sh differs from %s (rerun with -update if intended):\n%s", golden, got)
	}
}

// TestLoadKeysIntoKernel runs load-keys.sh against this machine's kernel, in
// a throw-away session keyring (KEYRING=@s under `keyctl session`): the
// kernel must accept the chain into the restricted keyrings, refuse a
// certificate from another hierarchy, and the frozen _ima must refuse more.
// The device kernel may differ (Debian 6.1); the kernel end-to-end test
// covers that one under qemu.
func TestLoadKeysIntoKernel(t *testing.T) {
	testenv.NeedRoot(t)
	keyctl := testenv.NeedTool(t, "keyctl")
	if out, err := run(keyctl, "session", "-", "true"); err != nil {
		t.Skipf("keyrings are not usable here (%v: %s)", err, out)
	}
	f := newExportFixture(t, RSA2048)
	dir := t.TempDir()
	if _, err := Export(f.ts, dir, t0); err != nil {
		t.Fatal(err)
	}
	alien := newHierarchy(t, RSA2048)
	if err := os.WriteFile(filepath.Join(dir, "alien-owner.der"), alien.owner.Cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "revoked.der"), f.revoked.Cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -u
d=$1
KEYRING=@s sh "$d/load-keys.sh" || { echo "FAIL load"; exit 1; }
ima=$(keyctl search @s keyring _ima) || { echo "FAIL no _ima"; exit 1; }
own=$(keyctl search @s keyring imaforge-owner) || { echo "FAIL no owner ring"; exit 1; }
echo "IMA_KEYS $(keyctl rlist "$ima")"
for k in $(keyctl rlist "$ima"); do echo "DESC $(keyctl rdescribe "$k")"; done
if keyctl padd asymmetric '' "$own" <"$d/alien-owner.der" >/dev/null 2>&1; then echo "FAIL alien owner CA accepted"; fi
if keyctl padd asymmetric '' "$ima" <"$d/revoked.der" >/dev/null 2>&1; then echo "FAIL frozen _ima accepted a key"; fi
if KEYRING=@s sh "$d/load-keys.sh" 2>/dev/null; then echo "FAIL loaded twice"; fi
echo DONE
`
	out, err := run(keyctl, "session", "-", "sh", "-c", script, "sh", dir)
	if err != nil || strings.Contains(out, "FAIL") || !strings.Contains(out, "DONE") {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("keyctl session:\n%s", out)
	// _ima holds exactly the two loaded IMA certificates, named by SKID.
	var keys []string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "IMA_KEYS "); ok {
			keys = strings.Fields(rest)
		}
	}
	if len(keys) != 2 {
		t.Errorf("_ima holds %d keys, want 2:\n%s", len(keys), out)
	}
	for _, c := range []*x509.Certificate{f.ima.Cert, f.mfrIMA.Cert} {
		if !strings.Contains(out, strings.ToLower(hexString(c.SubjectKeyId))) {
			t.Errorf("no key described with %s's SKID in _ima:\n%s", c.Subject.CommonName, out)
		}
	}
}

func hexString(b []byte) string { return strings.Join(hexPairs(b), "") }

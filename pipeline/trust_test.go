package pipeline

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/signer"
)

// hierarchy is a manufacturer root, an owner CA and IMA keys, as files.
type hierarchy struct {
	dir string
	*testpki.Hierarchy
}

func newHierarchy(t *testing.T, dir string) *hierarchy {
	t.Helper()
	h := &hierarchy{dir: dir, Hierarchy: testpki.New(t, "Test Manufacturing", "Test Owner")}
	h.write(t, "root", h.Root)
	h.write(t, "owner", h.Owner)
	h.WriteCRLs(t, dir, "root", "owner") // empty: revocation known (trust.revocation: required)
	return h
}

func (h *hierarchy) write(t *testing.T, base string, iss *pki.Issued) {
	t.Helper()
	testpki.Write(t, h.dir, base, iss, true)
}

// ima issues an IMA key named base, signed by the root (manufacturer) or
// the owner CA, valid over [notBefore, notBefore+life).
func (h *hierarchy) ima(t *testing.T, base string, byOwner bool, scope []string, notBefore time.Time, life time.Duration) *pki.Issued {
	t.Helper()
	issuer := h.RootIssuer()
	if byOwner {
		issuer = h.OwnerIssuer()
	}
	req := pki.Request{Role: pki.RoleIMA, Name: base, KeyType: "rsa2048", Lifetime: life}
	if scope != nil {
		s, err := pki.NewScope(scope)
		if err != nil {
			t.Fatal(err)
		}
		req.Scope = s
	}
	iss := testpki.Issue(t, req, issuer, pki.Options{Now: func() time.Time { return notBefore }})
	h.write(t, base, iss)
	return iss
}

func (h *hierarchy) revoke(t *testing.T, c *x509.Certificate) {
	t.Helper()
	crl, _, err := pki.UpdateCRL(nil, h.OwnerIssuer(), pki.CRLUpdate{Revoke: []*x509.Certificate{c}}, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteCRL(filepath.Join(h.dir, "owner.crl"), crl); err != nil {
		t.Fatal(err)
	}
}

const trustManifest = `version: 1
image:
  output: out/img.sqsh
  compression: gzip
  epoch: 0
hash: sha256
trust:
  roots: [pki/root.pem]
  intermediates: [pki/owner.pem]
  crls: [CRLS]
keys:
  manufacturer: {cert: pki/mfr.pem, key: pki/mfr.key}
  tenant: {cert: pki/tenant.pem, key: pki/tenant.key}
sources:
  - from: src/
    to: /
rules:
  - match: TENANTMATCH
    key: tenant
  - match: /**
    key: manufacturer
`

// TestBuildTrust: a build refuses tenant keys that are revoked, expired,
// not yet valid or used outside their scope, and a key that does not chain
// to the manifest's root; the same build with a valid key passes and evmctl
// verifies its signatures with the certificates `pki export` writes.
func TestBuildTrust(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name    string
		setup   func(t *testing.T, h *hierarchy) // issues pki/tenant.*
		match   string                           // the tenant rule's pattern
		wantErr error
	}{
		{"valid", func(t *testing.T, h *hierarchy) {
			h.ima(t, "tenant", true, []string{"/opt/acme/**"}, now.Add(-time.Hour), 24*time.Hour)
		}, "/opt/acme/**", nil},
		{"revoked", func(t *testing.T, h *hierarchy) {
			iss := h.ima(t, "tenant", true, []string{"/opt/acme/**"}, now.Add(-time.Hour), 24*time.Hour)
			h.revoke(t, iss.Cert)
		}, "/opt/acme/**", pki.ErrRevoked},
		{"expired", func(t *testing.T, h *hierarchy) {
			h.ima(t, "tenant", true, []string{"/opt/acme/**"}, now.Add(-48*time.Hour), 24*time.Hour)
		}, "/opt/acme/**", pki.ErrExpired},
		{"not yet valid", func(t *testing.T, h *hierarchy) {
			h.ima(t, "tenant", true, []string{"/opt/acme/**"}, now.Add(pki.Backdate+time.Hour), 24*time.Hour)
		}, "/opt/acme/**", pki.ErrNotYetValid},
		{"outside its scope", func(t *testing.T, h *hierarchy) {
			h.ima(t, "tenant", true, []string{"/opt/acme/**"}, now.Add(-time.Hour), 24*time.Hour)
		}, "/usr/**", pki.ErrOutOfScope},
		{"issuer of the same name, another key", func(t *testing.T, h *hierarchy) {
			other := newHierarchy(t, t.TempDir())
			iss := other.ima(t, "tenant", true, nil, now.Add(-time.Hour), 24*time.Hour)
			h.write(t, "tenant", iss)
		}, "/opt/acme/**", pki.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHierarchy(t, filepath.Join(dir, "pki"))
			h.ima(t, "mfr", false, nil, now.Add(-time.Hour), 24*time.Hour)
			tt.setup(t, h)
			writeTree(t, filepath.Join(dir, "src"), []string{"usr/bin/tool", "opt/acme/bin/app"}, 0o755)
			crls := "pki/root.crl, pki/owner.crl"
			text := strings.NewReplacer("CRLS", crls, "TENANTMATCH", tt.match).Replace(trustManifest)
			if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(filepath.Join(dir, "m.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Build(context.Background(), Options{Manifest: m})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), `"tenant"`) {
					t.Errorf("error %q does not name the key", err)
				}
				if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
					t.Errorf("a refused build left %d files", len(ents))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			evmctlVerifiesWithExport(t, h, res.ImagePath, map[string]string{
				"opt/acme/bin/app": "tenant", "usr/bin/tool": "mfr",
			})
		})
	}
}

// evmctlVerifiesWithExport exports the device's certificates with pki.Export
// and has evmctl verify each file's signature with the exported DER file of
// the key that should have signed it.
func evmctlVerifiesWithExport(t *testing.T, h *hierarchy, image string, signedBy map[string]string) {
	t.Helper()
	evmctl := testenv.NeedTool(t, "evmctl")
	var certs []*x509.Certificate
	keyIDs := map[string]string{} // base name -> hex key id
	for _, base := range []string{"mfr", "tenant"} {
		c, err := signer.LoadCertificate(filepath.Join(h.dir, base+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		id := imasig.KeyID(c)
		keyIDs[base] = hex.EncodeToString(id[:])
		certs = append(certs, c)
	}
	ts, err := pki.NewTrustStore([]*x509.Certificate{h.Root.Cert}, append([]*x509.Certificate{h.Owner.Cert}, certs...), nil)
	if err != nil {
		t.Fatal(err)
	}
	exp := t.TempDir()
	res, err := pki.Export(ts, exp, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	der := map[string]string{} // key id -> exported DER file
	for _, c := range res.Loaded {
		der[c.KeyID] = filepath.Join(exp, c.File)
	}
	img := openImage(t, image)
	x := t.TempDir()
	for path, base := range signedBy {
		data, err := img.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(x, filepath.Base(path))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f+".sig", imaXattr(t, img, "/"+path), 0o644); err != nil {
			t.Fatal(err)
		}
		cert, ok := der[keyIDs[base]]
		if !ok {
			t.Fatalf("export has no certificate for %s: %v", base, der)
		}
		if out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", cert, f).CombinedOutput(); err != nil {
			t.Errorf("evmctl rejects %s with the exported %s: %v\n%s", path, cert, err, out)
		}
	}
}

// TestBuildRevocationUnknown: a trust section with the root's CRL but not
// the owner CA's refuses the tenant key (its revocation is unknown), naming
// the CA; so does an owner CRL whose nextUpdate has passed; with
// trust.revocation: best-effort the build goes on with a warning. (Was: the
// tenant's files were signed without a word.)
func TestBuildRevocationUnknown(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		name, crls, mode string
		stale            bool
		wantErr          error
		warn             string
	}{
		{"root CRL only", "pki/root.crl", "", false, pki.ErrRevocationUnknown, `no CRL of its issuer "CN=Test Owner"`},
		{"stale owner CRL", "pki/root.crl, pki/owner.crl", "", true, pki.ErrRevocationUnknown, "is stale"},
		{"root CRL only, best-effort", "pki/root.crl", "best-effort", false, nil, `no CRL of its issuer "CN=Test Owner"`},
		{"both", "pki/root.crl, pki/owner.crl", "", false, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			h := newHierarchy(t, filepath.Join(dir, "pki"))
			h.ima(t, "mfr", false, nil, now.Add(-time.Hour), 24*time.Hour)
			h.ima(t, "tenant", true, []string{"/opt/acme/**"}, now.Add(-time.Hour), 24*time.Hour)
			if tt.stale {
				crl, _, err := pki.UpdateCRL(nil, h.OwnerIssuer(), pki.CRLUpdate{Validity: time.Hour}, pki.Options{Now: func() time.Time { return now.Add(-2 * time.Hour) }})
				if err != nil {
					t.Fatal(err)
				}
				if err := pki.WriteCRL(filepath.Join(dir, "pki", "owner.crl"), crl); err != nil {
					t.Fatal(err)
				}
			}
			writeTree(t, filepath.Join(dir, "src"), []string{"usr/bin/tool", "opt/acme/bin/app"}, 0o755)
			text := strings.NewReplacer("CRLS", tt.crls, "TENANTMATCH", "/opt/acme/**").Replace(trustManifest)
			if tt.mode != "" {
				text = strings.Replace(text, "  crls:", "  revocation: "+tt.mode+"\n  crls:", 1)
			}
			if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(filepath.Join(dir, "m.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var logs []string
			_, err = Build(context.Background(), Options{Manifest: m, Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
			if (tt.wantErr == nil) != (err == nil) || !errors.Is(err, tt.wantErr) {
				t.Fatalf("build: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil && (!strings.Contains(err.Error(), tt.warn) || !strings.Contains(err.Error(), `"tenant"`)) {
				t.Errorf("error %q does not name the key and %q", err, tt.warn)
			}
			if tt.wantErr == nil && tt.warn != "" && !strings.Contains(strings.Join(logs, "\n"), tt.warn) {
				t.Errorf("best-effort: no warning in %q", logs)
			}
		})
	}
}

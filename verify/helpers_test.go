package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testkeys"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/squashfs"
)

// fixture is a PKI (manufacturer root -> owner CA -> tenant key scoped to
// /opt/acme/**; root -> manufacturer key), a rogue self-signed key, and a
// clean image built by pipeline.Build without compression, so that file
// data and xattr values appear verbatim in the image bytes.
type fixture struct {
	dir                 string
	root, owner         *pki.Issued
	mfr, tenant         *pki.Issued
	rogue               *testkeys.Key
	mfrS, tenS, rogS    *signer.Signer
	clean, withExec     []byte // images; withExec adds an unsigned executable /var/lib/run.sh
	cleanPath, execPath string
	crls                []*x509.RevocationList // empty, current CRLs of the root and the owner CA
}

const fixtureManifest = `version: 1
image:
  output: out/OUTPUT
  compression: none
  block_size: 4K
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
hash: sha256
kernel: "6.1"
trust:
  roots: [pki/root.pem]
  intermediates: [pki/owner.pem]
  crls: [pki/root.crl, pki/owner.crl]
keys:
  manufacturer: {cert: pki/mfr.pem, key: pki/mfr.key}
  tenant: {cert: pki/tenant.pem, key: pki/tenant.key}
sources:
  - from: SRC/
    to: /
rules:
  - match: /opt/acme/**
    key: tenant
  - match: /var/**
    sign: false
  - match: /**
    key: manufacturer
policy:
  - name: exec
    path: /etc/ima/policy.d/50-exec.policy
    key: manufacturer
    presets: [squashfs-exec]
`

// tree is the clean image's source: path -> (mode, content). Each content
// holds a unique marker so a test can find it in the image.
var tree = []struct {
	path    string
	mode    fs.FileMode
	content string
}{
	{"usr/bin/tool", 0o755, "TOOL-MARKER " + strings.Repeat("tool binary\n", 700)},
	{"usr/bin/other", 0o755, "OTHER-MARKER " + strings.Repeat("other binary\n", 300)},
	{"usr/lib/libx.so", 0o755, "LIBX-MARKER " + strings.Repeat("\x7fELF lib", 900)},
	{"etc/conf", 0o644, "CONF-MARKER key=value\n"},
	{"opt/acme/bin/app", 0o755, "APP-MARKER " + strings.Repeat("app", 3000)},
	{"opt/acme/bin/helper", 0o755, "HELPER-MARKER " + strings.Repeat("helper", 1000)},
	{"var/log/boot.log", 0o644, "BOOT-MARKER booted\n"},
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "pki")
	now := time.Now()
	fx := &fixture{dir: dir}
	var err error
	h := testpki.New(t, "Test Manufacturing", "Test Owner")
	fx.root, fx.owner = h.Root, h.Owner
	fx.mfr = testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "Test Manufacturing IMA", KeyType: pki.RSA2048}, h.RootIssuer(), pki.Options{})
	scope, err := pki.NewScope([]string{"/opt/acme/**"})
	check(t, err)
	fx.tenant = testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "ACME tenant IMA", KeyType: pki.P256, Scope: scope},
		h.OwnerIssuer(), pki.Options{Now: func() time.Time { return now }})
	for base, iss := range map[string]*pki.Issued{"root": fx.root, "owner": fx.owner, "mfr": fx.mfr, "tenant": fx.tenant} {
		testpki.Write(t, pdir, base, iss, true)
	}
	fx.crls = h.CRLs(t)
	for i, base := range []string{"root", "owner"} {
		check(t, pki.WriteCRL(filepath.Join(pdir, base+".crl"), fx.crls[i]))
	}
	fx.rogue = testkeys.New(t, pdir, "rogue", "rsa2048")
	fx.mfrS, err = signer.New(fx.mfr.Key, fx.mfr.Cert)
	check(t, err)
	fx.tenS, err = signer.New(fx.tenant.Key, fx.tenant.Cert)
	check(t, err)
	fx.rogS, err = signer.New(fx.rogue.Signer, fx.rogue.Cert)
	check(t, err)

	for _, e := range tree {
		for _, src := range []string{"src", "src2"} {
			write(t, filepath.Join(dir, src, e.path), e.mode, e.content)
		}
	}
	write(t, filepath.Join(dir, "src2", "var/lib/run.sh"), 0o755, "RUN-MARKER #!/bin/sh\necho unsigned\n")
	fx.cleanPath = fx.build(t, "src", "clean.sqsh")
	fx.execPath = fx.build(t, "src2", "exec.sqsh")
	fx.clean, err = os.ReadFile(fx.cleanPath)
	check(t, err)
	fx.withExec, err = os.ReadFile(fx.execPath)
	check(t, err)
	return fx
}

func (fx *fixture) build(t testing.TB, src, out string) string {
	t.Helper()
	m := filepath.Join(fx.dir, out+".yaml")
	text := strings.NewReplacer("OUTPUT", out, "SRC", src).Replace(fixtureManifest)
	check(t, os.WriteFile(m, []byte(text), 0o644))
	man, err := manifest.Load(m)
	check(t, err)
	res, err := pipeline.Build(context.Background(), pipeline.Options{Manifest: man, ToolVersion: "test"})
	check(t, err)
	return res.ImagePath
}

// trust returns a trust store with the hierarchy, the IMA certificates and
// the given CRLs; extra certificates are added (as a user's --cert).
func (fx *fixture) trust(t testing.TB, crls []*x509.RevocationList, extra ...*x509.Certificate) *pki.TrustStore {
	t.Helper()
	ts, err := pki.NewTrustStore([]*x509.Certificate{fx.root.Cert},
		[]*x509.Certificate{fx.owner.Cert, fx.mfr.Cert, fx.tenant.Cert}, append(append([]*x509.RevocationList(nil), fx.crls...), crls...))
	check(t, err)
	for _, c := range extra {
		check(t, ts.Add(c))
	}
	return ts
}

// sign returns the security.ima value of content by s (sha256).
func sign(t testing.TB, s *signer.Signer, content string) []byte {
	t.Helper()
	d, err := imasig.DigestReader(imasig.SHA256, strings.NewReader(content))
	check(t, err)
	v, err := s.SignDigest(imasig.SHA256, d)
	check(t, err)
	return v
}

// entry is a file of a hand-made image.
type entry struct {
	path    string
	mode    fs.FileMode
	content string
	ima     []byte // nil: no security.ima
}

// writeImage assembles an image with squashfs.Writer directly, for what the
// build refuses to make (a key outside its scope, a swapped signature).
func writeImage(t testing.TB, entries []entry) []byte {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "img")
	check(t, err)
	defer f.Close()
	w, err := squashfs.NewWriter(f, squashfs.Options{Compression: squashfs.CompNone, BlockSize: 4096, ModTime: 1700000000})
	check(t, err)
	for _, e := range entries {
		content := e.content
		se := squashfs.Entry{Path: e.path, Mode: e.mode, Size: int64(len(content)),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil }}
		if e.ima != nil {
			se.Xattrs = []squashfs.Xattr{{Name: imasig.XattrName, Value: e.ima}}
		}
		check(t, w.Add(se))
	}
	check(t, w.Close())
	data, err := os.ReadFile(f.Name())
	check(t, err)
	return data
}

// imaValue returns a file's security.ima in image bytes.
func imaValue(t testing.TB, img []byte, p string) []byte {
	t.Helper()
	z, err := squashfs.NewReader(bytes.NewReader(img), int64(len(img)))
	check(t, err)
	xs, err := z.Xattrs(strings.TrimPrefix(p, "/"))
	check(t, err)
	for _, x := range xs {
		if x.Name == imasig.XattrName {
			return x.Value
		}
	}
	t.Fatalf("%s has no security.ima", p)
	return nil
}

// replaceOnce replaces the only occurrence of old in b (same length).
func replaceOnce(t testing.TB, b []byte, old, new []byte) []byte {
	t.Helper()
	if len(old) != len(new) {
		t.Fatalf("replaceOnce: lengths %d and %d differ", len(old), len(new))
	}
	if n := bytes.Count(b, old); n != 1 {
		t.Fatalf("replaceOnce: %q occurs %d times", old[:min(len(old), 20)], n)
	}
	out := bytes.Clone(b)
	i := bytes.Index(out, old)
	copy(out[i:], new)
	return out
}

func write(t testing.TB, p string, mode fs.FileMode, content string) {
	t.Helper()
	check(t, os.MkdirAll(filepath.Dir(p), 0o755))
	check(t, os.WriteFile(p, []byte(content), mode))
	check(t, os.Chmod(p, mode))
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

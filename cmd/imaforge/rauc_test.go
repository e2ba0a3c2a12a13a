package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/pki"
)

const raucManifest = `version: 1
image:
  output: out/img.sqsh
  compression: gzip
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
  verity: true
  signature_key: release
trust:
  roots: [pki/root.pem]
  intermediates: [pki/owner-ca.pem]
  crls: [pki/root.crl, pki/owner-ca.crl]
keys:
  mfr: {cert: pki/mfr.pem, key: pki/mfr.key}
  release: {cert: pki/release.pem, key: pki/release.key}
sources:
  - from: src/
    to: /
rules:
  - match: /**
    key: mfr
`

// raucProject is a manifest with verity and an image signature key under
// root -> owner CA, and a source tree big enough for a RAUC payload.
func raucProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	pdir := filepath.Join(dir, "pki")
	h := testpki.New(t, "Root", "Owner")
	testpki.Write(t, pdir, "root", h.Root, false)
	testpki.Write(t, pdir, "owner-ca", h.Owner, false)
	h.WriteCRLs(t, pdir, "root", "owner-ca")
	for _, base := range []string{"mfr", "release"} {
		iss := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: base, KeyType: "rsa2048"}, h.OwnerIssuer(), pki.Options{})
		testpki.Write(t, pdir, base, iss, false)
	}
	src := filepath.Join(dir, "src", "usr", "bin")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "tool"), []byte(strings.Repeat("tool\n", 5000)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(raucManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBuildRAUCBundle: `imaforge build --rauc-bundle` writes the image with
// its verity tree and signatures and a bundle that `imaforge rauc verify`
// and `rauc info` accept; `rauc bundle` rewrites the same bytes; a missing
// --rauc-compatible is a usage error before anything is built.
func TestBuildRAUCBundle(t *testing.T) {
	dir := raucProject(t)
	m := filepath.Join(dir, "m.yaml")
	b1 := filepath.Join(dir, "out", "a.raucb")
	if code, _, errOut := run(t, "build", "--quiet", "--rauc-bundle", b1, m); code != 2 || !strings.Contains(errOut, "--rauc-compatible") {
		t.Fatalf("without --rauc-compatible: exit %d, %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "img.sqsh")); err == nil {
		t.Fatal("a usage error left an image")
	}
	code, out, errOut := run(t, "build", "--quiet", "--rauc-bundle", b1, "--rauc-compatible", "Test Box", "--rauc-version", "7", m)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "RAUC bundle") {
		t.Errorf("output %q", out)
	}
	for _, f := range []string{"img.sqsh", "img.sqsh.cms", "img.sqsh.verity", "img.sqsh.verity.cms", "img.sqsh.roothash.p7s"} {
		if _, err := os.Stat(filepath.Join(dir, "out", f)); err != nil {
			t.Error(err)
		}
	}
	root := filepath.Join(dir, "pki", "root.pem")
	if code, out, errOut := run(t, "rauc", "verify", "--root", root, "--intermediate", filepath.Join(dir, "pki", "owner-ca.pem"), "--crl", filepath.Join(dir, "pki", "root.crl"), "--crl", filepath.Join(dir, "pki", "owner-ca.crl"), b1); code != 0 || !strings.Contains(out, `compatible "Test Box" version "7"`) {
		t.Fatalf("rauc verify: exit %d: %s%s", code, out, errOut)
	}
	b2 := filepath.Join(dir, "out", "b.raucb")
	if code, _, errOut := run(t, "rauc", "bundle", "--compatible", "Test Box", "--version", "7", "-o", b2, m); code != 0 {
		t.Fatalf("rauc bundle: exit %d: %s", code, errOut)
	}
	d1, _ := os.ReadFile(b1)
	d2, _ := os.ReadFile(b2)
	if len(d1) == 0 || string(d1) != string(d2) {
		t.Error("rauc bundle gave other bytes than build --rauc-bundle")
	}

	bin := testenv.NeedTool(t, "rauc")
	conf := filepath.Join(dir, "system.conf")
	if err := os.WriteFile(conf, []byte("[system]\ncompatible=Test Box\nbootloader=noop\n\n[keyring]\npath="+root+"\ncheck-purpose=codesign\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "--conf", conf, "info", "--keyring", root, b1).CombinedOutput(); err != nil {
		t.Fatalf("rauc info: %v\n%s", err, out)
	}
}

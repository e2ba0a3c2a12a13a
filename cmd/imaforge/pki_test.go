package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/pki"
)

// TestPKIWorkflow runs the operator's workflow through the CLI: init a root,
// issue an owner CA (encrypted key) and tenant keys, verify, revoke, export.
// Each verdict of `imaforge pki verify` is compared with `openssl verify`.
func TestPKIWorkflow(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	d := t.TempDir()
	p := func(s string) string { return filepath.Join(d, s) }
	t.Setenv("IMAFORGE_TEST_PASS", "owner secret")
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("imaforge %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	must("pki", "init", "--name", "ACME Manufacturing", "--out", p("mfr"), "--key-type", "rsa2048")
	must("pki", "issue", "--ca", p("mfr/root.pem"), "--ca-key", p("mfr/root.key"), "--role", "owner-ca",
		"--name", "Owner One", "--out", p("owner"), "--key-type", "rsa2048", "--passphrase-env", "IMAFORGE_TEST_PASS")
	caFlags := []string{"--ca", p("owner/owner-ca.pem"), "--ca-key", p("owner/owner-ca.key"), "--ca-passphrase-env", "IMAFORGE_TEST_PASS"}
	must(append([]string{"pki", "issue", "--role", "ima", "--name", "Tenant ACME", "--scope", "/opt/acme/**", "--out", p("tenant"), "--key-type", "p256"}, caFlags...)...)
	must(append([]string{"pki", "issue", "--role", "ima", "--name", "Tenant Two", "--days", "30", "--out", p("tenant"), "--key-type", "p256"}, caFlags...)...)

	for _, f := range []string{"mfr/root.key", "owner/owner-ca.key", "tenant/tenant-acme.key"} {
		fi, err := os.Stat(p(f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v", f, fi.Mode(), err)
		}
	}
	if b, _ := os.ReadFile(p("owner/owner-ca.key")); !strings.Contains(string(b), "ENCRYPTED PRIVATE KEY") {
		t.Error("owner CA key not encrypted")
	}
	// Never overwrite a key by accident.
	if code, _, errOut := run(t, "pki", "init", "--name", "Again", "--out", p("mfr"), "--key-type", "p256"); code != 1 || !strings.Contains(errOut, "root.key") {
		t.Errorf("init over an existing root: exit %d %s", code, errOut)
	}

	trust := []string{"--root", p("mfr/root.pem"), "--intermediate", p("owner/owner-ca.pem"), "--crl", p("mfr/root.crl"), "--crl", p("owner/owner-ca.crl")}
	verify := func(cert string, extra ...string) (int, string) {
		code, out, errOut := run(t, append(append(append([]string{"pki", "verify"}, trust...), extra...), cert)...)
		return code, out + errOut
	}
	opensslVerify := func(cert string) error {
		cmd := exec.Command(openssl, "verify", "-crl_check_all", "-CAfile", p("mfr/root.pem"), "-untrusted", p("owner/owner-ca.pem"),
			"-CRLfile", p("mfr/root.crl"), "-CRLfile", p("owner/owner-ca.crl"), cert)
		return cmd.Run()
	}
	tenant := p("tenant/tenant-acme.pem")
	if code, out := verify(tenant, "--key", p("tenant/tenant-acme.key"), "--path", "/opt/acme/bin/app"); code != 0 || opensslVerify(tenant) != nil {
		t.Fatalf("valid tenant: exit %d, openssl %v\n%s", code, opensslVerify(tenant), out)
	}
	if code, out := verify(tenant, "--path", "/usr/bin/ls"); code != 1 || !strings.Contains(out, "scope") {
		t.Errorf("out of scope: exit %d\n%s", code, out)
	}
	if code, out := verify(tenant, "--key", p("tenant/tenant-two.key")); code != 1 || !strings.Contains(out, "private key") {
		t.Errorf("wrong key: exit %d\n%s", code, out)
	}
	if code, out := verify(tenant, "--at", "2099-01-01T00:00:00Z"); code != 1 || !strings.Contains(out, "expired") {
		t.Errorf("expired: exit %d\n%s", code, out)
	}

	out := must(append([]string{"pki", "revoke", "--cert", tenant, "--reason", "keyCompromise"}, caFlags...)...)
	crl, err := pki.ReadCRL(p("owner/owner-ca.crl"))
	if err != nil || crl.Number.Int64() != 2 || !strings.Contains(out, "tbs:") {
		t.Errorf("revoke: CRL %v %v\n%s", crl, err, out)
	}
	if code, out := verify(tenant); code != 1 || !strings.Contains(out, "revoked") || opensslVerify(tenant) == nil {
		t.Errorf("revoked: exit %d, openssl accepts: %v\n%s", code, opensslVerify(tenant) == nil, out)
	}

	out = must(append([]string{"pki", "export", "--out", p("device"), "--cert", tenant, "--cert", p("tenant/tenant-two.pem")}, trust...)...)
	for _, f := range []string{"certs/01-root-acme-manufacturing.der", "certs/02-owner-ca-owner-one.der", "certs/03-ima-tenant-two.der", "load-keys.sh", "blacklist-hashes.txt", "trusted-keys.pem", "export.json"} {
		if _, err := os.Stat(p("device/" + f)); err != nil {
			t.Errorf("export: %v\n%s", err, out)
		}
	}
	bl, _ := os.ReadFile(p("device/blacklist-hashes.txt"))
	if !strings.Contains(out, "revoked ima") || !strings.HasPrefix(string(bl), `"tbs:`) {
		t.Errorf("export output:\n%s\nblacklist: %s", out, bl)
	}

	// Usage errors exit 2.
	if code, _, _ := run(t, "pki", "issue", "--ca", p("mfr/root.pem"), "--ca-key", p("mfr/root.key"), "--role", "root", "--name", "x", "--out", p("x")); code != 2 {
		t.Errorf("--role root: exit %d, want 2", code)
	}
	if code, _, _ := run(t, append([]string{"pki", "issue", "--role", "ima", "--name", "x", "--out", p("x"), "--scope", "relative/**"}, caFlags...)...); code != 2 {
		t.Errorf("relative scope: exit %d, want 2", code)
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/ceremony/ceremonytest"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/pki"
)

// TestCAKeyInHSM: pki issue, revoke and crl sign with a CA key held in a
// SoftHSM2 token, named by a pkcs11: URI (the key file is gone from disk);
// openssl checks the issued certificate and the CRLs against the CA. file
// sign signs with a key in the token too. A wrong PIN fails (exit 1), a PIN
// written into the URI is refused (exit 2) and never printed.
func TestCAKeyInHSM(t *testing.T) {
	openssl := testenv.NeedTool(t, "openssl")
	hsm := ceremonytest.New(t)
	d := t.TempDir()
	p := func(s string) string { return filepath.Join(d, s) }
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(t, args...)
		if code != 0 {
			t.Fatalf("imaforge %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	must("pki", "init", "--name", "HSM Root", "--out", p("root"), "--key-type", "rsa2048")
	hsm.InitToken(t, "ca", "4711")
	hsm.ImportKey(t, "ca", "4711", p("root/root.key"), "root", "01")
	if err := os.Remove(p("root/root.key")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CA_PIN", "4711")
	uri := "pkcs11:token=ca;object=root?module-path=" + hsm.Module
	ca := []string{"--ca", p("root/root.pem"), "--ca-key", uri, "--ca-passphrase-env", "CA_PIN"}

	must(append([]string{"pki", "issue", "--role", "ima", "--name", "Signed In HSM", "--out", p("ima"), "--key-type", "rsa2048"}, ca...)...)
	imaCert := p("ima/signed-in-hsm.pem")
	osslVerify := func(extra ...string) ([]byte, error) {
		args := append([]string{"verify", "-CAfile", p("root/root.pem")}, extra...)
		return exec.Command(openssl, append(args, imaCert)...).CombinedOutput()
	}
	if out, err := osslVerify(); err != nil {
		t.Fatalf("openssl rejects the certificate the HSM key issued: %v\n%s", err, out)
	}

	must(append([]string{"pki", "revoke", "--cert", imaCert, "--reason", "keyCompromise"}, ca...)...)
	crl, err := pki.ReadCRL(p("root/root.crl"))
	if err != nil || len(crl.RevokedCertificateEntries) != 1 {
		t.Fatalf("CRL after revoke: %v %v", crl, err)
	}
	if _, err := osslVerify("-crl_check", "-CRLfile", p("root/root.crl")); err == nil {
		t.Error("openssl accepts the revoked certificate: the CRL the HSM key signed is not in force")
	}
	must(append([]string{"pki", "crl"}, ca...)...)
	if crl2, err := pki.ReadCRL(p("root/root.crl")); err != nil || crl2.Number.Cmp(crl.Number) <= 0 {
		t.Errorf("pki crl: %v %v", crl2, err)
	}
	// The CRL's signature is the CA's (openssl checks it with the CA key).
	if out, err := exec.Command(openssl, "crl", "-in", p("root/root.crl"), "-CAfile", p("root/root.pem"), "-noout").CombinedOutput(); err != nil || !strings.Contains(string(out), "verify OK") {
		t.Errorf("openssl crl: %v %s", err, out)
	}

	// file sign with an IMA key in the token, verified by file verify.
	hsm.ImportKey(t, "ca", "4711", p("ima/signed-in-hsm.key"), "ima", "02")
	f := p("payload")
	if err := os.WriteFile(f, []byte("signed with a token key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	imaURI := "pkcs11:token=ca;object=ima?module-path=" + hsm.Module
	must("file", "sign", "--key", imaURI, "--cert", imaCert, "--passphrase-env", "CA_PIN", "--sigfile", f)
	must("file", "verify", "--cert", imaCert, "--sigfile", f)

	t.Setenv("WRONG_PIN", "0000")
	bad := []string{"pki", "crl", "--ca", p("root/root.pem"), "--ca-key", uri, "--ca-passphrase-env", "WRONG_PIN"}
	if code, out, errOut := run(t, bad...); code != 1 || !strings.Contains(out+errOut, "PIN") {
		t.Errorf("wrong PIN: exit %d, want 1\n%s%s", code, out, errOut)
	}
	leak := []string{"pki", "crl", "--ca", p("root/root.pem"), "--ca-key", uri + "&pin-value=4711"}
	if code, out, errOut := run(t, leak...); code != 2 || strings.Contains(out+errOut, "4711") || !strings.Contains(errOut, "pin-value") {
		t.Errorf("PIN in the URI: exit %d, want 2 without the PIN\n%s%s", code, out, errOut)
	}
}
